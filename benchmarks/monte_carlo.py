"""Monte-Carlo kernels: time per sample of ``gantk.monte_carlo_kernel_fn`` vs one empirical kernel.

Usage::

    python benchmarks/monte_carlo.py [--width 1024] [--depth 3] [--points 256]
        [--samples 1000] [--measure-samples N] [--batch-size 0] [--implementation 1]
        [--get ntk] [--repeats 3]

Network: ``depth`` hidden ReLU layers of ``width`` (NT parameterization, ``W_std=1``,
``b_std=0.1``) and a scalar read-out, on ``points`` Gaussian inputs in 8 dimensions
(float32). Prints

- ``empirical``: seconds per call of a jitted ``gantk.empirical_kernel_fn`` on one draw
  (after compilation, median of 3);
- ``monte carlo``: seconds per sample of ``monte_carlo_kernel_fn(..., n_samples)``
  (first call, which includes compilation, and a second call), and the ratio to the
  empirical time (1 means no overhead: the samples are scanned on device);
- the relative Frobenius error of the Monte-Carlo NTK against the infinite-width one
  (``O(1 / sqrt(samples * width))``), the 1-minute load average and the command.

The issue's setting (width 1024, 256 points, 1000 samples) needs the per-example
Jacobians of ~2.1M parameters for 256 points (2.2 GB in float32) per sample. On a CPU,
``--measure-samples N`` times ``N`` samples (the same compiled scan, so the same cost per
sample) and prints the extrapolated time of all ``--samples``, labelled as such; the error
against infinite width is then that of ``N`` samples.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import gantk
from gantk import stax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--measure-samples", type=int, default=0,
                        help="time this many samples and extrapolate to --samples (0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed empirical calls")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--implementation", type=int, default=1, choices=[0, 1, 2])
    parser.add_argument("--get", default="ntk", choices=["nngp", "ntk"])
    args = parser.parse_args()
    for name in ("width", "depth", "points", "samples", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if not 0 <= args.measure_samples <= args.samples:
        parser.error("--measure-samples must be in [0, --samples]")
    measured = args.measure_samples or args.samples

    layers = [stax.Dense(args.width, 1.0, 0.1)]
    for _ in range(args.depth - 1):
        layers += [stax.Relu(), stax.Dense(args.width, 1.0, 0.1)]
    init_fn, apply_fn, kernel_fn = stax.serial(*layers, stax.Relu(), stax.Dense(1, 1.0, 0.0))
    x = jax.random.normal(jax.random.PRNGKey(0), (args.points, 8), jnp.float32)
    common = dict(vmap_axes=0, implementation=args.implementation)

    emp = jax.jit(gantk.empirical_kernel_fn(apply_fn, **common), static_argnames="get")
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    jax.block_until_ready(emp(x, None, args.get, params))
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(emp(x, None, args.get, params))
        times.append(time.perf_counter() - t0)
    t_emp = float(np.median(times))

    mc = gantk.monte_carlo_kernel_fn(
        init_fn, apply_fn, jax.random.PRNGKey(2), measured, batch_size=args.batch_size, **common
    )
    t0 = time.perf_counter()
    k_mc = jax.block_until_ready(mc(x, None, args.get))
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(mc(x, None, args.get))
    t_mc = (time.perf_counter() - t0) / measured

    k_inf = np.asarray(kernel_fn(np.asarray(x, np.float64), None, args.get))
    err = np.linalg.norm(np.asarray(k_mc, np.float64) - k_inf) / np.linalg.norm(k_inf)
    print(
        f"{args.depth}-layer ReLU MLP, width {args.width}, {args.points} points, "
        f"{args.samples} samples ({measured} timed), get={args.get}, "
        f"implementation={args.implementation}, batch_size={args.batch_size}, float32, "
        f"backend={jax.default_backend()}"
    )
    print(f"empirical_kernel_fn, one draw:  {t_emp:9.4f} s")
    print(
        f"monte_carlo_kernel_fn:          {t_mc:9.4f} s/sample "
        f"(ratio {t_mc / t_emp:.2f}; first call incl. compile {t_first:.1f} s)"
    )
    label = "measured" if measured == args.samples else f"EXTRAPOLATED from {measured} samples"
    total = t_mc * args.samples
    print(f"monte_carlo_kernel_fn, all {args.samples} samples: {total:9.1f} s ({label})")
    print(f"relative Frobenius error vs infinite width ({measured} samples): {err:.4f}")
    print(f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
