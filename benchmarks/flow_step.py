"""Milliseconds per particle-flow step (float32, jit-warm), IPM and LSGAN, ReLU depth-3 NTK.

Times exactly the step that ``python -m gantk.run`` executes (discriminator fit + velocity +
update), inside an on-device ``lax.scan`` chunk, as the median over repeated chunks.

Reference (GAN(TK)², same step, 2-core CPU of the CI kind, N = 500 + 500):
inf_ipm 24-29 ms/step, inf_lsgan 126-160 ms/step. Targets: ipm < 9 ms, lsgan < 30 ms.

Usage::

    python benchmarks/flow_step.py            # eight_gaussians 500+500 and digits 1024+1024
    python benchmarks/flow_step.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from gantk import data, flows
from gantk.architectures import kernel_from_name

CASES = [("eight_gaussians", 500, 500), ("digits", 1024, 1024)]
GANTK2 = {"ipm": "24-29", "lsgan": "126-160"}
TARGET = {"ipm": 9.0, "lsgan": 30.0}


def time_step(loss: str, dataset: str, n: int, m: int, *, chunk: int, reps: int,
              solver: str = "auto") -> float:
    """Median ms per step of the flow step, measured over ``reps`` scan chunks."""
    fake, real = data.load(dataset, n_fake=n, n_real=m, seed=0, dtype=jnp.float32)
    kernel = kernel_from_name("relu")
    step = flows.infinite_width_step(loss, kernel, 1.0, 1000.0 / n, solver=solver)
    state = flows.FlowState(fake, jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32),
                            jax.random.key(0))

    @jax.jit
    def run(state):
        return jax.lax.scan(lambda s, _: step(s, real), state, None, length=chunk)

    jax.block_until_ready(run(state))  # compile + warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state))
        times.append((time.perf_counter() - t0) / chunk * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    """Print the ms/step table and the command that reproduces it."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    reps = 3 if args.quick else 7
    print(f"# gantk flow step, float32, jit-warm; {platform.processor() or platform.machine()},"
          f" {jax.device_count()}x {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{'loss':6} {'data':16} {'N':>11} {'ms/step':>9} {'GAN(TK)2':>9} {'target':>7}")
    for dataset, n, m in CASES:
        for loss in ("ipm", "lsgan"):
            chunk = 20 if loss == "ipm" else 5
            ms = time_step(loss, dataset, n, m, chunk=chunk, reps=reps)
            ref = GANTK2[loss] if dataset == "eight_gaussians" else "-"
            tgt = f"<{TARGET[loss]:g}" if dataset == "eight_gaussians" else "-"
            print(f"{loss:6} {dataset:16} {f'{n}+{m}':>11} {ms:9.2f} {ref:>9} {tgt:>7}",
                  flush=True)
    print(f"\nreproduce: {sys.executable} benchmarks/flow_step.py" + (" --quick" * args.quick))


if __name__ == "__main__":
    main()
