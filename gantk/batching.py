"""Tile-by-tile evaluation of kernel functions, NT's ``neural_tangents.batch``.

:func:`batch` wraps any kernel function ``kernel_fn(x1, x2=None, *args, **kwargs)`` whose
outputs are laid out as ``(N1, N2, ...)`` (a :mod:`gantk.stax` ``kernel_fn``, an
:func:`gantk.empirical_kernel_fn`, a Monte-Carlo kernel) so that it is evaluated on tiles
of ``batch_size`` rows of ``x1`` and ``batch_size`` rows of ``x2`` and the tiles are
assembled. Only one tile of intermediates is alive at a time; the result equals the
unbatched one up to floating-point reassociation. For a jit-compiled tile loop of a plain
kernel ``k(x1, x2)`` see :func:`gantk.stax.blocked`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gantk.stax.kernel import Kernel

__all__ = ["batch"]


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _tiles(x: Any, size: int, axis: int = 0) -> list[Any]:
    """Tiles of ``size`` entries of ``x`` (a pytree of inputs) along their batch ``axis``."""
    first = jax.tree.leaves(x)[0]
    n = first.shape[axis % first.ndim]
    if size == 0 or size >= n:
        return [x]

    def tile(a: Any, i: int) -> Any:
        return jax.lax.slice_in_dim(a, i, min(i + size, n), axis=axis % a.ndim)

    return [jax.tree.map(lambda a, i=i: tile(a, i), x) for i in range(0, n, size)]


def _set(shape: tuple, axis: int, n: int) -> tuple:
    return (*shape[:axis], n, *shape[axis + 1 :])


def _assemble_pairs(rows: list[list[Any]]) -> Any:
    """Concatenate an ``(i, j)`` grid of ``(n1_i, n2_j, ...)`` arrays."""
    return jnp.concatenate([jnp.concatenate(r, axis=1) for r in rows], axis=0)


def _assemble(grid: list[list[Any]], same: bool) -> Any:
    first = grid[0][0]
    if isinstance(first, Kernel):
        if first.cov1 is not None and jnp.ndim(first.cov1) == 2:
            raise NotImplementedError(
                "batch: diagonal_batch=False (full cov1/cov2) is not supported in tiles; "
                "call the kernel_fn without batching."
            )

        def field(name: str) -> Any:
            if getattr(first, name) is None:
                return None
            return _assemble_pairs([[getattr(k, name) for k in r] for r in grid])

        cov1 = None
        if first.cov1 is not None:
            cov1 = jnp.concatenate([r[0].cov1 for r in grid])
        cov2 = None
        if not same and first.cov2 is not None:
            cov2 = jnp.concatenate([k.cov2 for k in grid[0]])
        def mask(tiles: list[Any]) -> Any:  # boolean masks in the activations' layout
            if any(m is None for m in tiles):
                return None
            return jnp.concatenate(tiles, axis=first.batch_axis)

        n1, n2 = sum(r[0].nngp.shape[0] for r in grid), sum(k.nngp.shape[1] for k in grid[0])
        return first.replace(
            nngp=field("nngp"),
            ntk=field("ntk"),
            cov1=cov1,
            cov2=cov2,
            mask1=mask([r[0].mask1 for r in grid]),
            mask2=None if same else mask([k.mask2 for k in grid[0]]),
            shape1=_set(first.shape1, first.batch_axis, n1),
            shape2=_set(first.shape2, first.batch_axis, n1 if same else n2),
        )
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(
            *(_assemble([[getattr(k, f) for k in r] for r in grid], same) for f in first._fields)
        )
    if isinstance(first, list):
        return [_assemble([[k[b] for k in r] for r in grid], same) for b in range(len(first))]
    if first is None:
        return None
    return _assemble_pairs(grid)


def batch(
    kernel_fn: Callable,
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
) -> Callable:
    """Evaluate ``kernel_fn`` in tiles of ``batch_size`` inputs, NT's ``batch``.

    Args:
        kernel_fn: ``kernel_fn(x1, x2=None, *args, **kwargs)`` returning arrays laid out
            ``(N1, N2, ...)``, a :class:`gantk.stax.Kernel`, a namedtuple or list of them.
            The inputs are tiled along their batch axis: 0, or the layout a
            :mod:`gantk.stax` network asks for (``Dense(batch_axis=1, ...)``), or the
            ``batch_axis=`` keyword passed to the batched function.
        batch_size: rows of ``x1`` and of ``x2`` per tile; ``0`` means no tiling. Unlike
            NT it need not divide the number of inputs (the last tile is smaller).
        device_count: NT's parallelism over devices. gantk computes on the default
            device; ``-1`` (all devices) and ``0`` (sequential) are accepted and mean the
            same here, a positive count must not exceed ``jax.device_count()``.
        store_on_device: ``False`` returns host (NumPy) arrays, so large kernels live in
            CPU memory.

    Returns:
        ``batched(x1, x2=None, *args, **kwargs)`` with the same outputs as ``kernel_fn``.

    Raises:
        ValueError: on a non-callable ``kernel_fn``, a negative ``batch_size`` or an
            invalid ``device_count``; the returned function raises NotImplementedError
            for ``diagonal_batch=False`` kernels (full ``cov1``) with tiling.
    """
    if not callable(kernel_fn):
        raise ValueError(f"`kernel_fn` must be callable; got {kernel_fn!r}.")
    batch_size = _check_int(batch_size, "batch_size", 0)
    device_count = _check_int(device_count, "device_count", -1)
    if device_count > jax.device_count():
        raise ValueError(
            f"`device_count` must be -1, 0 or at most jax.device_count() = "
            f"{jax.device_count()}; got {device_count}."
        )

    @functools.wraps(kernel_fn)
    def batched(x1: Any, x2: Any = None, *args: Any, **kwargs: Any) -> Any:
        same = x2 is None or not jax.tree.leaves(x2)  # NT: x2=(None, None) for tuple inputs
        x2 = None if same else x2  # the wrapped kernel_fn need not know NT's (None, None)
        axis = kwargs.get("batch_axis")  # the inputs' batch axis: NT's layout requirement
        if axis is None:
            axis = getattr(kernel_fn, "_gantk_req", {}).get("batch_axis", 0)
        rows = _tiles(x1, batch_size, axis)
        cols = rows if same else _tiles(x2, batch_size, axis)
        if len(rows) == 1 and len(cols) == 1:
            out = kernel_fn(x1, x2, *args, **kwargs)
        else:
            grid = [[kernel_fn(a, b, *args, **kwargs) for b in cols] for a in rows]
            out = _assemble(grid, same)
        return out if store_on_device else jax.device_get(out)

    return batched
