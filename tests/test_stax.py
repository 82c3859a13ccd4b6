"""Values of the closed-form NNGP/NTK kernels of gantk.stax and its NT-compatible API.

Values are checked against (a) closed forms written out here for one- and two-layer nets,
(b) an independent numpy re-derivation of NT's layer-by-layer recursion for deep nets,
(c) Gauss-Hermite quadrature of the defining Gaussian integrals, and (d) invariances.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import erf as sp_erf
from scipy.stats import norm

from gantk import stax
from gantk.architectures import KERNELS, MLPSpec

# --------------------------------------------------------------------------- helpers


def points(n, d=3, seed=0, scale=1.0):
    return scale * jax.random.normal(jax.random.PRNGKey(seed), (n, d), dtype=jnp.float64)


def arccos_j(c1, c2, k):
    """E[relu(u) relu(v)] and P(u > 0, v > 0) for (u, v) ~ N(0, [[c1, k], [k, c2]])."""
    r = np.sqrt(np.outer(c1, c2))
    theta = np.arccos(np.clip(k / r, -1, 1))
    return r / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta)), theta


def ab_relu_moments(a, b, c1, c2, k):
    """E[phi(u) phi(v)] and E[phi'(u) phi'(v)] for phi = a min(x, 0) + b max(x, 0).

    phi(x) = b relu(x) - a relu(-x); the mixed terms are arc-cosine kernels at pi - theta.
    """
    j, theta = arccos_j(c1, c2, k)
    j_flip, _ = arccos_j(c1, c2, -k)
    nngp = (a * a + b * b) * j - 2 * a * b * j_flip
    dot = ((a * a + b * b) * (np.pi - theta) + 2 * a * b * theta) / (2 * np.pi)
    return nngp, dot


def ref_kernel(layers, x1, x2):
    """Independent numpy (float64) evaluation of NT's recursion for an MLP."""
    x1, x2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    d = x1.shape[1]
    k = x1 @ x2.T / d
    c1, c2 = (x1**2).sum(1) / d, (x2**2).sum(1) / d
    ntk = np.zeros_like(k)
    for layer in layers:
        kind, p = layer[0], layer[1:]
        if kind == "dense":
            w, b = p
            k, c1, c2 = (w * w * m + b * b for m in (k, c1, c2))
            ntk = k + w * w * ntk
        elif kind == "ab":
            a, b = p
            k_new, dot = ab_relu_moments(a, b, c1, c2, k)
            k, ntk = k_new, ntk * dot
            c1, c2 = (a * a + b * b) / 2 * c1, (a * a + b * b) / 2 * c2
        elif kind == "erf":
            a, b, c = p
            d1, d2 = 1 + 2 * b * b * c1, 1 + 2 * b * b * c2
            rho = 2 * b * b * k / np.sqrt(np.outer(d1, d2))
            ntk = ntk * a * a * b * b * 4 / np.pi / np.sqrt(np.outer(d1, d2) - 4 * (b * b * k) ** 2)
            k = a * a * 2 / np.pi * np.arcsin(rho) + c * c
            c1 = a * a * 2 / np.pi * np.arcsin(2 * b * b * c1 / d1) + c * c
            c2 = a * a * 2 / np.pi * np.arcsin(2 * b * b * c2 / d2) + c * c
        elif kind == "rbf":
            (g,) = p
            k = np.exp(-g * (c1[:, None] + c2[None, :] - 2 * k))
            ntk = ntk * 2 * g * k
            c1, c2 = np.ones_like(c1), np.ones_like(c2)
        elif kind == "sin":
            a, b, c = p
            s = c1[:, None] + c2[None, :]
            em = np.exp(-b * b * (s - 2 * k) / 2)
            ep = np.exp(-b * b * (s + 2 * k) / 2) * np.cos(2 * c)
            k, ntk = a * a / 2 * (em - ep), ntk * a * a * b * b / 2 * (em + ep)
            c1 = a * a / 2 * (1 - np.exp(-2 * b * b * c1) * np.cos(2 * c))
            c2 = a * a / 2 * (1 - np.exp(-2 * b * b * c2) * np.cos(2 * c))
        else:
            raise AssertionError(kind)
    return k, ntk, c1, c2


def build(layers, width=64):
    out = []
    for layer in layers:
        kind, p = layer[0], layer[1:]
        if kind == "dense":
            out.append(stax.Dense(width, W_std=p[0], b_std=p[1]))
        elif kind == "ab":
            out.append(stax.ABRelu(*p))
        elif kind == "erf":
            out.append(stax.Erf(*p))
        elif kind == "rbf":
            out.append(stax.Rbf(*p))
        elif kind == "sin":
            out.append(stax.Sin(*p))
    return stax.serial(*out)


def mlp(act, depth=3, w=1.3, b=0.4, out_b=0.2):
    layers = [("dense", w, b)]
    for _ in range(depth - 1):
        layers += [act, ("dense", w, b)]
    return [*layers, act, ("dense", w, out_b)]


# ------------------------------------------------------------------- input & Dense


def test_input_kernel_is_nt_convention():
    x1, x2 = points(5, 4), points(3, 4, seed=1)
    k = stax.Identity()[2](x1, x2)
    np.testing.assert_allclose(k.nngp, x1 @ x2.T / 4, rtol=1e-14)
    np.testing.assert_allclose(k.cov1, jnp.sum(x1**2, 1) / 4, rtol=1e-14)
    np.testing.assert_allclose(k.cov2, jnp.sum(x2**2, 1) / 4, rtol=1e-14)
    np.testing.assert_array_equal(k.ntk, np.zeros((5, 3)))
    assert not k.is_gaussian


def test_dense_closed_form_ntk_parameterization():
    x1, x2 = points(5), points(4, seed=1)
    kfn = stax.serial(stax.Dense(7, W_std=1.5, b_std=0.5), stax.Dense(3, W_std=0.8, b_std=0.3))[2]
    k = kfn(x1, x2)
    q = x1 @ x2.T / 3
    k1 = 2.25 * q + 0.25
    nngp = 0.64 * k1 + 0.09
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-14)
    np.testing.assert_allclose(k.ntk, nngp + 0.64 * k1, rtol=1e-14)
    # b_std=None: no bias at all.
    k0 = stax.Dense(2, W_std=2.0)[2](x1, x2, get="nngp")
    np.testing.assert_allclose(k0, 4 * q, rtol=1e-14)


def test_dense_standard_parameterization_formula():
    x1, x2 = points(4, 3), points(5, 3, seed=1)
    kfn = stax.serial(
        stax.Dense(16, 1.2, 0.3, parameterization="standard"),
        stax.Relu(),
        stax.Dense(1, 0.9, None, parameterization="standard"),
    )[2]
    k = kfn(x1, x2)
    q = x1 @ x2.T / 3
    c1, c2 = (np.asarray(x1) ** 2).sum(1) / 3, (np.asarray(x2) ** 2).sum(1) / 3
    k1 = 1.44 * q + 0.09
    ntk1 = 3 * q + 1.0  # fan_in * nngp_in + W^2 * 0 + 1 (bias)
    relu, dot = ab_relu_moments(0.0, 1.0, 1.44 * c1 + 0.09, 1.44 * c2 + 0.09, k1)
    np.testing.assert_allclose(k.nngp, 0.81 * relu, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, 16 * relu + 0.81 * dot * ntk1, rtol=1e-12)


# ------------------------------------------------------------ closed forms, 1-2 layers


def test_relu_two_layer_arccos_closed_form():
    x1, x2 = points(6), points(5, seed=1)
    w1, b1, w2, b2 = 1.4, 0.3, 0.9, 0.2
    kfn = stax.serial(stax.Dense(8, w1, b1), stax.Relu(), stax.Dense(1, w2, b2))[2]
    k = kfn(x1, x2)
    x1n, x2n = np.asarray(x1), np.asarray(x2)
    q = w1**2 * x1n @ x2n.T / 3 + b1**2
    q1 = w1**2 * (x1n**2).sum(1) / 3 + b1**2
    q2 = w1**2 * (x2n**2).sum(1) / 3 + b1**2
    r = np.sqrt(np.outer(q1, q2))
    theta = np.arccos(q / r)
    relu = r / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
    nngp = w2**2 * relu + b2**2
    ntk = nngp + w2**2 * q * (np.pi - theta) / (2 * np.pi)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-13)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-13)
    np.testing.assert_allclose(k.cov1, w2**2 * q1 / 2 + b2**2, rtol=1e-13)


@pytest.mark.parametrize(
    ("layer", "a", "b"),
    [
        (lambda: stax.Relu(), 0.0, 1.0),
        (lambda: stax.LeakyRelu(0.2), 0.2, 1.0),
        (lambda: stax.Abs(), -1.0, 1.0),
        (lambda: stax.ABRelu(-0.7, 1.9), -0.7, 1.9),
        (lambda: stax.ABRelu(0.5, 0.5), 0.5, 0.5),
    ],
)
def test_abrelu_family_one_layer_closed_form(layer, a, b):
    x1, x2 = points(6), points(4, seed=2)
    k = stax.serial(stax.Dense(4, 1.0, 0.0), layer())[2](x1, x2)
    x1n, x2n = np.asarray(x1), np.asarray(x2)
    c1, c2 = (x1n**2).sum(1) / 3, (x2n**2).sum(1) / 3
    q = x1n @ x2n.T / 3
    nngp, dot = ab_relu_moments(a, b, c1, c2, q)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(k.ntk, q * dot, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(k.cov1, (a * a + b * b) / 2 * c1, rtol=1e-14)


def test_erf_one_layer_arcsine_closed_form():
    a, b, c = 1.3, 0.7, 0.4
    x1, x2 = points(5), points(4, seed=1)
    k = stax.serial(stax.Dense(1, 1.1, 0.2), stax.Erf(a, b, c))[2](x1, x2)
    x1n, x2n = np.asarray(x1), np.asarray(x2)
    q = 1.21 * x1n @ x2n.T / 3 + 0.04
    q1 = 1.21 * (x1n**2).sum(1) / 3 + 0.04
    q2 = 1.21 * (x2n**2).sum(1) / 3 + 0.04
    den = np.sqrt(np.outer(1 + 2 * b * b * q1, 1 + 2 * b * b * q2))
    nngp = a * a * 2 / np.pi * np.arcsin(2 * b * b * q / den) + c * c
    dot = a * a * b * b * 4 / np.pi / np.sqrt(den**2 - 4 * (b * b * q) ** 2)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-13)
    np.testing.assert_allclose(k.ntk, q * dot, rtol=1e-13)


def test_rbf_is_gaussian_kernel_of_the_distance():
    gamma = 0.5
    x1, x2 = points(5, 2), points(6, 2, seed=1)
    k = stax.serial(stax.Dense(1, 1.0, 0.0), stax.Rbf(gamma))[2](x1, x2)
    sq = ((np.asarray(x1)[:, None] - np.asarray(x2)[None]) ** 2).sum(-1)
    expected = np.exp(-gamma * sq / 2)
    np.testing.assert_allclose(k.nngp, expected, rtol=1e-13)
    q = np.asarray(x1) @ np.asarray(x2).T / 2
    np.testing.assert_allclose(k.ntk, q * 2 * gamma * expected, rtol=1e-12)
    np.testing.assert_allclose(k.cov1, 1.0)
    # GAN(TK)^2's 'rbf' kernel: exp(-||x - y||^2 / (2 d)).
    k_gan = KERNELS["rbf"].k()(x1, x2)
    np.testing.assert_allclose(k_gan, expected, rtol=1e-13)


@pytest.mark.parametrize("gamma", [0.1, 0.5, 2.0])
def test_rbf_equals_sin_with_matching_parameters(gamma):
    x1, x2 = points(5), points(4, seed=3)
    pre = stax.Dense(1, 0.9, 0.3)
    rbf = stax.serial(pre, stax.Rbf(gamma), stax.Dense(1, 1.2, 0.1))[2](x1, x2)
    sin = stax.serial(
        pre, stax.Sin(math.sqrt(2), math.sqrt(2 * gamma), math.pi / 4), stax.Dense(1, 1.2, 0.1)
    )[2](x1, x2)
    for f in ("nngp", "ntk", "cov1", "cov2"):
        np.testing.assert_allclose(getattr(rbf, f), getattr(sin, f), rtol=1e-12)


def test_sin_one_layer_closed_form():
    a, b, c = 1.5, 0.8, 0.3
    x1, x2 = points(4), points(5, seed=1)
    k = stax.serial(stax.Dense(1, 1.0, 0.5), stax.Sin(a, b, c))[2](x1, x2)
    x1n, x2n = np.asarray(x1), np.asarray(x2)
    q = x1n @ x2n.T / 3 + 0.25
    s = ((x1n**2).sum(1) / 3 + 0.25)[:, None] + ((x2n**2).sum(1) / 3 + 0.25)[None, :]
    # E[sin(bu+c) sin(bv+c)] = (E cos(b(u-v)) - E cos(b(u+v) + 2c)) / 2.
    nngp = a * a / 2 * (np.exp(-b * b * (s - 2 * q) / 2) - np.exp(-b * b * (s + 2 * q) / 2)
                        * np.cos(2 * c))
    dot = a * a * b * b / 2 * (np.exp(-b * b * (s - 2 * q) / 2)
                               + np.exp(-b * b * (s + 2 * q) / 2) * np.cos(2 * c))
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-13)
    np.testing.assert_allclose(k.ntk, q * dot, rtol=1e-13)


# ------------------------------------------------------------------ quadrature checks


def gauss_expectation(f, g, c1, c2, k, deg=120):
    """E[f(u) g(v)] for (u, v) ~ N(0, [[c1, k], [k, c2]]) by 2-D Gauss-Hermite quadrature."""
    z, w = hermegauss(deg)
    w = w / np.sqrt(2 * np.pi)
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    ww = np.outer(w, w)
    rho = k / np.sqrt(c1 * c2)
    u = np.sqrt(c1) * z1
    v = np.sqrt(c2) * (rho * z1 + np.sqrt(1 - rho * rho) * z2)
    return float(np.sum(ww * f(u) * g(v)))


def gelu(x):
    return x * norm.cdf(x)


def gelu_prime(x):
    return norm.cdf(x) + x * norm.pdf(x)


@pytest.mark.parametrize(
    ("c1", "c2", "k"),
    [(1.0, 1.0, 0.3), (0.5, 2.0, -0.8), (3.0, 0.2, 0.7), (1.0, 1.0, 0.999), (0.3, 0.4, 0.0)],
)
def test_gelu_kernel_matches_gauss_hermite_quadrature(c1, c2, k):
    kern = stax.Gelu()[2]
    base = stax.Kernel(
        nngp=jnp.array([[k]]), ntk=jnp.array([[1.0]]), cov1=jnp.array([c1]),
        cov2=jnp.array([c2]), is_gaussian=True, shape1=(1, 1), shape2=(1, 1),
    )
    out = kern(base)
    assert float(out.nngp[0, 0]) == pytest.approx(gauss_expectation(gelu, gelu, c1, c2, k),
                                                  abs=1e-10)
    assert float(out.ntk[0, 0]) == pytest.approx(
        gauss_expectation(gelu_prime, gelu_prime, c1, c2, k), abs=1e-10)
    for c, got in ((c1, out.cov1[0]), (c2, out.cov2[0])):
        assert float(got) == pytest.approx(gauss_expectation(gelu, gelu, c, c, c * 0.9999999),
                                           abs=1e-6)


@pytest.mark.parametrize(
    ("layer", "fn", "dfn"),
    [
        (lambda: stax.Erf(1.3, 0.6, 0.2),
         lambda x: 1.3 * sp_erf(0.6 * x) + 0.2,
         lambda x: 1.3 * 0.6 * 2 / np.sqrt(np.pi) * np.exp(-0.36 * x * x)),
        (lambda: stax.Sin(1.1, 0.9, 0.4),
         lambda x: 1.1 * np.sin(0.9 * x + 0.4),
         lambda x: 1.1 * 0.9 * np.cos(0.9 * x + 0.4)),
        (lambda: stax.Rbf(0.7),
         lambda x: np.sqrt(2) * np.sin(np.sqrt(1.4) * x + np.pi / 4),
         lambda x: np.sqrt(2) * np.sqrt(1.4) * np.cos(np.sqrt(1.4) * x + np.pi / 4)),
    ],
)
def test_smooth_activations_match_quadrature(layer, fn, dfn):
    c1, c2, k = 0.8, 1.7, -0.6
    base = stax.Kernel(
        nngp=jnp.array([[k]]), ntk=jnp.array([[1.0]]), cov1=jnp.array([c1]),
        cov2=jnp.array([c2]), is_gaussian=True, shape1=(1, 1), shape2=(1, 1),
    )
    out = layer()[2](base)
    assert float(out.nngp[0, 0]) == pytest.approx(gauss_expectation(fn, fn, c1, c2, k), abs=1e-10)
    assert float(out.ntk[0, 0]) == pytest.approx(gauss_expectation(dfn, dfn, c1, c2, k),
                                                 abs=1e-10)


# ------------------------------------------------------------------- deep networks


ACTS = {
    "relu": ("ab", 0.0, 1.0),
    "leaky": ("ab", 0.1, 1.0),
    "abs": ("ab", -1.0, 1.0),
    "abrelu": ("ab", 0.4, -1.3),
    "erf": ("erf", 1.2, 0.8, 0.1),
    "sin": ("sin", 1.1, 0.9, 0.4),
    "rbf": ("rbf", 0.3),
}


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("bias", [0.0, 0.4])
def test_deep_network_matches_independent_recursion(act, bias):
    layers = mlp(ACTS[act], depth=3, w=1.3, b=bias, out_b=bias / 2)
    x1, x2 = points(7), points(5, seed=1)
    x2 = x2.at[0].set(x1[0]).at[1].set(-2 * x1[1])  # a kink and an antipodal pair
    k = build(layers)[2](x1, x2)
    ref = ref_kernel(layers, x1, x2)
    for name, value in zip(("nngp", "ntk", "cov1", "cov2"), ref, strict=True):
        got = np.asarray(getattr(k, name))
        if got.ndim == 2:
            # At the kink (theta = 0 or pi) the angle is sqrt(rounding noise): ~1e-8 there.
            np.testing.assert_allclose(got[:, :2], value[:, :2], rtol=1e-7, atol=1e-12)
            got, value = got[:, 2:], value[:, 2:]
        np.testing.assert_allclose(got, value, rtol=2e-12, atol=1e-13, err_msg=name)


def test_gelu_deep_network_against_quadrature_recursion():
    x1, x2 = points(3), points(2, seed=1)
    k = stax.serial(stax.Dense(1, 1.0, 0.5), stax.Gelu(), stax.Dense(1, 1.2, 0.1))[2](x1, x2)
    x1n, x2n = np.asarray(x1), np.asarray(x2)
    q = x1n @ x2n.T / 3 + 0.25
    q1, q2 = (x1n**2).sum(1) / 3 + 0.25, (x2n**2).sum(1) / 3 + 0.25
    for i in range(3):
        for j in range(2):
            e = gauss_expectation(gelu, gelu, q1[i], q2[j], q[i, j])
            de = gauss_expectation(gelu_prime, gelu_prime, q1[i], q2[j], q[i, j])
            assert float(k.nngp[i, j]) == pytest.approx(1.44 * e + 0.01, abs=1e-10)
            assert float(k.ntk[i, j]) == pytest.approx(1.44 * e + 0.01 + 1.44 * q[i, j] * de,
                                                       abs=1e-10)


def test_gantk_relu_discriminator_reference_architecture():
    spec = MLPSpec("relu", depth=3, b_std=1.0)
    x1, x2 = points(6, 2), points(4, 2, seed=1)
    got = spec.k()(x1, x2)
    layers = mlp(("ab", 0.0, 1.0), depth=3, w=1.0, b=1.0, out_b=0.0)
    np.testing.assert_allclose(got, ref_kernel(layers, x1, x2)[1], rtol=1e-12)
    nobias = KERNELS["relu-nobias"].k()(x1, x2)
    layers0 = mlp(("ab", 0.0, 1.0), depth=3, w=1.0, b=0.0, out_b=0.0)
    np.testing.assert_allclose(nobias, ref_kernel(layers0, x1, x2)[1], rtol=1e-12)


def test_every_named_architecture_builds_and_is_symmetric_psd():
    x = points(12, 2, seed=4)
    for name, spec in KERNELS.items():
        k = spec.k()(x, None)
        assert k.shape == (12, 12)
        np.testing.assert_allclose(k, k.T, rtol=1e-12, atol=1e-12, err_msg=name)
        evals = np.linalg.eigvalsh(np.asarray(k))
        assert evals.min() > -1e-10 * evals.max(), name
        assert spec.stax()[0](jax.random.PRNGKey(0), (5, 2))[0] == (5, 1)


# ------------------------------------------------------------------ invariances


RELU_FAMILY = [stax.Relu, lambda: stax.LeakyRelu(0.3), stax.Abs, lambda: stax.ABRelu(-0.4, 1.7)]


@pytest.mark.parametrize("act", RELU_FAMILY)
def test_bias_free_relu_family_is_positively_homogeneous_in_each_argument(act):
    kfn = stax.serial(
        stax.Dense(8, 1.2, 0.0), act(), stax.Dense(8, 0.8, 0.0), act(), stax.Dense(1, 1.1, 0.0)
    )[2]
    x1, x2 = points(5), points(4, seed=1)
    k = kfn(x1, x2)
    for t in (0.3, 7.0):
        k1 = kfn(t * x1, x2)
        k2 = kfn(x1, t * x2)
        for f in ("nngp", "ntk"):
            np.testing.assert_allclose(getattr(k1, f), t * getattr(k, f), rtol=1e-12)
            np.testing.assert_allclose(getattr(k2, f), t * getattr(k, f), rtol=1e-12)


@pytest.mark.parametrize("act", [*RELU_FAMILY, stax.Gelu, lambda: stax.Erf(1.0, 2.0, 0.3),
                                 lambda: stax.Sin(1.0, 1.5, 0.2), lambda: stax.Rbf(0.4)])
def test_kernels_symmetric_and_psd(act):
    kfn = stax.serial(stax.Dense(8, 1.1, 0.3), act(), stax.Dense(8, 1.0, 0.2), act(),
                      stax.Dense(1, 1.0, 0.0))[2]
    x = points(25, 2, seed=5)
    k = kfn(x, None)
    for f in ("nngp", "ntk"):
        m = np.asarray(getattr(k, f))
        np.testing.assert_allclose(m, m.T, rtol=1e-12, atol=1e-13)
        ev = np.linalg.eigvalsh(m)
        assert ev.min() > -1e-9 * ev.max(), f
        np.testing.assert_allclose(np.diag(np.asarray(k.nngp)), k.cov1, rtol=1e-10)
    k12 = kfn(x[:10], x[10:], get="ntk")
    k21 = kfn(x[10:], x[:10], get="ntk")
    np.testing.assert_allclose(k12, k21.T, rtol=1e-12)


def test_float32_within_1e4_of_float64():
    x1, x2 = points(64, 2), points(48, 2, seed=1)
    for name in ("relu-nobias", "relu-highbias", "erf", "gelu"):
        kfn = KERNELS[name].kernel_fn()
        k64 = kfn(x1, x2, get=("nngp", "ntk"))
        k32 = kfn(x1.astype(jnp.float32), x2.astype(jnp.float32), get=("nngp", "ntk"))
        for a, b in zip(k32, k64, strict=True):
            assert a.dtype == jnp.float32
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * float(jnp.max(jnp.abs(b))))


# ------------------------------------------------------------------- API


def test_get_variants_and_namedtuple_order():
    kfn = KERNELS["relu"].kernel_fn()
    x1, x2 = points(4, 2), points(3, 2, seed=1)
    full = kfn(x1, x2)
    assert isinstance(full, stax.Kernel)
    np.testing.assert_array_equal(kfn(x1, x2, get="ntk"), full.ntk)
    np.testing.assert_array_equal(kfn(x1, x2, get="nngp"), full.nngp)
    both = kfn(x1, x2, get=("ntk", "nngp"))
    assert both._fields == ("ntk", "nngp")
    np.testing.assert_array_equal(both[0], full.ntk)
    np.testing.assert_array_equal(both[1], full.nngp)
    assert kfn(x1, x2, get=("nngp", "ntk"))._fields == ("nngp", "ntk")
    assert kfn(x1, x2, get=("cov1",)).cov1.shape == (4,)
    # x2=None: NT's conventions (cov2 is None) and equal values to x2 = x1.
    k11 = kfn(x1)
    assert k11.cov2 is None
    np.testing.assert_allclose(k11.ntk, kfn(x1, x1, get="ntk"), rtol=1e-14)
    assert kfn(x1, None, get="cov2") is None


def test_plain_kernels_and_nngp_path_skips_ntk():
    spec = KERNELS["relu"]
    kfn = spec.kernel_fn()
    x1, x2 = points(5, 2), points(6, 2, seed=1)
    np.testing.assert_array_equal(stax.ntk(kfn)(x1, x2), kfn(x1, x2, get="ntk"))
    np.testing.assert_array_equal(stax.nngp(kfn)(x1, x2), kfn(x1, x2, get="nngp"))
    np.testing.assert_array_equal(stax.ntk(spec.stax())(x1), kfn(x1, None, get="ntk"))

    def flops(get):
        f = jax.jit(lambda a, b: kfn(a, b, get=get))
        return f.lower(x1, x2).compile().cost_analysis()["flops"]

    # The NTK recursion costs a few multiply-adds per entry and layer; none of them remain.
    assert flops("ntk") - flops("nngp") >= 4 * x1.shape[0] * x2.shape[0]


def test_kernel_fn_jit_static_get_vmap_and_kernel_pytree():
    kfn = KERNELS["relu"].kernel_fn()
    x1, x2 = points(4, 2), points(3, 2, seed=1)
    jitted = jax.jit(kfn, static_argnames="get")
    np.testing.assert_allclose(jitted(x1, x2, get="ntk"), kfn(x1, x2, get="ntk"), rtol=1e-14)
    k = jitted(x1, x2)
    assert isinstance(k, stax.Kernel) and k.cov2.shape == (3,)
    leaves = jax.tree_util.tree_leaves(k)
    assert len(leaves) == 4
    batch = jnp.stack([x1, 2 * x1])
    out = jax.vmap(lambda a: kfn(a, x2, get="ntk"))(batch)
    np.testing.assert_allclose(out[1], kfn(2 * x1, x2, get="ntk"), rtol=1e-13)
    # A Kernel can be fed to a kernel_fn directly (NT style).
    k_in = stax.Dense(1, 1.0, 1.0)[2](x1, x2)
    rest = stax.serial(stax.Relu(), stax.Dense(1, 1.0, 1.0), stax.Relu(),
                       stax.Dense(1, 1.0, 1.0), stax.Relu(), stax.Dense(1, 1.0, 0.0))[2]
    np.testing.assert_allclose(rest(k_in, get="ntk"), kfn(x1, x2, get="ntk"), rtol=1e-13)


def test_residual_block_parallel_fanout_faninsum():
    block = stax.serial(
        stax.Dense(16, 1.0, 0.5),
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Relu(), stax.Dense(16, 1.3, 0.2)), stax.Identity()),
        stax.FanInSum(),
        stax.Relu(),
        stax.Dense(1, 1.0, 0.0),
    )
    x1, x2 = points(4), points(5, seed=1)
    k = block[2](x1, x2)
    first = stax.Dense(16, 1.0, 0.5)[2](x1, x2)
    branch = stax.serial(stax.Dense(16, 1.0, 0.5), stax.Relu(), stax.Dense(16, 1.3, 0.2))[2](
        x1, x2
    )
    summed = stax.Kernel(
        nngp=first.nngp + branch.nngp, ntk=first.ntk + branch.ntk,
        cov1=first.cov1 + branch.cov1, cov2=first.cov2 + branch.cov2,
        is_gaussian=True, shape1=(4, 16), shape2=(5, 16),
    )
    expected = stax.serial(stax.Relu(), stax.Dense(1, 1.0, 0.0))[2](summed)
    for f in ("nngp", "ntk", "cov1", "cov2"):
        np.testing.assert_allclose(getattr(k, f), getattr(expected, f), rtol=1e-13)
    # The finite network runs and has the right output shape.
    shape, params = block[0](jax.random.PRNGKey(0), (4, 3))
    assert shape == (4, 1)
    assert block[1](params, x1).shape == (4, 1)
    # A FanOut at the end returns one result per branch.
    two = stax.serial(stax.Dense(1, 1.0, 0.0), stax.FanOut(2))[2](x1, x2, get="nngp")
    assert isinstance(two, list) and len(two) == 2


def test_flatten_and_layernorm():
    x1, x2 = points(4), points(3, seed=1)
    base = stax.serial(stax.Dense(8, 1.0, 0.5), stax.Relu(), stax.Dense(8, 1.0, 0.5))
    k = base[2](x1, x2)
    kf = stax.serial(base, stax.Flatten())[2](x1, x2)
    np.testing.assert_array_equal(kf.ntk, k.ntk)
    kl = stax.serial(base, stax.LayerNorm())[2](x1, x2)
    norm_ = np.sqrt(np.outer(k.cov1 + 1e-12, k.cov2 + 1e-12))
    np.testing.assert_allclose(kl.nngp, k.nngp / norm_, rtol=1e-13)
    np.testing.assert_allclose(kl.ntk, k.ntk / norm_, rtol=1e-13)
    np.testing.assert_allclose(kl.cov1, 1.0, rtol=1e-10)
    init, apply = stax.Flatten()[:2]
    assert init(None, (2, 3, 4))[0] == (2, 12)
    assert apply((), jnp.ones((2, 3, 4))).shape == (2, 12)


# ------------------------------------------------------------------ blocked


@pytest.mark.parametrize("block_size", [1, 3, 7, 64])
def test_blocked_equals_direct(block_size):
    k = KERNELS["relu"].k()
    x1, x2 = points(11, 2), points(9, 2, seed=1)
    kb = stax.blocked(k, block_size)
    np.testing.assert_allclose(kb(x1, x2), k(x1, x2), rtol=1e-13)
    np.testing.assert_allclose(kb(x1), k(x1, x1), rtol=1e-13)
    if block_size == 3:
        g = jax.grad(lambda a: jnp.sum(jnp.sin(kb(a, x2))))(x1)
        g_ref = jax.grad(lambda a: jnp.sum(jnp.sin(k(a, x2))))(x1)
        np.testing.assert_allclose(g, g_ref, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(jax.jit(kb)(x1, x2), k(x1, x2), rtol=1e-13)


def test_blocked_bounds_tile_size():
    seen = []

    def k(a, b):
        seen.append((a.shape[0], b.shape[0]))
        return a @ b.T

    kb = stax.blocked(k, 4)
    x1, x2 = points(10, 2), points(6, 2, seed=1)
    np.testing.assert_allclose(kb(x1, x2), x1 @ x2.T, rtol=1e-14)
    assert seen and all(r <= 4 and c <= 4 for r, c in seen)


# ------------------------------------------------------------------- bad input


def test_bad_inputs_raise_value_errors_naming_the_argument():
    kfn = KERNELS["relu"].kernel_fn()
    x = points(4, 2)
    with pytest.raises(ValueError, match="x1.*rank >= 2"):
        kfn(jnp.ones(3))
    with pytest.raises(ValueError, match=r"x2.*non-batch shape of `x1`, \(2,\)"):
        kfn(x, jnp.ones((3, 5)))
    with pytest.raises(ValueError, match=r"x2.*non-batch shape"):
        kfn(jnp.ones((2, 3, 4)), jnp.ones((2, 4, 3)))
    with pytest.raises(ValueError, match="x1.*finite"):
        kfn(x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="x2.*finite"):
        kfn(x, x.at[1, 1].set(jnp.inf))
    with pytest.raises(ValueError, match="get"):
        kfn(x, get="foo")
    with pytest.raises(ValueError, match="get"):
        kfn(x, get=("ntk", "bar"))
    with pytest.raises(ValueError, match="get"):
        kfn(x, get=("ntk", "ntk"))
    k = stax.ntk(kfn)
    with pytest.raises(ValueError, match="x2.*feature dimension"):
        k(x, jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="x1.*finite"):
        k(x.at[0, 0].set(jnp.nan), x)
    # Closed-over non-finite constants are caught inside jit too.
    bad = x.at[0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="x2.*finite"):
        jax.jit(lambda a: k(a, bad))(x)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: stax.Dense(4, W_std=-1.0), "W_std"),
        (lambda: stax.Dense(4, b_std=-0.1), "b_std"),
        (lambda: stax.Dense(0), "out_dim"),
        (lambda: stax.Dense(4, parameterization="mup"), "parameterization"),
        (lambda: stax.Rbf(-1.0), "gamma"),
        (lambda: stax.Erf(float("nan")), "a"),
        (lambda: stax.LeakyRelu(float("inf")), "alpha"),
        (lambda: stax.FanOut(0), "num"),
        (lambda: stax.blocked(lambda a, b: a, 0), "block_size"),
        (lambda: stax.serial(stax.Relu(), "not a layer"), "serial"),
        (lambda: stax.ntk(lambda a, b: a), "kernel_fn"),
    ],
)
def test_bad_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_activation_needs_gaussian_input():
    with pytest.raises(ValueError, match="Gaussian"):
        stax.Relu()[2](points(3))
    with pytest.raises(NotImplementedError, match="Gaussian"):
        stax.serial(stax.Dense(2), stax.Relu(), stax.FanOut(2), stax.FanInSum())[2](points(3))
