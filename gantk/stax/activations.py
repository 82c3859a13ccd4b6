"""Elementwise activations of :mod:`gantk.stax` with closed-form infinite-width kernels.

For a centred Gaussian pre-activation ``(u, v) ~ N(0, [[c1, k], [k, c2]])`` (``k`` = nngp,
``c1``/``c2`` = cov1/cov2) an activation ``phi`` maps

    nngp' = E[phi(u) phi(v)],      cov_i' = E[phi(u_i)^2],
    ntk'  = ntk * E[phi'(u) phi'(v)]   (the "derivative kernel" dot_sigma).

Closed forms (all match neural-tangents 0.6.5 numerically):

- ``ABRelu(a, b)`` = ``a min(x, 0) + b max(x, 0)`` (Cho & Saul 2009, arc-cosine kernel):
  ``S = sqrt(c1 c2 - k^2)``, ``theta = arctan2(S, k)``, ``f = (a - b)^2 / (2 pi)``,
  ``dot_sigma = (a^2 + b^2) / 2 - f theta``, ``nngp' = f S + dot_sigma k``,
  ``cov' = (a^2 + b^2) / 2 cov``. ``Relu = (0, 1)``, ``LeakyRelu(alpha) = (alpha, 1)``,
  ``Abs = (-1, 1)``.
- ``Erf(a, b, c)`` = ``a erf(b x) + c`` (Williams 1997): with ``k, c_i`` scaled by ``b^2``,
  ``R = sqrt((1 + 2 c1)(1 + 2 c2) - 4 k^2)``, ``nngp' = a^2 (2/pi) arctan2(2k, R) + c^2``,
  ``dot_sigma = a^2 b^2 (4/pi) / R``.
- ``Gelu`` = ``x Phi(x)`` (Tsuchida et al. 2020, arXiv:2002.08517): with ``P = c1 c2``,
  ``Q = (1 + c1)(1 + c2)``, ``D = sqrt(Q - k^2)``, ``t = arctan2(k, D)``:
  ``nngp' = k/4 + (k t + (P Q + k^2 (1 - P)) / (Q D)) / (2 pi)``,
  ``dot_sigma = 1/4 + t/(2 pi) + k (1 + 1/D^2 + (1 - P)/Q) / (2 pi D)``.
- ``Sin(a, b, c)`` = ``a sin(b x + c)``: with ``e_pm = exp(-b^2 (c1 + c2 -+ 2k) / 2)``,
  ``nngp' = a^2/2 (e_- - e_+ cos 2c)``, ``dot_sigma = a^2 b^2 / 2 (e_- + e_+ cos 2c)``.
- ``Rbf(gamma)`` = ``sqrt(2) sin(sqrt(2 gamma) x + pi/4)``:
  ``nngp' = exp(-gamma (c1 + c2 - 2k))``, ``dot_sigma = 2 gamma nngp'``, ``cov' = 1``.

Gradients. The arc-cosine step has a kink where ``S = 0`` (``x1`` parallel to ``x2``) and
a ``0/0`` where a variance vanishes (``x = 0`` in a bias-free net). It is a
:func:`jax.custom_jvp` with the closed-form partials

    d nngp'/dk = dot_sigma,      d nngp'/dc_i = f S / (2 c_i),
    d dot_sigma/dk = f / S,      d dot_sigma/dc_i = -f k / (2 c_i S),

where every ``1/S`` term is replaced by 0 when ``S = 0`` (NT's zero subgradient of the
kink) and every ``1/c_i`` term by 0 when ``c_i = 0`` (the centre of the subdifferential
of the positively homogeneous kernel at the origin). No NaN arises forward or backward.
In float64, ``c1 c2 - k^2 <= 16 eps c1 c2`` (rounding noise of an exact kink, e.g. a
self-pair ``x1_i == x2_j``) counts as ``S = 0``, which makes such entries independent of
the evaluation order and changes values by less than 2e-8 relative.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import erf

from gantk._validate import check_finite_real as finite_real
from gantk._validate import check_nonneg
from gantk.stax._math import arctan2, recip, sqrt
from gantk.stax.core import make_layer
from gantk.stax.kernel import Kernel, Layer

__all__ = [
    "ABRelu",
    "Abs",
    "Erf",
    "Gelu",
    "LeakyRelu",
    "Relu",
    "Rbf",
    "Sin",
]


def _elementwise(fn: Any, kernel: Any, name: str, remask: bool) -> Layer:
    """Layer from an activation ``fn`` and its kernel transform (Gaussian input required).

    ``remask`` is NT's ``remask_kernel`` flag of the layer (``supports_masking`` in
    ``neural_tangents/_src/stax/elementwise.py``): True for ``Erf``, ``Sin``, ``Rbf``,
    ``Exp``, ``Gaussian``, ``ExpNormalized``, ``Hermite``, ``Elementwise``,
    ``ElementwiseNumerical``; False for the others.
    """

    def kmap(k: Kernel) -> Kernel:
        if not k.is_gaussian:
            raise ValueError(
                f"The input to the activation {name} must be Gaussian, i.e. a random "
                "affine transform (Dense) is required before the activation function."
            )
        return kernel(k).replace(is_gaussian=False)

    return make_layer(
        lambda key, input_shape: (input_shape, ()),
        lambda params, x, **kwargs: fn(x),
        kmap,
        name,
        remask=remask,
    )


#: Relative size of rounding noise in ``c1 c2 - k^2`` treated as the kink (float64 only:
#: an angle below ~6e-8 rad changes the NTK by < 2e-8 relative; in float32 the analogous
#: band, ~1e-3 rad, would cost 4e-4 relative accuracy, so there only exact zeros count).
_KINK_RTOL = {jnp.dtype(jnp.float64): 16.0 * float(jnp.finfo(jnp.float64).eps)}


def _stored(value: jax.Array, like: jax.Array) -> jax.Array:
    """``value``, computed once and kept in memory by XLA rather than re-fused.

    XLA duplicates cheap elementwise producers into every consumer fusion but never an
    *expensive* one (a floating division); dividing by a runtime one (``1 + 0 * like``,
    which XLA may not fold because ``0 * inf`` is NaN) makes ``value`` such a producer.
    In the derivative pass of a deep kernel this stops every layer from recomputing all
    the layers below it (on CPU: half the flops, ~1.7x faster gradients).
    """
    return value / (1.0 + 0.0 * like)


def _arccos_step(a: float, b: float) -> Any:
    """The ABRelu map ``(k, c1, c2) -> (nngp', dot_sigma)`` with closed-form derivatives."""
    half_sq = (a * a + b * b) / 2.0
    f = (a - b) ** 2 / (2.0 * math.pi)

    def primal(n: jax.Array, c1: jax.Array, c2: jax.Array, store: bool = False) -> tuple:
        prod = c1 * c2
        s_sq = prod - n * n
        # c1 c2 - k^2 within rounding of c1 c2 is the kink itself (theta = 0 or pi): taken
        # as exactly 0, so self-pairs get theta = 0 whatever the evaluation order.
        s = sqrt(jnp.where(s_sq > _KINK_RTOL.get(s_sq.dtype, 0.0) * prod, s_sq, 0.0))
        # NT's `_arctan2(S, k, fill_zero=pi/2)`: the angle is pi/2 where both vanish.
        theta = jnp.where((s == 0) & (n == 0), math.pi / 2, arctan2(s, n))
        dot = half_sq - f * theta
        if store:  # derivative pass: keep dot in memory (see _stored)
            dot = _stored(dot, n)
        return s, dot, f * s + dot * n

    @jax.custom_jvp
    def step(n: jax.Array, c1: jax.Array, c2: jax.Array) -> tuple:
        _, dot, new = primal(n, c1, c2)
        return new, dot

    @step.defjvp
    def step_jvp(primals: tuple, tangents: tuple) -> tuple:
        n, c1, c2 = primals
        dn, dc1, dc2 = tangents
        s, dot, new = primal(n, c1, c2, store=True)
        # Relative variance changes dc_i / c_i (0 where c_i = 0), broadcast to (n1, n2).
        rel = dc1 * recip(c1) + dc2 * recip(c2)  # recip(0) = 0
        d_new = dot * dn + (0.5 * f) * s * rel
        d_dot = (f * recip(s)) * (dn - 0.5 * n * rel)
        return (new, dot), (d_new, d_dot)

    return step


def ABRelu(a: float, b: float, do_stabilize: bool = False) -> Layer:
    """``a min(x, 0) + b max(x, 0)`` activation, NT's ``stax.ABRelu`` (arc-cosine kernel).

    Args:
        a: slope for ``x < 0``.
        b: slope for ``x > 0``.
        do_stabilize: NT's option for very deep networks: evaluate the kernel on
            ``(k, c1, c2) / m`` with ``m = max |nngp|`` and rescale by ``m`` (exact, as the
            kernel is positively homogeneous of degree 1; ``m`` is treated as a constant
            in derivatives, which is also exact by homogeneity). Avoids overflow and
            underflow of ``c1 c2`` when the kernel scale drifts with depth.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``; kernel formulas in the module docstring
        (Cho & Saul 2009; NT's ``_ab_relu``), NaN-free gradients at the kink and the origin.

    Raises:
        ValueError: if ``a`` or ``b`` is not a finite real number; the kernel_fn raises
            ValueError when the input is not Gaussian (no Dense before it).
    """
    finite_real(a, "a")
    finite_real(b, "b")
    if not isinstance(do_stabilize, (bool, np.bool_)):
        raise ValueError(f"`do_stabilize` must be a bool; got {do_stabilize!r}.")
    half_sq = (a * a + b * b) / 2.0
    linear = a == b
    step = None if linear else _arccos_step(a, b)

    def fn(x: jax.Array) -> jax.Array:
        return a * jnp.minimum(x, 0) + b * jnp.maximum(x, 0)

    def kernel(k: Kernel) -> Kernel:
        cov1 = half_sq * k.cov1
        cov2 = None if k.cov2 is None else half_sq * k.cov2
        if linear:  # f = 0: a plain rescaling by a^2.
            ntk = None if k.ntk is None else half_sq * k.ntk
            return k.replace(nngp=half_sq * k.nngp, ntk=ntk, cov1=cov1, cov2=cov2)
        if do_stabilize:
            m = lax.stop_gradient(jnp.maximum(jnp.max(jnp.abs(k.nngp)), 1e-12))
            inv = 1.0 / m
            nngp, dot = step(k.nngp * inv, (k.cov1 * inv)[:, None], (k.var2 * inv)[None, :])
            nngp = nngp * m
        else:
            nngp, dot = step(k.nngp, k.cov1[:, None], k.var2[None, :])
        ntk = None if k.ntk is None else dot * k.ntk
        return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2)

    return _elementwise(fn, kernel, f"ABRelu({a}, {b})", remask=False)


def Relu(do_stabilize: bool = False) -> Layer:
    """ReLU ``max(x, 0)`` = ``ABRelu(0, 1, do_stabilize)`` (degree-1 arc-cosine kernel)."""
    return ABRelu(0.0, 1.0, do_stabilize)


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> Layer:
    """Leaky ReLU ``alpha min(x, 0) + max(x, 0)`` = ``ABRelu(alpha, 1, do_stabilize)``.

    Raises:
        ValueError: if ``alpha`` is not a finite real number.
    """
    finite_real(alpha, "alpha")
    return ABRelu(alpha, 1.0, do_stabilize)


def Abs(do_stabilize: bool = False) -> Layer:
    """Absolute value ``|x|`` = ``ABRelu(-1, 1, do_stabilize)``."""
    return ABRelu(-1.0, 1.0, do_stabilize)


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """``a erf(b x) + c`` activation, NT's ``stax.Erf`` (arcsine kernel, Williams 1997).

    Args:
        a: output scale.
        b: input scale.
        c: output shift.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``; kernel formulas in the module docstring.

    Raises:
        ValueError: if ``a``, ``b`` or ``c`` is not a finite real number.
    """
    for value, name in ((a, "a"), (b, "b"), (c, "c")):
        finite_real(value, name)
    b_sq, a_sq, c_sq = b * b, a * a, c * c
    two_over_pi = 2.0 / math.pi

    def fn(x: jax.Array) -> jax.Array:
        return a * erf(b * x) + c

    def diag(cov: jax.Array) -> jax.Array:
        cov = b_sq * cov
        den = 1.0 + 2.0 * cov
        root = sqrt(den * den - 4.0 * cov * cov)
        return a_sq * (two_over_pi * arctan2(2.0 * cov, root)) + c_sq

    def kernel(k: Kernel) -> Kernel:
        n = b_sq * k.nngp
        den1 = 1.0 + 2.0 * (b_sq * k.cov1)
        den2 = 1.0 + 2.0 * (b_sq * k.var2)
        root = sqrt(den1[:, None] * den2[None, :] - 4.0 * n * n)  # >= 1
        nngp = a_sq * (two_over_pi * arctan2(2.0 * n, root)) + c_sq
        ntk = None
        if k.ntk is not None:
            ntk = a_sq * ((b_sq * k.ntk) * (2.0 * two_over_pi * recip(root)))
        cov2 = None if k.cov2 is None else diag(k.cov2)
        return k.replace(nngp=nngp, ntk=ntk, cov1=diag(k.cov1), cov2=cov2)

    return _elementwise(fn, kernel, f"Erf({a}, {b}, {c})", remask=True)


def _gelu_terms(n: jax.Array, p: jax.Array, q: jax.Array, with_dot: bool) -> tuple:
    """GELU kernel terms from ``k``, ``P = c1 c2`` and ``Q = (1 + c1)(1 + c2)``."""
    d_sq = q - n * n  # >= 1 + c1 + c2 >= 1 by Cauchy-Schwarz
    d = sqrt(d_sq)
    inv_d, inv_q = recip(d), recip(q)
    t = arctan2(n, d)
    inv_2pi = 1.0 / (2.0 * math.pi)
    new = 0.25 * n + inv_2pi * (n * t + (p * q + n * n * (1.0 - p)) * (inv_q * inv_d))
    dot = None
    if with_dot:
        dot = 0.25 + inv_2pi * (t + n * inv_d * (1.0 + inv_d * inv_d + (1.0 - p) * inv_q))
    return new, dot


def Gelu(approximate: bool = False) -> Layer:
    """GELU ``x Phi(x)`` activation, NT's ``stax.Gelu``; exact Gaussian-integral kernel.

    Derivation (docs/concepts/kernels.md): with ``Phi(u) = P(z <= u)`` for an independent
    ``z ~ N(0, 1)``, ``E[gelu(u) gelu(v)] = E[u v 1(u >= z1) 1(v >= z2)]``, evaluated by
    Gaussian integration by parts; ``dot_sigma`` is its derivative in ``k`` (Price's
    theorem). Formulas in the module docstring (Tsuchida et al. 2020, arXiv:2002.08517).

    Args:
        approximate: only affects the finite-width ``apply_fn`` (tanh approximation, as
            ``jax.nn.gelu``); the kernel is always that of the exact GELU, as in NT.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.
    """

    def fn(x: jax.Array) -> jax.Array:
        return jax.nn.gelu(x, approximate=approximate)

    def diag(cov: jax.Array) -> jax.Array:
        return _gelu_terms(cov, cov * cov, (1.0 + cov) * (1.0 + cov), False)[0]

    def kernel(k: Kernel) -> Kernel:
        c1, c2 = k.cov1[:, None], k.var2[None, :]
        nngp, dot = _gelu_terms(k.nngp, c1 * c2, (1.0 + c1) * (1.0 + c2), k.ntk is not None)
        ntk = None if k.ntk is None else dot * k.ntk
        cov2 = None if k.cov2 is None else diag(k.cov2)
        return k.replace(nngp=nngp, ntk=ntk, cov1=diag(k.cov1), cov2=cov2)

    return _elementwise(fn, kernel, "Gelu", remask=False)


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """``a sin(b x + c)`` activation, NT's ``stax.Sin``.

    Args:
        a: output scale.
        b: input scale (frequency).
        c: phase shift.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``; kernel formulas in the module docstring.

    Raises:
        ValueError: if ``a``, ``b`` or ``c`` is not a finite real number.
    """
    for value, name in ((a, "a"), (b, "b"), (c, "c")):
        finite_real(value, name)
    half_a_sq = a * a / 2.0
    b_sq = b * b
    cos_2c = math.cos(2.0 * c)

    def fn(x: jax.Array) -> jax.Array:
        return a * jnp.sin(b * x + c)

    def diag(cov: jax.Array) -> jax.Array:
        return half_a_sq * (1.0 - jnp.exp(-2.0 * b_sq * cov) * cos_2c)

    def kernel(k: Kernel) -> Kernel:
        half_sum = 0.5 * (k.cov1[:, None] + k.var2[None, :])
        s1 = jnp.exp(b_sq * (k.nngp - half_sum))
        s2 = jnp.exp(b_sq * (-half_sum - k.nngp)) * cos_2c
        nngp = half_a_sq * (s1 - s2)
        ntk = None if k.ntk is None else k.ntk * (half_a_sq * b_sq * (s1 + s2))
        cov2 = None if k.cov2 is None else diag(k.cov2)
        return k.replace(nngp=nngp, ntk=ntk, cov1=diag(k.cov1), cov2=cov2)

    return _elementwise(fn, kernel, f"Sin({a}, {b}, {c})", remask=True)


def Rbf(gamma: float = 1.0) -> Layer:
    """``sqrt(2) sin(sqrt(2 gamma) x + pi/4)``, NT's ``stax.Rbf`` (Gaussian RBF kernel).

    After ``Dense(W_std=1)`` on ``d``-dimensional inputs the NNGP is
    ``exp(-gamma |x1 - x2|^2 / d)``.

    Args:
        gamma: inverse squared length scale ``1 / (2 l^2)``, ``>= 0``.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``; equals ``Sin(sqrt(2), sqrt(2 gamma), pi/4)``.

    Raises:
        ValueError: if ``gamma`` is negative or not finite.
    """
    check_nonneg(gamma, "gamma")
    freq = math.sqrt(2.0 * gamma)

    def fn(x: jax.Array) -> jax.Array:
        return math.sqrt(2.0) * jnp.sin(freq * x + math.pi / 4)

    def kernel(k: Kernel) -> Kernel:
        nngp = jnp.exp(gamma * (2.0 * k.nngp - (k.cov1[:, None] + k.var2[None, :])))
        ntk = None if k.ntk is None else k.ntk * (2.0 * gamma * nngp)
        cov2 = None if k.cov2 is None else jnp.ones_like(k.cov2)
        return k.replace(nngp=nngp, ntk=ntk, cov1=jnp.ones_like(k.cov1), cov2=cov2)

    return _elementwise(fn, kernel, f"Rbf({gamma})", remask=True)
