r"""Solvers of the infinite-width discriminator problem: ``solver(problem) -> Discriminator``.

Every solver is an :class:`equinox.Module` subclass of :class:`AbstractSolver` that owns its
options (with defaults and validation) and implements one method, :meth:`~AbstractSolver.solve`,
which maps a :class:`gantk.problem.Problem` to the coefficients ``alpha`` (shape ``(N,)``,
``N = n + m``) of ``f_tau(x) = f_0(x) + k(x, T) alpha`` and a :class:`SolverStats`. Calling
the solver validates, runs ``solve`` jitted, checks convergence and returns a
:class:`gantk.solution.Discriminator` (the pattern of diffrax's ``AbstractSolver`` and
ott-jax's ``Sinkhorn()(problem)``). Formulas (Franceschi et al., ICML 2022, eq. (6); see
``docs/dynamics.md``), with ``W = diag(weights)`` and ``K = k(T, T)``:

- :class:`ClosedForm` (IPM, ``a``, ``b`` affine): ``alpha = -tau W (a', b')``: ``f_tau`` is
  ``tau`` times the unnormalised MMD witness function.
- :class:`Eigh` (quadratic ``a = (f-u)^2``, ``b = (f-v)^2``): with ``A = W^½ K W^½``,
  ``alpha = W^½ phi(A) W^½ (y_T - f_0(T))``, ``phi(l) = (1 - e^{-2 l tau}) / l``
  (``1/l`` for ``tau = inf``).
- :class:`Krylov`: the same ``alpha`` by Lanczos (finite ``tau``) or CG (``tau = inf``)
  with products by ``K`` only; for large train sets.
- :class:`ODE`: any loss; integrates ``d alpha/dt = -\nabla_f L(f_0(T) + K alpha)`` with
  diffrax.
- :class:`KernelGD`: gradient descent ``alpha <- alpha - lr \nabla_f L(f_0(T) + K alpha)``
  for ``round(tau / lr)`` steps: the infinite-width limit of SGD on a network with NTK
  ``k`` at a finite learning rate (``lr -> 0`` gives :class:`ODE`).

:func:`auto` chooses among them (the one place where that choice is made). To add a
solver, subclass :class:`AbstractSolver` (see ``tests/test_solvers.py`` for an explicit
Euler written outside the package).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from gantk import _linalg
from gantk._validate import check_choice, check_int, check_nonneg, check_positive, is_concrete
from gantk.problem import Problem
from gantk.solution import Discriminator, SolverStats

__all__ = [
    "EIGH_MAX",
    "MATERIALIZE_MAX",
    "SOLVERS",
    "ODE",
    "AbstractSolver",
    "ClosedForm",
    "ConvergenceError",
    "Eigh",
    "KernelGD",
    "Krylov",
    "SolverStats",
    "auto",
    "get",
]

#: ``auto`` uses :class:`Eigh` for quadratic (LSGAN) losses up to this many train points
#: ``N = n + m`` and :class:`Krylov` above (measured on CPU, float32, ReLU NTK, tau = 1:
#: Krylov is 3-20x faster from N = 500 on; see ``benchmarks/krylov.py``).
EIGH_MAX = 512
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


#: Solver classes by name (``solver='...'`` of :func:`gantk.discriminator`).
SOLVERS: dict[str, type[AbstractSolver]] = {
    cls.name: cls for cls in (ClosedForm, Eigh, Krylov, ODE, KernelGD)
}


def auto(problem: Problem, **options: Any) -> AbstractSolver:
    """Choose the solver for ``problem`` (the one place where ``solver='auto'`` is decided).

    :class:`ClosedForm` for IPM losses; :class:`Eigh` for quadratic losses with
    ``N = n + m <= EIGH_MAX`` (512) or ``differentiate_train``, :class:`Krylov` above
    (falling back to :class:`Eigh` if it misses ``rtol`` while the Gram matrix is dense);
    :class:`ODE` otherwise.

    Args:
        problem: the :class:`gantk.problem.Problem`.
        **options: solver options; those the chosen solver does not take are ignored,
            except a nonzero ``diag_reg`` (which changes the problem solved).

    Raises:
        ValueError: on a nonzero ``diag_reg`` with a non-quadratic loss, or a bad option.
    """
    kind = problem.loss.kind
    if kind == "ipm":
        name = "closed_form"
    elif kind == "quadratic":
        small = problem.train.shape[0] <= EIGH_MAX or problem.differentiate_train
        name = "eigh" if small else "krylov"
        if name == "krylov":
            options = {**options, "fallback": True}
    else:
        name = "ode"
    return get(name, strict=False, **options)


def get(name: str, *, strict: bool = True, **options: Any) -> AbstractSolver:
    """The solver called ``name`` (a key of :data:`SOLVERS`) built with ``options``.

    Args:
        name: ``'closed_form'``, ``'eigh'``, ``'krylov'``, ``'ode'`` or ``'kernel_gd'``.
        strict: raise on an option the solver does not take (else ignore it). A nonzero
            ``diag_reg`` always raises there (it changes the problem solved); a zero one
            is always accepted.
        **options: the solver's fields; None values are left at their defaults.
            ``ode_solver`` is accepted as the name of :attr:`ODE.solver`.

    Raises:
        ValueError: on an unknown name, an option the solver does not take (``strict``),
            or an invalid option value.
    """
    check_choice(name, "solver", tuple(SOLVERS))
    cls = SOLVERS[name]
    options = {k: v for k, v in options.items() if v is not None}
    if "ode_solver" in options:
        options["solver"] = options.pop("ode_solver")
    fields = _field_names(cls)
    for key in sorted(set(options) - fields):
        value = options.pop(key)
        zero = key == "diag_reg" and is_concrete(value) and float(value) == 0.0
        if zero or (not strict and key != "diag_reg"):
            continue
        users = "/".join(repr(n) for n, c in SOLVERS.items() if key in _field_names(c))
        shown = "ode_solver" if key == "solver" else key
        raise ValueError(f"`{shown}` is only used by solvers {users}; got {name!r}.")
    return cls(**options)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}
