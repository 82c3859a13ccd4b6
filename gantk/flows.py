"""Particle flows and generator training driven by a (kernel) discriminator.

A GAN generator step moves each fake particle along the gradient field of the trained
discriminator (Franceschi et al., ICML 2022, Sec. 3):

.. math::  x \\leftarrow x + h\\, v(x), \\qquad v(x) = -\\nabla_x c(f_\\tau(x)),

where :math:`f_\\tau` is the discriminator trained for integration time :math:`\\tau` on the
current fake particles and the real points (:func:`gantk.discriminator.discriminator` for the
infinite-width NTK regime, :func:`gantk.nets.fit_finite_discriminator` for a finite flax
network). For the IPM loss this is the MMD gradient flow with kernel ``k``.

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

import math
import time as _time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray
from tqdm.auto import tqdm

from gantk._validate import as_points, check_nonneg, check_positive, check_positive_int

__all__ = [
    "FlowState",
    "GeneratorState",
    "ChunkResult",
    "finite_width_step",
    "generator_step",
    "infinite_width_step",
    "particle_flow",
    "run_chunked",
    "step_size_from_eta",
    "train_generator",
]

VelocityFn = Callable[[Array, Array], Array]


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
    """

    state: Any
    steps_done: int
    wall_time: float
    step_time: float
    stopped: str | None
    gen_loss: Array


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


def _value_and_velocity(D: Any, points: Array) -> tuple[Array, Array]:
    """``(c(f_τ(points)), velocity(points))``, in one pass when ``D`` offers it."""
    if hasattr(D, "value_and_velocity"):
        return D.value_and_velocity(points)
    return D.generator_loss(points), D.velocity(points)


def infinite_width_step(
    loss: Any,
    kernel: Callable[[Array, Array], Array],
    time: float,
    step_size: float,
    *,
    mesh: Any = None,
    **discriminator_kwargs: Any,
) -> Callable[[FlowState, Array], tuple[FlowState, Array]]:
    """Build one particle-flow step with the infinite-width discriminator.

    The returned ``step(state, real) -> (state, mean_generator_loss)`` fits
    ``D = discriminator(loss, kernel, state.fake, real, time)`` (train set held fixed, as in
    GAN(TK)²) and moves ``fake += step_size * D.velocity(fake)``.

    Args:
        loss: a loss name or :class:`gantk.losses.Loss`.
        kernel: ``k(x1, x2) -> (n1, n2)``, e.g. ``gantk.stax.ntk(kernel_fn)``.
        time: integration time τ of the discriminator (``inf`` allowed for LSGAN).
        step_size: per-particle step ``h`` (see :func:`step_size_from_eta`).
        mesh: optional 1-D device mesh (:func:`gantk.sharding.particle_mesh`); the
            velocity is then computed with the particles split over its devices.
        **discriminator_kwargs: forwarded to :func:`gantk.discriminator.discriminator`.

    Raises:
        ValueError: if ``step_size`` is negative.
    """
    from gantk.discriminator import discriminator

    check_nonneg(step_size, "step_size")

    def step(state: FlowState, real: Array) -> tuple[FlowState, Array]:
        D = discriminator(loss, kernel, state.fake, real, time, **discriminator_kwargs)
        if mesh is None or mesh.devices.size == 1:
            gen_loss, velocity = _value_and_velocity(D, state.fake)
        else:
            from gantk.sharding import sharded_value_and_velocity

            gen_loss, velocity = sharded_value_and_velocity(D, state.fake, mesh)
        new = state.fake + step_size * velocity
        fake, diverged_at = _guard(new, state.fake, state.step, state.diverged_at)
        return state._replace(fake=fake, step=state.step + 1, diverged_at=diverged_at), (
            jnp.mean(gen_loss)
        )

    return step


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
    """Build one particle-flow step with a finite-width flax discriminator.

    Each generator step trains the discriminator with SGD (learning rate ``lr``) for
    ``round(time / lr)`` steps on the current fake and real points (or one step in
    GAN(TK)²'s single-step mode), then moves the particles along its input gradient.

    Args:
        loss: a loss name or :class:`gantk.losses.Loss`.
        spec: the :class:`gantk.architectures.MLPSpec` of the discriminator (its ``width``
            is the finite width).
        time: discriminator integration time τ (continuous time = SGD steps × ``lr``).
        step_size: per-particle step ``h``.
        lr: discriminator SGD learning rate.
        reset: re-initialize the discriminator at every generator step (from ``state.key``).
        antisymmetric: use the antisymmetric wrapper so that ``f_0 = 0``.
        single_step: one SGD step per generator step, discriminator kept between steps.

    Raises:
        ValueError: if ``lr`` or ``time`` is not positive or ``step_size`` is negative.
    """
    from gantk import nets

    check_positive(lr, "lr")
    check_positive(time, "time")
    check_nonneg(step_size, "step_size")

    def step(state: FlowState, real: Array) -> tuple[FlowState, Array]:
        key, sub = jax.random.split(state.key)
        params = state.disc_params
        if reset:
            params = nets.init_discriminator(
                sub, spec, state.fake.shape[-1], antisymmetric=antisymmetric
            )
        D = nets.fit_finite_discriminator(
            loss,
            spec,
            params,
            state.fake,
            real,
            lr if single_step else time,
            lr,
            antisymmetric=antisymmetric,
        )
        gen_loss, velocity = _value_and_velocity(D, state.fake)
        new = state.fake + step_size * velocity
        fake, diverged_at = _guard(new, state.fake, state.step, state.diverged_at)
        new_state = state._replace(
            fake=fake,
            step=state.step + 1,
            diverged_at=diverged_at,
            key=key,
            disc_params=D.params,
        )
        return new_state, jnp.mean(gen_loss)

    return step


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
    """Run ``n_steps`` of ``state, loss = step_fn(state, args)`` in jitted ``lax.scan`` chunks.

    Steps run on device, ``chunk_size`` at a time; between chunks the host advances a tqdm
    bar and calls ``on_chunk(state, steps_done, chunk_losses)`` (for metrics, checkpoints and
    figures; ``chunk_losses`` holds the chunk's per-step mean generator losses).
    The chunk boundaries are the same whatever happens in the callback, so a run resumed
    from a chunk-boundary checkpoint reproduces the uninterrupted trajectory bit for bit.

    Args:
        step_fn: pure step function ``(state, args) -> (state, scalar_loss)``; the state
            must have an int ``diverged_at`` field (``-1`` while healthy).
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
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"`n_steps` must be a non-negative integer; got {n_steps!r}.")
    chunk_size = check_positive_int(chunk_size, "chunk_size")

    def scan_chunk(state: Any, args: Any, length: int) -> tuple[Any, Array]:
        return jax.lax.scan(lambda s, _: step_fn(s, args), state, None, length=length)

    run = jax.jit(scan_chunk, static_argnums=2)
    t0 = _time.perf_counter()
    done, stopped, losses = 0, None, []
    warm_time, warm_steps = 0.0, 0
    bar = tqdm(total=n_steps, desc=desc, disable=not progress, dynamic_ncols=True, leave=True)
    try:
        while done < n_steps:
            length = min(chunk_size, n_steps - done)
            tc = _time.perf_counter()
            new_state, chunk_losses = run(state, args, length)
            jax.block_until_ready(new_state)
            if done > 0:
                warm_time += _time.perf_counter() - tc
                warm_steps += length
            state, done = new_state, done + length
            losses.append(chunk_losses)
            bar.update(length)
            last = float(chunk_losses[-1])
            if math.isfinite(last):
                bar.set_postfix(gen_loss=f"{last:.4g}")
            if int(state.diverged_at) >= 0:
                stopped = "diverged"
                break
            if on_chunk is not None and on_chunk(state, done, chunk_losses):
                stopped = "callback"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        bar.close()
    gen_loss = jnp.concatenate(losses) if losses else jnp.zeros((0,))
    step_time = warm_time / warm_steps if warm_steps else float("nan")
    return ChunkResult(state, done, _time.perf_counter() - t0, step_time, stopped, gen_loss)


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
        from gantk.architectures import kernel_from_name

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
        fit_discriminator: ``(fake, real, disc_params, key) -> D`` where ``D(points)`` gives
            ``f_τ`` and ``D.generator_loss(points)`` gives ``c(f_τ)``; ``D.params`` (or
            ``None``) is carried to the next step.
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
            disc_params=getattr(D, "params", None),
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
