"""Inputs of any rank and NT's kernel layouts for :mod:`gantk.stax` (helpers of ``kernel.py``).

gantk evaluates the kernel of inputs ``x`` of shape ``(n, *spatial, C)`` (batch axis 0,
channel axis -1, as NT's defaults) on the ``n * P`` *points* ``x.reshape(-1, C)``
(``P = prod(spatial)``): for networks made of ``Dense`` and elementwise layers every
spatial position goes through the same infinite-width network, so the covariance between
position ``p`` of ``x1_i`` and position ``q`` of ``x2_j`` is the rank-2 kernel of those two
points (NT's ``diagonal_spatial=False`` kernel, covariance over channels). ``Flatten``
averages the spatial diagonal (NT's ``Flatten``). This module converts the points layout
``(n1 * P, n2 * Q)`` into NT's layouts:

- ``diagonal_spatial=False``: ``(n1, n2, s1, s1', s2, s2', ...)`` (NT's interleaved axes);
- ``diagonal_spatial=True``: ``(n1, n2, s1, s2, ...)`` (same position only).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gantk._validate import is_concrete

__all__ = [
    "actual_shape",
    "batch_diagonal",
    "canonical_shape",
    "check_finite",
    "check_input",
    "input_axes",
    "nt_layout",
    "to_canonical",
    "to_points",
]


def check_finite(x: jax.Array, name: str) -> None:
    """Raise ValueError naming ``name`` when concrete ``x`` has NaN/inf entries.

    The check runs on the host (numpy) whenever ``x`` holds concrete values, also when it
    is a constant closed over inside ``jit`` (where a ``jnp`` reduction would be staged out
    and could not be converted to ``bool``); tracers are not checked.
    """
    if is_concrete(x):
        host = np.asarray(x)
        if not np.isfinite(host).all():
            bad = int(np.sum(~np.isfinite(host)))
            raise ValueError(f"`{name}` must be finite; got {bad} non-finite entries (NaN or inf).")


def check_input(
    x: Any, name: str, like: jax.Array | None = None, finite: bool = True
) -> jax.Array:
    """Validate one stax input of shape ``(n, *spatial, C)`` (rank >= 2).

    Args:
        x: array-like input.
        name: argument name for error messages (``'x1'``, ``'x2'``).
        like: when given (``x1`` for ``x2``), ``x`` must have the same non-batch shape.
        finite: whether to reject NaN/inf entries (False when they may be masked
            by ``mask_constant``; the caller checks after masking).

    Returns:
        ``x`` as a JAX array (integers cast to the default float dtype).

    Raises:
        ValueError: naming ``name`` on rank < 2, no points, a non-batch shape other than
            ``like``'s, or (when concrete) NaN/inf entries.
    """
    if x is None or not hasattr(x, "shape"):
        try:
            x = np.asarray(x, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"`{name}` must be an array of shape (n, ..., channels); got {x!r}."
            ) from err
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.zeros(()).dtype)
    if x.ndim < 2:
        raise ValueError(
            f"`{name}` must have rank >= 2 with shape (n, ..., channels); got shape "
            f"{tuple(x.shape)}."
        )
    if x.shape[0] == 0 or x.shape[-1] == 0:
        raise ValueError(f"`{name}` must hold at least one point and channel; got {x.shape}.")
    if like is not None and x.shape[1:] != like.shape[1:]:
        raise ValueError(
            f"`{name}` must have the non-batch shape of `x1`, {tuple(like.shape[1:])}; got "
            f"{tuple(x.shape[1:])}."
        )
    if finite:
        check_finite(x, name)
    return x


def to_points(x: jax.Array) -> jax.Array:
    """``(n, *spatial, C) -> (n * P, C)``: every spatial position as its own point."""
    return x if x.ndim == 2 else jnp.reshape(x, (-1, x.shape[-1]))


def nt_layout(
    mat: jax.Array,
    shape1: tuple[int, ...],
    shape2: tuple[int, ...],
    diagonal_spatial: bool,
) -> jax.Array:
    """Points-layout kernel ``(n1 * P, n2 * Q)`` in NT's layout.

    Args:
        mat: ``(n1 * P, n2 * Q)`` kernel between all positions (or a scalar, broadcast).
        shape1: ``(n1, *spatial1, C)`` finite-width shape of the first batch.
        shape2: same for the second batch.
        diagonal_spatial: NT's flag: keep only equal positions.

    Returns:
        ``(n1, n2, *spatial)`` when ``diagonal_spatial`` (requires equal spatial shapes),
        else ``(n1, n2, s1, s1', s2, s2', ...)``.
    """
    n1, s1 = shape1[0], tuple(shape1[1:-1])
    n2, s2 = shape2[0], tuple(shape2[1:-1])
    p, q = int(np.prod(s1, dtype=int)), int(np.prod(s2, dtype=int))
    mat = jnp.broadcast_to(mat, (n1 * p, n2 * q))
    if diagonal_spatial:
        blocks = jnp.reshape(mat, (n1, p, n2, p))
        diag = jnp.einsum("apbp->abp", blocks)
        return jnp.reshape(diag, (n1, n2, *s1))
    d = len(s1)
    full = jnp.reshape(mat, (n1, *s1, n2, *s2))
    perm = [0, 1 + d] + [a for k in range(d) for a in (1 + k, 2 + d + k)]
    return jnp.transpose(full, perm)


def batch_diagonal(mat: jax.Array) -> jax.Array:
    """``(n, n, ...) -> (n, ...)``: the entries ``mat[i, i, ...]``."""
    return jnp.moveaxis(jnp.diagonal(mat, axis1=0, axis2=1), -1, 0)


def input_axes(ndim: int, batch_axis: Any, channel_axis: Any, name: str = "x1") -> tuple[int, int]:
    """NT's input layout ``(batch_axis, channel_axis)`` of a rank-``ndim`` input, made
    non-negative (NT's ``_inputs_to_kernel`` takes them modulo ``ndim``).

    ``channel_axis=None`` (the requirement of a leading ``Flatten``, which treats every
    non-batch axis alike) picks the last axis that is not the batch axis: the flattened
    kernel is the same for any choice.

    Raises:
        ValueError: naming the argument when an axis is not an int, is out of range for
            ``ndim`` (named after the input ``name``) or both axes coincide.
    """
    for value, arg in ((batch_axis, "batch_axis"), (channel_axis, "channel_axis")):
        if value is None and arg == "channel_axis":
            continue
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"`{arg}` must be an int; got {value!r}.")
        if not -ndim <= value < ndim:
            raise ValueError(
                f"`{arg}`={value} is out of range for `{name}` of rank {ndim}."
            )
    b = int(batch_axis) % ndim
    if channel_axis is None:
        c = ndim - 1 if b != ndim - 1 else ndim - 2
    else:
        c = int(channel_axis) % ndim
    if b == c:
        raise ValueError(
            f"`batch_axis` and `channel_axis` must be different axes of `{name}` (rank "
            f"{ndim}); got batch_axis={batch_axis}, channel_axis={channel_axis}."
        )
    return b, c


def to_canonical(x: jax.Array, axes: tuple[int, int]) -> jax.Array:
    """Activations (or masks) in the layout ``axes = (batch, channel)`` -> ``(n, *spatial, C)``."""
    b, c = axes
    if (b, c) == (0, x.ndim - 1):
        return x
    return jnp.moveaxis(x, (b, c), (0, -1))


def canonical_shape(shape: tuple[int, ...], axes: tuple[int, int]) -> tuple[int, ...]:
    """``shape`` in the layout ``axes`` -> the canonical ``(n, *spatial, C)`` order."""
    b, c = axes
    rest = tuple(s for i, s in enumerate(shape) if i not in (b, c))
    return (shape[b], *rest, shape[c])


def actual_shape(shape: tuple[int, ...], axes: tuple[int, int]) -> tuple[int, ...]:
    """Inverse of :func:`canonical_shape`: canonical ``(n, *spatial, C)`` -> layout ``axes``."""
    b, c = axes
    if len(shape) < 2:
        return tuple(shape)
    spatial = iter(shape[1:-1])
    return tuple(
        shape[0] if i == b else shape[-1] if i == c else next(spatial) for i in range(len(shape))
    )
