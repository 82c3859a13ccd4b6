"""Train a video model: ``python -m gantk.models.train --model srvp --data moving-digits``.

Model-agnostic: the model comes from :mod:`gantk.models.registry` (which documents how a model
plugs in). One folder per run, as :mod:`gantk.run` does::

    <out>/<run-name>/
        config.json             model, data, preset, seed and the resolved hyper-parameters
        metrics.csv             step, loss, the model's loss terms (means over --log-every
                                steps), wall_time
        strips/step_<k>.png     ground truth vs samples
        checkpoints/<step>/     orbax checkpoints (params, model state, optimizer, step); the
                                two most recent are kept
        loss.png                loss curves
        summary.json            status, steps, final loss terms, timings, data description

Exit status: 0 on success (also when ``--minutes`` runs out: a checkpoint is written and
``--resume`` continues), 2 on a bad argument (one line, nothing written), 1 when the loss
becomes NaN/inf (the last good checkpoint is kept), 130 on Ctrl-C (a checkpoint of the last
completed step is written first; ``--resume DIR`` continues with the same data order).

On Linux with glibc ≥ 2.35 the command restarts itself once, first thing, with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` so that XLA:CPU's large buffers sit on 2 MiB pages
(:mod:`gantk._malloc`; ``GANTK_HUGE_PAGES=0`` turns it off). When a step's temporaries are
large (≥ 1 GiB) and memory allows two copies, glibc is told to keep them between steps instead
of unmapping and faulting them in again (``summary.json``'s ``heap`` says which;
``GANTK_KEEP_HEAP=0`` turns it off); the defaults come back when the loop ends.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import pathlib
import sys
import textwrap
import time as _time
from typing import Any

from gantk.models._folders import check_run_dir, clear_run_dir
from gantk.models._run import Checkpoints, Parser, UsageError, save_png, write_json
from gantk.models.registry import MODELS, RunSpec, get_model, resolve_hparams

__all__ = ["build_parser", "main"]


_SCHEDULE = {"log_every": 50, "checkpoint_every": 500, "strip_every": None}


def build_parser() -> Parser:
    """The ``gantk.models.train`` argument parser."""
    p = Parser(prog="python -m gantk.models.train",
               description="Train a continuous-time latent video model and write a run folder.")
    p.add_argument("--model", default="srvp", help=f"model: {', '.join(MODELS)} (default srvp)")
    p.add_argument("--data", help="dataset (model-dependent; srvp: moving-digits, "
                   "moving-digits-deterministic, moving-mnist:PATH)")
    p.add_argument("--preset", default="small",
                   help="hyper-parameter preset: small (CPU, default) or paper")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="sets",
                   help="override one preset value (repeatable), e.g. --set batch_size=32")
    p.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    p.add_argument("--minutes", type=float,
                   help="stop (with a checkpoint) after this much wall time")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default="runs", help="output folder (default runs)")
    p.add_argument("--name", help="run folder name (default <model>-<data>-<preset>-s<seed>)")
    p.add_argument("--log-every", type=int, dest="log_every",
                   help=f"steps between metrics.csv rows (default {_SCHEDULE['log_every']}; "
                   "on --resume, the run's)")
    p.add_argument("--checkpoint-every", type=int, dest="checkpoint_every",
                   help=f"steps between checkpoints (default {_SCHEDULE['checkpoint_every']}; "
                   "on --resume, the run's)")
    p.add_argument("--strip-every", type=int, dest="strip_every",
                   help="steps between PNG strips (default: steps/4; on --resume, the run's)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder created by gantk")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _positive(name: str, v: Any) -> None:
    if v is not None and (isinstance(v, bool) or v < 1):
        raise UsageError(f"argument --{name}: expected a positive integer; got {v!r}")


def _resolve(args: Any) -> tuple[RunSpec, pathlib.Path, dict[str, Any]]:
    """Validate everything that can be validated without building the model."""
    for name in ("steps", "log_every", "checkpoint_every", "strip_every"):
        _positive(name.replace("_", "-"), getattr(args, name))
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        raise UsageError(f"argument --minutes: expected a positive number; got {args.minutes!r}")
    if args.resume:
        run_dir = pathlib.Path(args.resume)
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file() or not (run_dir / "checkpoints").is_dir():
            raise UsageError(f"argument --resume: {run_dir} has no config.json and "
                             "checkpoints/ to resume from")
        try:
            cfg = json.loads(cfg_path.read_text())
            spec = RunSpec(model=cfg["model"], data=cfg["data"], preset=cfg["preset"],
                           seed=int(cfg["seed"]), hparams=dict(cfg["hparams"]))
        except (ValueError, KeyError, TypeError) as err:
            raise UsageError(f"argument --resume: {cfg_path} is not a gantk.models config "
                             f"({type(err).__name__}: {err})") from None
        for flag, given in (("--model", args.model != "srvp" and args.model != spec.model),
                            ("--data", args.data is not None and args.data != spec.data),
                            ("--set", bool(args.sets)),
                            ("--seed", args.seed not in (0, spec.seed))):
            if given:
                raise UsageError(f"argument --resume: only --steps/--minutes may change on "
                                 f"resume; got {flag}")
        hp = dict(spec.hparams)
        if args.steps is not None:
            hp["steps"] = args.steps
        spec = RunSpec(spec.model, spec.data, spec.preset, spec.seed, hp)
        get_model(spec.model)
        saved = {**_SCHEDULE, **cfg.get("schedule", {})}
        cfg["schedule"] = {k: getattr(args, k) if getattr(args, k) is not None else saved[k]
                           for k in _SCHEDULE}
        return spec, run_dir, cfg
    try:
        entry = get_model(args.model)
    except ValueError as err:
        raise UsageError(str(err)) from None
    data = args.data or entry.data[0]
    if not entry.accepts(data):
        names = ", ".join(d + "PATH" if d.endswith(":") else d for d in entry.data)
        raise UsageError(f"argument --data: invalid choice {data!r} for model {entry.name!r} "
                         f"(choose from {names})")
    try:
        hp = resolve_hparams(entry, args.preset, args.sets, args.steps)
    except ValueError as err:
        raise UsageError(str(err)) from None
    spec = RunSpec(entry.name, data, args.preset, args.seed, hp)
    safe = data.split(":")[0]
    name = args.name or f"{entry.name}-{safe}-{args.preset}-s{args.seed}"
    if "/" in name or name in ("", ".", ".."):
        raise UsageError(f"argument --name: expected a plain folder name; got {name!r}")
    run_dir = pathlib.Path(args.out) / name
    if run_dir.exists() or run_dir.is_symlink():
        if not args.overwrite:
            raise UsageError(f"run folder {run_dir} already exists (use --overwrite to replace "
                             "it, --resume to continue it, or --name for another folder)")
        check_run_dir(run_dir)
    cfg = {"model": spec.model, "data": spec.data, "preset": spec.preset, "seed": spec.seed,
           "hparams": hp,
           "schedule": {k: getattr(args, k) if getattr(args, k) is not None else v
                        for k, v in _SCHEDULE.items()}}
    return spec, run_dir, cfg


def _read_rows(path: pathlib.Path, upto: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if path.is_file():
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                if int(r["step"]) <= upto:
                    rows.append({k: (int(v) if k == "step" else float(v))
                                 for k, v in r.items() if v not in ("", None)})
    return rows


def _plot_losses(path: pathlib.Path, rows: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk import _io

    keys = [k for k in rows[0] if k not in ("step", "wall_time")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, k in zip(axes[0], keys, strict=True):
        ax.plot(steps, [r.get(k, math.nan) for r in rows])
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.suptitle(textwrap.fill(title, 40 * len(keys)), fontsize=8)
    fig.tight_layout()
    _io.save_figure(fig, path, dpi=90)


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    spec, run_dir, cfg = _resolve(args)
    entry = get_model(spec.model)

    import jax
    import numpy as np
    import optax

    try:
        exp = entry.build(spec)
    except ValueError as err:  # bad data path, bad sizes, ...
        raise UsageError(str(err).strip().splitlines()[0]) from None

    hp = spec.hparams
    n_steps = int(hp["steps"])
    key = jax.random.key(spec.seed)
    params, model_state = exp.init(jax.random.fold_in(key, 0))
    opt_state = exp.optimizer.init(params)
    start, elapsed_before = 0, 0.0
    rows: list[dict[str, Any]] = []
    if args.resume:
        ck = Checkpoints(run_dir / "checkpoints", create=False)
        try:
            tree = ck.restore({"params": params, "model_state": model_state,
                               "opt_state": opt_state, "step": np.int64(0),
                               "elapsed": np.float64(0.0)})
        except UsageError:
            ck.close()
            raise
        params, model_state, opt_state = tree["params"], tree["model_state"], tree["opt_state"]
        start, elapsed_before = int(tree["step"]), float(tree["elapsed"])
        rows = _read_rows(run_dir / "metrics.csv", start)
        cfg["hparams"] = dict(hp)
        if start >= n_steps:
            print(f"gantk.models.train: {run_dir} already has {start} >= {n_steps} steps; "
                  "nothing to do")
            return 0
    # -------- validation done: from here on, files are written
    if not args.resume:
        clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        ck = Checkpoints(run_dir / "checkpoints", create=True)
    (run_dir / "strips").mkdir(exist_ok=True)
    write_json(run_dir / "config.json", cfg)

    def loss_and_grad(p: Any, s: Any, batch: Any, k: Any) -> Any:
        return jax.value_and_grad(exp.loss, has_aux=True)(p, s, batch, k)

    # parameters, model state and optimizer state are donated: XLA updates them in place
    # instead of allocating fresh buffers every step (large models: ~1 s/step saved on CPU)
    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def update(p: Any, s: Any, o: Any, batch: Any, k: Any) -> Any:
        (loss, (terms, s_new)), g = loss_and_grad(p, s, batch, k)
        upd, o_new = exp.optimizer.update(g, o, p)
        return optax.apply_updates(p, upd), s_new, o_new, loss, terms

    sched = cfg["schedule"]
    log_every, checkpoint_every = sched["log_every"], sched["checkpoint_every"]
    strip_every = sched["strip_every"] or max(1, n_steps // 4)
    t0 = _time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + _time.perf_counter() - t0

    def save(step: int) -> None:
        ck.save(step, {"params": params, "model_state": model_state, "opt_state": opt_state,
                       "step": np.int64(step), "elapsed": np.float64(elapsed())})

    def strip(step: int) -> None:
        img = exp.strip(params, model_state, jax.random.fold_in(key, 2_000_000_000 + step))
        save_png(run_dir / "strips" / f"step_{step}.png", img)

    print(f"gantk.models.train: {spec.model} ({spec.preset} preset) on {spec.data}: "
          f"{exp.description}; steps {start}->{n_steps}, batch {hp['batch_size']}, "
          f"{jax.devices()[0].platform} -> {run_dir}", flush=True)
    if not args.resume:
        strip(0)
        save(0)

    from tqdm.auto import tqdm

    from gantk._malloc import HeapKeeper, temp_bytes

    bar = tqdm(total=n_steps, initial=start, disable=args.no_progress, dynamic_ncols=True,
               desc=spec.model)
    window: dict[str, list[float]] = {}
    status, step, bad_step = "completed", start, None
    step_times: list[float] = []
    compiled, heap = None, None
    deadline = None if args.minutes is None else _time.perf_counter() + 60 * args.minutes
    last_saved = start
    try:
        while step < n_steps:
            batch = exp.train_batch(step)
            ts = _time.perf_counter()
            inputs = (params, model_state, opt_state, batch, jax.random.fold_in(key, step + 1))
            if compiled is None:  # compiled once, ahead, to learn the size of its temporaries
                compiled = update.lower(*inputs).compile()
                heap = HeapKeeper(temp_bytes(compiled))  # gantk._malloc: reuse them if large
            out = compiled(*inputs)
            # the old buffers were donated: only `out` holds the state from here on
            params, model_state, opt_state = out[0], out[1], out[2]
            try:
                loss = float(out[3])
            finally:  # Ctrl-C while waiting: the state above is that of step + 1
                step += 1
            heap.after_step()
            step_times.append(_time.perf_counter() - ts)
            if not math.isfinite(loss):
                status, bad_step = "diverged", step
                step -= 1  # the diverged step does not count (nothing is saved after it)
                break
            terms = {"loss": loss, **{k: float(v) for k, v in out[4].items()}}
            for k, v in terms.items():
                window.setdefault(k, []).append(v)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in terms.items()}, refresh=False)
            if step % log_every == 0 or step == n_steps:
                rows.append({"step": step, **{k: float(np.mean(v)) for k, v in window.items()},
                             "wall_time": round(elapsed(), 3)})
                window = {}
                _write_rows(run_dir / "metrics.csv", rows)
            if step % checkpoint_every == 0 or step == n_steps:
                save(step)
                last_saved = step
            if step % strip_every == 0 or step == n_steps:
                strip(step)
            if deadline is not None and _time.perf_counter() > deadline and step < n_steps:
                status = "time_limit"
                break
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        if heap is not None:
            heap.release()  # malloc back to glibc's defaults, free memory handed back
    bar.close()
    if status == "time_limit" and step % strip_every != 0:
        strip(step)
    if status in ("interrupted", "time_limit") and last_saved != step:
        save(step)
        if window:
            rows.append({"step": step, **{k: float(np.mean(v)) for k, v in window.items()},
                         "wall_time": round(elapsed(), 3)})
            _write_rows(run_dir / "metrics.csv", rows)
    ck.close()
    if rows:
        _plot_losses(run_dir / "loss.png", rows, f"{run_dir.name}: {exp.description}")
    warm = step_times[1:] if len(step_times) > 1 else step_times
    summary = {
        "status": status, "steps_done": step, "steps_requested": n_steps,
        "final": rows[-1] if rows else {}, "initial": rows[0] if rows else {},
        "s_per_step": float(np.median(warm)) if warm else None,
        "wall_time_s": round(elapsed(), 3), "data": exp.description,
        "device": jax.devices()[0].device_kind, "jax_version": jax.__version__,
        "heap": heap.reason if heap is not None else None,
    }
    if bad_step is not None:
        summary["diverged_at_step"] = bad_step
    write_json(run_dir / "summary.json", summary)
    per = summary["s_per_step"]
    print(f"{status}: {step}/{n_steps} steps in {summary['wall_time_s']:.1f} s"
          + (f" ({per:.3f} s/step jit-warm)" if per else "") + f"; outputs in {run_dir}")
    if status == "diverged":
        print(f"gantk.models.train: loss is not finite at step {bad_step}; the last good "
              f"checkpoint (step {last_saved}) is kept in {run_dir}", file=sys.stderr)
        return 1
    if status == "interrupted":
        print(f"gantk.models.train: interrupted at step {step}; checkpoint written. Continue "
              f"with python -m gantk.models.train --resume {run_dir}", file=sys.stderr)
        return 130
    if status == "time_limit":
        print(f"gantk.models.train: --minutes reached at step {step}; continue with "
              f"python -m gantk.models.train --resume {run_dir}")
    return 0


def _write_rows(path: pathlib.Path, rows: list[dict[str, Any]]) -> None:
    from gantk import _io

    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    fields = ["step"] + [f for f in fields if f not in ("step", "wall_time")] + ["wall_time"]
    _io.write_csv(path, rows, fields)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gantk.models.train``; returns the exit status."""
    try:
        return _run(argv)
    except UsageError as err:
        print(f"gantk.models.train: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from gantk._malloc import one_arena, reexec_with_huge_pages

    reexec_with_huge_pages()  # large XLA:CPU buffers on 2 MiB pages (glibc tunable)
    one_arena()  # before jax starts its threads: lets HeapKeeper keep the step's buffers
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
