"""The vectorisable arctan2 of gantk.stax._math: accuracy, special values, derivative."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk.stax._math import arctan2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_arctan2_within_two_ulp_of_extended_precision(dtype):
    rng = np.random.default_rng(0)
    n = 200_000
    y = (rng.standard_normal(n) * 10 ** rng.uniform(-6, 6, n)).astype(dtype)
    x = (rng.standard_normal(n) * 10 ** rng.uniform(-6, 6, n)).astype(dtype)
    # Octant boundaries and the reduction point tan(pi/8).
    y[:4] = [1, 1, -1, 0.41421356]
    x[:4] = [1, -1, -1, 1]
    got = np.asarray(jax.jit(arctan2)(y, x))
    assert got.dtype == dtype
    ref = np.arctan2(y.astype(np.longdouble), x.astype(np.longdouble))
    ulp = np.finfo(dtype).eps
    assert np.max(np.abs(got - ref) / np.abs(ref)) < 2 * ulp


@pytest.mark.parametrize(
    ("y", "x", "expected"),
    [
        (0.0, 0.0, 0.0),
        (1.0, 0.0, np.pi / 2),
        (-1.0, 0.0, -np.pi / 2),
        (0.0, -1.0, np.pi),
        (0.0, 2.0, 0.0),
        (3.0, -3.0, 3 * np.pi / 4),
        (-2.0, -2.0, -3 * np.pi / 4),
    ],
)
def test_arctan2_special_values(y, x, expected):
    assert float(arctan2(jnp.float64(y), jnp.float64(x))) == pytest.approx(expected, abs=1e-15)


def test_arctan2_derivative_is_exact_and_finite_at_origin():
    g = jax.grad(arctan2, argnums=(0, 1))
    y, x = 0.3, -0.7
    dy, dx = g(y, x)
    r2 = x * x + y * y
    assert float(dy) == pytest.approx(x / r2, rel=1e-14)
    assert float(dx) == pytest.approx(-y / r2, rel=1e-14)
    dy0, dx0 = g(0.0, 0.0)
    assert float(dy0) == 0.0 and float(dx0) == 0.0
