"""Masked inputs for :mod:`gantk.stax`, with neural-tangents 0.6.5's semantics.

NT (``neural_tangents/_src/stax/requirements.py``: ``supports_masking``,
``_get_masked_array``, ``_inputs_to_kernel``; ``neural_tangents/_src/utils/kernel.py``:
``Kernel.mask``) lets ``kernel_fn(x1, x2, mask_constant=c)`` and
``apply_fn(params, x, mask_constant=c)`` treat the input entries equal to ``c`` (or NaN
entries when ``c`` is NaN) as *masked*, e.g. padding in a batch of variable-length
sequences:

1. the input mask is ``x == c`` (``isnan(x)`` for ``c = nan``), of the shape of ``x``;
   masked entries are replaced by 0 before anything is computed (so the input kernel is
   that of the zero-filled input);
2. each layer maps the masks forward with its ``mask_fn`` (the identity unless the layer
   says otherwise: ``Dense`` keeps a position masked only when *all* its channels are
   masked, ``Flatten`` reshapes, ``Index`` slices, ``FanInSum``/``FanInProd`` keep an
   entry masked only when it is masked in every branch, ``FanInConcat`` concatenates);
3. layers flagged ``remask`` (``Dense``, ``Erf``, ``Sin``, ``Exp``, ...) then set to 0 every
   kernel entry whose row or column position is masked (``Kernel.mask``), which requires
   masks that do not vary along the channel axis (NT raises NotImplementedError
   otherwise);
4. on the finite-width side every layer zeroes its masked input entries and returns a
   :class:`MaskedArray` (values, output mask); :func:`unmask_fn` zeroes the masked
   outputs, which is the function whose infinite-width limit ``kernel_fn`` computes.

Masks are held in NT's shape (that of the activations, in their own layout
``Kernel.batch_axis``/``channel_axis``, with 1 on the channel axis once a ``Dense`` has
reduced it) in :attr:`Kernel.mask1`/``mask2``, so every layer's ``mask_fn`` serves
``apply_fn`` and ``kernel_fn`` alike; gantk's kernels are in the points layout
(:mod:`gantk.stax._layout`), where remasking is a row/column mask.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gantk.stax._layout import actual_shape, to_canonical

__all__ = ["MaskedArray", "check_mask_constant", "input_mask", "unmask_fn"]

#: Mask propagation ``mask_fn(mask, input_shape) -> mask`` (lists for fan-in layers).
MaskFn = Callable[[Any, Any], Any]


@functools.partial(jax.tree_util.register_dataclass, data_fields=["masked_value", "mask"],
                   meta_fields=[])
@dataclasses.dataclass(frozen=True)
class MaskedArray:
    """An activation with its mask, NT's ``stax.MaskedArray`` (what a masked ``apply_fn`` returns).

    Attributes:
        masked_value: the activations (masked input entries were zeroed before the layer;
            the layer's own outputs at masked positions are *not* zeroed).
        mask: boolean array broadcastable to ``masked_value`` (same rank), ``True`` where
            the entry is masked.
    """

    masked_value: Any
    mask: Any


def check_mask_constant(mask_constant: Any) -> Any:
    """Validate NT's ``mask_constant``: None or a real scalar (NaN and inf allowed).

    Returns:
        ``mask_constant`` unchanged (a Python number, a 0-d array or tracer), or None.

    Raises:
        ValueError: naming ``mask_constant`` for anything else (a string, a bool, a complex
            number, an array with more than one entry).
    """
    if mask_constant is None:
        return None
    ok = not isinstance(mask_constant, (bool, np.bool_, str, bytes))
    if ok:
        try:
            dtype = jnp.result_type(mask_constant)
            shape = jnp.shape(mask_constant)
        except TypeError:
            ok = False
        else:
            ok = shape == () and (
                jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
            )
    if not ok:
        raise ValueError(
            "`mask_constant` must be None or a real scalar (the input value that marks "
            f"masked entries, NaN allowed); got {mask_constant!r}."
        )
    return mask_constant


def input_mask(x: jax.Array, mask_constant: Any) -> tuple[jax.Array, jax.Array | None]:
    """NT's ``_get_masked_array``: ``(x with masked entries set to 0, mask)``.

    Args:
        x: input array (any shape).
        mask_constant: None (no masking; the mask is None) or the real scalar marking
            masked entries; NaN masks the NaN entries.

    Returns:
        ``(x_zeroed, mask)`` with ``mask`` a boolean array of ``x``'s shape.
    """
    if mask_constant is None:
        return x, None
    c = jnp.asarray(mask_constant)
    # Compare in x's float dtype (as NT's `x == mask_constant` with a Python float), so that
    # e.g. 0.1 matches float32 inputs; integer inputs are compared in the promoted dtype.
    inexact = jnp.issubdtype(x.dtype, jnp.inexact)
    dtype = x.dtype if inexact else jnp.result_type(x.dtype, c.dtype)
    equal = x.astype(dtype) == c.astype(dtype)
    mask = jnp.where(jnp.isnan(c), jnp.isnan(x), equal) if inexact else equal
    return zero_masked(x, mask), mask


def zero_masked(x: Any, mask: Any) -> Any:
    """NT's ``utils.mask``: ``x`` with the entries where ``mask`` is True set to 0."""
    if x is None or mask is None:
        return x
    return jnp.where(mask, jnp.zeros((), x.dtype), x)


def unmask_fn(fn: Callable) -> Callable:
    """Make ``fn`` return arrays with masked entries zeroed, NT's ``stax.unmask_fn``.

    ``apply_fn(params, x, mask_constant=c)`` returns a :class:`MaskedArray`; the wrapped
    function returns its values with the masked entries set to 0 (plain outputs pass
    through). Pass ``unmask_fn(apply_fn)`` to :func:`gantk.monte_carlo_kernel_fn` or
    :func:`gantk.empirical_kernel_fn` (with ``mask_constant=c`` as a keyword argument) to
    estimate what ``kernel_fn(..., mask_constant=c)`` computes.

    Args:
        fn: a function returning arrays, :class:`MaskedArray` s or pytrees of them.

    Returns:
        The wrapped function, same signature.
    """

    def unmask(x: Any) -> Any:
        return zero_masked(x.masked_value, x.mask) if isinstance(x, MaskedArray) else x

    @functools.wraps(fn)
    def fn_no_mask(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        return jax.tree.map(unmask, out, is_leaf=lambda x: isinstance(x, MaskedArray))

    return fn_no_mask


def _is_masked(x: Any) -> bool:
    return isinstance(x, MaskedArray)


def masked_apply(apply_fn: Callable, mask_fn: MaskFn | None) -> Callable:
    """NT's ``apply_fn_with_masking``: ``apply_fn`` accepting ``mask_constant=`` and masks.

    The inputs (an array, a :class:`MaskedArray`, or a list of them for fan-in layers) are
    split into zero-filled values and masks (from ``mask_constant`` for plain arrays); the
    layer runs on the values (with ``mask=`` passed when there is a mask) and its output
    comes back as a :class:`MaskedArray` carrying ``mask_fn(masks, input_shapes)``.
    Without any mask this is exactly ``apply_fn``.
    """

    def apply_with_masking(
        params: Any, inputs: Any, *, mask_constant: Any = None, **kwargs: Any
    ) -> Any:
        check_mask_constant(mask_constant)
        leaves, treedef = jax.tree.flatten(inputs, is_leaf=_is_masked)
        values, masks = [], []
        for x in leaves:
            if isinstance(x, MaskedArray):
                values.append(zero_masked(x.masked_value, x.mask))
                masks.append(x.mask)
            elif mask_constant is None:
                values.append(x)
                masks.append(None)
            else:
                v, m = input_mask(jnp.asarray(x), mask_constant)
                values.append(v)
                masks.append(m)
        values_tree = treedef.unflatten(values)
        if all(m is None for m in masks):
            return apply_fn(params, values_tree, **kwargs)
        mask_tree = treedef.unflatten(masks)
        out = apply_fn(params, values_tree, mask=mask_tree, **kwargs)
        shapes = treedef.unflatten([tuple(jnp.shape(v)) for v in values])
        out_mask = mask_tree if mask_fn is None else mask_fn(mask_tree, shapes)
        return out if out_mask is None else MaskedArray(out, out_mask)

    return apply_with_masking


def _points_mask(
    mask: jax.Array, shape: Sequence[int], axes: tuple[int, int] = (0, -1)
) -> jax.Array:
    """NT-shaped mask (1 on the channel axis) as a vector over the points ``(n * P,)``.

    ``mask`` is in the activations' layout ``axes = (batch_axis, channel_axis)``,
    ``shape`` the canonical ``(n, *spatial, C)`` shape.
    """
    mask = to_canonical(mask, axes)
    if mask.shape[-1] != 1:
        raise NotImplementedError(
            "Different channel-wise masks are not supported for infinite-width layers (as "
            f"in NT): got a mask varying along the channel axis {axes[1]} for activations "
            f"of shape {actual_shape(tuple(shape), axes)}; put a Dense layer first so that "
            "a position is masked on all "
            "channels or none."
        )
    return jnp.reshape(jnp.broadcast_to(mask, (*shape[:-1], 1)), (-1,))


def remask(k: Any, mask1: Any, mask2: Any) -> Any:
    """NT's ``Kernel.mask``: zero every kernel entry with a masked row or column position.

    ``mask2 = None`` with ``mask1`` given means "``x2`` is ``x1``" (NT's convention). The
    kernel is in gantk's points layout; the masks are NT-shaped and become
    ``mask1``/``mask2`` of the result.
    """
    if mask1 is None and mask2 is None:
        return k.replace(mask1=mask1, mask2=mask2)
    p1 = None if mask1 is None else _points_mask(mask1, k.shape1, k.axes)
    p2 = p1 if mask2 is None else _points_mask(mask2, k.shape2, k.axes)
    if p1 is None:
        p1 = jnp.zeros((k.nngp.shape[0],), bool)

    def pairs(mat: Any) -> Any:
        if mat is None or jnp.ndim(mat) == 0:
            return mat
        return zero_masked(mat, p1[:, None] | p2[None, :])

    return k.replace(
        nngp=pairs(k.nngp),
        ntk=pairs(k.ntk),
        cov1=zero_masked(k.cov1, p1),
        cov2=zero_masked(k.cov2, p2),
        mask1=mask1,
        mask2=mask2,
    )


def _tree_attr(k: Any, name: str) -> Any:
    return [_tree_attr(v, name) for v in k] if isinstance(k, list) else getattr(k, name)


def _tree_shape(k: Any, name: str) -> Any:
    """``shape1``/``shape2`` of a kernel tree in the activations' layout (for ``mask_fn``)."""
    if isinstance(k, list):
        return [_tree_shape(v, name) for v in k]
    return actual_shape(getattr(k, name), k.axes)


def _any_mask(masks: Any) -> bool:
    return any(m is not None for m in jax.tree.leaves(masks))


def masked_map(fn: Callable, mask_fn: MaskFn | None, do_remask: bool) -> Callable:
    """NT's ``kernel_fn_with_masking``: the kernel map ``fn`` carrying and applying masks.

    The input masks are mapped with ``mask_fn`` (identity when None), ``fn`` is applied,
    and the result gets the new masks, remasked (:func:`remask`) when ``do_remask``.
    Without masks this is exactly ``fn``.
    """

    def propagate(masks: Any, shapes: Any) -> Any:
        if not _any_mask(masks):
            return None
        return masks if mask_fn is None else mask_fn(masks, shapes)

    def wrapped(k: Any) -> Any:
        m1, m2 = _tree_attr(k, "mask1"), _tree_attr(k, "mask2")
        if not (_any_mask(m1) or _any_mask(m2)):
            return fn(k)
        m1 = propagate(m1, _tree_shape(k, "shape1"))
        m2 = propagate(m2, _tree_shape(k, "shape2"))
        out = fn(k)
        if do_remask:
            return remask(out, m1, m2)
        return out.replace(mask1=m1, mask2=m2)

    return wrapped


# mask_fn of the layers (NT's, in neural_tangents/_src/stax/{linear,branching}.py).


def channel_all(channel_axis: int = -1) -> MaskFn:
    """``Dense``'s ``mask_fn``: a position is masked when all its channels are."""
    return lambda mask, shape: jnp.all(mask, axis=channel_axis, keepdims=True)


def fan_in_all(masks: list, shapes: list) -> Any:
    """``FanInSum``/``FanInProd``'s ``mask_fn`` (NT's ``_sum_masks``): masked in every branch."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out


def concat_masks(masks: list, shapes: list, axis: int = -1) -> Any:
    """``FanInConcat``'s ``mask_fn`` (NT's ``_concat_masks``) along ``axis``.

    Each mask is broadcast to its branch's size on ``axis`` and to the largest size of the
    masks on the other axes; a missing mask is all False.
    """
    if all(m is None for m in masks):
        return None
    ndim = len(shapes[0])
    axis %= ndim
    full = []
    for m, s in zip(masks, shapes, strict=True):
        if m is not None:
            m = jnp.broadcast_to(m, m.shape[:axis] + (s[axis],) + m.shape[axis + 1 :])
        full.append(m)
    present = [m.shape for m in full if m is not None]
    top = tuple(max(d) for d in zip(*present, strict=True))
    out = []
    for m, s in zip(full, shapes, strict=True):
        if m is None:
            m = jnp.zeros(top[:axis] + (s[axis],) + top[axis + 1 :], bool)
        else:
            m = jnp.broadcast_to(m, top[:axis] + (m.shape[axis],) + top[axis + 1 :])
        out.append(m)
    return jnp.concatenate(out, axis)
