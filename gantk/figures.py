"""The paper's analysis figures: finite vs infinite width, vector fields, flow snapshots.

Reproduces the diagnostic figures of Franceschi et al., *A Neural Tangent Kernel
Perspective of GANs* (ICML 2022) — Figure 1 (adequacy of the infinite-width model to
finite networks, in 1-D and 2-D), Figures 6–7 (velocity fields of one particle against one
target for ReLU, bias-free ReLU and RBF discriminators) and Figure 2-style particle
snapshots — as library functions returning arrays, plus a command line::

    python -m gantk.figures adequacy-1d --loss ipm|lsgan [--out DIR]
    python -m gantk.figures adequacy-2d [--data density] [--loss lsgan] [--width 512]
    python -m gantk.figures vector-field --kernel relu|relu-nobias|rbf --loss ipm|lsgan
    python -m gantk.figures snapshots RUN_DIR [--out PNG]

Each command writes PNGs and prints the numbers behind them. A bad argument exits with
status 2 and a one-line message.

Conventions: ``c_f`` is the per-particle generator loss ``c(f(x))`` of :mod:`gantk.losses`;
the velocity is ``v(x) = −∇_x c(f_τ(x))`` with the discriminator's train set held fixed;
finite networks are trained by :func:`gantk.nets.fit_finite_discriminator` (antisymmetric,
SGD, ``round(τ/lr)`` steps) and compared with :func:`gantk.discriminator.discriminator` on
the NTK of the same :class:`~gantk.architectures.MLPSpec`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import pathlib
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from gantk.cli.errors import UsageError
from gantk.cli.paths import check_output_file

__all__ = [
    "ADEQUACY_1D_DATA",
    "Adequacy1D",
    "Adequacy2D",
    "adequacy_1d",
    "adequacy_2d",
    "build_parser",
    "load_snapshots",
    "main",
    "plot_adequacy_1d",
    "plot_adequacy_2d",
    "plot_snapshots",
    "plot_vector_field",
    "vector_field",
]

#: The GAN(TK)² 1-D datasets of Figure 1: ``modes_1d`` for LSGAN, ``modes_1d_overlap`` for IPM.
ADEQUACY_1D_DATA = {"lsgan": "modes_1d", "ipm": "modes_1d_overlap"}

_DEFAULT_SPEC_ARGS = dict(activation="relu", depth=3, W_std=1.0, b_std=1.0)


def _default_spec(width: int = 512) -> Any:
    from gantk.architectures import MLPSpec

    return MLPSpec(**_DEFAULT_SPEC_ARGS, width=width)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 error ``‖a − b‖ / ‖b‖``."""
    return float(np.linalg.norm(np.ravel(a - b)) / max(np.linalg.norm(np.ravel(b)), 1e-300))


def _finite_discriminators(
    loss: Any, spec: Any, fake: Any, real: Any, time: float, lr: float, seeds: int
) -> list[tuple[Any, Any]]:
    """``(initial params, trained FiniteDiscriminator)`` for seeds ``0 … seeds − 1``."""
    import jax

    from gantk import nets

    dtype = np.asarray(fake).dtype
    out = []
    for seed in range(seeds):
        params = nets.init_discriminator(
            jax.random.PRNGKey(seed), spec, int(np.shape(fake)[1]), antisymmetric=True,
            dtype=dtype,
        )
        out.append((params,
                    nets.fit_finite_discriminator(loss, spec, params, fake, real, time, lr)))
    return out


# --------------------------------------------------------------------------------------
# Figure 1, left: 1-D adequacy
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Adequacy1D:
    """Generator loss ``c_f`` of finite-width discriminators against the infinite-width one.

    Attributes:
        loss: the loss name.
        fake: fake points, shape ``(n, 1)``.
        real: real points, shape ``(m, 1)``.
        grid: evaluation grid, shape ``(q,)``.
        infinite: ``c(f_τ(grid))`` of the infinite-width discriminator, shape ``(q,)``.
        finite: width → ``c(f(grid))`` of each seed's trained network, shape ``(seeds, q)``.
        errors: width → relative L2 error of the seed-averaged curve (the plotted one).
        seed_errors: width → relative L2 error of each seed's curve, shape ``(seeds,)``.
        infinite_sgd: ``c`` on ``grid`` of the infinite-width discriminator trained by the
            *same* discrete SGD (``round(τ/lr)`` kernel gradient steps of size ``lr``),
            shape ``(q,)``: the limit of the finite networks as width → ∞ at fixed ``lr``.
        discretization_error: relative L2 error of ``infinite_sgd`` against ``infinite``
            (the part of the finite-vs-∞ error due to ``lr`` rather than width).
        errors_same_lr: width → relative L2 error of the seed-averaged curve against
            ``infinite_sgd`` (the part due to width alone).
        kernel_errors: width → for each seed, relative L2 error against ``infinite_sgd`` of
            the NTK-regime prediction made with that network's *own* empirical NTK at
            initialization (same SGD, kernel held fixed), shape ``(seeds,)``: the part of
            the error due to the random finite-width kernel.
        linearization_errors: width → for each seed, relative L2 error of the trained
            network against that own-NTK prediction, shape ``(seeds,)``: the part due to
            the kernel moving during training (the network is not exactly linear).
    """

    loss: str
    fake: np.ndarray
    real: np.ndarray
    grid: np.ndarray
    infinite: np.ndarray
    finite: dict[int, np.ndarray]
    errors: dict[int, float]
    seed_errors: dict[int, np.ndarray]
    infinite_sgd: np.ndarray
    discretization_error: float
    errors_same_lr: dict[int, float]
    kernel_errors: dict[int, np.ndarray]
    linearization_errors: dict[int, np.ndarray]


def adequacy_1d(
    loss: str,
    fake: Any,
    real: Any,
    *,
    widths: Sequence[int] = (64, 128, 256, 512),
    seeds: int = 20,
    time: float = 1.0,
    lr: float = 0.1,
    spec: Any = None,
    grid: Any = None,
    progress: bool = False,
) -> Adequacy1D:
    """Compare trained finite discriminators with the infinite-width one on a 1-D grid.

    Franceschi et al. (ICML 2022), Figure 1 (left): for each width, ``seeds`` antisymmetric
    networks (``f₀ = 0``) are trained by SGD (step ``lr``, ``round(time/lr)`` steps) on
    ``fake`` vs ``real``; their generator loss ``c(f(x))`` on ``grid`` is compared with
    ``c(f_τ(x))`` of the infinite-width discriminator with the NTK of the same architecture.

    Args:
        loss: a loss name of :mod:`gantk.losses` (the paper uses ``'ipm'`` and ``'lsgan'``).
        fake: fake points, shape ``(n, 1)``.
        real: real points, shape ``(m, 1)``.
        widths: hidden widths of the finite networks.
        seeds: networks per width (initialization seeds ``0 … seeds − 1``).
        time: discriminator training time ``τ``.
        lr: SGD learning rate of the finite networks.
        spec: the :class:`~gantk.architectures.MLPSpec` (its width is replaced); default:
            ReLU, depth 3, ``W_std = b_std = 1`` (GAN(TK)²'s ``ade1d`` configuration).
        grid: evaluation points, shape ``(q,)``; default 200 points in ``[−3, 3]``.
        progress: show a tqdm bar over the widths.

    Returns:
        An :class:`Adequacy1D`.

    Raises:
        ValueError: on points that are not ``(n, 1)``, an empty or non-positive ``widths``,
            ``seeds < 1``, or invalid ``time``/``lr`` (from the trainers).
    """
    from tqdm.auto import tqdm

    from gantk import nets
    from gantk._validate import as_points, check_positive_int
    from gantk.discriminator import discriminator

    fake = as_points(fake, "fake", dim=1)
    real = as_points(real, "real", dim=1, dim_name="fake")
    seeds = check_positive_int(seeds, "seeds")
    widths = [check_positive_int(w, "widths") for w in widths]
    if not widths:
        raise ValueError("`widths` must list at least one width; got none.")
    spec = _default_spec() if spec is None else spec
    grid = np.linspace(-3.0, 3.0, 200) if grid is None else np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"`grid` must be a non-empty 1-D array; got shape {grid.shape}.")
    pts = grid[:, None].astype(np.asarray(fake).dtype)
    k = spec.k()
    D_inf = discriminator(loss, k, fake, real, time)
    infinite = np.asarray(D_inf.generator_loss(pts), dtype=np.float64)
    infinite_sgd = _kernel_sgd_generator_loss(loss, k, fake, real, time, lr, pts)
    finite, errors, seed_errors, errors_same_lr = {}, {}, {}, {}
    kernel_errors, linearization_errors = {}, {}
    for width in tqdm(widths, desc="widths", disable=not progress, leave=False):
        wspec = spec.replace(width=width)
        ntk_fn = nets.empirical_ntk(nets.discriminator_apply(wspec, antisymmetric=True))
        fits = _finite_discriminators(loss, wspec, fake, real, time, lr, seeds)
        curves = np.stack([np.asarray(D.generator_loss(pts), dtype=np.float64)
                           for _, D in fits])
        own = np.stack([
            _kernel_sgd_generator_loss(loss, functools.partial(_at, ntk_fn, p0), fake, real,
                                       time, lr, pts)
            for p0, _ in fits])
        kernel_errors[width] = np.array([_rel(o, infinite_sgd) for o in own])
        linearization_errors[width] = np.array(
            [_rel(c, o) for c, o in zip(curves, own, strict=True)])
        finite[width] = curves
        errors[width] = _rel(curves.mean(0), infinite)
        seed_errors[width] = np.array([_rel(c, infinite) for c in curves])
        errors_same_lr[width] = _rel(curves.mean(0), infinite_sgd)
    return Adequacy1D(
        loss=str(loss), fake=np.asarray(fake), real=np.asarray(real), grid=grid,
        infinite=infinite, finite=finite, errors=errors, seed_errors=seed_errors,
        infinite_sgd=infinite_sgd, discretization_error=_rel(infinite_sgd, infinite),
        errors_same_lr=errors_same_lr, kernel_errors=kernel_errors,
        linearization_errors=linearization_errors,
    )


def _at(ntk_fn: Callable, params: Any, x1: Any, x2: Any) -> Any:
    """``ntk_fn(x1, x2, params)`` as a two-argument kernel."""
    return ntk_fn(x1, x2, params)


def _kernel_sgd_generator_loss(
    loss: Any, k: Callable, fake: Any, real: Any, time: float, lr: float, points: Any
) -> np.ndarray:
    """``c(f(points))`` after ``round(time/lr)`` kernel-GD steps ``α ← α − lr ∇_f L(Kα)``.

    The infinite-width limit of SGD on a network whose NTK is ``k`` with ``f₀ = 0``, at the
    same learning rate (no ``lr → 0`` limit).
    """
    import jax
    import jax.numpy as jnp

    from gantk import losses

    loss = losses.get(loss)
    n = fake.shape[0]
    train = jnp.concatenate([fake, real])
    gram = k(train, train)
    steps = int(round(float(time) / float(lr)))

    def step(alpha: jax.Array, _: None) -> tuple[jax.Array, None]:
        f = gram @ alpha
        grad = jax.grad(lambda v: loss.discriminator_loss(v[:n], v[n:]))(f)
        return alpha - lr * grad, None

    alpha, _ = jax.lax.scan(step, jnp.zeros(train.shape[0], gram.dtype), None, length=steps)
    return np.asarray(loss.c(k(jnp.asarray(points), train) @ alpha), dtype=np.float64)


def plot_adequacy_1d(result: Adequacy1D, path: str | os.PathLike) -> None:
    """Draw an :class:`Adequacy1D` (mean ± std over seeds per width, and ∞) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk._io import save_figure
    from gantk.plot import FAKE_COLOR, REAL_COLOR

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


# --------------------------------------------------------------------------------------
# Figure 1, right: 2-D adequacy
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Adequacy2D:
    """Finite-width vs infinite-width discriminator on a 2-D grid.

    Attributes:
        loss: the loss name.
        width: width of the finite networks.
        fake: fake points ``(n, 2)``; real: real points ``(m, 2)``.
        limits: ``(xmin, xmax, ymin, ymax)`` of the grid.
        f_finite: seed-averaged ``f`` of the finite networks, shape ``(res, res)`` (rows: y).
        f_infinite: ``f_τ`` of the infinite-width discriminator, shape ``(res, res)``.
        v_finite: seed-averaged velocity at the fake points, ``(n, 2)``.
        v_infinite: infinite-width velocity at the fake points, ``(n, 2)``.
        error_f: relative L2 error of ``f`` on the grid.
        error_c: relative L2 error of ``c_f`` on the grid.
        error_v: relative L2 error of the velocities at the fake points.
        seed_errors_f: relative L2 error of ``f`` of each network alone, ``(seeds,)``.
    """

    loss: str
    width: int
    fake: np.ndarray
    real: np.ndarray
    limits: tuple[float, float, float, float]
    f_finite: np.ndarray
    f_infinite: np.ndarray
    v_finite: np.ndarray
    v_infinite: np.ndarray
    error_f: float
    error_c: float
    error_v: float
    seed_errors_f: np.ndarray


def adequacy_2d(
    loss: str,
    fake: Any,
    real: Any,
    *,
    width: int = 512,
    seeds: int = 1,
    time: float = 1.0,
    lr: float = 0.1,
    spec: Any = None,
    resolution: int = 100,
    limits: tuple[float, float, float, float] | None = None,
) -> Adequacy2D:
    """Compare a trained width-``width`` discriminator with the infinite-width one in 2-D.

    Franceschi et al. (ICML 2022), Figure 1 (right; GAN(TK)²'s ``ade2d`` configuration is
    LSGAN, ReLU depth 3, width 512, 30 + 30 points of the *density* images).

    Args:
        loss: a loss name of :mod:`gantk.losses`.
        fake: fake points ``(n, 2)``.
        real: real points ``(m, 2)``.
        width: hidden width of the finite networks.
        seeds: networks averaged (initialization seeds ``0 … seeds − 1``).
        time: discriminator training time ``τ``.
        lr: SGD learning rate.
        spec: architecture (width replaced); default ReLU depth 3, ``b_std = 1``.
        resolution: grid points per axis.
        limits: grid box; default :func:`gantk.plot.auto_limits` of the points.

    Returns:
        An :class:`Adequacy2D`.

    Raises:
        ValueError: on points that are not ``(n, 2)`` or invalid sizes.
    """
    from gantk._validate import as_points, check_positive_int
    from gantk.discriminator import discriminator
    from gantk.plot import auto_limits

    fake = as_points(fake, "fake", dim=2)
    real = as_points(real, "real", dim=2, dim_name="fake")
    width = check_positive_int(width, "width")
    seeds = check_positive_int(seeds, "seeds")
    resolution = check_positive_int(resolution, "resolution")
    spec = _default_spec(width) if spec is None else spec.replace(width=width)
    limits = auto_limits(np.asarray(fake), np.asarray(real)) if limits is None else limits
    x0, x1, y0, y1 = limits
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.asarray(fake).dtype)
    D_inf = discriminator(loss, spec.k(), fake, real, time)
    f_inf = np.asarray(D_inf(grid), dtype=np.float64)
    v_inf = np.asarray(D_inf.velocity(fake), dtype=np.float64)
    Ds = [D for _, D in _finite_discriminators(loss, spec, fake, real, time, lr, seeds)]
    f_each = np.stack([np.asarray(D(grid), dtype=np.float64) for D in Ds])
    f_fin = f_each.mean(0)
    c_fin = np.mean([np.asarray(D.generator_loss(grid), dtype=np.float64) for D in Ds], axis=0)
    v_fin = np.mean([np.asarray(D.velocity(fake), dtype=np.float64) for D in Ds], axis=0)
    c_inf = np.asarray(D_inf.generator_loss(grid), dtype=np.float64)
    shape = (resolution, resolution)
    return Adequacy2D(
        loss=str(loss), width=width, fake=np.asarray(fake), real=np.asarray(real),
        limits=tuple(float(v) for v in limits), f_finite=f_fin.reshape(shape),
        f_infinite=f_inf.reshape(shape), v_finite=v_fin, v_infinite=v_inf,
        error_f=_rel(f_fin, f_inf), error_c=_rel(c_fin, c_inf), error_v=_rel(v_fin, v_inf),
        seed_errors_f=np.array([_rel(f, f_inf) for f in f_each]),
    )


def plot_adequacy_2d(result: Adequacy2D, path: str | os.PathLike) -> None:
    """Draw the finite and infinite ``f`` heatmaps side by side (shared colour scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk._io import save_figure
    from gantk.plot import FAKE_COLOR, REAL_COLOR

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


# --------------------------------------------------------------------------------------
# Figures 6-7: vector fields of one particle against one target
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _spec_kernel(spec: Any) -> Callable:
    return spec.k()


def _kernel(kernel: Any) -> Callable:
    from gantk.architectures import KERNELS, MLPSpec, get_spec

    if isinstance(kernel, str):
        if kernel not in KERNELS:
            valid = ", ".join(repr(k) for k in KERNELS)
            raise ValueError(f"`kernel` must be one of {valid}; got {kernel!r}.")
        return _spec_kernel(get_spec(kernel))
    if isinstance(kernel, MLPSpec):
        return _spec_kernel(kernel)
    if callable(kernel):
        return kernel
    raise ValueError(f"`kernel` must be a name, an MLPSpec or k(x1, x2); got {kernel!r}.")


def vector_field(
    kernel: Any,
    loss: Any,
    grid: Any,
    *,
    target: Sequence[float] = (1.0, 0.0),
    time: float = 1.0,
) -> np.ndarray:
    """Velocity of a lone fake particle against one real point, at every grid position.

    For each grid point ``x`` the infinite-width discriminator is trained for time ``τ`` on
    fake ``{x}`` vs real ``{target}`` and the particle's velocity
    ``v(x) = −∇_x c(f_τ(x))`` is returned (Franceschi et al., ICML 2022, Figures 6–7;
    GAN(TK)²'s ``plot_vector_field``). For the IPM loss,
    ``v(x) = τ (∇₁k(x, target) − ∇₁k(x, x))`` (``∇₁``: gradient in the first argument, the
    train set held fixed). The bias-free ReLU NTK is not differentiable at the origin; the
    value returned there is whatever one-sided derivative JAX's ``relu`` convention gives.

    Args:
        kernel: a :data:`~gantk.architectures.KERNELS` name (``'relu'``,
            ``'relu-nobias'``, ``'rbf'``, ...), an :class:`~gantk.architectures.MLPSpec`, or
            a kernel ``k(x1, x2) -> (n1, n2)``.
        loss: a loss name or :class:`gantk.losses.Loss`.
        grid: particle positions, shape ``(q, d)``.
        target: the real point, length ``d``.
        time: discriminator training time ``τ``.

    Returns:
        Velocities, shape ``(q, d)`` (numpy).

    Raises:
        ValueError: on an unknown kernel, a ``grid`` that is not ``(q, d)`` or a ``target``
            of another dimension.
    """
    import jax.numpy as jnp

    from gantk import losses
    from gantk._validate import as_points

    k = _kernel(kernel)
    grid = as_points(grid, "grid")
    target = as_points(jnp.asarray(target, dtype=grid.dtype)[None], "target",
                       dim=grid.shape[1], dim_name="grid")

    return np.asarray(_field_fn(k, losses.get(loss), float(time))(grid, target))


@functools.lru_cache(maxsize=32)
def _field_fn(k: Callable, loss: Any, time: float) -> Callable:
    """Jitted ``(grid (q, d), target (1, d)) -> velocities (q, d)``, cached per problem."""
    import jax

    from gantk.discriminator import discriminator

    def one(x: jax.Array, y: jax.Array) -> jax.Array:
        D = discriminator(loss, k, x[None], y, time)
        return D.velocity(x[None])[0]

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def plot_vector_field(
    grid: np.ndarray,
    velocity: np.ndarray,
    path: str | os.PathLike,
    *,
    target: Sequence[float] = (1.0, 0.0),
    title: str = "",
) -> None:
    """Quiver plot of a 2-D velocity field (arrows coloured by speed), one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk._io import save_figure
    from gantk.plot import REAL_COLOR

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


# --------------------------------------------------------------------------------------
# Figure 2-style snapshots of a run
# --------------------------------------------------------------------------------------

_SNAPSHOT = re.compile(r"^particles_(\d+)\.npz$")


def load_snapshots(run_dir: str | os.PathLike) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Read the ``particles_<step>.npz`` files (arrays ``fake``, ``real``) of a run folder.

    Returns:
        ``[(step, fake (n, d), real (m, d)), ...]`` sorted by step.

    Raises:
        ValueError: if ``run_dir`` is not a folder, holds no snapshot, or a snapshot lacks
            ``fake``/``real``.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"`run_dir` must be a run folder; {str(run_dir)!r} is not a folder.")
    files = sorted(
        ((int(m.group(1)), p) for p in run_dir.iterdir() if (m := _SNAPSHOT.match(p.name))),
        key=lambda t: t[0],
    )
    if not files:
        raise ValueError(f"`run_dir` {str(run_dir)!r} holds no particles_<step>.npz file.")
    out = []
    for step, path in files:
        with np.load(path) as z:
            if "fake" not in z or "real" not in z:
                raise ValueError(f"{path} must hold arrays 'fake' and 'real'; got {z.files}.")
            out.append((step, np.asarray(z["fake"]), np.asarray(z["real"])))
    return out


def _pick(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


def plot_snapshots(
    run_dir: str | os.PathLike,
    path: str | os.PathLike | None = None,
    *,
    max_panels: int = 8,
    ncols: int = 4,
) -> pathlib.Path:
    """Paper-style grid of particle snapshots of one run (shared axes), one PNG.

    Up to ``max_panels`` snapshots evenly spaced in step order (first and last included).
    2-D data: fake (red) and real (blue) scatter with common limits; 1-D: histograms;
    64-D (8×8 digits): image grids of fake particles; otherwise the first two coordinates.

    Args:
        run_dir: a :mod:`gantk.run` output folder.
        path: output PNG; default ``<run_dir>/figures/snapshots.png``.
        max_panels: most snapshots drawn.
        ncols: panels per row.

    Returns:
        The written path.

    Raises:
        ValueError: as :func:`load_snapshots`, or on ``max_panels``/``ncols`` below 1.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk._io import save_figure
    from gantk._validate import check_positive_int
    from gantk.plot import FAKE_COLOR, REAL_COLOR, auto_limits, plot_image_grid

    max_panels = check_positive_int(max_panels, "max_panels")
    ncols = check_positive_int(ncols, "ncols")
    snaps = load_snapshots(run_dir)
    chosen = [snaps[i] for i in _pick(len(snaps), max_panels)]
    ncols = min(ncols, len(chosen))
    nrows = -(-len(chosen) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    d = chosen[0][1].shape[1]
    if d >= 2 and d != 64:
        limits = auto_limits(*[s[1][:, :2] for s in chosen], chosen[0][2][:, :2], margin=0.05)
    for ax, (step, fake, real) in zip(axes.flat, chosen, strict=False):
        if d == 64:
            plot_image_grid(fake[:36].reshape(-1, 8, 8), ax=ax)
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


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


_UsageError = UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m gantk.figures`` argument parser (one sub-command per figure)."""
    from gantk.architectures import KERNELS

    p = _Parser(prog="python -m gantk.figures",
                description="Figures of Franceschi et al. (ICML 2022): finite vs infinite "
                "width, velocity fields, flow snapshots.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser,
                           metavar="{adequacy-1d,adequacy-2d,vector-field,snapshots}")

    a1 = sub.add_parser("adequacy-1d", help="c_f of finite widths vs infinite width, 1-D")
    a1.add_argument("--loss", choices=("ipm", "lsgan"), required=True)
    a1.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    a1.add_argument("--seeds", type=int, default=20, help="networks trained per width")
    a1.add_argument("--time", type=float, default=1.0, help="discriminator time tau")
    a1.add_argument("--lr", type=float, default=0.1, help="finite discriminator SGD step")
    a1.add_argument("--out", default="figures", help="output folder")

    a2 = sub.add_parser("adequacy-2d", help="heatmaps of f, finite width vs infinite width")
    a2.add_argument("--loss", choices=("ipm", "lsgan"), default="lsgan")
    a2.add_argument("--data", default="density",
                    help="gantk.data name of a 2-D fake/real pair (or image:PATH)")
    a2.add_argument("--n", type=int, default=30, help="fake and real points each")
    a2.add_argument("--width", type=int, default=512)
    a2.add_argument("--seeds", type=int, default=1)
    a2.add_argument("--time", type=float, default=1.0)
    a2.add_argument("--lr", type=float, default=0.1)
    a2.add_argument("--resolution", type=int, default=100)
    a2.add_argument("--seed", type=int, default=0, help="data sampling seed")
    a2.add_argument("--out", default="figures")

    vf = sub.add_parser("vector-field", help="velocity of one particle against (1, 0)")
    vf.add_argument("--kernel", choices=tuple(KERNELS), required=True)
    vf.add_argument("--loss", choices=("ipm", "lsgan"), required=True)
    vf.add_argument("--time", type=float, default=1.0)
    vf.add_argument("--nx", type=int, default=21, help="grid points on [-2, 2]")
    vf.add_argument("--ny", type=int, default=11, help="grid points on [0, 2]")
    vf.add_argument("--out", default="figures")

    sn = sub.add_parser("snapshots", help="grid of particle snapshots of a gantk.run folder")
    sn.add_argument("run_dir")
    sn.add_argument("--out", default=None, help="output PNG (default RUN_DIR/figures/)")
    sn.add_argument("--max-panels", type=int, default=8, dest="max_panels")
    sn.add_argument("--ncols", type=int, default=4)
    return p


def _positive(name: str, value: float) -> None:
    if not value > 0 or not np.isfinite(value):
        raise _UsageError(f"argument --{name}: must be a positive number; got {value}")


def _out_dir(path: str) -> pathlib.Path:
    out = pathlib.Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _UsageError(
            f"argument --out: cannot create folder {path!r} ({err.strerror})"
        ) from None
    return out


def _cmd_adequacy_1d(args: argparse.Namespace) -> None:
    from gantk import data as gdata

    for name in ("time", "lr"):
        _positive(name, getattr(args, name))
    if args.seeds < 1 or any(w < 1 for w in args.widths):
        raise _UsageError("arguments --seeds and --widths: must be positive integers")
    out = _out_dir(args.out)
    data = ADEQUACY_1D_DATA[args.loss]
    fake, real = gdata.load(data, seed=0, dtype=np.float64)
    res = adequacy_1d(args.loss, fake, real, widths=args.widths, seeds=args.seeds,
                      time=args.time, lr=args.lr, progress=True)
    path = out / f"adequacy_1d_{args.loss}.png"
    plot_adequacy_1d(res, path)
    print(f"adequacy-1d {args.loss} on {data} ({len(fake)} fake, {len(real)} real), relu depth 3 "
          f"b_std 1, antisymmetric, tau={args.time}, lr={args.lr}, {args.seeds} seeds; "
          "relative L2 error of c_f vs infinite width on 200 points in [-3, 3]:")
    print(f"{'width':>6} {'err per network':>16} {'(std)':>8} {'err of mean curve':>18} "
          f"{'own-NTK theory vs inf':>22} {'net vs own-NTK theory':>22}")
    for width in res.errors:
        se = res.seed_errors[width]
        print(f"{width:>6} {se.mean():>16.4f} {se.std():>8.4f} {res.errors[width]:>18.4f} "
              f"{res.kernel_errors[width].mean():>22.4f} "
              f"{res.linearization_errors[width].mean():>22.4f}")
    print("(own-NTK theory: the NTK-regime prediction with each network's empirical NTK at "
          "initialization; per-network means)")
    print(f"discretization floor (infinite width, SGD lr={args.lr} vs gradient flow): "
          f"{res.discretization_error:.4f}")
    print(f"wrote {path}")


def _cmd_adequacy_2d(args: argparse.Namespace) -> None:
    from gantk import data as gdata

    for name in ("time", "lr"):
        _positive(name, getattr(args, name))
    for name in ("n", "width", "seeds", "resolution"):
        if getattr(args, name) < 1:
            raise _UsageError(f"argument --{name}: must be a positive integer")
    out = _out_dir(args.out)
    fake, real = gdata.load(args.data, n_fake=args.n, n_real=args.n, seed=args.seed,
                            dtype=np.float64)
    if np.shape(fake)[1] != 2:
        raise _UsageError(f"argument --data: {args.data!r} is {np.shape(fake)[1]}-D; need 2-D")
    res = adequacy_2d(args.loss, fake, real, width=args.width, seeds=args.seeds,
                      time=args.time, lr=args.lr, resolution=args.resolution)
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", args.data)
    path = out / f"adequacy_2d_{args.loss}_{tag}_w{args.width}.png"
    plot_adequacy_2d(res, path)
    print(f"adequacy-2d {args.loss} on {args.data} ({args.n}+{args.n} points), width "
          f"{args.width} ({args.seeds} seed(s)) vs infinite width, tau={args.time}, lr={args.lr}")
    mean = "the mean of the networks" if args.seeds > 1 else "the network"
    print(f"relative L2 error of {mean}: f on grid {res.error_f:.4f}, c_f on grid "
          f"{res.error_c:.4f}, velocity at fake points {res.error_v:.4f}")
    if args.seeds > 1:
        print(f"relative L2 error of f per network: {res.seed_errors_f.mean():.4f} "
              f"(std {res.seed_errors_f.std():.4f})")
    print(f"wrote {path}")


def _cmd_vector_field(args: argparse.Namespace) -> None:
    _positive("time", args.time)
    if args.nx < 2 or args.ny < 2:
        raise _UsageError("arguments --nx/--ny: need at least 2 points per axis")
    out = _out_dir(args.out)
    gx, gy = np.meshgrid(np.linspace(-2, 2, args.nx), np.linspace(0, 2, args.ny))
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    v = vector_field(args.kernel, args.loss, grid, time=args.time)
    path = out / f"vector_field_{args.kernel}_{args.loss}.png"
    plot_vector_field(grid, v, path, title=f"{args.loss.upper()}, {args.kernel} kernel: "
                      r"velocity of a lone particle, real point $(1, 0)$")
    speed = np.linalg.norm(v, axis=1)
    near0 = np.argmin(np.linalg.norm(grid, axis=1))
    toward = np.sum(v * (np.array([1.0, 0.0]) - grid), axis=1) > 0
    print(f"vector-field {args.kernel} {args.loss} tau={args.time} on a {args.nx}x{args.ny} grid "
          "of [-2, 2]x[0, 2]")
    print(f"speed min/median/max: {speed.min():.4f} / {np.median(speed):.4f} / "
          f"{speed.max():.4f}; at {grid[near0].round(3).tolist()}: {speed[near0]:.4f}; "
          f"fraction of arrows with a component toward (1, 0): {toward.mean():.3f}")
    print(f"wrote {path}")


def _cmd_snapshots(args: argparse.Namespace) -> None:
    if args.max_panels < 1 or args.ncols < 1:
        raise _UsageError("arguments --max-panels/--ncols: must be positive integers")
    if not pathlib.Path(args.run_dir).is_dir():
        raise _UsageError(f"argument run_dir: {args.run_dir!r} is not a folder")
    if args.out is not None:
        check_output_file(pathlib.Path(args.out), "--out")
    snaps = load_snapshots(args.run_dir)
    path = plot_snapshots(args.run_dir, args.out, max_panels=args.max_panels, ncols=args.ncols)
    steps = [s[0] for s in snaps]
    print(f"snapshots of {args.run_dir}: {len(steps)} files, steps {steps[0]}..{steps[-1]}")
    print(f"wrote {path}")


_COMMANDS = {
    "adequacy-1d": _cmd_adequacy_1d,
    "adequacy-2d": _cmd_adequacy_2d,
    "vector-field": _cmd_vector_field,
    "snapshots": _cmd_snapshots,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gantk.figures``; returns the exit status.

    0 on success; 2 on a bad argument or unusable input, with one line on stderr.
    """
    try:
        args = build_parser().parse_args(argv)
        import jax

        jax.config.update("jax_enable_x64", True)
        try:
            _COMMANDS[args.cmd](args)
        except ValueError as err:
            raise _UsageError(str(err).splitlines()[0]) from None
    except _UsageError as err:
        print(f"gantk.figures: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
