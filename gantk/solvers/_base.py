"""The solver interface: :class:`AbstractSolver`, :class:`ConvergenceError`, shared helpers."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from gantk._validate import is_concrete
from gantk.problem import Problem
from gantk.solution import Discriminator, SolverStats

__all__ = ["MATERIALIZE_MAX", "AbstractSolver", "ConvergenceError"]

#: :class:`Krylov`/:class:`ODE` store the dense ``(N, N)`` Gram matrix up to this ``N``
#: (``materialize=None``); above it, each matrix-vector product re-evaluates kernel tiles.
MATERIALIZE_MAX = 16384


class ConvergenceError(RuntimeError):
    """An iterative discriminator solver (ODE, Lanczos, CG) did not reach its tolerance."""


class AbstractSolver(eqx.Module):
    """A discriminator solver: ``solver(problem) -> Discriminator``.

    Subclasses set the class variables and implement :meth:`solve`; they may override
    :meth:`prepare` (resolve defaults that depend on the problem, eagerly) and
    :meth:`failure_message`.

    Class variables:
        name: the solver's name (``Discriminator.solver``).
        kinds: loss kinds (:data:`gantk.losses.KINDS`) the solver handles.
        infinite_time: whether ``tau = inf`` is supported.
        differentiable: whether gradients may flow through the solve
            (``differentiate_train=True``).
    """

    name: ClassVar[str] = "custom"
    kinds: ClassVar[tuple[str, ...]] = ("ipm", "quadratic", "nonlinear")
    infinite_time: ClassVar[bool] = False
    differentiable: ClassVar[bool] = True

    @abc.abstractmethod
    def solve(self, problem: Problem) -> tuple[Float[Array, " N"], SolverStats]:
        """Return ``(alpha (N,), stats)`` for ``problem``; traced under ``jax.jit``."""

    def prepare(self, problem: Problem) -> AbstractSolver:
        """Check that this solver fits ``problem``; return it with defaults resolved.

        Raises:
            ValueError: if the loss kind, ``tau = inf`` or ``differentiate_train`` is not
                supported.
        """
        kind = problem.loss.kind
        if kind not in self.kinds:
            raise ValueError(
                f"`solver`={self.name!r} needs a loss of kind {' or '.join(self.kinds)}; "
                f"loss {problem.loss.name!r} has kind {kind!r}. Use solver='auto' or 'ode'."
            )
        if problem.infinite and not self.infinite_time:
            raise ValueError(f"`time` = inf needs solver 'eigh' or 'krylov', not {self.name!r}.")
        if problem.differentiate_train and not self.differentiable:
            raise ValueError(
                f"`differentiate_train=True` is not supported with solver={self.name!r}."
            )
        return self

    def failure_message(self, problem: Problem) -> str:
        """What :class:`ConvergenceError` says when :attr:`SolverStats.converged` is False."""
        return f"{self.name} discriminator solver did not converge"

    def __call__(self, problem: Problem, *, throw: bool = True) -> Discriminator:
        """Solve ``problem`` (jitted) and return the trained :class:`Discriminator`.

        Args:
            problem: the :class:`gantk.problem.Problem`.
            throw: raise when the solver misses its tolerance (eagerly
                :class:`ConvergenceError`; under ``jit`` an equinox runtime error). If
                False, read ``D.stats.converged``.

        Raises:
            ValueError: if the solver does not fit the problem (see :meth:`prepare`).
            ConvergenceError: (``throw``) if ``stats.converged`` is False.
        """
        solver = self.prepare(problem)
        try:
            hash(jax.tree_util.tree_structure((solver, problem)))
            run = _solve_jit
        except TypeError:  # an unhashable kernel or option: run op by op
            run = _solve
        alpha, stats = run(solver, problem)
        alpha = alpha.astype(problem.dtype)
        if throw:
            alpha = _raise_if_failed(alpha, stats, solver.failure_message(problem))
        return Discriminator(problem=problem, alpha=alpha, stats=stats, solver=solver.name)


def _solve(solver: AbstractSolver, problem: Problem) -> tuple[jax.Array, SolverStats]:
    return solver.solve(problem)


_solve_jit = eqx.filter_jit(_solve)


def _raise_if_failed(alpha: jax.Array, stats: SolverStats, message: str) -> jax.Array:
    """Raise :class:`ConvergenceError` (eagerly) or an equinox runtime error (under jit)."""
    if is_concrete(stats.converged):
        if not bool(jnp.all(stats.converged)):
            raise ConvergenceError(
                f"{message} (iterations={int(jnp.max(stats.iterations))}, "
                f"residual={float(jnp.max(stats.residual)):.3g})."
            )
        return alpha
    return eqx.error_if(alpha, ~stats.converged, message)


def _dtype_tol(problem: Problem, f64: float) -> float:
    """Default relative tolerance: ``f64`` in float64, ``1e-5`` in float32."""
    return 1e-5 if jnp.finfo(problem.dtype).bits <= 32 else f64


def _materialize(materialize: bool | None, problem: Problem) -> bool:
    return problem.train.shape[0] <= MATERIALIZE_MAX if materialize is None else materialize
