"""Seconds per LSGAN discriminator fit, ``eigh`` vs ``krylov`` (float32, jit-warm).

ReLU depth-3 NTK (``gantk.architectures.kernel_from_name('relu')``, GAN(TK)²'s default
discriminator), 2-D data: fake ~ N(0, I), real = eight Gaussians on the circle of radius 2.
One "fit" is ``discriminator('lsgan', k, fake, real, tau, solver=...)`` up to ``alpha``
(kernel matrix included), jitted and timed after a warm-up run, as the median over
repetitions. Also printed: the Krylov iteration count, its convergence estimate, and the
relative L2 difference of ``f_tau`` at the fake particles between the two solvers.

Target: krylov >= 20x faster than eigh at N = M = 4000.

Usage::

    python benchmarks/krylov.py                      # N = M = 4000, tau = 1
    python benchmarks/krylov.py --sizes 250 500 1000 2000 4000 --reps 3   # crossover
    python benchmarks/krylov.py --tau 1000           # a slower-converging horizon
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gantk.architectures import kernel_from_name
from gantk.discriminator import discriminator


def make_data(n: int, m: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """Fake N(0, I) particles and eight-Gaussian real points, float32, shape (n, 2), (m, 2)."""
    rng = np.random.default_rng(seed)
    fake = rng.normal(size=(n, 2))
    angles = 2 * np.pi * rng.integers(0, 8, size=m) / 8
    real = 2 * np.stack([np.cos(angles), np.sin(angles)], 1) + 0.1 * rng.normal(size=(m, 2))
    return jnp.asarray(fake, jnp.float32), jnp.asarray(real, jnp.float32)


def time_fit(solver: str, fake, real, tau: float, reps: int):
    """(median seconds, fitted discriminator) of a jitted fit with ``solver``."""
    kernel = kernel_from_name("relu")
    fit = jax.jit(lambda x, y: discriminator("lsgan", kernel, x, y, tau, solver=solver))
    D = jax.block_until_ready(fit(fake, real))  # compile + warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        D = jax.block_until_ready(fit(fake, real))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), D


def main(argv: list[str] | None = None) -> None:
    """Print the eigh/krylov timing table and the command that reproduces it."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4000], help="N = M values")
    p.add_argument("--tau", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--eigh-reps", type=int, default=1)
    args = p.parse_args(argv)
    print(
        f"# LSGAN discriminator fit, ReLU depth-3 NTK, float32, tau={args.tau:g}, jit-warm; "
        f"{platform.processor() or platform.machine()}, {jax.device_count()}x "
        f"{jax.devices()[0].device_kind}, jax {jax.__version__}"
    )
    print(
        f"{'N+M':>11} {'eigh s':>9} {'krylov s':>9} {'speedup':>8} {'iters':>6} "
        f"{'estimate':>9} {'rel diff':>9}"
    )
    for n in args.sizes:
        fake, real = make_data(n, n)
        tk, Dk = time_fit("krylov", fake, real, args.tau, args.reps)
        te, De = time_fit("eigh", fake, real, args.tau, args.eigh_reps)
        fk, fe = Dk(fake), De(fake)
        diff = float(jnp.linalg.norm(fk - fe) / jnp.linalg.norm(fe))
        print(
            f"{f'{n}+{n}':>11} {te:9.3f} {tk:9.3f} {te / tk:7.1f}x "
            f"{int(Dk.stats.iterations):6d} {float(Dk.stats.residual):9.1e} {diff:9.1e}",
            flush=True,
        )
    cmd = f"{sys.executable} benchmarks/krylov.py --sizes {' '.join(map(str, args.sizes))}"
    if not math.isclose(args.tau, 1.0):
        cmd += f" --tau {args.tau:g}"
    if args.reps != 3:
        cmd += f" --reps {args.reps}"
    if args.eigh_reps != 1:
        cmd += f" --eigh-reps {args.eigh_reps}"
    print(f"\nreproduce: {cmd}")


if __name__ == "__main__":
    main()
