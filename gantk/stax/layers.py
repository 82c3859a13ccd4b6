"""Linear layers of :mod:`gantk.stax`: ``Dense``, ``Identity``, ``Flatten``, ``LayerNorm``,
``Dropout``, ``Index`` (NT 0.6.5 semantics).

Conventions (Lee et al. 2019, "Wide neural networks of any depth evolve as linear models",
and NT's ``stax``): a ``Dense`` layer in NTK parameterization computes
``y = W_std / sqrt(d) * x @ W + b_std * b`` with ``W, b ~ N(0, 1)``; its infinite-width
kernels are

    nngp' = W_std^2 * nngp + b_std^2        (same for cov1, cov2)
    ntk'  = nngp' + W_std^2 * ntk.

In standard parameterization with width scalings ``s = (s0, s1)`` (Sohl-Dickstein et al.
2020, "On the infinite width limit of neural networks with a standard parameterization";
``y = x @ W / sqrt(s0) + b`` with ``W ~ N(0, W_std^2 s0 / d)`` of shape
``(d, s1 * out_dim)``, ``b ~ N(0, b_std^2)``) the covariances are the same and
``ntk' = (d / s0) * nngp + W_std^2 * ntk (+ 1 if the layer has a bias)``.

Inputs of rank > 2 ``(n, *spatial, C)`` keep their spatial axes; ``Dense`` acts on the
channel axis at every position (see :mod:`gantk.stax._layout` for the kernel layout).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gantk._validate import check_choice, check_nonneg, check_positive_int
from gantk.stax._masking import channel_all
from gantk.stax.core import make_layer, with_width
from gantk.stax.kernel import Kernel, Layer

__all__ = ["Dense", "Dropout", "Flatten", "Identity", "Index", "LayerNorm", "Slice"]


def _check_axes(k: Kernel, layer: str, batch_axis: int, channel_axis: int) -> None:
    """gantk's kernels use batch axis 0 and channel axis -1 (NT's defaults)."""
    ndim = len(k.shape1)
    if batch_axis % ndim != 0 or channel_axis % ndim != ndim - 1:
        raise NotImplementedError(
            f"{layer}: gantk.stax kernels need batch_axis=0 and channel_axis=-1 (NT's "
            f"defaults); got batch_axis={batch_axis}, channel_axis={channel_axis} on inputs "
            f"of rank {ndim}. The finite-width init_fn/apply_fn support any axes."
        )


def Dense(
    out_dim: int,
    W_std: float = 1.0,
    b_std: float | None = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
) -> Layer:
    """Fully connected layer ``(init_fn, apply_fn, kernel_fn)``, NT's ``stax.Dense``.

    Args:
        out_dim: output width of the finite network (ignored by the infinite-width kernel
            in NTK parameterization).
        W_std: weight standard deviation, ``>= 0``.
        b_std: bias standard deviation, ``>= 0``; ``None`` means no bias (NT's default).
        batch_axis: batch axis of the inputs (the kernel needs 0).
        channel_axis: feature axis the layer acts on (the kernel needs -1); the other
            axes are kept.
        parameterization: ``'ntk'`` (``y = W_std/sqrt(d) x W + b_std b``, ``W, b ~ N(0,1)``)
            or ``'standard'`` (``y = x W / sqrt(s0) + b``, ``W ~ N(0, W_std^2 s0/d)``,
            ``b ~ N(0, b_std^2)``), case-insensitive.
        s: ``(s0, s1)`` width scalings of the standard parameterization (NT's ``s``): the
            weight matrix is ``(d, s1 * out_dim)`` and the input width in the NTK is
            ``d / s0``; no effect in NTK parameterization. ``s0`` must equal ``s1`` of the
            previous layer (1 for the first).

    Returns:
        ``init_fn(key, shape) -> (out_shape, (W, b))`` with ``W`` ``(d, s1 * out_dim)`` and
        ``b`` broadcastable to the output (1 on every axis but the channel one) or None;
        ``apply_fn(params, x)``; and ``kernel_fn`` (this module's recursions).

    Raises:
        ValueError: on a non-positive-integer ``out_dim``, negative or non-finite
            ``W_std``/``b_std``, an unknown ``parameterization``, or ``s`` not a pair of
            positive integers. The kernel_fn raises NotImplementedError for
            ``batch_axis != 0`` or ``channel_axis != -1``.

    Masking (NT's ``Dense``): a position stays masked when all its input channels are
    masked (``mask_fn``), and the kernel entries of masked positions are zeroed.
    """
    out_dim = check_positive_int(out_dim, "out_dim")
    for value, arg in ((batch_axis, "batch_axis"), (channel_axis, "channel_axis")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"`{arg}` must be an int; got {value!r} (as in NT, `parameterization` is the "
                "sixth argument: pass parameterization=... by keyword)."
            )
    check_nonneg(W_std, "W_std")
    if b_std is not None:
        check_nonneg(b_std, "b_std")
    if not isinstance(parameterization, str):
        raise ValueError(
            f"`parameterization` must be 'ntk' or 'standard'; got {parameterization!r}."
        )
    parameterization = parameterization.lower()
    check_choice(parameterization, "parameterization", ("ntk", "standard"))
    if not (isinstance(s, (tuple, list)) and len(s) == 2):
        raise ValueError(f"`s` must be a pair of positive integers (s0, s1); got {s!r}.")
    s0, s1 = (check_positive_int(v, "s") for v in s)
    standard = parameterization == "standard"
    width = out_dim * s1 if standard else out_dim
    w_var = W_std**2
    b_var = None if b_std is None else b_std**2

    def init_fn(key: jax.Array, input_shape: Sequence[int]) -> tuple[tuple, tuple]:
        input_shape = tuple(input_shape)
        axis = channel_axis % len(input_shape)
        d = input_shape[axis]
        k_w, k_b = jax.random.split(key)
        W = jax.random.normal(k_w, (d, width))
        b = None
        if b_std is not None:
            b_shape = [1] * len(input_shape)
            b_shape[axis] = width
            b = jax.random.normal(k_b, tuple(b_shape))
        if standard:
            W = W * (W_std / math.sqrt(d / s0))
            b = None if b is None else b * b_std
        return (*input_shape[:axis], width, *input_shape[axis + 1 :]), (W, b)

    def apply_fn(params: tuple, x: jax.Array, **kwargs: Any) -> jax.Array:
        W, b = params
        prod = jnp.moveaxis(jnp.tensordot(W, x, (0, channel_axis)), 0, channel_axis)
        if standard:
            out = prod / math.sqrt(s0) if s0 != 1 else prod
            return out if b is None else out + b
        out = (W_std / math.sqrt(x.shape[channel_axis])) * prod
        return out if b is None else out + b_std * b

    def affine(mat: jax.Array | None) -> jax.Array | None:
        if mat is None:
            return None
        mat = w_var * mat
        return mat if b_var is None else mat + b_var

    def fn(k: Kernel) -> Kernel:
        _check_axes(k, "Dense", batch_axis, channel_axis)
        ntk = k.ntk
        nngp = affine(k.nngp)
        if ntk is not None:
            if standard:
                ntk = (k.shape1[-1] / s0) * k.nngp + w_var * ntk
                if b_std is not None:
                    ntk = ntk + 1.0
            else:
                ntk = nngp + w_var * ntk
        k = k.replace(
            nngp=nngp, ntk=ntk, cov1=affine(k.cov1), cov2=affine(k.cov2), is_gaussian=True
        )
        return with_width(k, width)

    name = f"Dense({out_dim}, W_std={W_std}, b_std={b_std}, {parameterization}, s={tuple(s)})"
    return make_layer(init_fn, apply_fn, fn, name, mask_fn=channel_all(channel_axis), remask=True)


def Identity() -> Layer:
    """Identity layer (no-op), NT's ``stax.Identity``.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)`` that leave shapes, values and kernels unchanged.
    """
    return make_layer(
        lambda key, input_shape: (input_shape, ()),
        lambda params, x, **kwargs: x,
        lambda k: k,
        "Identity",
    )


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0) -> Layer:
    """Flatten all non-batch axes, NT's ``stax.Flatten``.

    Finite width: ``x`` of shape ``(n, *spatial, C)`` becomes ``(n, P * C)``
    (``P = prod(spatial)``; ``(P * C, n)`` for ``batch_axis_out=1``). Infinite width
    (NT): the kernels are averaged over the spatial diagonal,
    ``nngp'(x1_i, x2_j) = mean_p nngp(x1_i[p], x2_j[p])`` (likewise ``ntk``, ``cov``),
    since each output unit is one channel at one position and the next ``Dense`` sums
    over all of them. On rank-2 inputs it is the identity. Masking (NT): the mask is
    broadcast to the input shape and flattened like the activations; masked positions
    count as zeros in the spatial mean.

    Args:
        batch_axis: batch axis of the inputs (the kernel needs 0).
        batch_axis_out: batch axis of the output, 0 or 1 (-2/-1); the kernel needs 0.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: on a ``batch_axis_out`` other than 0, 1, -2, -1. The kernel_fn raises
            NotImplementedError for ``batch_axis != 0`` or ``batch_axis_out != 0``.
    """
    if batch_axis_out not in (0, 1, -2, -1):
        raise ValueError(f"`batch_axis_out` must be 0 or 1; got {batch_axis_out!r}.")
    out_first = batch_axis_out in (0, -2)

    def out_shape(shape: Sequence[int]) -> tuple[int, int]:
        shape = tuple(shape)
        n = shape[batch_axis]
        rest = math.prod(shape[:batch_axis % len(shape)] + shape[batch_axis % len(shape) + 1 :])
        return (n, rest) if out_first else (rest, n)

    def init_fn(key: jax.Array, input_shape: Sequence[int]) -> tuple[tuple, tuple]:
        return out_shape(input_shape), ()

    def apply_fn(params: tuple, x: jax.Array, **kwargs: Any) -> jax.Array:
        x = jnp.moveaxis(x, batch_axis, 0 if out_first else -1)
        return jnp.reshape(x, out_shape(x.shape if out_first else (x.shape[-1], *x.shape[:-1])))

    def fn(k: Kernel) -> Kernel:
        if batch_axis % len(k.shape1) != 0 or not out_first:
            raise NotImplementedError(
                "Flatten: gantk.stax kernels need batch_axis=0 and batch_axis_out=0; got "
                f"batch_axis={batch_axis}, batch_axis_out={batch_axis_out}."
            )
        if len(k.shape1) <= 2:
            return k
        n1, n2 = k.shape1[0], k.shape2[0]
        p = math.prod(k.shape1[1:-1])

        def pairs(mat: Any) -> Any:
            if mat is None or jnp.ndim(mat) == 0:
                return mat
            return jnp.einsum("apbp->ab", jnp.reshape(mat, (n1, p, n2, p))) / p

        def singles(v: Any, n: int) -> Any:
            return None if v is None else jnp.mean(jnp.reshape(v, (n, p)), axis=1)

        return k.replace(
            nngp=pairs(k.nngp),
            ntk=pairs(k.ntk),
            cov1=singles(k.cov1, n1),
            cov2=singles(k.cov2, n2),
            shape1=out_shape(k.shape1),
            shape2=out_shape(k.shape2),
        )

    name = f"Flatten({batch_axis}, {batch_axis_out})"
    def mask_fn(mask: jax.Array, input_shape: Sequence[int]) -> jax.Array:
        return apply_fn((), jnp.broadcast_to(mask, tuple(input_shape)))

    return make_layer(init_fn, apply_fn, fn, name, frozenset({"flatten"}), mask_fn=mask_fn)


def Dropout(rate: float, mode: str = "train") -> Layer:
    """Dropout, NT's ``stax.Dropout`` (``rate`` is the *keep* probability, as in NT).

    Finite width (``mode='train'``): each entry is kept with probability ``rate`` and
    divided by ``rate`` (``apply_fn`` needs ``rng=``); ``mode='test'``: the identity.
    Infinite width, train mode (NT; a fresh mask per entry, independent of everything
    else): a unit's second moment is multiplied by ``1 / rate`` while covariances between
    different inputs (or positions) are unchanged, so ``cov1``, ``cov2`` and, when ``x2`` is
    ``x1`` (None, or equal values, as NT's ``x1_is_x2``), the diagonals of ``nngp`` and
    ``ntk`` are multiplied by ``1 / rate``. The output
    is not Gaussian. Test mode: the identity kernel.

    Args:
        rate: keep probability in ``(0, 1]``.
        mode: ``'train'`` or ``'test'``.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: on ``rate`` outside ``(0, 1]`` or an unknown ``mode``; ``apply_fn``
            in train mode when called without ``rng``.
    """
    check_choice(mode, "mode", ("train", "test"))
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0:
        raise ValueError(f"`rate` (the keep probability) must be in (0, 1]; got {rate!r}.")
    rate = float(rate)

    def apply_fn(
        params: tuple, x: jax.Array, *, rng: jax.Array | None = None, **kwargs: Any
    ) -> jax.Array:
        if mode == "test":
            return x
        if rng is None:
            raise ValueError(
                "Dropout in mode='train' needs a PRNG key: call apply_fn(params, x, rng=key)."
            )
        keep = jax.random.bernoulli(rng, rate, x.shape)
        return jnp.where(keep, x / rate, 0.0)

    def fn(k: Kernel) -> Kernel:
        if mode == "test":
            return k
        factor = 1.0 / rate

        def diag(mat: Any) -> Any:
            if mat is None or jnp.ndim(mat) == 0 or not k.x1_is_x2:
                return mat
            eye = jnp.eye(mat.shape[0], mat.shape[1], dtype=bool)
            return jnp.where(eye, factor * mat, mat)

        cov2 = None if k.cov2 is None else factor * k.cov2
        return k.replace(
            nngp=diag(k.nngp), ntk=diag(k.ntk), cov1=factor * k.cov1, cov2=cov2, is_gaussian=False
        )

    name = f"Dropout({rate}, {mode})"
    return make_layer(lambda key, shape: (shape, ()), apply_fn, fn, name, frozenset({"dropout"}))


def _index_per_axis(idx: Any, ndim: int) -> tuple:
    """``idx`` as one entry per axis of a rank-``ndim`` array (``...`` expanded)."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    if sum(i is Ellipsis for i in idx) > 1:
        raise ValueError(f"`idx` may contain one Ellipsis at most; got {idx!r}.")
    if any(i is None for i in idx):
        raise NotImplementedError(f"Index: new axes (None) are not supported; got {idx!r}.")
    if Ellipsis in idx:
        at = idx.index(Ellipsis)
        fill = (slice(None),) * (ndim - len(idx) + 1)
        idx = idx[:at] + fill + idx[at + 1 :]
    if len(idx) > ndim:
        raise ValueError(f"`idx` {idx!r} has more entries than the input has axes ({ndim}).")
    return idx + (slice(None),) * (ndim - len(idx))


def Index(idx: Any, batch_axis: int = 0, channel_axis: int = -1) -> Layer:
    """Index the inputs as ``x[idx]``, NT's ``stax.Index`` (build ``idx`` with :data:`Slice`).

    The kernel slices the batch axis of both ``x1`` and ``x2`` and the spatial axes of both
    sides of the kernel (points layout, see :mod:`gantk.stax._layout`); integers on a
    spatial axis remove it. Masks are indexed the same way (NT).

    Args:
        idx: a numpy-style index, e.g. ``Slice[::2, :4]`` (``== (slice(None, None, 2),
            slice(None, 4))``).
        batch_axis: batch axis of the inputs (the kernel needs 0).
        channel_axis: channel axis (the kernel needs -1).

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        NotImplementedError: from ``kernel_fn`` (as NT) when the channel axis is indexed
            with anything but ``:``/``...``, the batch axis with an integer, or ``idx``
            adds axes; also for non-default ``batch_axis``/``channel_axis``.
        ValueError: from ``init_fn``/``kernel_fn`` when ``idx`` has more entries than axes.
    """

    def init_fn(key: jax.Array, input_shape: Sequence[int]) -> tuple[tuple, tuple]:
        return tuple(jax.eval_shape(lambda: jnp.zeros(tuple(input_shape))[idx]).shape), ()

    def apply_fn(params: tuple, x: jax.Array, **kwargs: Any) -> jax.Array:
        return x[idx]

    def fn(k: Kernel) -> Kernel:
        _check_axes(k, "Index", batch_axis, channel_axis)
        ndim = len(k.shape1)
        per_axis = _index_per_axis(idx, ndim)
        if per_axis[-1] != slice(None):
            raise NotImplementedError(
                f"Index: the channel axis (infinite width) can only be indexed with ':' or "
                f"'...'; got {idx!r}."
            )
        if not isinstance(per_axis[0], slice):
            raise NotImplementedError(
                f"Index: the batch axis must be indexed with a slice, not {per_axis[0]!r} "
                "(kernels always keep a batch axis)."
            )
        sel = per_axis[:-1]
        grid1, grid2 = k.shape1[:-1], k.shape2[:-1]
        new1 = jax.eval_shape(lambda: jnp.zeros(grid1)[sel]).shape
        new2 = jax.eval_shape(lambda: jnp.zeros(grid2)[sel]).shape

        def pairs(mat: Any) -> Any:
            if mat is None or jnp.ndim(mat) == 0:
                return mat
            sliced = jnp.reshape(mat, grid1 + grid2)[sel]
            sliced = sliced[(slice(None),) * len(new1) + sel]
            return jnp.reshape(sliced, (math.prod(new1), math.prod(new2)))

        def singles(v: Any, grid: tuple, new: tuple) -> Any:
            return None if v is None else jnp.reshape(jnp.reshape(v, grid)[sel], (math.prod(new),))

        return k.replace(
            nngp=pairs(k.nngp),
            ntk=pairs(k.ntk),
            cov1=singles(k.cov1, grid1, new1),
            cov2=singles(k.cov2, grid2, new2),
            shape1=(*new1, k.shape1[-1]),
            shape2=(*new2, k.shape2[-1]),
        )

    return make_layer(
        init_fn, apply_fn, fn, f"Index({idx!r})", frozenset({"index"}),
        mask_fn=lambda mask, input_shape: mask[idx],
    )


class _Slice:
    """``Slice[1:10, :, ::-1] == (slice(1, 10), slice(None), slice(None, None, -1))``."""

    def __getitem__(self, idx: Any) -> Any:
        return idx


#: Helper to write :func:`Index`'s ``idx`` as in numpy, NT's ``stax.Slice``.
Slice = _Slice()


def LayerNorm(eps: float = 1e-12) -> Layer:
    """Layer normalisation over the (infinite) feature axis, NT's ``stax.LayerNorm()``.

    Finite width: ``(x - mean(x)) / sqrt(var(x) + eps)`` over the last axis. Infinite width
    (centred Gaussian inputs, whose feature mean vanishes):
    ``nngp' = nngp / sqrt((eps + cov1_i)(eps + cov2_j))``, likewise ``ntk``, and
    ``cov' = cov / (eps + cov)``. With masked inputs (NT) the finite-width statistics are
    over the unmasked channels (masked entries, zeroed, still enter the variance as in NT's
    ``mean_and_var``), and the kernel needs masks that do not vary across channels.

    Args:
        eps: non-negative regulariser added to the variances.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: on a negative ``eps``; the kernel_fn raises NotImplementedError on
            non-Gaussian inputs (as NT does).
    """
    check_nonneg(eps, "eps")

    def apply_fn(
        params: tuple, x: jax.Array, *, mask: jax.Array | None = None, **kwargs: Any
    ) -> jax.Array:
        if mask is None:
            mean = jnp.mean(x, axis=-1, keepdims=True)
            var = jnp.var(x, axis=-1, keepdims=True)
        else:  # NT's mean_and_var with a mask: statistics of the unmasked channels
            count = x.shape[-1] - jnp.count_nonzero(
                jnp.broadcast_to(mask, x.shape), axis=-1, keepdims=True
            )
            count = jnp.maximum(count, 1)
            mean = jnp.sum(x, axis=-1, keepdims=True) / count
            var = jnp.sum((x - mean) ** 2, axis=-1, keepdims=True) / count
        return (x - mean) / jnp.sqrt(var + eps)

    def fn(k: Kernel) -> Kernel:
        if not k.is_gaussian:
            raise NotImplementedError(
                "LayerNorm's kernel is only implemented for centred Gaussian inputs "
                "(put a Dense layer before it)."
            )
        for m in (k.mask1, k.mask2):
            if m is not None and m.shape[-1] != 1:
                raise NotImplementedError(
                    "LayerNorm with masks that differ across channels is not implemented in "
                    f"the infinite-width limit (as in NT); got a mask of shape {m.shape}."
                )
        inv1 = 1.0 / jnp.sqrt(eps + k.cov1)
        inv2 = 1.0 / jnp.sqrt(eps + k.var2)
        scale = inv1[:, None] * inv2[None, :]  # divisions on vectors only (fusion-friendly)
        ntk = None if k.ntk is None else k.ntk * scale
        cov2 = None if k.cov2 is None else k.cov2 / (eps + k.cov2)
        return k.replace(nngp=k.nngp * scale, ntk=ntk, cov1=k.cov1 / (eps + k.cov1), cov2=cov2)

    return make_layer(lambda key, s: (s, ()), apply_fn, fn, f"LayerNorm(eps={eps})")
