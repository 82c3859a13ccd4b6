"""Seconds per training step of the PDE-driven model, beside the authors' PyTorch code.

One step = the loss (rollout, auto-encoding, S and T terms) + backward + Adam, jitted once
(:func:`gantk.models.pde.pde_loss`), on random frames of the right shape; median over
``--reps`` steps after a warm-up. Parameters and optimizer state are donated to the step
(``jax.jit(..., donate_argnums=...)``), as a training loop can: XLA then updates them in
place instead of allocating fresh ~100 MB buffers for the encoders' first layers every step.
``--breakdown`` also times the pieces, each jitted on its own (forward + backward): the two
encoders, the ODE rollout of ``T``, the decoder, and the Adam update. Also times the
generation of the 300 WaveEq sequences.

Two references, both the authors' code (var_sep) with torch, 2 threads, fp32, per step:

- the issue's (#10, torch 2.14, "this kind of 2-core CPU": the authors' code ran 1.4–2.4×
  slower on the AVX2 EPYC that most of gantk's numbers come from, 1.15–1.8× faster on an
  AVX-512 one);
- a CPU of the same kind as the one running (:func:`cpu_kind`: AVX2 or AVX-512), measured
  with ``benchmarks/pytorch_reference.py`` (optional, needs torch and a checkout of the
  authors' repository; see :data:`TORCH_HERE`).

=====================================================  ==========  ===========
issue #10 reference                                    batch 16    batch 128
=====================================================  ==========  ===========
WaveEq paper (64×64, MLP 1200, 5 → 20)                 1.08 s      2.50 s
Moving MNIST DCGAN (64×64, 5 → 10)                     1.56 s      11.5 s
=====================================================  ==========  ===========

The printed ``ratio`` columns are PyTorch time / gantk time (> 1: gantk faster); compare
with the same-kind column (the ratio is what survives machine load; a CPU of another kind
moves the two codes differently, so none is printed there). ``GFLOP`` is XLA's
own count of the compiled step (``cost_analysis``), a load-independent measure of the work;
``exact`` the work of the authors' networks counted by hand (:func:`exact_gflop`), which the
PyTorch step does (cuDNN/oneDNN convolutions compute only real taps).

Usage::

    python benchmarks/pde.py                       # both configs at batch 16 and 128
    python benchmarks/pde.py --batches 16 --reps 3 --no-generation
    python benchmarks/pde.py --configs waveeq-paper --batches 16 --breakdown
    XLA_FLAGS=--xla_cpu_use_onednn=true python benchmarks/pde.py   # an XLA:CPU variant

The frames are an argument of the jitted step (no constant folding of the batch). glibc's
``malloc`` is set up as ``python -m gantk.models.train`` sets it (:mod:`gantk._malloc`): huge
pages, and the step's temporaries kept between steps when they are ≥ 1 GiB and memory allows
(the ``heap:`` line under each row; ``GANTK_KEEP_HEAP=0`` turns it off, to measure without).

The Moving MNIST config runs the DCGAN nets of :mod:`gantk.models.conv`; the decoder
dominates it (16 frames per sequence against 4 encoder windows, as in the authors' step).
Its work per step is the authors' (same frames, BatchNorm statistics per time step as their
one call per step: ``exact``); the stride-2 transposed convolutions compute only real taps
too (col2im forward, im2col gradients). XLA's ``GFLOP`` is below ``exact`` there because
``cost_analysis`` counts the body of a ``lax.map`` (the chunked transposed convolutions and
their gradients) once, not once per chunk.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax

try:  # python benchmarks/pde.py
    from _cpu import cpu_kind
except ImportError:  # python -m benchmarks.pde
    from benchmarks._cpu import cpu_kind
from gantk._malloc import HeapKeeper, temp_bytes
from gantk.data import physics
from gantk.models.pde import PRESETS, PDEModel, _apply, _codes, _decode_codes, pde_loss

# seconds per step, the authors' var_sep code, torch 2.14, 2 threads (issue #10, §5)
TORCH = {("waveeq-paper", 16): 1.08, ("waveeq-paper", 128): 2.50,
         ("mnist-paper", 16): 1.56, ("mnist-paper", 128): 11.5}
# The same, measured on the machines gantk's numbers come from (2-core AMD EPYC cloud VMs),
# torch 2.14.1, 2 threads, fp32, by /tmp/tv/bin/python benchmarks/pytorch_reference.py pde
# --repo CHECKOUT --batches B --reps 3 (--reps-large 2 at 128), alternated with gantk's own
# runs (huge pages on, as the CLIs run): (mean seconds per step, load average), keyed by the
# CPU's vector ISA (:func:`cpu_kind`), since a different CPU moves both codes differently.
#
# "avx2", 2026-12-02 10:09-10:52 UTC. Batch 16: waveeq 1.41, 1.25, 1.85 s (gantk 0.367, 0.350,
# 0.374 s), mnist 2.15, 1.98, 2.94, 2.66 s (gantk 2.21, 2.29, 2.32, 1.99 s). Batch 128: waveeq
# 2.98, 2.59 s (gantk 1.94, 2.26 s), mnist 18.4, 16.9, 17.7 s (gantk 18.7, 18.4, 19.7 s). Two
# more mnist rounds at 128 the same day, 14:35-14:49 UTC, when the machine ran ~1.4x slower
# (load 0.9-1.9): PyTorch 26.7, 29.4 s, gantk 25.7, 27.1 s (24.1, 26.3 s with the keep-heap
# GLIBC_TUNABLES of docs/concepts/video-models.md). The numbers above come from a
# faster machine (~1.4x on PyTorch).
#
# "avx512" (AVX-512 with VP2INTERSECT, a Zen 5 class EPYC; ~2x faster than the AVX2 one on
# both codes), 2026-12-02 17:21-17:59 UTC, load 1.4-2.0. Batch 16: waveeq 0.725, 1.080,
# 0.897 s (gantk 0.174, 0.172, 0.131 s), mnist 0.822, 0.845, 0.828, 0.847, 0.958, 0.905 s
# (gantk 0.891, 0.797, 0.836, 0.843, 0.866, 0.890 s; the last two rounds --reps 10). Batch
# 128: waveeq 2.00, 2.18, 2.35 s (gantk 0.742, 0.739, 0.687 s), mnist 8.63, 8.35, 8.47 s
# (gantk 7.43, 7.41, 7.40 s). Single runs vary ±15% on these shared machines: compare ratios
# of alternated runs, not seconds.
#
# "avx512" again, 2026-12-03 05:45-06:45 UTC, 12 alternated rounds (--reps 3, torch
# --reps-large 2), the machine's speed drifting by up to 1.4x within the hour (load 0.5-2.3):
# ratios PyTorch / gantk at batch 16 1.04, 1.02, 1.03, 1.01, 0.94, 0.94, 1.14, 1.22, 1.38,
# 1.19, 1.27, 1.18 (mean 1.11; PyTorch 0.745-1.252 s, gantk 0.739-0.975 s), at batch 128
# 1.21, 1.22, 1.14, 1.07, 0.98, 1.00, 0.96, 0.88, 0.93, 1.06, 1.00, 1.00 (mean 1.04; PyTorch
# 6.52-9.30 s, gantk 6.26-9.29 s). From round 6 on the decoder normalizes per time step
# (GroupBatchNorm, as the authors' one call per step); interleaved in one process it costs
# nothing measurable (batch 128: 8.02 s mean of 6 vs 8.18 s pooled; batch 16: 0.798 vs 0.800 s).
# Three more rounds, 07:45-07:52 UTC, with the encoder's first layer as im2col (conv.py):
# batch 16 1.01, 1.40, 1.05 (PyTorch 0.958, 1.160, 0.832 s; gantk 0.950, 0.828, 0.791 s),
# batch 128 1.07, 1.02, 0.95 (PyTorch 9.13, 9.50, 7.81 s; gantk 8.50, 9.30, 8.21 s). All 15
# rounds: means 1.12 at batch 16, 1.03 at batch 128.
# 2026-12-03 08:35-10:25 UTC (load 0.8-2.1): before the kept heap, batch 16 0.94, 1.09, 1.48,
# batch 128 0.95, 0.78, 0.98 (gantk 11.5, 11.8, 11.3 s: 4.4-5.5 s of system CPU per step
# faulting XLA's 5 GB block back from the host). With gantk._malloc.HeapKeeper (the training
# CLI's default since then), alternated with PyTorch and with GANTK_KEEP_HEAP=0: batch 128
# 1.38, 1.40 (gantk 8.94, 8.19 s; GANTK_KEEP_HEAP=0 10.11, 11.64 s; PyTorch 12.38, 11.44 s);
# batch 16 (the keeper off: 0.65 GiB of temporaries) with --reps 7: 1.07, 1.04, 1.03, 1.04
# (gantk 1.114, 0.995, 1.084, 1.072 s; PyTorch 1.196, 1.039, 1.118, 1.115 s).
TORCH_HERE: dict[str, dict[tuple[str, int], tuple[float, float]]] = {
    "avx2": {
        ("mnist-paper", 16): (2.43, 1.7),
        ("waveeq-paper", 16): (1.50, 1.7),
        ("mnist-paper", 128): (17.7, 1.9),
        ("waveeq-paper", 128): (2.79, 1.8),
    },
    "avx512": {
        ("mnist-paper", 16): (0.868, 1.6),
        ("waveeq-paper", 16): (0.901, 1.8),
        ("mnist-paper", 128): (8.48, 1.9),
        ("waveeq-paper", 128): (2.17, 1.8),
    },
}
CONFIGS = {"waveeq-paper": "paper", "mnist-paper": "paper-mnist"}


def model_of(preset: str) -> tuple[PDEModel, dict]:
    hp = PRESETS[preset]
    keys = ("n_cond", "s_dim", "t_dim", "combiner", "arch", "enc_hidden", "enc_layers",
            "dec_hidden", "dec_layers", "nf", "n_blocks", "res_hidden", "gain", "method",
            "tied", "init_std")
    return PDEModel(obs_shape=(64, 64, 1), **{k: hp[k] for k in keys}), hp


def exact_gflop(config: str, batch: int) -> float:
    """GFLOP of one step's exact network work: ``2 · 3 ·`` the multiply-adds of the forward
    pass (forward + the two backward products; the encoders' first layers have no input
    gradient), of every call the authors' step makes.

    Per sequence: 4 encoder calls (``E_S`` and ``E_T`` on two windows), ``n_pred + offset``
    rollout frames + 1 auto-encoding frame through the decoder, ``n_pred + offset − 1``
    frame steps of the ODE. Convolutions count only real taps (a stride-2 ``4×4``
    transposed convolution: 4 taps per output pixel). BatchNorm, activations, Adam omitted.
    """
    hp = PRESETS[CONFIGS[config]]
    k, n_frames = hp["n_cond"], hp["n_pred"] + hp["offset"]
    s, t, size = hp["s_dim"], hp["t_dim"], 64
    z = s + t if hp["combiner"] == "concat" else t
    if hp["arch"] == "mlp":
        def mlp(d_in, hidden, layers, d_out):
            dims = [d_in] + [hidden] * (layers - 1) + [d_out]
            return sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=True))
        enc = mlp(k * size * size, hp["enc_hidden"], hp["enc_layers"], s)
        enc += mlp(k * size * size, hp["enc_hidden"], hp["enc_layers"], t)
        first = 2 * k * size * size * hp["enc_hidden"]  # both encoders' first layers
        dec = mlp(z, hp["dec_hidden"], hp["dec_layers"], size * size)
    else:
        nf = hp["nf"]
        chans = [k, nf, 2 * nf, 4 * nf, 8 * nf]
        conv = sum((size >> (i + 1)) ** 2 * chans[i] * chans[i + 1] * 16 for i in range(4))
        enc = 2 * conv + 16 * 8 * nf * (s + t)  # + the 4x4 valid layers to |S| and |T|
        first = 2 * (size // 2) ** 2 * k * nf * 16
        # 1x1 -> 4x4 (one tap per output pixel), then stride-2 layers to 8, 16, 32, 64 pixels
        dec = 16 * 8 * nf * z + sum((size >> i) ** 2 * (nf << i) * (nf << (i - 1) if i else 1)
                                    * 4 for i in range(4))
    ode = hp["n_blocks"] * (2 * t * hp["res_hidden"] + hp["res_hidden"] ** 2)
    macs = batch * (2 * enc + (n_frames + 1) * dec + (n_frames - 1) * ode)
    return (6 * macs - 2 * batch * 2 * first) / 1e9  # no input gradient of the frames


def _median_time(f, args: tuple, reps: int, feed=None, after=None) -> float:
    """Median seconds of ``f(*args)`` over ``reps`` calls after one warm-up call; ``feed``
    maps an output to the next call's arguments (donated buffers); ``after()`` runs after each
    call, timed with it (the training loop's :class:`~gantk._malloc.HeapKeeper` wait)."""
    out = f(*args)
    jax.block_until_ready(out)
    if after:
        after()
    times = []
    for i in range(reps):
        args = feed(out, i) if feed else args
        t0 = time.perf_counter()
        out = f(*args)
        jax.block_until_ready(out)
        if after:
            after()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _setup(config: str, batch: int):
    model, hp = model_of(CONFIGS[config])
    length = hp["n_cond"] + hp["n_pred"]
    x = jax.random.uniform(jax.random.key(0), (batch, length, 64, 64, 1))
    variables = dict(model.init(jax.random.key(1), x[:, : hp["n_cond"]]))
    params = {"params": variables.pop("params")}
    opt = optax.adam(hp["lr"], b1=hp["beta1"], b2=hp["beta2"])
    return model, hp, x, params, variables, opt


def time_step(config: str, batch: int, reps: int) -> tuple[float, float, str]:
    """``(median seconds per training step, XLA's GFLOP count of the step, heap)`` of
    ``config`` (step = loss + backward + Adam, compiled ahead of time, then timed with the
    training CLI's :class:`~gantk._malloc.HeapKeeper`; ``heap`` says whether it kept the
    step's temporaries between steps, and why)."""
    model, hp, x, params, variables, opt = _setup(config, batch)
    kw = {k: hp[k] for k in ("offset", "lambda_pred", "lambda_ae", "lambda_s", "lambda_t")}

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, state, opt_state, x, key):
        def f(p):
            return pde_loss(model, {**p, **state}, x, key, **kw)

        (loss, (_, state)), g = jax.value_and_grad(f, has_aux=True)(params)
        upd, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, upd), state, opt_state, loss

    args = (params, variables, opt.init(params), x, jax.random.key(2))
    compiled = step.lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older jax: one dict per device
    gflop = float((cost or {}).get("flops", float("nan"))) / 1e9
    heap = HeapKeeper(temp_bytes(compiled))  # as python -m gantk.models.train does
    try:
        sec = _median_time(compiled, args, reps,
                           lambda out, i: (*out[:3], x, jax.random.key(3 + i)), heap.after_step)
    finally:
        heap.release()
    return sec, gflop, heap.reason


def time_pieces(config: str, batch: int, reps: int) -> dict[str, float]:
    """Median seconds of each piece of a step, jitted separately (forward + backward).

    Encoders: ``E_S`` and ``E_T`` on the conditioning and a second window each; ODE: the
    rollout of ``T`` over the predicted frames; decoder: every rollout frame plus the
    auto-encoding one; Adam: the update of every parameter (donated).
    """
    model, hp, x, params, variables, opt = _setup(config, batch)
    k = hp["n_cond"]
    n_frames = x.shape[1] - k + hp["offset"]
    v = {**params, **variables}
    s0 = model.apply(v, x[:, :k], method=PDEModel.encode_s)
    t0 = model.apply(v, x[:, :k], method=PDEModel.encode_t)

    def grad_of(names, loss):
        """jit(grad) w.r.t. the sub-trees ``names`` of the parameters only."""
        def f(sub, *a):
            p = {"params": {**v["params"], **sub}}
            return loss({**v, **p}, *a)
        g = jax.jit(jax.grad(f))
        return lambda *a: g({n: v["params"][n] for n in names}, *a)

    def enc_loss(p, x):
        two = jnp.concatenate([x[:, :k], x[:, -k:]])
        if model.arch == "mlp":
            outs = [model.apply(p, two, method=m) for m in (PDEModel.encode_s,
                                                             PDEModel.encode_t)]
        else:
            outs = [_apply(model, p, w, method=m, train=True)[0] for w in (x[:, :k], x[:, -k:])
                    for m in (PDEModel.encode_s, PDEModel.encode_t)]
        return sum(jnp.sum(o**2) for o in outs)

    def ode_loss(p, t):
        return jnp.sum(_codes(model, p, t, n_frames, 1) ** 2)

    def dec_loss(p, s, t):
        codes = jnp.broadcast_to(t, (n_frames,) + t.shape)
        if model.arch == "mlp":
            (fr, rec), _ = _decode_codes(model, p, s, codes, extra=t, train=True)
            return jnp.sum(fr**2) + jnp.sum(rec**2)
        fr, _ = _decode_codes(model, p, s, codes, train=True)
        rec, _ = _apply(model, p, s, t, method=PDEModel.decode, train=True)
        return jnp.sum(fr**2) + jnp.sum(rec**2)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def adam(params, opt_state, grads):
        upd, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, upd), opt_state

    grads = jax.tree.map(jnp.ones_like, params)
    return {
        "encoders E_S, E_T (fwd+bwd)": _median_time(grad_of(["enc_s", "enc_t"], enc_loss),
                                                    (x,), reps),
        "ODE rollout of T (fwd+bwd)": _median_time(grad_of(["ode"], ode_loss), (t0,), reps),
        "decoder, all frames (fwd+bwd)": _median_time(grad_of(["dec"], dec_loss), (s0, t0),
                                                      reps),
        "Adam update": _median_time(adam, (params, opt.init(params), grads), reps,
                                    lambda out, i: (*out, grads)),
    }


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
    p.add_argument("--breakdown", action="store_true",
                   help="also time each piece of a step jitted on its own")
    args = p.parse_args(argv)
    if min(args.batches) < 1 or args.reps < 1:
        p.error("--batches and --reps must be positive integers")
    print(f"gantk PDE model, {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}, jax {jax.__version__}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    here = TORCH_HERE.get(cpu_kind(), {})
    print(f"{'config':<14} {'batch':>5} {'gantk s/step':>13} {'GFLOP':>6} {'exact':>6} "
          f"{'torch here':>10} {'ratio':>6} {'torch #10':>9} {'ratio':>6}  load", flush=True)
    for config in args.configs:
        for batch in args.batches:
            sec, gflop, heap = time_step(config, batch, args.reps)
            cols = ""
            for ref, width in ((here.get((config, batch), (None,))[0], 10),
                               (TORCH.get((config, batch)), 9)):
                cols += (f" {ref:{width}.2f} {ref / sec:6.2f}" if ref else
                         f" {'n/a':>{width}} {'n/a':>6}")
            print(f"{config:<14} {batch:>5} {sec:13.3f} {gflop:6.0f} "
                  f"{exact_gflop(config, batch):6.0f}{cols}  "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            print(f"    heap: {heap}", flush=True)
            if args.breakdown:
                for name, t in time_pieces(config, batch, args.reps).items():
                    print(f"    {name:<34} {t:8.3f} s", flush=True)
    if not args.no_generation:
        for size in (64, 32):
            sec = time_generation(size)
            print(f"WaveEq generation, 300 sequences {size}x{size}: {sec:.1f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"torch here: the authors' code on a CPU of this kind ({cpu_kind()}; TORCH_HERE, "
          "measured with benchmarks/pytorch_reference.py; n/a: none measured); torch #10: "
          "the issue's reference (its own machine). ratio = PyTorch time / gantk time "
          "(> 1: gantk faster). Reproduce: "
          "python benchmarks/pde.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    from gantk._malloc import one_arena, reexec_with_huge_pages

    reexec_with_huge_pages()  # as python -m gantk.models.train does (GANTK_HUGE_PAGES=0: off)
    one_arena()  # as the training CLI does, so HeapKeeper can act (GANTK_KEEP_HEAP=0: off)
    sys.exit(main())
