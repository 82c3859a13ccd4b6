"""gantk benchmark suite: time per flow step and peak memory against N, IPM and LSGAN.

Each (loss, N) point runs in its own subprocess so that its peak RSS is its own. Sizes grow
until a step exceeds the time budget or the process fails (out of memory included), which
is recorded rather than hidden. Results go to ``benchmarks/results/<machine>.json`` and a
log-log figure ``benchmarks/results/<machine>.png``.

Setting: 2-D eight_gaussians-like data, N fake + N real points, ReLU depth-3 NTK, float32,
jit-warm, ``solver='auto'`` (LSGAN switches from eigh to Krylov for large sets). The
"untiled" IPM variant evaluates the kernel against the whole train set in one block
(``block_size = 2N``), i.e. what an untiled implementation would allocate.

Usage::

    python -m benchmarks                  # full suite, N = 500 ... 50,000 where it fits
    python -m benchmarks --quick          # N = 500 ... 4,000
    python benchmarks/run.py --single ipm 20000   # one point, prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import re
import resource
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
SIZES = (500, 1000, 2000, 4000, 10000, 20000, 50000)
QUICK_SIZES = (500, 1000, 2000, 4000)
GANTK2_REF = {"ipm": "24-29 ms (N=500+500, 2-core CPU)", "lsgan": "126-160 ms (same)"}


def machine() -> dict:
    """Describe this machine: CPU model and cores, accelerator, JAX version."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        txt = pathlib.Path("/proc/cpuinfo").read_text()
        m = re.search(r"model name\s*:\s*(.+)", txt)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    dev = jax.devices()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": dev.platform,
        "device": dev.device_kind,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }


def machine_slug(info: dict) -> str:
    """File-name-safe machine name, e.g. ``cpu-2cores-amd-epyc-9b14`` or ``gpu-nvidia-h100``."""
    if info["platform"] == "cpu":
        name = f"cpu-{info['cores']}cores-{info['cpu']}"
    else:
        name = f"{info['platform']}-{info['device']}"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


def single(loss: str, n: int, *, untiled: bool = False, steps: int = 3) -> dict:
    """Time one flow step at N + N points in this process; return ms/step and peak RSS."""
    import jax
    import jax.numpy as jnp

    from gantk import flows
    from gantk.architectures import kernel_from_name

    key = jax.random.key(0)
    fake = jax.random.normal(key, (n, 2), jnp.float32)
    ang = 2 * jnp.pi * jax.random.randint(jax.random.fold_in(key, 1), (n,), 0, 8) / 8
    real = 5 * jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1) + 0.5 * jax.random.normal(
        jax.random.fold_in(key, 2), (n, 2), jnp.float32)
    kw = {"block_size": 2 * n} if untiled else {}
    step = flows.infinite_width_step(loss, kernel_from_name("relu"), 1.0, 1000.0 / n, **kw)
    state = flows.FlowState(fake, jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32), key)
    run = jax.jit(lambda s: step(s, real))
    t0 = time.perf_counter()
    state2, _ = run(state)
    jax.block_until_ready(state2)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state))
        times.append(time.perf_counter() - t0)
    times.sort()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"loss": loss, "n": n, "untiled": untiled, "ms_per_step": 1e3 * times[len(times) // 2],
            "first_call_s": compile_s, "peak_rss_mb": rss_mb, "ok": True}


def measure(loss: str, n: int, *, untiled: bool, timeout: float) -> dict:
    """Run :func:`single` in a subprocess; record failures (OOM, timeout) as results."""
    cmd = [sys.executable, __file__, "--single", loss, str(n)] + ["--untiled"] * untiled
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"loss": loss, "n": n, "untiled": untiled, "ok": False,
                "error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
        kind = "killed (out of memory?)" if proc.returncode < 0 else f"exit {proc.returncode}"
        return {"loss": loss, "n": n, "untiled": untiled, "ok": False,
                "error": f"{kind}: {tail}", "wall_s": time.perf_counter() - t0}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(results: list[dict], info: dict, path: pathlib.Path) -> None:
    """Log-log time per step against N, with peak memory beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for (loss, untiled), style in {("ipm", False): "o-", ("lsgan", False): "s-",
                                   ("ipm", True): "x--"}.items():
        pts = [r for r in results if r["loss"] == loss and r["untiled"] == untiled and r["ok"]]
        if not pts:
            continue
        label = loss + (" (untiled)" if untiled else "")
        a1.loglog([r["n"] for r in pts], [r["ms_per_step"] for r in pts], style, label=label)
        a2.loglog([r["n"] for r in pts], [r["peak_rss_mb"] for r in pts], style, label=label)
    a1.axhspan(24, 29, color="0.8", alpha=0.6, label="GAN(TK)² ipm @500 (CPU)")
    a1.axhspan(126, 160, color="0.9", alpha=0.6, label="GAN(TK)² lsgan @500 (CPU)")
    a1.set_xlabel("N (fake = real)")
    a1.set_ylabel("ms per flow step")
    a2.set_xlabel("N (fake = real)")
    a2.set_ylabel("peak RSS (MiB)")
    for a in (a1, a2):
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7)
    fig.suptitle(f"gantk flow step — {info['device']} ({info['cores']} cores), "
                 f"jax {info['jax']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Run the suite (or one point with ``--single``) and write the results."""
    p = argparse.ArgumentParser(description="gantk benchmark suite")
    p.add_argument("--quick", action="store_true", help="N up to 4,000 only")
    p.add_argument("--budget", type=float, default=60.0,
                   help="stop growing N once a step takes longer than this many seconds")
    p.add_argument("--timeout", type=float, default=900.0, help="per-point subprocess timeout")
    p.add_argument("--single", nargs=2, metavar=("LOSS", "N"))
    p.add_argument("--untiled", action="store_true")
    args = p.parse_args(argv)
    if args.single:
        print(json.dumps(single(args.single[0], int(args.single[1]), untiled=args.untiled)))
        return

    info = machine()
    sizes = QUICK_SIZES if args.quick else SIZES
    results = []
    print(f"# {info}")
    print(f"{'loss':14} {'N':>7} {'ms/step':>10} {'peak RSS MiB':>13}")
    plan = [("ipm", False), ("lsgan", False), ("ipm", True)]
    for loss, untiled in plan:
        for n in sizes:
            if untiled and n < 4000:
                continue
            r = measure(loss, n, untiled=untiled, timeout=args.timeout)
            results.append(r)
            name = loss + (" untiled" if untiled else "")
            if r["ok"]:
                print(f"{name:14} {n:>7} {r['ms_per_step']:>10.1f} {r['peak_rss_mb']:>13.0f}",
                      flush=True)
            else:
                print(f"{name:14} {n:>7} {'FAILED':>10}  {r['error']}", flush=True)
            if not r["ok"] or r["ms_per_step"] > 1e3 * args.budget:
                break
    RESULTS.mkdir(exist_ok=True)
    slug = machine_slug(info)
    out = {"machine": info, "setting": "2-D, N fake + N real, ReLU depth-3 NTK, float32, "
           "jit-warm, solver=auto", "gantk2_reference": GANTK2_REF, "results": results}
    (RESULTS / f"{slug}.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(results, info, RESULTS / f"{slug}.png")
    cmd = f"{pathlib.Path(sys.executable).name} -m benchmarks" + (" --quick" * args.quick)
    print(f"\nwrote {RESULTS / (slug + '.json')} and .png\nreproduce: {cmd}")


if __name__ == "__main__":
    main()
