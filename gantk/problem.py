r"""The function-space discriminator problem (what a solver of :mod:`gantk.solvers` solves).

Franceschi et al., *A Neural Tangent Kernel Perspective of GANs* (ICML 2022), Sec. 4, eq. (6):
in the NTK regime the discriminator ``f`` trained by gradient flow for time ``tau`` on the
train set ``T = [fake; real]`` is

.. math:: f_\tau(x) = f_0(x) + k(x, T)\,\alpha_\tau, \qquad
          \frac{d\alpha_t}{dt} = -\nabla_f L(f_0(T) + K\alpha_t), \quad \alpha_0 = 0,

with ``K = k(T, T)`` and ``L(f) = sum_i w_i a(f(x_i)) + sum_j v_j b(f(y_j))`` (uniform weights
``w_i = 1/n``, ``v_j = 1/m`` give the paper's means). A :class:`Problem` holds everything
that defines this problem — kernel, loss, fake and real points, their weights and ``tau``
— like ott-jax's ``LinearProblem``; a solver turns it into ``alpha`` (a
:class:`gantk.solution.Discriminator`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from gantk import _linalg
from gantk import losses as _losses
from gantk._validate import as_points, check_int, is_concrete

__all__ = ["DEFAULT_BLOCK_SIZE", "Problem"]

#: Default tile side of kernel evaluations against the train set.
DEFAULT_BLOCK_SIZE = 1024


class Problem(eqx.Module):
    """The NTK-regime discriminator problem on ``T = [fake; real]`` (a pytree).

    Arrays (``fake``, ``real``, the weights, ``time``) are leaves; ``loss``, ``kernel``,
    ``f0``, ``block_size``, ``infinite`` and ``differentiate_train`` are static.

    Attributes:
        fake: fake particles ``X``, shape ``(n, d)``.
        real: real points ``Y``, shape ``(m, d)``.
        fake_weights: weights ``w`` of the fake points, shape ``(n,)``, summing to 1.
        real_weights: weights ``v`` of the real points, shape ``(m,)``, summing to 1.
        time: discriminator training time ``tau > 0`` (scalar, same dtype as the points;
            may be ``inf`` for quadratic losses).
        loss: the :class:`gantk.losses.Loss` ``(a, b, c)``.
        kernel: ``k(x1 (n1, d), x2 (n2, d)) -> (n1, n2)``, symmetric positive semi-definite.
        f0: initial discriminator ``f0(points (q, d)) -> (q,)``, or None for ``f_0 = 0``.
        block_size: tile side of kernel evaluations against the train set.
        infinite: whether ``time`` is (concretely) ``inf``.
        differentiate_train: whether gradients flow through the train set and the solve.
    """

    fake: Float[Array, "n d"]
    real: Float[Array, "m d"]
    fake_weights: Float[Array, " n"]
    real_weights: Float[Array, " m"]
    time: Float[Array, ""]
    loss: _losses.Loss = eqx.field(static=True)
    kernel: Callable = eqx.field(static=True)
    f0: Callable | None = eqx.field(static=True)
    block_size: int = eqx.field(static=True)
    infinite: bool = eqx.field(static=True)
    differentiate_train: bool = eqx.field(static=True)

    def __init__(
        self,
        loss: str | _losses.Loss | tuple,
        kernel: Callable[[Array, Array], Array],
        fake: Float[Array, "n d"],
        real: Float[Array, "m d"],
        time: float | Array,
        *,
        fake_weights: Float[Array, " n"] | None = None,
        real_weights: Float[Array, " m"] | None = None,
        f0: Callable[[Array], Array] | None = None,
        block_size: int | str = "auto",
        differentiate_train: bool = False,
    ) -> None:
        """Validate and hold the problem.

        Args:
            loss: a loss name of :mod:`gantk.losses`, a :class:`~gantk.losses.Loss` or a
                triple ``(a, b, c)``.
            kernel: ``k(x1, x2) -> (n1, n2)``.
            fake: ``(n, d)`` fake particles.
            real: ``(m, d)`` real points (same ``d``).
            time: ``tau > 0``; ``inf`` only for quadratic (LSGAN-type) losses.
            fake_weights: ``(n,)`` non-negative weights (normalised to sum 1); default
                uniform ``1/n``.
            real_weights: ``(m,)`` likewise; default ``1/m``.
            f0: initial discriminator, or None.
            block_size: tile side, an integer ``>= 1`` or ``'auto'``
                (:data:`DEFAULT_BLOCK_SIZE`).
            differentiate_train: if False, ``fake``, ``real`` and the weights are constants
                for autodiff (GAN(TK)²'s convention).

        Raises:
            ValueError: on an unknown loss; a non-callable ``kernel``/``f0``; points not
                ``(n, d)``, of different ``d`` or non-finite; weights of the wrong shape,
                negative, non-finite or summing to 0; ``time`` not a positive scalar (or
                infinite for a non-quadratic loss); ``block_size`` not an integer ``>= 1``.
        """
        loss = _losses.get(loss)
        if not callable(kernel):
            raise ValueError(
                f"`kernel` must be a callable k(x1, x2) -> (n1, n2); got {kernel!r}."
            )
        if f0 is not None and not callable(f0):
            raise ValueError(f"`f0` must be None or a callable f0(points) -> (q,); got {f0!r}.")
        with jax.ensure_compile_time_eval():  # check concrete closed-over arrays under jit
            fake = as_points(fake, "fake")
            real = as_points(real, "real", dim=fake.shape[1], dim_name="fake")
        dtype = jnp.result_type(fake, real)
        fake, real = fake.astype(dtype), real.astype(dtype)
        time, infinite = _check_time(time, loss.kind)
        if block_size == "auto":
            block_size = DEFAULT_BLOCK_SIZE
        try:
            block_size = check_int(block_size, "block_size", 1)
        except ValueError as err:
            raise ValueError(
                f"`block_size` must be an integer >= 1 or 'auto'; got {block_size!r}."
            ) from err
        fw = _weights(fake_weights, "fake_weights", fake.shape[0], dtype)
        rw = _weights(real_weights, "real_weights", real.shape[0], dtype)
        if not differentiate_train:
            fake, real, fw, rw = jax.lax.stop_gradient((fake, real, fw, rw))
        self.fake, self.real, self.fake_weights, self.real_weights = fake, real, fw, rw
        self.time = jnp.asarray(time, dtype)
        self.loss, self.kernel, self.f0 = loss, kernel, f0
        self.block_size, self.infinite = block_size, infinite
        self.differentiate_train = bool(differentiate_train)

    # ----- derived quantities (all shapes in terms of N = n + m)
    @property
    def n(self) -> int:
        """Number of fake points ``n``."""
        return self.fake.shape[0]

    @property
    def dtype(self) -> Any:
        """Floating dtype of the points."""
        return self.fake.dtype

    @property
    def train(self) -> Float[Array, "N d"]:
        """The train set ``T = [fake; real]``, shape ``(n + m, d)``."""
        return jnp.concatenate([self.fake, self.real], axis=0)

    @property
    def weights(self) -> Float[Array, " N"]:
        """Loss weights on ``T``, ``[fake_weights; real_weights]``, shape ``(n + m,)``."""
        return jnp.concatenate([self.fake_weights, self.real_weights])

    def gram(self) -> Float[Array, "N N"]:
        """Dense train Gram matrix ``K = k(T, T)``, shape ``(N, N)``, in tiles."""
        return _linalg.kernel_matrix(self.kernel, self.train, self.block_size)

    def gram_operator(self, materialize: bool) -> Callable[[Array], Array]:
        """``v (N,) -> K v (N,)``: dense (``materialize``) or re-evaluating kernel tiles."""
        dense = self.gram() if materialize else None
        return _linalg.kernel_operator(self.kernel, self.train, self.block_size, dense)

    def f0_train(self) -> Float[Array, " N"]:
        """``f_0(T)``, shape ``(N,)`` (zeros when ``f0`` is None)."""
        if self.f0 is None:
            return jnp.zeros(self.train.shape[0], self.dtype)
        out = self.f0(self.train).astype(self.dtype)
        return out if self.differentiate_train else jax.lax.stop_gradient(out)

    def loss_gradient(self, f: Float[Array, " N"]) -> Float[Array, " N"]:
        r"""``\nabla_f L`` at discriminator values ``f`` on ``T``: ``w * a'(f_fake)``,
        ``v * b'(f_real)``, shape ``(N,)`` (eq. (6) of Franceschi et al.)."""
        return self.weights * self.pointwise_loss_gradient(f)

    def pointwise_loss_gradient(self, f: Float[Array, " N"]) -> Float[Array, " N"]:
        """Unweighted ``(a'(f_fake), b'(f_real))``, shape ``(N,)``."""
        n = self.n
        _, vjp_a = jax.vjp(self.loss.a, f[:n])
        _, vjp_b = jax.vjp(self.loss.b, f[n:])
        return jnp.concatenate([vjp_a(jnp.ones_like(f[:n]))[0], vjp_b(jnp.ones_like(f[n:]))[0]])

    def targets(self) -> Float[Array, " N"]:
        """Regression targets ``y_T`` of a quadratic loss: ``u`` on fake, ``v`` on real.

        Raises:
            ValueError: if the loss is not quadratic.
        """
        if self.loss.targets is None:
            raise ValueError(f"loss {self.loss.name!r} (kind {self.loss.kind!r}) has no targets.")
        u, v = self.loss.targets
        m = self.real.shape[0]
        return jnp.concatenate([jnp.full(self.n, u, self.dtype), jnp.full(m, v, self.dtype)])


def _weights(w: Any, name: str, size: int, dtype: Any) -> jax.Array:
    """Validate ``w`` (or build uniform weights) and normalise it to sum 1."""
    if w is None:
        return jnp.full(size, 1.0 / size, dtype)
    w = jnp.asarray(w, dtype)
    if w.shape != (size,):
        raise ValueError(f"`{name}` must have shape ({size},); got {w.shape}.")
    if is_concrete(w):
        host = np.asarray(w)
        if not np.all(np.isfinite(host)) or np.any(host < 0) or host.sum() <= 0:
            raise ValueError(
                f"`{name}` must be finite, non-negative and not all zero; got {host}."
            )
    return w / jnp.sum(w)


def _check_time(time: Any, kind: str) -> tuple[Any, bool]:
    """Validate ``time``; return it and whether it is (concretely) infinite."""
    if not is_concrete(time):
        return time, False
    try:
        arr = time if isinstance(time, jax.Array) else np.asarray(time, dtype=float)
        if arr.shape != ():
            raise ValueError
        v = float(arr)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`time` must be a positive real scalar; got {time!r}.") from err
    if math.isnan(v) or v <= 0:
        raise ValueError(f"`time` must be positive (tau > 0); got {v}.")
    if math.isinf(v) and kind != "quadratic":
        raise ValueError(
            "`time` = inf is only allowed for quadratic (LSGAN-type) losses, whose "
            f"discriminator converges; got inf with a {kind!r} loss."
        )
    return time, math.isinf(v)
