r"""Pointwise (functional) dynamics of a GAN loss at one point ``x``.

Write the discriminator objective (maximized by ``D``) and the generator objective as

``J(D, p_g) = ∫ p_d f₁(D) + ∫ p_g f₂(D)``,     ``I(D, p_g) = ∫ p_g f₃(D)``.

With a pointwise (identity-kernel) discriminator and a generator that redistributes mass, the
pair ``(D, p_g)`` at one point obeys

``Ḋ = p_d f₁′(D) + p_g f₂′(D)``,     ``ṗ_g = f₃(D) − f₃(D₀)``,

where ``D₀`` solves ``f₁′(D₀) + f₂′(D₀) = 0`` (the discriminator's value where
``p_g = p_d``). **Sign convention**: the discriminator *ascends* ``J``; the generator
*ascends* ``I`` — mass grows where ``f₃(D)`` exceeds its value ``f₃(D₀)`` at balance (so
``f₃`` is minus a generator loss). The rest point is ``(D₀, p_d)``; its Jacobian is

``[[p_d (f₁″ + f₂″)(D₀), f₂′(D₀)], [f₃′(D₀), 0]]``

(trace ``p_d (f₁″ + f₂″)(D₀)``, determinant ``−f₂′(D₀) f₃′(D₀)``).

gantk's ``(a, b, c)`` losses (:mod:`gantk.losses`: the discriminator *minimizes*
``mean a(f_fake) + mean b(f_real)``, the generator *minimizes* ``c``) map to
``f₁ = −b``, ``f₂ = −a``, ``f₃ = −c`` (:func:`from_gantk`).

==============  ========================  ========================  ==================
name            ``f₁(D)`` (real)           ``f₂(D)`` (fake)          ``f₃(D)``
==============  ========================  ========================  ==================
``gan``         ``log σ(D)``              ``log(1 − σ(D))``         ``−log(1 − σ(D))``
``ns_gan``      ``log σ(D)``              ``log(1 − σ(D))``         ``log σ(D)``
``wgan``        ``D``                     ``−D``                    ``D``
``lsgan``       ``−(D − 1)²``             ``−(D + 1)²``             ``−D²``
``stable``      ``−½ D²``                 ``D``                     ``−D``
==============  ========================  ========================  ==================

(``lsgan`` is gantk's :func:`gantk.losses.lsgan`.) The ``stable`` loss has rest point
``(1, p_d)``, Jacobian ``[[−p_d, 1], [−1, 0]]`` and the Lyapunov function
``V = ½[(D − 1)² + (p_g − p_d)²]`` with ``V̇ = −p_d (D − 1)² <= 0`` (:func:`lyapunov`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from gantk.analysis import _checks, _ode

__all__ = [
    "LOSSES",
    "VERDICTS",
    "PointwiseLoss",
    "RestPoint",
    "field",
    "flow",
    "flows",
    "from_gantk",
    "get",
    "jacobian",
    "lyapunov",
    "rest_point",
]

#: Possible stability verdicts of :func:`rest_point`.
VERDICTS = ("stable", "unstable", "marginal", "degenerate")


@dataclasses.dataclass(frozen=True)
class PointwiseLoss:
    """``(f₁, f₂, f₃)`` of the pointwise game (see the module docstring for the convention).

    Attributes:
        name: a label.
        f1: real-data term of the discriminator objective ``J`` (maximized).
        f2: fake-data term of ``J``.
        f3: generator objective density (maximized by the generator's mass).
    """

    name: str
    f1: Callable[[Array], Array]
    f2: Callable[[Array], Array]
    f3: Callable[[Array], Array]


def _log_sigmoid(d):
    return jax.nn.log_sigmoid(d)


def _log_one_minus_sigmoid(d):
    return jax.nn.log_sigmoid(-d)


def _neg_log_one_minus_sigmoid(d):
    return -jax.nn.log_sigmoid(-d)


def _identity(d):
    return d


def _neg(d):
    return -d


def _ls_real(d):
    return -((d - 1.0) ** 2)


def _ls_fake(d):
    return -((d + 1.0) ** 2)


def _neg_square(d):
    return -(d**2)


def _neg_half_square(d):
    return -0.5 * d**2


#: The named pointwise losses.
LOSSES: dict[str, PointwiseLoss] = {
    "gan": PointwiseLoss("gan", _log_sigmoid, _log_one_minus_sigmoid, _neg_log_one_minus_sigmoid),
    "ns_gan": PointwiseLoss("ns_gan", _log_sigmoid, _log_one_minus_sigmoid, _log_sigmoid),
    "wgan": PointwiseLoss("wgan", _identity, _neg, _identity),
    "lsgan": PointwiseLoss("lsgan", _ls_real, _ls_fake, _neg_square),
    "stable": PointwiseLoss("stable", _neg_half_square, _identity, _neg),
}


def from_gantk(loss: Any) -> PointwiseLoss:
    """The pointwise loss of a :mod:`gantk.losses` loss: ``f₁ = −b``, ``f₂ = −a``, ``f₃ = −c``.

    Args:
        loss: anything :func:`gantk.losses.get` accepts (``'ipm'``, ``'lsgan'``, ``'vanilla'``,
            ``'vanilla_saturating'``, ``'hinge'``, a ``Loss``, an ``(a, b, c)`` triple).

    Raises:
        ValueError: as :func:`gantk.losses.get` on an unknown loss.
    """
    from gantk import losses

    lo = losses.get(loss)
    name = getattr(lo, "name", None) or str(loss)
    return PointwiseLoss(
        f"gantk:{name}", lambda d: -lo.b(d), lambda d: -lo.a(d), lambda d: -lo.c(d)
    )


def get(loss: str | PointwiseLoss) -> PointwiseLoss:
    """A :class:`PointwiseLoss` from a name of :data:`LOSSES`, ``'gantk:NAME'`` or itself.

    Raises:
        ValueError: on an unknown name (listing the valid ones).
    """
    if isinstance(loss, PointwiseLoss):
        return loss
    if isinstance(loss, str) and loss.startswith("gantk:"):
        return from_gantk(loss[len("gantk:") :])
    _checks.choice(loss, "loss", [*LOSSES, "gantk:<name of gantk.losses>"])
    return LOSSES[loss]


def _d(f: Callable, n: int = 1) -> Callable:
    for _ in range(n):
        f = jax.grad(f)
    return f


def _p_d(p_d: Any) -> float:
    return _checks.real(p_d, "p_d", low=0.0, strict=True)


def field(
    loss: str | PointwiseLoss,
    z: Float[ArrayLike, "... 2"],
    p_d: float,
    D0: float | None = None,
) -> Float[Array, "... 2"]:
    """``(Ḋ, ṗ_g)`` at ``z = (D, p_g)`` of shape ``(..., 2)``; pure and jit-able.

    Args:
        loss: a :class:`PointwiseLoss` or name (see :func:`get`).
        z: states ``(D, p_g)``, shape ``(..., 2)``.
        p_d: data density at the point, ``> 0``.
        D0: the balance value ``D₀`` (default: from :func:`rest_point`).

    Raises:
        ValueError: on an unknown loss, ``p_d <= 0`` or ``z`` not ``(..., 2)``.
    """
    lo = get(loss)
    p_d = _p_d(p_d)
    if D0 is None:
        D0 = rest_point(lo, p_d).D
    z = jnp.asarray(z, jnp.result_type(float))
    if z.ndim == 0 or z.shape[-1] != 2:
        raise ValueError(f"`z` must have shape (..., 2) holding (D, p_g); got {z.shape}.")
    f1p, f2p = jnp.vectorize(_d(lo.f1)), jnp.vectorize(_d(lo.f2))
    D, p_g = z[..., 0], z[..., 1]
    dD = p_d * f1p(D) + p_g * f2p(D)
    dp = lo.f3(D) - lo.f3(jnp.asarray(D0, z.dtype))
    return jnp.stack([dD, dp], axis=-1)


def flow(
    loss: str | PointwiseLoss,
    z0: Float[ArrayLike, " 2"],
    p_d: float,
    ts: Float[ArrayLike, " k"],
    D0: float | None = None,
) -> Float[Array, "k 2"]:
    """Trajectory of ``(D, p_g)`` from ``z0`` saved at ``ts`` (diffrax Tsit5, adaptive).

    Raises:
        ValueError: as :func:`field`, or ``ts`` not strictly increasing.
    """
    lo = get(loss)
    p_d = _p_d(p_d)
    D0 = rest_point(lo, p_d).D if D0 is None else D0
    z0 = jnp.asarray(z0, jnp.result_type(float))
    if z0.shape != (2,):
        raise ValueError(f"`z0` must have shape (2,) holding (D, p_g); got {z0.shape}.")
    return _ode.solve(lambda z: field(lo, z, p_d, D0=D0), z0, ts, rtol=1e-7, atol=1e-9)


def flows(
    losses: Sequence[str | PointwiseLoss],
    z0: Float[ArrayLike, "*g 2"],
    p_d: float | Sequence[float],
    ts: Float[ArrayLike, " k"],
    D0: float | Sequence[float | None] | None = None,
) -> Float[Array, "g k 2"]:
    """:func:`flow` of several systems ``(loss, z0, p_d, D0)`` in one diffrax solve.

    One compilation instead of one per system. The step-size controller uses the max norm
    over the stacked states, so each system meets the tolerances of :func:`flow` at least as
    strictly as in its own solve: the results agree with :func:`flow` to the solver
    tolerance, not bit for bit.

    Args:
        losses: :class:`PointwiseLoss` instances or names, at least one (``g`` systems).
        z0: initial ``(D, p_g)``: shape ``(2,)`` for all, or ``(g, 2)``.
        p_d: data density ``> 0``, one for all or one per system.
        ts: increasing save times starting at ``ts[0]``.
        D0: balance values, one for all or one per system (None: from :func:`rest_point`).

    Returns:
        Trajectories, shape ``(g, len(ts), 2)``.

    Raises:
        ValueError: on an empty ``losses``, an unknown loss, ``p_d <= 0``, per-system
            sequences not of length ``g``, ``z0`` of another shape, or ``ts`` not strictly
            increasing.
    """
    los = [get(lo) for lo in losses]
    g = len(los)
    if g == 0:
        raise ValueError("`losses` must hold at least one loss; got none.")

    def per_system(value: Any, name: str) -> list[Any]:
        if isinstance(value, (list, tuple, np.ndarray)):
            if len(value) != g:
                raise ValueError(f"`{name}` must be one value or {g} values; got {len(value)}.")
            return list(value)
        return [value] * g

    p_ds = [_p_d(p) for p in per_system(p_d, "p_d")]
    D0s = [rest_point(lo, p).D if d is None else d
           for lo, p, d in zip(los, p_ds, per_system(D0, "D0"), strict=True)]
    z0 = jnp.asarray(z0, jnp.result_type(float))
    if z0.shape not in ((2,), (g, 2)):
        raise ValueError(f"`z0` must have shape (2,) or ({g}, 2) holding (D, p_g); got {z0.shape}.")

    def stacked(z: Array) -> Array:
        return jnp.stack([field(lo, z[i], p, D0=d)
                          for i, (lo, p, d) in enumerate(zip(los, p_ds, D0s, strict=True))])

    ys = _ode.solve(stacked, jnp.broadcast_to(z0, (g, 2)), ts, rtol=1e-7, atol=1e-9,
                    norm=_ode.max_norm)
    return jnp.swapaxes(ys, 0, 1)


@dataclasses.dataclass(frozen=True)
class RestPoint:
    """The rest point ``(D₀, p_d)`` of a pointwise game and its linear stability.

    Attributes:
        D: ``D₀`` (for a degenerate loss, the requested ``D0``).
        p_g: ``p_d``.
        jacobian: ``2×2`` Jacobian of ``(Ḋ, ṗ_g)`` at the rest point (numpy).
        eigenvalues: its eigenvalues (complex numpy ``(2,)``).
        verdict: ``'stable'`` (all real parts < −tol), ``'unstable'`` (one > tol),
            ``'marginal'`` (max real part within tol of 0: a centre or a zero eigenvalue), or
            ``'degenerate'`` (``f₁′ + f₂′ ≡ 0`` near ``D₀``: a line of rest points, e.g. WGAN).
    """

    D: float
    p_g: float
    jacobian: np.ndarray
    eigenvalues: np.ndarray
    verdict: str


def rest_point(
    loss: str | PointwiseLoss, p_d: float, *, D0: float = 0.0, tol: float = 1e-9
) -> RestPoint:
    """Solve ``f₁′(D₀) + f₂′(D₀) = 0`` by Newton from ``D0``; Jacobian and stability verdict.

    Args:
        loss: a :class:`PointwiseLoss` or name.
        p_d: data density ``> 0``.
        D0: Newton's starting point (and the reported ``D₀`` of a degenerate loss).
        tol: tolerance on real parts for the verdict, and on ``g = f₁′ + f₂′``.

    Raises:
        ValueError: on an unknown loss, ``p_d <= 0``, or if Newton does not converge.
    """
    lo = get(loss)
    p_d = _p_d(p_d)
    g = lambda d: _d(lo.f1)(d) + _d(lo.f2)(d)
    dg = jax.grad(g)
    d = jnp.asarray(float(D0), jnp.result_type(float))
    degenerate = False
    for _ in range(100):
        gv, dgv = float(g(d)), float(dg(d))
        if abs(gv) <= tol:
            break
        if dgv == 0.0:
            raise ValueError(f"Newton for f1'(D) + f2'(D) = 0 hit a flat point at D = {float(d)}.")
        d = d - gv / dgv
    else:
        raise ValueError(f"no rest point found for loss {lo.name!r} from D0 = {D0}.")
    # degenerate: g vanishes on a neighbourhood (probe a few nearby points)
    probes = [float(g(d + e)) for e in (-0.1, -0.01, 0.01, 0.1)]
    degenerate = max(abs(p) for p in probes) <= tol
    z = jnp.asarray([d, p_d])
    jac = np.asarray(jax.jacfwd(lambda s: field(lo, s, p_d, D0=d))(z))
    eig = np.linalg.eigvals(jac)
    re = float(np.max(eig.real))
    if degenerate:
        verdict = "degenerate"
    elif re < -tol:
        verdict = "stable"
    elif re > tol:
        verdict = "unstable"
    else:
        verdict = "marginal"
    return RestPoint(float(d), p_d, jac, eig, verdict)


def jacobian(loss: str | PointwiseLoss, p_d: float) -> np.ndarray:
    """Jacobian of ``(Ḋ, ṗ_g)`` at the rest point (shortcut for ``rest_point(...).jacobian``)."""
    return rest_point(loss, p_d).jacobian


def lyapunov(
    z: Float[ArrayLike, "... 2"], p_d: float
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """The ``stable`` loss's Lyapunov function and its derivative along the field.

    ``V = ½[(D − 1)² + (p_g − p_d)²]``; ``V̇ = ∇V · (Ḋ, ṗ_g)`` computed by autodiff through
    :func:`field` (equal to ``−p_d (D − 1)²`` in closed form).

    Returns:
        ``(V, V̇)``, each of shape ``z.shape[:-1]``.

    Raises:
        ValueError: on ``p_d <= 0`` or ``z`` not ``(..., 2)``.
    """
    p_d = _p_d(p_d)
    z = jnp.asarray(z, jnp.result_type(float))
    if z.ndim == 0 or z.shape[-1] != 2:
        raise ValueError(f"`z` must have shape (..., 2) holding (D, p_g); got {z.shape}.")

    def V(s: Array) -> Array:
        return 0.5 * ((s[0] - 1.0) ** 2 + (s[1] - p_d) ** 2)

    def Vdot(s: Array) -> Array:
        return jnp.dot(jax.grad(V)(s), field("stable", s, p_d, D0=1.0))

    flat = z.reshape(-1, 2)
    vals = jax.vmap(V)(flat).reshape(z.shape[:-1])
    dots = jax.vmap(Vdot)(flat).reshape(z.shape[:-1])
    return vals, dots
