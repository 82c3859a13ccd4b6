"""Structured derivatives of ``dot_general`` weights, for the empirical NTK.

Novak, Sohl-Dickstein and Schoenholz, "Fast Finite Width Neural Tangent Kernel", ICML 2022
(NT's ``NtkImplementation.STRUCTURED_DERIVATIVES``). A parameter ``W`` that enters a
network only as an operand of one ``y = dot_general(X, W)`` (no batch dimensions) has the
Jacobian ``∂f/∂W[c, k] = Σ_s X[s, c] D[s, k]`` with ``D = ∂f/∂y``, where ``s`` runs over the
free axes of the other operand ``X`` (one row for an MLP, the spatial positions for inputs
of rank > 2) and ``c`` over the contracted ones. Its NTK block for examples ``i, j`` is
therefore (Novak et al. 2022, Sec. 4, the ``dot_general`` rule)::

    Θ_W(i, j) = Σ_{s, s'} (X_i X_jᵀ)[s, s'] · (D_i D_jᵀ)[s, s']

which never instantiates ``∂f/∂W``: ``O(N² S² (C + K))`` work instead of
``O(N² C K)`` (``C × K`` the shape of ``W``).

This module finds such parameters in the jaxpr of ``f`` (:func:`find_sites`, looking
through nested ``jit``/``closed_call`` sub-jaxprs), and evaluates the jaxpr with a zero
*probe* added to each of their ``dot_general`` outputs, recording the other operand
(:func:`eval_with_probes`): the derivative with respect to a probe is ``D``. The caller
(:func:`gantk.empirical_ntk_fn`) differentiates per example and contracts the blocks with
:func:`contract_site`; every other parameter (biases, weights used twice or in any other
way) is handled by Jacobian contraction, so the kernel is exact for any ``f``.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

__all__ = ["Site", "contract_site", "eval_with_probes", "find_sites"]

#: Call-like primitives whose sub-jaxpr is inlined (so parameters can be followed inside).
_CALLS = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr"}


@dataclasses.dataclass(frozen=True)
class Site:
    """One ``y = dot_general(lhs, rhs)`` whose operand ``w_pos`` is a parameter leaf.

    Attributes:
        path: equation indices from the top-level jaxpr through inlined calls.
        w_pos: 0 if the parameter is ``lhs``, 1 if ``rhs``.
        x_contract: contracted axes of the other operand ``X``.
        x_ndim: rank of ``X``.
        y_shape: shape of ``y`` (per example).
        y_dtype: dtype of ``y``.
        y_s_axes: axes of ``y`` that are the free axes of ``X`` (same order).
        y_k_axes: axes of ``y`` that are the free axes of ``W``.
    """

    path: tuple[int, ...]
    w_pos: int
    x_contract: tuple[int, ...]
    x_ndim: int
    y_shape: tuple[int, ...]
    y_dtype: Any
    y_s_axes: tuple[int, ...]
    y_k_axes: tuple[int, ...]


def _sub_jaxpr(eqn: Any) -> Any:
    key = _CALLS.get(eqn.primitive.name)
    return None if key is None else eqn.params[key]


def _dot_site(eqn: Any, pos: int, path: tuple[int, ...]) -> Site | None:
    if eqn.primitive.name != "dot_general":
        return None
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    if lb or rb:  # batched dot_general: not covered by this rule
        return None
    x_var = eqn.invars[1 - pos]
    x_ndim = len(x_var.aval.shape)
    y_shape = tuple(eqn.outvars[0].aval.shape)
    n_lfree = len(eqn.invars[0].aval.shape) - len(lc)
    lhs_axes, rhs_axes = tuple(range(n_lfree)), tuple(range(n_lfree, len(y_shape)))
    s_axes, k_axes = (lhs_axes, rhs_axes) if pos == 1 else (rhs_axes, lhs_axes)
    dtype = eqn.outvars[0].aval.dtype
    return Site(path, pos, tuple(rc if pos == 0 else lc), x_ndim, y_shape, dtype, s_axes, k_axes)


def find_sites(jaxpr: Any, n_params: int) -> dict[int, Site]:
    """Parameter leaves used exactly once, as a ``dot_general`` operand.

    Args:
        jaxpr: a ``jax.extend.core.Jaxpr`` whose first ``n_params`` invars are the
            parameter leaves.
        n_params: number of parameter leaves.

    Returns:
        ``{leaf index: Site}`` for the leaves the structured rule covers; every other
        leaf (used twice, returned, used by any other primitive or inside a non-inlined
        higher-order primitive such as ``scan`` or ``custom_jvp_call``) is absent.
    """
    uses: dict[int, list[Site | None]] = collections.defaultdict(list)

    def walk(jx: Any, var_leaf: dict, path: tuple[int, ...]) -> None:
        for v in jx.outvars:
            if isinstance(v, jcore.Var) and v in var_leaf:
                uses[var_leaf[v]].append(None)
        for i, eqn in enumerate(jx.eqns):
            hits = [
                (pos, var_leaf[v])
                for pos, v in enumerate(eqn.invars)
                if isinstance(v, jcore.Var) and v in var_leaf
            ]
            if not hits:
                continue
            sub = _sub_jaxpr(eqn)
            if sub is not None:
                walk(sub.jaxpr, {sub.jaxpr.invars[pos]: leaf for pos, leaf in hits}, (*path, i))
            else:
                for pos, leaf in hits:
                    uses[leaf].append(_dot_site(eqn, pos, (*path, i)))

    walk(jaxpr, {v: i for i, v in enumerate(jaxpr.invars[:n_params])}, ())
    return {
        leaf: u[0] for leaf, u in sorted(uses.items()) if len(u) == 1 and u[0] is not None
    }


def _bind(eqn: Any, invals: list[Any]) -> Any:
    """``eqn``'s primitive applied to ``invals`` (as ``jax.core.eval_jaxpr`` does)."""
    params = eqn.primitive.get_bind_params(eqn.params)
    subfuns: tuple = ()
    if isinstance(params, tuple):  # older JAX returned (subfuns, params)
        subfuns, params = params
    with eqn.ctx.manager:
        return eqn.primitive.bind(*subfuns, *invals, **params)


def eval_with_probes(
    closed: Any, args: Sequence[Any], sites: Sequence[Site], probes: Sequence[jax.Array]
) -> tuple[list[Any], list[jax.Array]]:
    """Evaluate ``closed`` (a ClosedJaxpr) adding ``probes[i]`` to the output of ``sites[i]``.

    Args:
        closed: the ``ClosedJaxpr`` of the function.
        args: values of its invars.
        sites: the probed sites (from :func:`find_sites` on ``closed.jaxpr``).
        probes: one array of ``Site.y_shape`` per site, normally zeros: differentiating
            the outputs with respect to a probe gives ``D = ∂f/∂y`` at that site.

    Returns:
        ``(outputs, xs)``: the jaxpr's outputs and, per site, the other operand ``X`` of
        its ``dot_general``.
    """
    by_path = {site.path: (n, site) for n, site in enumerate(sites)}
    recorded: list[Any] = [None] * len(sites)
    prefixes = {site.path[:n] for site in sites for n in range(1, len(site.path))}

    def run(jx: Any, consts: Sequence[Any], vals: Sequence[Any], path: tuple) -> list[Any]:
        env: dict[Any, Any] = {}

        def read(v: Any) -> Any:
            return v.val if isinstance(v, jcore.Literal) else env[v]

        env.update(zip(jx.constvars, consts, strict=True))
        env.update(zip(jx.invars, vals, strict=True))
        for i, eqn in enumerate(jx.eqns):
            here = (*path, i)
            invals = [read(v) for v in eqn.invars]
            if here in prefixes:
                sub = _sub_jaxpr(eqn)
                outs = run(sub.jaxpr, sub.consts, invals, here)
            else:
                outs = _bind(eqn, invals)
                if not eqn.primitive.multiple_results:
                    outs = [outs]
                if here in by_path:
                    n, site = by_path[here]
                    recorded[n] = invals[1 - site.w_pos]
                    outs = [outs[0] + probes[n]]
            env.update(zip(eqn.outvars, outs, strict=True))
        return [read(v) for v in jx.outvars]

    outs = run(closed.jaxpr, closed.consts, args, ())
    return outs, recorded


def contract_site(
    site: Site,
    x1: jax.Array,
    x2: jax.Array,
    d1: jax.Array,
    d2: jax.Array,
    subscripts: tuple[str, str, str],
    batch_axis: int,
    trace_size: int,
) -> jax.Array:
    """NTK block of one site, in NT's zipped layout.

    Args:
        site: the site.
        x1: ``X`` per example of ``x1``, ``(N1, *X_shape)``.
        x2: same for ``x2``, ``(N2, *X_shape)``.
        d1: ``∂f(x1)/∂y``, ``(*out1, *Site.y_shape)``: output axes (batch axis included)
            then ``y``'s axes.
        d2: same for ``x2``.
        subscripts: ``(a, b, out)`` einsum letters of the output axes of ``d1``, ``d2``
            and of the result (zipped/traced/diagonal as in :mod:`gantk.empirical`).
        batch_axis: position of the example axis among the output axes.
        trace_size: product of the traced output sizes (the result is their mean).

    Returns:
        The block, of the result layout ``subscripts[2]``. Uses the ``X Xᵀ · D Dᵀ`` form
        when cheaper than forming ``∂f/∂W = Xᵀ D`` per example (Novak et al. 2022 pick
        per layer in the same way), else forms it and contracts it.
    """
    sa, sb, so = subscripts
    used = set(sa + sb + so)
    free = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
    x_free = [a for a in range(site.x_ndim) if a not in site.x_contract]
    c = {a: next(free) for a in site.x_contract}
    s = {a: next(free) for a in x_free}
    t = {a: next(free) for a in x_free}
    k = [next(free) for _ in site.y_k_axes]

    def x_sub(letters: dict) -> str:
        return "".join(c[a] if a in c else letters[a] for a in range(site.x_ndim))

    def y_sub(letters: dict) -> str:
        out = [""] * len(site.y_shape)
        for ax, a in zip(site.y_s_axes, x_free, strict=True):
            out[ax] = letters[a]
        for ax, letter in zip(site.y_k_axes, k, strict=True):
            out[ax] = letter
        return "".join(out)

    n1, n2 = sa[batch_axis], sb[batch_axis]
    xs1, xs2, ys1, ys2 = x_sub(s), x_sub(t), y_sub(s), y_sub(t)
    prec = jax.lax.Precision.HIGHEST
    size_s = math.prod(site.y_shape[a] for a in site.y_s_axes)
    size_c = math.prod(x1.shape[1 + a] for a in site.x_contract)
    size_k = math.prod(site.y_shape[a] for a in site.y_k_axes)
    n_1, n_2 = x1.shape[0], x2.shape[0]
    out1 = math.prod(d1.shape[: len(sa)]) // n_1
    out2 = math.prod(d2.shape[: len(sb)]) // n_2
    structured_cost = n_1 * n_2 * size_s**2 * (size_c + size_k * out1 * out2)
    jacobian_cost = (n_1 * out1 + n_2 * out2) * size_s * size_c * size_k + (
        n_1 * n_2 * out1 * out2 * size_c * size_k
    )
    if structured_cost <= jacobian_cost:
        n_out = n1 + (n2 if n2 != n1 else "")
        g = jnp.einsum(
            f"{n1}{xs1},{n2}{xs2}->{n_out}{''.join(s.values())}{''.join(t.values())}",
            x1, x2, precision=prec,
        )
        keep = [ch for ch in dict.fromkeys(sa + sb) if ch in so or ch in (n1, n2)]
        e_sub = "".join(keep) + "".join(s.values()) + "".join(t.values())
        e = jnp.einsum(f"{sa}{ys1},{sb}{ys2}->{e_sub}", d1, d2, precision=prec)
        g_sub = n_out + "".join(s.values()) + "".join(t.values())
        return jnp.einsum(f"{g_sub},{e_sub}->{so}", g, e, precision=prec) / trace_size
    ck = "".join(c.values()) + "".join(k)
    j1 = jnp.einsum(f"{n1}{xs1},{sa}{ys1}->{sa}{ck}", x1, d1, precision=prec)
    j2 = jnp.einsum(f"{n2}{xs2},{sb}{ys2}->{sb}{ck}", x2, d2, precision=prec)
    return jnp.einsum(f"{sa}{ck},{sb}{ck}->{so}", j1, j2, precision=prec) / trace_size
