"""Figures: particle clouds, discriminator heatmaps, velocity fields, metric curves, GIFs.

All functions use matplotlib's non-interactive Agg backend and write files atomically
(:mod:`gantk._io`). Colours follow GAN(TK)²: fake particles in red, real points in blue.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from gantk._io import atomic_open, save_figure

__all__ = [
    "FAKE_COLOR",
    "REAL_COLOR",
    "auto_limits",
    "plot_flow_state",
    "plot_image_grid",
    "plot_metrics",
    "render_frame",
    "save_gif",
    "save_step_figure",
]

FAKE_COLOR = "#d62728"
REAL_COLOR = "#1f77b4"


def auto_limits(*clouds: np.ndarray, margin: float = 0.15) -> tuple[float, float, float, float]:
    """Square-ish plotting box ``(xmin, xmax, ymin, ymax)`` around 2-D point clouds.

    Args:
        *clouds: arrays of shape ``(n_i, 2)``; non-finite rows are ignored.
        margin: fraction of the span added on each side.
    """
    pts = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1, 2) for c in clouds])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if pts.size == 0:
        return (-1.0, 1.0, -1.0, 1.0)
    lo, hi = pts.min(0), pts.max(0)
    span = max(float((hi - lo).max()), 1e-3)
    mid = (lo + hi) / 2
    half = span * (0.5 + margin)
    return (mid[0] - half, mid[0] + half, mid[1] - half, mid[1] + half)


def plot_flow_state(
    ax: Any,
    fake: np.ndarray,
    real: np.ndarray,
    *,
    values_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    velocity_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    limits: tuple[float, float, float, float] | None = None,
    resolution: int = 80,
    quiver_resolution: int = 16,
    title: str | None = None,
) -> Any:
    """Draw fake and real 2-D points, a heatmap of ``f_τ`` and a quiver of the velocity.

    Args:
        ax: a matplotlib Axes.
        fake: fake particles, shape ``(n, 2)``.
        real: real points, shape ``(m, 2)``.
        values_fn: ``f_τ(points (q, 2)) -> (q,)`` drawn as a heatmap, or None.
        velocity_fn: ``v(points (q, 2)) -> (q, 2)`` drawn as arrows, or None.
        limits: ``(xmin, xmax, ymin, ymax)``; default :func:`auto_limits`.
        resolution: heatmap grid size per axis.
        quiver_resolution: arrow grid size per axis.
        title: axes title.

    Returns:
        The heatmap's image handle (for a colorbar), or None.

    Raises:
        ValueError: if the points are not 2-D.
    """
    fake, real = np.asarray(fake), np.asarray(real)
    if fake.ndim != 2 or fake.shape[1] != 2 or real.ndim != 2 or real.shape[1] != 2:
        raise ValueError(
            f"`fake` and `real` must have shape (n, 2); got {fake.shape} and {real.shape}."
        )
    x0, x1, y0, y1 = limits if limits is not None else auto_limits(fake, real)
    im = None
    if values_fn is not None:
        gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
        grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(fake.dtype)
        vals = np.asarray(values_fn(grid)).reshape(resolution, resolution)
        vmax = float(np.nanmax(np.abs(vals))) or 1.0
        im = ax.imshow(
            vals, origin="lower", extent=(x0, x1, y0, y1), cmap="coolwarm_r", vmin=-vmax,
            vmax=vmax, alpha=0.75, aspect="auto",
        )
    if velocity_fn is not None:
        qx, qy = np.meshgrid(
            np.linspace(x0, x1, quiver_resolution), np.linspace(y0, y1, quiver_resolution)
        )
        qgrid = np.stack([qx.ravel(), qy.ravel()], 1).astype(fake.dtype)
        v = np.asarray(velocity_fn(qgrid))
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        scale = np.where(norm > 0, 1.0 / np.maximum(norm, 1e-30), 0.0) ** 0.5  # sqrt-compress
        v = v * scale * np.sqrt(np.nanmax(norm) if np.isfinite(norm).any() else 1.0)
        ax.quiver(qgrid[:, 0], qgrid[:, 1], v[:, 0], v[:, 1], color="k", alpha=0.6,
                  angles="xy", width=0.003)
    ax.scatter(real[:, 0], real[:, 1], s=4, c=REAL_COLOR, label="real", alpha=0.8, lw=0)
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c=FAKE_COLOR, label="fake", alpha=0.8, lw=0)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title, fontsize=9)
    return im


def plot_image_grid(
    images: np.ndarray, *, nrow: int | None = None, ax: Any = None, title: str | None = None
) -> Any:
    """Draw images of shape ``(k, h, w)`` (values in [-1, 1]) as one tiled greyscale image.

    Raises:
        ValueError: if ``images`` is not rank 3.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"`images` must have shape (k, h, w); got {images.shape}.")
    k, h, w = images.shape
    nrow = nrow or int(math.ceil(math.sqrt(k)))
    ncol = int(math.ceil(k / nrow))
    canvas = np.full((nrow * (h + 1) + 1, ncol * (w + 1) + 1), -1.0)
    for i in range(k):
        r, c = divmod(i, ncol)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = (
            np.clip(images[i], -1, 1)
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(canvas, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def save_step_figure(
    path: str | os.PathLike,
    fake: np.ndarray,
    real: np.ndarray,
    *,
    step: int,
    values_fn: Callable | None = None,
    velocity_fn: Callable | None = None,
    limits: tuple[float, float, float, float] | None = None,
    subtitle: str = "",
    image_shape: tuple[int, int] | None = None,
) -> None:
    """Write the figure of one flow step: data-dependent layout, one PNG.

    - ``image_shape=(h, w)`` (points are flattened ``h × w`` images, e.g. 8×8 digits): a
      grid of fake particles as images, beside real ones.
    - 2-D data: fake/real scatter over the ``f_τ`` heatmap with the velocity quiver.
    - 1-D data: histograms of fake/real with ``f_τ`` and the velocity as curves.
    - other dimensions: the first two coordinates.

    Args:
        path: output PNG path.
        fake: fake particles ``(n, d)``; real: real points ``(m, d)``.
        step: the generator step (for the title).
        values_fn: ``f_τ(points (q, d)) -> (q,)`` (1-D and 2-D data), or None.
        velocity_fn: ``v(points (q, d)) -> (q, d)`` (1-D and 2-D data), or None.
        limits: ``(xmin, xmax, ymin, ymax)`` of 2-D plots; default :func:`auto_limits`.
        subtitle: appended to the title.
        image_shape: ``(h, w)`` with ``h * w == d`` when the points are images.

    Raises:
        ValueError: if ``image_shape`` does not match ``d``.
    """
    fake, real = np.asarray(fake), np.asarray(real)
    d = fake.shape[1]
    _check_image_shape(image_shape, d)
    title = f"step {step}" + (f" — {subtitle}" if subtitle else "")
    if image_shape is not None:
        fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
        k = min(64, fake.shape[0])
        plot_image_grid(fake[:k].reshape(k, *image_shape), ax=axes[0], title=f"fake — {title}")
        plot_image_grid(real[:k].reshape(-1, *image_shape)[:k], ax=axes[1], title="real")
    elif d == 2:
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        im = plot_flow_state(ax, fake, real, values_fn=values_fn, velocity_fn=velocity_fn,
                             limits=limits, title=title)
        if im is not None:
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=r"$f_\tau$")
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    elif d == 1:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        lo = float(min(fake.min(), real.min())) - 1
        hi = float(max(fake.max(), real.max())) + 1
        grid = np.linspace(lo, hi, 400)[:, None].astype(fake.dtype)
        ax.hist(real[:, 0], bins=40, range=(lo, hi), color=REAL_COLOR, alpha=0.5, label="real",
                density=True)
        ax.hist(fake[:, 0], bins=40, range=(lo, hi), color=FAKE_COLOR, alpha=0.5, label="fake",
                density=True)
        if values_fn is not None:
            ax2 = ax.twinx()
            ax2.plot(grid[:, 0], np.asarray(values_fn(grid)), "k-", lw=1, label=r"$f_\tau$")
            if velocity_fn is not None:
                ax2.plot(grid[:, 0], np.asarray(velocity_fn(grid))[:, 0], "k--", lw=1,
                         label="velocity")
            ax2.legend(loc="upper left", fontsize=7)
        ax.legend(loc="upper right", fontsize=7)
        ax.set_title(title, fontsize=9)
    else:
        fig, ax = plt.subplots(figsize=(5, 4.6))
        plot_flow_state(ax, fake[:, :2], real[:, :2], limits=limits,
                        title=f"{title} (first 2 of {d} coords)")
    save_figure(fig, path, dpi=110, bbox_inches="tight")


def render_frame(
    fake: np.ndarray,
    real: np.ndarray,
    *,
    step: int,
    limits: tuple[float, float, float, float] | None = None,
    size_px: int = 320,
    image_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Render a small RGB frame (``(size_px, size_px, 3)`` uint8) of a flow state for GIFs.

    Image data (``image_shape=(h, w)``) is drawn as an image grid of the first 36
    particles; other data as a scatter of the first two coordinates (1-D on a line).

    Raises:
        ValueError: if ``image_shape`` does not match the dimension of the points.
    """
    fake, real = np.asarray(fake), np.asarray(real)
    _check_image_shape(image_shape, fake.shape[1])
    dpi = 80
    fig = plt.figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    if image_shape is not None:
        plot_image_grid(fake[:36].reshape(-1, *image_shape), ax=ax)
    else:
        f2 = fake[:, :2] if fake.shape[1] >= 2 else np.c_[fake[:, 0], np.zeros(len(fake))]
        r2 = real[:, :2] if real.shape[1] >= 2 else np.c_[real[:, 0], np.zeros(len(real))]
        x0, x1, y0, y1 = limits if limits is not None else auto_limits(f2, r2)
        ax.scatter(r2[:, 0], r2[:, 1], s=3, c=REAL_COLOR, lw=0)
        ax.scatter(f2[:, 0], f2[:, 1], s=3, c=FAKE_COLOR, lw=0)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.text(0.02, 0.97, f"step {step}", transform=ax.transAxes, va="top", fontsize=9)
    fig.canvas.draw()
    frame = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return frame


def _check_image_shape(image_shape: tuple[int, int] | None, d: int) -> None:
    if image_shape is not None and (len(image_shape) != 2
                                    or image_shape[0] * image_shape[1] != d):
        raise ValueError(f"`image_shape` must be (h, w) with h * w = d = {d}; "
                         f"got {image_shape!r}.")


def save_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], *, fps: float = 8.0) -> None:
    """Write RGB frames (uint8 arrays of equal shape) as an animated GIF, atomically.

    Raises:
        ValueError: if ``frames`` is empty.
    """
    from PIL import Image

    if len(frames) == 0:
        raise ValueError("`frames` must contain at least one frame; got none.")
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(1000 / fps), loop=0)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


def plot_metrics(
    path: str | os.PathLike,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str] = ("sinkhorn", "energy", "mmd"),
    *,
    gen_loss: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Log-scale curves of metrics against the generator step, one PNG.

    Args:
        path: output PNG path.
        rows: dicts with a ``'step'`` entry and the ``keys`` (as written to metrics.csv);
            missing and None values are skipped.
        keys: metric names to draw (positive values on a log axis).
        gen_loss: optional per-step mean generator loss (drawn on its own panel).
        title: figure title.
    """
    n_panels = 1 + (gen_loss is not None)
    fig, axes = plt.subplots(1, n_panels, figsize=(5.5 * n_panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    steps = np.array([r["step"] for r in rows], dtype=float)
    for key in keys:
        vals = np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows],
                        dtype=float)
        ok = np.isfinite(vals) & (vals > 0)
        if ok.any():
            ax.plot(steps[ok], vals[ok], marker="o", ms=3, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("divergence to real")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if gen_loss is not None:
        ax2 = axes[0, 1]
        g = np.asarray([np.nan if v is None else v for v in gen_loss], dtype=float)
        ax2.plot(np.arange(1, len(g) + 1), g, lw=1)
        if np.all(g[np.isfinite(g)] > 0) and np.isfinite(g).any():
            ax2.set_yscale("log")
        ax2.set_xlabel("generator step")
        ax2.set_ylabel("mean generator loss c(f)")
        ax2.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
