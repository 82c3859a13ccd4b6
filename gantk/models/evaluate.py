"""Evaluate a trained video model: ``python -m gantk.models.evaluate RUN_DIR``.

The papers' protocol (SRVP, Denton & Fergus 2018): condition on the first frames of each test
video, predict the next ones, draw K samples per video and keep the best sample **per video
and per metric**; frames are clamped to [0, 1]. Writes::

    RUN_DIR/eval/
        metrics.csv     one row per predicted frame: frame, the model's metrics, then the
                        copy-last-frame baseline's (e.g. psnr, ssim, psnr_copy_last, ...)
        summary.json    means over frames and videos with 95% intervals (1.96·std/√n over
                        videos), the protocol and the data description
        metrics.png     per-frame curves with their 95% bands

Metrics (per frame, on frames in [0, 1]):

- PSNR = 10·log10(1 / MSE) (:func:`dm_pix.psnr`, whose definition is exactly this).
- SSIM with an 11×11 Gaussian window of σ = 1.5, K1 = 0.01, K2 = 0.03, dynamic range 1 and
  no padding (the SSIM map covers the valid positions only, then is averaged over space and
  channels): :func:`dm_pix.ssim` with its defaults has exactly these conventions
  (``filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03``, ``'VALID'`` convolutions); the
  test suite checks it against a hand-computed case.

Exit status: 0 on success, 2 on a bad argument or a missing/corrupt run or checkpoint (one
line, nothing written). Like ``gantk.models.train``, it restarts itself once with glibc's
huge-page tunable (:mod:`gantk._malloc`; ``GANTK_HUGE_PAGES=0`` turns it off).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from gantk.models._folders import check_eval_dir, clear_eval_dir
from gantk.models._run import Checkpoints, Parser, UsageError, save_png, write_json
from gantk.models.registry import EvalResult, RunSpec, get_model

__all__ = ["best_of", "build_parser", "frame_metrics", "main", "mean_ci", "psnr", "ssim",
           "write_eval"]


def psnr(pred: Any, target: Any) -> Any:
    """Per-frame PSNR ``10·log10(1/MSE)`` of frames in [0, 1].

    Args:
        pred: ``(..., H, W, C)`` arrays; ``pred`` is clamped to [0, 1].
        target: see ``pred``.

    Returns:
        ``(...)`` PSNR in dB (``inf`` for identical frames).
    """
    import dm_pix as pix
    import jax.numpy as jnp

    lead = pred.shape[:-3]  # dm-pix takes (H, W, C) or (N, H, W, C)
    p = jnp.clip(pred, 0.0, 1.0).reshape(-1, *pred.shape[-3:])
    return pix.psnr(p, jnp.reshape(target, p.shape)).reshape(lead)


def ssim(pred: Any, target: Any) -> Any:
    """Per-frame SSIM (11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, no padding).

    Args:
        pred: ``(..., H, W, C)`` arrays with ``H, W ≥ 11``; ``pred`` is clamped.
        target: see ``pred``.

    Returns:
        ``(...)`` mean SSIM over the valid positions and channels.

    Raises:
        ValueError: frames smaller than the window.
    """
    import dm_pix as pix
    import jax.numpy as jnp

    if pred.shape[-3] < 11 or pred.shape[-2] < 11:
        raise ValueError(f"SSIM needs frames of at least 11×11; got {pred.shape[-3:-1]}")
    lead = pred.shape[:-3]  # dm-pix takes (H, W, C) or (N, H, W, C)
    p = jnp.clip(pred, 0.0, 1.0).reshape(-1, *pred.shape[-3:])
    return pix.ssim(p, jnp.reshape(target, p.shape), max_val=1.0, filter_size=11,
                    filter_sigma=1.5, k1=0.01, k2=0.03).reshape(lead)


def frame_metrics(pred: Any, target: Any) -> dict[str, Any]:
    """PSNR and SSIM of every frame.

    Args:
        pred: ``(..., T, H, W, C)`` predictions (clamped to [0, 1] here).
        target: the matching ground truth, same shape.

    Returns:
        ``{"psnr": (..., T), "ssim": (..., T)}``.
    """
    return {"psnr": psnr(pred, target), "ssim": ssim(pred, target)}


def best_of(values: Any, *, axis: int = 0, higher_is_better: bool = True) -> Any:
    """Best sample per video for one metric: the sample maximizing the frame-averaged score.

    Args:
        values: ``(K, ..., T)`` per-frame scores of K samples.
        axis: the sample axis.
        higher_is_better: ``False`` for errors (MSE).

    Returns:
        ``(..., T)`` the per-frame curve of the chosen sample (chosen per video on the mean
        over frames, as the SRVP/SVG protocol does).
    """
    v = np.moveaxis(np.asarray(values, np.float64), axis, 0)
    score = np.mean(np.where(np.isfinite(v), v, np.nan_to_num(v, posinf=1e3, neginf=-1e3)),
                    axis=-1)
    idx = np.argmax(score, axis=0) if higher_is_better else np.argmin(score, axis=0)
    return np.take_along_axis(v, idx[None, ..., None], axis=0)[0]


def mean_ci(values: Any, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% half-width ``1.96·std/√n`` along ``axis`` (sample std, ``ddof=1``)."""
    v = np.asarray(values, np.float64)
    n = v.shape[axis]
    std = v.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(v.mean(axis=axis))
    return v.mean(axis=axis), 1.96 * std / math.sqrt(n)


def write_eval(out_dir: pathlib.Path, result: EvalResult, title: str) -> None:
    """Write ``metrics.csv``, ``summary.json`` and ``metrics.png`` of an :class:`EvalResult`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk import _io

    out_dir.mkdir(parents=True, exist_ok=True)
    _io.write_csv(out_dir / "metrics.csv", result.rows, result.columns)
    write_json(out_dir / "summary.json", result.summary)
    panels = result.panels
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    frames = [r["frame"] for r in result.rows]
    for ax, (name, cols) in zip(axes[0], panels.items(), strict=True):
        for c in cols:
            y = np.array([r[c] for r in result.rows], float)
            ax.plot(frames, y, marker="o", ms=2.5, label=c)
            lo_hi = [r.get(f"{c}_ci95") for r in result.rows]
            if all(v is not None for v in lo_hi):
                h = np.array(lo_hi, float)
                ax.fill_between(frames, y - h, y + h, alpha=0.2)
        ax.set_title(name)
        ax.set_xlabel("predicted frame")
        ax.legend(fontsize=7)
    fig.suptitle(textwrap.fill(title, 100), fontsize=8)
    fig.tight_layout()
    _io.save_figure(fig, out_dir / "metrics.png", dpi=100)
    for name, image in result.images.items():
        save_png(out_dir / f"{name}.png", image)


def build_parser() -> Parser:
    """The ``gantk.models.evaluate`` argument parser."""
    p = Parser(prog="python -m gantk.models.evaluate",
               description="Evaluate a trained run on its test set (best of K samples per "
               "video and per metric, copy-last-frame baseline, 95% intervals).")
    p.add_argument("run_dir", help="run folder written by python -m gantk.models.train")
    p.add_argument("--samples", type=int, default=100,
                   help="samples per video, K (default 100 as in the papers)")
    p.add_argument("--videos", type=int, default=None,
                   help="number of test videos (default: the whole test set)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", help="output folder (default RUN_DIR/eval)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing evaluation folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    run_dir = pathlib.Path(args.run_dir)
    for name in ("samples", "videos"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"argument --{name}: expected a positive integer; got {v!r}")
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise UsageError(f"{run_dir} is not a gantk.models run folder (no config.json)")
    try:
        cfg = json.loads(cfg_path.read_text())
        spec = RunSpec(model=cfg["model"], data=cfg["data"], preset=cfg["preset"],
                       seed=int(cfg["seed"]), hparams=dict(cfg["hparams"]))
        entry = get_model(spec.model)
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{cfg_path} is not a valid gantk.models config ({err})") from None
    out_dir = pathlib.Path(args.out) if args.out else run_dir / "eval"
    check_eval_dir(out_dir, overwrite=args.overwrite)
    if not (run_dir / "checkpoints").is_dir():
        raise UsageError(f"{run_dir} has no checkpoints/ folder")

    import jax

    try:
        exp = entry.build(spec)
    except ValueError as err:
        raise UsageError(str(err).strip().splitlines()[0]) from None
    params, model_state = exp.init(jax.random.key(spec.seed))
    ck = Checkpoints(run_dir / "checkpoints", create=False)
    try:
        tree = ck.restore({"params": params, "model_state": model_state,
                           "opt_state": exp.optimizer.init(params), "step": np.int64(0),
                           "elapsed": np.float64(0.0)})
    finally:
        ck.close()
    step = int(tree["step"])
    try:
        result = exp.evaluate(tree["params"], tree["model_state"], samples=args.samples,
                              videos=args.videos, key=jax.random.key(args.seed),
                              progress=not args.no_progress)
    except ValueError as err:
        raise UsageError(str(err).strip().splitlines()[0]) from None
    result.summary = {"run": str(run_dir), "checkpoint_step": step, **result.summary}
    clear_eval_dir(out_dir)
    write_eval(out_dir, result, f"{run_dir.name} (step {step}): {exp.description}")
    print(f"gantk.models.evaluate: {run_dir.name} at step {step}: {exp.description}")
    for key, val in result.summary.get("means", {}).items():
        print(f"  {key:>24}: {val['mean']:.4f} ± {val['ci95']:.4f}")
    print(f"outputs in {out_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m gantk.models.evaluate``; returns the exit status."""
    try:
        return _run(argv)
    except UsageError as err:
        print(f"gantk.models.evaluate: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from gantk._malloc import reexec_with_huge_pages

    reexec_with_huge_pages()  # large XLA:CPU buffers on 2 MiB pages (glibc tunable)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
