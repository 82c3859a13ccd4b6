"""Fusion-friendly elementwise maths for the kernel recursions.

XLA's CPU backend lowers ``atan2``/``atan``/``acos`` to scalar libm calls that do not
vectorise (about 20 ns per element, most of the cost of a ReLU NTK). :func:`arctan2` is
therefore built from arithmetic that XLA fuses and vectorises:

1. fold to the first octant, ``lo = min(|y|, |x|)``, ``hi = max(|y|, |x|)``;
2. for ``lo / hi > tan(pi/8)`` use ``atan(t) = pi/4 + atan((t - 1) / (t + 1))``; the
   reduced argument ``u = (lo - hi) / (lo + hi)`` (else ``u = lo / hi``) is formed with a
   single division and satisfies ``|u| <= tan(pi/8)``;
3. ``atan(u) = u + u z R(z)`` with ``z = u^2`` and ``R`` a polynomial interpolating
   ``(atan(u)/u - 1)/z`` at Chebyshev nodes of ``[0, tan(pi/8)^2]`` (coefficients computed
   in extended precision; degree 10 for float64, 4 for float32);
4. unfold the octant and the signs.

The maximal error is below two ulp of the working precision (checked against numpy's
``arctan2`` in ``tests/test_stax_math.py``). A single division matters: XLA does not
duplicate divisions into several consumers, so every extra one used twice is written to
memory and splits the fused loop. The derivative is the exact
``(x dy - y dx) / (x^2 + y^2)`` (0 at the origin), as NT's ``_arctan2``.

:func:`recip` and :func:`sqrt` are NaN-free helpers: ``1/x`` that is 0 for ``x <= 0`` and
``sqrt(max(x, 0))`` whose derivative is 0 for ``x <= 0`` (NT's ``_sqrt``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["arctan2", "recip", "sqrt"]

# R(z) coefficients, lowest degree first (see module docstring).
_COEF64 = (
    -0.33333333333333337,
    0.1999999999999686,
    -0.1428571428479596,
    0.11111111021480034,
    -0.0909090475002031,
    0.0769218612408035,
    -0.06664543414908877,
    0.05858371927982759,
    -0.05086413589267842,
    0.03925516336037699,
    -0.019201615057165444,
)
_COEF32 = (
    -0.3333333176116852,
    0.19999540483648953,
    -0.14263955597984423,
    0.10743731490789454,
    -0.06451928208117633,
)
_TAN_PI_8 = 0.41421356237309503


def recip(x: jax.Array) -> jax.Array:
    """``1 / x`` where ``x > 0``, else 0 (a double ``where``: no NaN in any derivative)."""
    x = jnp.asarray(x)
    pos = x > 0
    return jnp.where(pos, 1.0 / jnp.where(pos, x, 1.0), 0.0)


@jax.custom_jvp
def sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(max(x, 0))`` whose derivative is 0 where ``x <= 0`` (NT's ``_sqrt``).

    The derivative ``dx / (2 sqrt(x))`` is replaced by 0 where ``x <= 0``, so no NaN/inf
    arises at 0, also for higher derivatives.
    """
    x = jnp.asarray(x)
    pos = x > 0
    # Double `where`: even differentiated directly (bypassing the rule below, as JAX can
    # when a scan is linearised and then differentiated forward) the derivative is 0,
    # not inf * 0 = NaN, where x <= 0.
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


@sqrt.defjvp
def _sqrt_jvp(primals: tuple, tangents: tuple) -> tuple:
    (x,), (dx,) = primals, tangents
    root = sqrt(x)
    return root, dx * (0.5 * recip(root))


def _atan_unit(lo: jax.Array, hi: jax.Array) -> jax.Array:
    """``atan(lo / hi)`` for ``0 <= lo <= hi`` (0 where ``hi = 0``)."""
    coef = _COEF64 if lo.dtype == jnp.float64 else _COEF32
    big = lo > _TAN_PI_8 * hi
    # u = (t - 1) / (t + 1) above tan(pi/8), else t = lo / hi: a single division.
    u = jnp.where(big, lo - hi, lo) * recip(jnp.where(big, lo + hi, hi))
    z = u * u
    p = jnp.full_like(z, coef[-1])
    for c in coef[-2::-1]:
        p = p * z + c
    a = u + u * (z * p)
    return jnp.where(big, math.pi / 4 + a, a)


@jax.custom_jvp
def arctan2(y: jax.Array, x: jax.Array) -> jax.Array:
    """Elementwise ``arctan2(y, x)`` in ``[-pi, pi]``, vectorisable and fusible on CPU.

    Same values as :func:`jax.numpy.arctan2` to within two ulp, except that
    ``arctan2(+-0, +-0) = 0``.

    Args:
        y: ordinate (floating array).
        x: abscissa, broadcastable with ``y``.

    Returns:
        The angle of ``(x, y)``, in the promoted floating dtype.
    """
    dtype = jnp.result_type(y, x)
    y = jnp.asarray(y, dtype)
    x = jnp.asarray(x, dtype)
    ay, ax = jnp.abs(y), jnp.abs(x)
    a = _atan_unit(jnp.minimum(ay, ax), jnp.maximum(ay, ax))
    a = jnp.where(ay > ax, math.pi / 2 - a, a)
    a = jnp.where(x < 0, math.pi - a, a)
    return jnp.where(y < 0, -a, a)


@arctan2.defjvp
def _arctan2_jvp(primals: tuple, tangents: tuple) -> tuple:
    y, x = primals
    dy, dx = tangents
    out = arctan2(y, x)
    inv = recip(x * x + y * y)
    return out, (x * dy - y * dx) * inv
