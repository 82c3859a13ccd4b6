"""NT's linear layers and input forms: ``Dense(s=, batch_axis=, channel_axis=)``, ``Dropout``,
``Flatten``, ``Index``/``Slice``, inputs of rank > 2 and tuple inputs (issue #15).

Every analytic kernel is checked against closed forms written from NT 0.6.5's formulas
(``neural_tangents/_src/stax/linear.py``: ``Dense.kernel_fn``, ``Dropout.kernel_fn_train``,
``Flatten.kernel_fn``) and against gantk's own Monte-Carlo estimates
(:func:`gantk.monte_carlo_kernel_fn`) in both parameterizations.

Monte-Carlo tolerance: with hidden width ``N``, ``R`` read-out units (the kernels are traced
over them) and ``S`` samples, the relative standard error of the estimated NNGP/NTK entries
is ``O(1 / sqrt(N S) + 1 / sqrt(R S))`` (NT's own tests use ``N = 1024``, ``S = 800``,
``rtol = 0.05``). The NNGP estimate of an entry ``K12`` averages ``R S`` products of
variance ``K11 K22 + K12^2``; here ``N = 512``, ``R = 64``, ``S = 64`` (``R S = 4096``) keeps
the relative error of the smallest cross-entries used below (``K12 / sqrt(K11 K22) ~ 0.4``)
near ``sqrt(1 + 1 / 0.16) / 64 ~ 4 %``, so the NT metric (relative Frobenius error) is held
to 0.1.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gantk
from gantk import stax

X1 = jax.random.normal(jax.random.PRNGKey(0), (4, 3), dtype=jnp.float64)
X2 = jax.random.normal(jax.random.PRNGKey(1), (3, 3), dtype=jnp.float64)
IMG1 = jax.random.normal(jax.random.PRNGKey(2), (3, 2, 2, 3), dtype=jnp.float64)
IMG2 = jax.random.normal(jax.random.PRNGKey(3), (2, 2, 2, 3), dtype=jnp.float64)
WIDTH, OUT, SAMPLES, TOL = 512, 64, 64, 0.1


def _rel(a, b):
    """NT's assert_close_matrices metric: relative Frobenius error."""
    return float(jnp.linalg.norm(jnp.asarray(a) - b) / jnp.linalg.norm(b))


def _check_mc(net, x1, x2, samples=SAMPLES, seed=5):
    """NNGP and NTK of ``net`` from Monte-Carlo agree with its kernel_fn (NT's metric)."""
    mc = gantk.monte_carlo_kernel_fn(net[0], net[1], jax.random.PRNGKey(seed), samples)
    est = mc(x1, x2, ("nngp", "ntk"))
    for get in ("nngp", "ntk"):
        err = _rel(getattr(est, get), net[2](x1, x2, get))
        assert err < TOL, (get, err)


def _gram(a, b):
    return a @ b.T / a.shape[-1]


# --------------------------------------------------------------------------- Dense(s=)


def test_dense_standard_s_closed_form():
    # NT Dense.kernel_fn (standard): ntk' = (d / s0) nngp + W² ntk (+1 with a bias), nngp'
    # = W² nngp + b²; the input kernel is nngp = x xᵀ/d, ntk = 0.
    w, b = 1.3, 0.4
    for s0 in (1, 2):
        layer = stax.Dense(5, w, b, parameterization="standard", s=(s0, 3))
        k = layer[2](X1, X2, ("nngp", "ntk", "shape1"))
        nngp_in = _gram(X1, X2)
        np.testing.assert_allclose(k.nngp, w**2 * nngp_in + b**2, rtol=1e-12)
        np.testing.assert_allclose(k.ntk, (3 / s0) * nngp_in + 1.0, rtol=1e-12)
        assert k.shape1 == (4, 15)  # s1 * out_dim units
        shape, (W, bias) = layer[0](jax.random.PRNGKey(0), X1.shape)
        assert shape == (4, 15) and W.shape == (3, 15) and bias.shape == (1, 15)
    # s=(1, 2) then (2, 1) doubles the hidden width and divides it back: same kernels as s=1.
    net_s = stax.serial(
        stax.Dense(512, 1.2, 0.1, parameterization="standard", s=(1, 2)), stax.Erf(),
        stax.Dense(1, 0.9, 0.2, parameterization="standard", s=(2, 1)),
    )
    net_1 = stax.serial(
        stax.Dense(512, 1.2, 0.1, parameterization="standard"), stax.Erf(),
        stax.Dense(1, 0.9, 0.2, parameterization="standard"),
    )
    for get in ("nngp", "ntk"):
        np.testing.assert_allclose(net_s[2](X1, X2, get), net_1[2](X1, X2, get), rtol=1e-12)


@pytest.mark.slow
def test_dense_standard_s_agrees_with_monte_carlo():
    net = stax.serial(
        stax.Dense(WIDTH // 2, 1.2, 0.1, parameterization="standard", s=(1, 2)), stax.Relu(),
        stax.Dense(OUT, 0.9, 0.2, parameterization="standard", s=(2, 1)),
    )
    _check_mc(net, X1, X2)


def test_dense_axes_finite_and_kernel_errors():
    x = jax.random.normal(jax.random.PRNGKey(4), (3, 5, 2))  # channels on axis 1
    init_fn, apply_fn, kernel_fn = stax.Dense(7, 1.5, 0.1, channel_axis=1)
    shape, params = init_fn(jax.random.PRNGKey(0), x.shape)
    y = apply_fn(params, x)
    assert shape == y.shape == (3, 7, 2)
    W, b = params
    ref = 1.5 / np.sqrt(5) * np.einsum("ncs,co->nos", x, W) + 0.1 * b
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    # The kernel reads x in the layer's layout: that of x with its channels moved last.
    k = kernel_fn(x, None, ("nngp", "shape1", "channel_axis"))
    np.testing.assert_allclose(k.nngp, stax.Dense(7, 1.5, 0.1)[2](jnp.moveaxis(x, 1, -1)).nngp)
    assert k.shape1 == (3, 7, 2) and k.channel_axis == 1
    with pytest.raises(ValueError, match="`s`"):
        stax.Dense(3, s=(1, 0))
    with pytest.raises(ValueError, match="parameterization"):
        stax.Dense(3, parameterization="mup")
    assert stax.Dense(3, parameterization="Standard")[2](X1, None, "ntk").shape == (4, 4)


# --------------------------------------------------------------------------- Dropout


def test_dropout_closed_form():
    # NT Dropout.kernel_fn_train: cov *= 1/rate; nngp, ntk diagonals *= 1/rate iff x1 is x2.
    rate = 0.6
    base = stax.serial(stax.Dense(8, 1.1, 0.3), stax.Relu(), stax.Dense(8, 0.9, 0.2))
    drop = stax.serial(base, stax.Dropout(rate), stax.Dense(8, 1.2, 0.1))
    after = stax.serial(stax.Identity(), stax.Dense(8, 1.2, 0.1))
    fields = ("nngp", "ntk", "cov1")
    k0 = base[2](X1, None, fields)
    eye = np.eye(4, dtype=bool)
    scaled = jax.tree.map(lambda a: a, k0)._replace(
        nngp=np.where(eye, k0.nngp / rate, k0.nngp), ntk=np.where(eye, k0.ntk / rate, k0.ntk),
        cov1=k0.cov1 / rate,
    )
    # Dense after dropout: nngp' = W² nngp + b², ntk' = nngp' + W² ntk.
    want_nngp = 1.2**2 * scaled.nngp + 0.1**2
    got = drop[2](X1, None, fields)
    np.testing.assert_allclose(got.nngp, want_nngp, rtol=1e-12)
    np.testing.assert_allclose(got.ntk, want_nngp + 1.2**2 * scaled.ntk, rtol=1e-12)
    np.testing.assert_allclose(got.cov1, 1.2**2 * scaled.cov1 + 0.1**2, rtol=1e-12)
    # Distinct x2: cross-covariances untouched, variances scaled. Equal values count as x1.
    k12 = drop[2](X1, X2, ("nngp", "cov2", "x1_is_x2"))
    ref12 = after[2](base[2](X1, X2), None, ("nngp", "cov2"))
    np.testing.assert_allclose(k12.nngp, ref12.nngp, rtol=1e-12)
    np.testing.assert_allclose(k12.cov2, (ref12.cov2 - 0.1**2) / rate + 0.1**2, rtol=1e-12)
    np.testing.assert_allclose(drop[2](X1, X1 + 0.0, "nngp"), got.nngp, rtol=1e-12)
    # Test mode is the identity.
    test_mode = stax.serial(base, stax.Dropout(rate, "test"), stax.Dense(8, 1.2, 0.1))
    np.testing.assert_allclose(test_mode[2](X1, None, "ntk"), after[2](base[2](X1), None, "ntk"))


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_dropout_agrees_with_monte_carlo(parameterization):
    p = parameterization
    net = stax.serial(
        stax.Dense(WIDTH, 1.1, 0.3, parameterization=p), stax.Relu(), stax.Dropout(0.7),
        stax.Dense(OUT, 1.0, 0.1, parameterization=p),
    )
    _check_mc(net, X1, None)


def test_dropout_arguments_and_rng():
    init_fn, apply_fn, _ = stax.Dropout(0.5)
    with pytest.raises(ValueError, match="rng"):
        apply_fn((), X1)
    y = apply_fn((), jnp.ones((200, 50)), rng=jax.random.PRNGKey(0))
    assert set(np.unique(np.asarray(y))) <= {0.0, 2.0}
    assert abs(float(jnp.mean(y == 0)) - 0.5) < 0.02  # 10⁴ Bernoulli(1/2): sd 0.005
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="rate"):
            stax.Dropout(bad)
    with pytest.raises(ValueError, match="mode"):
        stax.Dropout(0.5, "eval")


# ------------------------------------------------------------------ inputs of rank > 2


def _spatial_net(p="ntk", out=1):
    return stax.serial(
        stax.Dense(WIDTH, 1.2, 0.2, parameterization=p), stax.Relu(),
        stax.Dense(out, 0.9, 0.1, parameterization=p),
    )


def test_rank4_inputs_are_covariances_over_channels():
    # NT: kernels of (n, H, W, C) inputs are over the channel axis at every pair of
    # positions: nngp[i, j, h, h', w, w'] = K(x1[i, h, w], x2[j, h', w']) for the rank-2
    # kernel K of the same network on the C-dimensional points.
    kfn = _spatial_net()[2]
    p1, p2 = IMG1.reshape(-1, 3), IMG2.reshape(-1, 3)
    for get in ("nngp", "ntk"):
        flat = np.asarray(kfn(p1, p2, get)).reshape(3, 2, 2, 2, 2, 2)
        full = kfn(IMG1, IMG2, get)
        assert full.shape == (3, 2, 2, 2, 2, 2)
        np.testing.assert_allclose(full, flat.transpose(0, 3, 1, 4, 2, 5), rtol=1e-12)
        diag = kfn(IMG1, IMG2, get, diagonal_spatial=True)
        np.testing.assert_allclose(diag, np.einsum("aijbij->abij", flat), rtol=1e-12)
    k = kfn(IMG1, None, ("cov1", "nngp"), diagonal_spatial=False)
    assert k.cov1.shape == (3, 2, 2, 2, 2)
    np.testing.assert_allclose(k.cov1, np.stack([k.nngp[i, i] for i in range(3)]), rtol=1e-12)
    dk = kfn(IMG1, IMG2, ("cov1", "cov2"), diagonal_spatial=True, diagonal_batch=True)
    np.testing.assert_allclose(dk.cov1, np.asarray(kfn(p1, None, "cov1")).reshape(3, 2, 2))
    assert dk.cov2.shape == (2, 2, 2)
    full_cov = kfn(IMG1, None, "cov1", diagonal_batch=False, diagonal_spatial=True)
    np.testing.assert_allclose(full_cov, kfn(IMG1, None, "nngp", diagonal_spatial=True))
    # The finite network acts on the channels of every position.
    init_fn, apply_fn, _ = _spatial_net(out=4)
    shape, params = init_fn(jax.random.PRNGKey(0), IMG1.shape)
    assert shape == (3, 2, 2, 4)
    np.testing.assert_allclose(
        apply_fn(params, IMG1).reshape(-1, 4), apply_fn(params, p1).reshape(-1, 4), rtol=1e-10
    )


def test_flatten_averages_the_spatial_diagonal():
    # NT Flatten.kernel_fn: the mean over equal positions (trace / size per spatial axis).
    net = _spatial_net(out=8)
    head = stax.serial(net, stax.Flatten(), stax.Dense(1, 1.3, 0.2))
    diag = {g: net[2](IMG1, IMG2, g, diagonal_spatial=True) for g in ("nngp", "ntk")}
    nngp = 1.3**2 * diag["nngp"].mean(axis=(2, 3)) + 0.2**2
    ntk = nngp + 1.3**2 * diag["ntk"].mean(axis=(2, 3))
    got = head[2](IMG1, IMG2, ("nngp", "ntk", "shape1"))
    np.testing.assert_allclose(got.nngp, nngp, rtol=1e-12)
    np.testing.assert_allclose(got.ntk, ntk, rtol=1e-12)
    assert got.shape1 == (3, 1)
    # Finite shapes, batch_axis_out, and the identity on rank-2 inputs.
    init_fn, apply_fn, kfn = stax.Flatten(batch_axis_out=1)
    assert init_fn(None, (3, 2, 2, 5))[0] == (20, 3)
    assert apply_fn((), IMG1).shape == (12, 3)
    np.testing.assert_allclose(apply_fn((), IMG1)[:, 1], IMG1[1].ravel())
    k = kfn(IMG1, None, ("nngp", "shape1", "batch_axis", "channel_axis"))
    assert (k.shape1, k.batch_axis, k.channel_axis) == ((12, 3), 1, 0)
    np.testing.assert_allclose(k.nngp, stax.Flatten()[2](IMG1, None, "nngp"))
    np.testing.assert_allclose(stax.Flatten()[2](X1, X2, "nngp"), _gram(X1, X2))
    with pytest.raises(ValueError, match="batch_axis_out"):
        stax.Flatten(batch_axis_out=2)


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_rank4_flatten_agrees_with_monte_carlo(parameterization):
    p = parameterization
    net = stax.serial(
        stax.Dense(WIDTH, 1.2, 0.2, parameterization=p), stax.Erf(), stax.Flatten(),
        stax.Dense(OUT, 0.9, 0.1, parameterization=p),
    )
    _check_mc(net, IMG1, IMG2)


# ------------------------------------------------------------------------ Index / Slice


def test_index_slices_the_kernel():
    assert stax.Slice[::2, 1:, ...] == (slice(None, None, 2), slice(1, None), Ellipsis)
    net = _spatial_net()
    full = net[2](IMG1, IMG2, "ntk")
    idx = stax.Slice[1:, :, 1, :]
    sliced = stax.serial(net, stax.Index(idx))
    got = sliced[2](IMG1, IMG2, "ntk")
    # Spatial axis 2 indexed with an integer is removed: (n1, n2, h, h') remain.
    np.testing.assert_allclose(got, full[1:, 1:, :, :, 1, 1], rtol=1e-12)
    shape, _ = sliced[0](jax.random.PRNGKey(0), IMG1.shape)
    assert shape == (2, 2, 1)
    assert sliced[1](sliced[0](jax.random.PRNGKey(0), IMG1.shape)[1], IMG1).shape == shape
    rows = stax.serial(stax.Dense(8, 1.0, 0.1), stax.Index(stax.Slice[::-1]))[2]
    np.testing.assert_allclose(
        rows(X1, X2, "nngp"), stax.Dense(8, 1.0, 0.1)[2](X1, X2, "nngp")[::-1, ::-1]
    )
    for bad, what in ((stax.Slice[0], "slice"), (stax.Slice[:, :2], "channel axis")):
        with pytest.raises(NotImplementedError, match=what):
            stax.Index(bad)[2](X1)


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_index_agrees_with_monte_carlo(parameterization):
    p = parameterization
    net = stax.serial(
        stax.Dense(WIDTH, 1.2, 0.2, parameterization=p), stax.Relu(),
        stax.Index(stax.Slice[:, :, 1:]),
        stax.Flatten(), stax.Dense(OUT, 0.9, 0.1, parameterization=p),
    )
    _check_mc(net, IMG1, IMG2)


# ------------------------------------------------------------------------- tuple inputs


def _two_input_net(p="ntk", out=OUT):
    return stax.serial(
        stax.parallel(
            stax.Dense(WIDTH, 1.0, 0.2, parameterization=p),
            stax.Dense(WIDTH, 1.5, None, parameterization=p),
        ),
        stax.FanInSum(), stax.Relu(), stax.Dense(out, 1.0, 0.1, parameterization=p),
    )


def test_tuple_inputs_closed_form():
    # parallel(Dense_a, Dense_b) + FanInSum: the input kernels of the two branches add up.
    xa1, xb1, xa2, xb2 = X1, X1[:, :2] * 2, X2, X2[:, :2] * 2
    net = _two_input_net()
    pre = _gram(xa1, xa2) + 0.2**2 + 1.5**2 * _gram(xb1, xb2)
    via_input = stax.serial(stax.Relu(), stax.Dense(1, 1.0, 0.1))[2]
    gaussian = stax.Dense(5, 1.0, 0.0)[2](X1, X2)  # a Gaussian kernel to fill with `pre`
    cov1 = jnp.diag(_gram(xa1, xa1) + 0.2**2 + 1.5**2 * _gram(xb1, xb1))
    cov2 = jnp.diag(_gram(xa2, xa2) + 0.2**2 + 1.5**2 * _gram(xb2, xb2))
    ref = via_input(gaussian.replace(nngp=pre, ntk=pre, cov1=cov1, cov2=cov2), None, "ntk")
    np.testing.assert_allclose(net[2]((xa1, xb1), (xa2, xb2), "ntk"), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="x2"):
        net[2]((xa1, xb1), xa2)
    full = net[2]((xa1, xb1), None, "cov1", diagonal_batch=False)
    np.testing.assert_allclose(full, net[2]((xa1, xb1), None, "nngp"))


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_tuple_inputs_agree_with_monte_carlo(parameterization):
    net = _two_input_net(parameterization)
    x1, x2 = (X1, X1[:, :2]), (X2, X2[:, :2])
    _check_mc(net, x1, x2)
