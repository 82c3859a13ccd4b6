"""``python -m gantk.figures``: the paper's analysis figures from the command line.

    python -m gantk.figures adequacy-1d --loss ipm|lsgan [--out DIR]
    python -m gantk.figures adequacy-2d [--data density] [--loss lsgan] [--width 512]
    python -m gantk.figures vector-field --arch relu|relu-nobias|rbf --loss ipm|lsgan
    python -m gantk.figures snapshots RUN_DIR [--out PNG]

Each command writes PNGs and prints the numbers behind them. Exit status 0 on success, 2 on
a bad argument or unusable input (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

import jax
import numpy as np

from gantk import data as gdata
from gantk.architectures import KERNELS
from gantk.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Parser, UsageError, one_line
from gantk.cli.paths import check_output_file
from gantk.figures import (
    ADEQUACY_1D_DATA,
    adequacy_1d,
    adequacy_2d,
    load_snapshots,
    plot_adequacy_1d,
    plot_adequacy_2d,
    plot_snapshots,
    plot_vector_field,
    vector_field,
)

__all__ = ["build_parser", "main"]

def build_parser() -> argparse.ArgumentParser:
    """The ``python -m gantk.figures`` argument parser (one sub-command per figure)."""
    p = Parser(prog="python -m gantk.figures",
                description="Figures of Franceschi et al. (ICML 2022): finite vs infinite "
                "width, velocity fields, flow snapshots.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser,
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
    vf.add_argument("--arch", "--kernel", dest="kernel", choices=tuple(KERNELS), required=True,
                    help="discriminator architecture (its NTK, NNGP for rbf); alias --kernel")
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
        raise UsageError(f"argument --{name}: must be a positive number; got {value}")


def _out_dir(path: str) -> pathlib.Path:
    out = pathlib.Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"argument --out: cannot create folder {path!r} ({err.strerror})"
        ) from None
    return out


def _cmd_adequacy_1d(args: argparse.Namespace) -> None:

    for name in ("time", "lr"):
        _positive(name, getattr(args, name))
    if args.seeds < 1 or any(w < 1 for w in args.widths):
        raise UsageError("arguments --seeds and --widths: must be positive integers")
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

    for name in ("time", "lr"):
        _positive(name, getattr(args, name))
    for name in ("n", "width", "seeds", "resolution"):
        if getattr(args, name) < 1:
            raise UsageError(f"argument --{name}: must be a positive integer")
    out = _out_dir(args.out)
    fake, real = gdata.load(args.data, n_fake=args.n, n_real=args.n, seed=args.seed,
                            dtype=np.float64)
    if np.shape(fake)[1] != 2:
        raise UsageError(f"argument --data: {args.data!r} is {np.shape(fake)[1]}-D; need 2-D")
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
        raise UsageError("arguments --nx/--ny: need at least 2 points per axis")
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
        raise UsageError("arguments --max-panels/--ncols: must be positive integers")
    if not pathlib.Path(args.run_dir).is_dir():
        raise UsageError(f"argument run_dir: {args.run_dir!r} is not a folder")
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

    0 on success; 2 on a bad argument or unusable input, with one line on stderr; 130 on
    Ctrl-C.
    """
    try:
        args = build_parser().parse_args(argv)
        jax.config.update("jax_enable_x64", True)
        try:
            _COMMANDS[args.cmd](args)
        except ValueError as err:
            raise UsageError(one_line(err)) from None
    except UsageError as err:
        print(f"gantk.figures: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gantk.figures: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
