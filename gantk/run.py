"""The main job: ``python -m gantk.run --loss ipm --kernel relu``.

Flows fake particles (or trains a generator) against real data along the gradient field of
an infinite-width (NTK/NNGP) or finite-width discriminator, as in GAN(TK)² (Franceschi et
al., ICML 2022), and writes everything a researcher wants to look at::

    <out>/<run-name>/
        config.json           resolved configuration (the run can be resumed from it)
        metrics.csv           step, sinkhorn, energy, mmd, nn_distance, generator_loss, wall_time
        particles_<step>.npz  fake and real points at each log step
        checkpoint.npz        state at the last completed log step (for --resume)
        figures/step_<k>.png  fake/real points, heatmap of f_tau, quiver of the velocity
        figures/metrics.png   log-scale metric curves
        flow.gif              animation of the flow
        summary.json          final metrics, timings and status

Exit status: 0 on success, 2 on a bad argument (one line naming it and the valid choices),
1 when the run diverges (the last finite state is saved), 130 on Ctrl-C (a checkpoint is
written first; ``--resume DIR`` continues bit for bit).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import shutil
import sys
import time as _time
from typing import Any, NoReturn

__all__ = ["PRESETS", "RunConfig", "build_parser", "main", "resolve_config"]

LOSSES = ("ipm", "lsgan", "vanilla", "vanilla_saturating", "hinge")
KERNEL_NAMES = ("relu", "relu-nobias", "relu-highbias", "erf", "gelu", "rbf", "leaky-relu", "abs")
METRICS = ("sinkhorn", "energy", "mmd", "nn_distance")
CSV_FIELDS = ("step", "sinkhorn", "energy", "mmd", "nn_distance", "generator_loss", "wall_time")


class UsageError(Exception):
    """A bad command-line argument: reported as one line, exit status 2."""


# --------------------------------------------------------------------------- presets
# GAN(TK)²'s `args/exp_configs.py`, as `<loss config>-<architecture>-<data>`.
_LOSS_PRESETS: dict[str, dict[str, Any]] = {
    "inf_ipm": dict(loss="ipm", eta=1000.0, time=1.0, width="inf"),
    "inf_lsgan": dict(loss="lsgan", eta=1000.0, time=1.0, width="inf"),
    "inf_vanilla": dict(loss="vanilla", eta=1000.0, time=1.0, width="inf"),
    "ipm": dict(loss="ipm", eta=100.0, discr_lr=0.01, time=0.1, antisymmetric=True),
    "ipm_reset": dict(loss="ipm", eta=1000.0, discr_lr=0.1, time=1.0, reset=True,
                      antisymmetric=True),
    "lsgan": dict(loss="lsgan", eta=1.0, discr_lr=0.1, time=1.0),
}
_ARCH_PRESETS: dict[str, dict[str, Any]] = {
    "relu": dict(kernel="relu", finite_width=128),
    "relu-highbias": dict(kernel="relu-highbias", finite_width=128),
    "relu-nobias": dict(kernel="relu-nobias", finite_width=128),
    "rbf": dict(kernel="rbf", finite_width=128),
}
_DATA_PRESETS: dict[str, dict[str, Any]] = {
    "eight_gaussians": dict(data="eight_gaussians", n_particles=500),
    "density": dict(data="density", n_particles=500),
    "ab": dict(data="ab", n_particles=500),
    "digits": dict(data="digits", n_particles=1024, eta=100.0, time=1000.0),
    "mnist": dict(data="digits", n_particles=1024, eta=100.0, time=1000.0),
}
PRESETS: tuple[str, ...] = tuple(
    f"{lo}-{ar}-{da}" for lo in _LOSS_PRESETS for ar in _ARCH_PRESETS for da in _DATA_PRESETS
)


def _preset_values(name: str) -> dict[str, Any]:
    """Resolve a preset name ``<loss config>-<architecture>-<data>`` into option values."""
    norm = name.replace("relu_nobias", "relu-nobias").replace("relu_highbias", "relu-highbias")
    parts = norm.split("-")
    if len(parts) >= 3:
        lo, ar, da = parts[0], "-".join(parts[1:-1]), parts[-1]
        if lo in _LOSS_PRESETS and ar in _ARCH_PRESETS and da in _DATA_PRESETS:
            values = {**_DATA_PRESETS[da], **_LOSS_PRESETS[lo], **_ARCH_PRESETS[ar]}
            if da in ("digits", "mnist"):  # the data config overrides eta/time (GAN(TK)²)
                values.update(eta=_DATA_PRESETS[da]["eta"], time=_DATA_PRESETS[da]["time"])
            if values.get("width") != "inf":
                values["width"] = str(values.pop("finite_width"))
            values.pop("finite_width", None)
            return values
    raise UsageError(
        f"argument --preset: invalid choice {name!r} (expected <loss>-<arch>-<data> with loss "
        f"in {sorted(_LOSS_PRESETS)}, arch in {sorted(_ARCH_PRESETS)}, data in "
        f"{sorted(_DATA_PRESETS)}; e.g. 'inf_lsgan-relu-eight_gaussians')"
    )


# --------------------------------------------------------------------------- config
@dataclasses.dataclass
class RunConfig:
    """Fully resolved run configuration (written to ``config.json``).

    Attributes mirror the command-line options; see ``python -m gantk.run --help``.
    ``width`` is ``'inf'`` for the infinite-width discriminator or a positive integer
    (as a string) for a finite flax network.
    """

    loss: str = "ipm"
    kernel: str = "relu"
    depth: int | None = None
    w_std: float | None = None
    b_std: float | None = None
    data: str = "eight_gaussians"
    n_particles: int = 500
    n_real: int | None = None
    steps: int = 2000
    eta: float = 1000.0
    time: float = 1.0
    seed: int = 0
    log_every: int = 100
    plot_every: int | None = None
    x64: bool = False
    width: str = "inf"
    discr_lr: float = 0.1
    reset: bool = False
    antisymmetric: bool = True
    single_step: bool = False
    generator: str = "none"
    gen_lr: float = 1e-3
    latent_dim: int | None = None
    sinkhorn_blur: float = 1e-3
    sinkhorn_every: int | None = None
    metrics: tuple[str, ...] = METRICS
    devices: int | None = None
    preset: str | None = None
    name: str | None = None

    @property
    def run_name(self) -> str:
        """Folder name of the run inside ``--out``."""
        if self.name:
            return self.name
        w = "" if self.width == "inf" else f"-w{self.width}"
        g = "" if self.generator == "none" else f"-gen{self.generator}"
        data = self.data.replace(":", "_").replace("/", "_")
        return f"{self.loss}-{self.kernel}{w}{g}-{data}-s{self.seed}"


_DEFAULTS = RunConfig()


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"argument --{name}: expected a positive integer; got {value!r}")
    return value


def _finite_float(name: str, value: Any, *, minimum: float | None = None,
                  strict: bool = False, allow_inf: bool = False) -> float:
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise UsageError(f"argument --{name}: expected a finite number; got {value!r}")
    if minimum is not None and (v < minimum or (strict and v == minimum)):
        op = ">" if strict else ">="
        raise UsageError(f"argument --{name}: expected a number {op} {minimum}; got {value!r}")
    return v


def _bad_choice(name: str, value: Any, choices: tuple[str, ...]) -> NoReturn:
    raise UsageError(
        f"argument --{name}: invalid choice {value!r} (choose from {', '.join(choices)})"
    )


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Merge explicit options over the preset over the defaults, and validate.

    Raises:
        UsageError: with a one-line message naming the bad option and the valid values.
    """
    values: dict[str, Any] = {}
    if args.preset:
        values.update(_preset_values(args.preset))
    explicit = {k: v for k, v in vars(args).items() if v is not None and k in _FIELDS}
    values.update(explicit)
    if "metrics" in values and isinstance(values["metrics"], str):
        values["metrics"] = tuple(m for m in values["metrics"].split(",") if m)
    cfg = RunConfig(**values)

    if cfg.loss not in LOSSES:
        _bad_choice("loss", cfg.loss, LOSSES)
    if cfg.kernel not in KERNEL_NAMES:
        _bad_choice("kernel", cfg.kernel, KERNEL_NAMES)
    _positive_int("n-particles", cfg.n_particles)
    if cfg.n_real is not None:
        _positive_int("n-real", cfg.n_real)
    _positive_int("steps", cfg.steps)
    _positive_int("log-every", cfg.log_every)
    if cfg.plot_every is not None:
        _positive_int("plot-every", cfg.plot_every)
    if cfg.sinkhorn_every is not None:
        _positive_int("sinkhorn-every", cfg.sinkhorn_every)
    if cfg.depth is not None:
        _positive_int("depth", cfg.depth)
    if cfg.w_std is not None:
        _finite_float("w-std", cfg.w_std, minimum=0.0)
    if cfg.b_std is not None:
        _finite_float("b-std", cfg.b_std, minimum=0.0)
    _finite_float("eta", cfg.eta, minimum=0.0)
    _finite_float("time", cfg.time, minimum=0.0, strict=True, allow_inf=cfg.loss == "lsgan")
    _finite_float("discr-lr", cfg.discr_lr, minimum=0.0, strict=True)
    _finite_float("gen-lr", cfg.gen_lr, minimum=0.0, strict=True)
    _finite_float("sinkhorn-blur", cfg.sinkhorn_blur, minimum=0.0, strict=True)
    if cfg.width != "inf":
        try:
            w = int(cfg.width)
        except ValueError:
            w = 0
        if w < 1:
            raise UsageError(
                f"argument --width: expected 'inf' or a positive integer; got {cfg.width!r}"
            )
        cfg.width = str(w)
        if math.isinf(cfg.time):
            raise UsageError("argument --time: a finite-width discriminator needs a finite time")
    if cfg.generator not in ("none", "mlp"):
        _bad_choice("generator", cfg.generator, ("none", "mlp"))
    if cfg.latent_dim is not None:
        _positive_int("latent-dim", cfg.latent_dim)
    bad = [m for m in cfg.metrics if m not in METRICS]
    if bad:
        _bad_choice("metrics", bad[0], METRICS)
    if cfg.devices is not None:
        _positive_int("devices", cfg.devices)
    return cfg


_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}")


def build_parser() -> argparse.ArgumentParser:
    """The ``gantk.run`` argument parser (every option defaults to None = preset/default)."""
    from gantk.data import NAMES as DATA_NAMES

    p = _Parser(
        prog="python -m gantk.run",
        description="Flow particles along the gradient field of an NTK discriminator "
        "(GAN(TK)², Franceschi et al. ICML 2022) and write metrics, figures and a GIF.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = _DEFAULTS
    g = p.add_argument_group("problem")
    g.add_argument("--loss", choices=LOSSES, help=f"GAN loss (default {d.loss})")
    g.add_argument("--kernel", choices=KERNEL_NAMES,
                   help=f"discriminator architecture / kernel (default {d.kernel}); rbf is the "
                   "NNGP of GAN(TK)²'s rbf network")
    g.add_argument("--depth", type=int, help="number of hidden layers (default: the kernel's)")
    g.add_argument("--w-std", type=float, dest="w_std", help="weight std W_std (default 1)")
    g.add_argument("--b-std", type=float, dest="b_std", help="hidden bias std b_std")
    g.add_argument("--data", help=f"dataset: {', '.join(DATA_NAMES)}, image:PATH, "
                   f"image:P1,P2 or points:FILE.npz (arrays fake, real) "
                   f"(default {d.data})")
    g.add_argument("--preset", help="a GAN(TK)² config <loss>-<arch>-<data>, e.g. "
                   "inf_lsgan-relu-eight_gaussians; explicit options override it")
    s = p.add_argument_group("size and schedule")
    s.add_argument("--n-particles", type=int, dest="n_particles",
                   help=f"number of fake particles (default {d.n_particles})")
    s.add_argument("--n-real", type=int, dest="n_real", help="number of real points "
                   "(default: same as --n-particles)")
    s.add_argument("--steps", type=int, help=f"generator steps (default {d.steps})")
    s.add_argument("--eta", type=float, help="GAN(TK)² step on the mean generator loss; the "
                   f"per-particle step is eta/n (default {d.eta})")
    s.add_argument("--time", type=float, help="discriminator integration time tau (inf "
                   f"allowed for lsgan) (default {d.time})")
    f = p.add_argument_group("finite width and generators")
    f.add_argument("--width", help="'inf' (infinite-width NTK, default) or a finite width")
    f.add_argument("--discr-lr", type=float, dest="discr_lr",
                   help=f"finite discriminator SGD learning rate (default {d.discr_lr})")
    f.add_argument("--reset", action="store_const", const=True,
                   help="re-initialize the finite discriminator at every generator step")
    f.add_argument("--no-antisymmetric", action="store_const", const=False,
                   dest="antisymmetric", help="disable the antisymmetric wrapper (f_0 = 0)")
    f.add_argument("--single-step", action="store_const", const=True, dest="single_step",
                   help="GAN(TK)²'s single-step mode: one SGD step per generator step")
    f.add_argument("--generator", choices=("none", "mlp"),
                   help="train a parametric MLP generator instead of free particles")
    f.add_argument("--gen-lr", type=float, dest="gen_lr", help="generator Adam learning rate")
    f.add_argument("--latent-dim", type=int, dest="latent_dim", help="generator latent size")
    o = p.add_argument_group("output and control")
    o.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    o.add_argument("--out", default="runs", help="output folder (default runs)")
    o.add_argument("--name", help="run folder name (default derived from the options)")
    o.add_argument("--log-every", type=int, dest="log_every",
                   help=f"steps between metrics/snapshots (default {d.log_every})")
    o.add_argument("--plot-every", type=int, dest="plot_every",
                   help="steps between step figures (default steps/4)")
    o.add_argument("--metrics", help=f"comma-separated subset of {','.join(METRICS)}")
    o.add_argument("--sinkhorn-every", type=int, dest="sinkhorn_every",
                   help="steps between (costly, converged) Sinkhorn evaluations "
                   "(default: as --plot-every)")
    o.add_argument("--sinkhorn-blur", type=float, dest="sinkhorn_blur",
                   help=f"Sinkhorn blur (eps = blur^2) (default {d.sinkhorn_blur})")
    o.add_argument("--x64", action="store_const", const=True, help="compute in float64")
    o.add_argument("--devices", type=int, help="shard particles over this many devices "
                   "(default: all local devices)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    o.add_argument("--resume", metavar="DIR", help="continue an interrupted run from DIR")
    o.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    o.add_argument("--no-figures", action="store_true", help="skip figures and the GIF")
    return p


# --------------------------------------------------------------------------- the run
class _Run:
    """Everything one run needs; built after validation so that nothing is written early."""

    def __init__(self, cfg: RunConfig, out_dir: pathlib.Path, *, figures: bool,
                 progress: bool) -> None:
        import jax
        import jax.numpy as jnp

        from gantk import data as gdata
        from gantk.architectures import get_spec

        self.cfg, self.dir, self.figures, self.progress = cfg, out_dir, figures, progress
        self.dtype = jnp.float64 if cfg.x64 else jnp.float32
        n_real = cfg.n_real if cfg.n_real is not None else cfg.n_particles
        if cfg.data in ("modes_1d", "modes_1d_overlap", "two_couples_2d"):
            fake, real = gdata.load(cfg.data, seed=cfg.seed, dtype=self.dtype)
        elif cfg.data == "digits":
            fake, real = gdata.load(cfg.data, n_fake=cfg.n_particles,
                                    n_real=min(n_real, 1797), seed=cfg.seed, dtype=self.dtype)
        else:
            fake, real = gdata.load(cfg.data, n_fake=cfg.n_particles, n_real=n_real,
                                    seed=cfg.seed, dtype=self.dtype)
        self.fake0, self.real = fake, real
        self.n, self.d = fake.shape
        width = 512 if cfg.width == "inf" else int(cfg.width)
        self.spec = get_spec(cfg.kernel, depth=cfg.depth, W_std=cfg.w_std, b_std=cfg.b_std,
                             width=width)
        self.kernel = self.spec.k()
        self.step_size = cfg.eta / self.n
        self.devices = _select_devices(cfg.devices)
        self.key = jax.random.key(cfg.seed)
        self.rows: list[dict[str, Any]] = []
        self.frames: list[Any] = []
        self.limits = None
        self.t_start = _time.perf_counter()
        self.elapsed_before = 0.0
        self._metric_fns: dict[str, Any] = {}
        self._disc_fn = None

    # ----- step function and state
    def build(self) -> tuple[Any, Any]:
        import jax
        import jax.numpy as jnp

        from gantk import flows

        cfg = self.cfg
        if cfg.generator == "mlp":
            return self._build_generator()
        if cfg.width == "inf":
            mesh = None
            if len(self.devices) > 1:
                from gantk.sharding import particle_mesh

                mesh = particle_mesh(self.devices)
            step = flows.infinite_width_step(cfg.loss, self.kernel, cfg.time, self.step_size,
                                             mesh=mesh)
            disc_params = None
        else:
            from gantk import nets

            step = flows.finite_width_step(
                cfg.loss, self.spec, cfg.time, self.step_size, cfg.discr_lr, reset=cfg.reset,
                antisymmetric=cfg.antisymmetric, single_step=cfg.single_step,
            )
            disc_params = nets.init_discriminator(
                jax.random.fold_in(self.key, 1), self.spec, self.d,
                antisymmetric=cfg.antisymmetric,
            )
        state = flows.FlowState(
            fake=self.fake0,
            step=jnp.asarray(0, jnp.int32),
            diverged_at=jnp.asarray(-1, jnp.int32),
            key=jax.random.fold_in(self.key, 2),
            disc_params=disc_params,
        )
        return step, state

    def _build_generator(self) -> tuple[Any, Any]:
        import jax
        import jax.numpy as jnp
        import optax

        from gantk import flows, nets
        from gantk.discriminator import discriminator

        cfg = self.cfg
        latent = cfg.latent_dim or (2 if self.d <= 2 else 16)
        self.latent_dim = latent
        gen = nets.MLPGenerator(latent_dim=latent, out_dim=self.d,
                                tanh_output=(cfg.data == "digits"))
        gparams = gen.init(jax.random.fold_in(self.key, 3), jnp.zeros((1, latent), self.dtype))
        self.gen_apply = gen.apply
        self.z_eval = jax.random.normal(jax.random.fold_in(self.key, 4), (self.n, latent),
                                        self.dtype)
        nets.check_generator_output(gen.apply, gparams, self.z_eval, self.d)
        if cfg.width == "inf":
            def fit(fake, real, params, key):
                return discriminator(cfg.loss, self.kernel, fake, real, cfg.time)
            disc_params = None
        else:
            def fit(fake, real, params, key):
                if cfg.reset:
                    params = nets.init_discriminator(key, self.spec, self.d,
                                                     antisymmetric=cfg.antisymmetric)
                return nets.fit_finite_discriminator(
                    cfg.loss, self.spec, params, fake, real,
                    cfg.discr_lr if cfg.single_step else cfg.time, cfg.discr_lr,
                    antisymmetric=cfg.antisymmetric)
            disc_params = nets.init_discriminator(jax.random.fold_in(self.key, 1), self.spec,
                                                  self.d, antisymmetric=cfg.antisymmetric)
        opt = optax.adam(cfg.gen_lr)
        step = flows.generator_step(cfg.loss, fit, gen.apply, opt, self.n, latent)
        state = flows.GeneratorState(
            params=gparams, opt_state=opt.init(gparams), step=jnp.asarray(0, jnp.int32),
            diverged_at=jnp.asarray(-1, jnp.int32), key=jax.random.fold_in(self.key, 2),
            disc_params=disc_params,
        )
        return step, state

    def particles(self, state: Any) -> Any:
        """Fake points of a state (generator samples at fixed latents in generator mode)."""
        if self.cfg.generator == "mlp":
            return self.gen_apply(state.params, self.z_eval)
        return state.fake

    @property
    def plot_every(self) -> int:
        """Steps between step figures (and, by default, Sinkhorn evaluations)."""
        cfg = self.cfg
        return cfg.plot_every or max(cfg.log_every, cfg.steps // 4)

    # ----- metrics
    def metrics(self, fake: Any, step: int) -> dict[str, float]:
        import numpy as np

        from gantk import metrics as gm

        out: dict[str, float] = {}
        x, y = fake, self.real
        if not bool(np.all(np.isfinite(np.asarray(x)))):
            return {m: float("nan") for m in self.cfg.metrics}
        every = self.cfg.sinkhorn_every or self.plot_every
        for m in self.cfg.metrics:
            if m == "sinkhorn":
                if step % every != 0 and step != self.cfg.steps:
                    continue
                out[m] = float(gm.sinkhorn(x, y, blur=self.cfg.sinkhorn_blur))
            elif m == "energy":
                out[m] = float(gm.energy(x, y))
            elif m == "mmd":
                out[m] = float(gm.mmd(x, y, self.kernel))
            elif m == "nn_distance":
                out[m] = float(gm.mean_nn_distance(x, y))
        return out

    def log(self, state: Any, step: int, gen_loss: float) -> None:
        import numpy as np

        from gantk import _io

        fake = self.particles(state)
        row = {"step": step, **self.metrics(fake, step), "generator_loss": gen_loss,
               "wall_time": round(self.elapsed_before + _time.perf_counter() - self.t_start, 3)}
        self.rows = [r for r in self.rows if r["step"] < step] + [row]
        _io.write_csv(self.dir / "metrics.csv", self.rows, CSV_FIELDS)
        _io.write_npz(self.dir / f"particles_{step}.npz", fake=np.asarray(fake),
                      real=np.asarray(self.real), step=step)
        if self.figures:
            self.figure(fake, step)

    def figure(self, fake: Any, step: int, force: bool = False) -> None:
        import numpy as np

        from gantk import plot

        cfg = self.cfg
        fake_np = np.asarray(fake)
        if self.limits is None and self.d == 2:
            self.limits = plot.auto_limits(fake_np, np.asarray(self.real))
        self.frames.append(plot.render_frame(fake_np, np.asarray(self.real), step=step,
                                             limits=self.limits))
        if not force and step % self.plot_every != 0 and step != cfg.steps:
            return
        values_fn = velocity_fn = None
        if self.d <= 2 and cfg.width == "inf":
            values, velocity = self._disc_fns()
            dt = fake_np.dtype

            def values_fn(grid: Any) -> Any:
                return np.asarray(values(fake, self.real, grid.astype(dt)))

            def velocity_fn(grid: Any) -> Any:
                return np.asarray(velocity(fake, self.real, grid.astype(dt)))

        sub = f"{cfg.loss} / {cfg.kernel}" + ("" if cfg.width == "inf" else f" / width {cfg.width}")
        plot.save_step_figure(self.dir / "figures" / f"step_{step}.png", fake_np,
                              np.asarray(self.real), step=step, values_fn=values_fn,
                              velocity_fn=velocity_fn, limits=self.limits, subtitle=sub)

    def _disc_fns(self) -> tuple[Any, Any]:
        """Jitted ``f_tau(points)`` and ``velocity(points)`` of the fitted discriminator."""
        if self._disc_fn is None:
            import jax

            from gantk.discriminator import discriminator

            cfg, kernel = self.cfg, self.kernel

            def fit(fk: Any, real: Any) -> Any:
                return discriminator(cfg.loss, kernel, fk, real, cfg.time)

            self._disc_fn = (
                jax.jit(lambda fk, real, pts: fit(fk, real)(pts)),
                jax.jit(lambda fk, real, pts: fit(fk, real).velocity(pts)),
            )
        return self._disc_fn

    # ----- checkpoints
    def checkpoint(self, state: Any, step: int, gen_loss_hist: Any) -> None:
        import jax
        import numpy as np

        from gantk import _io

        leaves = jax.tree_util.tree_leaves(
            jax.tree_util.tree_map(
                lambda a: jax.random.key_data(a) if jnp_is_key(a) else a, state
            )
        )
        _io.write_npz(
            self.dir / "checkpoint.npz",
            step=step,
            n_leaves=len(leaves),
            gen_loss=np.asarray(gen_loss_hist),
            elapsed=self.elapsed_before + _time.perf_counter() - self.t_start,
            **{f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)},
        )

    def restore(self, state: Any) -> tuple[Any, int, Any]:
        import jax
        import numpy as np

        ck = np.load(self.dir / "checkpoint.npz")
        n = int(ck["n_leaves"])
        template_leaves, treedef = jax.tree_util.tree_flatten(state)
        if n != len(template_leaves):
            raise UsageError(f"argument --resume: checkpoint in {self.dir} does not match the "
                             "configuration (different state structure)")
        leaves = []
        for i, t in enumerate(template_leaves):
            arr = ck[f"leaf_{i}"]
            if jnp_is_key(t):
                leaves.append(jax.random.wrap_key_data(jax.numpy.asarray(arr)))
            else:
                leaves.append(jax.numpy.asarray(arr, dtype=t.dtype))
        self.elapsed_before = float(ck["elapsed"])
        return jax.tree_util.tree_unflatten(treedef, leaves), int(ck["step"]), ck["gen_loss"]


def jnp_is_key(a: Any) -> bool:
    """True for a typed JAX PRNG key array."""
    import jax

    return hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def _select_devices(requested: int | None) -> list[Any]:
    import jax

    devs = jax.local_devices()
    if requested is None:
        return devs
    if requested > len(devs):
        raise UsageError(f"argument --devices: requested {requested} devices but only "
                         f"{len(devs)} are available ({devs[0].platform})")
    return devs[:requested]


def _print_table(rows: list[dict[str, Any]], stream: Any = None) -> None:
    stream = sys.stdout if stream is None else stream
    cols = [c for c in CSV_FIELDS if any(c in r and r[c] is not None for r in rows)]
    print("  ".join(f"{c:>14}" for c in cols), file=stream)
    shown = rows if len(rows) <= 12 else rows[:3] + [None] + rows[-8:]
    for r in shown:
        if r is None:
            print("  ".join(f"{'...':>14}" for _ in cols), file=stream)
            continue
        cells = []
        for c in cols:
            v = r.get(c)
            if v is None:
                cells.append(f"{'-':>14}")
            else:
                cells.append(f"{v:>14d}" if isinstance(v, int) else f"{float(v):>14.6g}")
        print("  ".join(cells), file=stream)


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out_root = pathlib.Path(args.out)
    if args.resume:
        run_dir = pathlib.Path(args.resume)
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file() or not (run_dir / "checkpoint.npz").is_file():
            raise UsageError(f"argument --resume: {run_dir} has no config.json and "
                             "checkpoint.npz to resume from")
        saved = json.loads(cfg_path.read_text())
        saved["metrics"] = tuple(saved.get("metrics", METRICS))
        overrides = {k: v for k, v in vars(args).items()
                     if k in _FIELDS and v is not None and k not in ("steps",)}
        if overrides:
            raise UsageError(f"argument --resume: only --steps may change on resume; got "
                             f"--{sorted(overrides)[0].replace('_', '-')}")
        cfg = RunConfig(**{k: v for k, v in saved.items() if k in _FIELDS})
        if args.steps is not None:
            cfg.steps = _positive_int("steps", args.steps)
    else:
        cfg = resolve_config(args)
        run_dir = out_root / cfg.run_name
        if run_dir.exists() and not args.overwrite:
            raise UsageError(f"run folder {run_dir} already exists (use --overwrite to replace "
                             "it, --resume to continue it, or --name for another folder)")

    import jax

    if cfg.x64:
        jax.config.update("jax_enable_x64", True)
    try:
        run = _Run(cfg, run_dir, figures=not args.no_figures, progress=not args.no_progress)
        step_fn, state = run.build()
    except ValueError as err:  # bad data path, bad architecture, ...
        raise UsageError(str(err).splitlines()[0]) from None

    # Validation passed: from here on, files are written.
    from gantk import _io, flows

    start, gen_hist = 0, []
    if args.resume:
        state, start, gen_hist = run.restore(state)
        prev = run_dir / "metrics.csv"
        if prev.is_file():
            import csv

            with open(prev, newline="") as fh:
                for r in csv.DictReader(fh):
                    if int(r["step"]) <= start:
                        run.rows.append({k: (int(v) if k == "step" else float(v))
                                         for k, v in r.items() if v not in ("", None)})
        gen_hist = list(gen_hist)
        if start >= cfg.steps:
            print(f"gantk.run: {run_dir} already has {start} >= {cfg.steps} steps; nothing to do")
            return 0
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        (run_dir / "figures").mkdir(parents=True)
        _io.write_json(run_dir / "config.json", dataclasses.asdict(cfg))
        run.log(state, 0, float("nan"))
        run.checkpoint(state, 0, [])

    print(f"gantk.run: {cfg.run_name}: {cfg.loss} loss, {cfg.kernel} "
          f"{'NTK' if run.spec.kernel == 'ntk' else 'NNGP'}"
          f"{'' if cfg.width == 'inf' else f' (width {cfg.width})'}, {cfg.data} "
          f"({run.n}+{run.real.shape[0]} points, d={run.d}), {cfg.steps} steps, "
          f"eta={cfg.eta:g} (step {run.step_size:g}/particle), tau={cfg.time:g}, "
          f"{len(run.devices)} {run.devices[0].platform} device(s) -> {run_dir}", flush=True)

    gen_hist = [float(v) for v in gen_hist]

    def on_chunk(st: Any, done: int, chunk_losses: Any) -> bool:
        gen_hist.extend(float(v) for v in chunk_losses)
        run.log(st, start + done, gen_hist[-1])
        run.checkpoint(st, start + done, gen_hist)
        return False

    result = flows.run_chunked(
        step_fn, state, run.real, cfg.steps - start, chunk_size=cfg.log_every,
        on_chunk=on_chunk, progress=run.progress, desc=cfg.run_name,
    )
    gen_all = gen_hist
    final_step = start + result.steps_done
    status = {"None": "completed"}.get(str(result.stopped), result.stopped)

    if result.stopped == "diverged":
        bad = int(result.state.diverged_at)
        run.log(result.state, final_step, float("nan"))
        run.checkpoint(result.state, final_step, gen_all)
    if result.stopped == "interrupted":
        run.checkpoint(result.state, final_step, gen_all)

    if run.figures and run.rows:
        from gantk import plot

        plot.plot_metrics(run_dir / "figures" / "metrics.png", run.rows,
                          keys=[m for m in cfg.metrics if m != "nn_distance"] or cfg.metrics,
                          gen_loss=gen_all, title=cfg.run_name)
        if run.frames:
            plot.save_gif(run_dir / "flow.gif", run.frames, fps=6)
        last_fig = run_dir / "figures" / f"step_{final_step}.png"
        if not last_fig.exists() and result.stopped is None:
            run.figure(run.particles(result.state), final_step, force=True)

    final = run.rows[-1] if run.rows else {}
    summary = {
        "status": status,
        "steps_done": final_step,
        "steps_requested": cfg.steps,
        "final": final,
        "initial": run.rows[0] if run.rows else {},
        "ms_per_step": None if math.isnan(result.step_time) else 1e3 * result.step_time,
        "wall_time_s": round(run.elapsed_before + _time.perf_counter() - run.t_start, 3),
        "device": f"{len(run.devices)}x {run.devices[0].device_kind}",
        "jax_version": jax.__version__,
    }
    if result.stopped == "diverged":
        summary["diverged_at_step"] = bad
    _io.write_json(run_dir / "summary.json", summary)

    print()
    _print_table(run.rows)
    ms = summary["ms_per_step"]
    print(f"\n{status}: {final_step}/{cfg.steps} steps in {summary['wall_time_s']:.1f} s"
          + (f" ({ms:.2f} ms/step jit-warm)" if ms else "") + f"; outputs in {run_dir}")
    if result.stopped == "diverged":
        print(f"gantk.run: run diverged: non-finite particles at step {bad + 1}; the last finite "
              f"state (step {final_step}) is saved in {run_dir}", file=sys.stderr)
        return 1
    if result.stopped == "interrupted":
        print(f"gantk.run: interrupted at step {final_step}; checkpoint written. Continue with "
              f"python -m gantk.run --resume {run_dir}", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gantk.run``; returns the exit status (see module doc)."""
    try:
        return _run(argv)
    except UsageError as err:
        print(f"gantk.run: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
