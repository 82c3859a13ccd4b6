"""stax.repeat: a scanned composition equal to the unrolled one, compiled once (issue #14.7)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import stax
from gantk.architectures import MLPSpec


def _x(n=5, d=3, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, d), dtype=jnp.float64)


def test_repeat_equals_unrolled_serial():
    n = 4
    block = stax.serial(stax.Relu(), stax.Dense(64, 1.3, 0.2))
    head = stax.Dense(64, 1.0, 0.1)
    rep = stax.serial(head, stax.repeat(block, n))
    unrolled = stax.serial(head, *([block] * n))
    x1, x2 = _x(), _x(4, seed=1)
    a, b = rep[2](x1, x2, get=None), unrolled[2](x1, x2, get=None)
    for f in ("nngp", "ntk", "cov1", "cov2"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-13, atol=1e-14)
    # Same key sequence as serial(*[layer] * n): identical parameters, identical outputs.
    key, h = jax.random.PRNGKey(3), jax.random.normal(jax.random.PRNGKey(4), (5, 64))
    rep, unrolled = stax.repeat(block, n), stax.serial(*([block] * n))
    (s1, p1), (s2, p2) = rep[0](key, h.shape), unrolled[0](key, h.shape)
    assert s1 == s2 == (5, 64)
    np.testing.assert_allclose(rep[1](p1, h), unrolled[1](p2, h), rtol=1e-12)


def _erf_mlp_recursion(x1, x2, depth):
    """NumPy float64 NNGP/NTK of MLPSpec('erf', depth) for one pair (Williams 1997)."""
    d = x1.size
    k, c1, c2, ntk = x1 @ x2 / d, x1 @ x1 / d, x2 @ x2 / d, 0.0

    def dense(k, c1, c2, ntk, w=1.0, b=1.0):
        k, c1, c2 = w * w * k + b * b, w * w * c1 + b * b, w * w * c2 + b * b
        return k, c1, c2, k + w * w * ntk

    def erf(k, c1, c2, ntk):
        den = math.sqrt((1 + 2 * c1) * (1 + 2 * c2))
        dot = 4 / math.pi / math.sqrt((1 + 2 * c1) * (1 + 2 * c2) - 4 * k * k)
        fix = lambda c: 2 / math.pi * math.asin(2 * c / (1 + 2 * c))
        return 2 / math.pi * math.asin(2 * k / den), fix(c1), fix(c2), ntk * dot

    state = dense(k, c1, c2, ntk)
    for _ in range(depth - 1):
        state = dense(*erf(*state))
    state = dense(*erf(*state), w=1.0, b=0.0)
    return state[0], state[3]


def test_depth_100_erf_compiles_once_and_matches_recursion():
    x = _x(4, 3)
    spec = MLPSpec("erf", depth=100, b_std=1.0)
    kfn = spec.kernel_fn()
    out = kfn(x, None, get=("nngp", "ntk"))
    xn = np.asarray(x)
    for i, j in [(0, 1), (2, 2), (1, 3)]:
        nngp, ntk = _erf_mlp_recursion(xn[i], xn[j], 100)
        np.testing.assert_allclose(out.nngp[i, j], nngp, rtol=1e-11)
        np.testing.assert_allclose(out.ntk[i, j], ntk, rtol=1e-11)
    # The traced program does not grow with depth: one scanned block.
    size = {d: len(str(jax.make_jaxpr(MLPSpec("erf", depth=d).k())(x))) for d in (5, 100)}
    assert abs(size[100] - size[5]) <= 4, size  # only the scan length's digits differ
    grad = jax.grad(lambda z: spec.k()(z).sum())(x)
    assert np.isfinite(np.asarray(grad)).all()


def test_repeat_rejects_shape_or_metadata_changes():
    with pytest.raises(ValueError, match="non-negative integer"):
        stax.repeat(stax.Relu(), -1)
    with pytest.raises(ValueError, match="triples"):
        stax.repeat("relu", 2)
    widen = stax.repeat(stax.Dense(7), 3)
    with pytest.raises(ValueError, match="keep the shape"):
        widen[0](jax.random.PRNGKey(0), (2, 3))
    with pytest.raises(ValueError, match="metadata"):
        stax.repeat(stax.FanOut(2), 3)[2](_x())
    x = _x()
    np.testing.assert_array_equal(stax.repeat(stax.Relu(), 0)[2](x, get="nngp"), x @ x.T / 3)


def test_scanned_relu_hessian_is_finite_at_kink_and_origin():
    # Forward-over-reverse through lax.scan differentiates stax's sqrt directly (not its
    # custom rule); the double-where implementation keeps that finite at 0.
    x2 = _x(3, 2, seed=1)
    k = MLPSpec("relu", depth=6, b_std=0.0).k()
    for x in (jnp.zeros((1, 2)), x2[:1]):
        hess = jax.hessian(lambda a: jnp.sum(k(a, x2)))(x)
        assert bool(jnp.all(jnp.isfinite(hess)))
