"""The on-device loop of every flow: jitted ``lax.scan`` chunks with host work in between.

:func:`run_chunked` drives any pure step ``(state, args) -> (state, out)`` (particle flows,
generator training); :func:`guard` is the divergence rule every step applies.
Re-exported by :mod:`gantk.flows`, where they are documented for users.
"""

from __future__ import annotations

import functools
import math
import time as _time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array
from tqdm.auto import tqdm

from gantk._validate import check_int, check_positive_int

__all__ = ["ChunkResult", "StepOutput", "guard", "run_chunked"]


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


def guard(new: Any, old: Any, step: Array, diverged_at: Array) -> tuple[Any, Array]:
    """``(new, diverged_at)``, or ``old`` (recording ``step``) if ``new`` has a non-finite leaf.

    Once ``diverged_at >= 0`` the state stays frozen: a diverged run never moves again.
    """
    leaves = jax.tree_util.tree_leaves(new)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
    ok = finite & (diverged_at < 0)
    out = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
    diverged_at = jnp.where((diverged_at < 0) & ~finite, step, diverged_at)
    return out, diverged_at


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
