"""Plots of the paper's analysis figures (Franceschi et al., ICML 2022) and run snapshots.

Figure 1 (finite vs infinite width, :func:`plot_adequacy_1d`, :func:`plot_adequacy_2d`),
Figures 6–7 (:func:`plot_vector_field`) and Figure 2-style snapshot grids of a
:mod:`gantk.run` folder (:func:`plot_snapshots`). The numbers come from
:mod:`gantk.adequacy` (re-exported here); the command line is
``python -m gantk.figures {adequacy-1d,adequacy-2d,vector-field,snapshots} ...``
(:mod:`gantk.cli.figures`). A bad argument exits with status 2 and a one-line message.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from gantk._io import read_json, save_figure
from gantk._validate import check_positive_int
from gantk.adequacy import (
    ADEQUACY_1D_DATA,
    Adequacy1D,
    Adequacy2D,
    adequacy_1d,
    adequacy_2d,
    evenly_spaced,
    load_snapshots,
    vector_field,
)
from gantk.plot import FAKE_COLOR, REAL_COLOR, auto_limits, plot_image_grid

__all__ = [
    "ADEQUACY_1D_DATA",
    "Adequacy1D",
    "Adequacy2D",
    "adequacy_1d",
    "adequacy_2d",
    "evenly_spaced",
    "load_snapshots",
    "main",
    "plot_adequacy_1d",
    "plot_adequacy_2d",
    "plot_snapshots",
    "plot_vector_field",
    "run_image_shape",
    "vector_field",
]

#: Datasets whose points are flattened images, by the ``data`` of a run's config.json.
IMAGE_DATA = {"digits": (8, 8)}


def run_image_shape(run_dir: str | os.PathLike) -> tuple[int, int] | None:
    """``(h, w)`` if the run in ``run_dir`` used image data (from its ``config.json``)."""
    try:
        cfg = read_json(pathlib.Path(run_dir) / "config.json")
    except (OSError, ValueError):
        return None
    return IMAGE_DATA.get(cfg.get("data")) if isinstance(cfg, dict) else None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gantk.figures`` (see :func:`gantk.cli.figures.main`)."""
    from gantk.cli.figures import main as cli_main  # the CLI imports this module

    return cli_main(argv)


def plot_adequacy_1d(result: Adequacy1D, path: str | os.PathLike) -> None:
    """Draw an :class:`Adequacy1D` (mean ± std over seeds per width, and ∞) to ``path``."""
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    cmap = plt.get_cmap("viridis")
    widths = sorted(result.finite)
    for i, width in enumerate(widths):
        curves = result.finite[width]
        color = cmap(i / max(len(widths) - 1, 1) * 0.85)
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(result.grid, mean, color=color, lw=1.4,
                label=f"{width} (err/net {result.seed_errors[width].mean():.3f})")
        ax.fill_between(result.grid, mean - std, mean + std, color=color, alpha=0.15, lw=0)
    ax.plot(result.grid, result.infinite, "k--", lw=1.8, label=r"$\infty$")
    if result.discretization_error > 1e-3:
        ax.plot(result.grid, result.infinite_sgd, ":", color="0.4", lw=1.4,
                label=rf"$\infty$, same SGD steps (err {result.discretization_error:.3f})")
    ax.scatter(result.fake[:, 0], np.zeros(len(result.fake)), marker="^", s=55, c=FAKE_COLOR,
               label="fake", zorder=3)
    ax.scatter(result.real[:, 0], np.zeros(len(result.real)), marker="v", s=55, c=REAL_COLOR,
               label="real", zorder=3)
    ax.set_xlabel("$x$")
    ax.set_ylabel(r"$c_{f}(x)$")
    ax.set_title(f"{result.loss.upper()}: finite widths (mean ± std over "
                 f"{next(iter(result.finite.values())).shape[0]} seeds) vs infinite width",
                 fontsize=9)
    ax.grid(alpha=0.3, ls="--")
    ax.legend(fontsize=7, title="width", title_fontsize=7, loc="best")
    save_figure(fig, path, dpi=130, bbox_inches="tight")


def plot_adequacy_2d(result: Adequacy2D, path: str | os.PathLike) -> None:
    """Draw the finite and infinite ``f`` heatmaps side by side (shared colour scale)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
    vmax = float(max(np.abs(result.f_finite).max(), np.abs(result.f_infinite).max())) or 1.0
    panels = (
        (result.f_finite, result.v_finite, f"width {result.width}"
         + (f" (mean of {len(result.seed_errors_f)})" if len(result.seed_errors_f) > 1 else "")),
        (result.f_infinite, result.v_infinite, r"width $\infty$"),
    )
    im = None
    for ax, (f, v, name) in zip(axes, panels, strict=True):
        im = ax.imshow(f, origin="lower", extent=result.limits, cmap="coolwarm_r",
                       vmin=-vmax, vmax=vmax, aspect="equal")
        ax.quiver(result.fake[:, 0], result.fake[:, 1], v[:, 0], v[:, 1], color="k",
                  angles="xy", width=0.004, alpha=0.8)
        ax.scatter(result.fake[:, 0], result.fake[:, 1], marker="^", s=30, c=FAKE_COLOR,
                   edgecolors="w", linewidths=0.5, label="fake")
        ax.scatter(result.real[:, 0], result.real[:, 1], marker="v", s=30, c=REAL_COLOR,
                   edgecolors="w", linewidths=0.5, label="real")
        ax.set_title(f"{result.loss.upper()}, {name}: $f$ and velocity", fontsize=10)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.colorbar(im, ax=axes, fraction=0.025, pad=0.02, label="$f$")
    fig.suptitle(f"relative L2 error: f {result.error_f:.3f}, c_f {result.error_c:.3f}, "
                 f"velocity at fake points {result.error_v:.3f}", fontsize=9)
    save_figure(fig, path, dpi=120, bbox_inches="tight")


def plot_vector_field(
    grid: np.ndarray,
    velocity: np.ndarray,
    path: str | os.PathLike,
    *,
    target: Sequence[float] = (1.0, 0.0),
    title: str = "",
) -> None:
    """Quiver plot of a 2-D velocity field (arrows coloured by speed), one PNG."""
    grid, velocity = np.asarray(grid), np.asarray(velocity)
    speed = np.linalg.norm(velocity, axis=1)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    q = ax.quiver(grid[:, 0], grid[:, 1], velocity[:, 0], velocity[:, 1], speed,
                  cmap="viridis", angles="xy", pivot="tail", width=0.004)
    fig.colorbar(q, ax=ax, fraction=0.03, pad=0.02, label="speed $|v|$")
    ax.scatter([target[0]], [target[1]], marker="x", s=120, c=REAL_COLOR, linewidths=2.5,
               label="real point", zorder=3)
    ax.scatter([0.0], [0.0], marker="+", s=60, c="k", zorder=3, label="origin")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=10)
    save_figure(fig, path, dpi=130, bbox_inches="tight")


def plot_snapshots(
    run_dir: str | os.PathLike,
    path: str | os.PathLike | None = None,
    *,
    max_panels: int = 8,
    ncols: int = 4,
    image_shape: tuple[int, int] | None = None,
) -> pathlib.Path:
    """Paper-style grid of particle snapshots of one run (shared axes), one PNG.

    Up to ``max_panels`` snapshots evenly spaced in step order (first and last included).
    2-D data: fake (red) and real (blue) scatter with common limits; 1-D: histograms;
    images (``image_shape``, e.g. (8, 8) for digits): image grids of fake particles;
    otherwise the first two coordinates.

    Args:
        run_dir: a :mod:`gantk.run` output folder.
        path: output PNG; default ``<run_dir>/figures/snapshots.png``.
        max_panels: most snapshots drawn.
        ncols: panels per row.
        image_shape: ``(h, w)`` when the points are flattened images; default: read from
            the run's ``config.json`` (digits → (8, 8)), else None.

    Returns:
        The written path.

    Raises:
        ValueError: as :func:`load_snapshots`, or on ``max_panels``/``ncols`` below 1.
    """
    max_panels = check_positive_int(max_panels, "max_panels")
    ncols = check_positive_int(ncols, "ncols")
    snaps = load_snapshots(run_dir)
    chosen = [snaps[i] for i in evenly_spaced(len(snaps), max_panels)]
    if image_shape is None:
        image_shape = run_image_shape(run_dir)
    ncols = min(ncols, len(chosen))
    nrows = -(-len(chosen) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    d = chosen[0][1].shape[1]
    if d >= 2 and image_shape is None:
        limits = auto_limits(*[s[1][:, :2] for s in chosen], chosen[0][2][:, :2], margin=0.05)
    for ax, (step, fake, real) in zip(axes.flat, chosen, strict=False):
        if image_shape is not None:
            plot_image_grid(fake[:36].reshape(-1, *image_shape), ax=ax)
        elif d == 1:
            lo = min(float(np.nanmin(s[1])) for s in chosen)
            hi = max(float(np.nanmax(s[1])) for s in chosen)
            lo, hi = min(lo, float(real.min())), max(hi, float(real.max()))
            ax.hist(real[:, 0], bins=40, range=(lo, hi), color=REAL_COLOR, alpha=0.5)
            ax.hist(fake[:, 0], bins=40, range=(lo, hi), color=FAKE_COLOR, alpha=0.5)
            ax.set_yticks([])
        else:
            size = float(np.clip(2000.0 / max(len(fake), 1), 2.0, 12.0))
            ax.scatter(real[:, 0], real[:, 1], s=size, c=REAL_COLOR, lw=0, alpha=0.7)
            ax.scatter(fake[:, 0], fake[:, 1], s=size, c=FAKE_COLOR, lw=0, alpha=0.9)
            ax.set_xlim(limits[0], limits[1])
            ax.set_ylim(limits[2], limits[3])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(f"step {step}", fontsize=9)
    for ax in list(axes.flat)[len(chosen):]:
        ax.axis("off")
    run_dir = pathlib.Path(run_dir)
    fig.suptitle(run_dir.resolve().name, fontsize=10)
    if path is None:
        (run_dir / "figures").mkdir(exist_ok=True)
        path = run_dir / "figures" / "snapshots.png"
    path = pathlib.Path(path)
    save_figure(fig, path, dpi=130, bbox_inches="tight")
    return path




if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
