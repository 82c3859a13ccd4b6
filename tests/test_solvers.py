"""The problem -> solver -> solution API: a solver written outside gantk, KernelGD, weights,
typed stats and option validation (float64, tiny sizes)."""

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gantk
from gantk import losses, solvers
from gantk.problem import Problem
from gantk.solution import Discriminator, SolverStats


def rbf(x, y):
    return jnp.exp(-0.5 * jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, -1))


def data(n=9, m=11, q=6, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(k1, (n, 2), jnp.float64)
    y = jax.random.normal(k2, (m, 2), jnp.float64) + jnp.array([1.0, 0.5])
    return x, y, 2 * jax.random.normal(k3, (q, 2), jnp.float64)


def rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


class ExplicitEuler(solvers.AbstractSolver):
    """A user's solver, defined outside gantk: explicit Euler on d alpha/dt = -grad_f L."""

    name: ClassVar[str] = "explicit_euler"
    steps: int = 100

    def solve(self, problem):
        gram, f0 = problem.gram(), problem.f0_train()
        h = problem.time / self.steps

        def step(alpha, _):
            return alpha - h * problem.loss_gradient(f0 + gram @ alpha), None

        alpha, _ = jax.lax.scan(step, jnp.zeros_like(f0), None, length=self.steps)
        return alpha, SolverStats.make(problem.dtype, iterations=self.steps)


def test_user_solver_is_first_order_against_ode():
    x, y, p = data()
    tau = 2.0
    ref = gantk.discriminator("vanilla", rbf, x, y, tau, solver=solvers.ODE(rtol=1e-12))
    errors = []
    for steps in (40, 80, 160):
        D = gantk.discriminator("vanilla", rbf, x, y, tau, solver=ExplicitEuler(steps=steps))
        assert isinstance(D, Discriminator) and D.solver == "explicit_euler"
        assert int(D.stats.iterations) == steps and bool(D.stats.converged)
        errors.append(rel(D(p), ref(p)))
    # Explicit Euler is first order: halving the step halves the error.
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert 1.8 < coarse / fine < 2.2, errors
    # The same iteration as KernelGD with lr = tau / steps.
    gd = gantk.discriminator("vanilla", rbf, x, y, tau, solver="kernel_gd", lr=tau / 160)
    np.testing.assert_allclose(gd.alpha, D.alpha, rtol=1e-12)


def test_kernel_gd_against_a_plain_loop():
    x, y, p = data(seed=1)
    lr, tau = 0.05, 1.0
    D = solvers.KernelGD(lr=lr)(Problem("lsgan", rbf, x, y, tau))
    assert int(D.stats.iterations) == 20
    # alpha <- alpha - lr * grad_f L(K alpha), L = mean (f_x + 1)^2 + mean (f_y - 1)^2.
    t = np.concatenate([np.asarray(x), np.asarray(y)])
    k = np.asarray(rbf(t, t))
    n, m = x.shape[0], y.shape[0]
    alpha = np.zeros(n + m)
    for _ in range(20):
        f = k @ alpha
        alpha = alpha - lr * np.concatenate([2 * (f[:n] + 1) / n, 2 * (f[n:] - 1) / m])
    np.testing.assert_allclose(D.alpha, alpha, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(D(p), np.asarray(rbf(p, t)) @ alpha, rtol=1e-12, atol=1e-15)


def test_weights_equal_duplicated_points():
    x, y, p = data(seed=2)
    x_dup = jnp.concatenate([x, x[:1]])  # x_0 twice, uniform weights
    w = jnp.ones(x.shape[0]).at[0].set(2.0)  # x_0 once with weight 2
    for loss in ("ipm", "lsgan", "vanilla"):
        a = gantk.discriminator(loss, rbf, x_dup, y, 1.0)
        b = gantk.discriminator(loss, rbf, x, y, 1.0, fake_weights=w)
        assert rel(b(p), a(p)) < 1e-7, loss
    with pytest.raises(ValueError, match="`fake_weights` must have shape"):
        Problem("ipm", rbf, x, y, 1.0, fake_weights=jnp.ones(3))
    with pytest.raises(ValueError, match="`real_weights` must be finite, non-negative"):
        Problem("ipm", rbf, x, y, 1.0, real_weights=-jnp.ones(y.shape[0]))


def test_every_solver_returns_the_same_solution_type():
    x, y, p = data(seed=3)
    problem = Problem("lsgan", rbf, x, y, 0.7)
    ref = solvers.Eigh()(problem)
    for solver in (solvers.Krylov(), solvers.ODE(), solvers.KernelGD(lr=1e-3)):
        D = solver(problem)
        assert type(D) is Discriminator and type(D.stats) is SolverStats
        assert bool(D.stats.converged) and D.solver == solver.name
        assert rel(D(p), ref(p)) < (2e-3 if solver.name == "kernel_gd" else 1e-6)
    stats = solvers.Krylov()(problem).stats
    assert int(stats.iterations) > 0 and 0 <= float(stats.residual) < 1e-6
    # auto decides in one place
    assert solvers.auto(problem).name == "eigh"
    assert solvers.auto(Problem("ipm", rbf, x, y, 1.0)).name == "closed_form"
    assert solvers.auto(Problem("hinge", rbf, x, y, 1.0)).name == "ode"


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: solvers.Eigh(diag_reg=-1.0), "`diag_reg` must be non-negative"),
        (lambda: solvers.ODE(solver="tsit5"), "ode_solver"),
        (lambda: solvers.ODE(max_steps=0), "`max_steps` must be a positive integer"),
        (lambda: solvers.KernelGD(lr=0.0), "`lr` must be positive"),
        (lambda: solvers.KernelGD(steps=-2), "`steps` must be a non-negative integer"),
        (lambda: solvers.get("eigh", rtol=1e-3), "`rtol` is only used by solvers"),
        (lambda: solvers.get("lu"), "`solver` must be one of"),
    ],
)
def test_solver_options_are_validated(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_solver_instance_takes_no_extra_options_and_checks_the_loss():
    x, y, _ = data()
    with pytest.raises(ValueError, match="go into the solver instance"):
        gantk.discriminator("ipm", rbf, x, y, 1.0, solver=solvers.ODE(), rtol=1e-3)
    with pytest.raises(ValueError, match="kind quadratic"):
        solvers.Eigh()(Problem("vanilla", rbf, x, y, 1.0))


def test_linear_kind_is_a_deprecated_name_of_quadratic():
    with pytest.warns(DeprecationWarning, match="quadratic"):
        loss = losses.Loss(
            lambda f: (f + 1) ** 2, lambda f: (f - 1) ** 2, jnp.square, kind="linear",
            targets=(-1.0, 1.0),
        )  # fmt: skip
    assert loss.kind == "quadratic"


def test_gantk_discriminator_stays_callable_after_importing_its_module():
    import gantk.discriminator as module  # binds the module to gantk.discriminator
    import gantk.flows

    x, y, p = data()
    a = gantk.discriminator("ipm", rbf, x, y, 1.0)
    np.testing.assert_array_equal(a(p), module.discriminator("ipm", rbf, x, y, 1.0)(p))
