"""``python -m gantk.run``: parse, validate, build, run in chunks, write, report.

Exit status: 0 done; 1 the run diverged (the last finite state is saved) or a write failed
mid-run (what was written stays); 2 a bad argument or unusable input (one line naming it;
nothing written or modified); 130 interrupted (one line; the folder can be continued with
``--resume`` or, if it was interrupted before its first checkpoint, replaced with
``--overwrite``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from gantk import _io, flows
from gantk.cli.build import Built, build
from gantk.cli.checkpoint import config_hash, load_checkpoint, save_checkpoint
from gantk.cli.config import (
    RunConfig,
    build_parser,
    config_from_json,
    config_to_json,
    discr_steps,
    resolve_config,
)
from gantk.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RunError,
    UsageError,
    one_line,
)
from gantk.cli.interrupts import deferred_interrupts
from gantk.cli.logger import RunLogger, print_table, read_rows
from gantk.cli.paths import check_run_dir, check_run_name, clear_run_dir, make_dirs

__all__ = ["INNER_PROGRESS_MIN", "main"]

PROG = "gantk.run"
#: Finite-width discriminators with at least this many SGD steps per generator step get a
#: progress bar of their own (a generator step then takes a noticeable time).
INNER_PROGRESS_MIN = 1000


@dataclasses.dataclass
class _Session:
    """Where a run stands, for the message of an interrupt or a failure."""

    run_dir: pathlib.Path | None = None
    checkpointed: bool = False


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gantk.run`` and ``gantk-run``; returns the exit status.

    Set ``GANTK_DEBUG=1`` to see the traceback of an unexpected error.
    """
    sess = _Session()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return _main(argv, sess)
    except UsageError as err:
        _say(f"error: {err}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say(_interrupt_message(sess))
        return EXIT_INTERRUPTED
    except (RunError, OSError) as err:
        where = f"; what was written is kept in {str(sess.run_dir)!r}" if sess.run_dir else ""
        _say(f"error: {_os_message(err)}{where}")
        return EXIT_FAILURE
    except Exception as err:  # a bug: one line, the traceback on request
        if os.environ.get("GANTK_DEBUG"):
            raise
        _say(f"internal error: {type(err).__name__}: {one_line(err)} (set GANTK_DEBUG=1 for "
             "the traceback)")
        return EXIT_FAILURE


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _os_message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"cannot write {str(err.filename)!r}: {err.strerror}" if err.filename \
            else err.strerror
    return one_line(err)


def _interrupt_message(sess: _Session) -> str:
    if sess.run_dir is None:
        return "interrupted; nothing was written"
    if not sess.checkpointed:
        return (f"interrupted before the first checkpoint; start again with --overwrite to "
                f"replace {str(sess.run_dir)!r}")
    return f"interrupted; continue with python -m gantk.run --resume {sess.run_dir}"


def _main(argv: list[str] | None, sess: _Session) -> int:
    args = build_parser().parse_args(argv)
    if args.resume:
        cfg, run_dir = _resume_config(args)
    else:
        cfg = resolve_config(args)
        run_dir = pathlib.Path(args.out) / check_run_name(cfg.run_name)
        check_run_dir(run_dir, overwrite=args.overwrite)
    if cfg.x64:
        jax.config.update("jax_enable_x64", True)
    built = build(cfg)
    ck_hash = config_hash(config_to_json(dataclasses.replace(built.cfg, steps=0)))
    if args.resume:
        logger, state, start, gen_hist = _restore(built, run_dir, ck_hash, args, sess)
        if start >= built.cfg.steps:
            print(f"{PROG}: {run_dir} already has {start} >= {built.cfg.steps} steps; "
                  "nothing to do")
            return EXIT_OK
    else:
        logger, state = _create(built, run_dir, ck_hash, args, sess)
        start, gen_hist = 0, []
    for note in built.notes:
        _say(f"note: {note}")
    _banner(built, run_dir)
    result = _loop(built, logger, state, start, gen_hist, ck_hash, progress=not args.no_progress)
    return _finish(built, logger, result, start, gen_hist, ck_hash)


def _resume_config(args: argparse.Namespace) -> tuple[RunConfig, pathlib.Path]:
    """The saved configuration of ``--resume DIR`` (``--steps`` may change), validated."""
    run_dir = pathlib.Path(args.resume)
    changed = [k for k, v in vars(args).items() if v is not None and k not in
               ("steps", "resume", "out", "name") and k in (*RunConfig.__dataclass_fields__,
                                                            "depth", "w_std", "b_std")]
    if changed:
        raise UsageError(f"argument --resume: only --steps may change on resume; got "
                         f"--{changed[0].replace('_', '-')}")
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file() or not (run_dir / "checkpoint.npz").is_file():
        raise UsageError(f"argument --resume: {str(run_dir)!r} has no config.json and "
                         "checkpoint.npz to resume from (a run interrupted before its first "
                         "checkpoint is started again with --overwrite)")
    cfg = config_from_json(_read_json(cfg_path), f"argument --resume: {str(cfg_path)!r}")
    summary = run_dir / "summary.json"
    if summary.is_file():
        done = _read_json(summary)
        if isinstance(done, dict) and done.get("status") == "diverged":
            raise UsageError(
                f"argument --resume: the run in {str(run_dir)!r} diverged at step "
                f"{done.get('diverged_at_step')}; resuming with the same settings would "
                "diverge again (start a new run, e.g. with a smaller --eta)")
    if args.steps is not None:
        if args.steps < 1:
            raise UsageError(f"argument --steps: expected a positive integer; got {args.steps}")
        cfg.steps = args.steps
    return cfg, run_dir


def _read_json(path: pathlib.Path) -> Any:
    try:
        return _io.read_json(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"argument --resume: {str(path)!r} is not valid JSON "
                         f"({one_line(err)})") from None


def _restore(built: Built, run_dir: pathlib.Path, ck_hash: str, args: argparse.Namespace,
             sess: _Session) -> tuple[RunLogger, Any, int, list[float]]:
    """Validate and read the checkpoint and the metrics so far (nothing is written)."""
    state, start, gen_loss, elapsed = load_checkpoint(
        run_dir / "checkpoint.npz", built.state, config_hash=ck_hash)
    logger = RunLogger(built, run_dir, figures=not args.no_figures, elapsed_before=elapsed)
    logger.rows = read_rows(run_dir / "metrics.csv", start, built.cfg.csv_fields)
    sess.run_dir, sess.checkpointed = run_dir, True
    return logger, state, start, [float(v) for v in gen_loss]


def _create(built: Built, run_dir: pathlib.Path, ck_hash: str, args: argparse.Namespace,
            sess: _Session) -> tuple[RunLogger, Any]:
    """Create (or replace) the run folder; write the configuration, step 0, checkpoint 0."""
    make_dirs(run_dir.parent, "--out")
    check_run_dir(run_dir, overwrite=args.overwrite)
    try:
        clear_run_dir(run_dir)
        (run_dir / "figures").mkdir(parents=True, exist_ok=True)
        sess.run_dir = run_dir
        _io.write_json(run_dir / "config.json", config_to_json(built.cfg))
    except OSError as err:
        raise UsageError(f"argument --out: {_os_message(err)}") from None
    logger = RunLogger(built, run_dir, figures=not args.no_figures)
    logger.log(built.state, 0, None)
    _checkpoint(run_dir, built.state, 0, [], logger.elapsed, ck_hash)
    sess.checkpointed = True
    return logger, built.state


def _checkpoint(run_dir: pathlib.Path, state: Any, step: int, gen_hist: list[float],
                elapsed: float, ck_hash: str) -> None:
    save_checkpoint(run_dir / "checkpoint.npz", state, step=step, gen_loss=gen_hist,
                    elapsed=elapsed, config_hash=ck_hash)


def _banner(built: Built, run_dir: pathlib.Path) -> None:
    cfg = built.cfg
    kind = "NTK" if cfg.spec.kernel == "ntk" else "NNGP"
    width = "" if cfg.width is None else (
        f" (width {cfg.width}, {discr_steps(cfg)} SGD steps of lr {cfg.discr_lr:g} per "
        "generator step)")
    print(f"{PROG}: {cfg.run_name}: {cfg.loss} loss, {cfg.arch} {kind}{width}, {cfg.data} "
          f"({built.n}+{built.real.shape[0]} points, d={built.d}), {cfg.steps} steps, "
          f"eta={cfg.eta:g} (step {built.step_size:g}/particle), tau={cfg.time:g}, "
          f"{len(built.devices)} {built.devices[0].platform} device(s) -> {run_dir}",
          flush=True)


def _inner_progress(built: Built, n_steps: int, enabled: bool) -> tuple[Callable, Any]:
    """The step function, with a bar over the discriminator's SGD steps when they are many."""
    inner = discr_steps(built.cfg)
    if not enabled or inner < INNER_PROGRESS_MIN:
        return built.step, None
    bar = tqdm(total=n_steps * inner, desc="discriminator SGD", unit="step", leave=False,
               position=1, dynamic_ncols=True)

    def step(state: Any, real: Any) -> tuple[Any, Any]:
        new, loss = built.step(state, real)
        jax.debug.callback(lambda: bar.update(inner))
        return new, loss

    return step, bar


def _loop(built: Built, logger: RunLogger, state: Any, start: int, gen_hist: list[float],
          ck_hash: str, *, progress: bool) -> flows.ChunkResult:
    """Run the remaining steps in chunks of ``log_every``, logging and checkpointing each."""
    cfg = built.cfg
    history = list(gen_hist)

    def on_chunk(st: Any, done: int, out: Any) -> bool:
        losses, disc = (out.gen_loss, out.discriminator) if isinstance(out, flows.StepOutput) \
            else (out, None)
        history.extend(float(v) for v in np.asarray(losses))
        logger.log(st, start + done, history[-1], disc)
        _checkpoint(logger.dir, st, start + done, history, logger.elapsed, ck_hash)
        return False

    step, bar = _inner_progress(built, cfg.steps - start, progress)
    try:
        return flows.run_chunked(step, state, built.real, cfg.steps - start,
                                 chunk_size=cfg.log_every, on_chunk=on_chunk,
                                 progress=progress, desc=cfg.run_name)
    finally:
        if bar is not None:
            bar.close()


def _finish(built: Built, logger: RunLogger, result: flows.ChunkResult, start: int,
            gen_hist: list[float], ck_hash: str) -> int:
    """Save the final state and summary (not interruptible), then figures and the report."""
    cfg, run_dir = built.cfg, logger.dir
    final_step = start + result.steps_done
    losses = [*gen_hist, *np.asarray(result.gen_loss, dtype=np.float64).tolist()]
    losses = (losses + [math.nan] * final_step)[:final_step]
    status = {None: "completed"}.get(result.stopped, result.stopped)
    diverged_at = None
    last_logged = logger.rows[-1]["step"] if logger.rows else None
    with deferred_interrupts() as held:
        if result.stopped == "diverged":
            final_step = int(result.state.diverged_at)  # the last finite state
            diverged_at, losses = final_step + 1, losses[:final_step]
            logger.log(result.state, final_step, losses[-1] if losses else None)
        elif last_logged != final_step or result.stopped == "interrupted":
            if last_logged != final_step:
                logger.log(result.state, final_step, losses[-1] if losses else None)
            _checkpoint(run_dir, result.state, final_step, losses, logger.elapsed, ck_hash)
        summary = logger.summary(status, final_step, result.step_time, diverged_at)
        _io.write_json(run_dir / "summary.json", summary)
    interrupted = held.pressed or result.stopped == "interrupted"
    try:
        logger.final_figures(losses, final_step, result.stopped is None,
                             built.particles(result.state), result.discriminator)
    except KeyboardInterrupt:
        interrupted = True
    print()
    print_table(logger.rows, fields=cfg.csv_fields)
    ms = summary["ms_per_step"]
    print(f"\n{status}: {final_step}/{cfg.steps} steps in {summary['wall_time_s']:.1f} s"
          + (f" ({ms:.2f} ms/step jit-warm)" if ms else "") + f"; outputs in {run_dir}")
    if diverged_at is not None:
        _say(f"run diverged: non-finite particles at step {diverged_at}; the last finite "
             f"state (step {final_step}) is saved in {run_dir}")
        return EXIT_FAILURE
    if interrupted:
        _say(f"interrupted at step {final_step}; checkpoint written. Continue with "
             f"python -m gantk.run --resume {run_dir}")
        return EXIT_INTERRUPTED
    return EXIT_OK
