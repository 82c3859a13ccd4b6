"""Seconds per training step of the PDE-driven model, beside the authors' PyTorch code.

One step = the loss (rollout, auto-encoding, S and T terms) + backward + Adam, jitted once
(:func:`gantk.models.pde.pde_loss`), on random frames of the right shape; median over
``--reps`` steps after a warm-up. Also times the generation of the 300 WaveEq sequences.

Reference (issue #10): the authors' code (var_sep) with torch 2.14, 2 threads, on a 2-core
CPU of the CI kind, per training step:

=====================================================  ==========  ===========
config                                                 batch 16    batch 128
=====================================================  ==========  ===========
WaveEq paper (64×64, MLP 1200, 5 → 20)                 1.08 s      2.50 s
Moving MNIST DCGAN (64×64, 5 → 10)                     1.56 s      11.5 s
=====================================================  ==========  ===========

Usage::

    python benchmarks/pde.py                       # both configs at batch 16 and 128
    python benchmarks/pde.py --batches 16 --reps 3 --no-generation
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax

from gantk.data import physics
from gantk.models.pde import PRESETS, PDEModel, pde_loss

TORCH = {("waveeq-paper", 16): 1.08, ("waveeq-paper", 128): 2.50,
         ("mnist-paper", 16): 1.56, ("mnist-paper", 128): 11.5}
CONFIGS = {"waveeq-paper": "paper", "mnist-paper": "paper-mnist"}


def model_of(preset: str) -> tuple[PDEModel, dict]:
    hp = PRESETS[preset]
    keys = ("n_cond", "s_dim", "t_dim", "combiner", "arch", "enc_hidden", "enc_layers",
            "dec_hidden", "dec_layers", "nf", "n_blocks", "res_hidden", "gain", "method",
            "tied", "init_std")
    return PDEModel(obs_shape=(64, 64, 1), **{k: hp[k] for k in keys}), hp


def time_step(config: str, batch: int, reps: int) -> float:
    model, hp = model_of(CONFIGS[config])
    length = hp["n_cond"] + hp["n_pred"]
    x = jax.random.uniform(jax.random.key(0), (batch, length, 64, 64, 1))
    variables = dict(model.init(jax.random.key(1), x[:, : hp["n_cond"]]))
    params = {"params": variables.pop("params")}
    opt = optax.adam(hp["lr"], b1=hp["beta1"], b2=hp["beta2"])
    opt_state = opt.init(params)
    kw = {k: hp[k] for k in ("offset", "lambda_pred", "lambda_ae", "lambda_s", "lambda_t")}

    @jax.jit
    def step(params, state, opt_state, x, key):
        def f(p):
            return pde_loss(model, {**p, **state}, x, key, **kw)

        (loss, (_, state)), g = jax.value_and_grad(f, has_aux=True)(params)
        upd, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, upd), state, opt_state, loss

    out = step(params, variables, opt_state, x, jax.random.key(2))
    jax.block_until_ready(out)
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        out = step(out[0], out[1], out[2], x, jax.random.key(3 + i))
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_generation(size: int) -> float:
    t0 = time.perf_counter()
    d = physics.waveeq("all", size=size, cache=False)
    jax.block_until_ready(jnp.asarray(d.frames[-1]))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--batches", nargs="+", type=int, default=[16, 128])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-generation", action="store_true")
    args = p.parse_args(argv)
    print(f"gantk PDE model, {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}, jax {jax.__version__}; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print(f"{'config':<14} {'batch':>5} {'gantk s/step':>13} {'PyTorch s/step':>15} "
          f"{'ratio':>6}  load")
    for config in args.configs:
        for batch in args.batches:
            sec = time_step(config, batch, args.reps)
            ref = TORCH.get((config, batch))
            ratio = f"{ref / sec:6.2f}" if ref else "   n/a"
            print(f"{config:<14} {batch:>5} {sec:13.3f} {ref if ref else float('nan'):15.2f} "
                  f"{ratio}  {os.getloadavg()[0]:.1f}", flush=True)
    if not args.no_generation:
        for size in (64, 32):
            sec = time_generation(size)
            print(f"WaveEq generation, 300 sequences {size}x{size}: {sec:.1f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print("ratio = PyTorch time / gantk time (> 1: gantk faster). Reproduce: "
          "python benchmarks/pde.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
