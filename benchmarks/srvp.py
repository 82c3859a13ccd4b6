"""SRVP speed: gantk (JAX) per training step and per best-of-100 generation, beside the
authors' PyTorch code measured on the same kind of 2-core CPU (torch 2.14, 2 threads, fp32).

A training step is one jitted call: ELBO + backward + Adam. Generation conditions on 5 frames
and predicts 20, the 100 samples vmapped in one jitted call. Also reports the Moving Digits
data rate. Compilation is excluded (timed separately).

    python benchmarks/srvp.py                  # batch 16, both configs, generation, data
    python benchmarks/srvp.py --batch 16 128   # also batch 128
    python benchmarks/srvp.py --quick          # nf=16 config at batch 16 only
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gantk.data.video import MovingDigits
from gantk.models.srvp import PRESETS, SRVPExperiment

# seconds, authors' PyTorch code, 2-core CPU, torch 2.14, 2 threads (issue #9, §5)
PYTORCH = {
    ("paper", 16): 2.44, ("paper", 128): 22.7,
    ("nf16-res128", 16): 0.33, ("nf16-res128", 128): 2.95,
    ("generation-sequential", 100): 8.4, ("generation-batched", 100): 6.45,
}
CONFIGS = {
    "paper": dict(PRESETS["paper"]),
    "nf16-res128": dict(PRESETS["paper"], nf=16, nh_res=128),
}


def _time(fn, repeats: int) -> tuple[float, float]:
    """(compile + first call, median of ``repeats`` warm calls) in seconds."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return first, float(np.median(times))


def train_step_time(name: str, batch: int, repeats: int) -> tuple[float, float]:
    """Seconds per SRVP training step (15 frames of 64×64) for a named config."""
    hp = dict(CONFIGS[name], batch_size=batch)
    exp = SRVPExperiment("moving-digits", hp, seed=0)
    params, state = exp.init(jax.random.key(0))
    opt_state = exp.optimizer.init(params)
    x = jnp.asarray(exp.train_batch(0))

    @jax.jit
    def step(p, s, o, k):
        (loss, (_, s)), g = jax.value_and_grad(exp.loss, has_aux=True)(p, s, x, k)
        u, o = exp.optimizer.update(g, o, p)
        return optax.apply_updates(p, u), s, o, loss

    carry = [params, state, opt_state]

    def run():
        out = step(*carry, jax.random.key(1))
        carry[:] = out[:3]
        return out[3]

    return _time(run, repeats)


def generation_time(repeats: int) -> tuple[float, float]:
    """Seconds for best-of-100 generation of one video, 5 → 20 frames, paper config."""
    exp = SRVPExperiment("moving-digits", dict(CONFIGS["paper"], batch_size=1), seed=0)
    params, state = exp.init(jax.random.key(0))
    x = exp.data.test_videos(1, 25)[:, :5]
    return _time(lambda: exp.sample(params, state, x, jax.random.key(2), n_samples=100,
                                    n_frames=25), repeats)


def data_rate() -> float:
    """Moving Digits training sequences per second (15 frames of 64×64, batches of 16)."""
    d = MovingDigits(size=64, n_frames=15)
    d.train_batch(0, 0, 16)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 2.0:
        d.train_batch(0, n, 16)
        n += 1
    return 16 * n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[16])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-generation", action="store_true")
    args = p.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, load average {load:.1f}; "
          f"command: python benchmarks/srvp.py {' '.join(argv or sys.argv[1:])}")
    print(f"data: {data_rate():.0f} Moving Digits sequences/s (15 x 64x64, batches of 16)")
    print(f"{'config':<24}{'batch':>6}{'gantk s':>10}{'compile s':>11}{'PyTorch s':>11}")
    names = ["nf16-res128"] if args.quick else list(CONFIGS)
    batches = [16] if args.quick else args.batch
    for name in names:
        for b in batches:
            first, warm = train_step_time(name, b, args.repeats)
            ref = PYTORCH.get((name, b))
            print(f"{name:<24}{b:>6}{warm:>10.3f}{first - warm:>11.1f}"
                  f"{ref if ref is not None else float('nan'):>11.2f}", flush=True)
    if not (args.quick or args.no_generation):
        first, warm = generation_time(args.repeats)
        print(f"{'best-of-100 generation':<24}{1:>6}{warm:>10.3f}{first - warm:>11.1f}"
              f"{PYTORCH[('generation-batched', 100)]:>11.2f}  (PyTorch sample by sample "
              f"{PYTORCH[('generation-sequential', 100)]:.2f})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# load average at the end {load:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
