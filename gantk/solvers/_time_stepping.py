"""Time-stepping solvers for any loss: :class:`ODE` (diffrax) and :class:`KernelGD`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from gantk import _linalg
from gantk._validate import check_int, check_nonneg, check_positive, is_concrete
from gantk.problem import Problem
from gantk.solution import SolverStats
from gantk.solvers._base import AbstractSolver, _dtype_tol, _materialize

__all__ = ["ODE", "KernelGD"]


class _VectorField(eqx.Module):
    """``d gamma / ds = -(a'(f_fake), b'(f_real))`` with ``f = f0 + tau K (w * gamma)``.

    A module (not a closure) so that diffrax's compilation cache is reused across calls.
    ``args = (problem, operand)``: the dense Gram matrix (``dense``) or the train set
    (tiled matrix-vector products with the problem's kernel).
    """

    dense: bool = eqx.field(static=True)

    def __call__(self, s: Any, gamma: jax.Array, args: Any) -> jax.Array:
        problem, f0_train, operand = args
        v = problem.weights * gamma
        if self.dense:
            kv = jnp.dot(operand, v, precision=_linalg.HIGHEST)
        else:
            kv = _linalg.kernel_apply(problem.kernel, operand, operand, v, problem.block_size)
        return -problem.pointwise_loss_gradient(f0_train + problem.time * kv)


class ODE(AbstractSolver):
    r"""Any loss: integrate ``d alpha/dt = -\nabla_f L(f_0(T) + K alpha)`` with diffrax.

    In the rescaled time ``s = t / tau`` with ``alpha = tau W gamma``, the state ``gamma``
    is ``O(1)`` whatever ``tau``, so one absolute tolerance fits all.

    Attributes:
        solver: a diffrax solver (default ``diffrax.Tsit5()`` with a PID controller); a
            non-adaptive one (e.g. ``diffrax.Euler()``) runs with the constant step ``dt0``.
        rtol: relative tolerance (default ``1e-8`` in float64, ``1e-6`` for non-smooth
            losses such as hinge, ``1e-5`` in float32).
        atol: absolute tolerance on ``gamma`` (default ``rtol``).
        max_steps: step budget (default 16384, ``2**18`` for non-smooth losses).
        dt0: initial (adaptive) or constant (non-adaptive, required) step in units of ``t``.
        materialize: store the dense Gram matrix; None: iff ``N <= MATERIALIZE_MAX``.

    Raises:
        ValueError: if ``solver`` is not a diffrax solver or an option is out of range.
    """

    name: ClassVar[str] = "ode"
    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: float | None = None
    atol: float | None = None
    max_steps: int | None = None
    dt0: float | None = None
    materialize: bool | None = None

    def __check_init__(self) -> None:
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise ValueError(
                f"`ode_solver` (ODE.solver) must be a diffrax solver instance; "
                f"got {self.solver!r}."
            )
        for name in ("rtol", "atol"):
            if getattr(self, name) is not None:
                check_nonneg(getattr(self, name), name)
        if self.max_steps is not None:
            check_int(self.max_steps, "max_steps", 1)
        if self.dt0 is not None:
            check_positive(self.dt0, "dt0")
        if self.dt0 is None and not isinstance(self.solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(
                f"`dt0` is required with the non-adaptive ode_solver "
                f"{type(self.solver).__name__}."
            )

    def prepare(self, problem: Problem) -> ODE:
        """Resolve tolerances, step budget and ``materialize`` for ``problem``."""
        super().prepare(problem)
        smooth = problem.loss.smooth
        rtol = self.rtol
        if rtol is None:
            rtol = _dtype_tol(problem, 1e-8 if smooth else 1e-6)
        return dataclasses.replace(
            self, rtol=float(rtol),
            atol=float(rtol if self.atol is None else self.atol),
            max_steps=int(self.max_steps or (16384 if smooth else 2**18)),
            dt0=None if self.dt0 is None else float(self.dt0),
            materialize=_materialize(self.materialize, problem),
        )  # fmt: skip

    def failure_message(self, problem: Problem) -> str:
        """Names the step budget and tolerances and what to change."""
        return (
            f"ode discriminator solver did not reach t = tau within max_steps="
            f"{self.max_steps} steps (rtol={self.rtol:g}, atol={self.atol:g}); increase "
            "`max_steps`, loosen `rtol`/`atol`, or pass a stiff `ode_solver` such as "
            "diffrax.Kvaerno5()"
        )

    def solve(self, problem: Problem) -> tuple[jax.Array, SolverStats]:
        """Integrate the rescaled flow on ``s in [0, 1]`` with diffrax."""
        f0_train = problem.f0_train()
        operand = problem.gram() if self.materialize else problem.train
        if isinstance(self.solver, diffrax.AbstractAdaptiveSolver):
            controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
        else:
            controller = diffrax.ConstantStepSize()
        zero = jnp.zeros((), problem.dtype)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_VectorField(bool(self.materialize))),
            self.solver,
            t0=zero,
            t1=jnp.ones((), problem.dtype),
            dt0=None if self.dt0 is None else self.dt0 / problem.time,
            y0=jnp.zeros_like(f0_train),
            args=(problem, f0_train, operand),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=controller,
            max_steps=self.max_steps,
            throw=False,
        )
        gamma = sol.ys[-1]
        ok = (sol.result == diffrax.RESULTS.successful) & jnp.all(jnp.isfinite(gamma))
        stats = SolverStats.make(problem.dtype, iterations=sol.stats["num_steps"], converged=ok)
        return problem.time * problem.weights * gamma, stats


class KernelGD(AbstractSolver):
    r"""Kernel gradient descent ``alpha <- alpha - lr \nabla_f L(f_0(T) + K alpha)``.

    ``steps`` (default ``round(tau / lr)``) steps from ``alpha = 0``: the infinite-width
    limit of full-batch SGD with learning rate ``lr`` on a network whose NTK is ``k``
    (Franceschi et al., ICML 2022, Sec. 4; no ``lr -> 0`` limit), the reference a
    finite network trained by :func:`gantk.nets.fit_finite_discriminator` approaches.

    Attributes:
        lr: learning rate ``> 0`` (time units per step).
        steps: number of steps ``>= 0``; None: ``round(tau / lr)`` (needs a concrete ``tau``).

    Raises:
        ValueError: on a non-positive ``lr``, a negative ``steps``, or ``steps=None`` with
            a traced ``tau``.
    """

    name: ClassVar[str] = "kernel_gd"
    lr: float = 0.1
    steps: int | None = None

    def __check_init__(self) -> None:
        check_positive(self.lr, "lr")
        if self.steps is not None:
            check_int(self.steps, "steps")

    def prepare(self, problem: Problem) -> KernelGD:
        """Resolve ``steps = round(tau / lr)``."""
        super().prepare(problem)
        if self.steps is not None:
            return self
        if not is_concrete(problem.time):
            raise ValueError("KernelGD needs `steps` when `time` is traced (under jit).")
        steps = int(round(float(problem.time) / self.lr))
        return dataclasses.replace(self, lr=float(self.lr), steps=steps)

    def solve(self, problem: Problem) -> tuple[jax.Array, SolverStats]:
        """``steps`` gradient steps on the dense Gram matrix inside :func:`jax.lax.scan`."""
        gram, f0_train = problem.gram(), problem.f0_train()

        def step(alpha: jax.Array, _: None) -> tuple[jax.Array, None]:
            f = f0_train + jnp.dot(gram, alpha, precision=_linalg.HIGHEST)
            return alpha - self.lr * problem.loss_gradient(f), None

        alpha0 = jnp.zeros(f0_train.shape, problem.dtype)
        alpha, _ = jax.lax.scan(step, alpha0, None, length=self.steps)
        return alpha, SolverStats.make(problem.dtype, iterations=self.steps)
