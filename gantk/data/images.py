"""Image densities (GAN(TK)² convention) and the package's own generated images."""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageDensity", "image_density", "letter_image", "sample_image", "shape_image"]


class ImageDensity(NamedTuple):
    """A Gaussian mixture with one component per pixel of a greyscale image.

    Attributes:
        means: component centres on the grid over [−1, 1]², shape ``(k, 2)`` (only pixels
            with positive weight are kept).
        probs: mixture weights, shape ``(k,)``, summing to 1.
        std: component standard deviations ``(1/w, 1/h)``, shape ``(2,)``.
    """

    means: np.ndarray
    probs: np.ndarray
    std: np.ndarray


def _to_grey(image: str | os.PathLike | np.ndarray) -> np.ndarray:
    if isinstance(image, str | os.PathLike):
        path = os.fspath(image)
        if os.path.isdir(path):
            raise ValueError(f"`image` must be an image file; {path!r} is a folder.")
        if not os.path.isfile(path):
            raise ValueError(f"`image` must be a readable PNG file; {path!r} does not exist.")
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("L"), dtype=np.float64)
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"`image` must be a readable image file; cannot read {path!r}: "
                             f"{err}") from None
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 3:  # RGB(A) → luminance (ITU-R 601-2, as PIL's "L")
        arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114])
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(f"`image` must be a 2-D greyscale array (h, w); got shape {arr.shape}.")
    return arr


def image_density(image: str | os.PathLike | np.ndarray) -> ImageDensity:
    """The Gaussian-mixture density of an image, as in GAN(TK)².

    Greyscale weight ``max − pixel`` (dark = mass, white = none); pixel ``(r, c)`` of an
    ``h × w`` image is centred at ``(linspace(−1, 1, w)[c], linspace(−1, 1, h)[h − 1 − r])``
    (upright), with component std ``(1/w, 1/h)``.

    Args:
        image: a path to an image file (PNG...) or an array ``(h, w)`` / ``(h, w, 3|4)``.

    Raises:
        ValueError: if the file is missing or unreadable, the array is not an image, or the
            image has no mass (all pixels equal, e.g. all white).
    """
    grey = _to_grey(image)
    h, w = grey.shape
    weight = grey.max() - grey
    total = weight.sum()
    if not np.isfinite(total) or total <= 0:
        where = image if isinstance(image, str | os.PathLike) else "the array"
        raise ValueError(f"`image` must have some dark pixels (mass); {where} is uniform.")
    xs = np.linspace(-1.0, 1.0, w)
    ys = np.linspace(-1.0, 1.0, h)[::-1]
    gx, gy = np.meshgrid(xs, ys)  # (h, w): row r → y = ys[r], column c → x = xs[c]
    keep = weight.ravel() > 0
    means = np.stack([gx.ravel(), gy.ravel()], 1)[keep]
    probs = weight.ravel()[keep] / total
    return ImageDensity(means, probs, np.array([1.0 / w, 1.0 / h]))


def sample_image(
    key: PRNGKeyArray, density: ImageDensity, n: int, dtype: jnp.dtype = jnp.float32
) -> Float[Array, "n 2"]:
    """Draw ``n`` points from an :class:`ImageDensity` (pick a pixel, add Gaussian noise).

    Raises:
        ValueError: if ``n`` < 1.
    """
    if n < 1:
        raise ValueError(f"`n` must be a positive integer; got {n}.")
    kc, kn = jax.random.split(key)
    idx = jax.random.choice(kc, len(density.probs), (n,), p=jnp.asarray(density.probs))
    hi = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    noise = jax.random.normal(kn, (n, 2), dtype=hi)
    pts = jnp.asarray(density.means)[idx] + noise * jnp.asarray(density.std)
    return pts.astype(dtype)


@functools.cache
def letter_image(letter: str, size: int = 64) -> np.ndarray:
    """A ``size × size`` greyscale (0 = black ink, 255 = white) rendering of ``letter``.

    Rendered with matplotlib's Agg backend and its bundled DejaVu Sans Bold font, so the
    result is identical on every machine.

    Raises:
        ValueError: if ``letter`` is not a single character.
    """
    if not isinstance(letter, str) or len(letter) != 1:
        raise ValueError(f"`letter` must be a single character; got {letter!r}.")
    fig = Figure(figsize=(1, 1), dpi=size)
    canvas = FigureCanvasAgg(fig)
    fig.text(0.5, 0.45, letter, ha="center", va="center", fontsize=0.8 * 72,
             fontfamily="DejaVu Sans", fontweight="bold", color="black")
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float64)
    grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(grey), 0, 255).astype(np.uint8)


@functools.cache
def shape_image(which: str, size: int = 100) -> np.ndarray:
    """Smooth procedural densities like the paper's ``density_a``/``density_b`` pictures.

    ``'a'``: a tilted ellipse in the lower left; ``'b'``: a crescent in the upper right.
    Returned as ``size × size`` greyscale (0 = full mass, 255 = none), soft-edged.

    Raises:
        ValueError: if ``which`` is not ``'a'`` or ``'b'``.
    """
    u = np.linspace(-1, 1, size)
    x, y = np.meshgrid(u, u[::-1])
    if which == "a":
        c, s = np.cos(0.5), np.sin(0.5)
        xr, yr = c * (x + 0.45) + s * (y + 0.35), -s * (x + 0.45) + c * (y + 0.35)
        r = (xr / 0.32) ** 2 + (yr / 0.16) ** 2
    elif which == "b":
        r_out = np.hypot(x - 0.35, y - 0.3) / 0.45
        r_in = np.hypot(x - 0.5, y - 0.42) / 0.36
        r = np.maximum(r_out**2, 2.0 - r_in**2)
    else:
        raise ValueError(f"`which` must be 'a' or 'b'; got {which!r}.")
    mass = 0.5 * (1.0 - np.tanh((r - 1.0) * 6.0))  # soft edge (logistic)
    return np.round(255 * (1 - mass)).astype(np.uint8)
