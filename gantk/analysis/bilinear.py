r"""The bilinear game ``V(x, y) = xᵀ A y`` (Goodfellow, *NIPS 2016 Tutorial: GANs*, §8.2;
the scalar ``V = xy`` is the classic example of non-convergent simultaneous gradient descent).

``x`` descends ``V`` and ``y`` ascends it: ``ẋ = −∂V/∂x = −A y``, ``ẏ = ∂V/∂y = Aᵀ x``. The
game Jacobian ``[[0, −A], [Aᵀ, 0]]`` is antisymmetric with eigenvalues ``±i σ_k(A)`` (plus
zeros when ``A`` is not square), so the flow conserves ``‖x‖² + ‖y‖²``: for ``A = 1``,
``x(t) = x₀ cos t − y₀ sin t``, ``y(t) = x₀ sin t + y₀ cos t`` (:func:`closed_form`).

Discrete methods (step ``h``; each mode of ``A`` with singular value ``s`` sees ``a = h s``),
with their per-step contraction factor (:func:`theoretical_rate`):

- ``simultaneous``: ``z ← z + h v(z)``; rate ``√(1 + a²) > 1`` (spirals out).
- ``alternating``: ``x ← x − h A y``, then ``y ← y + h Aᵀ x_new``; rate ``1`` for ``a <= 2``.
- ``extragradient`` (Korpelevich, 1976): ``z ← z + h v(z + h v(z))``; rate ``√(1 − a² + a⁴)``.
- ``optimistic`` (Daskalakis et al., ICLR 2018): ``z ← z + 2h v(z_k) − h v(z_{k−1})``; rate
  the largest modulus of the roots of ``μ² − (1 + 2ia)μ + ia = 0``.

Alternating
GD conserves the modified energy ``x² + y² − a x y`` (scalar game), hence stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from gantk.analysis import _checks, _ode

__all__ = [
    "METHODS",
    "BilinearGame",
    "closed_form",
    "flow",
    "measured_rate",
    "theoretical_rate",
    "trajectory",
]

#: Valid discrete-time methods.
METHODS: tuple[str, ...] = ("simultaneous", "alternating", "extragradient", "optimistic")


class BilinearGame:
    """``V(x, y) = xᵀ A y`` with ``x ∈ R^n`` (minimizing) and ``y ∈ R^m`` (maximizing).

    The state is ``z = concat(x, y)`` of shape ``(n + m,)``.

    Args:
        A: the coupling matrix ``(n, m)``; a scalar means the ``1×1`` game ``V = A·xy``.

    Raises:
        ValueError: if ``A`` is not a finite scalar or 2-D array.
    """

    def __init__(self, A: Float[ArrayLike, "n m"] = 1.0) -> None:
        A = jnp.asarray(A, jnp.result_type(float))
        if A.ndim == 0:
            A = A.reshape(1, 1)
        if A.ndim != 2 or not bool(jnp.all(jnp.isfinite(A))):
            raise ValueError(f"`A` must be a finite scalar or 2-D array; got shape {A.shape}.")
        self.A = A
        self.n, self.m = A.shape

    @property
    def dim(self) -> int:
        """State dimension ``n + m``."""
        return self.n + self.m

    def __call__(self, z: Float[Array, " n_plus_m"]) -> Float[Array, " n_plus_m"]:
        """The field ``v(z) = (−A y, Aᵀ x)``."""
        x, y = z[: self.n], z[self.n :]
        return jnp.concatenate([-self.A @ y, self.A.T @ x])

    def jacobian(self) -> Float[Array, "k k"]:
        """The (constant) game Jacobian ``[[0, −A], [Aᵀ, 0]]``."""
        zn, zm = jnp.zeros((self.n, self.n)), jnp.zeros((self.m, self.m))
        return jnp.block([[zn, -self.A], [self.A.T, zm]])

    def eigenvalues(self) -> Array:
        """Exact Jacobian eigenvalues ``±i σ_k(A)`` and ``|n − m|`` zeros, complex ``(n + m,)``."""
        s = jnp.linalg.svd(self.A, compute_uv=False)
        zeros = jnp.zeros(abs(self.n - self.m))
        return jnp.concatenate([1j * s, -1j * s, zeros.astype(complex)])

    def _state(self, z0: ArrayLike) -> Array:
        z0 = jnp.asarray(z0, self.A.dtype)
        if z0.shape != (self.dim,):
            raise ValueError(
                f"`z0` must have shape ({self.dim},) = (n + m,) for A of shape "
                f"{tuple(self.A.shape)}; got {z0.shape}."
            )
        return z0


def _game(game: BilinearGame | None) -> BilinearGame:
    if game is None:
        return BilinearGame()
    if not isinstance(game, BilinearGame):
        raise ValueError(f"`game` must be a BilinearGame or None; got {type(game).__name__}.")
    return game


def closed_form(z0: Float[ArrayLike, " 2"], t: Float[ArrayLike, " k"]) -> Float[Array, "k 2"]:
    """Exact flow of the scalar game ``V = xy``: ``(x₀cos t − y₀sin t, x₀sin t + y₀cos t)``.

    Raises:
        ValueError: if ``z0`` is not of shape ``(2,)``.
    """
    z0 = jnp.asarray(z0, jnp.result_type(float))
    if z0.shape != (2,):
        raise ValueError(f"`z0` must have shape (2,); got {z0.shape}.")
    t = jnp.asarray(t, z0.dtype)[:, None]
    x0, y0 = z0
    return jnp.concatenate(
        [x0 * jnp.cos(t) - y0 * jnp.sin(t), x0 * jnp.sin(t) + y0 * jnp.cos(t)], axis=1
    )


def flow(
    z0: Float[ArrayLike, " k"],
    ts: Float[ArrayLike, " s"],
    game: BilinearGame | None = None,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> Float[Array, "s k"]:
    """Continuous-time flow ``ż = v(z)`` by diffrax (Tsit5, adaptive), saved at ``ts``.

    Raises:
        ValueError: on ``z0`` of the wrong shape or ``ts`` not strictly increasing.
    """
    game = _game(game)
    z0 = game._state(z0)
    return _ode.solve(game, z0, ts, rtol=rtol, atol=atol)


def _step(game: BilinearGame, method: str, h: float) -> Callable:
    n = game.n

    def simultaneous(carry):
        z, prev_v = carry
        v = game(z)
        return z + h * v, v

    def alternating(carry):
        z, prev_v = carry
        x = z[:n] - h * (game.A @ z[n:])
        y = z[n:] + h * (game.A.T @ x)
        return jnp.concatenate([x, y]), prev_v

    def extragradient(carry):
        z, prev_v = carry
        return z + h * game(z + h * game(z)), prev_v

    def optimistic(carry):
        z, prev_v = carry
        v = game(z)
        return z + 2 * h * v - h * prev_v, v

    return dict(
        simultaneous=simultaneous,
        alternating=alternating,
        extragradient=extragradient,
        optimistic=optimistic,
    )[method]


def trajectory(
    z0: Float[ArrayLike, " k"],
    h: float,
    n_steps: int,
    method: str = "simultaneous",
    game: BilinearGame | None = None,
) -> Float[Array, "s k"]:
    """Iterates of a discrete method (see the module table), by :func:`jax.lax.scan`.

    Optimistic GD starts with ``v(z_{−1}) = v(z_0)`` (its first step is a plain GD step).

    Args:
        z0: initial state ``(n + m,)`` (``(x, y)`` for the scalar game).
        h: step size ``>= 0``.
        n_steps: number of steps ``>= 0``.
        method: one of :data:`METHODS`.
        game: the game (default: scalar ``V = xy``).

    Returns:
        Array ``(n_steps + 1, n + m)`` starting with ``z0``.

    Raises:
        ValueError: on an unknown method, a negative ``h`` or ``n_steps``, or a bad ``z0``.
    """
    game = _game(game)
    _checks.choice(method, "method", METHODS)
    h = _checks.real(h, "h", low=0.0)
    n_steps = _checks.positive_int(n_steps, "n_steps", low=0)
    z0 = game._state(z0)
    step = _step(game, method, h)
    _, zs = jax.lax.scan(lambda c, _: (step(c), step(c)[0]), (z0, game(z0)), None,
                         length=n_steps)
    return jnp.concatenate([z0[None], zs])


def theoretical_rate(method: str, h: float, s: float = 1.0) -> float:
    """Asymptotic per-step growth factor ``‖z_{k+1}‖/‖z_k‖`` of a mode with singular value ``s``.

    Returns:
        ``simultaneous``: ``√(1 + a²)``; ``alternating``: ``1`` for ``a <= 2`` (else the
        larger eigenvalue modulus); ``extragradient``: ``√(1 − a² + a⁴)``; ``optimistic``: the
        largest root modulus of ``μ² − (1 + 2ia)μ + ia = 0``, with ``a = h s``.

    Raises:
        ValueError: on an unknown method or a negative ``h`` or ``s``.
    """
    _checks.choice(method, "method", METHODS)
    a = _checks.real(h, "h", low=0.0) * _checks.real(s, "s", low=0.0)
    if method == "simultaneous":
        return float(np.sqrt(1 + a**2))
    if method == "extragradient":
        return float(np.sqrt(1 - a**2 + a**4))
    if method == "alternating":
        m = 1 - a**2 / 2
        return float(np.max(np.abs(np.roots([1.0, -2 * m, 1.0]))))
    return float(np.max(np.abs(np.roots([1.0, -(1 + 2j * a), 1j * a]))))


def measured_rate(zs: Float[ArrayLike, "s k"], burn_in: float = 0.5) -> float:
    """Geometric-mean growth factor of ``‖z_k‖`` after the first ``burn_in`` fraction of steps.

    A log-linear least-squares fit of ``log ‖z_k‖`` against ``k``, returned as ``exp(slope)``.

    Raises:
        ValueError: if fewer than 3 iterates remain after the burn-in, or any is zero.
    """
    r = np.linalg.norm(np.asarray(zs), axis=-1)
    r = r[int(len(r) * _checks.real(burn_in, "burn_in", low=0.0)) :]
    if r.size < 3 or np.any(r <= 0) or not np.all(np.isfinite(r)):
        raise ValueError(f"need >= 3 finite non-zero iterates after burn-in; got {r.size}.")
    slope = np.polyfit(np.arange(r.size), np.log(r), 1)[0]
    return float(np.exp(slope))
