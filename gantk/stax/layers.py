"""Linear layers and combinators of :mod:`gantk.stax` (NT 0.6.5 semantics, rank-2 inputs).

Conventions (Lee et al. 2019, "Wide neural networks of any depth evolve as linear models",
and NT's ``stax``): a ``Dense`` layer in NTK parameterization computes
``y = W_std / sqrt(d) * x @ W + b_std * b`` with ``W, b ~ N(0, 1)``; its infinite-width
kernels are

    nngp' = W_std^2 * nngp + b_std^2        (same for cov1, cov2)
    ntk'  = nngp' + W_std^2 * ntk.

In standard parameterization (``y = x @ W + b`` with ``W ~ N(0, W_std^2 / d)``,
``b ~ N(0, b_std^2)``) the covariances are the same and
``ntk' = d * nngp + W_std^2 * ntk (+ 1 if the layer has a bias)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gantk._validate import check_choice, check_nonneg, check_positive_int
from gantk.stax.kernel import Kernel, Layer, kernel_map, make_layer

__all__ = [
    "Dense",
    "FanInConcat",
    "FanInProd",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Identity",
    "LayerNorm",
    "parallel",
    "repeat",
    "serial",
]


def _with_width(k: Kernel, width: int) -> Kernel:
    return k.replace(shape1=(*k.shape1[:-1], width), shape2=(*k.shape2[:-1], width))


def Dense(
    out_dim: int,
    W_std: float = 1.0,
    b_std: float | None = None,
    parameterization: str = "ntk",
) -> Layer:
    """Fully connected layer ``(init_fn, apply_fn, kernel_fn)``, NT's ``stax.Dense``.

    Args:
        out_dim: output width of the finite network (ignored by the infinite-width kernel
            in NTK parameterization).
        W_std: weight standard deviation, ``>= 0``.
        b_std: bias standard deviation, ``>= 0``; ``None`` means no bias (NT's default).
        parameterization: ``'ntk'`` (``y = W_std/sqrt(d) x W + b_std b``, ``W, b ~ N(0,1)``)
            or ``'standard'`` (``y = x W + b``, ``W ~ N(0, W_std^2/d)``,
            ``b ~ N(0, b_std^2)``).

    Returns:
        ``init_fn(key, (n, d)) -> ((n, out_dim), (W, b))`` with ``W`` ``(d, out_dim)``, ``b``
        ``(1, out_dim)`` or None; ``apply_fn(params, x)``; and ``kernel_fn`` implementing
        the recursions in this module's docstring.

    Raises:
        ValueError: on a non-positive-integer ``out_dim``, negative or non-finite
            ``W_std``/``b_std``, or an unknown ``parameterization``.
    """
    out_dim = check_positive_int(out_dim, "out_dim")
    check_nonneg(W_std, "W_std")
    if b_std is not None:
        check_nonneg(b_std, "b_std")
    check_choice(parameterization, "parameterization", ("ntk", "standard"))
    standard = parameterization == "standard"
    w_var = W_std**2
    b_var = None if b_std is None else b_std**2

    def init_fn(key: jax.Array, input_shape: Sequence[int]) -> tuple[tuple, tuple]:
        input_shape = tuple(input_shape)
        d = input_shape[-1]
        k_w, k_b = jax.random.split(key)
        W = jax.random.normal(k_w, (d, out_dim))
        b = None if b_std is None else jax.random.normal(k_b, (1, out_dim))
        if standard:
            W = W * (W_std / math.sqrt(d))
            b = None if b is None else b * b_std
        return (*input_shape[:-1], out_dim), (W, b)

    def apply_fn(params: tuple, x: jax.Array, **kwargs: Any) -> jax.Array:
        W, b = params
        prod = x @ W
        if standard:
            return prod if b is None else prod + b
        out = (W_std / math.sqrt(x.shape[-1])) * prod
        return out if b is None else out + b_std * b

    def affine(mat: jax.Array | None) -> jax.Array | None:
        if mat is None:
            return None
        mat = w_var * mat
        return mat if b_var is None else mat + b_var

    def fn(k: Kernel) -> Kernel:
        ntk = k.ntk
        nngp = affine(k.nngp)
        if ntk is not None:
            if standard:
                ntk = k.shape1[-1] * k.nngp + w_var * ntk
                if b_std is not None:
                    ntk = ntk + 1.0
            else:
                ntk = nngp + w_var * ntk
        k = k.replace(
            nngp=nngp, ntk=ntk, cov1=affine(k.cov1), cov2=affine(k.cov2), is_gaussian=True
        )
        return _with_width(k, out_dim)

    name = f"Dense({out_dim}, W_std={W_std}, b_std={b_std}, {parameterization})"
    return make_layer(init_fn, apply_fn, fn, name)


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


def Flatten() -> Layer:
    """Flatten all but the leading (batch) axis; the identity on rank-2 inputs.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``; the kernel is unchanged (kernels here are always
        over rank-2 inputs).
    """

    def init_fn(key: jax.Array, input_shape: Sequence[int]) -> tuple[tuple, tuple]:
        input_shape = tuple(input_shape)
        return (input_shape[0], math.prod(input_shape[1:])), ()

    def apply_fn(params: tuple, x: jax.Array, **kwargs: Any) -> jax.Array:
        return jnp.reshape(x, (x.shape[0], -1))

    return make_layer(init_fn, apply_fn, lambda k: k, "Flatten")


def LayerNorm(eps: float = 1e-12) -> Layer:
    """Layer normalisation over the (infinite) feature axis, NT's ``stax.LayerNorm()``.

    Finite width: ``(x - mean(x)) / sqrt(var(x) + eps)`` over the last axis. Infinite width
    (centred Gaussian inputs, whose feature mean vanishes):
    ``nngp' = nngp / sqrt((eps + cov1_i)(eps + cov2_j))``, likewise ``ntk``, and
    ``cov' = cov / (eps + cov)``.

    Args:
        eps: non-negative regulariser added to the variances.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: on a negative ``eps``; the kernel_fn raises NotImplementedError on
            non-Gaussian inputs (as NT does).
    """
    check_nonneg(eps, "eps")

    def apply_fn(params: tuple, x: jax.Array, **kwargs: Any) -> jax.Array:
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.var(x, axis=-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + eps)

    def fn(k: Kernel) -> Kernel:
        if not k.is_gaussian:
            raise NotImplementedError(
                "LayerNorm's kernel is only implemented for centred Gaussian inputs "
                "(put a Dense layer before it)."
            )
        inv1 = 1.0 / jnp.sqrt(eps + k.cov1)
        inv2 = 1.0 / jnp.sqrt(eps + k.var2)
        scale = inv1[:, None] * inv2[None, :]  # divisions on vectors only (fusion-friendly)
        ntk = None if k.ntk is None else k.ntk * scale
        cov2 = None if k.cov2 is None else k.cov2 / (eps + k.cov2)
        return k.replace(nngp=k.nngp * scale, ntk=ntk, cov1=k.cov1 / (eps + k.cov1), cov2=cov2)

    return make_layer(lambda key, s: (s, ()), apply_fn, fn, f"LayerNorm(eps={eps})")


def _check_layers(layers: Sequence[Any], name: str) -> list[Callable]:
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

    Raises:
        ValueError: if an argument is not a gantk.stax layer triple.
    """
    maps = _check_layers(layers, "serial")
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
    return make_layer(init_fn, apply_fn, fn, f"serial({names})")


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
    (fn_once,) = _check_layers([layer], "repeat")
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
        return lax.scan(lambda h, p: (layer_apply(p, h, **kwargs), None), x, params, length=n)[0]

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
    return make_layer(init_fn, apply_fn, fn, f"repeat({name}, {n})")


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

    Raises:
        ValueError: if an argument is not a gantk.stax layer triple; the returned functions
            raise ValueError when given a list of the wrong length.
    """
    maps = _check_layers(layers, "parallel")
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
    return make_layer(init_fn, apply_fn, fn, f"parallel({names})")


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
    )


def FanInSum() -> Layer:
    """Sum a list of branches, NT's ``stax.FanInSum``.

    The kernels of the branches are summed (``nngp``, ``ntk``, ``cov1``, ``cov2``), which is
    exact when the branches are independent centred Gaussians given the inputs (e.g. each
    ends with its own ``Dense``, or is an ``Identity`` of a Gaussian that the other
    branches transform with fresh weights). As in NT, two ``Identity`` branches of the same
    variable are *not* recognised as perfectly correlated.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)`` acting on lists.

    Raises:
        ValueError: (from ``kernel_fn``) when the branch widths differ.
        NotImplementedError: (from ``kernel_fn``) when several branches are not Gaussian
            (as NT does).
    """

    def init_fn(key: jax.Array, input_shapes: Sequence) -> tuple[Any, tuple]:
        shapes = [tuple(s) for s in input_shapes]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError(f"FanInSum needs equal input shapes; got {shapes}.")
        return input_shapes[0], ()

    def apply_fn(params: tuple, xs: Sequence, **kwargs: Any) -> jax.Array:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

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

    return make_layer(init_fn, apply_fn, fn, "FanInSum")


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
    The product is not Gaussian (unless there is one branch), as in NT.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)`` acting on lists.

    Raises:
        ValueError: from ``init_fn`` and ``kernel_fn`` when the branch shapes differ.
    """

    def init_fn(key: jax.Array, input_shapes: Sequence) -> tuple[Any, tuple]:
        shapes = [tuple(s) for s in input_shapes]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError(f"FanInProd needs equal input shapes; got {shapes}.")
        return input_shapes[0], ()

    def apply_fn(params: tuple, xs: Sequence, **kwargs: Any) -> jax.Array:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out

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

    return make_layer(init_fn, apply_fn, fn, "FanInProd")


def FanInConcat(axis: int = -1) -> Layer:
    """Concatenate a list of branches along the feature axis, NT's ``stax.FanInConcat``.

    Each output unit is a unit of one branch, so the kernels are the width-weighted means
    ``Σ_i w_i K_i / Σ_i w_i`` (``w_i`` the branch widths) of ``nngp``, ``ntk``, ``cov1``,
    ``cov2``; the output width is ``Σ_i w_i``. As in NT the result is marked not Gaussian.

    Args:
        axis: the concatenation axis; only the feature axis (``-1`` or ``1``) is
            supported for gantk's rank-2 kernels.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)`` acting on lists.

    Raises:
        NotImplementedError: for another ``axis`` (e.g. the batch axis 0).
    """
    if axis not in (-1, 1):
        raise NotImplementedError(
            f"FanInConcat supports the feature axis (-1 or 1) of rank-2 inputs; got axis={axis}."
        )

    def init_fn(key: jax.Array, input_shapes: Sequence) -> tuple[Any, tuple]:
        shapes = [tuple(s) for s in input_shapes]
        if any(s[:-1] != shapes[0][:-1] for s in shapes[1:]):
            raise ValueError(f"FanInConcat needs equal non-feature shapes; got {shapes}.")
        return (*shapes[0][:-1], sum(s[-1] for s in shapes)), ()

    def apply_fn(params: tuple, xs: Sequence, **kwargs: Any) -> jax.Array:
        return jnp.concatenate(list(xs), axis=-1)

    def fn(ks: Any) -> Kernel:
        ks = _fan_in_kernels(ks, "FanInConcat")
        widths = [k.shape1[-1] for k in ks]
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
        return _with_width(k, total)

    return make_layer(init_fn, apply_fn, fn, f"FanInConcat({axis})")
