"""Combinators of :mod:`gantk.stax`: ``serial``, ``parallel`` and ``repeat`` (NT 0.6.5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gantk.stax._masking import MaskedArray
from gantk.stax.core import combine_requirements, make_layer, requirements_of, tags_of
from gantk.stax.kernel import Layer, kernel_map

__all__ = ["check_layers", "parallel", "repeat", "serial"]


def check_layers(layers: Sequence[Any], name: str) -> list[Callable]:
    """Kernel maps of ``layers``; ValueError naming ``name`` if one is not a stax triple."""
    maps = []
    for i, layer in enumerate(layers):
        if not (isinstance(layer, (tuple, list)) and len(layer) == 3):
            raise ValueError(
                f"`{name}` takes (init_fn, apply_fn, kernel_fn) triples; argument {i} is "
                f"{type(layer).__name__} {layer!r}."
            )
        maps.append(kernel_map(layer[2]))
    return maps


def serial(*layers: Layer) -> Layer:
    """Compose layers in sequence, NT's ``stax.serial``.

    Args:
        *layers: ``(init_fn, apply_fn, kernel_fn)`` triples of :mod:`gantk.stax`.

    Returns:
        The composite triple; ``init_fn`` splits its key once per layer
        (``key, layer_key = split(key)``), ``apply_fn`` takes the list of layer params.

    The network's input layout (NT's requirements) is that of the first layer built with a
    ``batch_axis``/``channel_axis``; each such layer checks, when the kernel is computed,
    that the activations reaching it are in its layout.

    Raises:
        ValueError: if an argument is not a gantk.stax layer triple; from ``kernel_fn``
            when two layers' layouts conflict (e.g. ``Dense(batch_axis=1,
            channel_axis=0)`` then ``Dense()``), naming the argument.
    """
    maps = check_layers(layers, "serial")
    init_fns = [layer[0] for layer in layers]
    apply_fns = [layer[1] for layer in layers]

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, list]:
        params = []
        for init in init_fns:
            key, layer_key = jax.random.split(key)
            input_shape, p = init(layer_key, input_shape)
            params.append(p)
        return input_shape, params

    def apply_fn(params: Sequence, x: Any, **kwargs: Any) -> Any:
        for apply, p in zip(apply_fns, params, strict=True):
            x = apply(p, x, **kwargs)
        return x

    def fn(k: Any) -> Any:
        for m in maps:
            k = m(k)
        return k

    names = ", ".join(getattr(layer[2], "_gantk_name", "?") for layer in layers)
    return make_layer(
        init_fn, apply_fn, fn, f"serial({names})", tags_of(*(la[2] for la in layers)),
        composite=True, req=combine_requirements([la[2] for la in layers], parallel=False),
    )


def _tree_signature(tree: Any) -> Any:
    """Structure, static metadata, shapes and dtypes of a pytree (what ``lax.scan`` needs)."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(jnp.shape(x)), jnp.result_type(x)) for x in leaves)


def repeat(layer: Layer, n: int) -> Layer:
    """Compose ``layer`` with itself ``n`` times in a compiled loop, NT's ``stax.repeat``.

    Same values as ``serial(*([layer] * n))`` (independent parameters for each copy, drawn
    with the same key sequence as NT's ``repeat``), but the layer is traced and compiled
    once (:func:`jax.lax.scan`), so compile time does not grow with ``n``. The kernel map
    is applied once unrolled (to settle e.g. an NTK that is still the scalar 0 of the
    input) and then ``n - 1`` times in a scan, as in NT.

    Args:
        layer: an ``(init_fn, apply_fn, kernel_fn)`` triple whose ``apply_fn`` keeps the
            shape of its input and whose ``kernel_fn`` keeps the :class:`Kernel` metadata
            (``is_gaussian``, shapes), e.g. ``serial(Erf(), Dense(512))`` after a Dense.
        n: number of repetitions, ``>= 0`` (0 is the identity).

    Returns:
        The repeated triple. ``init_fn`` returns parameters stacked along a leading axis
        of length ``n`` (one slice per copy).

    Raises:
        ValueError: if ``layer`` is not a gantk.stax triple or ``n`` is not a
            non-negative integer; ``init_fn`` when the layer changes the input shape; the
            kernel_fn when the layer changes the kernel's metadata or array shapes (use
            ``serial(*([layer] * n))`` there).
    """
    (fn_once,) = check_layers([layer], "repeat")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be a non-negative integer; got {n!r}.")
    n = int(n)
    layer_init, layer_apply = layer[0], layer[1]

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, Any]:
        out_shape, _ = layer_init(key, input_shape)
        if _shapes(out_shape) != _shapes(input_shape):
            raise ValueError(
                f"repeat: the layer maps input shape {input_shape} to {out_shape}; it must "
                "keep the shape (use serial(*([layer] * n)) instead)."
            )

        def body(k: jax.Array, _: Any) -> tuple[jax.Array, Any]:
            k, layer_key = jax.random.split(k)
            return k, layer_init(layer_key, input_shape)[1]

        _, params = lax.scan(body, key, None, length=n)
        return input_shape, params

    def apply_fn(params: Any, x: Any, **kwargs: Any) -> Any:
        if n == 0:
            return x
        if kwargs.get("mask_constant") is not None or isinstance(x, MaskedArray):
            # The first copy turns x into a MaskedArray (whose mask may change shape, e.g.
            # Dense reduces the channel axis): apply it unrolled, then scan the rest.
            x = layer_apply(jax.tree.map(lambda p: p[0], params), x, **kwargs)
            params, n_scan = jax.tree.map(lambda p: p[1:], params), n - 1
        else:
            n_scan = n
        step = lambda h, p: (layer_apply(p, h, **kwargs), None)
        return lax.scan(step, x, params, length=n_scan)[0]

    def fn(k: Any) -> Any:
        if n == 0:
            return k
        k = fn_once(k)
        if n == 1:
            return k
        before = _tree_signature(k)
        after = _tree_signature(jax.eval_shape(fn_once, k))
        if before != after:
            raise ValueError(
                "repeat: the layer changes the kernel's metadata or shapes "
                f"({before} -> {after}); use serial(*([layer] * n)) instead."
            )
        return lax.scan(lambda c, _: (fn_once(c), None), k, None, length=n - 1)[0]

    name = getattr(layer[2], "_gantk_name", "?")
    return make_layer(
        init_fn, apply_fn, fn, f"repeat({name}, {n})", tags_of(layer[2]), composite=True,
        req=requirements_of(layer[2]),
    )


def _shapes(shape: Any) -> Any:
    """A shape or nested list of shapes as nested tuples of ints (for comparisons)."""
    if isinstance(shape, (tuple, list)) and all(isinstance(i, (int, np.integer)) for i in shape):
        return tuple(int(i) for i in shape)
    return tuple(_shapes(s) for s in shape)


def parallel(*layers: Layer) -> Layer:
    """Apply layers to the matching elements of a list of inputs, NT's ``stax.parallel``.

    Args:
        *layers: ``(init_fn, apply_fn, kernel_fn)`` triples of :mod:`gantk.stax`.

    Returns:
        A triple acting on lists of length ``len(layers)`` (input shapes, inputs, kernels).

    All inputs are read in one layout, that of the first branch stating one (NT); branches
    asking for different layouts warn here (as NT) and raise in ``kernel_fn``.

    Raises:
        ValueError: if an argument is not a gantk.stax layer triple; the returned functions
            raise ValueError when given a list of the wrong length.
    """
    maps = check_layers(layers, "parallel")
    n = len(layers)

    def check(values: Any, what: str) -> None:
        if not isinstance(values, (list, tuple)) or len(values) != n:
            got = f"{len(values)} items" if isinstance(values, (list, tuple)) else values
            raise ValueError(f"parallel of {n} layers needs a list of {n} {what}; got {got}.")

    def init_fn(key: jax.Array, input_shapes: Sequence) -> tuple[list, tuple]:
        check(input_shapes, "input shapes")
        keys = jax.random.split(key, n)
        outs = [layer[0](kk, s) for layer, kk, s in zip(layers, keys, input_shapes, strict=True)]
        return [o[0] for o in outs], tuple(o[1] for o in outs)

    def apply_fn(params: Sequence, xs: Sequence, **kwargs: Any) -> list:
        check(xs, "inputs")
        return [layer[1](p, x, **kwargs) for layer, p, x in zip(layers, params, xs, strict=True)]

    def fn(ks: Any) -> list:
        check(ks, "kernels")
        return [m(k) for m, k in zip(maps, ks, strict=True)]

    names = ", ".join(getattr(layer[2], "_gantk_name", "?") for layer in layers)
    return make_layer(
        init_fn, apply_fn, fn, f"parallel({names})", tags_of(*(la[2] for la in layers)),
        composite=True, req=combine_requirements([la[2] for la in layers], parallel=True),
    )
