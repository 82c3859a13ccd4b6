"""gantk.predict against closed forms (kernel regression, matrix exponentials, GP posteriors)."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from gantk import predict, stax

RNG = np.random.default_rng(0)
X_TRAIN, X_TEST = RNG.normal(size=(8, 3)), RNG.normal(size=(5, 3))
Y = RNG.normal(size=(8, 2))
F0, G0 = RNG.normal(size=(8, 2)), RNG.normal(size=(5, 2))
_, _, KERNEL_FN = stax.serial(stax.Dense(64, 1.5, 0.1), stax.Relu(), stax.Dense(2, 1.0, 0.0))
K = KERNEL_FN(X_TRAIN, None, ("nngp", "ntk"))
KT = KERNEL_FN(X_TEST, X_TRAIN, ("nngp", "ntk"))
NNGP_TT = np.asarray(KERNEL_FN(X_TEST, None, "nngp"))
LR = 0.7


def _expm(t):
    """exp(-η Θ t / |y|): NT's MSE normalisation 0.5 * mean((f - y)**2)."""
    return scipy.linalg.expm(-LR * t * np.asarray(K.ntk) / Y.size)


def test_mse_infinite_time_is_kernel_regression():
    fn = predict.gradient_descent_mse(K.ntk, Y, learning_rate=LR)
    train, test = fn(None, F0, G0, KT.ntk)
    np.testing.assert_allclose(train, Y, atol=1e-12)
    np.testing.assert_allclose(test, G0 + KT.ntk @ np.linalg.solve(K.ntk, Y - F0), rtol=1e-9)
    # t = 1e9 through the eigendecomposition: the same limit.
    np.testing.assert_allclose(fn(1e9, F0, G0, KT.ntk)[1], test, rtol=1e-9, atol=1e-12)
    # Only test predictions: fx_train_0=None means f_train(0) = 0.
    np.testing.assert_allclose(
        fn(None, None, G0, KT.ntk), G0 + KT.ntk @ np.linalg.solve(K.ntk, Y), rtol=1e-9
    )


def test_mse_finite_times_match_matrix_exponential():
    fn = predict.gradient_descent_mse(K.ntk, Y, learning_rate=LR)
    ts = np.array([0.0, 0.5, 3.0, 40.0])
    train, test = fn(ts, F0, G0, KT.ntk)
    assert train.shape == (4, 8, 2) and test.shape == (4, 5, 2)
    kinv = np.linalg.inv(K.ntk)
    for i, t in enumerate(ts):
        e = _expm(t)
        np.testing.assert_allclose(train[i], Y + e @ (F0 - Y), rtol=1e-9, atol=1e-10)
        ref = G0 + KT.ntk @ kinv @ (np.eye(8) - e) @ (Y - F0)
        np.testing.assert_allclose(test[i], ref, rtol=1e-8, atol=1e-10)


def test_ode_gradient_descent_on_mse_equals_closed_form():
    ts = np.array([0.0, 0.5, 3.0, 40.0])
    closed = predict.gradient_descent_mse(K.ntk, Y, learning_rate=LR)(ts, F0, G0, KT.ntk)
    loss = lambda f, y: 0.5 * jnp.mean((f - y) ** 2)
    ode = predict.gradient_descent(loss, K.ntk, Y, learning_rate=LR)(ts, F0, G0, KT.ntk)
    for a, b in zip(ode, closed, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # Momentum m: (f - y)'' = (m - 1)/sqrt(η) (f - y)' - Θ/|y| (f - y) in time sqrt(η) t,
    # a linear ODE solved by the exponential of its 2n x 2n companion matrix.
    m, t = 0.5, 3.0
    mom = predict.gradient_descent(loss, K.ntk, Y, learning_rate=LR, momentum=m)
    state = mom(t, predict.ODEState(F0, G0), None, KT.ntk)
    assert isinstance(state, predict.ODEState)
    a = np.block(
        [
            [np.zeros((8, 8)), np.eye(8)],
            [-np.asarray(K.ntk) / Y.size, (m - 1) / LR**0.5 * np.eye(8)],
        ]
    )
    z = scipy.linalg.expm(a * LR**0.5 * t) @ np.concatenate([F0 - Y, np.zeros_like(Y)])
    np.testing.assert_allclose(state.fx_train, Y + z[:8], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(state.qx_train, z[8:], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="finite"):
        predict.gradient_descent(loss, K.ntk, Y)(None, F0)


def test_max_learning_rate_is_the_stability_edge():
    lr = predict.max_learning_rate(K.ntk)
    lam = np.linalg.eigvalsh(K.ntk)[-1]
    np.testing.assert_allclose(lr, 2 * 8 / lam, rtol=1e-9)
    # Discrete GD f <- f - η/n Θ (f - y) contracts just below and diverges just above.
    for factor, grows in ((0.99, False), (1.01, True)):
        step = np.eye(8) - factor * lr / 8 * np.asarray(K.ntk)
        assert (np.abs(np.linalg.eigvalsh(step)).max() > 1) == grows
    np.testing.assert_allclose(predict.max_learning_rate(K.ntk, momentum=0.9), 1.9 * lr, rtol=1e-12)


def test_ensemble_matches_gp_closed_forms():
    ens = predict.gradient_descent_mse_ensemble(KERNEL_FN, X_TRAIN, Y, learning_rate=LR)
    out = ens(None, X_TEST, None, compute_cov=True)
    nngp, ntk = np.asarray(K.nngp), np.asarray(K.ntk)
    kx, tx = np.asarray(KT.nngp), np.asarray(KT.ntk)
    # NNGP at t = inf: the Bayesian posterior (Rasmussen & Williams 2006, Eq. 2.19).
    np.testing.assert_allclose(out.nngp.mean, kx @ np.linalg.solve(nngp, Y), rtol=1e-8)
    post = NNGP_TT - kx @ np.linalg.solve(nngp, kx.T)
    np.testing.assert_allclose(out.nngp.covariance, post, rtol=1e-6, atol=1e-9)
    # NTK at t = inf (Lee et al. 2019, Eq. 16).
    a = tx @ np.linalg.inv(ntk)
    cov = NNGP_TT + a @ nngp @ a.T - a @ kx.T - kx @ a.T
    np.testing.assert_allclose(out.ntk.mean, a @ Y, rtol=1e-8)
    np.testing.assert_allclose(out.ntk.covariance, cov, rtol=1e-6, atol=1e-9)
    # Train set, finite t: f(t) = y + e(t) (f0 - y) with f0 ~ N(0, K).
    t = 2.5
    e = _expm(t)
    train = ens(t, None, "ntk", compute_cov=True)
    np.testing.assert_allclose(train.mean, (np.eye(8) - e) @ Y, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(train.covariance, e @ nngp @ e.T, rtol=1e-7, atol=1e-10)
    # Test set, finite t (NTK): f_*(t) = f_*(0) - a (I - e) (f0 - y): linear in (f_*(0), f0).
    m = tx @ np.linalg.inv(ntk) @ (np.eye(8) - e)
    test = ens(np.array([t]), X_TEST, "ntk", compute_cov=True)
    np.testing.assert_allclose(test.mean[0], m @ Y, rtol=1e-8)
    ref = NNGP_TT + m @ nngp @ m.T - m @ kx.T - kx @ m.T
    np.testing.assert_allclose(test.covariance[0], ref, rtol=1e-6, atol=1e-9)


def test_predict_rejects_bad_inputs():
    fn = predict.gradient_descent_mse(K.ntk, Y)
    with pytest.raises(ValueError, match="Both"):
        fn(1.0, None, None)
    with pytest.raises(ValueError, match="k_test_train"):
        fn(1.0, F0, G0)
    with pytest.raises(ValueError, match="y_train"):
        predict.gradient_descent_mse(K.ntk, Y[:3])
    with pytest.raises(ValueError, match="trace_axes"):
        predict.gradient_descent_mse(K.ntk, Y, trace_axes=())
    with pytest.raises(ValueError, match="get"):
        predict.gradient_descent_mse_ensemble(KERNEL_FN, X_TRAIN, Y)(None, X_TEST, "cov1")
