"""Stochastic Moving Digits: Stochastic Moving MNIST (Denton & Fergus, ICML 2018) built on the fly.

Videos of ``n_digits`` 28×28 digits bouncing in 64×64 frames, as in the SRVP code
(``data/mmnist.py``):

- start position: uniform integer in ``[0, 36]`` per axis (``36 = 64 − 28``); velocity:
  uniform integer in ``[−4, 4]`` per axis; positions are kept as floats and rounded only to
  draw; overlapping digits are summed and clipped to 1.
- bounce: the digit moves in a straight line until it reaches a wall; there the
  **stochastic** version redraws both velocity components in ``[−4, 4]``, forces the normal
  one to point inward, and spends the rest of the time step at the new velocity; the
  **deterministic** version only flips the normal component. Velocity changes nowhere else.
- ``size=32`` renders the same 64×64 video and averages 2×2 blocks.

Digit sources (nothing is downloaded, ever):

- ``"moving-digits"`` (default): scikit-learn's bundled 8×8 digits (1,797 images), upscaled
  bilinearly to 20×20 and centred in 28×28 like MNIST; train/test split **by digit image**
  (a fixed permutation, 1,437 train / 360 test). Not MNIST: every output says so.
- ``"moving-mnist:PATH"``: real MNIST the user already has: a folder holding the standard
  ``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte`` (optionally ``.gz``), one idx
  file (its last sixth is the test split), or an ``.npz`` with ``x_train`` and ``x_test``
  (Keras' ``mnist.npz``).

The test set is 5,000 sequences of 25 frames from a fixed seed (independent of the training
seed); sequence ``i`` depends only on ``i``, so the first ``n`` are the same for any ``n``.
Frames are float32 in [0, 1], shaped ``(batch, time, H, W, 1)`` (channels last, as flax).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import os
import pathlib
import struct

import numpy as np

__all__ = ["DIGIT_SIZE", "TEST_SEED", "MovingDigits", "bounce_trajectory", "load_digit_images",
           "read_idx_images"]

DIGIT_SIZE = 28
CANVAS = 64
TEST_SEED = 20_180_710  # fixed test-set seed (independent of any run's seed)
_EPS = 1e-9


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST idx3 image file (optionally gzipped).

    Returns:
        ``(n, 28, 28)`` uint8 images.

    Raises:
        ValueError: the file is not an idx3 ubyte file of 28×28 images (names the path).
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(16)
            if len(head) < 16:
                raise ValueError("short header")
            magic, n, rows, cols = struct.unpack(">IIII", head)
            if magic != 0x00000803:
                raise ValueError(f"magic {magic:#010x}, expected 0x00000803")
            if (rows, cols) != (DIGIT_SIZE, DIGIT_SIZE):
                raise ValueError(f"images of {rows}×{cols}, expected 28×28")
            data = fh.read(n * rows * cols)
            if len(data) != n * rows * cols:
                raise ValueError(f"truncated: {len(data)} bytes of {n * rows * cols}")
    except (OSError, EOFError, struct.error, ValueError) as err:
        raise ValueError(f"--data moving-mnist:{path}: not an MNIST idx image file ({err})"
                         ) from None
    return np.frombuffer(data, np.uint8).reshape(n, rows, cols)


def _linear_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` bilinear interpolation weights (half-pixel centres, edges clamped)."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    lo = np.clip(np.floor(centres).astype(int), 0, n_in - 1)
    hi = np.clip(lo + 1, 0, n_in - 1)
    frac = np.clip(centres - lo, 0.0, 1.0)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    img = load_digits().images / 16.0  # (1797, 8, 8) in [0, 1]
    r = _linear_resize_matrix(8, 20)
    up = np.einsum("ij,njk,lk->nil", r, img, r)
    out = np.zeros((img.shape[0], DIGIT_SIZE, DIGIT_SIZE), np.float32)
    out[:, 4:24, 4:24] = np.clip(up, 0.0, 1.0)
    perm = np.random.default_rng(0).permutation(img.shape[0])
    n_test = 360
    return out[perm[n_test:]], out[perm[:n_test]]


def load_digit_images(source: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Digit images for ``source`` (``"moving-digits"`` or ``"moving-mnist:PATH"``).

    Returns:
        ``(train, test, description)``: ``(n, 28, 28)`` float32 images in [0, 1] and a line
        saying which digits are used.

    Raises:
        ValueError: unknown source, or a path that is not MNIST (names it).
    """
    if source in ("moving-digits", "moving-digits-deterministic"):
        tr, te = _sklearn_digits()
        return tr, te, (f"scikit-learn 8x8 digits upscaled to 28x28 (NOT MNIST; {len(tr)} "
                        f"train / {len(te)} test digit images)")
    if not source.startswith("moving-mnist:") or len(source) <= len("moving-mnist:"):
        raise ValueError(f"--data: unknown video dataset {source!r} (choose from "
                         "moving-digits, moving-digits-deterministic, moving-mnist:PATH)")
    path = pathlib.Path(source.split(":", 1)[1]).expanduser()
    if not path.exists():
        raise ValueError(f"--data {source}: no such file or folder {str(path)!r}")
    if path.is_dir():
        found = {}
        for split, stem in (("train", "train-images-idx3-ubyte"),
                            ("test", "t10k-images-idx3-ubyte")):
            for cand in (stem, stem + ".gz", stem.replace("-idx3", ".idx3")):
                if (path / cand).is_file():
                    found[split] = path / cand
                    break
        if len(found) < 2:
            raise ValueError(f"--data {source}: folder has no train-images-idx3-ubyte and "
                             "t10k-images-idx3-ubyte (MNIST's standard files)")
        tr, te = read_idx_images(found["train"]), read_idx_images(found["test"])
    elif path.suffix == ".npz":
        try:
            with np.load(path) as z:
                tr, te = np.asarray(z["x_train"]), np.asarray(z["x_test"])
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"--data {source}: not an MNIST npz with x_train and x_test "
                             f"({type(err).__name__}: {err})") from None
        for a in (tr, te):
            if a.ndim != 3 or a.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE) or len(a) == 0:
                raise ValueError(f"--data {source}: expected x_train/x_test of shape "
                                 f"(n, 28, 28); got {a.shape}")
    else:
        imgs = read_idx_images(path)
        if len(imgs) < 2:
            raise ValueError(f"--data {source}: needs at least 2 images; got {len(imgs)}")
        cut = len(imgs) - max(1, len(imgs) // 6)
        tr, te = imgs[:cut], imgs[cut:]
    scale = 255.0 if np.issubdtype(tr.dtype, np.integer) or tr.max() > 1.0 else 1.0
    tr = (tr.astype(np.float32) / scale).clip(0, 1)
    te = (te.astype(np.float32) / scale).clip(0, 1)
    return tr, te, f"MNIST from {path} ({len(tr)} train / {len(te)} test digit images)"


def bounce_trajectory(rng: np.random.Generator, n_frames: int, *, deterministic: bool,
                      max_speed: int = 4, limit: int = CANVAS - DIGIT_SIZE,
                      start: tuple[float, float] | None = None,
                      velocity: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of one bouncing digit (top-left corner, in pixels).

    Args:
        rng: NumPy generator (initial draws and the stochastic bounces).
        n_frames: number of frames.
        deterministic: only flip the normal velocity at a wall (else redraw both components
            and force the normal one inward).
        max_speed: velocities are integers in ``[−max_speed, max_speed]``.
        limit: positions stay in ``[0, limit]`` per axis (36 for 28-pixel digits in 64).
        start: optional initial condition (else drawn uniformly).
        velocity: see ``start``.

    Returns:
        ``(positions (n_frames, 2) float64, velocities (n_frames, 2) int)``: the velocity at
        frame ``t`` is the one leaving frame ``t`` (after any bounce at it).
    """
    lim = float(limit)
    s = ([float(c) for c in start] if start is not None
         else [float(c) for c in rng.integers(0, limit + 1, size=2)])
    v = ([int(c) for c in velocity] if velocity is not None
         else [int(c) for c in rng.integers(-max_speed, max_speed + 1, size=2)])
    pos = np.empty((n_frames, 2))
    vel = np.empty((n_frames, 2), int)
    pos[0], vel[0] = s, v
    for t in range(1, n_frames):  # plain Python floats: ~20x faster than tiny NumPy arrays
        tau = 1.0
        for _ in range(1000):
            t_wall = [(lim - s[i]) / v[i] if v[i] > 0 else (-s[i] / v[i] if v[i] < 0
                                                             else math.inf) for i in (0, 1)]
            t_hit = min(t_wall)
            if t_hit > tau + _EPS:  # no wall within the step (one exactly at its end bounces now)
                s = [s[0] + v[0] * tau, s[1] + v[1] * tau]
                break
            t_hit = max(t_hit, 0.0)
            tau -= t_hit
            hit = [t_wall[i] <= t_hit + _EPS for i in (0, 1)]
            at_max = [hit[i] and v[i] > 0 for i in (0, 1)]
            # move to the wall (exactly onto it along the hit axes)
            s = [(lim if at_max[i] else 0.0) if hit[i] else s[i] + v[i] * t_hit for i in (0, 1)]
            if deterministic:
                v = [-v[i] if hit[i] else v[i] for i in (0, 1)]
            else:
                new = [int(c) for c in rng.integers(-max_speed, max_speed + 1, size=2)]
                v = [(-abs(new[i]) if at_max[i] else abs(new[i])) if hit[i] else new[i]
                     for i in (0, 1)]
        pos[t] = [min(max(s[0], 0.0), lim), min(max(s[1], 0.0), lim)]
        vel[t] = v
    return pos, vel


@dataclasses.dataclass
class MovingDigits:
    """Stochastic (or deterministic) Moving Digits videos, generated on the fly.

    Args:
        source: ``"moving-digits"``, ``"moving-digits-deterministic"`` or
            ``"moving-mnist:PATH"`` (module docstring).
        size: frame size, 64 or 32 (the 64×64 video averaged over 2×2 blocks).
        n_frames: frames per sequence.
        n_digits: digits per video.
        deterministic: deterministic bounces (implied by ``moving-digits-deterministic``).
        max_speed: velocity components are integers in ``[−max_speed, max_speed]``.

    Raises:
        ValueError: bad source, size, or counts (names the argument).
    """

    source: str = "moving-digits"
    size: int = 64
    n_frames: int = 15
    n_digits: int = 2
    deterministic: bool = False
    max_speed: int = 4

    def __post_init__(self) -> None:
        if self.size not in (32, 64):
            raise ValueError(f"`size` (frame size) must be 32 or 64; got {self.size!r}")
        for name in ("n_frames", "n_digits", "max_speed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "max_speed"
                                                                     else 1):
                raise ValueError(f"`{name}` must be a positive integer; got {v!r}")
        if self.source == "moving-digits-deterministic":
            self.deterministic = True
        self.train_digits, self.test_digits, self.digits_description = load_digit_images(
            self.source)

    @property
    def description(self) -> str:
        """One line: the kind of videos and which digits."""
        kind = "deterministic" if self.deterministic else "stochastic"
        return (f"{kind} Moving Digits {self.size}x{self.size}, {self.n_digits} digits, "
                f"{self.digits_description}")

    def sequences(self, rng: np.random.Generator, n: int, *, split: str = "train",
                  n_frames: int | None = None) -> np.ndarray:
        """``n`` videos ``(n, T, size, size, 1)`` float32 in [0, 1] drawn with ``rng``.

        Raises:
            ValueError: unknown ``split``.
        """
        if split not in ("train", "test"):
            raise ValueError(f"`split` must be 'train' or 'test'; got {split!r}")
        digits = self.train_digits if split == "train" else self.test_digits
        t_len = self.n_frames if n_frames is None else n_frames
        video = np.zeros((n, t_len, CANVAS, CANVAS), np.float32)
        for i in range(n):
            for _ in range(self.n_digits):
                img = digits[rng.integers(len(digits))]
                pos, _ = bounce_trajectory(rng, t_len, deterministic=self.deterministic,
                                           max_speed=self.max_speed)
                r = np.rint(pos).astype(int)
                for t in range(t_len):
                    video[i, t, r[t, 0]:r[t, 0] + DIGIT_SIZE, r[t, 1]:r[t, 1] + DIGIT_SIZE] += img
        np.clip(video, 0.0, 1.0, out=video)
        if self.size == 32:
            video = video.reshape(n, t_len, 32, 2, 32, 2).mean(axis=(3, 5))
        return video[..., None]

    def train_batch(self, seed: int, step: int, batch_size: int) -> np.ndarray:
        """Training batch of step ``step``: a deterministic function of ``(seed, step)``."""
        return self.sequences(np.random.default_rng([seed, step, 7]), batch_size)

    def test_videos(self, n: int = 5000, n_frames: int = 25, start: int = 0) -> np.ndarray:
        """Test videos ``start … start + n − 1`` of the fixed test set (``TEST_SEED``).

        Video ``i`` depends only on ``i`` (its own generator), so any prefix is stable.
        """
        return np.concatenate([
            self.sequences(np.random.default_rng([TEST_SEED, i]), 1, split="test",
                           n_frames=n_frames)
            for i in range(start, start + n)
        ]) if n > 0 else np.zeros((0, n_frames, self.size, self.size, 1), np.float32)

