r"""The Dirac-GAN of Mescheder, Geiger & Nowozin (*Which Training Methods for GANs do actually
Converge?*, ICML 2018, Section 2 and Appendix).

Generator ``p_θ = δ_θ``, discriminator ``D_ψ(x) = ψ·x``, data ``δ_0``. With
``f(t) = −log(1 + e^{−t})`` (so ``f′(0) = ½``, ``f″(0) = −¼``) the GAN objective is
``L(θ, ψ) = f(ψθ) + f(0)``; the generator descends it and the discriminator ascends it, so
the (simultaneous-gradient) vector field on ``x = (θ, ψ)`` is

``v(θ, ψ) = (−ψ f′(ψθ), θ f′(ψθ))``,

with the unique equilibrium ``(0, 0)``. The variants follow the authors' reference code
(``notebooks/diracgan/gans.py`` of GAN_stability):

==================  ====================================================================
variant             field ``v = (v_θ, v_ψ)``
==================  ====================================================================
``gan``             ``(−ψ f′(ψθ), θ f′(ψθ))``
``ns_gan``          ``(−ψ f′(−ψθ), θ f′(ψθ))`` (non-saturating generator loss)
``wgan``            ``(−ψ, θ)``; discrete steps clip ``ψ`` to ``[−clip, clip]``, the flow
                    is the projected field (``v_ψ = 0`` on the boundary, pointing out)
``wgan_gp``         ``(−ψ, θ − reg·(|ψ| − target)·sign ψ)`` (WGAN-GP, Gulrajani et al.)
``instance_noise``  ``E_ε[...]`` of the ``gan`` objective with fake ``θ + σε`` and real
                    ``σε``, ``ε ~ N(0, 1)`` (Gauss–Hermite quadrature, not Monte Carlo)
``gan_gp``          ``gan`` plus ``−reg·ψ`` on ``v_ψ`` (R1 penalty ``reg/2·‖∇D‖²``)
``ns_gan_gp``       ``ns_gan`` plus ``−reg·ψ`` on ``v_ψ``
``consensus``       ``v − reg·∇(½‖v‖²) = v − reg·J_vᵀ v`` (consensus optimization,
                    Mescheder et al., NIPS 2017), ``v`` of ``gan``
==================  ====================================================================

Jacobians at the equilibrium (computed by :func:`jax.jacfwd` in :func:`jacobian`; the closed
forms of :func:`equilibrium_eigenvalues` are the paper's): ``gan``/``ns_gan`` ``±i f′(0)``;
``wgan`` ``±i``; ``gan_gp``/``ns_gan_gp`` ``−γ/2 ± √(γ²/4 − f′(0)²)``; ``instance_noise``
``f″(0)σ² ± √(f″(0)²σ⁴ − f′(0)²)``; ``consensus`` ``−γ f′(0)² ± i f′(0)``. ``wgan_gp`` is not
differentiable at ``ψ = 0`` (the term ``reg·target·sign ψ`` jumps): both raise
:class:`NotDifferentiableError` there instead of returning a number.

Discrete time (:func:`update_map`, :func:`spectral_radius`): simultaneous GD
``x ← x + h·v(x)`` has update Jacobian ``I + hJ`` (eigenvalues ``1 ± i h f′(0)`` for ``gan``:
modulus ``√(1 + h² f′(0)²) > 1``, never converges); alternating GD (generator first, then the
discriminator at the new ``θ``, as in the reference code) has, for ``gan``,
``λ = 1 − a²/2 ± √((1 − a²/2)² − 1)``, ``a = h f′(0)``: on the unit circle for ``a ≤ 2``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from gantk.analysis import _checks, _ode

__all__ = [
    "F1",
    "F2",
    "METHODS",
    "VARIANTS",
    "DiracGAN",
    "NotDifferentiableError",
    "alternating_gd_eigenvalues",
    "equilibrium_eigenvalues",
    "flow",
    "flows",
    "jacobian",
    "spectral_radius",
    "stability_region",
    "trajectory",
    "update_map",
]

#: Valid Dirac-GAN variants.
VARIANTS: tuple[str, ...] = (
    "gan", "ns_gan", "wgan", "wgan_gp", "instance_noise", "gan_gp", "ns_gan_gp", "consensus",
)
#: Valid discrete-time methods.
METHODS: tuple[str, ...] = ("simultaneous", "alternating")
#: ``f′(0)`` and ``f″(0)`` of ``f(t) = −log(1 + e^{−t})``.
F1, F2 = 0.5, -0.25

_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()  # E[g(ε)] ≈ Σ w_i g(ε_i), ε ~ N(0, 1)


class NotDifferentiableError(ValueError):
    """The field is not differentiable at the requested point (WGAN-GP at ``ψ = 0``)."""


def _fp(t: Array) -> Array:
    """``f′(t) = sigmoid(−t)`` for ``f(t) = −log(1 + e^{−t})``."""
    return jax.nn.sigmoid(-t)


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


class DiracGAN(eqx.Module):
    """A Dirac-GAN variant: a pytree whose numeric parameters may be traced (vmap over them).

    Calling it evaluates the vector field ``v(x)``, ``x = (θ, ψ)`` of shape ``(..., 2)``.

    Attributes:
        variant: one of :data:`VARIANTS` (static).
        reg: penalty weight ``γ >= 0`` (``gan_gp``, ``ns_gan_gp``, ``consensus``, ``wgan_gp``).
        sigma: instance-noise standard deviation ``σ >= 0``.
        clip: WGAN weight clipping bound ``> 0``.
        target: WGAN-GP target gradient norm ``>= 0``.

    Raises:
        ValueError: on an unknown ``variant`` (listing the valid ones) or a negative
            ``reg``/``sigma``/``target`` or non-positive ``clip`` (checked when concrete).
    """

    variant: str = eqx.field(static=True, default="gan")
    reg: float | Array = 0.3
    sigma: float | Array = 1.0
    clip: float | Array = 0.3
    target: float | Array = 0.3

    def __check_init__(self) -> None:
        _checks.choice(self.variant, "variant", VARIANTS)
        for name in ("reg", "sigma", "target"):
            value = getattr(self, name)
            if _is_concrete(value) and np.ndim(value) == 0:
                _checks.real(value, name, low=0.0)
        if _is_concrete(self.clip) and np.ndim(self.clip) == 0:
            _checks.real(self.clip, "clip", low=0.0, strict=True)

    def __call__(self, x: Float[ArrayLike, "... 2"]) -> Float[Array, "... 2"]:
        """The vector field ``v(θ, ψ)`` at ``x`` of shape ``(..., 2)``."""
        x = _as_state(x, "x")
        return jnp.vectorize(self._field, signature="(2)->(2)")(x)

    def _field(self, x: Array) -> Array:
        theta, psi = x[0], x[1]
        v = self.variant
        if v in ("gan", "gan_gp", "consensus"):
            out = jnp.stack([-psi * _fp(psi * theta), theta * _fp(psi * theta)])
        elif v in ("ns_gan", "ns_gan_gp"):
            out = jnp.stack([-psi * _fp(-psi * theta), theta * _fp(psi * theta)])
        elif v == "wgan":
            out = jnp.stack([-psi, theta])
        elif v == "wgan_gp":
            out = jnp.stack(
                [-psi, theta - self.reg * (jnp.abs(psi) - self.target) * jnp.sign(psi)]
            )
        else:  # instance_noise
            eps = jnp.asarray(_GH_NODES, x.dtype) * self.sigma
            w = jnp.asarray(_GH_WEIGHTS, x.dtype)
            fake = theta + eps
            v_theta = -psi * jnp.sum(w * _fp(psi * fake))
            v_psi = jnp.sum(w * (fake * _fp(psi * fake) - eps * _fp(-eps * psi)))
            out = jnp.stack([v_theta, v_psi])
        if v in ("gan_gp", "ns_gan_gp"):
            out = out.at[1].add(-self.reg * psi)
        if v == "consensus":
            base = DiracGAN("gan")._field
            vx, pullback = jax.vjp(base, x)
            out = vx - self.reg * pullback(vx)[0]
        return out

    def project(self, x: Float[ArrayLike, "... 2"]) -> Float[Array, "... 2"]:
        """WGAN weight clipping ``ψ ← clip(ψ, −clip, clip)``; the identity for other variants."""
        x = jnp.asarray(x)
        if self.variant != "wgan":
            return x
        return x.at[..., 1].set(jnp.clip(x[..., 1], -self.clip, self.clip))

    def flow_field(self, x: Float[ArrayLike, "... 2"]) -> Float[Array, "... 2"]:
        """The continuous-time field: ``v``, projected on ``|ψ| <= clip`` for ``wgan``."""
        v = self(x)
        if self.variant != "wgan":
            return v
        x = jnp.asarray(x)
        out = (jnp.abs(x[..., 1]) >= self.clip) & (v[..., 1] * x[..., 1] > 0)
        return v.at[..., 1].set(jnp.where(out, 0.0, v[..., 1]))


def _as_state(x: Any, name: str) -> Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim == 0 or x.shape[-1] != 2:
        raise ValueError(f"`{name}` must have shape (..., 2) holding (theta, psi); got {x.shape}.")
    return x


def _game(game: DiracGAN | str) -> DiracGAN:
    if isinstance(game, str):
        return DiracGAN(game)
    if not isinstance(game, DiracGAN):
        raise ValueError(f"`game` must be a DiracGAN or one of {list(VARIANTS)}; got {game!r}.")
    return game


def _check_wgan_gp(game: DiracGAN, x: Array) -> None:
    if game.variant == "wgan_gp" and _is_concrete(x) and bool(jnp.any(x[..., 1] == 0)):
        raise NotDifferentiableError(
            "the WGAN-GP Dirac field is not differentiable at psi = 0 (the term "
            "reg*target*sign(psi) jumps by 2*reg*target), so its Jacobian there — in "
            "particular at the equilibrium (0, 0) — does not exist; evaluate it at psi != 0."
        )


def jacobian(game: DiracGAN | str, x: Float[ArrayLike, " 2"] = (0.0, 0.0)) -> Float[Array, "2 2"]:
    """Jacobian ``∂v/∂x`` of the Dirac-GAN field at ``x`` (default: the equilibrium), by
    :func:`jax.jacfwd`.

    Args:
        game: a :class:`DiracGAN` or a variant name.
        x: the point ``(θ, ψ)``, shape ``(2,)``.

    Returns:
        ``[[∂v_θ/∂θ, ∂v_θ/∂ψ], [∂v_ψ/∂θ, ∂v_ψ/∂ψ]]``.

    Raises:
        NotDifferentiableError: for ``wgan_gp`` at ``ψ = 0``.
        ValueError: on an unknown variant or ``x`` not of shape ``(2,)``.
    """
    game = _game(game)
    x = _as_state(x, "x")
    if x.shape != (2,):
        raise ValueError(f"`x` must have shape (2,); got {x.shape}.")
    _check_wgan_gp(game, x)
    return jax.jacfwd(game._field)(x)


def equilibrium_eigenvalues(game: DiracGAN | str) -> Array:
    """Closed-form eigenvalues of the Jacobian at ``(0, 0)`` (Mescheder et al., 2018).

    Returns:
        Complex array ``(2,)``, ``[λ₊, λ₋]`` (the ``+√`` root first).

    Raises:
        NotDifferentiableError: for ``wgan_gp``.
    """
    game = _game(game)
    v = game.variant
    c = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64
    if v == "wgan_gp":
        _check_wgan_gp(game, jnp.zeros(2))
    if v in ("gan", "ns_gan"):
        mean, disc = 0.0, -(F1**2)
    elif v == "wgan":
        mean, disc = 0.0, -1.0
    elif v in ("gan_gp", "ns_gan_gp"):
        mean, disc = -game.reg / 2, game.reg**2 / 4 - F1**2
    elif v == "instance_noise":
        mean, disc = F2 * game.sigma**2, F2**2 * game.sigma**4 - F1**2
    else:  # consensus
        mean, disc = -game.reg * F1**2, -(F1**2)
    root = jnp.sqrt(jnp.asarray(disc, c))
    return jnp.stack([mean + root, mean - root]).astype(c)


def alternating_gd_eigenvalues(a: ArrayLike) -> Array:
    """``λ = 1 − a²/2 ± √((1 − a²/2)² − 1)``: alternating GD on the GAN Dirac game, ``a = h f′(0)``.

    Returns:
        Complex array ``(..., 2)``; both on the unit circle for ``0 <= a <= 2``.
    """
    a = jnp.asarray(a)
    c = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64
    m = 1 - a**2 / 2
    root = jnp.sqrt((m**2 - 1).astype(c))
    return jnp.stack([m + root, m - root], axis=-1)


def _steps(h: Any, h_d: Any) -> tuple[Any, Any]:
    if _is_concrete(h) and np.ndim(h) == 0:
        _checks.real(h, "h", low=0.0)
    if h_d is None:
        h_d = h
    elif _is_concrete(h_d) and np.ndim(h_d) == 0:
        _checks.real(h_d, "h_d", low=0.0)
    return h, h_d


def update_map(
    game: DiracGAN | str, h: float | Array, method: str = "simultaneous", h_d: Any = None
) -> Callable[[Array], Array]:
    """One step of discrete-time training, ``x_{k+1} = F(x_k)``, ``x = (θ, ψ)`` of shape ``(2,)``.

    ``'simultaneous'``: ``θ ← θ + h v_θ(θ, ψ)``, ``ψ ← ψ + h_d v_ψ(θ, ψ)``;
    ``'alternating'``: generator first, then ``ψ ← ψ + h_d v_ψ(θ_new, ψ)``. WGAN clips
    ``ψ`` after each update (as the reference code).

    Args:
        game: a :class:`DiracGAN` or a variant name.
        h: generator step size ``>= 0``.
        method: one of :data:`METHODS`.
        h_d: discriminator step size (default ``h``).

    Raises:
        ValueError: on an unknown variant or method, or a negative step size.
    """
    game = _game(game)
    _checks.choice(method, "method", METHODS)
    h, h_d = _steps(h, h_d)

    def simultaneous(x: Array) -> Array:
        v = game._field(x)
        return game.project(x + jnp.stack([h * v[0], h_d * v[1]]))

    def alternating(x: Array) -> Array:
        x = game.project(x.at[0].add(h * game._field(x)[0]))
        return game.project(x.at[1].add(h_d * game._field(x)[1]))

    return simultaneous if method == "simultaneous" else alternating


def trajectory(
    game: DiracGAN | str,
    x0: Float[ArrayLike, " 2"],
    h: float | Array,
    n_steps: int,
    method: str = "simultaneous",
    h_d: Any = None,
) -> Float[Array, "k 2"]:
    """Iterates ``x_0, F(x_0), …, F^{n}(x_0)`` of :func:`update_map` (a :func:`jax.lax.scan`).

    Returns:
        Array ``(n_steps + 1, 2)``; the first row is ``x0`` (clipped for ``wgan``).

    Raises:
        ValueError: as :func:`update_map`, or ``x0`` not of shape ``(2,)``, or a negative
            ``n_steps``.
    """
    game = _game(game)
    step = update_map(game, h, method, h_d)
    x0 = _as_state(x0, "x0")
    if x0.shape != (2,):
        raise ValueError(f"`x0` must have shape (2,); got {x0.shape}.")
    n_steps = _checks.positive_int(n_steps, "n_steps", low=0)
    x0 = game.project(x0)
    _, xs = jax.lax.scan(lambda x, _: (step(x), step(x)), x0, None, length=n_steps)
    return jnp.concatenate([x0[None], xs])


def flow(
    game: DiracGAN | str,
    x0: Float[ArrayLike, " 2"],
    ts: Float[ArrayLike, " k"],
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> Float[Array, "k 2"]:
    """Continuous-time flow ``ẋ = v(x)`` (projected for ``wgan``) by diffrax (Tsit5, adaptive).

    Args:
        game: a :class:`DiracGAN` or a variant name.
        x0: initial ``(θ, ψ)``, shape ``(2,)``.
        ts: increasing save times starting at ``ts[0]`` (the initial time).
        rtol: step-size controller tolerances.
        atol: see ``rtol``.

    Returns:
        ``x(ts)``, shape ``(k, 2)``.

    Raises:
        ValueError: on a bad ``game``, ``x0`` not ``(2,)``, or ``ts`` not 1-D increasing.
    """
    game = _game(game)
    x0 = _as_state(x0, "x0")
    if x0.shape != (2,):
        raise ValueError(f"`x0` must have shape (2,); got {x0.shape}.")
    return _ode.solve(game.flow_field, game.project(x0), ts, rtol=rtol, atol=atol)


def flows(
    games: Sequence[DiracGAN | str],
    x0: Float[ArrayLike, "*g 2"],
    ts: Float[ArrayLike, " k"],
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> Float[Array, "g k 2"]:
    """:func:`flow` of several variants at once: one diffrax solve of the stacked system.

    One compilation instead of one per game (each variant is different code). The step-size
    controller uses the max norm over all components, so every game meets ``rtol``/``atol``
    as strictly as in its own :func:`flow` (which uses the RMS norm of its two components):
    the results agree with :func:`flow` to the solver tolerance, not bit for bit.

    Args:
        games: :class:`DiracGAN` instances or variant names, at least one.
        x0: initial ``(θ, ψ)``: shape ``(2,)`` shared by all games, or ``(len(games), 2)``.
        ts: increasing save times starting at ``ts[0]`` (the initial time).
        rtol: step-size controller tolerances.
        atol: see ``rtol``.

    Returns:
        ``x(ts)`` per game, shape ``(len(games), k, 2)``.

    Raises:
        ValueError: on an empty ``games`` or a bad game, ``x0`` of another shape, or ``ts``
            not 1-D increasing.
    """
    games = [_game(g) for g in games]
    if not games:
        raise ValueError("`games` must hold at least one DiracGAN or variant name; got none.")
    x0 = _as_state(x0, "x0")
    if x0.shape not in ((2,), (len(games), 2)):
        raise ValueError(f"`x0` must have shape (2,) or ({len(games)}, 2); got {x0.shape}.")
    x0 = jnp.broadcast_to(x0, (len(games), 2))
    y0 = jnp.stack([g.project(x) for g, x in zip(games, x0, strict=True)])

    def field(y: Array) -> Array:
        return jnp.stack([g.flow_field(y[i]) for i, g in enumerate(games)])

    ys = _ode.solve(field, y0, ts, rtol=rtol, atol=atol, norm=_ode.max_norm)
    return jnp.swapaxes(ys, 0, 1)


def _eig2(m: Array) -> Array:
    """Eigenvalues of a real 2×2 matrix (closed form; jit/vmap-friendly on every backend)."""
    c = jnp.complex128 if m.dtype == jnp.float64 else jnp.complex64
    half_tr = (m[0, 0] + m[1, 1]) / 2
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    root = jnp.sqrt((half_tr**2 - det).astype(c))
    return jnp.stack([half_tr + root, half_tr - root])


def spectral_radius(
    game: DiracGAN | str,
    h: float | Array,
    method: str = "simultaneous",
    h_d: Any = None,
) -> Array:
    """Spectral radius of the Jacobian of :func:`update_map` at the equilibrium ``(0, 0)``.

    Below 1: training converges locally; above 1: it diverges; equal to 1: undecided at
    first order (e.g. alternating GD on ``gan``). Pure: vmap over ``h`` or over a
    :class:`DiracGAN` built with a traced ``reg``/``sigma``.

    Raises:
        NotDifferentiableError: for ``wgan_gp`` (the update is not differentiable at ψ = 0).
        ValueError: as :func:`update_map`.
    """
    game = _game(game)
    _check_wgan_gp(game, jnp.zeros(2))
    step = update_map(game, h, method, h_d)
    dtype = jnp.result_type(float)
    jac = jax.jacfwd(step)(jnp.zeros(2, dtype))
    return jnp.max(jnp.abs(_eig2(jac)))


def stability_region(
    variant: str,
    hs: Float[ArrayLike, " a"],
    regs: Float[ArrayLike, " b"],
    method: str = "simultaneous",
    param: str = "reg",
) -> Float[Array, "b a"]:
    """Spectral radius of the update map over a grid of step sizes and regularization weights.

    Args:
        variant: one of :data:`VARIANTS` (the interesting ones: ``gan_gp``, ``ns_gan_gp``,
            ``consensus``, ``instance_noise`` with ``param='sigma'``).
        hs: step sizes ``>= 0``, shape ``(a,)``.
        regs: values of ``param`` (``>= 0``), shape ``(b,)``.
        method: one of :data:`METHODS`.
        param: the :class:`DiracGAN` field swept (``'reg'`` or ``'sigma'``).

    Returns:
        ``rho[j, i]`` for ``(hs[i], regs[j])``, shape ``(b, a)``; ``< 1`` is the stable region.

    Raises:
        ValueError: on a bad variant/method/param or negative grid values.
    """
    _checks.choice(variant, "variant", VARIANTS)
    _checks.choice(method, "method", METHODS)
    _checks.choice(param, "param", ("reg", "sigma"))
    hs, regs = jnp.asarray(hs, float), jnp.asarray(regs, float)
    for name, arr in (("hs", hs), ("regs", regs)):
        if arr.ndim != 1 or bool(jnp.any(arr < 0)):
            raise ValueError(f"`{name}` must be a 1-D array of values >= 0; got {arr}.")
    if variant == "wgan_gp":
        _check_wgan_gp(DiracGAN("wgan_gp"), jnp.zeros(2))

    def rho(h: Array, r: Array) -> Array:
        return spectral_radius(DiracGAN(variant, **{param: r}), h, method)

    return jax.jit(jax.vmap(jax.vmap(rho, (0, None)), (None, 0)))(hs, regs)
