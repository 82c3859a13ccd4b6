r"""The Jacobian of a whole game's simultaneous-gradient field, and its extreme eigenvalues.

For a two-player game where the generator (parameters ``θ``) minimizes ``L_G(θ, ψ)`` and the
discriminator (``ψ``) minimizes ``L_D(θ, ψ)``, simultaneous gradient descent follows

``v(θ, ψ) = −(∇_θ L_G, ∇_ψ L_D)``,

and the game Jacobian ``J = ∂v/∂(θ, ψ)`` decides local convergence (Mescheder et al., NIPS
2017 / ICML 2018): the continuous flow is locally stable when every eigenvalue has a negative
real part; eigenvalues with large imaginary parts and small real parts mean oscillation. This
is the sign convention of :mod:`gantk.analysis.dirac` (whose field is this ``v``).

``J`` is never materialized above ``max_dense`` parameters (default 2048: a 32 MiB float64
matrix). Products ``J u`` are JVPs (:func:`jax.linearize` of the field; each is one
forward-over-reverse pass). Extreme eigenvalues then come from
:func:`extreme_eigenvalues`: a dense ``eig`` at or below ``max_dense``, otherwise the Arnoldi
iteration of `matfree <https://github.com/pnkraemer/matfree>`_ (``matfree.decomp.hessenberg``,
full reorthogonalization), whose Ritz values approximate the exterior of the spectrum; each
comes with the residual estimate ``‖r‖·|e_mᵀ y|`` so unconverged ones can be discarded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float
from matfree import decomp

from gantk.analysis import _checks

__all__ = [
    "MAX_DENSE",
    "Spectrum",
    "extreme_eigenvalues",
    "gan_game",
    "game_field",
    "jacobian_operator",
]

#: Largest parameter count for which a dense Jacobian is built (float64: 32 MiB).
MAX_DENSE = 2048

Params = Any


def game_field(
    gen_loss: Callable[[Params, Params], Array],
    disc_loss: Callable[[Params, Params], Array],
    gen_params: Params,
    disc_params: Params,
) -> tuple[Callable[[Array], Array], Float[Array, " n"], Callable[[Array], tuple[Params, Params]]]:
    """The flat simultaneous-gradient field ``v(z) = −(∇_θ L_G, ∇_ψ L_D)``.

    Args:
        gen_loss: ``L_G(gen_params, disc_params) -> scalar``, minimized by the generator.
        disc_loss: ``L_D(gen_params, disc_params) -> scalar``, minimized by the discriminator.
        gen_params: pytrees at which to flatten.
        disc_params: see ``gen_params``.

    Returns:
        ``(field, z, unravel)``: ``field(z) -> (n,)`` on flat parameters ``z = (θ, ψ)`` of
        shape ``(n,)``, the flat point ``z``, and ``unravel(z) -> (gen_params, disc_params)``.

    Raises:
        ValueError: if the losses are not callable.
    """
    if not callable(gen_loss) or not callable(disc_loss):
        raise ValueError("`gen_loss` and `disc_loss` must be callables (params_g, params_d).")
    z, unravel = ravel_pytree((gen_params, disc_params))

    def field(z: Array) -> Array:
        g, d = unravel(z)
        vg = jax.grad(gen_loss, argnums=0)(g, d)
        vd = jax.grad(disc_loss, argnums=1)(g, d)
        return -ravel_pytree((vg, vd))[0]

    return field, z, unravel


def jacobian_operator(
    field: Callable[[Array], Array], z: Float[Array, " n"]
) -> Callable[[Array], Array]:
    """``u ↦ J u`` with ``J = ∂field/∂z`` at ``z`` (one :func:`jax.linearize`, then JVPs).

    Raises:
        ValueError: if ``z`` is not 1-D or ``field(z)`` does not have the shape of ``z``.
    """
    z = jnp.asarray(z)
    _check_field(field, z)
    return jax.jit(_linearize(field, z))


def _check_field(field: Callable[[Array], Array], z: Array) -> None:
    """ValueError unless ``z`` is 1-D and ``field(z)`` (traced abstractly) has its shape."""
    if z.ndim != 1:
        raise ValueError(f"`z` must be a flat parameter vector (n,); got shape {z.shape}.")
    out = jax.eval_shape(field, z)
    if out.shape != z.shape:
        raise ValueError(f"`field(z)` must have the shape of z {z.shape}; got {out.shape}.")


# ``jax.linearize`` runs inside a compiled function (eagerly it dispatches the field's
# forward-over-reverse pass op by op, which dominates on small games) and returns the linear
# map as a ``jax.tree_util.Partial`` (its residuals are leaves). filter_jit caches on the field
# (a closure by identity, an equinox Module by structure) and on the Partial's linear program,
# so repeated calls on one game (e.g. at initialization and after training) compile once.
@eqx.filter_jit
def _linearize(field: Callable[[Array], Array], z: Array) -> Callable[[Array], Array]:
    return jax.linearize(field, z)[1]


@eqx.filter_jit
def _dense_jacobian(matvec: Callable[[Array], Array], eye: Array) -> Array:
    return jax.vmap(matvec, out_axes=1)(eye)


@eqx.filter_jit
def _arnoldi(matvec: Callable[[Array], Array], v0: Array, m: int) -> Any:
    return decomp.hessenberg(m, reortho="full")(matvec, v0)


class Spectrum(NamedTuple):
    """Eigenvalue estimates of a game Jacobian.

    Attributes:
        eigenvalues: complex ``(k,)``, sorted by decreasing modulus.
        residuals: ``(k,)`` residual estimates (0 for the dense method).
        method: ``'dense'`` or ``'arnoldi'``.
        n: the operator dimension.

    Arnoldi's Ritz values are only meaningful where their residual is small: when the Krylov
    space becomes invariant early (a rank-deficient Jacobian, e.g. dead ReLU units) the
    remaining ones are junk with large residuals. Use :meth:`converged`.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    method: str
    n: int

    def converged(self, tol: float = 1e-6) -> np.ndarray:
        """Eigenvalues whose residual estimate is below ``tol · max|λ|``."""
        scale = max(float(np.abs(self.eigenvalues).max(initial=0.0)), 1e-300)
        return self.eigenvalues[self.residuals <= tol * scale]

    def max_real(self, tol: float = 1e-6) -> float:
        """Largest real part among the converged eigenvalues (> 0: locally unstable flow)."""
        return float(self.converged(tol).real.max())


def extreme_eigenvalues(
    field: Callable[[Array], Array],
    z: Float[Array, " n"],
    *,
    num_matvecs: int = 80,
    max_dense: int = MAX_DENSE,
    method: str = "auto",
    key: Array | None = None,
) -> Spectrum:
    """Eigenvalues of the game Jacobian ``∂field/∂z`` at ``z``: all (dense) or the extreme
    ones (Arnoldi).

    Args:
        field: flat field ``(n,) -> (n,)`` (e.g. from :func:`game_field`).
        z: the point, shape ``(n,)``.
        num_matvecs: Arnoldi steps ``m`` (Krylov dimension; ``1 <= m <= n``).
        max_dense: ``'auto'`` uses dense ``eig`` when ``n <= max_dense``, else Arnoldi.
        method: ``'auto'``, ``'dense'`` or ``'arnoldi'``.
        key: PRNG key for Arnoldi's start vector (default ``PRNGKey(0)``).

    Returns:
        A :class:`Spectrum`. Arnoldi's Ritz values approximate the exterior of the spectrum;
        the largest-modulus and extreme-real-part ones converge first (check
        :meth:`Spectrum.converged`).

    Raises:
        ValueError: on an unknown ``method``, ``'dense'`` with ``n > max_dense``, or
            ``num_matvecs`` outside ``[1, n]``.
    """
    _checks.choice(method, "method", ("auto", "dense", "arnoldi"))
    max_dense = _checks.positive_int(max_dense, "max_dense")
    z = jnp.asarray(z)
    _check_field(field, z)
    n = int(z.shape[0])
    matvec = _linearize(field, z)
    if method == "auto":
        method = "dense" if n <= max_dense else "arnoldi"
    if method == "dense":
        if n > max_dense:
            raise ValueError(
                f"method='dense' would materialize a {n}x{n} Jacobian (> max_dense={max_dense}); "
                "use method='arnoldi' or raise max_dense."
            )
        J = _dense_jacobian(matvec, jnp.eye(n, dtype=z.dtype))
        ev = np.linalg.eigvals(np.asarray(J))
        order = np.argsort(-np.abs(ev), kind="stable")
        return Spectrum(ev[order], np.zeros(n), "dense", n)
    m = _checks.positive_int(num_matvecs, "num_matvecs")
    if m > n:
        raise ValueError(f"`num_matvecs` must be <= n = {n}; got {m}.")
    key = jax.random.PRNGKey(0) if key is None else key
    v0 = jax.random.normal(key, (n,), z.dtype)
    result = _arnoldi(matvec, v0, m)
    H = np.asarray(result.J_small)
    beta = float(jnp.linalg.norm(result.residual))
    ev, Y = np.linalg.eig(H)
    res = beta * np.abs(Y[-1, :])
    order = np.argsort(-np.abs(ev), kind="stable")
    return Spectrum(ev[order], res[order], "arnoldi", n)


def gan_game(
    key: Array,
    *,
    n: int = 256,
    latent_dim: int = 2,
    gen_width: int = 32,
    disc_width: int = 32,
    loss: Any = "vanilla",
) -> tuple[Callable[[Params, Params], Array], Callable[[Params, Params], Array], Params, Params,
           Array]:
    """A small flax GAN on the 8-Gaussians data: losses and initial parameters.

    Generator :class:`gantk.nets.MLPGenerator` (``depth=2``), discriminator
    :class:`gantk.nets.MLP` (ReLU, ``depth=2``, NTK parameterization), fixed latent batch
    and real batch of ``n`` points; losses from :mod:`gantk.losses`:
    ``L_D = mean a(D(G(ζ))) + mean b(D(x))`` and ``L_G = mean c(D(G(ζ)))``. With the
    defaults the game has 1,314 generator + 1,153 discriminator = 2,467 parameters.

    Args:
        key: PRNG key (data, latents and both initializations).
        n: batch size of latents and real points.
        latent_dim: sizes.
        gen_width: see ``latent_dim``.
        disc_width: see ``latent_dim``.
        loss: a :mod:`gantk.losses` name or loss.

    Returns:
        ``(gen_loss, disc_loss, gen_params, disc_params, real)``.

    Raises:
        ValueError: on non-positive sizes or an unknown loss.
    """
    from gantk import data, losses, nets
    from gantk.architectures import MLPSpec

    n = _checks.positive_int(n, "n")
    lo = losses.get(loss)
    dtype = jnp.result_type(float)
    k_data, k_lat, k_g, k_d = jax.random.split(key, 4)
    _, real = data.load("eight_gaussians", n_fake=n, n_real=n,
                        seed=int(jax.random.randint(k_data, (), 0, 2**30)), dtype=dtype)
    zeta = jax.random.normal(k_lat, (n, latent_dim), dtype)
    gen = nets.MLPGenerator(latent_dim=latent_dim, out_dim=2, width=gen_width, depth=2)
    spec = MLPSpec("relu", depth=2, width=disc_width, b_std=1.0)
    disc = nets.MLP(spec, disc_width)
    # one compiled initialization (eager flax init dispatches every op separately)
    gp, dp = jax.jit(lambda kg, kd: (gen.init(kg, zeta)["params"], disc.init(kd, real)["params"]))(
        k_g, k_d
    )

    def D(d: Params, x: Array) -> Array:
        return disc.apply({"params": d}, x)

    def G(g: Params) -> Array:
        return gen.apply({"params": g}, zeta)

    def gen_loss(g: Params, d: Params) -> Array:
        return jnp.mean(lo.c(D(d, G(g))))

    def disc_loss(g: Params, d: Params) -> Array:
        return jnp.mean(lo.a(D(d, G(g)))) + jnp.mean(lo.b(D(d, real)))

    return gen_loss, disc_loss, gp, dp, real
