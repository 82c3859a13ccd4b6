r"""The discriminator of an infinite-width (NTK-regime) GAN, in function space.

Franceschi et al., *A Neural Tangent Kernel Perspective of GANs* (ICML 2022), Section 4:
trained by gradient flow in the NTK regime, the discriminator ``f`` evolves on the train set
``T = X ∪ Y`` (fake particles first, then real points) as

.. math:: \partial_t f_t(z) = -\sum_{z' \in T} k(z, z')\, \partial L / \partial f(z'),
          \qquad L(f) = \tfrac1n \sum_{x} a(f(x)) + \tfrac1m \sum_y b(f(y)),

and everywhere else as ``f_t(x) = f_0(x) + k(x, T) alpha_t`` with
``alpha_t = -\int_0^t \nabla_f L(f_s(T)) ds`` (eq. (6) of the paper).

The library is built as problem → solver → solution (like ott-jax and diffrax):
:class:`gantk.problem.Problem` holds the kernel, loss, points and ``tau``; a solver of
:mod:`gantk.solvers` (``ClosedForm``, ``Eigh``, ``Krylov``, ``ODE``, ``KernelGD`` or your
own :class:`~gantk.solvers.AbstractSolver`) turns it into a
:class:`~gantk.solution.Discriminator`. :func:`discriminator` is the convenience call that
does all three (like ott's ``solve``).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

from jaxtyping import Array, Float

from gantk import losses as _losses
from gantk import solvers as _solvers
from gantk._validate import check_choice
from gantk.problem import DEFAULT_BLOCK_SIZE, Problem
from gantk.solution import AbstractDiscriminator, Discriminator, SolverStats
from gantk.solvers import EIGH_MAX, MATERIALIZE_MAX, AbstractSolver, ConvergenceError

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "EIGH_MAX",
    "MATERIALIZE_MAX",
    "SOLVERS",
    "AbstractDiscriminator",
    "ConvergenceError",
    "Discriminator",
    "Problem",
    "SolverStats",
    "discriminator",
]

#: Valid names of ``solver``.
SOLVERS = ("auto", *_solvers.SOLVERS)


def discriminator(
    loss: str | _losses.Loss,
    kernel: Callable[[Array, Array], Array],
    fake: Float[Array, "n d"],
    real: Float[Array, "m d"],
    time: float | Array,
    *,
    f0: Callable[[Array], Array] | None = None,
    solver: str | AbstractSolver = "auto",
    fake_weights: Float[Array, " n"] | None = None,
    real_weights: Float[Array, " m"] | None = None,
    block_size: int | str = "auto",
    differentiate_train: bool = False,
    throw: bool = True,
    **options: Any,
) -> Discriminator:
    r"""Train the infinite-width discriminator for time ``tau`` on fake vs real points.

    Solves the NTK-regime discriminator dynamics of Franceschi et al. (ICML 2022, eq. (6))
    with ``f_0`` the initial discriminator: on ``T = [fake; real]``,
    ``d f_t(T)/dt = -K \nabla_f L(f_t(T))``, ``L(f) = mean a(f(fake)) + mean b(f(real))``,
    and ``f_tau(x) = f_0(x) + k(x, T) alpha`` with ``alpha = -\int_0^tau \nabla_f L dt``.
    Equivalent to ``solver(Problem(loss, kernel, fake, real, time, ...))``; see
    :mod:`gantk.solvers` and ``docs/concepts/solvers.md`` for the solvers' formulas.

    Args:
        loss: a loss name of :mod:`gantk.losses`, a :class:`gantk.losses.Loss` or a triple
            ``(a, b, c)`` of elementwise functions.
        kernel: ``k(x1, x2) -> (n1, n2)``, e.g. ``gantk.stax.ntk(kernel_fn)``, an NNGP or
            an RBF. Must be symmetric (``k(x, y) = k(y, x)``) and positive semi-definite.
        fake: fake particles ``X``, shape ``(n, d)``.
        real: real points ``Y``, shape ``(m, d)``.
        time: training time ``tau > 0``; ``float('inf')`` is allowed for quadratic losses
            (``eigh``/``krylov``) and gives the converged discriminator.
        f0: initial discriminator ``f0(points (q, d)) -> (q,)``, or None for ``f_0 = 0``.
        solver: a solver instance (any :class:`gantk.solvers.AbstractSolver`, e.g.
            ``gantk.solvers.ODE(rtol=1e-10)``) or a name: ``'auto'``
            (:func:`gantk.solvers.auto`: closed form for IPM; ``eigh`` for quadratic losses
            with ``n + m <= EIGH_MAX`` (512) or ``differentiate_train``, ``krylov`` above;
            ``ode`` otherwise), ``'closed_form'``, ``'eigh'``, ``'krylov'``, ``'ode'`` or
            ``'kernel_gd'``.
        fake_weights: ``(n,)`` non-negative weights of the fake points (normalised);
            default uniform, the paper's mean.
        real_weights: ``(m,)`` likewise for the real points.
        block_size: tile side of kernel evaluations against the train set, an int ``>= 1``
            or ``'auto'`` (``DEFAULT_BLOCK_SIZE`` = 1024).
        differentiate_train: if False (default, GAN(TK)²'s convention), ``fake``, ``real``
            and ``alpha`` are constants for autodiff: gradients of ``D(x)`` flow only
            through ``x``. If True, gradients also flow through the solve (``closed_form``,
            ``eigh`` via a divided-difference JVP, ``ode`` via diffrax); not for ``krylov``.
        throw: raise :class:`ConvergenceError` (eagerly; an equinox runtime error under
            ``jit``) when an iterative solver misses its tolerance. If False, check
            ``D.stats.converged`` yourself.
        **options: options of a named solver (its fields): ``diag_reg`` (eigh, krylov),
            ``rcond`` (eigh), ``rtol`` (krylov, ode), ``atol``, ``dt0`` (ode),
            ``max_steps`` (krylov, ode), ``materialize`` (krylov, ode), ``ode_solver`` (the
            diffrax solver of ode), ``lr``, ``steps`` (kernel_gd). Options the chosen
            solver does not take are ignored, except a nonzero ``diag_reg``.

    Returns:
        The :class:`Discriminator` ``D``: ``D(x)`` gives ``f_tau(x)``, ``D.velocity(x)``
        the particle velocity ``-grad_x c(f_tau(x))``, ``D.stats`` the solver's
        :class:`SolverStats`.

    Raises:
        ValueError: on an unknown loss or solver, a solver that does not fit the loss,
            ``fake``/``real`` not of rank 2 or with different ``d`` or non-finite entries,
            ``time`` not positive (or infinite for a non-quadratic loss), a non-callable
            ``kernel``/``f0``, ``block_size < 1``, an invalid option or one the named
            solver does not take (e.g. a nonzero ``diag_reg`` outside ``eigh``/``krylov``),
            or ``differentiate_train`` with ``krylov``.
        ConvergenceError: (``throw=True``) if the ODE hits ``max_steps`` or Krylov/CG does
            not reach ``rtol``.
    """
    problem = Problem(
        loss, kernel, fake, real, time, fake_weights=fake_weights, real_weights=real_weights,
        f0=f0, block_size=block_size, differentiate_train=differentiate_train,
    )  # fmt: skip
    if not isinstance(solver, AbstractSolver):
        check_choice(solver, "solver", SOLVERS)
        if solver == "auto":
            solver = _solvers.auto(problem, **options)
        else:
            solver = _solvers.get(solver, strict=False, **options)
    elif options:
        raise ValueError(
            f"solver options {sorted(options)} go into the solver instance {solver!r}, "
            "not into discriminator()."
        )
    return solver(problem, throw=throw)


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`discriminator`.

    Importing the submodule ``gantk.discriminator`` (``from gantk.discriminator import
    ...``, or indirectly through :mod:`gantk.flows`) makes Python bind the *module* to the
    package attribute ``gantk.discriminator``, shadowing the function of the same name;
    making the module callable keeps ``gantk.discriminator(...)`` working either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Discriminator:
        return discriminator(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
