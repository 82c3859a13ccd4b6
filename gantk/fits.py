"""How a flow trains its discriminator: fits ``(fake, real, carry, key) -> discriminator``.

One protocol (:class:`AbstractFit`) for both regimes of Franceschi et al. (ICML 2022):
:class:`InfiniteWidthFit` solves the NTK-regime function-space dynamics (eq. (6)) with any
solver of :mod:`gantk.solvers`; :class:`FiniteWidthFit` trains a finite flax network by
SGD. Both return an :class:`~gantk.solution.AbstractDiscriminator`, so
:func:`gantk.flows.flow_step` and :func:`gantk.flows.generator_step` take either.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float

from gantk import nets
from gantk._validate import check_positive
from gantk.architectures import MLPSpec
from gantk.discriminator import discriminator
from gantk.solution import AbstractDiscriminator

__all__ = ["AbstractFit", "FiniteWidthFit", "InfiniteWidthFit"]


class AbstractFit(eqx.Module):
    """How a flow trains its discriminator: ``fit(fake, real, carry, key) -> D``.

    ``carry`` is what the previous fit left in ``D.carry`` (finite width: the network
    parameters; infinite width: None) and ``key`` a fresh PRNG key. Implementations:
    :class:`InfiniteWidthFit`, :class:`FiniteWidthFit`; any callable with this signature
    returning an :class:`~gantk.solution.AbstractDiscriminator` works in
    :func:`generator_step` too.
    """

    @abc.abstractmethod
    def __call__(
        self, fake: Float[Array, "n d"], real: Float[Array, "m d"], carry: Any, key: Array
    ) -> AbstractDiscriminator:
        """Train the discriminator on ``fake`` (n, d) vs ``real`` (m, d)."""

    def init(self, key: Array, dim: int) -> Any:
        """The initial ``carry`` for input dimension ``dim`` (None unless overridden)."""
        return None


class InfiniteWidthFit(AbstractFit):
    """The infinite-width (NTK-regime) discriminator of :func:`gantk.discriminator`.

    Attributes:
        loss: a loss name or :class:`gantk.losses.Loss`.
        kernel: ``k(x1, x2) -> (n1, n2)``, e.g. ``MLPSpec().kernel()``.
        time: training time ``tau`` (``inf`` allowed for quadratic losses).
        options: keyword arguments of :func:`gantk.discriminator` (``solver``,
            solver options, ``block_size``...), as a tuple of ``(name, value)`` pairs.
    """

    loss: Any = eqx.field(static=True)
    kernel: Callable = eqx.field(static=True)
    time: float
    options: tuple[tuple[str, Any], ...] = eqx.field(static=True, default=())

    def __call__(
        self, fake: Float[Array, "n d"], real: Float[Array, "m d"], carry: Any, key: Array
    ) -> AbstractDiscriminator:
        """``discriminator(loss, kernel, fake, real, time, **options)``; ignores carry, key."""
        return discriminator(self.loss, self.kernel, fake, real, self.time, **dict(self.options))


class FiniteWidthFit(AbstractFit):
    """A finite-width flax discriminator trained by SGD (``nets.fit_finite_discriminator``).

    Each fit trains for ``round(time / lr)`` SGD steps (one step with ``single_step``,
    GAN(TK)²'s mode with a persistent discriminator), starting from ``carry`` (the previous
    parameters) or, with ``reset``, from a fresh initialization drawn from ``key``.

    Attributes:
        loss: a loss name or :class:`gantk.losses.Loss`.
        spec: the :class:`gantk.architectures.MLPSpec` (its ``width`` is the finite width).
        time: training time ``tau > 0`` (SGD steps × ``lr``).
        lr: SGD learning rate ``> 0``.
        reset: re-initialize at every fit.
        antisymmetric: use the antisymmetric wrapper so that ``f_0 = 0``.
        single_step: one SGD step per fit.

    Raises:
        ValueError: if ``lr`` or ``time`` is not positive or ``spec`` is not an MLPSpec.
    """

    loss: Any = eqx.field(static=True)
    spec: MLPSpec = eqx.field(static=True)
    time: float = eqx.field(static=True)
    lr: float = eqx.field(static=True)
    reset: bool = eqx.field(static=True, default=False)
    antisymmetric: bool = eqx.field(static=True, default=True)
    single_step: bool = eqx.field(static=True, default=False)

    def __check_init__(self) -> None:
        if not isinstance(self.spec, MLPSpec):
            raise ValueError(f"`spec` must be an MLPSpec; got {type(self.spec).__name__}.")
        check_positive(self.lr, "lr")
        check_positive(self.time, "time")

    def init(self, key: Array, dim: int, dtype: Any = None) -> Any:
        """Fresh parameters (:func:`gantk.nets.init_discriminator`) for inputs of ``dim``.

        ``dtype`` defaults to JAX's default float; a reset inside a flow uses the particles'
        dtype, so a float32 run stays float32 when x64 is enabled.
        """
        return nets.init_discriminator(
            key, self.spec, dim, antisymmetric=self.antisymmetric, dtype=dtype
        )

    def __call__(
        self, fake: Float[Array, "n d"], real: Float[Array, "m d"], carry: Any, key: Array
    ) -> AbstractDiscriminator:
        """Train from ``carry`` (or a fresh init with ``reset``) on ``fake`` vs ``real``."""
        params = self.init(key, fake.shape[-1], fake.dtype) if self.reset else carry
        return nets.fit_finite_discriminator(
            self.loss, self.spec, params, fake, real,
            self.lr if self.single_step else self.time, self.lr,
            antisymmetric=self.antisymmetric,
        )  # fmt: skip
