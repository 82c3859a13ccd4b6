"""Build what a run computes from its :class:`~gantk.cli.config.RunConfig`: data, kernel,
step function and initial state. Nothing here writes files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gantk import data as gdata
from gantk import flows, nets
from gantk.cli.config import RunConfig
from gantk.cli.errors import UsageError, one_line
from gantk.sharding import particle_mesh

__all__ = ["FIXED_DATA", "Built", "build", "data_error", "label"]

#: Datasets of fixed points (GAN(TK)²'s toy sets).
FIXED_DATA = ("modes_1d", "modes_1d_overlap", "two_couples_2d")

#: Internal argument names of :func:`gantk.data.load` → the CLI flags they come from.
_DATA_ARGS = {"name": "--data", "image": "--data", "n_fake": "--n-particles",
              "n_real": "--n-real", "seed": "--seed", "dtype": "--x64"}


def data_error(err: ValueError) -> UsageError:
    """A :func:`gantk.data.load` error as a one-line usage error naming the CLI flags."""
    text = one_line(err)
    flags = [f for a, f in _DATA_ARGS.items() if f"`{a}`" in text]
    for arg, flag in _DATA_ARGS.items():
        text = text.replace(f"`{arg}`", flag)
    return UsageError(f"argument {flags[0] if flags else '--data'}: {text}")


@dataclasses.dataclass
class Built:
    """Everything a run computes with.

    Attributes:
        cfg: the configuration (``n_particles``/``n_real`` resolved to the loaded sizes).
        fake0: initial fake particles ``(n, d)``; real: real points ``(m, d)``.
        kernel: ``k(x1, x2) -> (n1, n2)`` of ``cfg.spec`` (NTK, or NNGP for rbf).
        step: ``step(state, real) -> (state, out)``: for particles a
            :class:`~gantk.flows.FlowStep` (``out`` a :class:`~gantk.flows.StepOutput` with
            the fitted discriminator), for a generator the mean generator loss.
        state: the initial :class:`~gantk.flows.FlowState` or ``GeneratorState``.
        particles: ``state -> fake points (n, d)`` (generator samples at fixed latents).
        devices: the devices the particles are split over.
        notes: lines worth telling the user (e.g. a size that was capped).
    """

    cfg: RunConfig
    fake0: Any
    real: Any
    kernel: Callable
    step: Callable
    state: Any
    particles: Callable[[Any], Any]
    devices: list[Any]
    notes: list[str]

    @property
    def n(self) -> int:
        """Number of fake particles."""
        return int(self.fake0.shape[0])

    @property
    def d(self) -> int:
        """Dimension of the points."""
        return int(self.fake0.shape[1])

    @property
    def step_size(self) -> float:
        """Per-particle step ``eta / n``."""
        return self.cfg.eta / self.n


def _select_devices(requested: int | None) -> list[Any]:
    devs = jax.local_devices()
    if requested is None:
        return devs
    if requested > len(devs):
        raise UsageError(f"argument --devices: requested {requested} devices but only "
                         f"{len(devs)} are available ({devs[0].platform})")
    return devs[:requested]


def _load_data(cfg: RunConfig, dtype: Any) -> tuple[Any, Any, list[str]]:
    notes: list[str] = []
    n, m = cfg.n_particles, cfg.n_real if cfg.n_real is not None else cfg.n_particles
    if cfg.data in FIXED_DATA:  # fixed sizes: the default --n-particles means "the set's"
        n = None if cfg.n_particles == RunConfig.n_particles else n
        m = cfg.n_real
    if cfg.data == "digits" and cfg.n_real is None and m is not None and m > 1797:
        notes.append(f"--n-real: digits has 1797 images; using all of them (not {m})")
        m = 1797
    try:
        fake, real = gdata.load(cfg.data, n_fake=n, n_real=m, seed=cfg.seed, dtype=dtype)
    except ValueError as err:
        raise data_error(err) from None
    return fake, real, notes


def build(cfg: RunConfig) -> Built:
    """Load the data and build the step function and initial state of a run.

    Raises:
        UsageError: one line naming the flag, on unusable data or devices.
    """
    dtype = jnp.float64 if cfg.x64 else jnp.float32
    fake, real, notes = _load_data(cfg, dtype)
    cfg = dataclasses.replace(cfg, n_particles=int(fake.shape[0]), n_real=int(real.shape[0]))
    devices = _select_devices(cfg.devices)
    kernel = cfg.spec.discriminator_kernel()
    key = jax.random.key(cfg.seed)
    step_size = cfg.eta / int(fake.shape[0])
    if cfg.generator == "mlp":
        step, state, particles = _generator(cfg, kernel, key, fake, step_size, dtype)
    else:
        step, state = _particles(cfg, kernel, key, fake, step_size, devices)
        particles = _fake_of
    return Built(cfg, fake, real, kernel, step, state, particles, devices, notes)


def _fake_of(state: Any) -> Any:
    return state.fake


def _init_disc(cfg: RunConfig, key: Any, fake: Any) -> Any:
    """Initial finite-width discriminator parameters, in the dtype of the points."""
    if cfg.width is None:
        return None
    return nets.init_discriminator(jax.random.fold_in(key, 1), cfg.spec, fake.shape[1],
                                   antisymmetric=cfg.antisymmetric, dtype=fake.dtype)


def _fit(cfg: RunConfig, kernel: Callable) -> flows.AbstractFit:
    """How each generator step trains the discriminator (infinite or finite width)."""
    if cfg.width is None:
        return flows.InfiniteWidthFit(cfg.loss, kernel, cfg.time)
    return flows.FiniteWidthFit(cfg.loss, cfg.spec, cfg.time, cfg.discr_lr, cfg.reset,
                                cfg.antisymmetric, cfg.single_step)


def _particles(cfg: RunConfig, kernel: Callable, key: Any, fake: Any, step_size: float,
               devices: list[Any]) -> tuple[Callable, Any]:
    mesh = particle_mesh(devices) if len(devices) > 1 and cfg.width is None else None
    step = flows.flow_step(_fit(cfg, kernel), step_size, mesh=mesh)
    state = flows.FlowState(
        fake=fake, step=jnp.asarray(0, jnp.int32), diverged_at=jnp.asarray(-1, jnp.int32),
        key=jax.random.fold_in(key, 2), disc_params=_init_disc(cfg, key, fake),
    )
    return step, state


def _generator(cfg: RunConfig, kernel: Callable, key: Any, fake: Any, step_size: float,
               dtype: Any) -> tuple[Callable, Any, Callable]:
    n, d = fake.shape
    latent = cfg.latent_dim or (2 if d <= 2 else 16)
    gen = nets.MLPGenerator(latent_dim=latent, out_dim=d, tanh_output=cfg.data == "digits")
    gparams = gen.init(jax.random.fold_in(key, 3), jnp.zeros((1, latent), dtype))
    z_eval = jax.random.normal(jax.random.fold_in(key, 4), (n, latent), dtype)
    nets.check_generator_output(gen.apply, gparams, z_eval, d)
    opt = optax.adam(cfg.gen_lr)
    step = flows.generator_step(cfg.loss, _fit(cfg, kernel), gen.apply, opt, n, latent)
    state = flows.GeneratorState(
        params=gparams, opt_state=opt.init(gparams), step=jnp.asarray(0, jnp.int32),
        diverged_at=jnp.asarray(-1, jnp.int32), key=jax.random.fold_in(key, 2),
        disc_params=_init_disc(cfg, key, fake),
    )

    def particles(state: Any) -> Any:
        return gen.apply(state.params, z_eval)

    return step, state, particles


def label(cfg: RunConfig) -> str:
    """Short description of the discriminator, e.g. ``'ipm / relu / width 64'``."""
    w = "" if cfg.width is None else f" / width {cfg.width}"
    return f"{cfg.loss} / {cfg.arch}{w}"

