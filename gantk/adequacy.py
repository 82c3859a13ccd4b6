"""The science behind the paper's analysis figures: finite vs infinite width, vector fields.

Franceschi et al., *A Neural Tangent Kernel Perspective of GANs* (ICML 2022): Figure 1
(adequacy of the infinite-width model to finite networks, in 1-D and 2-D) and Figures 6–7
(velocity of one particle against one target), as functions returning arrays; and the
snapshots of a :mod:`gantk.run` folder. Plotting is in :mod:`gantk.figures`, the command
line in :mod:`gantk.cli.figures` (``python -m gantk.figures``).

Conventions: ``c_f`` is the per-particle generator loss ``c(f(x))`` of :mod:`gantk.losses`;
the velocity is ``v(x) = −∇_x c(f_τ(x))`` with the discriminator's train set held fixed;
finite networks are trained by :func:`gantk.nets.fit_finite_discriminator` (antisymmetric,
SGD, ``round(τ/lr)`` steps) and compared with :func:`gantk.discriminator` on the NTK of the
same :class:`~gantk.architectures.MLPSpec`; the same-SGD infinite-width reference is the
:class:`~gantk.solvers.KernelGD` solver.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gantk import losses, nets
from gantk._validate import as_points, check_positive_int
from gantk.architectures import KERNELS, MLPSpec, get_spec
from gantk.discriminator import discriminator
from gantk.plot import auto_limits
from gantk.solvers import KernelGD

__all__ = [
    "ADEQUACY_1D_DATA",
    "Adequacy1D",
    "Adequacy2D",
    "adequacy_1d",
    "adequacy_2d",
    "evenly_spaced",
    "load_snapshots",
    "vector_field",
]

#: The GAN(TK)² 1-D datasets of Figure 1: ``modes_1d`` for LSGAN, ``modes_1d_overlap`` for IPM.
ADEQUACY_1D_DATA = {"lsgan": "modes_1d", "ipm": "modes_1d_overlap"}

_DEFAULT_SPEC_ARGS = dict(activation="relu", depth=3, W_std=1.0, b_std=1.0)


def _default_spec(width: int = 512) -> Any:

    return MLPSpec(**_DEFAULT_SPEC_ARGS, width=width)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 error ``‖a − b‖ / ‖b‖``."""
    return float(np.linalg.norm(np.ravel(a - b)) / max(np.linalg.norm(np.ravel(b)), 1e-300))


def _finite_discriminators(
    loss: Any, spec: Any, fake: Any, real: Any, time: float, lr: float, seeds: int
) -> list[tuple[Any, Any]]:
    """``(initial params, trained FiniteDiscriminator)`` for seeds ``0 … seeds − 1``."""
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
    k = spec.discriminator_kernel()
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
    """``c(f(points))`` after ``round(time/lr)`` kernel-GD steps (:class:`~gantk.solvers.KernelGD`).

    The infinite-width limit of SGD on a network whose NTK is ``k`` with ``f₀ = 0``, at the
    same learning rate (no ``lr → 0`` limit).
    """
    D = discriminator(loss, k, fake, real, time, solver=KernelGD(lr=float(lr)))
    return np.asarray(D.generator_loss(jnp.asarray(points)), dtype=np.float64)


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
    D_inf = discriminator(loss, spec.discriminator_kernel(), fake, real, time)
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


# --------------------------------------------------------------------------------------
# Figures 6-7: vector fields of one particle against one target
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _spec_kernel(spec: Any) -> Callable:
    return spec.discriminator_kernel()


def _kernel(kernel: Any) -> Callable:

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
    k = _kernel(kernel)
    grid = as_points(grid, "grid")
    target = as_points(jnp.asarray(target, dtype=grid.dtype)[None], "target",
                       dim=grid.shape[1], dim_name="grid")

    return np.asarray(_field_fn(k, losses.get(loss), float(time))(grid, target))


@functools.lru_cache(maxsize=32)
def _field_fn(k: Callable, loss: Any, time: float) -> Callable:
    """Jitted ``(grid (q, d), target (1, d)) -> velocities (q, d)``, cached per problem."""
    def one(x: jax.Array, y: jax.Array) -> jax.Array:
        D = discriminator(loss, k, x[None], y, time)
        return D.velocity(x[None])[0]

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


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


def evenly_spaced(n: int, k: int) -> list[int]:
    """At most ``k`` indices of ``range(n)``, evenly spaced, first and last included.

    Raises:
        ValueError: if ``n`` or ``k`` is not a positive integer.
    """
    n, k = check_positive_int(n, "n"), check_positive_int(k, "k")
    if n <= k:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


