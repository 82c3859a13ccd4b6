"""FanInProd / FanInConcat: exact identities and a Monte-Carlo limit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gantk
from gantk import stax

X = jax.random.normal(jax.random.PRNGKey(0), (4, 3), dtype=jnp.float64)


def test_fan_in_concat_is_the_width_weighted_mean():
    a, b = stax.Dense(30, 1.5, 0.2), stax.Dense(10, 0.5, 1.0)
    net = stax.serial(stax.FanOut(2), stax.parallel(a, b), stax.FanInConcat())
    out = net[2](X, None, ("nngp", "ntk", "cov1", "shape1", "is_gaussian"))
    ka, kb = a[2](X, None), b[2](X, None)
    np.testing.assert_allclose(out.nngp, 0.75 * ka.nngp + 0.25 * kb.nngp, rtol=1e-14)
    np.testing.assert_allclose(out.ntk, 0.75 * ka.ntk + 0.25 * kb.ntk, rtol=1e-14)
    np.testing.assert_allclose(out.cov1, 0.75 * ka.cov1 + 0.25 * kb.cov1, rtol=1e-14)
    assert out.shape1 == (4, 40) and out.is_gaussian is False
    shape, params = net[0](jax.random.PRNGKey(1), X.shape)
    assert shape == (4, 40) and net[1](params, X).shape == (4, 40)
    batch_cat = stax.serial(stax.FanOut(2), stax.parallel(a, b), stax.FanInConcat(axis=0))
    with pytest.raises(NotImplementedError, match="channel axis"):
        batch_cat[2](X)


def test_fan_in_prod_multiplies_kernels_with_the_product_rule():
    a, b = stax.Dense(8, 1.5, 0.2), stax.serial(stax.Dense(8, 1.0, 0.1), stax.Erf(), stax.Dense(8))
    net = stax.serial(stax.FanOut(2), stax.parallel(a, b), stax.FanInProd())
    out = net[2](X, None)
    ka, kb = a[2](X, None), b[2](X, None)
    np.testing.assert_allclose(out.nngp, ka.nngp * kb.nngp, rtol=1e-14)
    np.testing.assert_allclose(out.ntk, ka.ntk * kb.nngp + ka.nngp * kb.ntk, rtol=1e-14)
    np.testing.assert_allclose(out.cov1, ka.cov1 * kb.cov1, rtol=1e-14)
    assert not out.is_gaussian
    _, params = net[0](jax.random.PRNGKey(1), X.shape)
    np.testing.assert_allclose(net[1](params, X), a[1](params[1][0], X) * b[1](params[1][1], X))


@pytest.mark.slow
def test_fan_in_prod_network_monte_carlo():
    branch = lambda: stax.serial(stax.Dense(512, 1.5, 0.3), stax.Relu(), stax.Dense(512))
    net = stax.serial(
        stax.FanOut(2), stax.parallel(branch(), branch()), stax.FanInProd(), stax.Dense(1)
    )
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    mc = gantk.monte_carlo_kernel_fn(net[0], net[1], jax.random.PRNGKey(2), 64, vmap_axes=0)
    exact = net[2](x, None, "ntk")
    assert float(jnp.linalg.norm(mc(x, None, "ntk") - exact) / jnp.linalg.norm(exact)) < 0.1
