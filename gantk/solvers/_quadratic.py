"""Direct and Krylov solvers: :class:`ClosedForm` (IPM), :class:`Eigh` and :class:`Krylov`
(quadratic losses); formulas in :mod:`gantk.solvers` and ``docs/concepts/solvers.md``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from gantk import _linalg
from gantk._validate import check_int, check_nonneg
from gantk.problem import Problem
from gantk.solution import SolverStats
from gantk.solvers._base import AbstractSolver, _dtype_tol, _materialize

__all__ = ["ClosedForm", "Eigh", "Krylov"]


class ClosedForm(AbstractSolver):
    """IPM losses (``a``, ``b`` affine): ``alpha = -tau W (a'(0) on fake, b'(0) on real)``."""

    name: ClassVar[str] = "closed_form"
    kinds: ClassVar[tuple[str, ...]] = ("ipm",)

    def solve(self, problem: Problem) -> tuple[jax.Array, SolverStats]:
        """``alpha`` in closed form (constant functional gradient)."""
        zero = jnp.zeros(problem.train.shape[0], problem.dtype)
        alpha = -problem.time * problem.loss_gradient(zero)
        return alpha, SolverStats.make(problem.dtype)


class _Quadratic(AbstractSolver):
    """Shared option of the quadratic-loss solvers: Tikhonov ``diag_reg``."""

    diag_reg: float = 0.0
    kinds: ClassVar[tuple[str, ...]] = ("quadratic",)
    infinite_time: ClassVar[bool] = True

    def __check_init__(self) -> None:
        check_nonneg(self.diag_reg, "diag_reg")

    def _system(self, problem: Problem, materialize: bool) -> tuple[Any, ...]:
        """``(s = W^½ (N,), b = W^½ (y_T - f_0(T)) (N,), K or None, K-operator, reg)``."""
        s = jnp.sqrt(problem.weights)
        b = s * (problem.targets() - problem.f0_train())
        n_train = s.shape[0]
        if materialize:
            k = problem.gram()
            reg = self.diag_reg * jnp.trace(k) / n_train
            return s, b, k, None, reg
        train, kernel = problem.train, problem.kernel
        diag = jax.vmap(lambda x: kernel(x[None], x[None])[0, 0])(train)
        reg = self.diag_reg * jnp.sum(diag) / n_train
        return s, b, None, problem.gram_operator(False), reg

    def _eigh_alpha(self, problem: Problem, s: Any, b: Any, k: Any, reg: Any) -> jax.Array:
        n_train = s.shape[0]
        a = s[:, None] * (k + reg * jnp.eye(n_train, dtype=k.dtype)) * s[None, :]
        rcond = getattr(self, "rcond", None)
        rcond = n_train * float(jnp.finfo(problem.dtype).eps) if rcond is None else rcond
        return s * _linalg.phi_apply(a, b, problem.time, jnp.asarray(rcond, problem.dtype))


class Eigh(_Quadratic):
    """Quadratic losses, dense: ``alpha = W^½ phi(A) W^½ (y_T - f_0(T))`` by eigendecomposition.

    ``A = W^½ (K + r I) W^½`` with ``r = diag_reg * tr K / N`` (neural-tangents'
    convention); differentiable through a divided-difference (Daleckii-Krein) JVP.

    Attributes:
        diag_reg: relative Tikhonov regulariser ``>= 0`` (default 0).
        rcond: for ``tau = inf``, eigenvalues of ``A`` below ``rcond * max|eig|`` count as
            0 (default ``N * eps``).
    """

    name: ClassVar[str] = "eigh"
    rcond: float | None = None

    def __check_init__(self) -> None:
        if self.rcond is not None:
            check_nonneg(self.rcond, "rcond")

    def solve(self, problem: Problem) -> tuple[jax.Array, SolverStats]:
        """``alpha`` from the eigendecomposition of the dense ``A``."""
        s, b, k, _, reg = self._system(problem, True)
        return self._eigh_alpha(problem, s, b, k, reg), SolverStats.make(problem.dtype)


class Krylov(_Quadratic):
    """Quadratic losses, large ``N``: Lanczos for ``phi(A) b`` (finite ``tau``) or CG (``inf``).

    Only products by ``K`` are needed, from the dense matrix (``materialize``) or kernel
    tiles recomputed at each product (memory ``O(N d + block^2)``).

    Attributes:
        diag_reg: relative Tikhonov regulariser ``>= 0`` (default 0).
        rtol: relative tolerance (default ``1e-8`` in float64, ``1e-5`` in float32).
        max_steps: Krylov dimension (default ``min(N, 512)``) or CG iterations (``10 N``).
        materialize: store the dense Gram matrix; None: iff ``N <= MATERIALIZE_MAX``.
        fallback: if Krylov misses ``rtol`` while the Gram matrix is dense, use
            :class:`Eigh` instead (``stats.fallback`` tells); set by :func:`auto`.
    """

    name: ClassVar[str] = "krylov"
    differentiable: ClassVar[bool] = False
    rtol: float | None = None
    max_steps: int | None = None
    materialize: bool | None = None
    fallback: bool = False

    def __check_init__(self) -> None:
        if self.rtol is not None:
            check_nonneg(self.rtol, "rtol")
        if self.max_steps is not None:
            check_int(self.max_steps, "max_steps", 1)

    def prepare(self, problem: Problem) -> Krylov:
        """Resolve ``rtol``, ``max_steps`` and ``materialize`` for ``problem``."""
        super().prepare(problem)
        n_train = problem.train.shape[0]
        steps = self.max_steps
        if steps is None:
            steps = 10 * n_train if problem.infinite else min(n_train, 512)
        return dataclasses.replace(
            self,
            rtol=float(_dtype_tol(problem, 1e-8) if self.rtol is None else self.rtol),
            max_steps=int(steps),
            materialize=_materialize(self.materialize, problem),
            fallback=bool(self.fallback and _materialize(self.materialize, problem)),
        )

    def failure_message(self, problem: Problem) -> str:
        """Names the method (Lanczos or CG), the tolerance and what to change."""
        if problem.infinite:
            what = "CG (time=inf)"
            hint = "increase `max_steps`, set a positive `diag_reg`, or use solver='eigh'"
        else:
            what = "Lanczos"
            hint = "increase `max_steps` or `rtol`, or use solver='eigh'"
        return f"krylov discriminator solver: {what} did not reach rtol={self.rtol:g}; {hint}"

    def solve(self, problem: Problem) -> tuple[jax.Array, SolverStats]:
        """``alpha`` by Lanczos / CG on ``A = W^½ (K + r I) W^½``."""
        s, b, k, k_mv, reg = self._system(problem, bool(self.materialize))

        def matvec(x: jax.Array) -> jax.Array:
            kx = jnp.dot(k, s * x, precision=_linalg.HIGHEST) if k is not None else k_mv(s * x)
            return s * kx + reg * s * s * x

        if problem.infinite:
            z, info = _linalg.cg_solve(matvec, b, max_iter=self.max_steps, rtol=self.rtol)
        else:
            z, info = _linalg.lanczos_matfun(
                matvec, b, lambda lam: _linalg.phi(lam, problem.time, 0.0),
                max_iter=self.max_steps, rtol=self.rtol,
            )  # fmt: skip
        ok = info["converged"]
        stats = SolverStats.make(
            problem.dtype, iterations=info["iterations"], residual=info["residual"],
            converged=ok,
        )  # fmt: skip
        if self.fallback:
            alpha = jax.lax.cond(
                ok, lambda: s * z, lambda: self._eigh_alpha(problem, s, b, k, reg)
            )
            return alpha, eqx.tree_at(
                lambda st: (st.converged, st.fallback), stats, (jnp.asarray(True), ~ok)
            )
        return s * z, stats
