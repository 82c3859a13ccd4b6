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
import numpy as np

from gantk._validate import check_choice, check_nonneg, check_positive_int
from gantk.stax._layout import to_canonical
from gantk.stax._masking import channel_all
from gantk.stax.core import make_layer, require_axes, with_width
from gantk.stax.kernel import Kernel, Layer

__all__ = ["Dense", "Dropout", "Flatten", "Identity", "Index", "LayerNorm", "Slice"]


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
        batch_axis: batch axis of the inputs (NT's layout requirement: a network starting
            with this layer reads ``x1``/``x2`` in this layout, and ``kernel_fn`` raises if
            the activations reaching it are in another one).
        channel_axis: feature axis the layer acts on (infinite in the kernel); the other
            axes are kept. Same requirement as ``batch_axis``.
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
            positive integers. The kernel_fn raises ValueError (naming the argument)
            when the activations reaching the layer have another batch or channel axis.

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
        require_axes(k, "Dense", batch_axis=batch_axis, channel_axis=channel_axis)
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
    return make_layer(
        init_fn, apply_fn, fn, name, mask_fn=channel_all(channel_axis), remask=True,
        req={"batch_axis": batch_axis, "channel_axis": channel_axis},
    )


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
        batch_axis: batch axis of the inputs (NT's layout requirement, see ``Dense``;
            every other axis is flattened, so the channel axis is free).
        batch_axis_out: batch axis of the output, 0 or 1 (-2/-1): the kernel's
            ``batch_axis``/``channel_axis`` become ``(0, 1)`` or ``(1, 0)``, which the
            following layers must ask for (e.g. ``Dense(batch_axis=1, channel_axis=0)``).

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: on a ``batch_axis_out`` other than 0, 1, -2, -1 or a non-int
            ``batch_axis``; from the kernel_fn when the activations reaching the layer
            have another batch axis.
    """
    if isinstance(batch_axis_out, bool) or batch_axis_out not in (0, 1, -2, -1):
        raise ValueError(f"`batch_axis_out` must be 0 or 1; got {batch_axis_out!r}.")
    if isinstance(batch_axis, bool) or not isinstance(batch_axis, int):
        raise ValueError(f"`batch_axis` must be an int; got {batch_axis!r}.")
    out_first = batch_axis_out in (0, -2)
    out_axes = {"batch_axis": 0, "channel_axis": 1} if out_first else {
        "batch_axis": 1, "channel_axis": 0}

    def out_shape(shape: Sequence[int]) -> tuple[int, int]:
        shape = tuple(shape)
        n = shape[batch_axis]
        rest = math.prod(shape[:batch_axis % len(shape)] + shape[batch_axis % len(shape) + 1 :])
        return (n, rest) if out_first else (rest, n)

    def init_fn(key: jax.Array, input_shape: Sequence[int]) -> tuple[tuple, tuple]:
        return out_shape(input_shape), ()

    def apply_fn(params: tuple, x: jax.Array, **kwargs: Any) -> jax.Array:
        shape = out_shape(x.shape)
        return jnp.reshape(jnp.moveaxis(x, batch_axis, 0 if out_first else -1), shape)

    def fn(k: Kernel) -> Kernel:
        require_axes(k, "Flatten", batch_axis=batch_axis)
        if len(k.shape1) <= 2:
            return k.replace(**out_axes)
        n1, n2 = k.shape1[0], k.shape2[0]  # canonical (n, *spatial, C) shapes
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
            shape1=(n1, math.prod(k.shape1[1:])),
            shape2=(n2, math.prod(k.shape2[1:])),
            **out_axes,
        )

    name = f"Flatten({batch_axis}, {batch_axis_out})"
    def mask_fn(mask: jax.Array, input_shape: Sequence[int]) -> jax.Array:
        return apply_fn((), jnp.broadcast_to(mask, tuple(input_shape)))

    return make_layer(
        init_fn, apply_fn, fn, name, frozenset({"flatten"}), mask_fn=mask_fn,
        req={"batch_axis": batch_axis, "channel_axis": None},
    )


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
        batch_axis: batch axis of the inputs (NT's layout requirement, see ``Dense``).
        channel_axis: channel axis of the inputs (same).

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``. Integers in ``idx`` remove axes, so the
        kernel's ``batch_axis``/``channel_axis`` shift as the activations' do (NT).

    Raises:
        NotImplementedError: from ``kernel_fn`` (as NT) when the channel axis is indexed
            with anything but ``:``/``...``, the batch axis with an integer, or ``idx``
            adds axes.
        ValueError: from ``init_fn``/``kernel_fn`` when ``idx`` has more entries than axes;
            from ``kernel_fn`` when the activations reaching the layer have another batch
            or channel axis.
    """

    def init_fn(key: jax.Array, input_shape: Sequence[int]) -> tuple[tuple, tuple]:
        return tuple(jax.eval_shape(lambda: jnp.zeros(tuple(input_shape))[idx]).shape), ()

    def apply_fn(params: tuple, x: jax.Array, **kwargs: Any) -> jax.Array:
        return x[idx]

    def fn(k: Kernel) -> Kernel:
        require_axes(k, "Index", batch_axis=batch_axis, channel_axis=channel_axis)
        ndim = len(k.shape1)
        b, c = k.axes
        per_axis = _index_per_axis(idx, ndim)  # in the activations' layout
        spatial = [i for i in range(ndim) if i not in (b, c)]
        removed = [i for i, s in enumerate(per_axis) if isinstance(s, (int, np.integer))]
        new_axes = {
            "batch_axis": b - sum(i < b for i in removed),
            "channel_axis": c - sum(i < c for i in removed),
        }
        per_axis = (per_axis[b], *(per_axis[i] for i in spatial), per_axis[c])  # canonical
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
            **new_axes,
        )

    return make_layer(
        init_fn, apply_fn, fn, f"Index({idx!r})", frozenset({"index"}),
        mask_fn=lambda mask, input_shape: mask[idx],
        req={"batch_axis": batch_axis, "channel_axis": channel_axis},
    )


class _Slice:
    """``Slice[1:10, :, ::-1] == (slice(1, 10), slice(None), slice(None, None, -1))``."""

    def __getitem__(self, idx: Any) -> Any:
        return idx


#: Helper to write :func:`Index`'s ``idx`` as in numpy, NT's ``stax.Slice``.
Slice = _Slice()


def LayerNorm(
    axis: int | Sequence[int] = -1,
    eps: float = 1e-12,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> Layer:
    """Layer normalisation, NT's ``stax.LayerNorm(axis, eps, batch_axis, channel_axis)``.

    Finite width: ``(x - mean(x)) / sqrt(var(x) + eps)`` with the statistics over ``axis``
    (the channel axis, possibly with spatial axes and the batch axis). Infinite width
    (centred Gaussian inputs, whose mean over infinitely many channels vanishes; NT's
    ``LayerNorm.kernel_fn``): with ``v1 = mean_A (eps + cov1)`` the mean of the variances
    over the non-channel axes ``A`` of ``axis`` (``v1 = eps + cov1`` when ``axis`` is the
    channel axis alone), likewise ``v2``,
    ``nngp' = nngp / sqrt(v1_i v2_j)``, ``ntk' = ntk / sqrt(v1_i v2_j)``,
    ``cov' = cov / v``. With masked inputs (NT) the finite-width statistics are over the
    unmasked entries (masked entries, zeroed, still enter the sums as in NT's
    ``mean_and_var``), the kernel's means likewise, and the kernel needs masks that do
    not vary across channels.

    Args:
        axis: axis or axes of the activations to normalise over; must include the
            channel axis.
        eps: non-negative regulariser added to the variances.
        batch_axis: batch axis of the inputs (NT's layout requirement, see ``Dense``).
        channel_axis: channel axis of the inputs (same).

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: on a negative ``eps`` or non-int axes; from the kernel_fn when
            ``axis`` misses the channel axis (the limit is not a kernel then, as NT) or
            the activations reaching the layer have another layout.
        NotImplementedError: from the kernel_fn on non-Gaussian inputs or masks varying
            across channels (as NT does).
    """
    check_nonneg(eps, "eps")
    axes_arg = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    for a in (*axes_arg, batch_axis, channel_axis):
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise ValueError(
                f"`axis`, `batch_axis` and `channel_axis` must be ints; got {a!r} (as in NT, "
                "`eps` is the second argument: pass eps=... by keyword)."
            )

    def norm_axes(ndim: int) -> tuple[int, ...]:
        return tuple(sorted({int(a) % ndim for a in axes_arg}))

    def apply_fn(
        params: tuple, x: jax.Array, *, mask: jax.Array | None = None, **kwargs: Any
    ) -> jax.Array:
        ax = norm_axes(x.ndim)
        if mask is None:
            mean = jnp.mean(x, axis=ax, keepdims=True)
            var = jnp.var(x, axis=ax, keepdims=True)
        else:  # NT's mean_and_var with a mask: statistics of the unmasked entries
            size = math.prod(x.shape[a] for a in ax)
            count = size - jnp.count_nonzero(jnp.broadcast_to(mask, x.shape), axis=ax,
                                             keepdims=True)
            count = jnp.maximum(count, 1)
            mean = jnp.sum(x, axis=ax, keepdims=True) / count
            var = jnp.sum((x - mean) ** 2, axis=ax, keepdims=True) / count
        return (x - mean) / jnp.sqrt(var + eps)

    def fn(k: Kernel) -> Kernel:
        require_axes(k, "LayerNorm", batch_axis=batch_axis, channel_axis=channel_axis)
        if not k.is_gaussian:
            raise NotImplementedError(
                "LayerNorm's kernel is only implemented for centred Gaussian inputs "
                "(put a Dense layer before it)."
            )
        ndim = len(k.shape1)
        b, c = k.axes
        ax = norm_axes(ndim)
        if c not in ax:
            raise ValueError(
                f"LayerNorm: normalisation over the channel axis ({c}) is necessary for "
                f"convergence to an infinite-width kernel; got axis={axis!r}."
            )
        spatial = [i for i in range(ndim) if i not in (b, c)]
        mean_over = tuple(0 if a == b else 1 + spatial.index(a) for a in ax if a != c)
        for m in (k.mask1, k.mask2):
            if m is not None and m.shape[c] != 1:
                raise NotImplementedError(
                    "LayerNorm with masks that differ across channels is not implemented in "
                    f"the infinite-width limit (as in NT); got a mask of shape {m.shape}."
                )

        def scale(cov: Any, shape: tuple, mask: Any) -> Any:
            """``eps + cov`` averaged over ``mean_over`` (masked as NT), per point."""
            v = eps + cov
            if not mean_over:
                return v
            grid = jnp.reshape(v, shape[:-1])
            if mask is None:
                mean = jnp.mean(grid, axis=mean_over, keepdims=True)
            else:
                m = jnp.broadcast_to(to_canonical(mask, k.axes)[..., 0], grid.shape)
                size = math.prod(grid.shape[a] for a in mean_over)
                count = size - jnp.count_nonzero(m, axis=mean_over, keepdims=True)
                mean = jnp.sum(grid, axis=mean_over, keepdims=True) / jnp.maximum(count, 1)
            return jnp.reshape(jnp.broadcast_to(mean, grid.shape), (-1,))

        v1 = scale(k.cov1, k.shape1, k.mask1)
        v2 = v1 if k.cov2 is None else scale(k.cov2, k.shape2, k.mask2)
        inv1, inv2 = 1.0 / jnp.sqrt(v1), 1.0 / jnp.sqrt(v2)
        s = inv1[:, None] * inv2[None, :]  # divisions on vectors only (fusion-friendly)
        ntk = None if k.ntk is None else k.ntk * s
        cov2 = None if k.cov2 is None else k.cov2 / v2
        return k.replace(nngp=k.nngp * s, ntk=ntk, cov1=k.cov1 / v1, cov2=cov2)

    mixing = len(set(axes_arg)) > 1  # statistics across points: not entrywise
    return make_layer(
        lambda key, s: (s, ()), apply_fn, fn, f"LayerNorm(axis={axis}, eps={eps})",
        frozenset({"mixing"}) if mixing else frozenset(),
        req={"batch_axis": batch_axis, "channel_axis": channel_axis},
    )
