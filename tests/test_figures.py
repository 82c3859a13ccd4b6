"""Paper figures (gantk.figures): adequacy numbers, vector-field structure, snapshots, CLI."""

import numpy as np
import pytest

from gantk import figures
from gantk.architectures import get_spec

# a few rays, away from the origin where the bias-free kernel is not differentiable
RAYS = np.array([[-1.5, 0.5], [0.3, 1.2], [1.7, 0.4], [-0.4, 1.9], [0.6, 0.05]])


def test_bias_free_ipm_field_splits_into_homogeneous_parts():
    """Bias-free ReLU NTK: k(λx, y) = λ k(x, y) = k(x, λy) for λ > 0.

    With fake {x} and real {y}: v(x) = τ(∇₁k(x, y) − ∇₁k(x, x)). ∇₁k(·, y) is 0-homogeneous,
    and ∇₁k(z, λx)|_{z=λx} = λ ∇₁k(x, x), so v(λx) = A(x) − λ B(x) with A, B 0-homogeneous:
    v is affine along rays (second difference 0) and, by Euler's relation
    ∇₁k(x, x)·x = k(x, x), (v(x) − v(λx))·x = (λ − 1) τ k(x, x).
    """
    tau = 0.7
    v1, v2, v3 = (figures.vector_field("relu-nobias", "ipm", lam * RAYS, time=tau)
                  for lam in (1.0, 2.0, 3.0))
    scale = np.abs(v1).max()
    np.testing.assert_allclose(v1 - 2 * v2 + v3, 0.0, atol=1e-6 * scale)
    kxx = np.diag(np.asarray(get_spec("relu-nobias").k()(RAYS)))
    np.testing.assert_allclose(np.sum((v1 - v3) * RAYS, axis=1), 2 * tau * kxx, rtol=1e-6)
    # the target term A(x) alone is 0-homogeneous: v(λx) + λ B(x) is the same for all λ
    b = v1 - v2  # = B(x)
    np.testing.assert_allclose(v3 + 3 * b, v1 + b, atol=1e-6 * scale)


def test_field_with_bias_is_not_affine_along_rays():
    v1, v2, v3 = (figures.vector_field("relu", "ipm", lam * RAYS) for lam in (1.0, 2.0, 3.0))
    second = np.abs(v1 - 2 * v2 + v3).max() / np.abs(v1).max()
    assert second > 0.05, second


def test_bias_free_lsgan_origin_is_stationary_and_attracting():
    """f_τ(0) = 0 for the bias-free ReLU NTK, so c = f² has its minimum 0 at the origin."""
    from gantk.discriminator import discriminator

    k = get_spec("relu-nobias").k()
    fake, real = np.array([[-1.0, 0.7]]), np.array([[1.0, 0.0]])
    D = discriminator("lsgan", k, fake, real, 1.0)
    assert abs(float(D(np.zeros((1, 2)))[0])) < 1e-12
    # near the origin, particles are pulled in: the velocity points toward 0 along x
    x = 0.05 * RAYS / np.linalg.norm(RAYS, axis=1, keepdims=True)
    v = figures.vector_field("relu-nobias", "lsgan", x)
    v_bias = figures.vector_field("relu", "lsgan", x)
    assert np.linalg.norm(v, axis=1).max() < 0.1 * np.linalg.norm(v_bias, axis=1).min()


def test_vector_field_matches_ipm_closed_form():
    """IPM: v(x) = τ (∇₁k(x, y) − ∇₁k(x, x)) with the train set held fixed."""
    import jax
    import jax.numpy as jnp

    k = get_spec("rbf").k()
    tau, y = 1.3, jnp.array([[1.0, 0.0]])

    def v(x):
        g = jax.grad(lambda z: tau * (k(z[None], y)[0, 0] - k(z[None], x[None])[0, 0]))
        return g(x)

    expected = np.stack([np.asarray(v(jnp.asarray(x))) for x in RAYS])
    np.testing.assert_allclose(figures.vector_field("rbf", "ipm", RAYS, time=tau), expected,
                               rtol=1e-8, atol=1e-12)


def test_vector_field_bad_input():
    with pytest.raises(ValueError, match="`kernel` must be one of"):
        figures.vector_field("tanh", "ipm", RAYS)
    with pytest.raises(ValueError, match="`target`.*d=3"):
        figures.vector_field("relu", "ipm", np.ones((2, 3)))
    with pytest.raises(ValueError, match="`grid`"):
        figures.vector_field("relu", "ipm", np.ones(3))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ipm", "lsgan"])
def test_adequacy_1d_error_decreases_with_width(loss):
    from gantk import data as gdata

    fake, real = gdata.load(figures.ADEQUACY_1D_DATA[loss], seed=0, dtype=np.float64)
    res = figures.adequacy_1d(loss, fake, real, widths=(32, 512), seeds=2,
                              grid=np.linspace(-3, 3, 60))
    assert res.infinite.shape == (60,) and res.finite[512].shape == (2, 60)
    e_small, e_large = res.seed_errors[32].mean(), res.seed_errors[512].mean()
    # error per network ~ C / sqrt(width) (IPM: ~0.8 at 32, ~0.14 ± 0.09 at 512 over 40 seeds)
    assert e_large < 0.6 * e_small, (e_small, e_large)
    assert e_large < 0.35, e_large
    # decomposition: the trained net follows the NTK-regime dynamics of its *own* initial
    # kernel ever more closely (the kernel moves less during training as width grows:
    # 0.09 -> 0.017 here), so at width 512 nearly all of its error against infinite width
    # is the random finite-width kernel at initialization
    lin_small, lin_large = (res.linearization_errors[w].mean() for w in (32, 512))
    assert lin_large < 0.25 * lin_small and lin_large < 0.05, (lin_small, lin_large)
    assert res.kernel_errors[512].mean() == pytest.approx(
        res.seed_errors[512].mean(), abs=max(2 * lin_large, res.discretization_error + 0.02))


def _write_run(tmp_path, steps, d=2):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, d))
    for i, step in enumerate(steps):
        fake = rng.normal(size=(40, d)) + (3 - i)
        np.savez(tmp_path / f"particles_{step}.npz", fake=fake, real=real, step=step)


def test_snapshots(tmp_path, capsys):
    _write_run(tmp_path, [0, 100, 20, 5])
    (tmp_path / "particles_x.npz").write_bytes(b"")  # ignored: not a step file
    snaps = figures.load_snapshots(tmp_path)
    assert [s[0] for s in snaps] == [0, 5, 20, 100]
    assert figures.evenly_spaced(10, 4) == [0, 3, 6, 9]  # first and last included
    assert figures.main(["snapshots", str(tmp_path), "--max-panels", "3"]) == 0
    png = tmp_path / "figures" / "snapshots.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "steps 0..100" in capsys.readouterr().out


def test_cli_vector_field_and_bad_arguments(tmp_path, capsys):
    assert figures.main(["vector-field", "--kernel", "rbf", "--loss", "ipm", "--nx", "5",
                         "--ny", "3", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "vector_field_rbf_ipm.png").is_file()
    assert "speed min/median/max" in capsys.readouterr().out
    bad = [
        ["vector-field", "--kernel", "tanh", "--loss", "ipm"],
        ["vector-field", "--kernel", "relu", "--loss", "ipm", "--time", "-1"],
        ["adequacy-1d", "--loss", "hinge"],
        ["snapshots", str(tmp_path / "nope")],
        ["snapshots", str(tmp_path)],  # a folder without particles_<step>.npz
        ["frobnicate"],
        [],
    ]
    for argv in bad:
        assert figures.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("gantk.figures: error:") and err.count("\n") == 1, (argv, err)


@pytest.mark.slow
def test_adequacy_2d_and_cli(tmp_path, capsys):
    from gantk import data as gdata

    fake, real = gdata.load("two_couples_2d", dtype=np.float64)
    large = figures.adequacy_2d("ipm", fake, real, width=256, seeds=2, resolution=8)
    assert large.f_finite.shape == (8, 8) and large.v_finite.shape == (2, 2)
    assert large.seed_errors_f.shape == (2,)
    assert 0.0 < large.error_f < 0.3, large.error_f
    # f_infinite is the IPM closed form τ (mean_real k − mean_fake k) on the grid
    k = get_spec("relu").k()
    x0, x1, y0, y1 = large.limits
    corner = np.array([[x0, y0], [x1, y1]])
    expected = np.asarray(k(corner, real)).mean(1) - np.asarray(k(corner, fake)).mean(1)
    np.testing.assert_allclose(large.f_infinite[[0, -1], [0, -1]], expected, rtol=1e-6)
    assert figures.main(["adequacy-2d", "--data", "two_couples_2d", "--n", "2", "--width",
                         "32", "--resolution", "8", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "adequacy_2d_lsgan_two_couples_2d_w32.png").is_file()
    assert "velocity at fake points" in capsys.readouterr().out
    assert figures.main(["adequacy-2d", "--data", "modes_1d", "--n", "5"]) == 2
    assert "need 2-D" in capsys.readouterr().err
