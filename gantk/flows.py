"""Particle flows and generator training driven by a (kernel) discriminator.

A GAN generator step moves each fake particle along the gradient field of the trained
discriminator (Franceschi et al., ICML 2022, Sec. 3):

.. math::  x \\leftarrow x + h\\, v(x), \\qquad v(x) = -\\nabla_x c(f_\\tau(x)),

where :math:`f_\\tau` is the discriminator trained for integration time :math:`\\tau` on the
current fake particles and the real points. For the IPM loss this is the MMD gradient flow
with kernel ``k``.

**One step for every discriminator.** A *fit* (:class:`AbstractFit`) turns
``(fake, real, carry, key)`` into a trained :class:`~gantk.solution.AbstractDiscriminator`:
:class:`InfiniteWidthFit` (any solver of :mod:`gantk.solvers`) or :class:`FiniteWidthFit`
(a flax network trained by SGD). :func:`flow_step` builds the one particle-flow step from
any fit; the step returns the fitted discriminator with the generator loss
(:class:`StepOutput`), so figures never fit it again. :func:`infinite_width_step` and
:func:`finite_width_step` are thin wrappers kept for existing callers.

**Step convention.** ``step_size`` ``h`` is the per-particle step. GAN(TK)²'s ``eta`` is the
step on the *mean* generator loss, so ``h = eta / n`` (:func:`step_size_from_eta`); the
default main job (``eta = 1000``, ``n = 500``) moves particles with ``h = 2``.

**Execution.** The whole step — discriminator fit included — is one jitted function. Many
steps run on device inside a :func:`jax.lax.scan` chunk; between chunks the host updates a
tqdm progress bar, evaluates metrics, writes checkpoints and may stop the run
(:func:`run_chunked`). Runs are deterministic for a given initial state.

**Divergence.** If a step would produce non-finite particles, the state is frozen at the
last finite value and :attr:`FlowState.diverged_at` records the step; :func:`run_chunked`
stops after that chunk.
"""

from __future__ import annotations

import abc
import functools
import math
import time as _time
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray
from tqdm.auto import tqdm

from gantk import nets
from gantk._validate import (
    as_points,
    check_int,
    check_nonneg,
    check_positive,
    check_positive_int,
)
from gantk.architectures import MLPSpec, kernel_from_name
from gantk.discriminator import discriminator
from gantk.sharding import sharded_value_and_velocity
from gantk.solution import AbstractDiscriminator

__all__ = [
    "AbstractFit",
    "ChunkResult",
    "FiniteWidthFit",
    "FlowState",
    "FlowStep",
    "GeneratorState",
    "InfiniteWidthFit",
    "StepOutput",
    "finite_width_step",
    "flow_step",
    "generator_step",
    "infinite_width_step",
    "particle_flow",
    "run_chunked",
    "step_size_from_eta",
    "train_generator",
]

class FlowState(NamedTuple):
    """State of a particle flow, a pytree carried through ``lax.scan``.

    Attributes:
        fake: fake particles, shape ``(n, d)``.
        step: number of generator steps taken so far (int32 scalar).
        diverged_at: ``-1`` while all particles are finite; otherwise the step index at
            which a non-finite update was refused (``fake`` then holds the last finite
            state).
        key: PRNG key (used by finite-width discriminators that are re-initialized).
        disc_params: parameters of a finite-width discriminator carried between steps,
            or ``None`` for the infinite-width flow.
    """

    fake: Float[Array, "n d"]
    step: Array
    diverged_at: Array
    key: PRNGKeyArray
    disc_params: Any = None


class GeneratorState(NamedTuple):
    """State of parametric-generator training, a pytree carried through ``lax.scan``.

    Attributes:
        params: generator parameters (flax pytree).
        opt_state: optax optimizer state of the generator.
        step: number of generator updates taken so far.
        diverged_at: ``-1``, or the step at which a non-finite update was refused.
        key: PRNG key from which latent batches are drawn.
        disc_params: finite-width discriminator parameters, or ``None``.
    """

    params: Any
    opt_state: Any
    step: Array
    diverged_at: Array
    key: PRNGKeyArray
    disc_params: Any = None


class ChunkResult(NamedTuple):
    """What :func:`run_chunked` returns.

    Attributes:
        state: the final state (a :class:`FlowState` or :class:`GeneratorState`).
        steps_done: number of steps actually run.
        wall_time: seconds spent in :func:`run_chunked`, compilation included.
        step_time: seconds per step, measured on chunks after the first (jit-warm);
            ``nan`` when only one chunk ran.
        stopped: ``None``, ``'diverged'``, ``'callback'`` or ``'interrupted'``.
        gen_loss: per-step mean generator loss recorded inside the scan, shape
            ``(steps_done,)``.
        discriminator: for steps that return a :class:`StepOutput`, the discriminator
            fitted at the last step run (on the particles it then moved, ``D.fake``);
            else None.
    """

    state: Any
    steps_done: int
    wall_time: float
    step_time: float
    stopped: str | None
    gen_loss: Array
    discriminator: Any = None


class StepOutput(NamedTuple):
    """What a :class:`FlowStep` returns next to the new state.

    Attributes:
        gen_loss: mean generator loss ``mean_i c(f(x_i))`` at the step's input particles
            (scalar); in :func:`run_chunked`'s ``on_chunk`` the chunk's per-step values.
        discriminator: the discriminator fitted at the step, on the input particles
            (an :class:`~gantk.solution.AbstractDiscriminator`).
    """

    gen_loss: Array
    discriminator: Any


def step_size_from_eta(eta: float, n_particles: int) -> float:
    """Per-particle step ``h`` equivalent to GAN(TK)²'s learning rate ``eta``.

    GAN(TK)² descends the *mean* generator loss ``(1/n) Σ_i c(f(x_i))`` with step ``eta``,
    so each particle moves by ``eta / n`` times its own gradient.

    Raises:
        ValueError: if ``eta`` is negative or ``n_particles`` is not a positive integer.
    """
    check_nonneg(eta, "eta")
    check_positive_int(n_particles, "n_particles")
    return float(eta) / n_particles


def _guard(new: Any, old: Any, step: Array, diverged_at: Array) -> tuple[Any, Array]:
    """Keep ``old`` (and record ``step``) if ``new`` has a non-finite leaf."""
    leaves = jax.tree_util.tree_leaves(new)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
    ok = finite & (diverged_at < 0)
    out = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
    diverged_at = jnp.where((diverged_at < 0) & ~finite, step, diverged_at)
    return out, diverged_at


class AbstractFit(eqx.Module):
    """How a flow trains its discriminator: ``fit(fake, real, carry, key) -> D``.

    ``carry`` is what the previous fit left in ``D.carry`` (finite width: the network
    parameters; infinite width: None) and ``key`` a fresh PRNG key. Implementations:
    :class:`InfiniteWidthFit`, :class:`FiniteWidthFit`; any callable with this signature
    returning an :class:`~gantk.solution.AbstractDiscriminator` works in
    :func:`generator_step` too.
    """

    @abc.abstractmethod
    def __call__(
        self, fake: Float[Array, "n d"], real: Float[Array, "m d"], carry: Any, key: Array
    ) -> AbstractDiscriminator:
        """Train the discriminator on ``fake`` (n, d) vs ``real`` (m, d)."""

    def init(self, key: Array, dim: int) -> Any:
        """The initial ``carry`` for input dimension ``dim`` (None unless overridden)."""
        return None


class InfiniteWidthFit(AbstractFit):
    """The infinite-width (NTK-regime) discriminator of :func:`gantk.discriminator`.

    Attributes:
        loss: a loss name or :class:`gantk.losses.Loss`.
        kernel: ``k(x1, x2) -> (n1, n2)``, e.g. ``MLPSpec().kernel()``.
        time: training time ``tau`` (``inf`` allowed for quadratic losses).
        options: keyword arguments of :func:`gantk.discriminator` (``solver``,
            solver options, ``block_size``...), as a tuple of ``(name, value)`` pairs.
    """

    loss: Any = eqx.field(static=True)
    kernel: Callable = eqx.field(static=True)
    time: float
    options: tuple[tuple[str, Any], ...] = eqx.field(static=True, default=())

    def __call__(
        self, fake: Float[Array, "n d"], real: Float[Array, "m d"], carry: Any, key: Array
    ) -> AbstractDiscriminator:
        """``discriminator(loss, kernel, fake, real, time, **options)``; ignores carry, key."""
        return discriminator(self.loss, self.kernel, fake, real, self.time, **dict(self.options))


class FiniteWidthFit(AbstractFit):
    """A finite-width flax discriminator trained by SGD (``nets.fit_finite_discriminator``).

    Each fit trains for ``round(time / lr)`` SGD steps (one step with ``single_step``,
    GAN(TK)²'s mode with a persistent discriminator), starting from ``carry`` (the previous
    parameters) or, with ``reset``, from a fresh initialization drawn from ``key``.

    Attributes:
        loss: a loss name or :class:`gantk.losses.Loss`.
        spec: the :class:`gantk.architectures.MLPSpec` (its ``width`` is the finite width).
        time: training time ``tau > 0`` (SGD steps × ``lr``).
        lr: SGD learning rate ``> 0``.
        reset: re-initialize at every fit.
        antisymmetric: use the antisymmetric wrapper so that ``f_0 = 0``.
        single_step: one SGD step per fit.

    Raises:
        ValueError: if ``lr`` or ``time`` is not positive or ``spec`` is not an MLPSpec.
    """

    loss: Any = eqx.field(static=True)
    spec: MLPSpec = eqx.field(static=True)
    time: float = eqx.field(static=True)
    lr: float = eqx.field(static=True)
    reset: bool = eqx.field(static=True, default=False)
    antisymmetric: bool = eqx.field(static=True, default=True)
    single_step: bool = eqx.field(static=True, default=False)

    def __check_init__(self) -> None:
        if not isinstance(self.spec, MLPSpec):
            raise ValueError(f"`spec` must be an MLPSpec; got {type(self.spec).__name__}.")
        check_positive(self.lr, "lr")
        check_positive(self.time, "time")

    def init(self, key: Array, dim: int) -> Any:
        """Fresh parameters (:func:`gantk.nets.init_discriminator`) for inputs of ``dim``."""
        return nets.init_discriminator(key, self.spec, dim, antisymmetric=self.antisymmetric)

    def __call__(
        self, fake: Float[Array, "n d"], real: Float[Array, "m d"], carry: Any, key: Array
    ) -> AbstractDiscriminator:
        """Train from ``carry`` (or a fresh init with ``reset``) on ``fake`` vs ``real``."""
        params = self.init(key, fake.shape[-1]) if self.reset else carry
        return nets.fit_finite_discriminator(
            self.loss, self.spec, params, fake, real,
            self.lr if self.single_step else self.time, self.lr,
            antisymmetric=self.antisymmetric,
        )  # fmt: skip


class FlowStep(eqx.Module):
    """One particle-flow step: fit the discriminator, move ``fake += h v(fake)``.

    ``step(state, real) -> (state, StepOutput)``: fits ``D = fit(state.fake, real,
    state.disc_params, key)``, computes ``(c(f(x)), v(x))`` at the particles (split over
    ``mesh``'s devices when it has several), moves them by ``step_size * v`` unless that
    gives a non-finite value (then the state is frozen and ``diverged_at`` set), and
    carries ``D.carry`` to the next step.

    Attributes:
        fit: an :class:`AbstractFit`.
        step_size: per-particle step ``h >= 0`` (see :func:`step_size_from_eta`).
        mesh: optional 1-D device mesh (:func:`gantk.sharding.particle_mesh`).

    Raises:
        ValueError: if ``step_size`` is negative.
    """

    fit: AbstractFit
    step_size: float
    mesh: Any = eqx.field(static=True, default=None)

    def __check_init__(self) -> None:
        check_nonneg(self.step_size, "step_size")

    def __call__(self, state: FlowState, real: Float[Array, "m d"]) -> tuple[FlowState, StepOutput]:
        """Advance ``state`` by one generator step against ``real`` (m, d)."""
        key, sub = jax.random.split(state.key)
        D = self.fit(state.fake, real, state.disc_params, sub)
        gen_loss, velocity = sharded_value_and_velocity(D, state.fake, self.mesh)
        new = state.fake + self.step_size * velocity
        fake, diverged_at = _guard(new, state.fake, state.step, state.diverged_at)
        new_state = state._replace(
            fake=fake, step=state.step + 1, diverged_at=diverged_at, key=key,
            disc_params=D.carry,
        )  # fmt: skip
        return new_state, StepOutput(jnp.mean(gen_loss), D)


def flow_step(fit: AbstractFit, step_size: float, *, mesh: Any = None) -> FlowStep:
    """Build the particle-flow step for any discriminator fit (see :class:`FlowStep`).

    Args:
        fit: :class:`InfiniteWidthFit`, :class:`FiniteWidthFit` or another
            :class:`AbstractFit`.
        step_size: per-particle step ``h >= 0``.
        mesh: optional 1-D device mesh; the velocity is then computed with the particles
            split over its devices.

    Returns:
        ``step(state, real) -> (state, StepOutput)``, pure and jittable.

    Raises:
        ValueError: if ``step_size`` is negative.
    """
    return FlowStep(fit, step_size, mesh)


def _loss_only(step: FlowStep) -> Callable[[FlowState, Array], tuple[FlowState, Array]]:
    def scalar_step(state: FlowState, real: Array) -> tuple[FlowState, Array]:
        new_state, out = step(state, real)
        return new_state, out.gen_loss

    return scalar_step


def infinite_width_step(
    loss: Any,
    kernel: Callable[[Array, Array], Array],
    time: float,
    step_size: float,
    *,
    mesh: Any = None,
    **discriminator_kwargs: Any,
) -> Callable[[FlowState, Array], tuple[FlowState, Array]]:
    """One particle-flow step with the infinite-width discriminator (``(state, loss)`` form).

    ``flow_step(InfiniteWidthFit(loss, kernel, time, options), step_size, mesh=mesh)``
    with the step returning ``(state, mean_generator_loss)`` only.

    Args:
        loss: a loss name or :class:`gantk.losses.Loss`.
        kernel: ``k(x1, x2) -> (n1, n2)``, e.g. ``gantk.stax.ntk(kernel_fn)``.
        time: integration time τ of the discriminator (``inf`` allowed for LSGAN).
        step_size: per-particle step ``h`` (see :func:`step_size_from_eta`).
        mesh: optional 1-D device mesh (:func:`gantk.sharding.particle_mesh`).
        **discriminator_kwargs: forwarded to :func:`gantk.discriminator`.

    Raises:
        ValueError: if ``step_size`` is negative.
    """
    fit = InfiniteWidthFit(loss, kernel, time, tuple(discriminator_kwargs.items()))
    return _loss_only(flow_step(fit, step_size, mesh=mesh))


def finite_width_step(
    loss: Any,
    spec: Any,
    time: float,
    step_size: float,
    lr: float,
    *,
    reset: bool = False,
    antisymmetric: bool = True,
    single_step: bool = False,
) -> Callable[[FlowState, Array], tuple[FlowState, Array]]:
    """One particle-flow step with a finite-width flax discriminator (``(state, loss)`` form).

    ``flow_step(FiniteWidthFit(...), step_size)`` with the step returning
    ``(state, mean_generator_loss)`` only; see :class:`FiniteWidthFit` for the arguments.

    Raises:
        ValueError: if ``lr`` or ``time`` is not positive or ``step_size`` is negative.
    """
    fit = FiniteWidthFit(loss, spec, time, lr, reset, antisymmetric, single_step)
    return _loss_only(flow_step(fit, step_size))


def run_chunked(
    step_fn: Callable[[Any, Any], tuple[Any, Array]],
    state: Any,
    args: Any,
    n_steps: int,
    *,
    chunk_size: int = 100,
    on_chunk: Callable[[Any, int, Array], bool | None] | None = None,
    progress: bool = True,
    desc: str = "flow",
) -> ChunkResult:
    """Run ``n_steps`` of ``state, out = step_fn(state, args)`` in jitted ``lax.scan`` chunks.

    Steps run on device, ``chunk_size`` at a time; between chunks the host advances a tqdm
    bar and calls ``on_chunk(state, steps_done, chunk_out)`` (for metrics, checkpoints and
    figures). ``chunk_out`` is the chunk's per-step mean generator losses, shape
    ``(length,)``; for a step returning :class:`StepOutput` (:func:`flow_step`) it is a
    ``StepOutput(gen_loss (length,), discriminator)`` whose discriminator is the one fitted
    at the chunk's last step (only that one is kept on device). The chunk boundaries are
    the same whatever happens in the callback, so a run resumed from a chunk-boundary
    checkpoint reproduces the uninterrupted trajectory bit for bit.

    Args:
        step_fn: pure step function ``(state, args) -> (state, out)`` with ``out`` a
            scalar loss or a :class:`StepOutput`; the state must have an int
            ``diverged_at`` field (``-1`` while healthy).
        state: initial state pytree.
        args: constant arguments of the step (e.g. the real points), traced once.
        n_steps: number of steps (>= 0).
        chunk_size: steps per ``lax.scan`` chunk (>= 1).
        on_chunk: optional callback; returning ``True`` stops the run.
        progress: show a tqdm progress bar.
        desc: progress-bar label.

    Returns:
        A :class:`ChunkResult`. ``KeyboardInterrupt`` raised between or during chunks stops
        the run at the last completed chunk, with ``stopped='interrupted'``.

    Raises:
        ValueError: if ``n_steps`` is negative or ``chunk_size`` < 1.
    """
    n_steps = check_int(n_steps, "n_steps")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    run = jax.jit(functools.partial(_scan_chunk, step_fn), static_argnums=2)
    t0 = _time.perf_counter()
    done, stopped, losses, last = 0, None, [], None
    warm_time, warm_steps = 0.0, 0
    bar = tqdm(total=n_steps, desc=desc, disable=not progress, dynamic_ncols=True, leave=True)
    try:
        while done < n_steps:
            length = min(chunk_size, n_steps - done)
            tc = _time.perf_counter()
            new_state, chunk_losses, last = run(state, args, length)
            jax.block_until_ready(new_state)
            if done > 0:
                warm_time += _time.perf_counter() - tc
                warm_steps += length
            state, done = new_state, done + length
            losses.append(chunk_losses)
            bar.update(length)
            if math.isfinite(final := float(chunk_losses[-1])):
                bar.set_postfix(gen_loss=f"{final:.4g}")
            if int(state.diverged_at) >= 0:
                stopped = "diverged"
                break
            out = chunk_losses if last is None else StepOutput(chunk_losses, last)
            if on_chunk is not None and on_chunk(state, done, out):
                stopped = "callback"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        bar.close()
    gen_loss = jnp.concatenate(losses) if losses else jnp.zeros((0,))
    step_time = warm_time / warm_steps if warm_steps else float("nan")
    return ChunkResult(
        state, done, _time.perf_counter() - t0, step_time, stopped, gen_loss, last
    )


def _scan_chunk(step_fn: Callable, state: Any, args: Any, length: int) -> tuple[Any, ...]:
    """``length`` steps in a ``lax.scan``; keeps per-step losses and the last discriminator."""
    _, out_shape = jax.eval_shape(step_fn, state, args)
    keep = isinstance(out_shape, StepOutput)
    last = None
    if keep:
        last = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), out_shape.discriminator)

    def body(carry: tuple[Any, Any], _: None) -> tuple[tuple[Any, Any], Array]:
        s, prev = carry
        s, out = step_fn(s, args)
        return (s, out.discriminator) if keep else (s, prev), out.gen_loss if keep else out

    (state, last), chunk_losses = jax.lax.scan(body, (state, last), None, length=length)
    return state, chunk_losses, last


def particle_flow(
    fake: Float[Array, "n d"],
    real: Float[Array, "m d"],
    *,
    loss: Any = "ipm",
    kernel: Callable[[Array, Array], Array] | None = None,
    time: float = 1.0,
    step_size: float | None = None,
    eta: float | None = None,
    n_steps: int = 2000,
    chunk_size: int = 100,
    on_chunk: Callable[[FlowState, int, Array], bool | None] | None = None,
    progress: bool = True,
    **discriminator_kwargs: Any,
) -> ChunkResult:
    """Flow fake particles toward the real points along the infinite-width discriminator.

    Convenience wrapper around :func:`infinite_width_step` and :func:`run_chunked`; give
    either ``step_size`` (per particle) or GAN(TK)²'s ``eta`` (on the mean loss).

    Args:
        fake: initial fake particles, shape ``(n, d)``.
        real: real points, shape ``(m, d)``.
        loss: loss name or :class:`gantk.losses.Loss`.
        kernel: ``k(x1, x2) -> (n1, n2)``; defaults to the GAN(TK)² ReLU NTK.
        time: integration time τ.
        step_size: per-particle step; exclusive with ``eta``.
        eta: GAN(TK)² step on the mean loss (``step_size = eta / n``).
        n_steps: number of generator steps.
        chunk_size: steps per on-device ``lax.scan`` chunk.
        on_chunk: host callback between chunks (see :func:`run_chunked`).
        progress: show a progress bar.
        **discriminator_kwargs: forwarded to :func:`gantk.discriminator.discriminator`.

    Returns:
        A :class:`ChunkResult` whose ``state.fake`` holds the final particles.

    Raises:
        ValueError: on malformed points, or unless exactly one of ``step_size`` and
            ``eta`` is given.
    """
    fake = as_points(fake, "fake")
    real = as_points(real, "real", dim=fake.shape[1], dim_name="fake")
    if (step_size is None) == (eta is None):
        raise ValueError(
            f"give exactly one of `step_size` and `eta`; got step_size={step_size}, eta={eta}."
        )
    if step_size is None:
        step_size = step_size_from_eta(eta, fake.shape[0])
    if kernel is None:
        kernel = kernel_from_name("relu")
    step = infinite_width_step(loss, kernel, time, step_size, **discriminator_kwargs)
    state = FlowState(
        fake=fake,
        step=jnp.asarray(0, jnp.int32),
        diverged_at=jnp.asarray(-1, jnp.int32),
        key=jax.random.key(0),
    )
    return run_chunked(
        step, state, real, n_steps, chunk_size=chunk_size, on_chunk=on_chunk, progress=progress
    )


def generator_step(
    loss: Any,
    fit_discriminator: Callable[[Array, Array, Any, Array], Any],
    generator_apply: Callable[[Any, Array], Array],
    optimizer: optax.GradientTransformation,
    batch_size: int,
    latent_dim: int,
) -> Callable[[GeneratorState, Array], tuple[GeneratorState, Array]]:
    """Build one parametric-generator update.

    Each step draws latents ``z ~ N(0, I)`` of shape ``(batch_size, latent_dim)``, fits the
    discriminator on the current samples ``g(z)`` (held fixed) and the real points, and
    descends the mean generator loss ``mean_z c(f_τ(g(z)))`` with ``optimizer``.

    Args:
        loss: loss name or :class:`gantk.losses.Loss` (its ``c`` is the generator loss).
        fit_discriminator: an :class:`AbstractFit` or any ``(fake, real, carry, key) -> D``
            returning an :class:`~gantk.solution.AbstractDiscriminator`; ``D.carry`` (the
            finite-width parameters, or None) is carried to the next step.
        generator_apply: ``g(params, z) -> (batch, d)``.
        optimizer: optax transformation for the generator parameters.
        batch_size: number of latents per step.
        latent_dim: latent dimension.

    Raises:
        ValueError: if ``batch_size`` or ``latent_dim`` is not a positive integer.
    """
    check_positive_int(batch_size, "batch_size")
    check_positive_int(latent_dim, "latent_dim")

    def step(state: GeneratorState, real: Array) -> tuple[GeneratorState, Array]:
        key, kz, kd = jax.random.split(state.key, 3)
        z = jax.random.normal(kz, (batch_size, latent_dim), dtype=real.dtype)
        samples = jax.lax.stop_gradient(generator_apply(state.params, z))
        D = fit_discriminator(samples, real, state.disc_params, kd)

        def mean_gen_loss(params: Any) -> Array:
            return jnp.mean(D.generator_loss(generator_apply(params, z)))

        value, grads = jax.value_and_grad(mean_gen_loss)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        (params, opt_state), diverged_at = _guard(
            (params, opt_state), (state.params, state.opt_state), state.step, state.diverged_at
        )
        new_state = state._replace(
            params=params,
            opt_state=opt_state,
            step=state.step + 1,
            diverged_at=diverged_at,
            key=key,
            disc_params=D.carry,
        )
        return new_state, value

    return step


def train_generator(
    generator_apply: Callable[[Any, Array], Array],
    params: Any,
    real: Float[Array, "m d"],
    fit_discriminator: Callable[[Array, Array, Any, Array], Any],
    *,
    loss: Any = "ipm",
    optimizer: optax.GradientTransformation | None = None,
    batch_size: int = 500,
    latent_dim: int = 2,
    n_steps: int = 1000,
    seed: int = 0,
    disc_params: Any = None,
    chunk_size: int = 100,
    on_chunk: Callable[[GeneratorState, int, Array], bool | None] | None = None,
    progress: bool = True,
) -> ChunkResult:
    """Train a parametric generator ``g(z)`` against a (kernel) discriminator.

    See :func:`generator_step`. The default optimizer is ``optax.adam(1e-3)``.

    Returns:
        A :class:`ChunkResult` whose ``state.params`` are the trained generator parameters.

    Raises:
        ValueError: on malformed ``real`` or invalid sizes.
    """
    real = as_points(real, "real")
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    step = generator_step(loss, fit_discriminator, generator_apply, optimizer, batch_size,
                          latent_dim)
    state = GeneratorState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.asarray(0, jnp.int32),
        diverged_at=jnp.asarray(-1, jnp.int32),
        key=jax.random.key(seed),
        disc_params=disc_params,
    )
    return run_chunked(
        step,
        state,
        real,
        n_steps,
        chunk_size=chunk_size,
        on_chunk=on_chunk,
        progress=progress,
        desc="generator",
    )
