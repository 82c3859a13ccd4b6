"""Stochastic Moving Digits: bounce rule, determinism, splits, and the MNIST loaders."""

import gzip
import struct

import numpy as np
import pytest

from gantk.data.video import (
    TEST_SEED,
    MovingDigits,
    bounce_trajectory,
    load_digit_images,
    read_idx_images,
)

LIMIT = 36


def _fold(x):
    """Reflect a coordinate into [0, LIMIT] (the deterministic bounce's exact solution)."""
    period = 2 * LIMIT
    x = np.mod(x, period)
    return np.where(x > LIMIT, period - x, x)


def test_deterministic_bounce_is_a_reflection():
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = rng.integers(0, LIMIT + 1, size=2).astype(float)
        vel = rng.integers(-4, 5, size=2)
        pos, v = bounce_trajectory(rng, 40, deterministic=True, start=tuple(start),
                                   velocity=tuple(vel))
        t = np.arange(40)[:, None]
        np.testing.assert_allclose(pos, _fold(start + t * vel), atol=1e-9)
        assert np.all(np.abs(v) == np.abs(vel))  # speed per axis is preserved


def test_stochastic_bounce_stays_inside_and_changes_velocity_only_at_walls():
    rng = np.random.default_rng(1)
    n_bounces = 0
    for _ in range(200):
        pos, vel = bounce_trajectory(rng, 30, deterministic=False)
        assert pos.min() >= 0 and pos.max() <= LIMIT
        assert np.all(np.abs(vel) <= 4)
        for t in range(1, 30):
            free = pos[t - 1] + vel[t - 1]
            inside = np.all((free > 0) & (free < LIMIT))
            if inside:
                # no wall on the way: straight move at the same velocity
                np.testing.assert_allclose(pos[t], free, atol=1e-9)
                np.testing.assert_array_equal(vel[t], vel[t - 1])
            else:
                n_bounces += 1
                # the last velocity points inward at any wall the digit touches
                assert not (pos[t, 0] == LIMIT and vel[t, 0] > 0)
                assert not (pos[t, 0] == 0 and vel[t, 0] < 0)
    assert n_bounces > 100  # the loop did exercise bounces


def test_bounce_rest_of_step_uses_the_new_velocity():
    # Start 1 px from the right wall moving +4: reaches it after 1/4 of the step, then moves
    # 3/4 of the step at the redrawn, inward velocity.
    rng = np.random.default_rng(5)
    pos, vel = bounce_trajectory(rng, 2, deterministic=False, start=(LIMIT - 1.0, 10.0),
                                 velocity=(4, 0))
    v = vel[1]
    assert v[0] <= 0
    assert pos[1, 0] == pytest.approx(LIMIT + 0.75 * v[0])
    assert pos[1, 1] == pytest.approx(10.0 + 0.25 * 0 + 0.75 * v[1])


@pytest.fixture(scope="module")
def digits32():
    return MovingDigits(size=32, n_frames=6)


def test_frames_shape_range_and_determinism(digits32):
    a = digits32.train_batch(3, 7, 4)
    assert a.shape == (4, 6, 32, 32, 1) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1 and a.max() > 0.5
    np.testing.assert_array_equal(a, digits32.train_batch(3, 7, 4))
    assert not np.array_equal(a, digits32.train_batch(3, 8, 4))
    assert not np.array_equal(a, digits32.train_batch(4, 7, 4))
    t = digits32.test_videos(5, n_frames=8)
    np.testing.assert_array_equal(t[2:4], digits32.test_videos(2, n_frames=8, start=2))
    assert "NOT MNIST" in digits32.description
    assert TEST_SEED not in (0, 1, 3)


def test_size_64_total_ink_matches_two_digits():
    d = MovingDigits(size=64, n_frames=3)
    v = d.train_batch(0, 0, 8)[..., 0]
    # two digits drawn (sum clipped at 1): ink between one and two digits' worth
    ink = v.sum(axis=(2, 3))
    one = d.train_digits.sum(axis=(1, 2))
    assert ink.max() <= 2 * one.max() + 1e-3 and ink.min() > 0.5 * one.min()


def test_train_and_test_digits_are_disjoint():
    tr, te, desc = load_digit_images("moving-digits")
    assert tr.shape[1:] == (28, 28) and len(tr) + len(te) == 1797
    flat_tr = {x.tobytes() for x in tr}
    assert sum(x.tobytes() in flat_tr for x in te) <= 5  # sklearn has a few exact duplicates
    assert "NOT MNIST" in desc


def _write_idx(path, images, magic=0x00000803, gz=False):
    data = struct.pack(">IIII", magic, len(images), 28, 28) + images.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(data)


def test_mnist_idx_file_folder_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(12, 28, 28))
    _write_idx(tmp_path / "one.idx", imgs)
    np.testing.assert_array_equal(read_idx_images(tmp_path / "one.idx"), imgs)
    tr, te, desc = load_digit_images(f"moving-mnist:{tmp_path / 'one.idx'}")
    assert (len(tr), len(te)) == (10, 2) and "MNIST from" in desc
    np.testing.assert_allclose(tr[0], imgs[0] / 255.0, atol=1e-7)

    folder = tmp_path / "mnist"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", imgs[:8], gz=True)
    _write_idx(folder / "t10k-images-idx3-ubyte", imgs[8:])
    tr, te, _ = load_digit_images(f"moving-mnist:{folder}")
    assert (len(tr), len(te)) == (8, 4)
    v = MovingDigits(f"moving-mnist:{folder}", size=32, n_frames=4).train_batch(0, 0, 2)
    assert v.shape == (2, 4, 32, 32, 1)

    np.savez(tmp_path / "mnist.npz", x_train=imgs[:9].astype(np.uint8),
             x_test=imgs[9:].astype(np.uint8))
    tr, te, _ = load_digit_images(f"moving-mnist:{tmp_path / 'mnist.npz'}")
    assert (len(tr), len(te)) == (9, 3)


@pytest.mark.parametrize("content,match", [
    (b"not an idx file at all", "not an MNIST idx"),
    (struct.pack(">IIII", 0x00000801, 3, 28, 28), "magic"),
    (struct.pack(">IIII", 0x00000803, 3, 32, 32), "28"),
    (struct.pack(">IIII", 0x00000803, 3, 28, 28) + b"\0" * 100, "truncated"),
])
def test_not_mnist_is_rejected(tmp_path, content, match):
    p = tmp_path / "bad.idx"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=match) as err:
        load_digit_images(f"moving-mnist:{p}")
    assert str(p) in str(err.value)


@pytest.mark.parametrize("kw,match", [
    (dict(source="moving-letters"), "unknown video dataset"),
    (dict(source="moving-mnist:/no/such/file"), "no such file"),
    (dict(size=48), "size"), (dict(n_frames=0), "n_frames"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        MovingDigits(**kw)
