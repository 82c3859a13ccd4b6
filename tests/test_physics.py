"""WaveEq / WaveEq-100 / pendulum: the physics (stencil order, energy, wave speed), the
dataset conventions, and the cache (content hash, corruption detected and regenerated)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk.data import physics as P


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTK_CACHE", str(tmp_path / "cache"))


def _bump(size, width=3.0):
    x = np.arange(size)
    rr, cc = np.meshgrid(x, x, indexing="ij")
    c = (size - 1) / 2
    return np.exp(-((rr - c) ** 2 + (cc - c) ** 2) / (2 * width**2))


def test_laplacian_symmetric_negative_definite_on_interior():
    n = 12  # interior 8×8 = 64 unknowns
    mask = np.zeros((n, n), bool)
    mask[2:-2, 2:-2] = True

    def op(x):
        u = jnp.zeros((n, n), jnp.float64).at[mask].set(x)
        return P.laplacian(u)[mask]

    a = np.asarray(jax.jit(jax.vmap(op))(jnp.eye(int(mask.sum()), dtype=jnp.float64))).T
    np.testing.assert_allclose(a, a.T, atol=1e-14)
    eig = np.linalg.eigvalsh(a)
    assert eig.max() < -1e-3
    # spectrum inside the symbol's range: 2·(−5/2 + 8/3 cos k − 1/6 cos 2k) ∈ [−32/3, 0]
    assert eig.min() > -32 / 3


def test_laplacian_fourth_order():
    # Δ sin(ax) sin(by) = −(a² + b²) sin(ax) sin(by), error at interior points ∝ dx⁴
    errs = []
    for n in (32, 64):
        dx = 1.0 / n
        x = np.arange(n) * dx
        xx, yy = np.meshgrid(x, x, indexing="ij")
        u = np.sin(2.0 * xx + 0.3) * np.sin(3.0 * yy + 0.1)
        lap = np.asarray(P.laplacian(jnp.asarray(u), dx))
        exact = -13.0 * u
        errs.append(np.abs(lap - exact)[2:-2, 2:-2].max())
    order = np.log2(errs[0] / errs[1])
    assert 3.8 < order < 4.2, order


def test_energy_conserved_to_rk4_accuracy():
    # source off, smooth initial bump: E drifts only by RK4's dissipation, O(dt⁵) over a
    # fixed time (O((ω dt)⁶) per step); measured 2.5e-4 at dt = 1e-3 and 7.8e-6 at dt/2.
    size, c = 64, 350.0
    drift = []
    for dt, n in ((1e-3, 300), (5e-4, 600)):
        u, v = P.wave_simulate(c, 0.0, size=size, n_steps=n, dt=dt, u0=_bump(size),
                               dtype=jnp.float64)
        e = np.asarray(P.wave_energy(u, v, c))
        drift.append(np.abs(e - e[0]).max() / e[0])
    assert drift[0] < 5e-4
    assert drift[1] < 2e-5
    order = np.log2(drift[0] / drift[1])
    assert 4.5 < order < 5.5, order


@pytest.mark.parametrize("size", [64, 32])
def test_wavefront_moves_at_speed_c(size):
    # dataset source (disk, decaying), zero initial state: the front radius (outermost pixel
    # above 1e-3 of the peak, in 64-grid units) grows at c until it reaches the boundary.
    c = 350.0
    u, _ = P.wave_simulate(c, 10.0, size=size, n_steps=60, dt=1e-3, dtype=jnp.float64)
    u = np.abs(np.asarray(u))
    x = np.arange(size) * (64 / size)
    rr, cc = np.meshgrid(x, x, indexing="ij")
    r = np.sqrt((rr - 32) ** 2 + (cc - 32) ** 2)
    t = np.arange(10, 60) * 1e-3
    radius = [r[u[k] > 1e-3 * u[k].max()].max() for k in range(10, 60)]
    slope = np.polyfit(t, radius, 1)[0]
    assert abs(slope / c - 1) < 0.03, slope


def test_waveeq_dataset_conventions():
    tr = P.waveeq("train", size=16, n_sequences=10, chunk=4, progress=False)
    te = P.waveeq("test", size=16, n_sequences=10, chunk=4, progress=False)
    assert tr.frames.shape == (8, 150, 16, 16) and te.frames.shape == (2, 150, 16, 16)
    np.testing.assert_array_equal(tr.ids, np.arange(8))
    np.testing.assert_array_equal(te.ids, [8, 9])
    assert tr.frames.dtype == np.float32
    assert tr.frames.min() >= 0 and tr.frames.max() <= 1
    # per-sequence min–max over all 300 time points: every sequence spans nearly [0, 1]
    assert np.all(tr.frames.reshape(8, -1).max(1) > 0.95)
    assert np.all(tr.frames.reshape(8, -1).min(1) < 0.05)
    # frame 0 is the zero state: constant; the boundary stays at the value of 0 throughout
    assert np.ptp(tr.frames[:, 0], axis=(1, 2)).max() == 0
    edge = tr.frames[:, :, 0, :]
    np.testing.assert_allclose(edge, tr.frames[:, :1, 0, :1] * np.ones((1, 150, 16)))
    # parameters from the fixed seed, in the paper's ranges
    c, f0 = tr.params["c"], tr.params["f0"]
    assert np.all((c >= 300) & (c <= 400)) and np.all((f0 >= 1) & (f0 <= 30))
    # the in-memory path gives the same data as the cached one
    nc = P.waveeq("test", size=16, n_sequences=10, chunk=3, cache=False)
    np.testing.assert_array_equal(nc.frames, te.frames)


def test_waveeq_frames_match_direct_simulation():
    d = P.waveeq("all", size=16, n_sequences=2, chunk=2, cache=False)
    c, f0 = d.params["c"][1], d.params["f0"][1]
    u, _ = P.wave_simulate(c, f0, size=16, n_steps=300, dt=1e-3)
    u = np.asarray(u)
    expect = ((u - u.min()) / (u.max() - u.min()))[::2]
    np.testing.assert_allclose(d.frames[1], expect, atol=1e-6)


def test_waveeq_100_pixels():
    rows, cols = P.waveeq_pixels(100, size=16)
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 100
    r2, c2 = P.waveeq_pixels(100, size=16)
    np.testing.assert_array_equal(rows, r2)
    full = P.load("waveeq", "test", size=16, n_sequences=10, chunk=5, progress=False)
    part = P.load("waveeq-100", "test", size=16, n_sequences=10, chunk=5, progress=False)
    assert part.frames.shape == (2, 150, 100)
    np.testing.assert_array_equal(part.frames, full.frames[..., rows, cols])


def test_cache_corruption_detected_and_regenerated(tmp_path):
    kw = dict(size=16, n_sequences=4, chunk=4, progress=False)
    ref = np.array(P.waveeq("all", **kw).frames)
    (entry,) = (tmp_path / "cache" / "waveeq").iterdir()
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["size"] == 16 and len(meta["frames_sha256"]) == 64
    # flip bytes in the data: detected by the hash, regenerated, identical values
    raw = bytearray((entry / "frames.npy").read_bytes())
    raw[-100:-96] = b"\x00\x00\xc0\x7f"  # a NaN
    (entry / "frames.npy").write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt or stale"):
        again = P.waveeq("all", **kw)
    np.testing.assert_array_equal(again.frames, ref)
    # truncated file and missing metadata are caught too
    (entry / "frames.npy").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="corrupt or stale"):
        np.testing.assert_array_equal(P.waveeq("all", **kw).frames, ref)
    (entry / "meta.json").unlink()
    with pytest.warns(UserWarning, match="corrupt or stale"):
        np.testing.assert_array_equal(P.waveeq("all", **kw).frames, ref)
    # other parameters go to another entry (content-addressed), the first stays
    P.waveeq("all", size=16, n_sequences=4, chunk=4, seed=1, progress=False)
    assert len(list((tmp_path / "cache" / "waveeq").iterdir())) == 2


def test_pendulum_physics_and_frame_rate():
    g, gamma = 9.81, 0.0
    d = P.pendulum(3, 41, fps=20.0, damping=gamma, substeps=20)
    th, om = d.info["theta"], d.info["omega"]
    energy = 0.5 * om**2 + g * (1 - np.cos(th))
    np.testing.assert_allclose(energy, energy[:, :1] * np.ones((1, 41)), rtol=1e-6)
    # damped: E(T) − E(0) = −γ ∫ ω² dt (trapezoid on a fine frame grid)
    gamma = 0.3
    d = P.pendulum(3, 401, fps=200.0, damping=gamma, substeps=4)
    th, om = d.info["theta"], d.info["omega"]
    energy = 0.5 * om**2 + g * (1 - np.cos(th))
    loss = gamma * np.trapezoid(om**2, dx=1 / 200.0, axis=1)
    np.testing.assert_allclose(energy[:, -1] - energy[:, 0], -loss, rtol=1e-4)
    # 2× frame rate, same seed: the even frames are the 1× frames
    one = P.pendulum(4, 10, fps=10.0, split="test")
    two = P.pendulum(4, 19, fps=20.0, split="test")
    np.testing.assert_allclose(two.frames[:, ::2], one.frames, atol=1e-4)
    assert one.frames.shape == (4, 10, 32, 32)
    assert 0 <= one.frames.min() and one.frames.max() <= 1
    # the bob is drawn where the angle says: intensity-weighted centroid of the bright pixels
    f = one.frames[0, 0]
    rr, cc = np.nonzero(f > 0.75)
    w = f[rr, cc]
    centre, length = 15.5, 0.34 * 32
    th0 = one.info["theta"][0, 0]
    np.testing.assert_allclose([np.average(rr, weights=w), np.average(cc, weights=w)],
                               [centre + length * np.cos(th0), centre + length * np.sin(th0)],
                               atol=0.3)
    # train and test differ
    assert not np.allclose(P.pendulum(4, 2).params["theta0"], one.params["theta0"])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: P.load("waveeq-x"), "waveeq-N"),
        (lambda: P.load("sst"), "`name`"),
        (lambda: P.waveeq("val"), "`split`"),
        (lambda: P.waveeq(size=4), "`size`"),
        (lambda: P.waveeq(stride=7), "`stride`"),
        (lambda: P.waveeq(dt=0.0), "`dt`"),
        (lambda: P.waveeq_pixels(300, size=16), "`n_pixels`"),
        (lambda: P.pendulum(0, 10), "`n`"),
        (lambda: P.pendulum(2, 10, fps=-1.0), "`fps`"),
        (lambda: P.pendulum(2, 10, damping=-0.1), "`damping`"),
        (lambda: P.wave_simulate(300.0, 1.0, size=16, u0=np.zeros((8, 8))), "`u0`"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GANTK_CACHE", str(tmp_path / "x"))
    assert P.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("GANTK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert P.cache_dir() == tmp_path / "xdg" / "gantk"
