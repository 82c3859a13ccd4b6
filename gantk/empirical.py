"""Empirical (finite-width) NNGP and NTK of any network, NT-compatible (neural-tangents 0.6.5).

For a network ``f(params, x)`` with outputs of shape ``(N, *rest)`` (or a pytree of them):

- the empirical NNGP is ``f(x1) ⊗ f(x2)``,
- the empirical NTK is ``Σ_p ∂f(x1)/∂θ_p ⊗ ∂f(x2)/∂θ_p`` (Jacot et al. 2018; Lee et al.
  2019, "Wide neural networks of any depth evolve as linear models", Eq. 4),

both laid out as NT does: output axes *zipped*, ``(N1, N2, K1, K2, ...)``, where every axis
in ``trace_axes`` is contracted (summed and divided by its size: the mean over e.g. the
logits, which is the infinite-width per-unit kernel) and every axis in ``diagonal_axes``
appears once (only the diagonal is computed). With the default ``trace_axes=(-1,)`` a
network with outputs ``(N, K)`` gives ``(N1, N2)`` kernels, the finite-width estimates of
:mod:`gantk.stax`'s ``kernel_fn(x1, x2)``.

NTK implementations (:class:`NtkImplementation`, NT's enum values):

- ``JACOBIAN_CONTRACTION`` (1, default): instantiate ``∂f/∂θ`` for each batch and
  contract; memory ``O(N · K · P)``. With ``vmap_axes`` (e.g. ``0`` for a network that
  treats examples independently) the Jacobian is computed one example at a time
  (``vmap`` of ``jacrev``), ``O(N · P)`` work instead of ``O(N² · P)``.
- ``NTK_VECTOR_PRODUCTS`` (2): ``Θ e_j = J1 (J2ᵀ e_j)``, one VJP + one JVP per column
  of the kernel, looped with :func:`jax.lax.map`; memory ``O(P + N1 N2 K²)``.
- ``STRUCTURED_DERIVATIVES`` (3): Novak, Sohl-Dickstein and Schoenholz, "Fast Finite
  Width Neural Tangent Kernel", ICML 2022. Each weight ``W`` used once, as an operand of
  a ``dot_general`` ``y = X·W`` (every ``Dense`` of :mod:`gantk.stax`, ``flax.linen``,
  ``x @ W``), contributes ``Σ_{s,s'} (X_i X_jᵀ)_{ss'} (D_i D_jᵀ)_{ss'}`` with
  ``D = ∂f/∂y`` and ``s`` the rows of ``X`` of an example (one for an MLP, the spatial
  positions for inputs of rank > 2): ``(x_i·x_j)(δ_i·δ_j)`` per layer of an MLP,
  ``O(N² width)`` instead of ``O(N² · params)``, and no Jacobian in memory. ``D`` comes
  from one VJP per output entry of an example through the function's jaxpr with a zero
  probe added to each such ``y`` (:mod:`gantk._structured`). Every other parameter
  (biases, weights used twice or by other primitives, e.g. inside ``lax.scan``) is
  handled by Jacobian contraction, so the kernel is exact for any ``f``; a layer whose
  ``X`` has many rows per example uses ``Xᵀ D`` when that is cheaper (as NT does). It
  needs ``vmap_axes`` (the rows of ``X`` must be attributed to examples); **without
  ``vmap_axes`` it is Jacobian contraction**. Batched ``dot_general`` (batch dimensions)
  and other primitives (convolutions, ...) are not given their own rules yet: their
  weights use the fallback.
- ``AUTO`` (0) picks ``STRUCTURED_DERIVATIVES`` when ``vmap_axes`` is given (for the
  3-layer width-1024 ReLU MLP on 256 points, ``benchmarks/monte_carlo.py``, one NTK took
  0.36 s vs 41 s by Jacobian contraction and 62 s by NTK-vector products, same process,
  loaded 2-core CPU), else ``JACOBIAN_CONTRACTION``.
"""

from __future__ import annotations

import collections
import enum
import functools
import math
import operator
import string
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gantk import _structured

__all__ = [
    "DEFAULT_NTK_IMPLEMENTATION",
    "NtkImplementation",
    "empirical_kernel_fn",
    "empirical_nngp_fn",
    "empirical_ntk_fn",
]


class NtkImplementation(enum.IntEnum):
    """How :func:`empirical_ntk_fn` computes the NTK (NT's enum and values)."""

    AUTO = 0
    JACOBIAN_CONTRACTION = 1
    NTK_VECTOR_PRODUCTS = 2
    STRUCTURED_DERIVATIVES = 3


#: NT's default implementation.
DEFAULT_NTK_IMPLEMENTATION = NtkImplementation.JACOBIAN_CONTRACTION
#: NT's name for the implementation its own tests use (imported by NT's test files, which
#: ``tests/nt_shim`` runs against gantk).
_DEFAULT_TESTING_NTK_IMPLEMENTATION = NtkImplementation.STRUCTURED_DERIVATIVES

_LETTERS = string.ascii_letters


def _canonical_implementation(implementation: Any) -> NtkImplementation:
    try:
        impl = NtkImplementation(implementation)
    except (ValueError, TypeError):
        raise ValueError(
            "`implementation` must be an NtkImplementation or one of 0, 1, 2, 3; got "
            f"{implementation!r}."
        ) from None
    return impl


def _axes(axes: Any, name: str) -> tuple[int, ...]:
    if isinstance(axes, (int,)) and not isinstance(axes, bool):
        return (axes,)
    if isinstance(axes, Sequence) and all(
        isinstance(a, int) and not isinstance(a, bool) for a in axes
    ):
        return tuple(axes)
    raise ValueError(f"`{name}` must be an int or a sequence of ints; got {axes!r}.")


def _canonical_axes(
    trace_axes: tuple[int, ...], diagonal_axes: tuple[int, ...], ndim: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    def one(axes: tuple[int, ...], name: str) -> tuple[int, ...]:
        out = []
        for a in axes:
            if not -ndim <= a < ndim:
                raise ValueError(
                    f"`{name}` entry {a} is out of range for network outputs of rank {ndim}."
                )
            out.append(a % ndim)
        if len(set(out)) != len(out):
            raise ValueError(f"`{name}` must not repeat an axis; got {axes!r}.")
        return tuple(sorted(out))

    trace, diag = one(trace_axes, "trace_axes"), one(diagonal_axes, "diagonal_axes")
    if set(trace) & set(diag):
        raise ValueError(
            f"`trace_axes` {trace_axes} and `diagonal_axes` {diagonal_axes} must be disjoint."
        )
    return trace, diag


def _subscripts(
    ndim: int, trace: tuple[int, ...], diag: tuple[int, ...], extra: int
) -> tuple[str, str, str]:
    """einsum subscripts ``(a, b, out)`` for two operands of rank ``ndim + extra``.

    Output axes ``i`` are zipped (``i1 i2``) unless traced (summed) or diagonal (one
    index); the trailing ``extra`` axes (parameter axes of a Jacobian) are summed.
    """
    letters = iter(_LETTERS)
    a, b, out = [], [], []
    for i in range(ndim):
        if i in trace or i in diag:
            c = next(letters)
            a.append(c)
            b.append(c)
            if i in diag:
                out.append(c)
        else:
            c1, c2 = next(letters), next(letters)
            a.append(c1)
            b.append(c2)
            out += [c1, c2]
    for _ in range(extra):
        c = next(letters)
        a.append(c)
        b.append(c)
    return "".join(a), "".join(b), "".join(out)


def _check_paired_sizes(
    shape1: Sequence[int], shape2: Sequence[int], trace: tuple, diag: tuple
) -> None:
    for i in (*trace, *diag):
        if shape1[i] != shape2[i]:
            raise ValueError(
                f"Output axis {i} is in trace_axes/diagonal_axes but f(x1) and f(x2) have "
                f"sizes {shape1[i]} and {shape2[i]} there."
            )


def _contract(
    x: jax.Array, y: jax.Array, ndim: int, trace_axes: tuple, diagonal_axes: tuple
) -> jax.Array:
    """``x ⊗ y`` over ``ndim`` output axes (zipped), trailing axes summed (NT's layout)."""
    trace, diag = _canonical_axes(trace_axes, diagonal_axes, ndim)
    _check_paired_sizes(x.shape, y.shape, trace, diag)
    extra = x.ndim - ndim
    sa, sb, so = _subscripts(ndim, trace, diag, extra)
    size = math.prod(x.shape[i] for i in trace)
    prec = jax.lax.Precision.HIGHEST
    return jnp.einsum(f"{sa},{sb}->{so}", x, y, precision=prec) / size


def _trace_and_diagonal(
    full: jax.Array, ndim: int, trace_axes: tuple, diagonal_axes: tuple
) -> jax.Array:
    """NT's layout from a full kernel of shape ``(*out1, *out2)``."""
    trace, diag = _canonical_axes(trace_axes, diagonal_axes, ndim)
    sa, sb, so = _subscripts(ndim, trace, diag, 0)
    size = math.prod(full.shape[i] for i in trace)
    return jnp.einsum(f"{sa}{sb}->{so}", full) / size


def _read_keys(key: Any, x1: Any, x2: Any) -> tuple[Any, Any]:
    """NT's rule: ``x2 is None`` -> the same key twice, else ``(key, fold_in(key, 1))``."""
    if key is None or x2 is None:
        return key, key
    if isinstance(key, tuple) and len(key) == 2:
        return key
    return key, jax.random.fold_in(key, 1)


def _split_kwargs(kwargs: dict, x1: Any, x2: Any) -> tuple[dict, dict]:
    """NT's ``split_kwargs``: ``rng`` -> two keys, 2-tuples -> (for x1, for x2), else shared."""
    kw1, kw2 = {}, {}
    for k, v in kwargs.items():
        if k == "rng":
            kw1[k], kw2[k] = _read_keys(v, x1, x2)
        elif isinstance(v, tuple) and len(v) == 2:
            kw1[k], kw2[k] = v
        else:
            kw1[k] = kw2[k] = v
    return kw1, kw2


def _check_f(f: Any) -> None:
    if not callable(f):
        raise ValueError(f"`f` must be callable f(params, x, **kwargs); got {f!r}.")


def empirical_nngp_fn(
    f: Callable, trace_axes: int | Sequence[int] = (-1,), diagonal_axes: int | Sequence[int] = ()
) -> Callable:
    """Empirical NNGP ``f(x1) ⊗ f(x2)`` of one network, NT's ``empirical_nngp_fn``.

    Args:
        f: ``f(params, x, **kwargs)`` returning an array (or pytree of arrays) whose
            leading axis is the batch.
        trace_axes: output axes contracted (mean over the pair of axes).
        diagonal_axes: output axes of which only the diagonal is kept.

    Returns:
        ``nngp_fn(x1, x2, params, **apply_fn_kwargs)``; ``x2=None`` means ``x1``. For
        outputs of shape ``(N, K)`` and the defaults the result is ``(N1, N2)``; in
        general the zipped shape described in the module docstring.

    Raises:
        ValueError: on a non-callable ``f`` or malformed axes; ``nngp_fn`` raises
            ValueError when the axes are out of range or traced/diagonal axes of
            ``f(x1)`` and ``f(x2)`` differ in size.
    """
    _check_f(f)
    trace_axes = _axes(trace_axes, "trace_axes")
    diagonal_axes = _axes(diagonal_axes, "diagonal_axes")

    def nngp_fn(x1: Any, x2: Any, params: Any, **apply_fn_kwargs: Any) -> Any:
        kw1, kw2 = _split_kwargs(apply_fn_kwargs, x1, x2)
        out1 = f(params, x1, **kw1)
        out2 = out1 if x2 is None else f(params, x2, **kw2)
        return jax.tree.map(
            lambda a, b: _contract(a, b, a.ndim, trace_axes, diagonal_axes), out1, out2
        )

    return nngp_fn


def _vmap_axes(vmap_axes: Any) -> tuple[Any, Any, dict]:
    if vmap_axes is None:
        return None, None, {}
    if isinstance(vmap_axes, tuple) and len(vmap_axes) == 3:
        in_axes, out_axes, kw_axes = vmap_axes
        return in_axes, out_axes, dict(kw_axes or {})
    return vmap_axes, vmap_axes, {}


def _leaf_out_axes(out_axes: Any, out_shape: Any) -> list[int]:
    """NT's ``out_axes`` (a pytree prefix of the outputs) as one axis per output leaf."""
    return jax.tree.leaves(
        jax.tree.map(lambda ax, sub: [ax] * len(jax.tree.leaves(sub)), out_axes, out_shape)
    )


def _per_example(
    fn: Callable, x: Any, kwargs: dict, vmap_axes: Any, leaf_out_axes: list[int]
) -> Any:
    """``vmap`` of ``fn(x_i, kwargs_i) -> (outs, aux)`` over the examples of ``x``.

    ``fn`` sees each example with its batch axis kept (size 1) and returns one pytree per
    output leaf whose arrays lead with that output's axes (batch axis of size 1 at
    ``leaf_out_axes[leaf]``), and any ``aux``. The result has the batch axis back at
    ``leaf_out_axes[leaf]`` in ``outs`` and first in ``aux``.
    """
    in_axes, _, kw_axes = _vmap_axes(vmap_axes)
    fixed = {k: v for k, v in kwargs.items() if k not in kw_axes}
    batched = {k: v for k, v in kwargs.items() if k in kw_axes}

    def expand(axes: Any, tree: Any) -> Any:
        return jax.tree.map(
            lambda ax, sub: jax.tree.map(lambda a: jnp.expand_dims(a, ax), sub), axes, tree
        )

    def one(xi: Any, kwi: dict) -> Any:
        kwi = {k: jnp.expand_dims(v, kw_axes[k]) for k, v in kwi.items()}
        outs, aux = fn(expand(in_axes, xi), {**fixed, **kwi})
        outs = [
            jax.tree.map(lambda a, ax=ax: jnp.squeeze(a, axis=ax), o)
            for o, ax in zip(outs, leaf_out_axes, strict=True)
        ]
        return outs, aux

    kw_in = {k: kw_axes[k] for k in batched}
    return jax.vmap(one, in_axes=(in_axes, kw_in), out_axes=(list(leaf_out_axes), 0))(
        x, batched
    )


def _jacobians(f: Callable, params: Any, x: Any, kwargs: dict, vmap_axes: Any) -> list[Any]:
    """``∂f(x)/∂θ`` per output leaf: leaves of shape ``(*out_leaf, *param_leaf)``."""
    in_axes, out_axes, _ = _vmap_axes(vmap_axes)
    out_shape = jax.eval_shape(lambda p: f(p, x, **kwargs), params)
    n_out = len(jax.tree.leaves(out_shape))

    def jacs(xx: Any, kw: dict) -> list[Any]:
        return [
            jax.jacrev(lambda p, leaf=leaf: jax.tree.leaves(f(p, xx, **kw))[leaf])(params)
            for leaf in range(n_out)
        ]

    if in_axes is None:
        return jacs(x, kwargs)
    leaf_axes = _leaf_out_axes(out_axes, out_shape)
    return _per_example(lambda xx, kw: (jacs(xx, kw), None), x, kwargs, vmap_axes, leaf_axes)[0]


def _is_array_tree(v: Any) -> bool:
    leaves = jax.tree.leaves(v)
    return bool(leaves) and all(isinstance(a, (jax.Array, np.ndarray)) for a in leaves)


def _example_jaxpr(f: Callable, params: Any, x: Any, kwargs: dict, vmap_axes: Any) -> tuple:
    """Jaxpr of ``f`` on one example (batch axis of size 1): ``(closed, sites, call)``.

    ``call(params_leaves, x_i, kwargs_i)`` flattens its arguments in the jaxpr's order.
    """
    in_axes, _, kw_axes = _vmap_axes(vmap_axes)
    dynamic = {k: v for k, v in kwargs.items() if _is_array_tree(v)}
    static = {k: v for k, v in kwargs.items() if k not in dynamic}
    leaves, treedef = jax.tree.flatten(params)

    def g(param_leaves: list, xx: Any, kw: dict) -> list:
        return jax.tree.leaves(f(jax.tree.unflatten(treedef, param_leaves), xx, **static, **kw))

    def first(x: Any, kw: dict) -> tuple[Any, dict]:
        def cut(ax: int) -> Callable:
            return lambda a: jax.lax.slice_in_dim(a, 0, 1, axis=ax % a.ndim)

        xi = jax.tree.map(lambda ax, sub: jax.tree.map(cut(ax), sub), in_axes, x)
        kwi = {k: cut(kw_axes[k])(v) if k in kw_axes else v for k, v in kw.items()}
        return xi, kwi

    ex_x, ex_kw = jax.eval_shape(first, x, dynamic)
    closed = jax.make_jaxpr(g)(leaves, ex_x, ex_kw)
    sites = _structured.find_sites(closed.jaxpr, len(leaves))

    def call(param_leaves: list, xx: Any, kw: dict) -> list:
        return jax.tree.leaves((param_leaves, xx, {k: kw[k] for k in dynamic}))

    return closed, sites, call


def _structured_derivatives(
    f: Callable, params: Any, x: Any, kwargs: dict, vmap_axes: Any, example: tuple
) -> tuple[list[tuple[list, list]], list[jax.Array], list[int]]:
    """Per-example ``D = ∂f/∂y`` at each site, Jacobians of the other leaves, and ``X``.

    Returns ``(per_output, xs, fallback)``: for each output leaf, ``(Ds, Js)`` with ``Ds``
    of shape ``(*out_leaf, *Site.y_shape)`` (one per site) and ``Js`` of shape
    ``(*out_leaf, *param_leaf)`` (one per leaf in ``fallback``); ``xs`` the other
    operands, ``(N, *X_shape)``.
    """
    _, out_axes, _ = _vmap_axes(vmap_axes)
    closed, sites, call = example
    leaves = jax.tree.leaves(params)
    fallback = [i for i in range(len(leaves)) if i not in sites]
    site_list = list(sites.values())
    out_shape = jax.eval_shape(lambda p: f(p, x, **kwargs), params)

    def derivatives(xx: Any, kw: dict) -> tuple[list, list]:
        def h(probes: list, fb: list) -> tuple[list, list]:
            full = list(leaves)
            for i, v in zip(fallback, fb, strict=True):
                full[i] = v
            return _structured.eval_with_probes(closed, call(full, xx, kw), site_list, probes)

        zeros = [jnp.zeros(s.y_shape, s.y_dtype) for s in site_list]
        jac, xs = jax.jacrev(h, argnums=(0, 1), has_aux=True)(
            zeros, [leaves[i] for i in fallback]
        )
        return [tuple(j) for j in jac], xs

    leaf_axes = _leaf_out_axes(out_axes, out_shape)
    per_output, xs = _per_example(derivatives, x, kwargs, vmap_axes, leaf_axes)
    return per_output, xs, fallback


def empirical_ntk_fn(
    f: Callable,
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = DEFAULT_NTK_IMPLEMENTATION,
) -> Callable:
    """Empirical NTK ``Σ_p ∂f(x1)/∂θ_p ⊗ ∂f(x2)/∂θ_p``, NT's ``empirical_ntk_fn``.

    Args:
        f: ``f(params, x, **kwargs)`` returning an array (or pytree of arrays).
        trace_axes: output axes contracted (mean over the pair of axes).
        diagonal_axes: output axes of which only the diagonal is kept.
        vmap_axes: ``None``, an int (``in_axes = out_axes``), or NT's triple
            ``(in_axes, out_axes, kwargs_axes)``: certifies that ``f`` acts independently
            on slices of ``x`` along ``in_axes`` (Jacobians are then computed per example).
            Wrong (silently) for networks that mix examples, as in NT.
        implementation: an :class:`NtkImplementation` or its int value (see the module
            docstring). ``STRUCTURED_DERIVATIVES`` (Novak et al., ICML 2022, "Fast Finite
            Width Neural Tangent Kernel") and ``AUTO`` use the structure of ``dot_general``
            weights only when ``vmap_axes`` is given, else Jacobian contraction; all
            implementations give the same kernel.

    Returns:
        ``ntk_fn(x1, x2, params, **apply_fn_kwargs)`` with ``x2=None`` meaning ``x1``;
        ``(N1, N2)`` for ``(N, K)`` outputs with the defaults.

    Raises:
        ValueError: on a non-callable ``f``, malformed axes or an unknown
            ``implementation``.
    """
    _check_f(f)
    trace_axes = _axes(trace_axes, "trace_axes")
    diagonal_axes = _axes(diagonal_axes, "diagonal_axes")
    impl = _canonical_implementation(implementation)
    if impl == NtkImplementation.AUTO:  # see the module docstring
        impl = (
            NtkImplementation.JACOBIAN_CONTRACTION
            if vmap_axes is None
            else NtkImplementation.STRUCTURED_DERIVATIVES
        )

    def jacobian_contraction(x1: Any, x2: Any, params: Any, **apply_fn_kwargs: Any) -> Any:
        kw1, kw2 = _split_kwargs(apply_fn_kwargs, x1, x2)
        shapes = jax.eval_shape(lambda p: f(p, x1, **kw1), params)
        j1 = _jacobians(f, params, x1, kw1, vmap_axes)
        j2 = j1 if x2 is None else _jacobians(f, params, x2, kw2, vmap_axes)
        out = []
        for shape, a, b in zip(jax.tree.leaves(shapes), j1, j2, strict=True):
            ndim = len(shape.shape)
            blocks = jax.tree.map(
                lambda u, v, ndim=ndim: _contract(u, v, ndim, trace_axes, diagonal_axes), a, b
            )
            out.append(functools.reduce(operator.add, jax.tree.leaves(blocks)))
        return jax.tree.unflatten(jax.tree.structure(shapes), out)

    def ntk_vector_products(x1: Any, x2: Any, params: Any, **apply_fn_kwargs: Any) -> Any:
        kw1, kw2 = _split_kwargs(apply_fn_kwargs, x1, x2)
        xx2 = x1 if x2 is None else x2
        shapes = jax.eval_shape(lambda p: f(p, x1, **kw1), params)
        out = []
        for leaf in range(len(jax.tree.leaves(shapes))):
            f1 = lambda p, leaf=leaf: jax.tree.leaves(f(p, x1, **kw1))[leaf]
            f2 = lambda p, leaf=leaf: jax.tree.leaves(f(p, xx2, **kw2))[leaf]
            fx2, vjp2 = jax.vjp(f2, params)
            fx1 = jax.eval_shape(f1, params)

            def column(e: jax.Array, f1: Callable = f1, vjp2: Callable = vjp2) -> jax.Array:
                (cot,) = vjp2(e)
                return jax.jvp(f1, (params,), (cot,))[1]

            size2 = math.prod(fx2.shape)
            eye = jnp.eye(size2, dtype=fx2.dtype).reshape(size2, *fx2.shape)
            cols = jax.lax.map(column, eye)  # (size2, *out1)
            full = jnp.moveaxis(
                cols.reshape(*fx2.shape, *fx1.shape),
                tuple(range(fx2.ndim)),
                tuple(range(fx1.ndim, fx1.ndim + fx2.ndim)),
            )
            out.append(_trace_and_diagonal(full, fx1.ndim, trace_axes, diagonal_axes))
        return jax.tree.unflatten(jax.tree.structure(shapes), out)

    def structured_derivatives(x1: Any, x2: Any, params: Any, **apply_fn_kwargs: Any) -> Any:
        if vmap_axes is None:  # rows of X cannot be attributed to examples
            return jacobian_contraction(x1, x2, params, **apply_fn_kwargs)
        kw1, kw2 = _split_kwargs(apply_fn_kwargs, x1, x2)
        shapes = jax.eval_shape(lambda p: f(p, x1, **kw1), params)
        shapes2 = shapes if x2 is None else jax.eval_shape(lambda p: f(p, x2, **kw2), params)
        leaf_axes = _leaf_out_axes(_vmap_axes(vmap_axes)[1], shapes)
        ex1 = _example_jaxpr(f, params, x1, kw1, vmap_axes)
        ex2 = ex1 if x2 is None else _example_jaxpr(f, params, x2, kw2, vmap_axes)
        # A leaf is structured only if it is the same site for x1 and x2.
        sites = {i: site for i, site in ex1[1].items() if ex2[1].get(i) == site}
        d1, xs1, _ = _structured_derivatives(
            f, params, x1, kw1, vmap_axes, (ex1[0], sites, ex1[2])
        )
        d2, xs2 = (d1, xs1)
        if x2 is not None:
            d2, xs2, _ = _structured_derivatives(
                f, params, x2, kw2, vmap_axes, (ex2[0], sites, ex2[2])
            )
        out = []
        for o, (s1, s2) in enumerate(
            zip(jax.tree.leaves(shapes), jax.tree.leaves(shapes2), strict=True)
        ):
            ndim = len(s1.shape)
            trace, diag = _canonical_axes(trace_axes, diagonal_axes, ndim)
            _check_paired_sizes(s1.shape, s2.shape, trace, diag)
            (ds1, js1), (ds2, js2) = d1[o], d2[o]
            blocks = [
                _contract(a, b, ndim, trace_axes, diagonal_axes)
                for a, b in zip(js1, js2, strict=True)
            ]
            subscripts = _subscripts(ndim, trace, diag, 0)
            size = math.prod(s1.shape[i] for i in trace)
            blocks += [
                _structured.contract_site(
                    site, xs1[n], xs2[n], ds1[n], ds2[n], subscripts, leaf_axes[o] % ndim, size
                )
                for n, site in enumerate(sites.values())
            ]
            out.append(functools.reduce(operator.add, blocks))
        return jax.tree.unflatten(jax.tree.structure(shapes), out)

    if impl == NtkImplementation.JACOBIAN_CONTRACTION:
        return jacobian_contraction
    if impl == NtkImplementation.STRUCTURED_DERIVATIVES:
        return structured_derivatives
    return ntk_vector_products


@functools.cache
def _namedtuple(fields: tuple[str, ...]) -> type:
    return collections.namedtuple("EmpiricalKernel", fields)


def _canonical_get(get: Any) -> tuple[tuple[str, ...], bool]:
    """``(fields, as_tuple)`` for ``get`` in ``None | 'nngp' | 'ntk' | tuple``."""
    if get is None:
        return ("nngp", "ntk"), True
    if isinstance(get, str):
        get = (get,)
        as_tuple = False
    elif isinstance(get, (tuple, list)) and len(get) > 0:
        get = tuple(get)
        as_tuple = True
    else:
        raise ValueError(f"`get` must be None, 'nngp', 'ntk' or a tuple of them; got {get!r}.")
    for g in get:
        if g not in ("nngp", "ntk"):
            raise ValueError(f"`get` entries must be 'nngp' or 'ntk'; got {g!r}.")
    return get, as_tuple


def empirical_kernel_fn(
    f: Callable,
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = DEFAULT_NTK_IMPLEMENTATION,
) -> Callable:
    """Empirical NNGP and/or NTK of one network draw, NT's ``empirical_kernel_fn``.

    Args:
        f: ``f(params, x, **kwargs)``, e.g. the ``apply_fn`` of a :mod:`gantk.stax` network.
        trace_axes: as in
            :func:`empirical_ntk_fn` (``vmap_axes``/``implementation`` only affect the NTK).
        diagonal_axes: see ``trace_axes``.
        vmap_axes: see ``trace_axes``.
        implementation: see ``trace_axes``.

    Returns:
        ``kernel_fn(x1, x2=None, get=None, params=None, **apply_fn_kwargs)``: ``get`` is
        ``'nngp'``, ``'ntk'`` (that array), a tuple of them (a namedtuple in that order)
        or ``None`` (namedtuple ``(nngp, ntk)``). Jittable with ``get`` static.

    Raises:
        ValueError: as :func:`empirical_ntk_fn`; ``kernel_fn`` raises ValueError on an
            unknown ``get`` or missing ``params``.
    """
    fns = {
        "nngp": empirical_nngp_fn(f, trace_axes, diagonal_axes),
        "ntk": empirical_ntk_fn(f, trace_axes, diagonal_axes, vmap_axes, implementation),
    }

    def kernel_fn(
        x1: Any, x2: Any = None, get: Any = None, params: Any = None, **apply_fn_kwargs: Any
    ) -> Any:
        fields, as_tuple = _canonical_get(get)
        if params is None:
            raise ValueError("`params` (the network parameters) must be given.")
        values = [fns[g](x1, x2, params, **apply_fn_kwargs) for g in fields]
        return _namedtuple(fields)(*values) if as_tuple else values[0]

    return kernel_fn
