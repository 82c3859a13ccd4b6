"""Monte Carlo: finite-width apply_fn networks converge to the infinite-width kernel_fn.

The empirical NNGP is the output covariance over random initialisations (and over the
i.i.d. output units of a wide read-out), the empirical NTK the contraction of parameter
Jacobians. Both approach kernel_fn as the width grows, with error ~ 1/sqrt(width).
"""

import jax
import jax.numpy as jnp
import pytest

from gantk import stax


def points(n, d=3, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, d), dtype=jnp.float64)


def empirical_nngp(init_fn, apply_fn, x, n_seeds, seed=0):
    """Mean over seeds and output units of f(x_i) f(x_j)."""

    def one(key):
        _, params = init_fn(key, x.shape)
        out = apply_fn(params, x)  # (n, R)
        return out @ out.T / out.shape[1]

    keys = jax.random.split(jax.random.PRNGKey(seed), n_seeds)
    return jnp.mean(jax.lax.map(one, keys), axis=0)


def empirical_ntk(init_fn, apply_fn, x, n_seeds, seed=0):
    """Mean over seeds of sum_p df(x_i)/dp df(x_j)/dp for a scalar-output network."""

    def one(key):
        _, params = init_fn(key, x.shape)
        jac = jax.jacrev(lambda p: apply_fn(p, x)[:, 0])(params)
        leaves = [j.reshape(x.shape[0], -1) for j in jax.tree_util.tree_leaves(jac)]
        return sum(j @ j.T for j in leaves)

    keys = jax.random.split(jax.random.PRNGKey(seed), n_seeds)
    return jnp.mean(jax.lax.map(one, keys), axis=0)


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def one_hidden(act, width, out=1, w=1.2, b=0.3):
    return stax.serial(stax.Dense(width, w, b), act, stax.Dense(out, 0.9, 0.1))


@pytest.mark.slow
@pytest.mark.parametrize(
    "act",
    [stax.Relu, lambda: stax.LeakyRelu(0.2), stax.Abs, lambda: stax.ABRelu(-0.5, 1.5),
     lambda: stax.Erf(1.1, 0.8, 0.2), stax.Gelu, lambda: stax.Sin(1.0, 1.3, 0.4),
     lambda: stax.Rbf(0.5)],
)
def test_empirical_nngp_matches_kernel_for_every_activation(act):
    x = points(5)
    init_fn, apply_fn, kernel_fn = one_hidden(act(), 4096, out=2048)
    emp = empirical_nngp(init_fn, apply_fn, x, n_seeds=4)
    assert rel_err(emp, kernel_fn(x, None, get="nngp")) < 0.06


def test_empirical_nngp_error_shrinks_with_width():
    x = points(6)
    errs = []
    for width in (128, 2048):
        init_fn, apply_fn, kernel_fn = one_hidden(stax.Relu(), width, out=4096)
        emp = empirical_nngp(init_fn, apply_fn, x, n_seeds=8)
        errs.append(rel_err(emp, kernel_fn(x, None, get="nngp")))
    assert errs[1] < errs[0] / 2  # expected factor sqrt(16) = 4
    assert errs[1] < 0.03


def test_empirical_ntk_error_shrinks_with_width():
    x = points(5)
    errs = []
    for width in (128, 8192):
        init_fn, apply_fn, kernel_fn = one_hidden(stax.Relu(), width)
        emp = empirical_ntk(init_fn, apply_fn, x, n_seeds=8)
        errs.append(rel_err(emp, kernel_fn(x, None, get="ntk")))
    assert errs[1] < errs[0] / 3  # expected factor sqrt(64) = 8
    assert errs[1] < 0.02


@pytest.mark.slow
def test_empirical_ntk_two_hidden_layers_gan_discriminator():
    """The GAN(TK)^2 ReLU discriminator (two hidden layers here) at width 2048."""
    width = 2048
    net = stax.serial(
        stax.Dense(width, 1.0, 1.0), stax.Relu(), stax.Dense(width, 1.0, 1.0), stax.Relu(),
        stax.Dense(1, 1.0, 0.0),
    )
    x = points(4, 2)
    emp = empirical_ntk(net[0], net[1], x, n_seeds=4)
    assert rel_err(emp, net[2](x, None, get="ntk")) < 0.04


def test_empirical_ntk_standard_parameterization():
    width = 1024
    net = stax.serial(
        stax.Dense(width, 1.3, 0.2, parameterization="standard"), stax.Relu(),
        stax.Dense(1, 1.1, 0.1, parameterization="standard"),
    )
    x = points(4)
    emp = empirical_ntk(net[0], net[1], x, n_seeds=8)
    # Dominated by width * nngp (standard parameterization): a 1/sqrt(8 * 1024) estimate.
    assert rel_err(emp, net[2](x, None, get="ntk")) < 0.06


def test_empirical_nngp_layernorm_and_residual():
    width = 4096
    x = points(4)
    ln = stax.serial(stax.Dense(width, 1.0, 0.5), stax.LayerNorm(), stax.Relu(),
                     stax.Dense(2048, 1.0, 0.0))
    assert rel_err(empirical_nngp(ln[0], ln[1], x, 8), ln[2](x, None, get="nngp")) < 0.05
    res = stax.serial(
        stax.Dense(width, 1.0, 0.3),
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Relu(), stax.Dense(width, 1.2, 0.1)), stax.Identity()),
        stax.FanInSum(),
        stax.Relu(),
        stax.Dense(2048, 1.0, 0.0),
    )
    assert rel_err(empirical_nngp(res[0], res[1], x, 4), res[2](x, None, get="nngp")) < 0.05
