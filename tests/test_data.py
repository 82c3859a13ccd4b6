"""Datasets: shapes, determinism, moments, image-density geometry, bad input."""

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gantk import data
from gantk.data.images import image_density, letter_image, sample_image, shape_image


def test_eight_gaussians_moments():
    fake, real = data.load("eight_gaussians", n_fake=4000, n_real=8000, seed=3,
                           dtype=jnp.float64)
    fake, real = np.asarray(fake), np.asarray(real)
    assert fake.shape == (4000, 2) and real.shape == (8000, 2)
    np.testing.assert_allclose(fake.mean(0), 0, atol=0.06)
    np.testing.assert_allclose(fake.std(0), 1, atol=0.04)
    # each real point belongs to its nearest of 8 centres on the circle of radius 5
    ang = 2 * np.pi * np.arange(8) / 8
    centres = 5 * np.stack([np.cos(ang), np.sin(ang)], 1)
    d = np.linalg.norm(real[:, None] - centres[None], axis=2)
    lab = d.argmin(1)
    resid = real - centres[lab]
    np.testing.assert_allclose(resid.std(0), 0.5, atol=0.02)
    counts = np.bincount(lab, minlength=8) / len(real)
    np.testing.assert_allclose(counts, 1 / 8, atol=0.02)
    np.testing.assert_allclose(np.linalg.norm(real, axis=1).mean(), 5.0, atol=0.05)


def test_deterministic_and_dtype():
    a = data.load("eight_gaussians", seed=7)
    b = data.load("eight_gaussians", seed=7)
    c = data.load("eight_gaussians", seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert a[0].dtype == jnp.float32
    f64 = data.load("eight_gaussians", seed=7, dtype=jnp.float64)
    np.testing.assert_allclose(f64[1], a[1], rtol=1e-6, atol=1e-6)


def test_fixed_sets_are_gantk2s():
    f, r = data.load("modes_1d")
    np.testing.assert_allclose(f[:, 0], 1.5 * np.array([-1.2, -1.34, -0.8, -0.7, -0.3]),
                               rtol=1e-6)
    np.testing.assert_allclose(r[:, 0], 1.5 * np.array([0.6, 1.0, 1.23, 1.32, 0.2]), rtol=1e-6)
    f, r = data.load("modes_1d_overlap")
    assert f.shape == (5, 1) and r.shape == (7, 1)
    np.testing.assert_allclose(r[-3:, 0], 1.5 * np.array([-1.1, -1.0, -1.8]), rtol=1e-6)
    f, r = data.load("two_couples_2d")
    np.testing.assert_array_equal(f, [[1, 1], [1, -1]])
    np.testing.assert_array_equal(r, [[-1, -1], [-1, 1]])
    with pytest.raises(ValueError, match="n_fake"):
        data.load("modes_1d", n_fake=6)


def test_image_orientation_upright():
    img = np.full((10, 20), 255, np.uint8)
    img[0, 0] = 0  # top-left pixel only
    dens = image_density(img)
    np.testing.assert_allclose(dens.means, [[-1.0, 1.0]])
    np.testing.assert_allclose(dens.std, [1 / 20, 1 / 10])
    pts = np.asarray(sample_image(__import__("jax").random.key(0), dens, 2000, jnp.float64))
    np.testing.assert_allclose(pts.mean(0), [-1, 1], atol=0.01)
    np.testing.assert_allclose(pts.std(0), [1 / 20, 1 / 10], rtol=0.08)


def test_shared_png_density_centroid(geomloss_images):
    path = geomloss_images / "density_a.png"
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    h, w = grey.shape
    wgt = grey.max() - grey
    xs, ys = np.linspace(-1, 1, w), np.linspace(-1, 1, h)[::-1]
    gx, gy = np.meshgrid(xs, ys)
    centroid = np.array([(wgt * gx).sum(), (wgt * gy).sum()]) / wgt.sum()
    _, real = data.load(f"image:{path}", n_real=20000, seed=0, dtype=jnp.float64)
    np.testing.assert_allclose(np.asarray(real).mean(0), centroid, atol=0.01)
    fake, real = data.load(f"image:{geomloss_images / 'A.png'},{geomloss_images / 'B.png'}")
    assert fake.shape == (500, 2) and real.shape == (500, 2)
    assert np.all(np.abs(np.asarray(real)) < 1.2)


def test_builtin_densities_are_generated_and_distinct():
    a, b = shape_image("a"), shape_image("b")
    assert a.shape == (100, 100) and (a < 128).mean() > 0.03 and (b < 128).mean() > 0.03
    assert np.array_equal(letter_image("A"), letter_image("A"))
    assert (letter_image("A") < 128).mean() > 0.05
    fake, real = data.load("density")
    # the ellipse sits lower-left, the crescent upper-right
    assert np.all(np.asarray(fake).mean(0) < 0) and np.all(np.asarray(real).mean(0) > 0)
    fa, fb = data.load("ab")
    assert np.linalg.norm(np.asarray(fa).mean(0) - np.asarray(fb).mean(0)) < 0.3
    with pytest.raises(ValueError, match="which"):
        shape_image("c")
    with pytest.raises(ValueError, match="letter"):
        letter_image("AB")


def test_digits():
    fake, real = data.load("digits")
    assert fake.shape == (1024, 64) and real.shape == (1797, 64)
    r = np.asarray(real)
    assert r.min() == -1.0 and r.max() == 1.0
    assert data.digits_images(real).shape == (1797, 8, 8)
    _, sub = data.load("digits", n_real=100, seed=1)
    assert sub.shape == (100, 64)
    # a subsample consists of real digit rows
    assert (np.abs(np.asarray(sub)[:, None] - r[None]).sum(-1).min(1) == 0).all()
    with pytest.raises(ValueError, match="1797"):
        data.load("digits", n_real=5000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(name="nope"), "eight_gaussians"),
        (dict(name="image:/no/such/file.png"), "file.png"),
        (dict(name="eight_gaussians", n_fake=0), "n_fake"),
        (dict(name="eight_gaussians", n_real=2.5), "n_real"),
        (dict(name="eight_gaussians", seed="x"), "seed"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(**kwargs)


def test_blank_image_rejected(tmp_path):
    p = tmp_path / "white.png"
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(p)
    with pytest.raises(ValueError, match="uniform"):
        image_density(str(p))


def test_points_file_roundtrip_and_subset(tmp_path):
    rng = np.random.default_rng(0)
    fake, real = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    path = tmp_path / "cloud.npz"
    np.savez(path, fake=fake, real=real)
    f, r = data.load(f"points:{path}")
    np.testing.assert_allclose(np.asarray(f), fake.astype(np.float32))
    np.testing.assert_allclose(np.asarray(r), real.astype(np.float32))
    f, r = data.load(f"points:{path}", n_fake=4, n_real=2)
    assert f.shape == (4, 3) and r.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(f), fake[:4].astype(np.float32))


@pytest.mark.parametrize(
    ("arrays", "kw", "match"),
    [
        ({"fake": np.zeros((3, 2))}, {}, "'real' is missing"),
        ({"fake": np.zeros((3, 2)), "real": np.zeros((3, 3))}, {}, "same dimension"),
        ({"fake": np.zeros(3), "real": np.zeros((3, 1))}, {}, r"shape \(n, d\)"),
        ({"fake": np.full((3, 2), np.nan), "real": np.zeros((3, 2))}, {}, "not finite"),
        ({"fake": np.zeros((3, 2)), "real": np.zeros((3, 2))}, {"n_fake": 4}, "at most 3"),
    ],
)
def test_points_file_bad_input(tmp_path, arrays, kw, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        data.load(f"points:{path}", **kw)
    with pytest.raises(ValueError, match="does not exist"):
        data.load(f"points:{tmp_path / 'missing.npz'}")
