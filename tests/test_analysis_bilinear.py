import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk.analysis import bilinear as b


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def test_flow_matches_circle():
    z0 = jnp.array([1.0, -0.5])
    ts = jnp.linspace(0.0, 4 * np.pi, 60)
    np.testing.assert_allclose(b.flow(z0, ts), b.closed_form(z0, ts), atol=1e-8)


def test_simultaneous_radius_grows_by_sqrt_1_plus_h2():
    for h in (0.05, 0.3):
        zs = b.trajectory([1.0, 0.5], h, 100, "simultaneous")
        r = np.linalg.norm(zs, axis=1)
        np.testing.assert_allclose(r[1:] / r[:-1], np.sqrt(1 + h**2), rtol=1e-12)


def test_alternating_bounded_with_conserved_energy():
    h = 0.5
    zs = np.asarray(b.trajectory([1.0, 0.5], h, 5000, "alternating"))
    x, y = zs[:, 0], zs[:, 1]
    q = x**2 + y**2 - h * x * y
    np.testing.assert_allclose(q, q[0], rtol=1e-9)
    r = np.linalg.norm(zs, axis=1)
    assert r.max() <= r[0] * np.sqrt((1 + h / 2) / (1 - h / 2)) + 1e-12


@pytest.mark.parametrize("method", ["extragradient", "optimistic", "simultaneous"])
@pytest.mark.parametrize("h", [0.1, 0.4])
def test_measured_rates_match_theory(method, h):
    zs = b.trajectory([1.0, 0.5], h, 400, method)
    assert b.measured_rate(zs) == pytest.approx(b.theoretical_rate(method, h), rel=1e-6)


def test_extragradient_and_optimistic_converge():
    for method in ("extragradient", "optimistic"):
        assert b.theoretical_rate(method, 0.3) < 1.0
        zs = b.trajectory([1.0, 0.5], 0.3, 500, method)
        assert float(jnp.linalg.norm(zs[-1])) < 1e-3
    assert b.theoretical_rate("extragradient", 0.3) == pytest.approx(np.sqrt(1 - 0.09 + 0.0081))


def test_matrix_game_spectrum():
    A = jax.random.normal(jax.random.key(0), (3, 5))
    game = b.BilinearGame(A)
    ev = np.linalg.eigvals(np.asarray(game.jacobian()))
    ref = np.asarray(game.eigenvalues())
    key = lambda e: np.lexsort((e.imag.round(8), e.real.round(8)))
    np.testing.assert_allclose(ev[key(ev)], ref[key(ref)], atol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="method.*extragradient"):
        b.trajectory([1.0, 0.0], 0.1, 3, "newton")
    with pytest.raises(ValueError, match="`h`"):
        b.trajectory([1.0, 0.0], -0.1, 3)
    with pytest.raises(ValueError, match=r"z0.*\(5,\)"):
        b.trajectory([1.0, 0.0], 0.1, 3, game=b.BilinearGame(jnp.ones((2, 3))))
    with pytest.raises(ValueError, match="A"):
        b.BilinearGame(jnp.ones((2, 2, 2)))
