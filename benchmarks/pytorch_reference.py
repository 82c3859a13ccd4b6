"""Seconds per training step of the AUTHORS' PyTorch code, to compare gantk with on this machine.

OPTIONAL: torch is not a gantk dependency. Run it with a Python that has torch (and the
authors' own requirements: numpy, tqdm, pyyaml, configargparse, scipy) on a checkout of the
authors' repository; it imports torch lazily and exits 2 with one line if torch or the
checkout is missing. Nothing is downloaded or written.

One step = exactly the body of the authors' training loop on a random batch of the right
shape (fp32, ``torch.set_num_threads(--threads)``, default 2): forward + loss + backward +
Adam. Median over ``--reps`` steps after ``--warmup`` untimed ones (``--reps-large`` for
batches ≥ 64, whose steps are long).

- ``srvp --repo PATH`` (github.com/edouardelasalles/srvp): ``train.train`` of the repository
  on ``StochasticLatentResidualVideoPredictor(64, 1, nf, 128, 20, 20, False, 5, 256, 3,
  nh_res, 4, "dcgan")`` (the Moving MNIST command line: ``ny = nz = 20``, ``nt_inf = 5``,
  ``nh_inf = 256``, 3 inference layers, 4 residual layers, DCGAN, ``res_gain 1.41``), Adam
  3e-4, 15 frames 64×64 (5 conditioning + 10 predicted), ``n_euler_steps 1``,
  ``beta_y 1, beta_z 2, l2_res 1, obs_scale 1``. Configs ``paper`` (nf 64, nh_res 512) and
  ``nf16-res128`` (nf 16, nh_res 128), the ones ``benchmarks/srvp.py`` runs.
- ``pde --repo PATH`` (github.com/JeremieDona/spatiotemporal_variable_separation): the
  networks built as ``var_sep/main.py`` does (``networks.factory.get_encoder``/
  ``get_decoder``/``get_resnet`` + ``SeparableNetwork``) and the step of
  ``var_sep/train.py`` (``ae_loss`` + ``zero_order_loss`` + ``get_forecast`` MSE + the T
  regularization, Adam with the given betas). Configs: ``waveeq-paper`` (the README's WaveEq
  line: MLP encoders 1200, decoder 1200 × 4 layers, ``|S| = |T| = 32``, ``mul``, 3 blocks,
  gain 0.71, offset 5, ``λ_AE = 1``, 5 → 20 frames of 1×64×64) and ``mnist-paper`` (the
  README's Moving MNIST line = the defaults: DCGAN nf 64, ``|S| = 128``, ``|T| = 20``,
  ``concat``, 1 block, gain 1.41, offset 5, 5 → 10 frames, betas (0.5, 0.99)).

Usage::

    /path/to/torch/python benchmarks/pytorch_reference.py pde --repo /tmp/vs
    /path/to/torch/python benchmarks/pytorch_reference.py srvp --repo /tmp/srvp --batches 16
    /path/to/torch/python benchmarks/pytorch_reference.py pde --repo /tmp/vs \\
        --configs mnist-paper --batches 16 --breakdown

``--breakdown`` (pde) also times the pieces (forward + backward, as the step runs them): the
4 encoder calls, the ``n_pred + offset + 1`` decoder calls, the residual rollout, Adam.

Measured 2026-12-02 02:16-02:22 UTC on the 2-core AMD EPYC (AVX2) that gantk's numbers come
from, torch 2.14.1, 2 threads, quiet (load average 1.5-1.9), ``--batches 16 --reps 3``:
srvp ``paper`` 4.54 s, ``nf16-res128`` 0.605 s; pde ``waveeq-paper`` 2.04 s,
``mnist-paper`` 3.33 s (kept in ``TORCH_HERE`` of ``benchmarks/srvp.py`` and
``benchmarks/pde.py``). Only quiet numbers compare fairly: at load 7-11 PyTorch's OpenMP
threads slowed ~14x (srvp ``nf16-res128`` 11.6 s), XLA's ~4x.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
import types

SRVP_CONFIGS = {"paper": (64, 512), "nf16-res128": (16, 128)}
PDE_CONFIGS = {
    # the README's command lines on top of var_sep/options.py's defaults
    "waveeq-paper": dict(architecture="mlp", shape=[1, 64, 64], nt_cond=5, nt_pred=20,
                         code_size_s=32, code_size_t=32, mixing="mul", n_blocks=3,
                         gain_resnet=0.71, enc_hidden_size=1200, dec_hidden_size=1200,
                         enc_n_layers=3, dec_n_layers=4, lamb_ae=1.0, beta1=0.9),
    "mnist-paper": dict(architecture="dcgan", shape=[1, 64, 64], nt_cond=5, nt_pred=10,
                        code_size_s=128, code_size_t=20, mixing="concat", n_blocks=1,
                        gain_resnet=1.41, enc_hidden_size=64, dec_hidden_size=64,
                        enc_n_layers=3, dec_n_layers=3, lamb_ae=10.0, beta1=0.5),
}
PDE_COMMON = dict(offset=5, lamb_s=45.0, lamb_t=1e-3, lamb_pred=45.0, lr=4e-4, beta2=0.99,
                  res_hidden_size=512, init_encoder="normal", gain_encoder=0.02,
                  init_resnet="orthogonal", skipco=False)


def _fail(msg: str) -> None:
    print(f"pytorch_reference.py: {msg}", file=sys.stderr)
    sys.exit(2)


def _median_step(step, warmup: int, reps: int) -> tuple[float, list[float]]:
    times = []
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def srvp_step(repo: str, config: str, batch: int):
    """A closure running one training step of the authors' SRVP (``train.train``)."""
    import torch

    sys.path.insert(0, repo)
    from module.srvp import StochasticLatentResidualVideoPredictor
    from train import train

    nf, nh_res = SRVP_CONFIGS[config]
    model = StochasticLatentResidualVideoPredictor(64, 1, nf, 128, 20, 20, False, 5, 256, 3,
                                                   nh_res, 4, "dcgan")
    model.init(res_gain=1.41)
    model.train()
    opt = types.SimpleNamespace(n_euler_steps=1, obs_scale=1.0, beta_y=1.0, beta_z=2.0,
                                l2_res=1.0, torch_amp=False, apex_amp=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    x = torch.rand(15, batch, 1, 64, 64)
    return lambda: train(model, optimizer, None, x, "cpu", opt)


def _pde_nets(repo: str, config: str):
    import torch

    sys.path.insert(0, repo)
    from var_sep.networks.factory import get_decoder, get_encoder, get_resnet
    from var_sep.networks.model import SeparableNetwork

    a = types.SimpleNamespace(**PDE_COMMON, **PDE_CONFIGS[config])
    last_activation = "sigmoid"  # wave and mnist in var_sep/main.py
    es = get_encoder(a.architecture, a.shape, a.code_size_s, a.enc_hidden_size, a.enc_n_layers,
                     a.nt_cond, a.init_encoder, a.gain_encoder)
    et = get_encoder(a.architecture, a.shape, a.code_size_t, a.enc_hidden_size, a.enc_n_layers,
                     a.nt_cond, a.init_encoder, a.gain_encoder)
    dec = get_decoder(a.architecture, a.shape, a.code_size_t, a.code_size_s, last_activation,
                      a.dec_hidden_size, a.dec_n_layers, a.mixing, a.skipco, a.init_encoder,
                      a.gain_encoder)
    res = get_resnet(a.code_size_t, a.n_blocks, a.res_hidden_size, a.init_resnet,
                     a.gain_resnet, False)
    net = SeparableNetwork(es, et, res, dec, a.nt_cond, a.skipco)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=a.lr, betas=(a.beta1, a.beta2))
    return a, net, optimizer


def pde_step(repo: str, config: str, batch: int):
    """A closure running one step of ``var_sep/train.py``'s loop body on a random batch."""
    import torch
    import torch.nn.functional as F

    a, net, optimizer = _pde_nets(repo, config)
    from var_sep.train import ae_loss, zero_order_loss

    cond = torch.rand(batch, a.nt_cond, *a.shape)
    target = torch.rand(batch, a.nt_pred, *a.shape)

    def step() -> None:  # var_sep/train.py, the body of `for cond, target in train_loader`
        total_loss = 0
        optimizer.zero_grad()
        ae_loss_value, s_recent, s_old = ae_loss(cond, target, net, a.nt_cond, a.offset,
                                                 a.skipco)
        total_loss += a.lamb_ae * ae_loss_value
        total_loss += a.lamb_s * zero_order_loss(s_old, s_recent, a.skipco)
        full_data = torch.cat([cond, target], dim=1)
        forecasts, t_codes, _, _ = net.get_forecast(cond, a.nt_pred + a.offset,
                                                    init_s_code=s_old)
        forecast_offset = a.nt_cond if a.offset == 0 else 0
        total_loss += a.lamb_pred * F.mse_loss(forecasts, full_data[:, forecast_offset:])
        t_reg = 0.5 * torch.sum(t_codes[:, 0].pow(2), dim=1).mean()  # average_tloss False
        total_loss += a.lamb_t * t_reg
        total_loss.backward()
        optimizer.step()

    return step


def pde_pieces(repo: str, config: str, batch: int, warmup: int, reps: int) -> dict:
    """Median seconds of each piece of a var_sep step (forward + backward, as in the step)."""
    import torch

    a, net, optimizer = _pde_nets(repo, config)
    window = torch.rand(batch, a.nt_cond, *a.shape)
    n_dec = a.nt_pred + a.offset + 1  # get_forecast's frames + the auto-encoding one
    s = torch.randn(batch, a.code_size_s)
    t = torch.randn(batch, a.code_size_t)

    def encoders():
        out = sum((e(window) ** 2).sum() for e in (net.Es, net.Es, net.Et, net.Et))
        out.backward()

    def decoder():
        out = sum((net.decoder(s, t) ** 2).sum() for _ in range(n_dec))
        out.backward()

    def rollout():
        code, out = t.clone().requires_grad_(), 0
        for _ in range(a.nt_pred + a.offset - 1):
            code, _ = net.t_resnet(code)
            out = out + (code ** 2).sum()
        out.backward()

    def adam():
        for p in net.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()

    return {
        "encoders: E_S x2, E_T x2 (fwd+bwd)": _median_step(encoders, warmup, reps)[0],
        f"decoder: {n_dec} calls (fwd+bwd)": _median_step(decoder, warmup, reps)[0],
        "ODE rollout of T (fwd+bwd)": _median_step(rollout, warmup, reps)[0],
        "Adam update": _median_step(adam, warmup, reps)[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=["srvp", "pde"])
    p.add_argument("--repo", required=True,
                   help="checkout of the authors' repository (srvp: the folder with train.py "
                        "and module/; pde: the folder holding var_sep/)")
    p.add_argument("--configs", nargs="+", default=None,
                   help=f"srvp: {list(SRVP_CONFIGS)}; pde: {list(PDE_CONFIGS)} (default all)")
    p.add_argument("--batches", nargs="+", type=int, default=[16, 128])
    p.add_argument("--reps", type=int, default=5, help="timed steps at batch < 64")
    p.add_argument("--reps-large", type=int, default=2, help="timed steps at batch ≥ 64")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--breakdown", action="store_true", help="pde: also time the pieces")
    args = p.parse_args(argv)
    known = SRVP_CONFIGS if args.model == "srvp" else PDE_CONFIGS
    configs = args.configs or list(known)
    bad = [c for c in configs if c not in known]
    if bad:
        _fail(f"--configs {bad[0]!r}: {args.model} configs are {list(known)}")
    if min(args.batches) < 1 or min(args.reps, args.reps_large, args.threads) < 1 \
            or args.warmup < 0:
        _fail("--batches, --reps, --reps-large, --threads must be positive, --warmup >= 0")
    marker = ("train.py", "module") if args.model == "srvp" else ("var_sep/train.py",
                                                                  "var_sep/networks")
    repo = os.path.abspath(args.repo)
    if not all(os.path.exists(os.path.join(repo, m)) for m in marker):
        _fail(f"--repo {args.repo!r}: not a checkout of the authors' {args.model} code "
              f"(expected {' and '.join(marker)} in it)")
    if importlib.util.find_spec("torch") is None:
        _fail(f"torch is not installed for {sys.executable} (this optional benchmark runs the "
              "authors' PyTorch code; use a Python with torch)")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    make = srvp_step if args.model == "srvp" else pde_step
    print(f"authors' {args.model} code ({repo}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, fp32, {os.cpu_count()} CPUs; "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'config':<14} {'batch':>5} {'s/step':>8}  steps (s)  load", flush=True)
    for config in configs:
        for batch in args.batches:
            reps = args.reps if batch < 64 else args.reps_large
            try:
                med, times = _median_step(make(repo, config, batch), args.warmup, reps)
            except (ImportError, AttributeError, TypeError) as e:
                _fail(f"--repo {args.repo!r}: the authors' code did not run as expected "
                      f"({type(e).__name__}: {e})")
            print(f"{config:<14} {batch:>5} {med:8.3f}  {[round(t, 3) for t in times]}  "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
            if args.breakdown and args.model == "pde":
                for name, sec in pde_pieces(repo, config, batch, args.warmup, reps).items():
                    print(f"    {name:<38} {sec:8.3f} s", flush=True)
    print("Reproduce: " + os.path.basename(sys.executable) + " benchmarks/pytorch_reference.py "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
