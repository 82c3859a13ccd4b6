import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk.analysis import pointwise as pw


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("p_d", [0.3, 1.0, 3.0])
def test_stable_loss_rest_point_eigenvalues_lyapunov(p_d):
    r = pw.rest_point("stable", p_d)
    assert r.D == pytest.approx(1.0) and r.p_g == p_d
    np.testing.assert_allclose(r.jacobian, [[-p_d, 1.0], [-1.0, 0.0]], atol=1e-12)
    ref = np.roots([1.0, p_d, 1.0])  # lambda^2 + p_d lambda + 1 = 0
    np.testing.assert_allclose(np.sort_complex(r.eigenvalues), np.sort_complex(ref), atol=1e-12)
    assert r.verdict == "stable"
    z = jax.random.uniform(jax.random.key(0), (2000, 2), minval=-3.0, maxval=4.0)
    V, Vdot = pw.lyapunov(z, p_d)
    assert float(jnp.max(Vdot)) <= 0.0
    np.testing.assert_allclose(Vdot, -p_d * (z[:, 0] - 1.0) ** 2, atol=1e-12)
    np.testing.assert_allclose(pw.field("stable", jnp.array([1.0, p_d]), p_d), [0.0, 0.0])


def test_gan_family_closed_forms():
    p_d = 0.8
    for name in ("gan", "ns_gan", "gantk:vanilla", "gantk:vanilla_saturating"):
        r = pw.rest_point(name, p_d)
        # f1'' + f2'' = -1/2 at 0, f2'(0) = -1/2, f3'(0) = 1/2
        np.testing.assert_allclose(r.jacobian, [[-p_d / 2, -0.5], [0.5, 0.0]], atol=1e-12)
        assert r.D == pytest.approx(0.0) and r.verdict == "stable"


def test_wgan_lsgan_hinge_verdicts():
    for name in ("wgan", "gantk:ipm", "gantk:hinge"):
        r = pw.rest_point(name, 1.0)
        assert r.verdict == "degenerate"
        np.testing.assert_allclose(np.sort(r.eigenvalues.imag), [-1.0, 1.0], atol=1e-12)
        np.testing.assert_allclose(r.eigenvalues.real, 0.0, atol=1e-12)
    r = pw.rest_point("gantk:lsgan", 0.5)
    np.testing.assert_allclose(r.jacobian, [[-2.0, -2.0], [0.0, 0.0]], atol=1e-12)
    assert r.verdict == "marginal"  # f3'(0) = 0: a zero eigenvalue
    np.testing.assert_allclose(pw.rest_point("lsgan", 0.5).jacobian, r.jacobian)


def test_field_matches_gantk_mapping():
    z = jnp.array([[0.3, 0.2], [-1.0, 2.0]])
    np.testing.assert_allclose(pw.field("ns_gan", z, 0.5), pw.field("gantk:vanilla", z, 0.5),
                               atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="loss.*stable"):
        pw.rest_point("dcgan", 1.0)
    with pytest.raises(ValueError, match="p_d"):
        pw.rest_point("gan", 0.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        pw.field("gan", jnp.zeros(3), 1.0)


def test_stable_flow_decreases_lyapunov_and_converges():
    p_d = 1.0
    ts = jnp.linspace(0.0, 40.0, 200)
    traj = pw.flow("stable", [3.0, 2.5], p_d, ts)
    V, _ = pw.lyapunov(traj, p_d)
    assert bool(jnp.all(jnp.diff(V) <= 1e-12))
    # eigenvalues -1/2 ± i sqrt(3)/2: V decays like exp(-t) up to oscillation
    np.testing.assert_allclose(traj[-1], [1.0, p_d], atol=1e-6)


def test_joint_flows_match_single_flow_and_converge():
    # one stacked solve: three 'stable' systems (closed-form rest point (1, p_d), Lyapunov V
    # non-increasing) and 'gan'; the gan entry agrees with its own solve to the tolerance
    ts = jnp.linspace(0.0, 40.0, 200)
    p_ds = [0.3, 1.0, 3.0, 1.0]
    z0 = jnp.array([[3.0, 2.3], [3.0, 3.0], [3.0, 5.0], [1.5, 2.0]])
    trajs = pw.flows(["stable"] * 3 + ["gan"], z0, p_ds, ts)
    assert trajs.shape == (4, 200, 2)
    for traj, p_d in zip(trajs[:3], p_ds[:3], strict=True):
        V, _ = pw.lyapunov(traj, p_d)
        assert bool(jnp.all(jnp.diff(V) <= 1e-12))
    # slowest decay: p_d = 0.3, eigenvalues -0.15 ± 0.99i: |z - z*| ~ 2.8 e^{-0.15 t} ~ 7e-3
    np.testing.assert_allclose(trajs[:3, -1], [[1.0, p] for p in p_ds[:3]], atol=2e-2)
    np.testing.assert_allclose(trajs[3], pw.flow("gan", z0[3], 1.0, ts), atol=1e-5)
    with pytest.raises(ValueError, match="p_d"):
        pw.flows(["gan", "stable"], z0[:2], [1.0], ts)
    with pytest.raises(ValueError, match="losses"):
        pw.flows([], z0[0], 1.0, ts)
