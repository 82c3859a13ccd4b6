import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk.analysis import bilinear, dirac
from gantk.analysis import game_jacobian as gj


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _f(t):
    return -jax.nn.softplus(-t)  # f(t) = -log(1 + e^{-t})


def test_dirac_gan_through_the_game_machinery():
    # L(theta, psi) = f(psi theta) + f(0): generator minimizes L, discriminator minimizes -L
    gen_loss = lambda th, ps: _f(ps * th) + _f(0.0)
    disc_loss = lambda th, ps: -gen_loss(th, ps)
    field, z, _ = gj.game_field(gen_loss, disc_loss, jnp.array(0.0), jnp.array(0.0))
    np.testing.assert_allclose(field(jnp.array([0.3, -0.2])),
                               dirac.DiracGAN("gan")(jnp.array([0.3, -0.2])), atol=1e-14)
    for method in ("dense", "arnoldi"):
        s = gj.extreme_eigenvalues(field, z, method=method, num_matvecs=2)
        np.testing.assert_allclose(np.sort(s.eigenvalues.imag), [-0.5, 0.5], atol=1e-12)
        np.testing.assert_allclose(s.eigenvalues.real, 0.0, atol=1e-12)


def test_bilinear_arnoldi_extreme_eigenvalues():
    # A = U diag(s) V^T with three outlying singular values: Jacobian spectrum ±i s_k
    n, m = 150, 120
    U, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (n, m)))
    V, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (m, m)))
    s = jnp.concatenate([jnp.array([5.0, 4.0, 3.0]), jnp.linspace(0.0, 1.0, m - 3)])
    game = bilinear.BilinearGame(U @ jnp.diag(s) @ V.T)
    z = jnp.zeros(n + m)
    spec = gj.extreme_eigenvalues(game, z, max_dense=100, num_matvecs=60)
    assert spec.method == "arnoldi" and spec.n == n + m
    top = spec.eigenvalues[:6]
    np.testing.assert_allclose(np.sort(np.abs(top.imag))[::-1], [5, 5, 4, 4, 3, 3], atol=1e-8)
    np.testing.assert_allclose(top.real, 0.0, atol=1e-8)
    assert np.all(spec.residuals[:6] < 1e-8)


@pytest.mark.slow
def test_arnoldi_matches_dense_on_small_gan():
    gl, dl, gp, dp, _ = gj.gan_game(jax.random.key(0), n=16, gen_width=6, disc_width=6)
    field, z, unravel = gj.game_field(gl, dl, gp, dp)
    assert 100 < z.shape[0] < 400
    dense = gj.extreme_eigenvalues(field, z)
    assert dense.method == "dense"
    arn = gj.extreme_eigenvalues(field, z, method="arnoldi", num_matvecs=60)
    conv = arn.converged(1e-8)
    assert len(conv) >= 3
    # the largest-modulus converged Ritz value is the dense spectral radius, and every
    # well-converged Ritz value is a dense eigenvalue (this Jacobian is rank-deficient, so the
    # Krylov space becomes invariant early: later Ritz values are junk with large residuals)
    assert abs(conv[0] - dense.eigenvalues[0]) < 1e-8
    dist = [np.abs(dense.eigenvalues - c).min() for c in conv[:3]]
    assert max(dist) < 1e-6


def test_bad_input():
    field = lambda z: -z
    with pytest.raises(ValueError, match="method"):
        gj.extreme_eigenvalues(field, jnp.zeros(3), method="lanczos")
    with pytest.raises(ValueError, match="max_dense"):
        gj.extreme_eigenvalues(field, jnp.zeros(30), method="dense", max_dense=10)
    with pytest.raises(ValueError, match="num_matvecs"):
        gj.extreme_eigenvalues(field, jnp.zeros(3), method="arnoldi", num_matvecs=5)
    with pytest.raises(ValueError, match="flat"):
        gj.jacobian_operator(field, jnp.zeros((2, 2)))
