r"""Trained discriminators: one abstract interface, two implementations.

A trained GAN discriminator ``f`` drives the generator through the per-particle generator
loss ``c(f(x))`` and the particle velocity ``v(x) = -\nabla_x c(f(x))`` (Franceschi et al.,
ICML 2022, Sec. 3, eq. (5)). :class:`AbstractDiscriminator` writes the generator-side
quantities once, on top of two primitives an implementation provides (``__call__`` and
``value_and_gradient``):

- :class:`Discriminator`: the infinite-width (NTK-regime) solution
  ``f_tau(x) = f_0(x) + k(x, T) alpha`` returned by every solver of :mod:`gantk.solvers`;
- :class:`gantk.nets.FiniteDiscriminator`: a finite-width flax network trained by SGD.

Flows (:mod:`gantk.flows`) and sharding (:mod:`gantk.sharding`) only use this interface.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from gantk import _linalg
from gantk._validate import as_points
from gantk.problem import Problem

__all__ = ["AbstractDiscriminator", "Discriminator", "SolverStats"]


class AbstractDiscriminator(eqx.Module):
    r"""A trained discriminator ``f``: values, input gradients and the generator's velocity.

    Subclasses implement :meth:`__call__` and :meth:`value_and_gradient` and provide the
    :class:`gantk.losses.Loss` as ``loss``; everything the generator needs derives from them.
    Instances are pytrees, usable inside and across ``jax.jit``.
    """

    @property
    @abc.abstractmethod
    def loss(self) -> Any:
        """The :class:`gantk.losses.Loss` the discriminator was trained with."""

    @property
    def carry(self) -> Any:
        """State a flow passes to the next fit (finite width: the parameters); else None."""
        return None

    @abc.abstractmethod
    def __call__(self, points: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Discriminator values ``f(points)``, shape ``(q,)``."""

    @abc.abstractmethod
    def value_and_gradient(
        self, points: Float[Array, "q d"]
    ) -> tuple[Float[Array, " q"], Float[Array, "q d"]]:
        r"""``(f(points) (q,), \nabla_x f(points) (q, d))``, the gradient row by row."""

    def generator_loss(self, points: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Per-particle generator loss ``c(f(points))``, shape ``(q,)``.

        Raises:
            ValueError: if ``points`` is not a finite ``(q, d)`` array of the train ``d``.
        """
        return self.loss.c(self(points))

    def value_and_velocity(
        self, points: Float[Array, "q d"]
    ) -> tuple[Float[Array, " q"], Float[Array, "q d"]]:
        r"""``(c(f(x)) (q,), v(x) = -c'(f(x)) \nabla_x f(x) (q, d))`` in one pass.

        Franceschi et al. (ICML 2022), eq. (5); the train set is held fixed (GAN(TK)²'s
        stop-gradient convention).

        Raises:
            ValueError: if ``points`` is not a finite ``(q, d)`` array of the train ``d``.
        """
        val, grad = self.value_and_gradient(points)
        c, vjp = jax.vjp(self.loss.c, val)
        (dc,) = vjp(jnp.ones_like(val))
        return c, -dc[:, None] * grad

    def velocity(self, points: Float[Array, "q d"]) -> Float[Array, "q d"]:
        r"""Particle velocity ``v(x) = -\nabla_x c(f(x))``, shape ``(q, d)``.

        Particles move by ``x <- x + h v(x)``; GAN(TK)²'s ``eta`` is a step on the *mean*
        generator loss, so its per-particle step is ``h = eta / n``.

        Raises:
            ValueError: if ``points`` is not a finite ``(q, d)`` array of the train ``d``.
        """
        return self.value_and_velocity(points)[1]


class SolverStats(eqx.Module):
    """Diagnostics of a discriminator solve (the same fields for every solver).

    Attributes:
        iterations: ODE steps, Krylov/CG iterations or gradient-descent steps (0 for the
            direct solvers ``ClosedForm`` and ``Eigh``), int32 scalar.
        residual: relative error estimate of an iterative solver (Krylov), else 0.
        converged: whether the solver met its tolerance within its budget (bool scalar).
        fallback: ``solver='auto'`` only: Krylov missed its tolerance and the result comes
            from ``Eigh`` on the dense Gram matrix (bool scalar).
    """

    iterations: Int[Array, ""]
    residual: Float[Array, ""]
    converged: Bool[Array, ""]
    fallback: Bool[Array, ""]

    @classmethod
    def make(
        cls,
        dtype: Any,
        *,
        iterations: Any = 0,
        residual: Any = 0.0,
        converged: Any = True,
        fallback: Any = False,
    ) -> SolverStats:
        """Stats with the given values cast to int32 / ``dtype`` / bool scalars."""
        return cls(
            jnp.asarray(iterations, jnp.int32),
            jnp.asarray(residual, dtype),
            jnp.asarray(converged, bool),
            jnp.asarray(fallback, bool),
        )


class Discriminator(AbstractDiscriminator):
    r"""A trained infinite-width discriminator ``f_tau(x) = f_0(x) + k(x, T) @ alpha``.

    Returned by :func:`gantk.discriminator` and by every solver of :mod:`gantk.solvers`
    (Franceschi et al., ICML 2022, eq. (6)). A pytree: the problem's arrays, ``alpha`` and
    ``stats`` are leaves; the solver name is static.

    Attributes:
        problem: the :class:`gantk.problem.Problem` that was solved.
        alpha: coefficients over the train set ``T = [fake; real]``, shape ``(n + m,)``.
        stats: the solver's :class:`SolverStats`.
        solver: name of the solver used (``'closed_form'``, ``'eigh'``, ``'krylov'``,
            ``'ode'``, ``'kernel_gd'`` or a user solver's ``name``).
    """

    problem: Problem
    alpha: Float[Array, " N"]
    stats: SolverStats
    solver: str = eqx.field(static=True)

    # ----- the problem's fields, for convenience
    @property
    def loss(self) -> Any:
        """The :class:`gantk.losses.Loss`."""
        return self.problem.loss

    @property
    def fake(self) -> Float[Array, "n d"]:
        """Fake particles ``X``, shape ``(n, d)``."""
        return self.problem.fake

    @property
    def real(self) -> Float[Array, "m d"]:
        """Real points ``Y``, shape ``(m, d)``."""
        return self.problem.real

    @property
    def time(self) -> Float[Array, ""]:
        """Training time ``tau``."""
        return self.problem.time

    @property
    def kernel(self) -> Any:
        """The kernel ``k(x1, x2) -> (n1, n2)``."""
        return self.problem.kernel

    @property
    def f0(self) -> Any:
        """The initial discriminator ``f0`` or None."""
        return self.problem.f0

    @property
    def block_size(self) -> int:
        """Tile side of kernel evaluations against the train set."""
        return self.problem.block_size

    @property
    def differentiate_train(self) -> bool:
        """Whether gradients flow through the train set and ``alpha``."""
        return self.problem.differentiate_train

    @property
    def train(self) -> Float[Array, "N d"]:
        """The train set ``T = [fake; real]``, shape ``(n + m, d)``."""
        return self.problem.train

    # ----- evaluation
    def _points(self, points: Any) -> jax.Array:
        with jax.ensure_compile_time_eval():
            return as_points(points, "points", dim=self.fake.shape[1], dim_name="fake")

    def __call__(self, points: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Evaluate ``f_tau(points) = f_0(points) + k(points, T) @ alpha``, shape ``(q,)``.

        The kernel is evaluated in ``block_size x block_size`` tiles. Unless
        ``differentiate_train``, the train set and ``alpha`` are constants for autodiff.

        Raises:
            ValueError: if ``points`` is not ``(q, d)`` with the train set's ``d`` or has
                non-finite entries.
        """
        points = self._points(points)
        train, alpha = self.train, self.alpha
        if not self.differentiate_train:
            train, alpha = jax.lax.stop_gradient((train, alpha))
        out = _tiled(_linalg.kernel_apply, self.kernel, points, train, alpha, self.block_size)
        if self.f0 is not None:
            out = out + self.f0(points)
        return out

    def value_and_gradient(
        self, points: Float[Array, "q d"]
    ) -> tuple[Float[Array, " q"], Float[Array, "q d"]]:
        """``f_tau(points)`` (q,) and ``grad_x f_tau(x)`` (q, d), train set held fixed.

        Only the first argument of ``k(x, T)`` and of ``f_0`` is differentiated, tile by
        tile (a VJP of each kernel block against ``alpha``).

        Raises:
            ValueError: on invalid ``points`` (see :meth:`__call__`).
        """
        points = self._points(points)
        train, alpha = jax.lax.stop_gradient((self.train, self.alpha))
        val, grad = _tiled(
            _linalg.kernel_apply_and_grad, self.kernel, points, train, alpha, self.block_size
        )
        if self.f0 is not None:
            v0, vjp = jax.vjp(self.f0, points)
            (g0,) = vjp(jnp.ones_like(v0))
            val, grad = val + v0, grad + g0
        return val, grad


_TILED_JIT = {
    fn: jax.jit(fn, static_argnums=(0, 4))
    for fn in (_linalg.kernel_apply, _linalg.kernel_apply_and_grad)
}


def _tiled(fn: Any, kernel: Any, points: Any, train: Any, alpha: Any, block: int) -> Any:
    """Run a tiled kernel evaluation jitted (static kernel), op by op if it is unhashable."""
    try:
        hash(kernel)
    except TypeError:
        return fn(kernel, points, train, alpha, block)
    return _TILED_JIT[fn](kernel, points, train, alpha, block)
