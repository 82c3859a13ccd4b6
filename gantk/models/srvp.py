"""SRVP: stochastic latent residual video prediction (Franceschi, Delasalle, Chen, Lamprier,
Gallinari, ICML 2020), in flax, on the shared ODE layer :mod:`gantk.models.ode`.

Facts from the authors' code (edouardelasalles/srvp), eq. numbers from the paper:

- frames are encoded one by one, ``h_t = E(x_t)`` (:mod:`gantk.models.conv`, DCGAN);
- content ``w = tanh(Linear(Σ_{i∈S} ReLU(Linear(h_i))))`` over ``k = nt_inf`` frames ``S``
  (random frames of the sequence in training, the last ``k`` conditioning frames at test);
- ``y₁ ~ q(y₁ | h_{1:k}) = N(μ, σ)`` by a ``nlayers_inf``-layer MLP over the concatenated
  encodings (prior ``N(0, I)``);
- per frame interval ``t−1 → t``: ``z_t ~ q(z_t | x_{1:t})`` (one-layer LSTM over the
  encodings, then a linear layer) while frames are observed, else the prior
  ``p(z_t | y_{t−1}) = N(μ_θ(y_{t−1}), σ_θ(y_{t−1}))`` (MLP); then ``y`` is advanced by the
  ODE layer, ``y ← y + Δt·f_θ([y, z_t])`` for ``n_substeps`` Euler steps of
  ``Δt = 1/n_substeps`` with ``z_t`` held fixed (eq. 4–5);
- frames are decoded at integer times only, ``x̂_t = g_θ(w, y_t)`` (decoder on ``[w, y]``);
- Gaussian std parameters are ``softplus(raw) + 1e-8``;
- the loss (per sequence, averaged over the batch; the negative ELBO of eq. 7 plus the
  residual penalty): ``Σ_t −log N(x_t; x̂_t, obs_scale²) + β_y·KL(q(y₁)‖N(0,I)) +
  β_z·Σ_t KL(q(z_t)‖p(z_t|y_{t−1})) + λ·Σ_substeps ‖Δt·f‖₂``, or a Bernoulli likelihood.

Generation at another frame rate: ``n_substeps`` may be raised at test time (tied field) and
the intermediate states decoded: ``m×`` sub-steps give ``m·(T−1) + 1`` frames.

Shapes: videos are ``(batch, time, H, W, C)`` float in [0, 1].
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from gantk.models.conv import DCGANDecoder, DCGANEncoder, check_frame_size
from gantk.models.ode import MLPField, ODEBlock

__all__ = ["PRESETS", "SRVP", "SRVPConfig", "SRVPExperiment", "build", "gaussian_kl",
           "srvp_loss"]

# --------------------------------------------------------------------------- presets
PRESETS: dict[str, dict[str, Any]] = {
    # The paper's SM-MNIST settings (GPU-days): Adam 3e-4, batch 128, 1.0M steps then 100k of
    # linear decay, 15-frame sequences all encoded, posterior throughout.
    "paper": dict(
        size=64, nf=64, nhx=128, ny=20, nz=20, nh_inf=256, nlayers_inf=3, nh_res=512,
        nlayers_res=4, nt_inf=5, n_substeps=1, res_gain=1.41, ode_method="euler",
        likelihood="gaussian", obs_scale=1.0, beta_y=1.0, beta_z=2.0, l2_res=1.0,
        lr=3e-4, batch_size=128, seq_len=15, steps=1_100_000, lr_decay_steps=100_000,
        n_cond=5, n_pred=20, dense_init="pytorch",
    ),
    # CPU-sized (2 cores, ≤ 30 minutes): 32×32 frames, narrow convolutions and MLPs. With a
    # 128-wide field the paper's gain 1.41 makes |y| grow ~1.6× per frame at init (the prior's
    # std then underflows and KL(q(z)‖p(z)) reaches 1e18); gain 1.0 keeps it ~1.1×.
    # Bernoulli likelihood (as SVG on SM-MNIST): with the paper's N(x̂, 1) the per-pixel
    # reconstruction gradient is ≤ 0.25·|x − x̂| and, in a few thousand steps, the KL terms win
    # (posterior collapse: mean-like, blurry predictions, SSIM below copy-last).
    "small": dict(
        size=32, nf=16, nhx=64, ny=20, nz=20, nh_inf=128, nlayers_inf=3, nh_res=128,
        nlayers_res=4, nt_inf=5, n_substeps=1, res_gain=1.0, ode_method="euler",
        likelihood="bernoulli", obs_scale=1.0, beta_y=1.0, beta_z=2.0, l2_res=1.0,
        lr=1e-3, batch_size=16, seq_len=10, steps=6000, lr_decay_steps=0,
        n_cond=5, n_pred=20, dense_init="flax",
    ),
}


def _normal(raw: Array) -> tuple[Array, Array]:
    """``(μ, σ)`` from raw parameters ``[μ, s]`` on the last axis, ``σ = softplus(s) + 1e-8``."""
    mu, s = jnp.split(raw, 2, axis=-1)
    return mu, jax.nn.softplus(s) + 1e-8


def gaussian_kl(mu1: Array, s1: Array, mu2: Array, s2: Array) -> Array:
    """Elementwise ``KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) = log(σ₂/σ₁) + (σ₁² + (μ₁−μ₂)²)/(2σ₂²) − ½``."""
    return jnp.log(s2 / s1) + (s1 ** 2 + (mu1 - mu2) ** 2) / (2 * s2 ** 2) - 0.5


def _torch_uniform(fan_in: int) -> Any:
    """PyTorch's default ``nn.Linear``/``nn.LSTM`` initializer, ``U(−1/√fan_in, 1/√fan_in)``
    (``kaiming_uniform(a=√5)`` for weights, the same bound for biases)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _dense(features: int, fan_in: int, init: str, name: str | None = None) -> nn.Dense:
    """``nn.Dense`` with flax's default init or PyTorch's (``init="pytorch"``)."""
    if init == "pytorch":
        return nn.Dense(features, kernel_init=_torch_uniform(fan_in),
                        bias_init=_torch_uniform(fan_in), name=name)
    return nn.Dense(features, name=name)


class _MLP(nn.Module):
    """SRVP's MLP: ``n_layers`` linear layers, ReLU between them (``module/mlp.py``)."""

    hidden: int
    out: int
    n_layers: int
    init: str = "flax"

    @nn.compact
    def __call__(self, h: Array) -> Array:
        for i in range(self.n_layers):
            if i > 0:
                h = nn.relu(h)
            h = _dense(self.out if i == self.n_layers - 1 else self.hidden, h.shape[-1],
                       self.init, name=f"Dense_{i}")(h)
        return h


@dataclasses.dataclass(frozen=True)
class SRVPConfig:
    """SRVP sizes (defaults: the paper's SM-MNIST values). See :data:`PRESETS`.

    Attributes:
        size: frame size (32 or 64); channels: frame channels.
        nf: DCGAN width; nhx: frame encoding size.
        ny: sizes of the state ``y`` and of the noise ``z``.
        nz: see ``ny``.
        nh_inf: width/depth of the inference MLP ``q(y₁)`` (also the LSTM width
            and the content size).
        nlayers_inf: see ``nh_inf``.
        nh_res: width/depth of the residual field ``f_θ`` and of the prior MLP.
        nlayers_res: see ``nh_res``.
        nt_inf: number of frames ``k`` for ``q(y₁)`` and the content ``w``.
        n_substeps: Euler sub-steps per frame interval (1 for SM-MNIST, 2 for KTH/BAIR).
        res_gain: orthogonal init gain of ``f_θ``.
        ode_method: ``euler`` (the paper), ``rk4`` or ``diffrax``.
        conv_impl: DCGAN layers as matmuls (``matmul``, fast on CPU) or flax's
            convolutions (``lax``); same parameters and outputs (:mod:`gantk.models.conv`).
        dense_init: initialization of the inference, content and prior networks (linear
            layers and LSTM): ``flax`` (flax's defaults, LeCun normal kernels, zero biases)
            or ``pytorch`` (the authors' code, which leaves them at PyTorch's defaults:
            ``U(±1/√fan_in)`` kernels and biases; flax's LSTM has one bias where PyTorch's
            has two). With flax's init the paper config's ``KL(q(z)‖p(z))`` at init is
            1e6–1e15 (3 seeds), with PyTorch's 12–94, as in the authors' code (11).
    """

    size: int = 64
    channels: int = 1
    nf: int = 64
    nhx: int = 128
    ny: int = 20
    nz: int = 20
    nh_inf: int = 256
    nlayers_inf: int = 3
    nh_res: int = 512
    nlayers_res: int = 4
    nt_inf: int = 5
    n_substeps: int = 1
    res_gain: float = 1.41
    ode_method: str = "euler"
    conv_impl: str = "matmul"
    dense_init: str = "flax"

    def __post_init__(self) -> None:
        check_frame_size(self.size)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int) and (isinstance(v, bool) or not isinstance(v, int)
                                           or v < 1):
                raise ValueError(f"`{f.name}` must be a positive integer; got {v!r}")
        if self.ode_method not in ("euler", "rk4", "diffrax"):
            raise ValueError(f"`ode_method` must be euler, rk4 or diffrax; got "
                             f"{self.ode_method!r}")
        if self.dense_init not in ("flax", "pytorch"):
            raise ValueError(f"`dense_init` must be flax or pytorch; got {self.dense_init!r}")
        if self.conv_impl not in ("matmul", "lax"):
            raise ValueError(f"`conv_impl` must be matmul or lax; got {self.conv_impl!r}")
        if not (math.isfinite(self.res_gain) and self.res_gain > 0):
            raise ValueError(f"`res_gain` must be a positive number; got {self.res_gain!r}")


class SRVP(nn.Module):
    """The SRVP model (module docstring). Methods are called with ``model.apply(..., method=)``.

    Attributes:
        cfg: sizes.
        field: optional factory of the residual field (default :class:`MLPField` with
            ``nh_res``, ``nlayers_res``, ``res_gain``); any ``field(y, z) -> dy/dt``.
    """

    cfg: SRVPConfig = SRVPConfig()
    field: Any = None

    def setup(self) -> None:
        """Create the sub-modules."""
        c = self.cfg
        self.encoder = DCGANEncoder(size=c.size, nf=c.nf, nh=c.nhx, impl=c.conv_impl)
        self.decoder = DCGANDecoder(size=c.size, nf=c.nf, channels=c.channels,
                                    impl=c.conv_impl)
        self.w_proj = _dense(c.nh_inf, c.nhx, c.dense_init)
        self.w_inf = _dense(c.nh_inf, c.nh_inf, c.dense_init)
        self.q_y = _MLP(c.nh_inf, 2 * c.ny, c.nlayers_inf, c.dense_init)
        u = _torch_uniform(c.nh_inf)
        lstm_init = (dict(kernel_init=u, recurrent_kernel_init=u, bias_init=u)
                     if c.dense_init == "pytorch" else {})
        self.inf_z = nn.RNN(nn.OptimizedLSTMCell(c.nh_inf, **lstm_init))
        self.q_z = _dense(2 * c.nz, c.nh_inf, c.dense_init)
        self.p_z = _MLP(c.nh_res, 2 * c.nz, c.nlayers_res, c.dense_init)
        field = self.field or functools.partial(MLPField, hidden=c.nh_res,
                                                n_layers=c.nlayers_res, out_dim=c.ny,
                                                gain=c.res_gain)
        self.dynamics = ODEBlock(field=field, method=c.ode_method, n_substeps=c.n_substeps)

    # ----- pieces
    def check_video(self, x: Any, name: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is a float ``(B, T, size, size, channels)`` array."""
        c = self.cfg
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 5 or tuple(shape[2:]) != (c.size, c.size,
                                                                    c.channels):
            raise ValueError(f"`{name}` must be videos of shape (batch, time, {c.size}, "
                             f"{c.size}, {c.channels}); got shape {shape}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"`{name}` must be floating point frames in [0, 1]; got dtype "
                             f"{x.dtype}")

    def encode(self, x: Float[Array, "B T H W C"], train: bool) -> Float[Array, "B T nhx"]:
        """Frame-wise encodings ``h_t = E(x_t)``."""
        b, t = x.shape[:2]
        return self.encoder(x.reshape(b * t, *x.shape[2:]), train).reshape(b, t, -1)

    def decode(self, w: Float[Array, "B nw"], y: Float[Array, "B L ny"],
               train: bool) -> Float[Array, "B L H W C"]:
        """Frame logits ``g_θ([w, y_t])`` for every state of ``y``."""
        b, n = y.shape[:2]
        inp = jnp.concatenate([jnp.broadcast_to(w[:, None], (b, n, w.shape[-1])), y], -1)
        out = self.decoder(inp.reshape(b * n, -1), train)
        return out.reshape(b, n, *out.shape[1:])

    def content(self, hx: Float[Array, "B T nhx"], key: Array | None) -> Float[Array, "B nw"]:
        """Content ``w`` over ``nt_inf`` frames: random ones if ``key`` is given, else the last."""
        k = self.cfg.nt_inf
        if hx.shape[1] < k:
            raise ValueError(f"need at least nt_inf={k} frames; got {hx.shape[1]}")
        if key is None:
            h = hx[:, -k:]
        else:
            idx = jax.vmap(lambda kk: jax.random.permutation(kk, hx.shape[1])[:k])(
                jax.random.split(key, hx.shape[0]))
            h = jnp.take_along_axis(hx, idx[..., None], axis=1)
        return jnp.tanh(self.w_inf(jnp.sum(nn.relu(self.w_proj(h)), axis=1)))

    def infer_y(self, hx: Float[Array, "B T nhx"], key: Array) -> tuple[Array, Array, Array]:
        """``(y₁, μ, σ)`` of ``q(y₁ | h_{1:k})``."""
        k = self.cfg.nt_inf
        mu, s = _normal(self.q_y(hx[:, :k].reshape(hx.shape[0], -1)))
        return mu + s * jax.random.normal(key, mu.shape, mu.dtype), mu, s

    def unroll(self, y1: Array, hx: Array | None, n_frames: int, key: Array,
               n_substeps: int | None = None) -> dict[str, Array]:
        """Latent trajectory over ``n_frames`` frames from ``y₁``.

        The first ``hx.shape[1]`` frames are observed (posterior ``q(z_t)``), the rest use
        the prior. With ``n_substeps`` (tied field) more states are produced per interval.
        Only the ODE steps (and prior samples after the observed frames) run frame by frame;
        the posterior ``q(z_t)``, its noise and the prior ``p(z_t | y_{t−1})`` over the
        observed frames are computed in one batched call each (same values).

        Returns:
            dict with ``y`` ``(B, m·(n_frames−1)+1, ny)`` (every sub-step state, ``m`` the
            sub-step count), ``q_z`` and ``p_z`` (``(μ, σ)`` pairs of ``(B, n_obs−1, nz)`` and
            ``(B, n_frames−1, nz)``), ``increments`` ``(B, m·(n_frames−1), ny)``.
        """
        n_obs = 0 if hx is None else hx.shape[1]
        c = self.cfg
        keys = jax.random.split(key, max(n_frames - 1, 1))
        # posterior intervals t = 1..n_q: q(z_t) and its noise do not depend on y, so they
        # are computed for all t at once, and so is the prior p(z_t | y_{t-1}) after the loop
        # (only the ODE steps are sequential); prior intervals sample z from p inside the loop
        n_q = max(min(n_obs, n_frames) - 1, 0)
        if n_q:
            q_mu, q_s = _normal(self.q_z(self.inf_z(hx[:, :n_q + 1])[:, 1:]))  # (B, n_q, nz)
            eps = jax.vmap(lambda k: jax.random.normal(k, q_mu[:, 0].shape, q_mu.dtype))(
                keys[:n_q])
            z_q = q_mu + q_s * jnp.swapaxes(eps, 0, 1)
        ys, incs, y_prev, p_mu, p_s = [y1], [], [], [], []
        y = y1
        for t in range(1, n_frames):
            if t <= n_q:
                y_prev.append(y)
                z = z_q[:, t - 1]
            else:
                mu, s = _normal(self.p_z(y))
                p_mu.append(mu)
                p_s.append(s)
                z = mu + s * jax.random.normal(keys[t - 1], mu.shape, mu.dtype)
            out = self.dynamics(y, z, n_substeps=n_substeps)
            states = out.states(y)[1:]
            ys.extend(states[i] for i in range(states.shape[0]))
            incs.extend(out.increments[i] for i in range(out.increments.shape[0]))
            y = out.y

        def stack(v: list[Array], like: Array, n: int) -> Array:
            return (jnp.stack(v, 1) if v else jnp.zeros((like.shape[0], 0, n), like.dtype))

        p_z = (stack(p_mu, y1, c.nz), stack(p_s, y1, c.nz))
        if n_q:
            pq_mu, pq_s = _normal(self.p_z(jnp.stack(y_prev, 1)))  # (B, n_q, nz)
            p_z = (jnp.concatenate([pq_mu, p_z[0]], 1), jnp.concatenate([pq_s, p_z[1]], 1))
        else:
            q_mu, q_s = (jnp.zeros((y1.shape[0], 0, c.nz), y1.dtype),) * 2
        return {"y": stack(ys, y1, c.ny), "increments": stack(incs, y1, c.ny),
                "q_z": (q_mu, q_s), "p_z": p_z}

    # ----- entry points
    def __call__(self, x: Float[Array, "B T H W C"], key: Array,
                 train: bool = True) -> dict[str, Any]:
        """Training pass: every frame encoded, posterior throughout, all frames decoded.

        Returns:
            dict with ``logits`` ``(B, T, H, W, C)``, ``q_y`` ``(μ, σ)``, ``q_z``, ``p_z``,
            ``increments`` (see :meth:`unroll`).
        """
        self.check_video(x)
        k_w, k_y, k_z = jax.random.split(key, 3)
        hx = self.encode(x, train)
        w = self.content(hx, k_w if train else None)
        y1, mu, s = self.infer_y(hx, k_y)
        out = self.unroll(y1, hx, x.shape[1], k_z)
        out["logits"] = self.decode(w, out["y"], train)
        out["q_y"] = (mu, s)
        return out

    def condition(self, x_cond: Float[Array, "B k H W C"]) -> tuple[Array, Array]:
        """Test-time encodings and content of the conditioning frames: ``(hx, w)``."""
        self.check_video(x_cond, "x_cond")
        hx = self.encode(x_cond, False)
        return hx, self.content(hx, None)

    def generate(self, hx: Array, w: Array, n_frames: int, key: Array,
                 n_substeps: int | None = None) -> Float[Array, "B L H W C"]:
        """One sample: frames in [0, 1] at every (sub-)step, conditioning frames first.

        Args:
            hx: from :meth:`condition` (``hx.shape[1]`` observed frames).
            w: see ``hx``.
            n_frames: total frames at integer times (conditioning + predicted).
            key: randomness for ``y₁`` and the ``z_t``.
            n_substeps: sub-steps per interval (default the trained count); ``m``
                sub-steps return ``m·(n_frames−1)+1`` frames.
        """
        k_y, k_z = jax.random.split(key)
        y1, _, _ = self.infer_y(hx, k_y)
        out = self.unroll(y1, hx, n_frames, k_z, n_substeps)
        return jax.nn.sigmoid(self.decode(w, out["y"], False))


def srvp_loss(out: dict[str, Any], x: Array, *, likelihood: str = "gaussian",
              obs_scale: float = 1.0, beta_y: float = 1.0, beta_z: float = 1.0,
              l2_res: float = 1.0) -> tuple[Array, dict[str, Array]]:
    """SRVP's training loss (module docstring) from a training pass ``out`` on videos ``x``.

    Args:
        out: :meth:`SRVP.__call__` output.
        x: ``(B, T, H, W, C)`` target frames in [0, 1].
        likelihood: ``gaussian`` (std ``obs_scale``) or ``bernoulli``.

    Returns:
        ``(loss, terms)``: the batch mean of the per-sequence loss, and the batch means of
        ``nll``, ``kl_y``, ``kl_z``, ``l2_res`` and the per-pixel ``mse``.
    """
    logits = out["logits"]
    b = x.shape[0]
    if likelihood == "gaussian":
        xh = jax.nn.sigmoid(logits)
        nll = (0.5 * ((x - xh) / obs_scale) ** 2 + jnp.log(obs_scale)
               + 0.5 * math.log(2 * math.pi))
    elif likelihood == "bernoulli":
        xh = jax.nn.sigmoid(logits)
        nll = optax.sigmoid_binary_cross_entropy(logits, x)
    else:
        raise ValueError(f"`likelihood` must be 'gaussian' or 'bernoulli'; got {likelihood!r}")
    nll = jnp.sum(nll) / b
    mu, s = out["q_y"]
    kl_y = jnp.sum(gaussian_kl(mu, s, jnp.zeros_like(mu), jnp.ones_like(s))) / b
    (qm, qs), (pm, ps) = out["q_z"], out["p_z"]
    n_q = qm.shape[1]
    kl_z = jnp.sum(gaussian_kl(qm, qs, pm[:, :n_q], ps[:, :n_q])) / b
    l2 = jnp.sum(jnp.sqrt(jnp.sum(out["increments"] ** 2, -1) + 1e-12)) / b
    loss = nll + beta_y * kl_y + beta_z * kl_z + l2_res * l2
    mse = jnp.mean((xh - x) ** 2)
    return loss, {"nll": nll, "kl_y": kl_y, "kl_z": kl_z, "l2_res": l2, "mse": mse}


# --------------------------------------------------------------------------- experiment
_MODEL_KEYS = tuple(f.name for f in dataclasses.fields(SRVPConfig))
_GEN_CHUNK_FRAMES = 128  # decoded frames per vmapped chunk of samples in generation


class SRVPExperiment:
    """SRVP on Moving Digits for the training/evaluation CLIs (:mod:`gantk.models.registry`).

    Args:
        data: ``moving-digits``, ``moving-digits-deterministic`` or ``moving-mnist:PATH``.
        hparams: a preset (:data:`PRESETS`) with overrides.
        seed: run seed (data order and initialization).

    Raises:
        ValueError: bad sizes, likelihood, data source or sequence lengths (one line each).
    """

    def __init__(self, data: str, hparams: dict[str, Any], seed: int) -> None:
        from gantk.data.video import MovingDigits

        hp = dict(hparams)
        self.hp, self.seed = hp, seed
        self.cfg = SRVPConfig(**{k: hp[k] for k in _MODEL_KEYS if k in hp})
        if hp["likelihood"] not in ("gaussian", "bernoulli"):
            raise ValueError(f"argument --set likelihood: expected gaussian or bernoulli; got "
                             f"{hp['likelihood']!r}")
        for key in ("obs_scale", "lr"):
            if not (math.isfinite(float(hp[key])) and float(hp[key]) > 0):
                raise ValueError(f"argument --set {key}: expected a positive number; got "
                                 f"{hp[key]!r}")
        for key in ("beta_y", "beta_z", "l2_res"):
            if not (math.isfinite(float(hp[key])) and float(hp[key]) >= 0):
                raise ValueError(f"argument --set {key}: expected a number >= 0; got "
                                 f"{hp[key]!r}")
        if hp["seq_len"] < self.cfg.nt_inf or hp["n_cond"] < self.cfg.nt_inf:
            raise ValueError(f"argument --set seq_len/n_cond: need at least nt_inf="
                             f"{self.cfg.nt_inf} frames; got {hp['seq_len']}/{hp['n_cond']}")
        if hp["n_pred"] < 1 or hp["lr_decay_steps"] < 0:
            raise ValueError("argument --set n_pred/lr_decay_steps: expected n_pred >= 1 and "
                             "lr_decay_steps >= 0")
        self.data = MovingDigits(data, size=self.cfg.size, n_frames=hp["seq_len"])
        self.description = f"SRVP ny={self.cfg.ny} nf={self.cfg.nf}; {self.data.description}"
        self.model = SRVP(self.cfg)
        steps, decay = int(hp["steps"]), int(hp["lr_decay_steps"])
        lr: Any = hp["lr"]
        if decay > 0:  # constant, then linear decay to 0 over the last `decay` steps
            lr = optax.join_schedules(
                [optax.constant_schedule(hp["lr"]),
                 optax.linear_schedule(hp["lr"], 0.0, decay)], [max(steps - decay, 0)])
        self.optimizer = optax.adam(lr)
        self._strip_videos: np.ndarray | None = None
        self._gen = jax.jit(self._generate_samples,
                            static_argnames=("n_samples", "n_frames", "n_substeps"))

    def init(self, key: Array) -> tuple[Any, Any]:
        """Initial ``(params, {"batch_stats": ...})``."""
        x = jnp.zeros((2, self.cfg.nt_inf + 1, self.cfg.size, self.cfg.size, 1), jnp.float32)
        v = self.model.init(key, x, jax.random.key(0))
        return v["params"], {"batch_stats": v["batch_stats"]}

    def train_batch(self, step: int) -> np.ndarray:
        """Videos ``(batch, seq_len, size, size, 1)`` of global step ``step``."""
        return self.data.train_batch(self.seed, step, self.hp["batch_size"])

    def loss(self, params: Any, model_state: Any, batch: Array,
             key: Array) -> tuple[Array, tuple[dict[str, Array], Any]]:
        """Negative ELBO + residual penalty (:func:`srvp_loss`), BatchNorm in training mode."""
        out, new_state = self.model.apply({"params": params, **model_state}, batch, key,
                                          mutable=["batch_stats"])
        hp = self.hp
        loss, terms = srvp_loss(out, batch, likelihood=hp["likelihood"],
                                obs_scale=hp["obs_scale"], beta_y=hp["beta_y"],
                                beta_z=hp["beta_z"], l2_res=hp["l2_res"])
        return loss, (terms, new_state)

    def _generate_samples(self, params: Any, model_state: Any, x_cond: Array, key: Array,
                          n_samples: int, n_frames: int,
                          n_substeps: int | None = None) -> Array:
        variables = {"params": params, **model_state}
        hx, w = self.model.apply(variables, x_cond, method=SRVP.condition)

        def one(k: Array) -> Array:
            return self.model.apply(variables, hx, w, n_frames, k, n_substeps,
                                    method=SRVP.generate)

        # samples in vmapped chunks of about _GEN_CHUNK_FRAMES decoded frames: one vmap over
        # all samples makes every decoder activation n_samples times larger than the cache and
        # was 1.4x slower for best-of-100 (benchmarks/srvp.py)
        n_out = x_cond.shape[0] * (n_frames - 1) * (n_substeps or self.cfg.n_substeps) + 1
        chunk = max(1, min(n_samples, _GEN_CHUNK_FRAMES // n_out))
        return jax.lax.map(one, jax.random.split(key, n_samples), batch_size=chunk)

    def sample(self, params: Any, model_state: Any, x_cond: Array, key: Array, *,
               n_samples: int, n_frames: int, n_substeps: int | None = None) -> Array:
        """``n_samples`` continuations of conditioning videos, vmapped in chunks of samples
        (``jax.lax.map`` with a ``batch_size`` of about 128 decoded frames).

        Args:
            x_cond: ``(B, n_cond, H, W, 1)`` conditioning frames.
            n_frames: total frames (conditioning + predicted) at integer times.
            n_substeps: sub-steps per interval (more than in training: higher frame rate).

        Returns:
            ``(n_samples, B, L, H, W, 1)`` frames in [0, 1] (reconstructed conditioning frames
            first; ``L = m·(n_frames−1)+1`` with ``m`` sub-steps).
        """
        return self._gen(params, model_state, jnp.asarray(x_cond), key, n_samples=n_samples,
                         n_frames=n_frames, n_substeps=n_substeps)

    def strip(self, params: Any, model_state: Any, key: Array) -> np.ndarray:
        """Two test videos: ground truth, then 2 samples each (5 conditioning → predicted)."""
        hp = self.hp
        n_total = hp["n_cond"] + min(hp["n_pred"], 10)
        if self._strip_videos is None:
            self._strip_videos = self.data.test_videos(2, n_total)
        x = self._strip_videos
        samples = np.asarray(self.sample(params, model_state, x[:, :hp["n_cond"]], key,
                                         n_samples=2, n_frames=n_total))
        rows = []
        for b in range(x.shape[0]):
            rows.append(x[b])
            rows.extend(samples[:, b])
        img = np.stack(rows)[..., 0]  # (rows, T, H, W)
        r, t, h, w_ = img.shape
        pad = np.ones((r, t, h + 2, w_ + 2), np.float32) * 0.5
        pad[:, :, 1:-1, 1:-1] = img
        pad[:, hp["n_cond"]:, 0, :] = 1.0  # a bright top edge marks predicted frames
        return pad.transpose(0, 2, 1, 3).reshape(r * (h + 2), t * (w_ + 2))

    def evaluate(self, params: Any, model_state: Any, *, samples: int, videos: int | None,
                 key: Array, progress: bool) -> Any:
        """Best-of-K PSNR/SSIM per predicted frame and the copy-last-frame baseline."""
        from tqdm.auto import tqdm

        from gantk.models.evaluate import best_of, frame_metrics, mean_ci
        from gantk.models.registry import EvalResult

        hp = self.hp
        n_cond, n_pred = hp["n_cond"], hp["n_pred"]
        n_videos = 5000 if videos is None else videos
        chunk = max(1, min(n_videos, 256 // max(1, min(samples, 64)) or 1))
        metrics_fn = jax.jit(frame_metrics)
        per: dict[str, list[np.ndarray]] = {k: [] for k in ("psnr", "ssim", "psnr_copy_last",
                                                            "ssim_copy_last")}
        bar = tqdm(total=n_videos, disable=not progress, desc="evaluate", dynamic_ncols=True)
        for start in range(0, n_videos, chunk):
            n = min(chunk, n_videos - start)
            x = self.data.test_videos(n, n_cond + n_pred, start=start)
            target = jnp.asarray(x[:, n_cond:])
            pred = self.sample(params, model_state, x[:, :n_cond],
                               jax.random.fold_in(key, start), n_samples=samples,
                               n_frames=n_cond + n_pred)[:, :, n_cond:]
            m = metrics_fn(pred, jnp.broadcast_to(target, pred.shape))  # (K, n, T)
            per["psnr"].append(best_of(m["psnr"]))
            per["ssim"].append(best_of(m["ssim"]))
            last = jnp.broadcast_to(jnp.asarray(x[:, n_cond - 1:n_cond]), target.shape)
            base = metrics_fn(last, target)
            per["psnr_copy_last"].append(np.asarray(base["psnr"]))
            per["ssim_copy_last"].append(np.asarray(base["ssim"]))
            bar.update(n)
        bar.close()
        arrays = {k: np.concatenate(v) for k, v in per.items()}  # (N, T)
        rows = []
        for t in range(n_pred):
            row: dict[str, Any] = {"frame": t + 1}
            for k, a in arrays.items():
                mean, ci = mean_ci(a[:, t])
                row[k], row[f"{k}_ci95"] = float(mean), float(ci)
            rows.append(row)
        means = {}
        for k, a in arrays.items():
            for label, sl in (("1-10", slice(0, min(10, n_pred))), ("all", slice(None))):
                mean, ci = mean_ci(a[:, sl].mean(axis=1))  # per-video mean over frames
                means[f"{k}[{label}]"] = {"mean": float(mean), "ci95": float(ci)}
        cols = ("frame", "psnr", "ssim", "psnr_copy_last", "ssim_copy_last")
        summary = {
            "protocol": {"conditioning_frames": n_cond, "predicted_frames": n_pred,
                         "samples_per_video": samples, "videos": n_videos,
                         "best_of": "per video and per metric (mean over predicted frames)",
                         "ssim": "11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, valid"},
            "data": self.data.description,
            "means": means,
            "frame_20": {k: float(arrays[k][:, -1].mean()) for k in arrays} if n_pred >= 20
            else None,
        }
        return EvalResult(rows=rows, columns=cols + tuple(f"{c}_ci95" for c in cols[1:]),
                          summary=summary, panels={"PSNR (dB)": ["psnr", "psnr_copy_last"],
                                                   "SSIM": ["ssim", "ssim_copy_last"]})


def build(spec: Any) -> SRVPExperiment:
    """Registry hook: the SRVP experiment of a :class:`~gantk.models.registry.RunSpec`."""
    return SRVPExperiment(spec.data, dict(spec.hparams), spec.seed)
