import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk.analysis import dirac as d


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _sorted(ev):
    ev = np.asarray(ev)
    return ev[np.lexsort((ev.imag, ev.real))]


@pytest.mark.parametrize(
    "variant, params",
    [
        ("gan", {}),
        ("ns_gan", {}),
        ("wgan", {}),
        ("gan_gp", {"reg": 0.3}),
        ("gan_gp", {"reg": 1.5}),  # over-damped: two real eigenvalues
        ("ns_gan_gp", {"reg": 0.7}),
        ("instance_noise", {"sigma": 0.7}),
        ("instance_noise", {"sigma": 2.0}),  # real eigenvalues
        ("consensus", {"reg": 0.5}),
    ],
)
def test_equilibrium_jacobian_matches_closed_form(variant, params):
    game = d.DiracGAN(variant, **params)
    numeric = np.linalg.eigvals(np.asarray(d.jacobian(game)))
    np.testing.assert_allclose(_sorted(numeric), _sorted(d.equilibrium_eigenvalues(game)),
                               atol=1e-10)


def test_closed_forms_explicit():
    np.testing.assert_allclose(_sorted(d.equilibrium_eigenvalues("gan")), [-0.5j, 0.5j])
    np.testing.assert_allclose(_sorted(d.equilibrium_eigenvalues("wgan")), [-1j, 1j])
    # gradient penalty gamma = 0.6: -0.3 ± sqrt(0.09 - 0.25)
    ev = d.equilibrium_eigenvalues(d.DiracGAN("gan_gp", reg=0.6))
    np.testing.assert_allclose(_sorted(ev), [-0.3 - 0.4j, -0.3 + 0.4j], atol=1e-12)


def test_wgan_gp_not_differentiable_at_equilibrium():
    with pytest.raises(d.NotDifferentiableError, match="not differentiable at psi = 0"):
        d.jacobian("wgan_gp")
    with pytest.raises(d.NotDifferentiableError):
        d.spectral_radius("wgan_gp", 0.1)
    with pytest.raises(d.NotDifferentiableError):
        d.equilibrium_eigenvalues("wgan_gp")
    # away from psi = 0 it is differentiable: d v_psi / d psi = -reg there
    J = d.jacobian(d.DiracGAN("wgan_gp", reg=2.0), [0.1, 0.2])
    np.testing.assert_allclose(J, [[0.0, -1.0], [1.0, -2.0]])


def test_gan_flow_conserves_radius_and_simgd_spirals_out():
    ts = jnp.linspace(0.0, 30.0, 31)
    xs = d.flow("gan", [1.0, 0.5], ts)
    np.testing.assert_allclose(np.linalg.norm(xs, axis=1), np.sqrt(1.25), rtol=1e-7)
    h = 0.2
    traj = d.trajectory("gan", [0.01, 0.0], h, 200)
    r = np.linalg.norm(traj, axis=1)
    # near the equilibrium the radius grows by |1 + i h f'(0)| per step
    np.testing.assert_allclose(r[1:20] / r[:19], np.sqrt(1 + (h * d.F1) ** 2), rtol=1e-4)
    assert r[-1] > 1.5 * r[0]


def test_discrete_spectral_radius_closed_forms():
    for h in (0.01, 0.5, 3.0):
        assert float(d.spectral_radius("gan", h)) == pytest.approx(np.sqrt(1 + (h / 2) ** 2))
        lam = np.asarray(d.alternating_gd_eigenvalues(h * d.F1))
        assert float(d.spectral_radius("gan", h, "alternating")) == pytest.approx(
            np.abs(lam).max(), abs=1e-7)
    # alternating GD: unit circle for a <= 2, outside for a > 2
    a = np.array([0.3, 1.0, 2.0, 2.5])
    mod = np.abs(np.asarray(d.alternating_gd_eigenvalues(a))).max(axis=1)
    np.testing.assert_allclose(mod[:3], 1.0, atol=1e-6)
    assert mod[3] > 1.5
    # and the jacobian of the alternating update matches the formula's eigenvalues
    h = 1.0
    J = jax.jacfwd(d.update_map("gan", h, "alternating"))(jnp.zeros(2))
    np.testing.assert_allclose(_sorted(np.linalg.eigvals(np.asarray(J))),
                               _sorted(d.alternating_gd_eigenvalues(h * d.F1)), atol=1e-12)


def test_stability_region_gradient_penalty():
    hs = jnp.array([0.1, 1.0, 5.0])
    regs = jnp.array([0.0, 0.5, 1.0])
    rho = np.asarray(d.stability_region("gan_gp", hs, regs))
    assert rho.shape == (3, 3)
    assert np.all(rho[0] > 1.0)  # no penalty: never converges
    # small steps with a penalty converge; moduli |1 + h*lambda| with closed-form lambda
    for j, g in enumerate(regs):
        lam = np.asarray(d.equilibrium_eigenvalues(d.DiracGAN("gan_gp", reg=float(g))))
        np.testing.assert_allclose(rho[j], np.abs(1 + np.asarray(hs)[:, None] * lam).max(1),
                                   rtol=1e-10)
    assert rho[1, 0] < 1.0 and rho[2, 2] > 1.0  # h = 5 with gamma = 1 overshoots


def test_wgan_clipping_keeps_psi_in_box():
    traj = d.trajectory(d.DiracGAN("wgan", clip=0.3), [1.0, 0.0], 0.1, 300, "alternating")
    assert float(jnp.max(jnp.abs(traj[:, 1]))) <= 0.3 + 1e-12
    xs = d.flow(d.DiracGAN("wgan", clip=0.3), [1.0, 0.0], jnp.linspace(0, 20, 41))
    assert float(jnp.max(jnp.abs(xs[:, 1]))) <= 0.3 + 1e-5


def test_joint_flows_match_closed_form_and_single_flow():
    # one stacked solve of three variants: gan conserves the radius, wgan stays in the clip
    # box, consensus agrees with its own solve to the solver tolerance (max vs RMS norm)
    ts = jnp.linspace(0.0, 20.0, 41)
    x0 = jnp.array([[1.0, 0.5], [1.0, 0.0], [1.5, 0.5]])
    xs = d.flows(["gan", d.DiracGAN("wgan", clip=0.3), d.DiracGAN("consensus", reg=0.3)], x0, ts)
    assert xs.shape == (3, 41, 2)
    np.testing.assert_allclose(np.linalg.norm(xs[0], axis=1), np.sqrt(1.25), rtol=1e-7)
    assert float(jnp.max(jnp.abs(xs[1, :, 1]))) <= 0.3 + 1e-5
    single = d.flow(d.DiracGAN("consensus", reg=0.3), x0[2], ts)
    np.testing.assert_allclose(xs[2], single, atol=1e-6)
    # converges: local rate exp(-reg f'(0)^2 t) = exp(-1.5) ~ 0.22 at t = 20 (0.29 measured)
    assert float(jnp.linalg.norm(single[-1])) < 0.4 * float(jnp.linalg.norm(x0[2]))


def test_bad_input():
    with pytest.raises(ValueError, match="variant.*gan"):
        d.DiracGAN("dcgan")
    with pytest.raises(ValueError, match="reg"):
        d.DiracGAN("gan_gp", reg=-1.0)
    with pytest.raises(ValueError, match="clip"):
        d.DiracGAN("wgan", clip=0.0)
    with pytest.raises(ValueError, match="`h`"):
        d.spectral_radius("gan", -0.1)
    with pytest.raises(ValueError, match="method.*simultaneous"):
        d.trajectory("gan", [1.0, 0.0], 0.1, 5, method="adam")
    with pytest.raises(ValueError, match=r"x0.*shape"):
        d.trajectory("gan", [1.0, 0.0, 2.0], 0.1, 5)
    with pytest.raises(ValueError, match="ts"):
        d.flow("gan", [1.0, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="games"):
        d.flows([], [1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"x0.*\(2, 2\)"):
        d.flows(["gan", "wgan"], jnp.zeros((3, 2)), [0.0, 1.0])
    with pytest.raises(ValueError, match="regs"):
        d.stability_region("gan_gp", [0.1], [-1.0])
