"""GAN losses as ``(a, b, c)`` triples of elementwise functions.

Following Franceschi et al., *A Neural Tangent Kernel Perspective of GANs* (ICML 2022,
Section 3, eq. (1)–(2)), a GAN loss is described by three scalar functions:

- the discriminator minimises ``L(f) = mean_{x ~ fake} a(f(x)) + mean_{y ~ real} b(f(y))``;
- the generator minimises ``c(f(x))`` for each fake particle ``x`` (its loss is the mean).

========================  ==================  ==================  ==================  =========
name                      ``a(f)`` (fake)     ``b(f)`` (real)     ``c(f)`` (generator) ``kind``
========================  ==================  ==================  ==================  =========
``ipm``                   ``f``               ``-f``              ``-f``              ipm
``lsgan``                 ``(f + 1)^2``       ``(f - 1)^2``       ``f^2``             quadratic
``vanilla``               ``softplus(f)``     ``softplus(-f)``    ``softplus(-f)``    nonlinear
``vanilla_saturating``    ``softplus(f)``     ``softplus(-f)``    ``-softplus(f)``    nonlinear
``hinge``                 ``relu(1 + f)``     ``relu(1 - f)``     ``-f``              nonlinear
========================  ==================  ==================  ==================  =========

``vanilla`` is the usual non-saturating GAN (``-log D``), ``vanilla_saturating`` the
original minimax one (``log(1 - D)``), with ``D = sigmoid(f)``. ``lsgan``'s generator target
``f^2`` is GAN(TK)²'s choice; :func:`lsgan` builds the variant ``(f - gen_target)^2``.

The ``kind`` decides how :func:`gantk.discriminator.discriminator` solves the
discriminator's training dynamics: ``'ipm'`` (``a``, ``b`` affine: constant gradient, closed
form), ``'quadratic'`` (``a = (f - u)^2``, ``b = (f - v)^2``: linear dynamics, matrix-function
closed form) or ``'nonlinear'`` (an ODE).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "KINDS",
    "LOSSES",
    "Loss",
    "custom",
    "get",
    "hinge",
    "ipm",
    "lsgan",
    "vanilla",
    "vanilla_saturating",
]

#: Valid values of :attr:`Loss.kind`.
KINDS = ("ipm", "quadratic", "nonlinear")


# Module-level elementwise functions: stable identities, so equal losses hash equally and a
# Loss is a cheap static argument of jax.jit.
def _identity(f):
    return f


def _neg(f):
    return -f


def _softplus(f):
    return jax.nn.softplus(f)


def _softplus_neg(f):
    return jax.nn.softplus(-f)


def _neg_softplus(f):
    return -jax.nn.softplus(f)


def _hinge_fake(f):
    return jax.nn.relu(1.0 + f)


def _hinge_real(f):
    return jax.nn.relu(1.0 - f)


@dataclasses.dataclass(frozen=True)
class SquaredError:
    """Elementwise ``f -> (f - target)^2``, hashable by value (so equal losses jit once).

    Attributes:
        target: the regression target.
    """

    target: float

    def __call__(self, f):
        """Return ``(f - target)^2`` elementwise."""
        return (f - self.target) ** 2


@dataclasses.dataclass(frozen=True)
class Loss:
    """A GAN loss ``(a, b, c)``; hashable, so it can be a static argument of ``jax.jit``.

    Unpacks as a triple: ``a, b, c = loss``.

    Attributes:
        a: elementwise discriminator loss on fake points, ``f -> a(f)``.
        b: elementwise discriminator loss on real points, ``f -> b(f)``.
        c: elementwise generator loss on fake points, ``f -> c(f)``.
        name: a label (``'custom'`` for user losses).
        kind: ``'ipm'`` (``a``, ``b`` affine: constant gradient), ``'quadratic'``
            (``a = (f - u)^2``, ``b = (f - v)^2``: linear discriminator dynamics) or
            ``'nonlinear'`` (anything else; solved as an ODE). Only decides which solver
            may be used; ``'nonlinear'`` is always correct. ``'linear'`` is accepted as the
            deprecated name of ``'quadratic'`` (with a :class:`DeprecationWarning`).
        targets: ``(u, v)`` for ``kind='quadratic'``, the regression targets of fake and real
            points (``(-1, 1)`` for LSGAN); None otherwise.
        smooth: whether ``a`` and ``b`` are continuously differentiable. Non-smooth losses
            (hinge) make the discriminator ODE switch and slide along ``f = +-1``, where
            every ODE solver is only first order; the ODE solver then defaults to looser
            tolerances and a larger step budget.

    Raises:
        ValueError: if ``a``, ``b`` or ``c`` is not callable, ``kind`` is unknown, or the
            functions do not have the form ``kind`` claims (checked at a few points).
    """

    a: Callable[[Any], Any]
    b: Callable[[Any], Any]
    c: Callable[[Any], Any]
    name: str = "custom"
    kind: str = "nonlinear"
    targets: tuple[float, float] | None = None
    smooth: bool = True

    def __post_init__(self) -> None:
        for field in ("a", "b", "c"):
            if not callable(getattr(self, field)):
                raise ValueError(
                    f"`{field}` of a Loss must be a callable f -> {field}(f); "
                    f"got {getattr(self, field)!r}."
                )
        if self.kind == "linear":  # deprecated name of 'quadratic'
            warnings.warn(
                "Loss(kind='linear') is deprecated; use kind='quadratic' (squared-error "
                "losses, whose discriminator dynamics are linear).",
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "kind", "quadratic")
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}; got {self.kind!r}.")
        if self.kind == "quadratic":
            if self.targets is None or len(self.targets) != 2:
                raise ValueError(
                    "`targets` must be a pair (u, v) for kind='quadratic' "
                    f"(a = (f - u)^2, b = (f - v)^2); got {self.targets!r}."
                )
            object.__setattr__(self, "targets", (float(self.targets[0]), float(self.targets[1])))
            for fn, t, field in ((self.a, self.targets[0], "a"), (self.b, self.targets[1], "b")):
                vals = [_eval(fn, t + s) for s in (-1.0, 0.0, 2.0)]
                if not _allclose(vals, [1.0, 0.0, 4.0]):
                    raise ValueError(
                        f"kind='quadratic' needs `{field}`(f) = (f - {t})^2; got values {vals} "
                        f"at f = {t - 1}, {t}, {t + 2}."
                    )
        elif self.targets is not None:
            raise ValueError(
                f"`targets` is only used with kind='quadratic'; got kind={self.kind!r}."
            )
        if self.kind == "ipm":
            for fn, field in ((self.a, "a"), (self.b, "b")):
                vals = [_eval(fn, s) for s in (-1.0, 0.0, 1.0, 3.0)]
                slope = vals[2] - vals[1]
                if not _allclose(
                    [vals[0], vals[3]], [vals[1] - slope, vals[1] + 3 * slope]
                ):
                    raise ValueError(
                        f"kind='ipm' needs an affine `{field}`; got values {vals} at "
                        "f = -1, 0, 1, 3."
                    )

    def __iter__(self) -> Iterator[Callable[[Any], Any]]:
        """Iterate over ``(a, b, c)``."""
        return iter((self.a, self.b, self.c))

    def discriminator_loss(self, f_fake: jax.Array, f_real: jax.Array) -> jax.Array:
        """``L = mean a(f_fake) + mean b(f_real)`` for values of shape ``(n,)`` and ``(m,)``."""
        return jnp.mean(self.a(f_fake)) + jnp.mean(self.b(f_real))

    def generator_loss(self, f_fake: jax.Array) -> jax.Array:
        """Per-particle generator loss ``c(f_fake)``, same shape as ``f_fake``."""
        return self.c(f_fake)


def _eval(fn: Callable, x: float) -> float:
    with jax.ensure_compile_time_eval():
        return float(fn(jnp.asarray(x, dtype=jnp.float32)))


def _allclose(x: list[float], y: list[float]) -> bool:
    pairs = zip(x, y, strict=True)
    return all(math.isfinite(u) and abs(u - v) <= 1e-5 * (1.0 + abs(v)) for u, v in pairs)


def ipm() -> Loss:
    """IPM / Wasserstein-type loss: ``a = f``, ``b = -f``, ``c = -f``.

    With the NTK, the trained discriminator is ``tau`` times the MMD witness function and the
    particles follow the MMD gradient flow (Franceschi et al. 2022, Section 5.1).
    """
    return Loss(_identity, _neg, _neg, name="ipm", kind="ipm")


def lsgan(fake_target: float = -1.0, real_target: float = 1.0, gen_target: float = 0.0) -> Loss:
    """Least-squares GAN: ``a = (f - fake_target)^2``, ``b = (f - real_target)^2``,
    ``c = (f - gen_target)^2``.

    The defaults ``(-1, 1, 0)`` are GAN(TK)²'s (``c = f^2``); ``gen_target=1`` gives the
    other common generator loss ``(f - 1)^2``.

    Raises:
        ValueError: if a target is not a finite number.
    """
    targets = {"fake_target": fake_target, "real_target": real_target, "gen_target": gen_target}
    for name, value in targets.items():
        try:
            ok = math.isfinite(float(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    default = (fake_target, real_target, gen_target) == (-1.0, 1.0, 0.0)
    return Loss(
        SquaredError(float(fake_target)),
        SquaredError(float(real_target)),
        SquaredError(float(gen_target)),
        name="lsgan" if default else f"lsgan({fake_target:g}, {real_target:g}, {gen_target:g})",
        kind="quadratic",
        targets=(float(fake_target), float(real_target)),
    )


def vanilla() -> Loss:
    """Non-saturating GAN: ``a = softplus(f)``, ``b = softplus(-f)``, ``c = softplus(-f)``.

    With ``D = sigmoid(f)``: ``a = -log(1 - D)``, ``b = -log D``, ``c = -log D``.
    """
    return Loss(_softplus, _softplus_neg, _softplus_neg, name="vanilla", kind="nonlinear")


def vanilla_saturating() -> Loss:
    """Original minimax GAN: ``a = softplus(f)``, ``b = softplus(-f)``, ``c = -softplus(f)``.

    With ``D = sigmoid(f)`` the generator minimises ``log(1 - D)``.
    """
    return Loss(
        _softplus, _softplus_neg, _neg_softplus, name="vanilla_saturating", kind="nonlinear"
    )


def hinge() -> Loss:
    """Hinge GAN: ``a = relu(1 + f)``, ``b = relu(1 - f)``, ``c = -f``."""
    return Loss(_hinge_fake, _hinge_real, _neg, name="hinge", kind="nonlinear", smooth=False)


def custom(
    a: Callable, b: Callable, c: Callable, *, name: str = "custom", smooth: bool = True
) -> Loss:
    """A user loss from three elementwise JAX functions (solved with the ODE solver).

    Args:
        a, b, c: elementwise ``f -> a(f)``, ``b(f)``, ``c(f)`` (see :class:`Loss`).
        name: a label.
        smooth: set False if ``a`` or ``b`` has kinks (see :attr:`Loss.smooth`).

    Raises:
        ValueError: if one of them is not callable.
    """
    return Loss(a, b, c, name=name, kind="nonlinear", smooth=bool(smooth))


#: Named losses: name -> constructor with default arguments.
LOSSES: dict[str, Callable[[], Loss]] = {
    "ipm": ipm,
    "lsgan": lsgan,
    "vanilla": vanilla,
    "vanilla_saturating": vanilla_saturating,
    "hinge": hinge,
}


def get(loss: str | Loss | tuple[Callable, Callable, Callable]) -> Loss:
    """Return a :class:`Loss` from a name, a :class:`Loss` (returned as is) or ``(a, b, c)``.

    Args:
        loss: one of :data:`LOSSES` (``'ipm'``, ``'lsgan'``, ``'vanilla'``,
            ``'vanilla_saturating'``, ``'hinge'``), a :class:`Loss`, or a tuple of three
            elementwise callables (a ``'nonlinear'`` custom loss).

    Raises:
        ValueError: on an unknown name (the message lists the valid ones) or anything else.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in LOSSES:
            valid = ", ".join(repr(k) for k in LOSSES)
            raise ValueError(f"`loss` must be one of {valid} or a Loss; got {loss!r}.")
        return LOSSES[loss]()
    if isinstance(loss, tuple) and len(loss) == 3:
        return custom(*loss)
    raise ValueError(
        "`loss` must be a loss name, a gantk.losses.Loss or a tuple (a, b, c) of callables; "
        f"got {loss!r}."
    )
