"""What a run writes as it goes: metrics rows (CSV), particle snapshots (NPZ), step
figures, the metric curves, the GIF, and the final table and ``summary.json``.

Missing values are ``None`` in memory, empty cells in ``metrics.csv`` and ``null`` in JSON.
"""

from __future__ import annotations

import csv
import math
import pathlib
import sys
import time as _time
from collections.abc import Callable
from typing import Any, TextIO

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from gantk import _io, nets, plot
from gantk import metrics as gm
from gantk.analysis.ntk_drift import NTKDriftLogger
from gantk.cli.build import Built, label
from gantk.cli.config import CSV_FIELDS
from gantk.cli.errors import UsageError
from gantk.discriminator import discriminator

__all__ = ["RunLogger", "print_table", "read_rows"]


@eqx.filter_jit
def _values(disc: Any, points: Any) -> Any:
    return disc(points)


@eqx.filter_jit
def _velocity(disc: Any, points: Any) -> Any:
    return disc.velocity(points)


def read_rows(path: pathlib.Path, upto: int,
              fields: tuple[str, ...] = CSV_FIELDS) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` with ``step <= upto`` (empty cells → absent).

    Raises:
        UsageError: if the file is not a readable metrics table.
    """
    if not path.is_file():
        return []
    rows = []
    try:
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                step = int(r["step"])
                if step <= upto:
                    rows.append({k: (step if k == "step" else float(v))
                                 for k, v in r.items() if k in fields and v})
    except (OSError, KeyError, ValueError, TypeError, csv.Error) as err:
        raise UsageError(f"argument --resume: {str(path)!r} is not a readable metrics table "
                         f"({type(err).__name__})") from None
    return rows


class RunLogger:
    """Metrics, snapshots and figures of one run folder.

    Args:
        built: what the run computes with.
        run_dir: the run folder (exists).
        figures: draw step figures, the metric curves and the GIF.
        elapsed_before: wall time of earlier sessions of a resumed run, in seconds.
    """

    def __init__(self, built: Built, run_dir: pathlib.Path, *, figures: bool,
                 elapsed_before: float = 0.0) -> None:
        self.built, self.cfg, self.dir, self.figures = built, built.cfg, run_dir, figures
        self.rows: list[dict[str, Any]] = []
        self.frames: list[np.ndarray] = []
        self.limits: tuple[float, float, float, float] | None = None
        self.t_start = _time.perf_counter()
        self.elapsed_before = elapsed_before
        self._fit_fn: Callable | None = None
        self.ntk_drift = _ntk_drift_logger(built) if self.cfg.log_ntk_drift else None

    @property
    def elapsed(self) -> float:
        """Wall time of the run so far (all sessions), in seconds."""
        return self.elapsed_before + _time.perf_counter() - self.t_start

    @property
    def plot_every(self) -> int:
        """Steps between step figures (and, by default, Sinkhorn evaluations)."""
        cfg = self.cfg
        return cfg.plot_every or max(cfg.log_every, cfg.steps // 4)

    def metrics(self, fake: Any, step: int) -> dict[str, float | None]:
        """The configured metrics of ``fake`` against the real points (None: not finite)."""
        cfg, real = self.cfg, self.built.real
        if not bool(np.all(np.isfinite(np.asarray(fake)))):
            return {m: None for m in cfg.metrics}
        every = cfg.sinkhorn_every or self.plot_every
        out: dict[str, float | None] = {}
        for m in cfg.metrics:
            if m == "sinkhorn":
                if step % every != 0 and step != cfg.steps:
                    continue
                v = float(gm.sinkhorn_divergence(fake, real, blur=cfg.sinkhorn_blur))
            elif m == "energy":
                v = float(gm.energy(fake, real))
            elif m == "mmd":
                v = float(gm.mmd2(fake, real, self.built.kernel))  # column "mmd": MMD²
            else:
                v = float(gm.mean_nn_distance(fake, real))
            out[m] = v if math.isfinite(v) else None
        return out

    def log(self, state: Any, step: int, gen_loss: float | None, disc: Any = None) -> None:
        """Append the row of ``step`` (replacing later ones), its snapshot and figure.

        Args:
            state: the flow or generator state after ``step`` steps.
            step: the step number.
            gen_loss: the mean generator loss of the last step (None at step 0).
            disc: the discriminator fitted at the last step
                (:class:`~gantk.solution.AbstractDiscriminator`), drawn in 1-D/2-D figures;
                None: fitted here for the infinite width, not drawn for a finite width.
        """
        fake = self.built.particles(state)
        if gen_loss is not None and not math.isfinite(gen_loss):
            gen_loss = None
        row = {"step": step, **self.metrics(fake, step), "generator_loss": gen_loss,
               "wall_time": round(self.elapsed, 3)}
        if self.ntk_drift is not None:
            row.update(self.ntk_drift.log(state.disc_params))
        self.rows = [r for r in self.rows if r["step"] < step] + [row]
        _io.write_csv(self.dir / "metrics.csv", self.rows, self.cfg.csv_fields)
        _io.write_npz(self.dir / f"particles_{step}.npz", fake=np.asarray(fake),
                      real=np.asarray(self.built.real), step=step)
        if self.figures:
            self.figure(fake, step, disc=disc)

    def figure(self, fake: Any, step: int, force: bool = False, disc: Any = None) -> None:
        """Add a GIF frame; on plot steps (or ``force``) write ``figures/step_<step>.png``."""
        fake_np, real_np = np.asarray(fake), np.asarray(self.built.real)
        shape = self.cfg.image_shape
        if self.limits is None and fake_np.shape[1] == 2:
            self.limits = plot.auto_limits(fake_np, real_np)
        self.frames.append(plot.render_frame(fake_np, real_np, step=step, limits=self.limits,
                                             image_shape=shape))
        if not force and step % self.plot_every != 0 and step != self.cfg.steps:
            return
        values_fn = velocity_fn = None
        if fake_np.shape[1] <= 2 and (disc is not None or self.cfg.width is None):
            values_fn, velocity_fn = self._field_fns(fake, disc)
        plot.save_step_figure(self.dir / "figures" / f"step_{step}.png", fake_np, real_np,
                              step=step, values_fn=values_fn, velocity_fn=velocity_fn,
                              limits=self.limits, subtitle=label(self.cfg), image_shape=shape)

    def _field_fns(self, fake: Any, disc: Any) -> tuple[Callable, Callable]:
        """``f(grid)`` and ``velocity(grid)`` of ``disc`` (default: fitted on ``fake``)."""
        if disc is None:  # step 0, or a state without its discriminator: fit it once
            disc = self._fit(fake, self.built.real)
        dt = np.asarray(fake).dtype

        def values_fn(grid: np.ndarray) -> np.ndarray:
            return np.asarray(_values(disc, grid.astype(dt)))

        def velocity_fn(grid: np.ndarray) -> np.ndarray:
            return np.asarray(_velocity(disc, grid.astype(dt)))

        return values_fn, velocity_fn

    def _fit(self, fake: Any, real: Any) -> Any:
        if self._fit_fn is None:
            cfg, kernel = self.cfg, self.built.kernel
            self._fit_fn = eqx.filter_jit(
                lambda fk, rl: discriminator(cfg.loss, kernel, fk, rl, cfg.time))
        return self._fit_fn(fake, real)

    def final_figures(self, gen_loss: list[float], final_step: int, completed: bool,
                      final_fake: Any, disc: Any = None) -> None:
        """The metric curves, the GIF, and the last step figure of a completed run."""
        if not (self.figures and self.rows):
            return
        cfg = self.cfg
        keys = [m for m in cfg.metrics if m != "nn_distance"] or list(cfg.metrics)
        plot.plot_metrics(self.dir / "figures" / "metrics.png", self.rows, keys=keys,
                          gen_loss=gen_loss, title=cfg.run_name)
        if self.frames:
            plot.save_gif(self.dir / "flow.gif", self.frames, fps=6)
        if completed and not (self.dir / "figures" / f"step_{final_step}.png").exists():
            self.figure(final_fake, final_step, force=True, disc=disc)

    def summary(self, status: str, steps_done: int, step_time: float,
                diverged_at: int | None) -> dict[str, Any]:
        """The content of ``summary.json``."""
        out = {
            "status": status,
            "steps_done": steps_done,
            "steps_requested": self.cfg.steps,
            "final": self.rows[-1] if self.rows else {},
            "initial": self.rows[0] if self.rows else {},
            "ms_per_step": None if math.isnan(step_time) else 1e3 * step_time,
            "wall_time_s": round(self.elapsed, 3),
            "device": f"{len(self.built.devices)}x {self.built.devices[0].device_kind}",
            "jax_version": jax.__version__,
        }
        if diverged_at is not None:
            out["diverged_at_step"] = diverged_at
        return out


def _ntk_drift_logger(built: Built) -> NTKDriftLogger:
    """Drift of the finite discriminator's empirical NTK on 32 fake + 32 real probe points."""
    cfg = built.cfg
    probe = jnp.concatenate([built.fake0[:32], built.real[:32]])
    apply = nets.discriminator_apply(cfg.spec, antisymmetric=cfg.antisymmetric)
    return NTKDriftLogger(apply, built.state.disc_params, probe, kernel_fn=built.kernel)


def print_table(rows: list[dict[str, Any]], stream: TextIO | None = None,
                fields: tuple[str, ...] = CSV_FIELDS) -> None:
    """Print metric rows as a fixed-width table (first 3 and last 8 rows of long runs)."""
    stream = sys.stdout if stream is None else stream
    cols = [c for c in fields if any(r.get(c) is not None for r in rows)]
    print("  ".join(f"{c:>14}" for c in cols), file=stream)
    shown = rows if len(rows) <= 12 else [*rows[:3], None, *rows[-8:]]
    for r in shown:
        if r is None:
            print("  ".join(f"{'...':>14}" for _ in cols), file=stream)
            continue
        cells = []
        for c in cols:
            v = r.get(c)
            if v is None:
                cells.append(f"{'-':>14}")
            else:
                cells.append(f"{v:>14d}" if isinstance(v, int) else f"{float(v):>14.6g}")
        print("  ".join(cells), file=stream)
