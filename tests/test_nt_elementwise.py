"""NT's elementwise layers: closed forms vs Monte-Carlo, quadrature and NT's own formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gantk
from gantk import stax

X = np.random.default_rng(0).normal(size=(4, 3))
N_MC = 400_000


def _pre(W_std=1.0, b_std=0.3):
    """Input kernel of Dense(W_std, b_std) on X: nngp = ntk = W² X Xᵀ/d + b²."""
    return W_std**2 * X @ X.T / X.shape[1] + b_std**2


def _kernels(layer, W_std=1.0, b_std=0.3):
    net = stax.serial(stax.Dense(512, W_std, b_std), layer)
    return net[2](jnp.asarray(X), None, ("nngp", "ntk", "cov1"))


def _monte_carlo(fn, cov, seed=0):
    """E[φ(u_i) φ(u_j)] and E[φ'(u_i) φ'(u_j)] over u ~ N(0, cov), with standard errors."""
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(len(cov)))
    u = np.random.default_rng(seed).normal(size=(N_MC, len(cov))) @ chol.T
    out = []
    for f in (fn, jax.vmap(jax.vmap(jax.grad(fn)))):
        v = np.asarray(f(jnp.asarray(u)))
        prod = v[:, :, None] * v[:, None, :]
        out += [prod.mean(0), prod.std(0) / math.sqrt(N_MC)]
    return out


ACTIVATIONS = {
    "Exp": (lambda: stax.Exp(0.7, 0.6), lambda x: 0.7 * jnp.exp(0.6 * x)),
    "Gaussian": (lambda: stax.Gaussian(1.3, -0.4), lambda x: 1.3 * jnp.exp(-0.4 * x * x)),
    "Monomial3": (lambda: stax.Monomial(3), lambda x: x**3),
    "Polynomial": (lambda: stax.Polynomial([0.5, -1.0, 0.3, 0.2]), None),
    "RectifiedMonomial2": (lambda: stax.RectifiedMonomial(2), lambda x: jnp.where(x > 0, x * x, 0)),
    "RectifiedMonomial0": (lambda: stax.RectifiedMonomial(0), lambda x: jnp.where(x > 0, 1.0, 0)),
    "Sign": (lambda: stax.Sign(), jnp.sign),
    "Gabor": (lambda: stax.Gabor(), lambda x: jnp.exp(-x * x) * jnp.sin(x)),
    "Cos": (lambda: stax.Cos(1.2, 0.8, 0.3), lambda x: 1.2 * jnp.cos(0.8 * x + 0.3)),
    "Sigmoid_like": (
        lambda: stax.Sigmoid_like(),
        lambda x: jax.scipy.special.erf(x / 2.4020563531719796) / 2 + 0.5,
    ),
    "LeakyRelu_stable": (
        lambda: stax.LeakyRelu(0.2, do_stabilize=True),
        lambda x: jnp.where(x > 0, x, 0.2 * x),
    ),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_closed_form_matches_gaussian_monte_carlo(name):
    make, fn = ACTIVATIONS[name]
    layer = make()
    if fn is None:  # the layer's own apply_fn
        fn = lambda x: layer[1]((), x)
    k = _kernels(layer)
    pre = _pre()
    nngp, nngp_se, dot, dot_se = _monte_carlo(fn, pre)
    # 5 standard errors (+ a floor for entries whose MC variance is ~0, e.g. Sign's diagonal).
    np.testing.assert_array_less(np.abs(k.nngp - nngp), 5 * nngp_se + 1e-9)
    np.testing.assert_array_less(np.abs(k.ntk - pre * dot), 5 * np.abs(pre) * dot_se + 1e-9)
    np.testing.assert_allclose(k.cov1, np.diag(k.nngp), rtol=1e-9, atol=1e-12)


SMOOTH = {
    "Exp": (lambda: stax.Exp(0.7, 0.6), lambda x: 0.7 * jnp.exp(0.6 * x)),
    "Gaussian": (lambda: stax.Gaussian(1.3, -0.4), lambda x: 1.3 * jnp.exp(-0.4 * x * x)),
    "Monomial5": (lambda: stax.Monomial(5), lambda x: x**5),
    "Polynomial": (
        lambda: stax.Polynomial([0.5, -1.0, 0.3, 0.2]),
        lambda x: 0.5 - x + 0.3 * x**2 + 0.2 * x**3,
    ),
    "Gabor": (lambda: stax.Gabor(), lambda x: jnp.exp(-x * x) * jnp.sin(x)),
    "Cos": (lambda: stax.Cos(1.2, 0.8, 0.3), lambda x: 1.2 * jnp.cos(0.8 * x + 0.3)),
}


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_closed_form_matches_gauss_hermite_quadrature(name):
    make, fn = SMOOTH[name]
    a, b = _kernels(make()), _kernels(stax.ElementwiseNumerical(fn, deg=100))
    for f in ("nngp", "ntk", "cov1"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-8, atol=1e-10)


def test_nt_monomial_table_and_cho_saul_arccos():
    pre = _pre()
    c = np.diag(pre)
    prod = c[:, None] * c[None, :]
    k = pre
    # NT's Monomial nngp table (neural_tangents/_src/stax/elementwise.py, Monomial).
    table = {
        2: 2 * k**2 + prod,
        3: 6 * k**3 + 9 * k * prod,
        4: 3 * (8 * k**4 + 3 * prod * (8 * k**2 + prod)),
        5: 15 * k * (8 * k**4 + 5 * prod * (8 * k**2 + 3 * prod)),
    }
    for d, ref in table.items():
        out = _kernels(stax.Monomial(d))
        np.testing.assert_allclose(out.nngp, ref, rtol=1e-12)
        np.testing.assert_allclose(
            out.ntk, pre * d * d * table.get(d - 1, k if d == 2 else None), rtol=1e-12
        )
    # Cho & Saul (2009) J_1, J_2 for RectifiedMonomial; RectifiedMonomial(1) is ReLU.
    theta = np.arccos(np.clip(k / np.sqrt(prod), -1, 1))
    s, co = np.sin(theta), np.cos(theta)
    j = {1: s + (np.pi - theta) * co, 2: 3 * s * co + (np.pi - theta) * (1 + 2 * co**2)}
    for n, jn in j.items():
        out = _kernels(stax.RectifiedMonomial(n))
        np.testing.assert_allclose(
            out.nngp, prod ** (n / 2) * jn / (2 * np.pi), rtol=1e-7, atol=1e-12
        )
    relu, rm1 = _kernels(stax.Relu()), _kernels(stax.RectifiedMonomial(1))
    for f in ("nngp", "ntk", "cov1"):
        np.testing.assert_allclose(getattr(rm1, f), getattr(relu, f), rtol=1e-7, atol=1e-12)
    # Sign: 1 - 2θ/π; Hermite(n) on unit variances: k^n; ExpNormalized: NT's formula.
    np.testing.assert_allclose(_kernels(stax.Sign()).nngp, 1 - 2 * theta / np.pi, atol=1e-7)
    unit = stax.serial(stax.Dense(8, 1.0, 0.3), stax.LayerNorm(), stax.Dense(8), stax.Hermite(3))
    kk = np.asarray(unit[2](jnp.asarray(X), None, "nngp"))
    ln = stax.serial(stax.Dense(8, 1.0, 0.3), stax.LayerNorm(), stax.Dense(8))[2](
        jnp.asarray(X), None, "nngp"
    )
    np.testing.assert_allclose(kk, np.asarray(ln) ** 3, rtol=1e-12)
    en = _kernels(stax.ExpNormalized(0.8, -1.0))
    q = np.sqrt(prod)
    np.testing.assert_allclose(en.nngp, q * np.exp(0.8 * (k / q - 1)), rtol=1e-12)
    np.testing.assert_allclose(en.ntk, 0.8 * pre * np.exp(0.8 * (k / q - 1)), rtol=1e-12)


def test_elementwise_with_user_kernel_and_autodiff_derivative():
    def nngp_fn(k, c1, c2):  # the arcsine kernel of erf (Williams 1997)
        return 2 / jnp.pi * jnp.arcsin(2 * k / jnp.sqrt((1 + 2 * c1) * (1 + 2 * c2)))

    a = _kernels(stax.Elementwise(jax.scipy.special.erf, nngp_fn))
    b = _kernels(stax.Erf())
    for f in ("nngp", "ntk", "cov1"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-9)
    with pytest.raises(ValueError, match="neither"):
        stax.Elementwise()
    with pytest.raises(NotImplementedError, match="nngp_fn"):
        _kernels(stax.Elementwise(fn=jnp.tanh))


def test_do_stabilize_is_exact_and_survives_huge_scales():
    x = jnp.asarray(X)
    for W_std in (1.0, 1e6):
        plain = stax.serial(stax.Dense(8, W_std, 0.1), stax.Relu(), stax.Dense(8, W_std))
        stable = stax.serial(
            stax.Dense(8, W_std, 0.1), stax.Relu(do_stabilize=True), stax.Dense(8, W_std)
        )
        a, b = plain[2](x, None, ("nngp", "ntk")), stable[2](x, None, ("nngp", "ntk"))
        np.testing.assert_allclose(b.nngp, a.nngp, rtol=1e-12)
        np.testing.assert_allclose(b.ntk, a.ntk, rtol=1e-12)
        ga = jax.grad(lambda z, net=plain: stax.ntk(net)(z).sum())(x)
        gb = jax.grad(lambda z, net=stable: stax.ntk(net)(z).sum())(x)
        np.testing.assert_allclose(gb, ga, rtol=1e-9)


def test_layer_names_and_argument_checks():
    assert stax.Sin()[2].__name__ == "Sin" and stax.Exp()[2].__name__ == "Exp"
    assert stax.Gabor()[1].__name__ == "Gabor"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="degree"):
            stax.Monomial(bad)
    with pytest.raises(ValueError, match="deg"):
        stax.ElementwiseNumerical(jnp.sin, 0)
    with pytest.raises(ValueError, match="coef"):
        stax.Polynomial([[1.0]])
    with pytest.raises(ValueError, match="do_stabilize"):
        stax.Relu(do_stabilize="yes")
    with pytest.raises(NotImplementedError, match="finite-width"):
        stax.ExpNormalized()[1]((), jnp.ones((2, 2)))


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize(
    "make",
    [lambda: stax.Gabor(), lambda: stax.RectifiedMonomial(2)],
    ids=["Gabor", "RectifiedMonomial2"],
)
def test_network_monte_carlo_in_both_parameterizations(make, parameterization):
    # NT's fc protocol for the NTK (read-out width 1, 200 samples, rtol 0.08 on CPU).
    p = parameterization
    net = stax.serial(
        stax.Dense(1024, 2.0, 0.5, parameterization=p), make(),
        stax.Dense(1, 1.0, None, parameterization=p),
    )
    x1 = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    mc = gantk.monte_carlo_kernel_fn(net[0], net[1], jax.random.PRNGKey(2), 200, vmap_axes=0)
    exact = net[2](x1, None, "ntk")
    assert float(jnp.linalg.norm(mc(x1, None, "ntk") - exact) / jnp.linalg.norm(exact)) < 0.08
