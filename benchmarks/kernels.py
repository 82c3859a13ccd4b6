"""Benchmark of the closed-form NTK of the GAN(TK)² ReLU discriminator (gantk.stax).

Measures, in float32 with warm jit caches:

1. the 4096 x 4096 NTK ``k(x, y)``;
2. the gradient of ``sum(k(x, y))`` in ``x`` for 1024 x 2048 points;
3. the same gradient for 500 x 1000 points (the particle-flow step size of GAN(TK)²);

and prints wall-clock times (min and median over repeats), the process CPU time, an
estimated GFLOP/s (flops / min wall time) and the peak resident set size of the process.

Flop model: the floating-point operation count of the compiled XLA program as reported by
XLA's HLO cost analysis (``compiled.cost_analysis()['flops']``: one flop per elementwise
arithmetic op on each array element, ``2 m n k`` per matrix product; transcendental
functions are counted separately by XLA and not included). It counts work XLA actually
schedules, including work duplicated by fusion, so it is an upper bound on useful flops.

Usage::

    python benchmarks/kernels.py [--repeats 20] [--d 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gantk.architectures import KERNELS


def timed(fn, *args, repeats: int) -> tuple[float, float, float]:
    """Min and median wall-clock seconds, and median process CPU seconds, of ``fn(*args)``.

    The CPU time (all threads of this process) exposes contention: on an idle machine
    with T threads at work, wall ~ CPU / T; on a shared machine wall is larger.
    """
    jax.block_until_ready(fn(*args))
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.min(wall)), float(np.median(wall)), float(np.median(cpu))


def flops_of(fn, *args) -> float:
    cost = fn.lower(*args).compile().cost_analysis()
    if isinstance(cost, list):  # older jax returns one dict per device
        cost = cost[0]
    return float(cost.get("flops", float("nan")))


def report(label: str, fn, args, repeats: int) -> None:
    flops = flops_of(fn, *args)
    t_min, t_med, cpu = timed(fn, *args, repeats=repeats)
    print(
        f"{label:<36s} wall min {1e3 * t_min:8.2f} ms  median {1e3 * t_med:8.2f} ms  "
        f"cpu {1e3 * cpu:8.2f} ms  {flops / 1e9:6.3f} GFLOP -> {flops / t_min / 1e9:5.1f} GFLOP/s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--d", type=int, default=2, help="input dimension (2-D GAN data)")
    args = parser.parse_args(argv)

    spec = KERNELS["relu"]  # Dense(w,1,1)-Relu x3 - Dense(1,1,0), NTK
    k = spec.k()
    key = jax.random.PRNGKey(0)

    def pts(n: int, seed: int) -> jax.Array:
        return jax.random.normal(jax.random.fold_in(key, seed), (n, args.d), jnp.float32)

    print("command:", " ".join([os.path.basename(sys.executable), *sys.argv]))
    print(
        f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{jax.device_count()} device(s), {os.cpu_count()} CPU(s), {platform.processor()}"
    )
    print(f"architecture: GAN(TK)^2 'relu' = {spec}")

    ntk = jax.jit(lambda a, b: k(a, b))
    report("NTK 4096x4096 (float32)", ntk, (pts(4096, 1), pts(4096, 2)), args.repeats)

    grad = jax.jit(jax.grad(lambda a, b: jnp.sum(k(a, b))))
    report("grad_x sum NTK 1024x2048 (float32)", grad, (pts(1024, 3), pts(2048, 4)),
           args.repeats)
    report("grad_x sum NTK 500x1000 (float32)", grad, (pts(500, 5), pts(1000, 6)),
           args.repeats)

    if hasattr(os, "getloadavg"):
        print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 1024 if sys.platform != "darwin" else peak / 2**20
    print(f"peak RSS: {peak_mb:.0f} MiB")


if __name__ == "__main__":
    main()
