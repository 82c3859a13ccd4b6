"""Monte-Carlo kernels: time per sample of ``gantk.monte_carlo_kernel_fn`` vs one empirical kernel.

Usage::

    python benchmarks/monte_carlo.py [--width 1024] [--depth 3] [--points 256]
        [--samples 1000] [--measure-samples N] [--batch-size 0] [--implementation 3]
        [--compare 1 2] [--compare-mc 1] [--compare-samples 1] [--get ntk] [--repeats 3]

Network: ``depth`` hidden ReLU layers of ``width`` (NT parameterization, ``W_std=1``,
``b_std=0.1``) and a scalar read-out, on ``points`` Gaussian inputs in 8 dimensions
(float32), ``vmap_axes=0``. Prints

- ``empirical``: seconds per call of a jitted ``gantk.empirical_kernel_fn`` on one draw
  (after compilation, median of ``--repeats``; a single call when one takes over 5 s), for
  ``--implementation`` and each ``--compare`` implementation (1 Jacobian contraction,
  2 NTK-vector products, 3 structured derivatives, Novak et al. ICML 2022);
- ``monte carlo``: seconds per sample of ``monte_carlo_kernel_fn`` with
  ``--implementation`` over ``--samples`` samples (after up to 16 warm-up samples that
  compile its two scan steps, in the same running sum) and its ratio to
  the empirical time of the same implementation (1: no overhead beyond drawing ``params``);
  then the same for each ``--compare-mc`` implementation on ``--compare-samples`` samples;
- the relative Frobenius error of the Monte-Carlo kernel against the infinite-width one
  (``O(1 / sqrt(samples * width))``), the 1-minute load average and the command.

The issue's setting is the default: width 1024, 256 points, 1000 samples. With Jacobian
contraction each sample needs the per-example Jacobians of ~2.1M parameters for 256 points
(2.2 GB in float32); structured derivatives only need ``x_i·x_j`` and ``δ_i·δ_j`` per layer.
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

_NAMES = {0: "AUTO", 1: "JACOBIAN_CONTRACTION", 2: "NTK_VECTOR_PRODUCTS", 3: "STRUCTURED"}


def _time_empirical(apply_fn, impl, x, params, get, repeats) -> float:
    emp = jax.jit(
        gantk.empirical_kernel_fn(apply_fn, vmap_axes=0, implementation=impl),
        static_argnames="get",
    )
    jax.block_until_ready(emp(x, None, get, params))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(emp(x, None, get, params))
        times.append(time.perf_counter() - t0)
        if times[-1] > 5.0:
            break
    return float(np.median(times))


def _time_monte_carlo(init_fn, apply_fn, impl, x, n, get, batch_size):
    """``(s/sample over n samples, warm-up s, estimate)``, every sample computed once.

    ``n_samples=[w, 2w, 2w + n]`` (a generator, one running sum): the first ``w`` samples
    compile the first scan chunk, the next ``w`` the accumulating one, and the last ``n``
    are timed with both compiled; the estimate averages all ``2w + n`` samples.
    """
    w = min(8, n)
    mc = gantk.monte_carlo_kernel_fn(
        init_fn,
        apply_fn,
        jax.random.PRNGKey(2),
        [w, 2 * w, 2 * w + n],
        batch_size=batch_size,
        vmap_axes=0,
        implementation=impl,
    )
    estimates = mc(x, None, get)
    t0 = time.perf_counter()
    jax.block_until_ready(next(estimates))
    jax.block_until_ready(next(estimates))
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    k = jax.block_until_ready(next(estimates))
    return (time.perf_counter() - t0) / n, t_warm, k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument(
        "--measure-samples",
        type=int,
        default=0,
        help="time this many samples and extrapolate to --samples (0: all)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed empirical calls")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--implementation", type=int, default=3, choices=[0, 1, 2, 3])
    parser.add_argument(
        "--compare",
        type=int,
        nargs="*",
        default=[1, 2],
        choices=[0, 1, 2, 3],
        help="other implementations timed for empirical_kernel_fn",
    )
    parser.add_argument(
        "--compare-mc",
        type=int,
        nargs="*",
        default=[1],
        choices=[0, 1, 2, 3],
        help="other implementations timed for monte_carlo_kernel_fn",
    )
    parser.add_argument(
        "--compare-samples",
        type=int,
        default=1,
        help="samples timed for each --compare-mc implementation",
    )
    parser.add_argument("--get", default="ntk", choices=["nngp", "ntk"])
    args = parser.parse_args()
    for name in ("width", "depth", "points", "samples", "repeats", "compare_samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 <= args.measure_samples <= args.samples:
        parser.error("--measure-samples must be in [0, --samples]")
    measured = args.measure_samples or args.samples
    load_before = os.getloadavg()[0]

    layers = [stax.Dense(args.width, 1.0, 0.1)]
    for _ in range(args.depth - 1):
        layers += [stax.Relu(), stax.Dense(args.width, 1.0, 0.1)]
    init_fn, apply_fn, kernel_fn = stax.serial(*layers, stax.Relu(), stax.Dense(1, 1.0, 0.0))
    x = jax.random.normal(jax.random.PRNGKey(0), (args.points, 8), jnp.float32)
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    print(
        f"{args.depth}-layer ReLU MLP, width {args.width}, {args.points} points, "
        f"{args.samples} samples ({measured} timed), get={args.get}, vmap_axes=0, "
        f"batch_size={args.batch_size}, float32, backend={jax.default_backend()}",
        flush=True,
    )

    impls = [args.implementation] + [i for i in args.compare if i != args.implementation]
    t_emp = {}
    for impl in impls:
        t_emp[impl] = _time_empirical(apply_fn, impl, x, params, args.get, args.repeats)
        print(
            f"empirical_kernel_fn, one draw, {_NAMES[impl]:>20}: {t_emp[impl]:9.4f} s", flush=True
        )

    t_mc, t_first, k_mc = _time_monte_carlo(
        init_fn, apply_fn, args.implementation, x, measured, args.get, args.batch_size
    )
    name = _NAMES[args.implementation]
    print(
        f"monte_carlo_kernel_fn, {name:>20}: {t_mc:9.4f} s/sample "
        f"(ratio to empirical {t_mc / t_emp[args.implementation]:.2f}; warm-up samples "
        f"incl. compile {t_first:.1f} s)",
        flush=True,
    )
    label = (
        f"measured, after {2 * min(8, measured)} warm-up samples"
        if measured == args.samples
        else f"EXTRAPOLATED from {measured} samples"
    )
    print(
        f"monte_carlo_kernel_fn, {name}, all {args.samples} samples: "
        f"{t_mc * args.samples:9.1f} s ({label})",
        flush=True,
    )
    for impl in args.compare_mc:
        if impl == args.implementation:
            continue
        t, _, _ = _time_monte_carlo(
            init_fn, apply_fn, impl, x, args.compare_samples, args.get, args.batch_size
        )
        print(
            f"monte_carlo_kernel_fn, {_NAMES[impl]:>20}: {t:9.4f} s/sample "
            f"({args.compare_samples} timed; {t / t_mc:.1f}x the {name} time; all "
            f"{args.samples} samples EXTRAPOLATED: {t * args.samples:.0f} s)",
            flush=True,
        )

    k_inf = np.asarray(kernel_fn(np.asarray(x, np.float64), None, args.get))
    err = np.linalg.norm(np.asarray(k_mc, np.float64) - k_inf) / np.linalg.norm(k_inf)
    n_est = measured + 2 * min(8, measured)
    print(f"relative Frobenius error vs infinite width ({n_est} samples): {err:.4f}")
    print(
        f"load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} CPUs"
    )
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
