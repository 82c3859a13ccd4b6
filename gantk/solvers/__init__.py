r"""Solvers of the infinite-width discriminator problem: ``solver(problem) -> Discriminator``.

Every solver is an :class:`equinox.Module` subclass of :class:`AbstractSolver` that owns its
options (with defaults and validation) and implements one method, :meth:`~AbstractSolver.solve`,
which maps a :class:`gantk.problem.Problem` to the coefficients ``alpha`` (shape ``(N,)``,
``N = n + m``) of ``f_tau(x) = f_0(x) + k(x, T) alpha`` and a :class:`SolverStats`. Calling
the solver validates, runs ``solve`` jitted, checks convergence and returns a
:class:`gantk.solution.Discriminator` (the pattern of diffrax's ``AbstractSolver`` and
ott-jax's ``Sinkhorn()(problem)``). Formulas (Franceschi et al., ICML 2022, eq. (6); see
``docs/concepts/solvers.md``), with ``W = diag(weights)`` and ``K = k(T, T)``:

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

import dataclasses
from typing import Any

from gantk._validate import check_choice, is_concrete
from gantk.problem import Problem
from gantk.solution import SolverStats
from gantk.solvers._base import MATERIALIZE_MAX, AbstractSolver, ConvergenceError
from gantk.solvers._quadratic import ClosedForm, Eigh, Krylov
from gantk.solvers._time_stepping import ODE, KernelGD

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
