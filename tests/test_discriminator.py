"""Tests of gantk.discriminator: solvers against brute force and closed forms, velocity,
JAX transformations and input validation (float64 unless stated otherwise)."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import losses
from gantk.discriminator import ConvergenceError, Discriminator, discriminator

# ----------------------------------------------------------------------------------------
# Kernels written out in the tests (independent of gantk.stax).
# ----------------------------------------------------------------------------------------


@jax.jit
def rbf(x, y, scale=1.0):
    d2 = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, -1)
    return jnp.exp(-d2 / (2 * scale**2))


@jax.jit
def linear(x, y):
    return x @ y.T + 1.0


@jax.custom_jvp
def _arccos_j1(c):
    # J(c) = (sqrt(1 - c^2) + (pi - arccos c) c) / (2 pi), c = cos(theta).
    c = jnp.clip(c, -1.0, 1.0)
    return (jnp.sqrt(1 - c**2) + (jnp.pi - jnp.arccos(c)) * c) / (2 * jnp.pi)


@_arccos_j1.defjvp
def _arccos_j1_jvp(primals, tangents):
    (c,), (dc,) = primals, tangents
    cc = jnp.clip(c, -1.0, 1.0)
    # J'(c) = (pi - arccos c) / (2 pi): finite at c = +-1.
    return _arccos_j1(c), (jnp.pi - jnp.arccos(cc)) / (2 * jnp.pi) * dc


@jax.jit
def arccos(x, y):
    """Bias-free arc-cosine kernel |x||y| (sin t + (pi - t) cos t) / (2 pi)."""
    nx = jnp.linalg.norm(x, axis=1)
    ny = jnp.linalg.norm(y, axis=1)
    c = (x @ y.T) / (nx[:, None] * ny[None, :])
    return nx[:, None] * ny[None, :] * _arccos_j1(c)


def relu_kernel():
    arch = pytest.importorskip("gantk.architectures")
    try:
        return arch.kernel_from_name("relu")
    except (ImportError, AttributeError) as err:  # stax not available yet
        pytest.skip(f"gantk.stax unavailable: {err}")


# ----------------------------------------------------------------------------------------
# Data and references.
# ----------------------------------------------------------------------------------------


def data(n=11, m=17, d=2, q=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) * 0.7 + np.array([1.0] + [0.0] * (d - 1))
    p = rng.normal(size=(q, d)) * 1.2
    return jnp.asarray(x), jnp.asarray(y), jnp.asarray(p)


def f0_fn(p):
    return 0.3 * jnp.sin(p[:, 0]) + 0.1 * p[:, -1]


def euler_alpha(loss, k, x, y, tau, steps, f0=None):
    """Plain explicit Euler on d alpha/dt = -grad_f L(f0(T) + K alpha)."""
    loss = losses.get(loss)
    n = x.shape[0]
    t = jnp.concatenate([x, y])
    kmat = k(t, t)
    f0t = jnp.zeros(t.shape[0]) if f0 is None else f0(t)
    grad = jax.grad(lambda f: loss.discriminator_loss(f[:n], f[n:]))
    dt = tau / steps

    @jax.jit
    def run(alpha):
        return jax.lax.fori_loop(0, steps, lambda i, a: a - dt * grad(f0t + kmat @ a), alpha)

    return run(jnp.zeros(t.shape[0]))


def predict(alpha, k, x, y, p, f0=None):
    out = k(p, jnp.concatenate([x, y])) @ alpha
    return out if f0 is None else out + f0(p)


def rel(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


# ----------------------------------------------------------------------------------------
# Solvers against brute-force Euler integration of the train-set ODE.
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "tau", "tol"),
    [("ipm", 2.0, 1e-10), ("lsgan", 2.0, 2e-5), ("vanilla", 3.0, 2e-5)],
)
@pytest.mark.parametrize("use_f0", [False, True])
def test_matches_euler_brute_force(loss, tau, tol, use_f0):
    x, y, p = data()
    f0 = f0_fn if use_f0 else None
    alpha = euler_alpha(loss, rbf, x, y, tau, 100_000, f0=f0)
    D = discriminator(loss, rbf, x, y, tau, f0=f0)
    t = jnp.concatenate([x, y])
    assert rel(D(t), predict(alpha, rbf, x, y, t, f0)) < tol
    assert rel(D(p), predict(alpha, rbf, x, y, p, f0)) < tol
    assert rel(D.alpha, alpha) < 10 * tol


def test_hinge_matches_euler_with_sliding():
    # tau = 20 drives train values past the margins |f| = 1 and into sliding modes, where
    # every ODE solver is only first order: the default (rtol 1e-6) is accurate to ~1e-4.
    x, y, p = data(n=20, m=25, seed=3)
    tau = 20.0
    alpha = euler_alpha("hinge", rbf, x, y, tau, 400_000)
    D = discriminator("hinge", rbf, x, y, tau)
    t = jnp.concatenate([x, y])
    f_ref = predict(alpha, rbf, x, y, t)
    assert float(jnp.min(f_ref[:20])) < -1.0 and float(jnp.max(f_ref[20:])) > 1.0
    assert rel(D(t), f_ref) < 2e-3
    assert rel(D(p), predict(alpha, rbf, x, y, p)) < 2e-3
    # Before any margin is reached, hinge = IPM exactly.
    D_small = discriminator("hinge", rbf, x, y, 0.1)
    D_ipm = discriminator("ipm", rbf, x, y, 0.1)
    np.testing.assert_allclose(D_small(p), D_ipm(p), rtol=1e-8, atol=1e-12)


def test_ode_default_accuracy_against_fine_reference():
    x, y, p = data(n=13, m=19, seed=1)
    for loss in ("vanilla", "vanilla_saturating"):
        D = discriminator(loss, arccos, x, y, 5.0)
        ref = discriminator(loss, arccos, x, y, 5.0, rtol=1e-12, ode_solver=diffrax.Dopri8())
        assert rel(D(p), ref(p)) < 1e-6
        assert rel(D.alpha, ref.alpha) < 1e-6
        assert D.solver == "ode" and bool(D.stats.converged)


def test_ode_solver_agrees_with_closed_forms():
    x, y, p = data()
    for loss, tau in (("ipm", 3.0), ("lsgan", 3.0)):
        exact = discriminator(loss, linear, x, y, tau)
        ode = discriminator(loss, linear, x, y, tau, solver="ode")
        assert rel(ode(p), exact(p)) < 1e-7


def test_non_adaptive_ode_solver_uses_dt0():
    x, y, p = data()
    D = discriminator("vanilla", rbf, x, y, 1.0, ode_solver=diffrax.Euler(), dt0=1e-3)
    ref = discriminator("vanilla", rbf, x, y, 1.0)
    assert int(D.stats.iterations) == 1000
    # Explicit Euler: first order, error ~ dt.
    assert 1e-6 < rel(D(p), ref(p)) < 1e-3
    alpha = euler_alpha("vanilla", rbf, x, y, 1.0, 1000)
    np.testing.assert_allclose(D.alpha, alpha, rtol=1e-10)
    with pytest.raises(ValueError, match="dt0"):
        discriminator("vanilla", rbf, x, y, 1.0, ode_solver=diffrax.Euler())
    with pytest.raises(ValueError, match="ode_solver"):
        discriminator("vanilla", rbf, x, y, 1.0, ode_solver="tsit5")


# ----------------------------------------------------------------------------------------
# Closed forms.
# ----------------------------------------------------------------------------------------


def test_ipm_closed_form_and_mmd_identities():
    x, y, p = data(n=9, m=14)
    tau = 1.7
    n = x.shape[0]
    D = discriminator("ipm", arccos, x, y, tau)
    assert D.solver == "closed_form"
    np.testing.assert_allclose(D.alpha, tau * jnp.r_[jnp.full(9, -1 / 9), jnp.full(14, 1 / 14)])
    witness = tau * (arccos(p, y).mean(1) - arccos(p, x).mean(1))
    np.testing.assert_allclose(D(p), witness, rtol=1e-12)

    # V-statistic MMD^2 = mean k(X,X) + mean k(Y,Y) - 2 mean k(X,Y).
    def mmd2(a, b):
        return arccos(a, a).mean() + arccos(b, b).mean() - 2 * arccos(a, b).mean()

    # Discriminator loss at tau: L(f_tau) = mean_x f - mean_y f = -tau * MMD^2.
    L = D.loss.discriminator_loss(D(x), D(y))
    np.testing.assert_allclose(L, -tau * mmd2(x, y), rtol=1e-12)
    # Mean generator loss: mean_x c(f_tau(x)) = tau (mean k(X,X) - mean k(X,Y)).
    np.testing.assert_allclose(
        D.generator_loss(x).mean(), tau * (arccos(x, x).mean() - arccos(x, y).mean()), rtol=1e-12
    )
    # MMD gradient flow: v(x_i) = -(n tau / 2) grad_{x_i} MMD^2(X, Y).
    g = jax.jit(jax.grad(mmd2))(x, y)
    np.testing.assert_allclose(D.velocity(x), -(n * tau / 2) * g, rtol=1e-9, atol=1e-12)


def test_lsgan_equals_neural_tangents_mse_at_four_tau():
    # n = m: gradient_descent_mse(K, y) at t = 4 tau, eta = 1: f = (I - exp(-K t / N)) y.
    x, y, p = data(n=15, m=15, seed=2)
    tau = 0.7
    t = jnp.concatenate([x, y])
    big_n = 30
    labels = jnp.r_[-jnp.ones(15), jnp.ones(15)]
    kmat = rbf(t, t)
    lam, u = jnp.linalg.eigh(kmat)
    lam = jnp.maximum(lam, 0.0)
    f_train = u @ (-jnp.expm1(-lam * 4 * tau / big_n) * (u.T @ labels))
    # NT's test-point prediction: k(p, T) K^{-1} (I - exp(-K t / N)) y in K's eigenbasis.
    f_test = rbf(p, t) @ (u @ (-jnp.expm1(-lam * 4 * tau / big_n) / lam * (u.T @ labels)))
    D = discriminator("lsgan", rbf, x, y, tau)
    assert D.solver == "eigh"
    np.testing.assert_allclose(D(t), f_train, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(D(p), f_test, rtol=1e-7, atol=1e-9)


def test_vanilla_equals_neural_tangents_gradient_descent_at_twice_tau():
    # GAN(TK)2's inf_vanilla_ode: NT gradient_descent on loss -mean_N log sigmoid(y f) (one
    # mean over all N = n + m points), i.e. df/dt = -K grad, for time t. With n = m this
    # is L / 2, so NT's time t is our tau = t / 2.
    x, y, p = data(n=12, m=12, seed=8)
    t_nt = 3.0
    t = jnp.concatenate([x, y])
    labels = jnp.r_[-jnp.ones(12), jnp.ones(12)]
    kmat = rbf(t, t)
    grad = jax.grad(lambda f: -jnp.mean(jax.nn.log_sigmoid(labels * f)))
    steps = 100_000
    dt = t_nt / steps

    @jax.jit
    def run(f):  # Euler on f(T) and on the test-point coefficients together
        def body(i, carry):
            f, a = carry
            g = grad(f)
            return f - dt * kmat @ g, a - dt * g

        return jax.lax.fori_loop(0, steps, body, (f, jnp.zeros(24)))

    f_train, coef = run(jnp.zeros(24))
    D = discriminator("vanilla", rbf, x, y, t_nt / 2)
    assert rel(D(t), f_train) < 2e-5
    assert rel(D(p), rbf(p, t) @ coef) < 2e-5


def test_lsgan_infinite_time_interpolates():
    # Well-separated points and a narrow RBF: K is well conditioned.
    x, y, p = data(n=8, m=12, seed=4)
    k = lambda a, b: rbf(a, b, scale=0.3)
    t = jnp.concatenate([x, y])
    assert jnp.linalg.cond(k(t, t)) < 1e3
    D = discriminator("lsgan", k, x, y, float("inf"))
    labels = jnp.r_[-jnp.ones(8), jnp.ones(12)]
    np.testing.assert_allclose(D(t), labels, atol=1e-10)
    # ... and it is the tau -> inf limit of the finite-time solution.
    D_long = discriminator("lsgan", k, x, y, 1e4)
    np.testing.assert_allclose(D_long(p), D(p), atol=1e-9)
    # With f0, the limit still interpolates the labels on the train set.
    D0 = discriminator("lsgan", k, x, y, float("inf"), f0=f0_fn)
    np.testing.assert_allclose(D0(t), labels, atol=1e-10)


def test_lsgan_diag_reg_neural_tangents_convention():
    x, y, p = data(n=10, m=10, seed=5)
    t = jnp.concatenate([x, y])
    kmat = arccos(t, t)
    reg = 0.1 * jnp.trace(kmat) / 20
    labels = jnp.r_[-jnp.ones(10), jnp.ones(10)]
    alpha = jnp.linalg.solve(kmat + reg * jnp.eye(20), labels)
    D = discriminator("lsgan", arccos, x, y, float("inf"), diag_reg=0.1)
    np.testing.assert_allclose(D.alpha, alpha, rtol=1e-8)
    # Finite time: NT's formula with the regularised K at t = 4 tau.
    lam, u = jnp.linalg.eigh(kmat + reg * jnp.eye(20))
    alpha_t = u @ (-jnp.expm1(-lam * 4 * 0.5 / 20) / lam * (u.T @ labels))
    D = discriminator("lsgan", arccos, x, y, 0.5, diag_reg=0.1)
    np.testing.assert_allclose(D.alpha, alpha_t, rtol=1e-8)


def test_unequal_sizes_weighting():
    # n != m: the loss means weight each fake point 1/n and each real point 1/m.
    x, y, p = data(n=5, m=20, seed=6)
    tau = 1.3
    D = discriminator("lsgan", rbf, x, y, tau)
    # Direct ODE on f(T): df/dt = -K grad L, grad L = (2/n (f + 1), 2/m (f - 1)).
    t = jnp.concatenate([x, y])
    w = jnp.r_[jnp.full(5, 1 / 5), jnp.full(20, 1 / 20)]
    labels = jnp.r_[-jnp.ones(5), jnp.ones(20)]
    m = 2 * rbf(t, t) * w[None, :]  # f' = -M (f - y)
    f_t = labels - jax.scipy.linalg.expm(-m * tau) @ labels
    np.testing.assert_allclose(D(t), f_t, rtol=1e-9, atol=1e-11)
    # Duplicating every real point leaves the discriminator unchanged (means, not sums).
    D2 = discriminator("lsgan", rbf, x, jnp.concatenate([y, y]), tau)
    np.testing.assert_allclose(D2(p), D(p), rtol=1e-8, atol=1e-10)
    Dv = discriminator("vanilla", rbf, x, y, tau)
    Dv2 = discriminator("vanilla", rbf, x, jnp.concatenate([y, y]), tau)
    np.testing.assert_allclose(Dv2(p), Dv(p), rtol=1e-7, atol=1e-9)


def test_eigh_is_nan_free_with_singular_kernel():
    # Duplicated points and a rank-3 linear kernel: many zero (or slightly negative)
    # eigenvalues; phi(0) = 2 tau must be used, never 0/0.
    x, y, p = data(n=6, m=6, d=2)
    x = jnp.concatenate([x, x])
    D = discriminator("lsgan", linear, x, y, 0.9)
    assert bool(jnp.all(jnp.isfinite(D.alpha)))
    ref = discriminator("lsgan", linear, x, y, 0.9, solver="ode", rtol=1e-11)
    assert rel(D(p), ref(p)) < 1e-8
    Dinf = discriminator("lsgan", linear, x, y, float("inf"))
    assert bool(jnp.all(jnp.isfinite(Dinf(p))))


# ----------------------------------------------------------------------------------------
# Velocity.
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["ipm", "lsgan", "vanilla", "vanilla_saturating", "hinge"])
@pytest.mark.parametrize("kernel", [rbf, arccos], ids=["rbf", "arccos"])
def test_velocity_is_minus_finite_difference_gradient(loss, kernel):
    x, y, p = data(n=6, m=8, q=4)
    D = discriminator(loss, kernel, x, y, 0.8, f0=f0_fn)
    h = 1e-6
    for pts in (p, x):  # new points and the particles themselves (train held fixed)
        v = D.velocity(pts)
        fd = np.zeros(pts.shape)
        for j in range(pts.shape[1]):
            e = jnp.zeros(pts.shape[1]).at[j].set(h)
            fd[:, j] = (D.generator_loss(pts + e) - D.generator_loss(pts - e)) / (2 * h)
        np.testing.assert_allclose(v, -fd, rtol=1e-6, atol=1e-8)
        c, v2 = D.value_and_velocity(pts)
        np.testing.assert_allclose(c, D.generator_loss(pts), rtol=1e-12)
        np.testing.assert_allclose(v2, v, rtol=1e-12)


def test_velocity_equals_autodiff_with_train_held_fixed():
    x, y, _ = data()
    n = x.shape[0]
    for loss in ("lsgan", "vanilla"):
        D = discriminator(loss, arccos, x, y, 1.0)
        # Gradient of the mean generator loss, D rebuilt from the particles: stop-gradient
        # through the train set makes it -velocity / n.
        g = jax.grad(lambda z, loss=loss: discriminator(loss, arccos, z, y, 1.0)
                     .generator_loss(z).mean())(x)  # fmt: skip
        np.testing.assert_allclose(g, -D.velocity(x) / n, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
def test_differentiate_train_full_gradient():
    x, y, p = data(n=5, m=6, q=3)
    tau = 0.6

    # IPM: full gradient of mean c = tau (mean k(X,X) - mean k(X,Y)).
    def full(z):
        return discriminator("ipm", rbf, z, y, tau, differentiate_train=True).generator_loss(
            z
        ).mean()

    expected = jax.grad(lambda z: tau * (rbf(z, z).mean() - rbf(z, y).mean()))(x)
    np.testing.assert_allclose(jax.grad(full)(x), expected, rtol=1e-10)

    # LSGAN through eigh (divided-difference JVP) and the ODE vs central differences.
    for solver in ("eigh", "ode"):
        def obj(z, solver=solver):
            D = discriminator("lsgan", arccos, z, y, tau, solver=solver,
                              differentiate_train=True, rtol=1e-11)  # fmt: skip
            return jnp.sum(D(p) * jnp.arange(1.0, 4.0))

        g = jax.grad(obj)(x)
        h = 1e-5
        for i, j in [(0, 0), (2, 1), (4, 0)]:
            e = jnp.zeros_like(x).at[i, j].set(h)
            fd = (obj(x + e) - obj(x - e)) / (2 * h)
            np.testing.assert_allclose(g[i, j], fd, rtol=1e-5, atol=1e-8)
    # Gradient in tau (eigh) against the analytic d/dtau.
    dtau = jax.grad(
        lambda s: discriminator("lsgan", rbf, x, y, s, differentiate_train=True)
        .generator_loss(p)
        .sum()
    )
    fd = (
        discriminator("lsgan", rbf, x, y, tau + 1e-6).generator_loss(p).sum()
        - discriminator("lsgan", rbf, x, y, tau - 1e-6).generator_loss(p).sum()
    ) / 2e-6
    np.testing.assert_allclose(dtau(tau), fd, rtol=1e-6)


def test_eigh_gradient_finite_with_repeated_points():
    x, y, p = data(n=4, m=4, q=2)
    x = jnp.concatenate([x, x[:2]])  # repeated eigenvalue 0 of K

    def obj(z):
        D = discriminator("lsgan", rbf, z, y, 1.0, differentiate_train=True)
        return D(p).sum()

    g = jax.grad(obj)(x)
    assert bool(jnp.all(jnp.isfinite(g)))


# ----------------------------------------------------------------------------------------
# JAX transformations and pytree structure.
# ----------------------------------------------------------------------------------------


def test_jit_velocity_and_returning_discriminator():
    x, y, p = data()
    fn = jax.jit(lambda X, Y: discriminator("ipm", rbf, X, Y, 1.0).velocity(X))
    np.testing.assert_allclose(fn(x, y), discriminator("ipm", rbf, x, y, 1.0).velocity(x))
    for loss in ("lsgan", "vanilla"):
        build = jax.jit(lambda X, Y, tau, loss=loss: discriminator(loss, rbf, X, Y, tau))
        D = build(x, y, 1.5)
        assert isinstance(D, Discriminator)
        ref = discriminator(loss, rbf, x, y, 1.5)
        np.testing.assert_allclose(D(p), ref(p), rtol=1e-8)
        # D as an argument of a jitted function.
        np.testing.assert_allclose(jax.jit(lambda D, q: D.velocity(q))(D, p), ref.velocity(p))


def test_pytree_round_trip():
    x, y, p = data()
    D = discriminator("lsgan", rbf, x, y, 1.0, f0=f0_fn)
    leaves, treedef = jax.tree_util.tree_flatten(D)
    # fake, real, their weights, time, alpha and the 4 solver stats
    assert len(leaves) == 10
    D2 = jax.tree_util.tree_unflatten(treedef, leaves)
    np.testing.assert_allclose(D2(p), D(p))
    assert D2.solver == "eigh" and D2.loss == D.loss and D2.f0 is f0_fn
    Dm = jax.tree_util.tree_map(lambda a: a, D)
    np.testing.assert_allclose(Dm.velocity(p), D.velocity(p))


def test_vmap_over_particle_sets():
    x, y, p = data()
    xs = jnp.stack([x, x + 0.3, x - 0.2])
    for loss in ("lsgan", "vanilla", "ipm"):
        out = jax.vmap(lambda X, loss=loss: discriminator(loss, rbf, X, y, 1.0).velocity(p))(xs)
        for i in range(3):
            ref = discriminator(loss, rbf, xs[i], y, 1.0).velocity(p)
            np.testing.assert_allclose(out[i], ref, rtol=1e-7, atol=1e-12)


def test_float32_smoke():
    x, y, p = data()
    x32, y32, p32 = x.astype(jnp.float32), y.astype(jnp.float32), p.astype(jnp.float32)
    for loss in ("ipm", "lsgan", "vanilla", "hinge"):
        D = discriminator(loss, arccos, x32, y32, 1.0)
        ref = discriminator(loss, arccos, x, y, 1.0)
        assert D(p32).dtype == jnp.float32 and D.velocity(p32).dtype == jnp.float32
        assert D.alpha.dtype == jnp.float32
        assert rel(D(p32), ref(p)) < 1e-4
        assert rel(D.velocity(p32), ref.velocity(p)) < 1e-4


# ----------------------------------------------------------------------------------------
# Solver selection, convergence failures and bad input.
# ----------------------------------------------------------------------------------------


def test_solver_choice_is_visible():
    x, y, _ = data()
    assert discriminator("ipm", rbf, x, y, 1.0).solver == "closed_form"
    assert discriminator("lsgan", rbf, x, y, 1.0).solver == "eigh"
    assert discriminator("vanilla", rbf, x, y, 1.0).solver == "ode"
    assert discriminator("hinge", rbf, x, y, 1.0).solver == "ode"
    custom = (jnp.exp, lambda f: jnp.exp(-f), jnp.negative)
    assert discriminator(custom, rbf, x, y, 1.0).solver == "ode"


def test_auto_switches_to_krylov_above_threshold(monkeypatch):
    import gantk.solvers as dmod

    x, y, p = data()
    monkeypatch.setattr(dmod, "EIGH_MAX", x.shape[0] + y.shape[0] - 1)
    D = discriminator("lsgan", rbf, x, y, 1.0)
    assert D.solver == "krylov"
    ref = discriminator("lsgan", rbf, x, y, 1.0, solver="eigh")
    assert rel(D(p), ref(p)) < 1e-7


def test_custom_loss_ode():
    # Custom loss a = exp(f), b = exp(-f) (an exponential GAN loss) vs Euler.
    x, y, p = data()
    custom = (jnp.exp, lambda f: jnp.exp(-f), jnp.negative)
    D = discriminator(custom, rbf, x, y, 1.0)
    alpha = euler_alpha(custom, rbf, x, y, 1.0, 100_000)
    assert rel(D(p), predict(alpha, rbf, x, y, p)) < 2e-5


def test_ode_nonconvergence_raises():
    x, y, _ = data()
    with pytest.raises(ConvergenceError, match="max_steps=3"):
        discriminator("vanilla", rbf, x, y, 50.0, max_steps=3)
    D = discriminator("vanilla", rbf, x, y, 50.0, max_steps=3, throw=False)
    assert not bool(D.stats.converged)
    with pytest.raises(Exception, match="did not reach"):
        jax.jit(lambda X: discriminator("vanilla", rbf, X, y, 50.0, max_steps=3).alpha)(x)


def test_krylov_nonconvergence_raises():
    x, y, _ = data(n=30, m=30)
    with pytest.raises(ConvergenceError, match="Lanczos.*residual="):
        discriminator("lsgan", rbf, x, y, 100.0, solver="krylov", max_steps=3)
    with pytest.raises(ConvergenceError, match="CG"):
        discriminator("lsgan", rbf, x, y, math.inf, solver="krylov", max_steps=2)
    D = discriminator("lsgan", rbf, x, y, 100.0, solver="krylov", max_steps=3, throw=False)
    assert not bool(D.stats.converged) and float(D.stats.residual) > 1e-8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fake": np.zeros(5)}, "`fake` must have rank 2"),
        ({"real": np.zeros((2, 3, 4))}, "`real` must have rank 2"),
        ({"real": np.zeros((4, 3))}, "`real` must have feature dimension d=2"),
        ({"real": np.full((4, 2), np.nan)}, "`real` must be finite"),
        ({"fake": np.array([[0.0, np.inf]])}, "`fake` must be finite"),
        ({"time": 0.0}, "`time` must be positive"),
        ({"time": -1.0}, "`time` must be positive"),
        ({"time": float("nan")}, "`time` must be positive"),
        ({"time": float("inf")}, "`time` = inf is only allowed"),
        ({"time": np.ones(2)}, "`time` must be a positive real scalar"),
        ({"loss": "wgan"}, "`loss` must be one of"),
        ({"solver": "lu"}, "`solver` must be one of"),
        ({"solver": "eigh"}, "`solver`='eigh' needs a loss of kind quadratic"),
        ({"loss": "lsgan", "solver": "closed_form"}, "kind ipm"),
        ({"loss": "lsgan", "solver": "ode", "time": float("inf")}, "`time` = inf needs"),
        ({"block_size": 0}, "`block_size` must be an integer >= 1"),
        ({"block_size": 2.5}, "`block_size`"),
        ({"diag_reg": 0.1}, "`diag_reg` is only used"),
        ({"loss": "lsgan", "diag_reg": -1.0}, "`diag_reg` must be non-negative"),
        ({"kernel": 3}, "`kernel` must be a callable"),
        ({"f0": "zero"}, "`f0` must be None or a callable"),
        ({"rtol": -1e-3}, "`rtol` must be non-negative"),
        ({"max_steps": 0}, "`max_steps` must be a positive integer"),
        ({"loss": "lsgan", "solver": "krylov", "differentiate_train": True}, "krylov"),
    ],
)
def test_bad_input_raises(kwargs, match):
    x, y, _ = data()
    args = {"loss": "vanilla", "kernel": rbf, "fake": x, "real": y, "time": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        discriminator(
            args.pop("loss"), args.pop("kernel"), args.pop("fake"), args.pop("real"),
            args.pop("time"), **args,
        )  # fmt: skip


def test_bad_points_raise():
    x, y, _ = data()
    D = discriminator("ipm", rbf, x, y, 1.0)
    with pytest.raises(ValueError, match="`points` must have feature dimension d=2"):
        D(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="`points` must have rank 2"):
        D.velocity(np.zeros(3))
    with pytest.raises(ValueError, match="`points` must be finite"):
        D.generator_loss(np.array([[np.nan, 0.0]]))


# ----------------------------------------------------------------------------------------
# With gantk.stax's kernels (skipped while it is unavailable).
# ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_relu_ntk_kernel_end_to_end():
    k = relu_kernel()
    x, y, p = data(n=12, m=10, seed=7)
    tau = 1.0
    for loss, tol in (("ipm", 1e-10), ("lsgan", 2e-5), ("vanilla", 2e-5)):
        alpha = euler_alpha(loss, k, x, y, tau, 50_000)
        D = discriminator(loss, k, x, y, tau)
        assert rel(D(p), predict(alpha, k, x, y, p)) < tol
    # Velocity: finite differences at new points. At the particles (x == train points) the
    # ReLU NTK has a cone term g(x) |x - x'|: central differences are off by O(h) (measured
    # 3.4e-5, 3.4e-6, 6.6e-7 at h = 1e-3, 1e-4, 1e-5) and arccos near 1 loses digits below.
    D = discriminator("lsgan", k, x, y, tau)
    for pts, h, atol in ((p, 1e-6, 1e-8), (x, 1e-5, 2e-6)):
        v = D.velocity(pts)
        assert bool(jnp.all(jnp.isfinite(v)))
        for j in range(2):
            e = jnp.zeros(2).at[j].set(h)
            fd = (D.generator_loss(pts + e) - D.generator_loss(pts - e)) / (2 * h)
            np.testing.assert_allclose(v[:, j], -fd, rtol=1e-5, atol=atol)
