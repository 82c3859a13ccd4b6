"""The rest of neural-tangents' elementwise layers, with NT's closed-form kernels.

For a centred Gaussian pre-activation ``(u, v) ~ N(0, [[c1, k], [k, c2]])`` an activation
``phi`` maps ``nngp' = E[phi(u) phi(v)]``, ``cov_i' = E[phi(u_i)^2]`` and
``ntk' = ntk * E[phi'(u) phi'(v)]`` (see :mod:`gantk.stax.activations`). Closed forms,
as in NT 0.6.5 (``neural_tangents/_src/stax/elementwise.py``):

- ``Exp(a, b)`` = ``a exp(b x)``: ``nngp' = a^2 exp(b^2 ((c1 + c2)/2 + k))``,
  ``dot = b^2 nngp'``.
- ``Gaussian(a, b)`` = ``a exp(b x^2)``: with ``d_i = 1 - 2 b c_i``,
  ``D = sqrt(d1 d2 - 4 b^2 k^2)``, ``nngp' = a^2 / D``, ``dot = 4 a^2 b^2 k / D^3``.
- ``ExpNormalized(gamma, shift)`` (Shankar et al. 2020, "Neural kernels without
  tangents", p. 6): ``q = sqrt(c1 c2)``, ``nngp' = q exp(gamma (k/q + shift))``,
  ``ntk' = gamma ntk exp(gamma (k/q + shift))``.
- ``Polynomial(coef)`` (Mehler / Hermite expansion): with
  ``a_l(c) = sum_i coef[2i+l] (2i+l)! / (2^i i! sqrt(l!)) c^i``,
  ``nngp' = sum_l a_l(c1) a_l(c2) k^l`` and ``dot = sum_l l a_l(c1) a_l(c2) k^(l-1)``;
  ``Monomial(n)`` is ``Polynomial(e_n)`` (e.g. ``n = 2``: ``2 k^2 + c1 c2``, NT's table).
- ``RectifiedMonomial(n)`` = ``x^n 1(x >= 0)`` (Cho & Saul 2009, arc-cosine kernel of
  degree n): ``nngp' = (c1 c2)^(n/2) J_n(theta) / (2 pi)`` with
  ``J_n = (-1)^n sin^(2n+1) theta ((1/sin theta) d/dtheta)^n ((pi - theta)/sin theta)``,
  expanded exactly into ``(pi - theta) P_n(cos theta) + sin theta Q_n(cos theta)``;
  ``dot = n^2 nngp'_(n-1)`` (Price's theorem), ``cov' = (2n-1)!! c^n / 2``.
- ``Sign``: ``nngp' = 1 - 2 theta / pi``, ``cov' = 1`` (0 where ``c = 0``), ``ntk' = 0``.
- ``Hermite(n)`` (normalised probabilists' Hermite ``He_n / sqrt(n!)``, inputs assumed
  of unit variance, as NT): ``nngp' = k^n``, ``dot = n k^(n-1)``.
- ``Gabor`` = ``exp(-x^2) sin x``: NT's formula (see :func:`Gabor`).
- ``Cos(a, b, c)`` = ``Sin(a, b, c + pi/2)``;
  ``Sigmoid_like`` = ``Erf(1/2, 1/2.4020563531719796, 1/2)``.
- ``Elementwise(fn, nngp_fn, d_nngp_fn)``: user-given ``nngp_fn(k, c1, c2)``;
  ``d_nngp_fn`` defaults to ``d nngp_fn / dk`` by autodiff (Han et al. 2022, "Fast
  neural kernel embeddings for general activations").
- ``ElementwiseNumerical(fn, deg, df)``: the same expectations by ``deg x deg``
  Gauss-Hermite quadrature: ``u = sqrt(2 c1) x``,
  ``v = k sqrt(2/c1) x + sqrt(2 (c2 - k^2/c1)) y``, weights ``w_i w_j / pi``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.polynomial import Polynomial as _Poly

from gantk._validate import check_finite_real as finite_real
from gantk._validate import check_positive_int
from gantk.stax._math import arctan2, recip, sqrt
from gantk.stax.activations import _KINK_RTOL, Erf, Sin, _elementwise
from gantk.stax.core import make_layer
from gantk.stax.kernel import Kernel, Layer, kernel_map

__all__ = [
    "Cos",
    "Elementwise",
    "ElementwiseNumerical",
    "Exp",
    "ExpNormalized",
    "Gabor",
    "Gaussian",
    "Hermite",
    "Monomial",
    "Polynomial",
    "RectifiedMonomial",
    "Sigmoid_like",
    "Sign",
]


def _pairs(k: Kernel) -> tuple[jax.Array, jax.Array]:
    """``cov1`` as a column and ``cov2`` (or ``cov1``) as a row, broadcasting to nngp."""
    return k.cov1[:, None], k.var2[None, :]


def _map(k: Kernel, pair: Callable, diag: Callable) -> Kernel:
    """Apply ``pair(nngp, c1, c2, want_dot) -> (nngp', dot)`` and ``diag(c) -> cov'``."""
    c1, c2 = _pairs(k)
    nngp, dot = pair(k.nngp, c1, c2, k.ntk is not None)
    ntk = None if k.ntk is None else k.ntk * dot
    cov2 = None if k.cov2 is None else diag(k.cov2)
    return k.replace(nngp=nngp, ntk=ntk, cov1=diag(k.cov1), cov2=cov2)


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer; got {value!r}.")
    return int(value)


def Exp(a: float = 1.0, b: float = 1.0) -> Layer:
    """``a exp(b x)``, NT's ``stax.Exp`` (log-normal moments; module docstring).

    Raises:
        ValueError: if ``a`` or ``b`` is not a finite real number.
    """
    finite_real(a, "a")
    finite_real(b, "b")
    a_sq, b_sq = a * a, b * b

    def pair(n: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        base = jnp.exp(b_sq * (0.5 * (c1 + c2) + n))
        return a_sq * base, a_sq * b_sq * base

    def diag(c: jax.Array) -> jax.Array:
        return a_sq * jnp.exp(2.0 * b_sq * c)

    return _elementwise(
        lambda x: a * jnp.exp(b * x), lambda k: _map(k, pair, diag), f"Exp({a}, {b})",
        remask=True,
    )


def Gaussian(a: float = 1.0, b: float = -1.0) -> Layer:
    """``a exp(b x^2)``, NT's ``stax.Gaussian`` (module docstring).

    Raises:
        ValueError: if ``a`` or ``b`` is not finite; the kernel is only defined (finite)
            where ``1 - 4 b c > 0``, i.e. always for ``b <= 0``.
    """
    finite_real(a, "a")
    finite_real(b, "b")
    a_sq, four_b_sq = a * a, 4.0 * b * b

    def pair(n: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        det = sqrt((1.0 - 2.0 * b * c1) * (1.0 - 2.0 * b * c2) - four_b_sq * n * n)
        inv = recip(det)
        return a_sq * inv, a_sq * four_b_sq * n * inv**3

    def diag(c: jax.Array) -> jax.Array:
        return a_sq * recip(sqrt(1.0 - 4.0 * b * c))

    fn = lambda x: a * jnp.exp(b * x * x)
    return _elementwise(fn, lambda k: _map(k, pair, diag), f"Gaussian({a}, {b})", remask=True)


def ExpNormalized(gamma: float = 1.0, shift: float = -1.0, do_clip: bool = False) -> Layer:
    """NT's ``stax.ExpNormalized``: the "Gaussian normalized kernel" (kernel only).

    ``nngp' = sqrt(c1 c2) exp(gamma (k / sqrt(c1 c2) + shift))`` (Shankar et al. 2020).

    Args:
        gamma: exponent scale.
        shift: shift of the normalised covariance.
        do_clip: clip the normalised covariance to ``[-1, 1]``.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``; ``apply_fn`` raises NotImplementedError (the
        layer has no finite-width counterpart), as in NT.

    Raises:
        ValueError: if ``gamma`` or ``shift`` is not a finite real number.
    """
    finite_real(gamma, "gamma")
    finite_real(shift, "shift")

    def normalised(cov: jax.Array, q: jax.Array) -> jax.Array:
        r = cov * recip(q)
        if do_clip:
            r = jnp.clip(r, -1.0, 1.0)
        return jnp.exp(gamma * (r + shift))

    def kernel(k: Kernel) -> Kernel:
        c1, c2 = _pairs(k)
        q = sqrt(c1 * c2)
        e12 = normalised(k.nngp, q)
        ntk = None if k.ntk is None else gamma * k.ntk * e12

        def diag(c: jax.Array) -> jax.Array:
            return c * normalised(c, c)

        cov2 = None if k.cov2 is None else diag(k.cov2)
        return k.replace(nngp=q * e12, ntk=ntk, cov1=diag(k.cov1), cov2=cov2)

    def fn(x: jax.Array) -> jax.Array:
        raise NotImplementedError("ExpNormalized has no finite-width apply_fn (as in NT).")

    return _elementwise(fn, kernel, f"ExpNormalized({gamma}, {shift}, {do_clip})", remask=True)


def _hermite_coefficients(coef: np.ndarray) -> list[np.ndarray]:
    """Coefficients (in ``c``) of ``a_l(c)`` for every ``l`` (see module docstring)."""
    degree = len(coef)
    out = []
    for order in range(degree):
        a = np.zeros(max(1, (degree - 1 - order) // 2 + 1))
        for i in range((degree - 1 - order) // 2 + 1):
            m = 2 * i + order
            a[i] = (
                coef[m]
                * math.factorial(m)
                / (2**i * math.factorial(i) * math.sqrt(math.factorial(order)))
            )
        out.append(a)
    return out


def _polyval(a: np.ndarray, c: jax.Array) -> jax.Array:
    out = jnp.full_like(c, float(a[-1]))
    for v in a[-2::-1]:
        out = out * c + float(v)
    return out


def _polynomial_kernel(coef: np.ndarray) -> Callable:
    """Kernel map of the polynomial with coefficients ``coef`` (module docstring)."""
    a = _hermite_coefficients(coef)

    def pair(n: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        nngp = jnp.zeros(jnp.broadcast_shapes(n.shape, c1.shape, c2.shape), n.dtype)
        dot = jnp.zeros_like(nngp)
        power = jnp.ones_like(n)  # k^(l-1) before the update below, k^l after it
        for order, al in enumerate(a):
            term = _polyval(al, c1) * _polyval(al, c2)
            if order >= 1:
                if want_dot:
                    dot = dot + order * term * power
                power = power * n
            nngp = nngp + term * power
        return nngp, dot

    def diag(c: jax.Array) -> jax.Array:
        return sum(
            (_polyval(al, c) ** 2 * c**order for order, al in enumerate(a)), jnp.zeros_like(c)
        )

    return lambda k: _map(k, pair, diag)


def Polynomial(coef: Sequence[float]) -> Layer:
    """``coef[0] + coef[1] x + ... + coef[n] x^n``, NT's ``stax.Polynomial``.

    Exact kernel by the Hermite (Mehler) expansion of the module docstring.

    Args:
        coef: polynomial coefficients, lowest degree first (NumPy's ``Polynomial`` order).

    Raises:
        ValueError: if ``coef`` is not a non-empty 1-D sequence of finite reals.
    """
    coef = np.asarray(coef, dtype=np.float64)
    if coef.ndim != 1 or coef.size == 0 or not np.isfinite(coef).all():
        raise ValueError(f"`coef` must be a non-empty 1-D sequence of finite reals; got {coef!r}.")

    def fn(x: jax.Array) -> jax.Array:
        return jnp.polyval(jnp.asarray(coef[::-1], x.dtype), x)

    return _elementwise(fn, _polynomial_kernel(coef), f"Polynomial({coef.tolist()})", remask=False)


def Monomial(degree: int) -> Layer:
    """``x^degree``, NT's ``stax.Monomial`` (any non-negative degree; NT allows 0-5).

    Raises:
        ValueError: if ``degree`` is not a non-negative integer.
    """
    degree = _check_int(degree, "degree")
    coef = np.zeros(degree + 1)
    coef[degree] = 1.0
    return _elementwise(
        lambda x: x**degree, _polynomial_kernel(coef), f"Monomial({degree})", remask=False
    )


def _arccos_polynomials(n: int) -> tuple[_Poly, _Poly]:
    """``(P_n, Q_n)`` with ``J_n(theta) = (pi - theta) P_n(cos) + sin Q_n(cos)``.

    Applies ``D = (1/sin) d/dtheta`` ``n`` times to ``f_0 = (pi - theta)/sin`` written as
    ``f = (pi - theta) P(x) sin^-p + Q(x) sin^-(p-1)`` with ``x = cos theta``:
    ``D f = (pi - theta) [-(1 - x^2) P' - p x P] sin^-(p+2)
    + [-(1 - x^2) Q' - (p-1) x Q - P] sin^-(p+1)``; then ``J_n = (-1)^n sin^(2n+1) f_n``.
    """
    x = _Poly([0.0, 1.0])
    one_minus_x2 = _Poly([1.0, 0.0, -1.0])
    p_poly, q_poly, p = _Poly([1.0]), _Poly([0.0]), 1
    for _ in range(n):
        new_p = -one_minus_x2 * p_poly.deriv() - p * x * p_poly
        new_q = -one_minus_x2 * q_poly.deriv() - (p - 1) * x * q_poly - p_poly
        p_poly, q_poly, p = new_p, new_q, p + 2
    sign = (-1) ** n
    return sign * p_poly, sign * q_poly


def _angle(k: jax.Array, c1: jax.Array, c2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(S, theta)``: ``S = sqrt(c1 c2 - k^2)`` and the angle ``arctan2(S, k)``.

    As for ABRelu, ``c1 c2 - k^2`` within float64 rounding of ``c1 c2`` is the kink
    itself (``S = 0``, e.g. a self-pair), and ``theta = pi/2`` where ``S = k = 0``.
    """
    prod = c1 * c2
    s_sq = prod - k * k
    s = sqrt(jnp.where(s_sq > _KINK_RTOL.get(s_sq.dtype, 0.0) * prod, s_sq, 0.0))
    return s, jnp.where((s == 0) & (k == 0), math.pi / 2, arctan2(s, k))


def _arccos_kernel(n: int) -> Callable:
    """``(k, c1, c2) -> (c1 c2)^(n/2) J_n(theta) / (2 pi)`` (0 where a variance is 0)."""
    p_poly, q_poly = _arccos_polynomials(n)
    pc, qc = p_poly.coef, q_poly.coef

    def kern(k: jax.Array, c1: jax.Array, c2: jax.Array) -> jax.Array:
        s, theta = _angle(k, c1, c2)
        root = sqrt(c1 * c2)
        inv = recip(root)
        cos, sin = k * inv, s * inv
        j = (math.pi - theta) * _polyval(pc, cos) + sin * _polyval(qc, cos)
        return root**n * j / (2.0 * math.pi)

    return kern


def _double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2)) if n > 0 else 1


def RectifiedMonomial(degree: int) -> Layer:
    """``x^degree 1(x >= 0)``, NT's ``stax.RectifiedMonomial`` (Cho & Saul 2009).

    Raises:
        ValueError: if ``degree`` is not a non-negative integer.
    """
    n = _check_int(degree, "degree")
    kern = _arccos_kernel(n)
    kern_lower = _arccos_kernel(n - 1) if n >= 1 else None
    cov_factor = _double_factorial(2 * n - 1) / 2.0

    def pair(k: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        nngp = kern(k, c1, c2)
        if not want_dot:
            return nngp, None
        dot = jnp.zeros_like(nngp) if kern_lower is None else n * n * kern_lower(k, c1, c2)
        return nngp, dot

    def diag(c: jax.Array) -> jax.Array:
        return cov_factor * c**n

    def fn(x: jax.Array) -> jax.Array:
        return jnp.where(x >= 0, x**n, 0.0)

    return _elementwise(fn, lambda k: _map(k, pair, diag), f"RectifiedMonomial({n})", remask=False)


def Sign() -> Layer:
    """``sign(x)``, NT's ``stax.Sign``: ``nngp' = 1 - 2 theta / pi``, zero NTK."""

    def pair(k: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        _, theta = _angle(k, c1, c2)
        return 1.0 - 2.0 / math.pi * theta, jnp.zeros_like(k)

    def diag(c: jax.Array) -> jax.Array:
        return jnp.where(c == 0, 0.0, 1.0).astype(c.dtype)

    return _elementwise(jnp.sign, lambda k: _map(k, pair, diag), "Sign", remask=False)


def Hermite(degree: int) -> Layer:
    """Normalised Hermite polynomial ``He_n(x) / sqrt(n!)``, NT's ``stax.Hermite``.

    As in NT the kernel assumes pre-activations of unit variance (``c1 = c2 = 1``, e.g.
    after ``LayerNorm``); then ``nngp' = k^n`` and ``dot = n k^(n-1)`` exactly.

    Raises:
        ValueError: if ``degree`` is not a non-negative integer.
    """
    n = _check_int(degree, "degree")
    p = np.polynomial.hermite_e.herme2poly([0] * n + [1])[::-1]
    norm = math.sqrt(math.factorial(n))

    def pair(k: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        dot = jnp.zeros_like(k) if n == 0 else n * k ** (n - 1)
        return k**n, dot

    def fn(x: jax.Array) -> jax.Array:
        return jnp.polyval(jnp.asarray(p, x.dtype), x) / norm

    return _elementwise(fn, lambda k: _map(k, pair, lambda c: c**n), f"Hermite({n})", remask=True)


def Gabor() -> Layer:
    """Gabor ``exp(-x^2) sin x``, NT's ``stax.Gabor`` (NT's closed form).

    With ``P = c1 c2``, ``S = c1 + c2``, ``Δ = 4 (P - k^2)``, ``den = 2 S + Δ + 1``:
    ``nngp' = exp(-(S + Δ + 2k) / (2 den)) (exp(2k / den) - 1) / (2 sqrt(den))`` and
    ``dot = exp(-(S + Δ + 2k)/(2 den)) (L + exp(2k/den) R) / (2 den^(5/2))`` with
    ``L, R = 1 + 2 S + 4 (k^2 + P) -+ 4 k (Δ + 3 S + 2)``.
    """

    def pair(k: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        prod, total = c1 * c2, c1 + c2
        diff = 4.0 * (prod - k * k)
        den = 2.0 * total + diff + 1.0
        inv_den = 1.0 / den
        left = jnp.exp(-(total + diff + 2.0 * k) * (0.5 * inv_den))
        right = jnp.exp(2.0 * k * inv_den)
        nngp = left * (right - 1.0) / (2.0 * jnp.sqrt(den))
        dot = None
        if want_dot:
            shared = 1.0 + 2.0 * total + 4.0 * (k * k + prod)
            diff_term = 4.0 * k * (diff + 3.0 * total + 2.0)
            dot = left * ((shared - diff_term) + right * (shared + diff_term)) * inv_den**2.5 / 2.0
        return nngp, dot

    def diag(c: jax.Array) -> jax.Array:
        den = 1.0 + 4.0 * c
        return -jnp.expm1(-2.0 * c / den) / (2.0 * jnp.sqrt(den))

    fn = lambda x: jnp.exp(-x * x) * jnp.sin(x)
    return _elementwise(fn, lambda k: _map(k, pair, diag), "Gabor", remask=False)


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """``a cos(b x + c)`` = ``Sin(a, b, c + pi/2)``, NT's ``stax.Cos``.

    Raises:
        ValueError: if ``a``, ``b`` or ``c`` is not a finite real number.
    """
    finite_real(c, "c")
    init_fn, apply_fn, kernel_fn = Sin(a, b, c + math.pi / 2)
    # Sin's functions already handle masks (remask, as NT's Cos = Sin(c + pi/2)).
    return make_layer(
        init_fn, apply_fn, kernel_map(kernel_fn), f"Cos({a}, {b}, {c})", composite=True
    )


def Sigmoid_like() -> Layer:
    """``erf(x / 2.4020563531719796) / 2 + 1/2``, NT's sigmoid stand-in (an ``Erf``).

    The constant minimises the squared distance to the logistic sigmoid on ``[-5, 5]``.
    """
    return Erf(a=0.5, b=1 / 2.4020563531719796, c=0.5)


def Elementwise(
    fn: Callable | None = None,
    nngp_fn: Callable | None = None,
    d_nngp_fn: Callable | None = None,
) -> Layer:
    """Any activation with a user-given kernel, NT's ``stax.Elementwise``.

    Args:
        fn: the scalar activation (``apply_fn`` raises NotImplementedError when None).
        nngp_fn: ``nngp_fn(k, c1, c2) = E[fn(u) fn(v)]`` for ``(u, v)`` centred Gaussian
            with variances ``c1, c2`` and covariance ``k``, on scalars (it is vectorised).
        d_nngp_fn: ``E[fn'(u) fn'(v)]`` with the same signature; by default the
            derivative of ``nngp_fn`` in ``k`` (Price's theorem), by autodiff.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``; ``kernel_fn`` raises NotImplementedError
        when ``nngp_fn`` is None.

    Raises:
        ValueError: if both ``fn`` and ``nngp_fn`` are None or one is not callable.
    """
    if fn is None and nngp_fn is None:
        raise ValueError(
            "Elementwise needs `fn` (finite width) or `nngp_fn` (kernel); got neither."
        )
    for f, name in ((fn, "fn"), (nngp_fn, "nngp_fn"), (d_nngp_fn, "d_nngp_fn")):
        if f is not None and not callable(f):
            raise ValueError(f"`{name}` must be callable or None; got {f!r}.")
    label = getattr(fn if fn is not None else nngp_fn, "__name__", "fn")
    if nngp_fn is not None:
        nngp_v = jnp.vectorize(nngp_fn)
        d_v = jnp.vectorize(d_nngp_fn if d_nngp_fn is not None else jax.grad(nngp_fn))

    def pair(k: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        return nngp_v(k, c1, c2), d_v(k, c1, c2) if want_dot else None

    def kernel(k: Kernel) -> Kernel:
        if nngp_fn is None:
            raise NotImplementedError("Elementwise: no `nngp_fn` given, so no kernel_fn.")
        return _map(k, pair, lambda c: nngp_v(c, c, c))

    def apply(x: jax.Array) -> jax.Array:
        if fn is None:
            raise NotImplementedError("Elementwise: no `fn` given, so no apply_fn.")
        return fn(x)

    return _elementwise(apply, kernel, f"Elementwise({label})", remask=True)


def ElementwiseNumerical(fn: Callable, deg: int, df: Callable | None = None) -> Layer:
    """Any activation, kernel by Gauss-Hermite quadrature, NT's ``ElementwiseNumerical``.

    Memory and time scale as ``deg^2 n1 n2``; accurate for smooth ``fn`` (``deg = 25`` is
    NT's suggested start), poor for kinks (ReLU, Abs): use the closed forms there.

    Args:
        fn: the scalar activation (jax-traceable, elementwise).
        deg: number of quadrature nodes per dimension, ``>= 1``.
        df: its derivative; by default ``jax.grad(fn)`` (vectorised).

    Raises:
        ValueError: if ``fn`` is not callable or ``deg`` is not a positive integer.
    """
    if not callable(fn):
        raise ValueError(f"`fn` must be callable; got {fn!r}.")
    deg = check_positive_int(deg, "deg")
    xs, ws = np.polynomial.hermite.hermgauss(deg)
    dfn = df if df is not None else jnp.vectorize(jax.grad(fn))

    def integrate(f: Callable, k: jax.Array, c1: jax.Array, c2: jax.Array) -> jax.Array:
        x = jnp.asarray(xs, k.dtype)[:, None, None, None]
        y = jnp.asarray(xs, k.dtype)[None, :, None, None]
        u = sqrt(2.0 * c1) * x
        v = k * sqrt(2.0 / jnp.maximum(c1, 1e-30)) * x + sqrt(2.0 * (c2 - k * k * recip(c1))) * y
        grid = jnp.asarray(np.outer(ws, ws) / math.pi, k.dtype)
        return jnp.tensordot(grid, f(u) * f(v), axes=((0, 1), (0, 1)))

    def pair(k: jax.Array, c1: jax.Array, c2: jax.Array, want_dot: bool) -> tuple:
        dot = integrate(dfn, k, c1, c2) if want_dot else None
        return integrate(fn, k, c1, c2), dot

    def diag(c: jax.Array) -> jax.Array:
        x = jnp.asarray(xs, c.dtype)[:, None]
        vals = fn(sqrt(2.0 * c)[None, :] * x) ** 2
        return jnp.tensordot(jnp.asarray(ws / math.sqrt(math.pi), c.dtype), vals, axes=1)

    label = getattr(fn, "__name__", "fn")
    return _elementwise(
        fn, lambda k: _map(k, pair, diag), f"ElementwiseNumerical({label}, deg={deg})", remask=True
    )
