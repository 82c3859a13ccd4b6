"""Named datasets: ``gantk.data.load(name) -> (fake, real)``."""

from __future__ import annotations

import functools
import os
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from gantk.data.images import image_density, letter_image, sample_image, shape_image

__all__ = ["NAMES", "SEED_MAX", "SEED_MIN", "digits_images", "load"]

#: Range of accepted seeds (JAX PRNG seeds are 64-bit integers).
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1

#: Built-in dataset names (``image:PATH``, ``image:P1,P2`` and ``points:FILE.npz`` are
#: accepted too).
NAMES: tuple[str, ...] = (
    "eight_gaussians",
    "density",
    "ab",
    "digits",
    "modes_1d",
    "modes_1d_overlap",
    "two_couples_2d",
)

# GAN(TK)²'s fixed sets (data/simple.py), as (fake, real).
_FIXED: dict[str, tuple[list, list]] = {
    "two_couples_2d": ([[1.0, 1.0], [1.0, -1.0]], [[-1.0, -1.0], [-1.0, 1.0]]),
    "modes_1d": (
        [[-1.2 * 1.5], [-1.34 * 1.5], [-0.8 * 1.5], [-0.7 * 1.5], [-0.3 * 1.5]],
        [[0.6 * 1.5], [1.0 * 1.5], [1.23 * 1.5], [1.32 * 1.5], [0.2 * 1.5]],
    ),
    "modes_1d_overlap": (
        [[-1.2 * 1.5], [-1.34 * 1.5], [-0.8 * 1.5], [-0.7 * 1.5], [-0.2 * 1.5]],
        [[0.6 * 1.5], [1.0 * 1.5], [1.23 * 1.5], [1.32 * 1.5], [-1.1 * 1.5], [-1.0 * 1.5],
         [-1.8 * 1.5]],
    ),
}
_DEFAULT_SIZES = {"eight_gaussians": (500, 500), "density": (500, 500), "ab": (500, 500),
                  "image": (500, 500), "digits": (1024, 1797)}


@functools.cache
def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    return load_digits().data.astype(np.float64) / 16.0 * 2.0 - 1.0


def digits_images(x: Float[Array, "n 64"]) -> Float[Array, "n 8 8"]:
    """Reshape flattened 8×8 digits ``(n, 64)`` into images ``(n, 8, 8)``.

    Raises:
        ValueError: if the last dimension is not 64.
    """
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"`x` must have shape (n, 64); got {tuple(x.shape)}.")
    return x.reshape(-1, 8, 8)


def _hi() -> jnp.dtype:
    """float64 when enabled, else float32 (sampling precision before the final cast)."""
    return jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32


def _eight_gaussians(key: jax.Array, n: int, m: int, dtype) -> tuple[Array, Array]:
    kf, kc, kn = jax.random.split(key, 3)
    fake = jax.random.normal(kf, (n, 2), _hi())
    comp = jax.random.randint(kc, (m,), 0, 8)
    ang = 2 * jnp.pi * comp / 8
    centres = 5.0 * jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1)
    real = centres + 0.5 * jax.random.normal(kn, (m, 2), _hi())
    return fake.astype(dtype), real.astype(dtype)


def _points(path: str, n_fake: int | None, n_real: int | None, dtype) -> tuple[Array, Array]:
    """``points:FILE.npz``: the user's own point clouds (arrays ``fake`` and ``real``)."""
    if not path:
        raise ValueError("`name` must be 'points:FILE.npz' with a file path; got 'points:'.")
    if os.path.isdir(path):
        raise ValueError(f"`name` 'points:{path}': {path!r} is a folder, not an .npz file.")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"`name` 'points:{path}': an .npy file holds one array; save "
                             "the arrays 'fake' and 'real' with numpy.savez into an .npz file.")
        with z:
            arrays = {k: np.asarray(z[k]) for k in ("fake", "real") if k in z}
    except FileNotFoundError:
        raise ValueError(f"`name` 'points:{path}': {path!r} does not exist.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        if str(err).startswith("`name`"):
            raise
        raise ValueError(f"`name` 'points:{path}': cannot read an .npz file "
                         f"({_first_line(err)}).") from None
    for key in ("fake", "real"):
        if key not in arrays:
            raise ValueError(f"`name` 'points:{path}': the .npz file must hold arrays "
                             f"'fake' and 'real'; '{key}' is missing.")
        a = arrays[key]
        if a.dtype.kind not in "iuf":
            raise ValueError(f"`name` 'points:{path}': array '{key}' must hold real numbers; "
                             f"got dtype {a.dtype}.")
        if a.ndim != 2 or 0 in a.shape:
            raise ValueError(f"`name` 'points:{path}': array '{key}' must have shape (n, d) "
                             f"with n, d >= 1; got {a.shape}.")
    fake, real = arrays["fake"], arrays["real"]
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"`name` 'points:{path}': 'fake' and 'real' must have the same "
                         f"dimension; got {fake.shape[1]} and {real.shape[1]}.")
    for given, arr, arg in ((n_fake, fake, "n_fake"), (n_real, real, "n_real")):
        if given is not None and given > len(arr):
            raise ValueError(f"`{arg}` must be None or at most {len(arr)} for {path!r}; "
                             f"got {given}.")
    fake = fake if n_fake is None else fake[:n_fake]
    real = real if n_real is None else real[:n_real]
    for key, a in (("fake", fake), ("real", real)):
        with np.errstate(over="ignore", invalid="ignore"):
            cast = a.astype(np.float64).astype(dtype)
        if not np.isfinite(cast).all():
            raise ValueError(f"`name` 'points:{path}': array '{key}' has values that are not "
                             f"finite in {np.dtype(dtype).name} (NaN, inf, or beyond "
                             f"±{float(jnp.finfo(dtype).max):.3g}).")
    return jnp.asarray(fake, dtype), jnp.asarray(real, dtype)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_size(value: int | None, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ValueError(f"`{name}` must be None or a positive integer; got {value!r}.")


def load(
    name: str,
    *,
    n_fake: int | None = None,
    n_real: int | None = None,
    seed: int = 0,
    dtype: jnp.dtype = jnp.float32,
) -> tuple[Float[Array, "n d"], Float[Array, "m d"]]:
    """Load a dataset as ``(fake, real)`` (see :mod:`gantk.data` for the list).

    Sampling happens in float64 and is cast to ``dtype`` at the end, so the float32 and
    float64 versions of a dataset agree to float32 precision. Note: without
    ``jax_enable_x64`` the float64 stage silently runs in float32.

    Args:
        name: one of :data:`NAMES`, ``'image:PATH'``, ``'image:PATH_FAKE,PATH_REAL'`` or
            ``'points:FILE.npz'`` (your own point clouds: arrays ``fake`` ``(n, d)`` and
            ``real`` ``(m, d)``; ``n_fake``/``n_real`` then take the first points).
        n_fake: number of fake particles (default: 500; 1024 for digits).
        n_real: number of real points (default: 500; all 1797 for digits). The fixed sets
            accept only None or their own sizes.
        seed: random seed, a 64-bit integer.
        dtype: output floating dtype (float16, bfloat16, float32, float64).

    Returns:
        ``fake`` of shape ``(n_fake, d)`` and ``real`` of shape ``(n_real, d)``.

    Raises:
        ValueError: on an unknown name, invalid sizes (e.g. more than 1797 digits), a seed
            outside the 64-bit range, a non-floating ``dtype``, an unreadable or empty image,
            a ``points:`` file without 2-D ``fake`` and ``real`` arrays of one dimension, or
            points that are not finite once cast to ``dtype`` (e.g. 1e39 in float32).
    """
    if not isinstance(name, str):
        raise ValueError(f"`name` must be a dataset name string; got {name!r}.")
    _check_size(n_fake, "n_fake")
    _check_size(n_real, "n_real")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"`seed` must be an integer; got {seed!r}.")
    if not SEED_MIN <= int(seed) <= SEED_MAX:
        raise ValueError(f"`seed` must be a 64-bit integer in [{SEED_MIN}, {SEED_MAX}]; "
                         f"got {seed}.")
    try:
        floating = bool(jnp.issubdtype(dtype, jnp.floating))
    except TypeError:
        floating = False
    if not floating:
        raise ValueError(f"`dtype` must be a floating dtype (float32, float64...); got {dtype!r}.")
    fake, real = _load(name, n_fake, n_real, int(seed), dtype)
    for arg, a in (("fake", fake), ("real", real)):
        if not bool(np.isfinite(np.asarray(a)).all()):
            raise ValueError(f"`name` {name!r}: the {arg} points are not finite in "
                             f"{np.dtype(dtype).name}.")
    return fake, real


def _load(name: str, n_fake: int | None, n_real: int | None, seed: int,
          dtype: Any) -> tuple[Array, Array]:
    key = jax.random.key(int(seed))
    kind = "image" if name.startswith("image:") else name
    if name.startswith("points:"):
        return _points(name[len("points:"):], n_fake, n_real, dtype)
    if kind in _FIXED:
        f, r = (np.asarray(a, dtype=np.float64) for a in _FIXED[kind])
        for given, arr, arg in ((n_fake, f, "n_fake"), (n_real, r, "n_real")):
            if given is not None and given != len(arr):
                raise ValueError(f"`{arg}` must be None or {len(arr)} for the fixed set "
                                 f"{name!r}; got {given}.")
        return jnp.asarray(f, dtype), jnp.asarray(r, dtype)
    if kind not in _DEFAULT_SIZES:
        raise ValueError(
            f"`name` must be one of {', '.join(NAMES)}, 'image:PATH', 'image:P1,P2' or "
            f"'points:FILE.npz'; "
            f"got {name!r}."
        )
    n_def, m_def = _DEFAULT_SIZES[kind]
    n = n_def if n_fake is None else n_fake
    m = m_def if n_real is None else n_real
    kf, kr = jax.random.split(key)
    if kind == "eight_gaussians":
        return _eight_gaussians(key, n, m, dtype)
    if kind == "digits":
        digits = _digits()
        if m > len(digits):
            raise ValueError(f"`n_real` must be at most {len(digits)} for 'digits'; got {m}.")
        idx = np.arange(len(digits)) if m == len(digits) else np.sort(
            np.asarray(jax.random.choice(kr, len(digits), (m,), replace=False)))
        real = jnp.asarray(digits[idx], dtype)
        fake = jax.random.normal(kf, (n, 64), _hi()).astype(dtype)
        return fake, real
    if kind == "density":
        src, tgt = image_density(shape_image("a")), image_density(shape_image("b"))
    elif kind == "ab":
        src, tgt = image_density(letter_image("A")), image_density(letter_image("B"))
    else:  # image:PATH or image:P1,P2
        paths = name[len("image:"):].split(",")
        if len(paths) == 1 and paths[0]:
            tgt = image_density(paths[0])
            fake = (0.5 * jax.random.normal(kf, (n, 2), _hi())).astype(dtype)
            return fake, sample_image(kr, tgt, m, dtype)
        if len(paths) != 2 or not all(paths):
            raise ValueError(f"`name` must be 'image:PATH' or 'image:P1,P2'; got {name!r}.")
        src, tgt = image_density(paths[0]), image_density(paths[1])
    return sample_image(kf, src, n, dtype), sample_image(kr, tgt, m, dtype)
