"""Empirical NTK of the flax twin vs the infinite-width stax NTK, and the two implementations.

Usage::

    python benchmarks/empirical_ntk.py [--depth 3] [--points 5] [--dtype float32]

Prints, per width, the relative Frobenius error ``‖K_θ − K_∞‖/‖K_∞‖`` (RMS over seeds) of the
empirical NTK at initialization against ``MLPSpec.k()`` with the fitted log-log slope
(theory: −1/2), and the wall time of one ``'jacobian'`` and one ``'ntvp'`` evaluation
(after compilation).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from gantk import nets
from gantk.architectures import MLPSpec


def _time(fn, *args, repeat=3):
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(repeat):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512, 2048, 8192])
    parser.add_argument("--seeds", type=int, nargs="+", default=[16, 16, 8, 4])
    args = parser.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    if len(args.seeds) != len(args.widths):
        parser.error("--seeds needs one count per width")
    spec = MLPSpec("relu", depth=args.depth, b_std=1.0)
    x = np.random.default_rng(0).normal(size=(args.points, 2)).astype(args.dtype)
    k_inf = np.asarray(spec.k()(x.astype(np.float64)), dtype=np.float64)
    print(f"relu depth={args.depth}, b_std=1, {args.points} points in 2D, {args.dtype}")
    print(f"{'width':>6} {'rel.err (RMS)':>14} {'seeds':>5} {'jacobian s':>11} {'ntvp s':>8}")
    errors = []
    for width, n_seeds in zip(args.widths, args.seeds, strict=True):
        s = spec.replace(width=width)
        apply_fn = nets.discriminator_apply(s)
        fns = {impl: jax.jit(nets.empirical_ntk(apply_fn, impl)) for impl in ("jacobian", "ntvp")}
        errs = []
        for seed in range(n_seeds):
            params = nets.init_discriminator(
                jax.random.PRNGKey(seed), s, 2, antisymmetric=False, dtype=args.dtype
            )
            k = np.asarray(fns["ntvp"](x, None, params), dtype=np.float64)
            errs.append(np.linalg.norm(k - k_inf) / np.linalg.norm(k_inf))
        errors.append(float(np.sqrt(np.mean(np.square(errs)))))
        times = {impl: _time(fn, x, None, params) for impl, fn in fns.items()}
        print(
            f"{width:>6} {errors[-1]:>14.4f} {n_seeds:>5} {times['jacobian']:>11.4f} "
            f"{times['ntvp']:>8.4f}",
            flush=True,
        )
    slope = np.polyfit(np.log(args.widths), np.log(errors), 1)[0]
    print(f"log-log slope of the error: {slope:.3f} (theory -0.5)")


if __name__ == "__main__":
    main()
