"""Branching layers of :mod:`gantk.stax`: ``FanOut``, ``FanInSum``, ``FanInProd``,
``FanInConcat`` (NT 0.6.5 semantics, over the feature axis)."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gantk._validate import check_positive_int
from gantk.stax._masking import concat_masks, fan_in_all
from gantk.stax.core import make_layer, with_width
from gantk.stax.kernel import Kernel, Layer

__all__ = ["FanInConcat", "FanInProd", "FanInSum", "FanOut"]


def FanOut(num: int) -> Layer:
    """Replicate the input ``num`` times (a list), NT's ``stax.FanOut``.

    Raises:
        ValueError: if ``num`` is not a positive integer.
    """
    num = check_positive_int(num, "num")
    return make_layer(
        lambda key, input_shape: ([input_shape] * num, ()),
        lambda params, x, **kwargs: [x] * num,
        lambda k: [k] * num,
        f"FanOut({num})",
        composite=True,  # the masks travel with the copies, as in NT
    )


def FanInSum() -> Layer:
    """Sum a list of branches, NT's ``stax.FanInSum``.

    The kernels of the branches are summed (``nngp``, ``ntk``, ``cov1``, ``cov2``), which is
    exact when the branches are independent centred Gaussians given the inputs (e.g. each
    ends with its own ``Dense``, or is an ``Identity`` of a Gaussian that the other
    branches transform with fresh weights). As in NT, two ``Identity`` branches of the same
    variable are *not* recognised as perfectly correlated. Masking (NT's ``_sum_masks``):
    an entry stays masked when every branch masks it.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)`` acting on lists.

    Raises:
        ValueError: (from ``kernel_fn``) when the branch widths differ.
        NotImplementedError: (from ``kernel_fn``) when several branches are not Gaussian
            (as NT does).
    """

    def fn(ks: Any) -> Kernel:
        if isinstance(ks, Kernel):
            return ks
        widths = [k.shape1[-1] for k in ks]
        if any(w != widths[0] for w in widths[1:]):
            raise ValueError(f"FanInSum needs branches of equal width; got widths {widths}.")
        is_gaussian = all(k.is_gaussian for k in ks)
        if not is_gaussian and len(ks) > 1:
            raise NotImplementedError(
                "FanInSum of several branches is only implemented when every branch is a "
                "centred Gaussian (ends with a Dense layer or an Identity of one); got "
                f"is_gaussian={[k.is_gaussian for k in ks]}."
            )

        def total(name: str) -> Any:
            mats = [getattr(k, name) for k in ks]
            if any(m is None for m in mats):
                return None
            out = mats[0]
            for m in mats[1:]:
                out = out + m
            return out

        return ks[0].replace(
            nngp=total("nngp"),
            ntk=total("ntk"),
            cov1=total("cov1"),
            cov2=total("cov2"),
            is_gaussian=is_gaussian,
        )

    init_fn, apply_fn = _elementwise_fan_in("FanInSum", operator.add)
    return make_layer(init_fn, apply_fn, fn, "FanInSum", mask_fn=fan_in_all)


def _elementwise_fan_in(name: str, op: Callable) -> tuple[Callable, Callable]:
    """``init_fn``/``apply_fn`` of a fan-in that combines equal-shape branches with ``op``."""

    def init_fn(key: jax.Array, input_shapes: Sequence) -> tuple[Any, tuple]:
        shapes = [tuple(s) for s in input_shapes]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError(f"{name} needs equal input shapes; got {shapes}.")
        return input_shapes[0], ()

    def apply_fn(params: tuple, xs: Sequence, **kwargs: Any) -> jax.Array:
        return functools.reduce(op, xs)

    return init_fn, apply_fn


def _fan_in_kernels(ks: Any, name: str) -> list[Kernel]:
    if isinstance(ks, Kernel):
        return [ks]
    if not isinstance(ks, list) or not all(isinstance(k, Kernel) for k in ks):
        raise ValueError(f"{name} takes a list of branches (after FanOut/parallel); got {ks!r}.")
    return ks


def FanInProd() -> Layer:
    """Elementwise product of a list of branches, NT's ``stax.FanInProd``.

    For independent branches ``E[Π f_i(x) Π f_i(y)] = Π E[f_i(x) f_i(y)]``, so the NNGP
    and variances multiply and, by the product rule, ``ntk = Σ_i ntk_i Π_{j≠i} nngp_j``.
    The product is not Gaussian (unless there is one branch), as in NT. Masks as
    ``FanInSum``'s (masked in every branch).

    Returns:
        ``(init_fn, apply_fn, kernel_fn)`` acting on lists.

    Raises:
        ValueError: from ``init_fn`` and ``kernel_fn`` when the branch shapes differ.
    """

    def fn(ks: Any) -> Kernel:
        ks = _fan_in_kernels(ks, "FanInProd")
        if len(ks) == 1:
            return ks[0]
        widths = [k.shape1[-1] for k in ks]
        if any(w != widths[0] for w in widths[1:]):
            raise ValueError(f"FanInProd needs branches of equal width; got widths {widths}.")
        nngp, ntk = ks[0].nngp, ks[0].ntk
        for k in ks[1:]:
            if ntk is not None:
                ntk = ntk * k.nngp + nngp * k.ntk
            nngp = nngp * k.nngp
        cov1 = math.prod([k.cov1 for k in ks[1:]], start=ks[0].cov1)
        cov2 = None if ks[0].cov2 is None else math.prod([k.cov2 for k in ks[1:]], start=ks[0].cov2)
        return ks[0].replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)

    init_fn, apply_fn = _elementwise_fan_in("FanInProd", operator.mul)
    return make_layer(init_fn, apply_fn, fn, "FanInProd", mask_fn=fan_in_all)


def FanInConcat(axis: int = -1) -> Layer:
    """Concatenate a list of branches along the feature axis, NT's ``stax.FanInConcat``.

    Each output unit is a unit of one branch, so the kernels are the width-weighted means
    ``Σ_i w_i K_i / Σ_i w_i`` (``w_i`` the branch widths) of ``nngp``, ``ntk``, ``cov1``,
    ``cov2``; the output width is ``Σ_i w_i``. As in NT the result is marked not Gaussian,
    and the masks are concatenated (NT's ``_concat_masks``: each broadcast to its branch
    width first).

    Args:
        axis: the concatenation axis of the activations; the kernel needs it to be their
            channel axis (``-1`` by default, ``0`` after e.g. ``Dense(batch_axis=1,
            channel_axis=0)``: NT's ``Kernel.channel_axis``).

    Returns:
        ``(init_fn, apply_fn, kernel_fn)`` acting on lists.

    Raises:
        ValueError: on a non-int ``axis``; from ``init_fn`` on shapes that differ off
            ``axis``.
        NotImplementedError: from ``kernel_fn`` when ``axis`` is not the channel axis
            (e.g. the batch or a spatial axis).
    """
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"`axis` must be an int; got {axis!r}.")

    def init_fn(key: jax.Array, input_shapes: Sequence) -> tuple[Any, tuple]:
        shapes = [tuple(s) for s in input_shapes]
        a = axis % len(shapes[0])
        if any(s[:a] + s[a + 1 :] != shapes[0][:a] + shapes[0][a + 1 :] for s in shapes[1:]):
            raise ValueError(f"FanInConcat needs equal shapes off axis {axis}; got {shapes}.")
        out = list(shapes[0])
        out[a] = sum(s[a] for s in shapes)
        return tuple(out), ()

    def apply_fn(params: tuple, xs: Sequence, **kwargs: Any) -> jax.Array:
        return jnp.concatenate(list(xs), axis=axis)

    def fn(ks: Any) -> Kernel:
        ks = _fan_in_kernels(ks, "FanInConcat")
        ndim = len(ks[0].shape1)
        if axis % ndim != ks[0].channel_axis:
            raise NotImplementedError(
                f"FanInConcat(axis={axis}): the infinite-width kernel is only implemented "
                f"for concatenation along the channel axis ({ks[0].channel_axis} for "
                f"activations of rank {ndim}); got axis {axis % ndim}."
            )
        widths = [k.shape1[-1] for k in ks]  # canonical shapes: channel last
        total = sum(widths)

        def mean(name: str) -> Any:
            mats = [getattr(k, name) for k in ks]
            if any(m is None for m in mats):
                return None
            return sum(w / total * m for w, m in zip(widths, mats, strict=True))

        k = ks[0].replace(
            nngp=mean("nngp"), ntk=mean("ntk"), cov1=mean("cov1"), cov2=mean("cov2"),
            is_gaussian=False if len(ks) > 1 else ks[0].is_gaussian,
        )
        return with_width(k, total)

    return make_layer(
        init_fn, apply_fn, fn, f"FanInConcat({axis})",
        mask_fn=lambda masks, shapes: concat_masks(masks, shapes, axis),
    )
