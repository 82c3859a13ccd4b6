"""PDE-driven spatiotemporal disentanglement (Donà, Franceschi, Lamprier & Gallinari, ICLR 2021).

Separation of variables in a learned latent space: a video ``x`` is decoded as
``x̂_t = D(S, T_t)`` from a **content** code ``S`` that does not change in time and a
**dynamic** code ``T_t`` that follows an ODE. Following the authors' code
(``var_sep/networks/model.py`` and ``train.py``):

- ``S = E_S(x_{1:k})`` and ``T₀ = E_T(x_{1:k})``: two encoders of the same architecture and
  separate weights, reading the ``k`` conditioning frames stacked together (an MLP on the
  flattened frames, or a DCGAN conv net with the frames stacked on channels).
- ``dT/dt = f_θ(T)`` through the shared ODE layer :class:`gantk.models.ode.ODEBlock`. The
  original advances one frame with ``n_blocks`` residual blocks ``T ← T + MLP_b(T)`` (3 linear
  layers of width ``res_hidden``, distinct weights per block, orthogonal init with a gain):
  the layer with ``tied=False``, Euler, ``n_substeps = n_blocks`` and a unit step per block
  (``delta = n_blocks`` per frame, so ``T + 1·MLP_b(T)`` exactly). ``method="rk4"`` or
  ``"diffrax"`` and ``tied=True`` (one time-homogeneous field, needed to change the frame rate
  at test time) are options.
- ``D(S, T)``: the code ``concat(S, T)`` (``combiner="concat"``) or ``S ⊙ T``
  (``"product"``, needs ``|S| = |T|``) through an MLP or a DCGAN decoder, sigmoid output.
- ``offset``: with ``offset = k`` (the authors' default) ``E_T`` of a window codes its
  **first** frame, so the rollout from ``T₀`` also reconstructs the conditioning frames and
  the prediction loss covers ``x_1 … x_{k+n_pred}``; with ``offset = 0`` it codes the frame
  right after the window and the loss covers ``x_{k+1} … x_{k+n_pred}``.

Loss (:func:`pde_loss`, the authors' ``train.py``)::

    λ_pred · MSE(x̂, x)                               rollout from (S, T₀) vs the frames
  + λ_AE   · MSE(D(S, E_T(x_{t−k+1:t})), x_{t−offset})  a random window per sequence
  + λ_S    · mean (E_S(x_{1:k}) − E_S(x_{L−k+1:L}))²   S is constant in time
  + λ_T    · ½ mean_batch ‖T₀‖²

with defaults ``λ = (45, 10, 45, 1e-3)``; MSEs and the S term are means over every element
(as the authors' ``F.mse_loss`` and ``.pow(2).mean()``), the T term sums over the code.

Presets (:data:`PRESETS`; ``python -m gantk.models.train --model pde --preset NAME``):

- ``small`` (default): CPU-sized MLP model for WaveEq 32×32, tied field (Euler).
- ``pendulum``: ``small`` with an RK4 field and 5 → 20 test frames, for generating at another
  frame rate (``rollout(..., rate=2)``): RK4 sub-steps are a consistent discretization of
  one flow, so doubling them gives in-between states on the same trajectory (Euler steps of
  unit size are a discrete map that halving does not reproduce).
- ``paper``: the authors' WaveEq command line (64×64, MLP encoders of width 1200, 4-layer
  decoder, ``|S| = |T| = 32``, product, 3 blocks, gain 0.71, ``λ_AE = 1``, 5 → 20, batch
  128, Adam 4e-4, betas (0.9, 0.99)); ``paper-waveeq100`` the WaveEq-100 one (encoders 2400,
  decoder 150 × 3 layers).
- ``paper-mnist``: the Moving MNIST one (DCGAN, ``|S| = 128``, ``|T| = 20``, concat, 1 block,
  gain 1.41, 5 → 10, ``λ_AE = 10``, Adam betas (0.5, 0.99)); the authors' learning-rate
  milestones are not reproduced.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from gantk.models.conv import DCGANDecoder, DCGANEncoder
from gantk.models.ode import METHODS, MLPField, ODEBlock

__all__ = [
    "COMBINERS",
    "PRESETS",
    "PDEModel",
    "PDEExperiment",
    "build",
    "pde_loss",
    "rollout",
]

#: How ``S`` and ``T`` are combined before the decoder.
COMBINERS = ("concat", "product")
ARCHS = ("mlp", "dcgan")

_COMMON: dict[str, Any] = dict(
    lr=4e-4, beta1=0.9, beta2=0.99, n_cond=5, n_pred=20, n_test=40, offset=5,
    lambda_pred=45.0, lambda_ae=10.0, lambda_s=45.0, lambda_t=1e-3, init_std=0.02,
    method="euler", nf=64, size=64,
    fps=10.0, train_sequences=1000, sequence_frames=60, test_sequences=100,
)

#: Hyper-parameter presets (flat JSON scalars, see :mod:`gantk.models.registry`).
PRESETS: dict[str, dict[str, Any]] = {
    "small": {**_COMMON, "steps": 4000, "batch_size": 32, "arch": "mlp", "enc_hidden": 256,
              "enc_layers": 3, "dec_hidden": 256, "dec_layers": 3, "s_dim": 32, "t_dim": 32,
              "combiner": "product", "n_blocks": 3, "res_hidden": 128, "gain": 0.71,
              "tied": True, "lambda_ae": 1.0, "size": 32},
    "paper": {**_COMMON, "steps": 59_000, "batch_size": 128, "arch": "mlp",
              "enc_hidden": 1200, "enc_layers": 3, "dec_hidden": 1200, "dec_layers": 4,
              "s_dim": 32, "t_dim": 32, "combiner": "product", "n_blocks": 3,
              "res_hidden": 512, "gain": 0.71, "tied": False, "lambda_ae": 1.0},
    "paper-waveeq100": {**_COMMON, "steps": 59_000, "batch_size": 128, "arch": "mlp",
                        "enc_hidden": 2400, "enc_layers": 3, "dec_hidden": 150,
                        "dec_layers": 3, "s_dim": 32, "t_dim": 32, "combiner": "product",
                        "n_blocks": 3, "res_hidden": 512, "gain": 0.71, "tied": False,
                        "lambda_ae": 1.0},
    "paper-mnist": {**_COMMON, "steps": 300_000, "batch_size": 128, "arch": "dcgan",
                    "enc_hidden": 0, "enc_layers": 0, "dec_hidden": 0, "dec_layers": 0,
                    "s_dim": 128, "t_dim": 20, "combiner": "concat", "n_blocks": 1,
                    "res_hidden": 512, "gain": 1.41, "tied": False, "n_pred": 10,
                    "beta1": 0.5},
}

# the pendulum / frame-rate test bed: the small model with an RK4 field (a genuine ODE flow,
# so twice the sub-steps refine the same trajectory) and 5 -> 20 test frames
PRESETS["pendulum"] = {**PRESETS["small"], "method": "rk4", "n_test": 20}

# --------------------------------------------------------------------------------------------
# networks


class MLP(nn.Module):
    """``n_layers`` linear layers with ReLU between them (the authors' ``MLP``).

    Weights ``N(0, init_std²)`` (the authors' ``init_net(..., 'normal', 0.02)``), zero biases.

    Attributes:
        hidden: hidden width.
        n_layers: number of linear layers (≥ 1).
        out: output width.
        init_std: standard deviation of the weights.
    """

    hidden: int
    n_layers: int
    out: int
    init_std: float = 0.02

    @nn.compact
    def __call__(self, h: Float[Array, "... d"]) -> Float[Array, "... out"]:
        """Apply to the last axis."""
        init = nn.initializers.normal(self.init_std)
        for i in range(self.n_layers):
            if i > 0:
                h = nn.relu(h)
            last = i == self.n_layers - 1
            h = nn.Dense(self.out if last else self.hidden, kernel_init=init)(h)
        return h


class PDEModel(nn.Module):
    """Encoders ``E_S``, ``E_T``, the ODE on ``T`` and the decoder ``D`` (module docstring).

    Frames are ``(..., *obs_shape)``: ``(H, W, C)`` images or ``(P,)`` pixel observations.
    Methods are used through ``model.apply(params, ..., method=...)``; :func:`rollout` and
    :func:`pde_loss` compose them.

    Attributes:
        obs_shape: shape of one frame.
        n_cond: number of frames ``k`` the encoders read.
        s_dim: sizes of ``S`` and ``T``.
        t_dim: see ``s_dim``.
        combiner: ``"concat"`` or ``"product"``.
        arch: ``"mlp"`` or ``"dcgan"`` (images of 32×32 or 64×64 only).
        enc_hidden: MLP sizes.
        enc_layers: see ``enc_hidden``.
        dec_hidden: see ``enc_hidden``.
        dec_layers: see ``enc_hidden``.
        nf: DCGAN base width.
        n_blocks: sub-steps (residual blocks) per frame.
        res_hidden: hidden width of each block's 3-layer MLP.
        gain: orthogonal-init gain of the blocks.
        method: ``"euler"``, ``"rk4"`` or ``"diffrax"``.
        tied: one field for all blocks (time-homogeneous ODE) or distinct blocks.
        init_std: weight std of encoders and decoder.
    """

    obs_shape: tuple[int, ...]
    n_cond: int = 5
    s_dim: int = 32
    t_dim: int = 32
    combiner: str = "concat"
    arch: str = "mlp"
    enc_hidden: int = 256
    enc_layers: int = 3
    dec_hidden: int = 256
    dec_layers: int = 3
    nf: int = 64
    n_blocks: int = 1
    res_hidden: int = 512
    gain: float = 1.41
    method: str = "euler"
    tied: bool = False
    init_std: float = 0.02

    def setup(self) -> None:
        """Create the submodules (validating the attributes first)."""
        _check_model(self)
        out = int(np.prod(self.obs_shape))
        if self.arch == "mlp":
            self.enc_s = MLP(self.enc_hidden, self.enc_layers, self.s_dim, self.init_std)
            self.enc_t = MLP(self.enc_hidden, self.enc_layers, self.t_dim, self.init_std)
            self.dec = MLP(self.dec_hidden, self.dec_layers, out, self.init_std)
        else:
            size, channels = self.obs_shape[0], self.obs_shape[-1]
            self.enc_s = DCGANEncoder(size=size, nf=self.nf, nh=self.s_dim)
            self.enc_t = DCGANEncoder(size=size, nf=self.nf, nh=self.t_dim)
            self.dec = DCGANDecoder(size=size, nf=self.nf, channels=channels)
        field = functools.partial(MLPField, hidden=self.res_hidden, n_layers=3,
                                  out_dim=self.t_dim, gain=self.gain)
        self.ode = ODEBlock(field=field, method=self.method, n_substeps=self.n_blocks,
                            tied=self.tied, delta=float(self.n_blocks))

    def _stack(self, window: Array) -> Array:
        """``(B, k, *obs)`` → encoder input: flat for the MLP, channels-stacked for convs."""
        b = window.shape[0]
        if self.arch == "mlp":
            return window.reshape(b, -1)
        h, w, c = self.obs_shape
        return jnp.moveaxis(window, 1, -2).reshape(b, h, w, self.n_cond * c)

    def _net(self, net: nn.Module, h: Array, train: bool, **kwargs: Any) -> Array:
        return net(h) if self.arch == "mlp" else net(h, train=train, **kwargs)

    def encode_s(self, window: Float[Array, "B k *obs"], train: bool = False) -> Array:
        """``S = E_S(window)`` for ``k`` consecutive frames (``train``: BatchNorm mode)."""
        return self._net(self.enc_s, self._stack(window), train)

    def encode_t(self, window: Float[Array, "B k *obs"], train: bool = False) -> Array:
        """``T = E_T(window)``: the dynamic code of the window's first frame (offset = k)."""
        return self._net(self.enc_t, self._stack(window), train)

    def decode(self, s: Float[Array, "B s"], t: Float[Array, "B t"],
               train: bool = False, groups: int = 1) -> Float[Array, "B ..."]:
        """``x̂ = sigmoid(D(S, T))`` with the chosen combiner.

        ``groups`` (DCGAN decoder in training): BatchNorm statistics per group of ``B/groups``
        consecutive rows, i.e. ``groups`` separate decoder calls computed in one
        (:class:`~gantk.models.conv.GroupBatchNorm`); no effect on the MLP decoder.

        Raises:
            ValueError: ``groups`` not a positive integer dividing ``B`` (DCGAN decoder).
        """
        z = jnp.concatenate([s, t], -1) if self.combiner == "concat" else s * t
        y = self._net(self.dec, z, train, groups=groups)
        return nn.sigmoid(y.reshape(y.shape[:1] + tuple(self.obs_shape)))

    def advance(self, t: Float[Array, "B t"], n_substeps: int | None = None):
        """One frame interval of ``dT/dt = f_θ(T)``: the :class:`~gantk.models.ode.ODEOutput`.

        ``n_substeps`` (tied fields only) refines the sub-steps over the same interval, e.g.
        ``2 · n_blocks`` to generate at twice the frame rate.
        """
        return self.ode(t, n_substeps=n_substeps)

    def __call__(self, window: Array) -> tuple[Array, Array, Array]:
        """Initialize every parameter: returns ``(S, T₀, D(S, T₁))``."""
        s, t = self.encode_s(window), self.encode_t(window)
        return s, t, self.decode(s, self.advance(t).y)


def _check_model(m: PDEModel) -> None:
    """Validate a :class:`PDEModel`'s attributes (one clear error naming the value)."""
    if m.combiner not in COMBINERS:
        raise ValueError(f"`combiner` must be one of {COMBINERS}; got {m.combiner!r}.")
    if m.arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {ARCHS}; got {m.arch!r}.")
    if m.method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {m.method!r}.")
    if m.combiner == "product" and m.s_dim != m.t_dim:
        raise ValueError(f"`combiner='product'` needs s_dim == t_dim; got s_dim={m.s_dim}, "
                         f"t_dim={m.t_dim}.")
    for name in ("n_cond", "s_dim", "t_dim", "n_blocks", "res_hidden"):
        v = getattr(m, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"`{name}` must be a positive integer; got {v!r}.")
    if m.arch == "mlp":
        for name in ("enc_hidden", "enc_layers", "dec_hidden", "dec_layers"):
            v = getattr(m, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive integer for arch='mlp'; "
                                 f"got {v!r}.")
    elif len(m.obs_shape) != 3 or m.obs_shape[0] != m.obs_shape[1] or m.obs_shape[0] not in (
            32, 64):
        raise ValueError(f"arch='dcgan' needs 32×32 or 64×64 image frames (H, W, C); got "
                         f"frames of shape {tuple(m.obs_shape)}.")


# --------------------------------------------------------------------------------------------
# rollout and loss


def rollout(
    model: PDEModel,
    params: Any,
    s: Float[Array, "B s"],
    t0: Float[Array, "B t"],
    n_frames: int,
    *,
    rate: int = 1,
    train: bool = False,
) -> tuple[Float[Array, "B F *obs"], Float[Array, "F B t"]]:
    """Decode ``n_frames`` frames ``D(S, T_0), D(S, T_1), …`` from ``(S, T₀)``.

    Args:
        model: the module.
        params: its variables (``{"params": ...}``, plus ``"batch_stats"`` for DCGAN nets).
        s: content codes ``(B, s_dim)``.
        t0: dynamic codes of the first decoded frame ``(B, t_dim)``.
        n_frames: number of frames at the training frame rate (≥ 1).
        rate: frame-rate multiplier: ``rate · n_blocks`` sub-steps per frame interval, each
            intermediate state decoded too; ``rate > 1`` needs a tied field. Returns
            ``rate·(n_frames − 1) + 1`` frames, the integer-time ones at indices ``::rate``.
        train: BatchNorm in training mode (batch statistics; the updated running
            statistics are then returned as a third output).

    Returns:
        ``(frames (B, F, *obs), codes (F, B, t_dim))``, and the updated variables when
        ``train`` is True.

    Raises:
        ValueError: ``n_frames < 1`` or ``rate < 1``, or ``rate > 1`` with untied blocks.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
        raise ValueError(f"`n_frames` must be a positive integer; got {n_frames!r}.")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
        raise ValueError(f"`rate` must be a positive integer; got {rate!r}.")
    if rate > 1 and not model.tied:
        raise ValueError(f"generating at rate={rate} needs a tied field (tied=True): untied "
                         "residual blocks have no intermediate times.")
    codes = _codes(model, params, t0, n_frames, rate)
    frames, variables = _decode_codes(model, params, s, codes, train=train)
    return (frames, codes, variables) if train else (frames, codes)


def _codes(model: PDEModel, params: Any, t0: Array, n_frames: int, rate: int) -> Array:
    """``T`` at the ``rate·(n_frames − 1) + 1`` decoded times ``(F, B, t_dim)``, ``T₀`` first
    (the ODE advanced frame by frame in a ``lax.scan``; arguments as :func:`rollout`)."""
    nb = model.n_blocks

    def step(t, _):
        out = model.apply(params, t, None if rate == 1 else rate * nb, method=PDEModel.advance)
        if rate == 1:
            return out.y, out.y[None]
        states = out.states(t)[nb::nb]  # (rate, B, t): every nb sub-steps
        return out.y, states

    _, codes = jax.lax.scan(step, t0, None, length=n_frames - 1)
    return jnp.concatenate([t0[None], codes.reshape((-1,) + t0.shape)])


def _decode_codes(model: PDEModel, params: Any, s: Array, codes: Array, *,
                  extra: Array | None = None, train: bool) -> tuple[Array, Any]:
    """Decode ``D(S, T)`` for codes ``(F, B, t)`` in ONE decoder call → ``(B, F, *obs)``.

    ``extra``: further codes ``(B, t)`` decoded with the same ``S`` in the same call (the
    auto-encoding term), returned as ``((B, F, *obs), (B, *obs))``. In training, BatchNorm
    (DCGAN decoder) normalizes each time step's ``B`` frames on their own (``groups``): the
    authors' code decodes every time step in its own call.
    """
    f, b = codes.shape[:2]
    flat = codes.reshape(f * b, -1)
    if extra is not None:
        flat = jnp.concatenate([flat, extra])
    ss = jnp.broadcast_to(s, (flat.shape[0] // b, *s.shape)).reshape(flat.shape[0], -1)
    out, variables = _apply(model, params, ss, flat, method=PDEModel.decode, train=train,
                            groups=flat.shape[0] // b)
    frames = jnp.moveaxis(out[: f * b].reshape((f, b) + out.shape[1:]), 0, 1)
    return (frames if extra is None else (frames, out[f * b :])), variables


def _apply(model: PDEModel, variables: Any, *args: Any, method: Callable,
           train: bool, **kwargs: Any) -> tuple[Any, Any]:
    """``model.apply`` of ``method``; in training mode with BatchNorm, also the variables
    with updated running statistics (otherwise ``variables`` unchanged)."""
    if train and "batch_stats" in variables:
        out, upd = model.apply(variables, *args, train=True, method=method,
                               mutable=["batch_stats"], **kwargs)
        return out, {**variables, **upd}
    return model.apply(variables, *args, train=train, method=method, **kwargs), variables


def _mse(a: Array, b: Array) -> Array:
    return jnp.mean((a - b) ** 2)


def pde_loss(
    model: PDEModel,
    params: Any,
    x: Float[Array, "B L *obs"],
    key: jax.Array,
    *,
    offset: int | None = None,
    lambda_pred: float = 45.0,
    lambda_ae: float = 10.0,
    lambda_s: float = 45.0,
    lambda_t: float = 1e-3,
    train: bool = True,
) -> tuple[Array, tuple[dict[str, Array], dict[str, Any]]]:
    """The training loss of the PDE-driven model (module docstring) on a batch of windows.

    Args:
        model: the module (``model.n_cond = k`` conditioning frames).
        params: its variables (``{"params": ...}``, plus ``"batch_stats"`` for DCGAN nets).
        x: windows ``(B, L, *obs)`` with ``L = k + n_pred``.
        key: draws the auto-encoding window of each sequence.
        offset: ``k`` (default: ``E_T`` codes a window's first frame, conditioning frames
            are reconstructed too) or ``0`` (it codes the next frame).
        lambda_pred: weights ``λ_pred, λ_AE, λ_S, λ_T``.
        lambda_ae: see ``lambda_pred``.
        lambda_s: see ``lambda_pred``.
        lambda_t: see ``lambda_pred``.
        train: BatchNorm layers (DCGAN nets) use batch statistics and update their running
            averages.

    Returns:
        ``(loss, (terms, state))``: ``terms`` the unweighted ``pred``, ``ae``, ``s``, ``t``;
        ``state`` the non-parameter collections after the step (``{}`` for MLP nets).

    Raises:
        ValueError: ``offset`` not in ``{0, k}`` or windows too short (``L ≤ k``).
    """
    k = model.n_cond
    offset = k if offset is None else offset
    if offset not in (0, k):
        raise ValueError(f"`offset` must be 0 or n_cond={k}; got {offset!r}.")
    b, length = x.shape[:2]
    if length <= k:
        raise ValueError(f"windows must be longer than n_cond={k} frames; got x of shape "
                         f"{tuple(x.shape)}.")
    v = params
    cond = x[:, :k]
    n_frames = length - k + offset
    # auto-encoding: window ending at a random t (k ≤ t ≤ L with offset k; < L with offset 0)
    t_end = jax.random.randint(key, (b,), k, length + (1 if offset else 0))
    window = jax.vmap(lambda xi, t: jax.lax.dynamic_slice_in_dim(xi, t - k, k))(x, t_end)
    target = jnp.take_along_axis(x, (t_end - offset).reshape((b, 1) + (1,) * (x.ndim - 2)),
                                 axis=1)[:, 0]
    if model.arch == "mlp":
        # row-wise nets: each encoder reads both of its windows in ONE call and the decoder
        # decodes the rollout and the auto-encoding frame in one call: one pass over each
        # (large) weight matrix forward and one gradient each, same numbers as separate calls
        s_both = model.apply(v, jnp.concatenate([cond, x[:, -k:]]), method=PDEModel.encode_s)
        t_both = model.apply(v, jnp.concatenate([cond, window]), method=PDEModel.encode_t)
        s_old, s_new, t0, t_rand = s_both[:b], s_both[b:], t_both[:b], t_both[b:]
        codes = _codes(model, v, t0, n_frames, 1)
        (forecast, recon), v = _decode_codes(model, v, s_old, codes, extra=t_rand, train=train)
    else:  # BatchNorm nets: batch statistics per call, as the authors' code
        s_old, v = _apply(model, v, cond, method=PDEModel.encode_s, train=train)
        s_new, v = _apply(model, v, x[:, -k:], method=PDEModel.encode_s, train=train)
        t0, v = _apply(model, v, cond, method=PDEModel.encode_t, train=train)
        codes = _codes(model, v, t0, n_frames, 1)
        forecast, v = _decode_codes(model, v, s_old, codes, train=train)
        t_rand, v = _apply(model, v, window, method=PDEModel.encode_t, train=train)
        recon, v = _apply(model, v, s_old, t_rand, method=PDEModel.decode, train=train)
    pred = _mse(forecast, x[:, k - offset:])
    ae = _mse(recon, target)
    s_term = _mse(s_old, s_new)
    t_term = 0.5 * jnp.mean(jnp.sum(t0**2, axis=-1))
    loss = lambda_pred * pred + lambda_ae * ae + lambda_s * s_term + lambda_t * t_term
    state = {name: val for name, val in v.items() if name != "params"}
    return loss, ({"pred": pred, "ae": ae, "s": s_term, "t": t_term}, state)


# --------------------------------------------------------------------------------------------
# data for the training / evaluation CLIs

#: ``--data`` values the ``pde`` model accepts (``waveeq-N`` for N observed pixels too).
DATA = ("waveeq", "waveeq-100", "pendulum", "moving-digits", "moving-digits-deterministic",
        "moving-mnist:")


@dataclasses.dataclass
class _Data:
    """Training windows and test windows of one dataset, shaped ``(B, L, *obs_shape)``."""

    description: str
    obs_shape: tuple[int, ...]
    image: bool
    n_test_windows: int
    train_windows: Callable[[int, int, int, int], np.ndarray]  # (seed, step, batch, L)
    test_windows: Callable[[np.ndarray, int], np.ndarray]  # (indices, L)
    test_2x: Callable[[np.ndarray, int], np.ndarray] | None = None  # pendulum at 2× rate


def _windows_of(frames: np.ndarray, seqs: np.ndarray, starts: np.ndarray, length: int):
    """Gather ``frames[seqs[i], starts[i]:starts[i] + length]`` → ``(n, length, ...)``."""
    return np.asarray(frames[seqs[:, None], starts[:, None] + np.arange(length)], np.float32)


def _sequence_data(train: np.ndarray, test: np.ndarray, description: str, image: bool,
                   test_len: int, test_2x: np.ndarray | None = None) -> _Data:
    """Random windows of stored training sequences; every window of the test sequences."""
    if image:
        train, test = train[..., None], test[..., None]
        test_2x = None if test_2x is None else test_2x[..., None]
    n_seq, n_frames = test.shape[:2]
    if n_frames < test_len:
        raise ValueError(f"test sequences have {n_frames} frames; n_cond + n_test = {test_len} "
                         "needed.")
    per = n_frames - test_len + 1
    # a fixed shuffled order so that --videos N takes N windows spread over the test set
    order = np.random.default_rng(1234).permutation(n_seq * per)

    def train_windows(seed: int, step: int, batch: int, length: int) -> np.ndarray:
        if train.shape[1] < length:
            raise ValueError(f"training sequences have {train.shape[1]} frames; windows of "
                             f"{length} requested.")
        rng = np.random.default_rng([seed, step, 11])
        seqs = rng.integers(train.shape[0], size=batch)
        starts = rng.integers(0, train.shape[1] - length + 1, size=batch)
        return _windows_of(train, seqs, starts, length)

    def test_windows(idx: np.ndarray, length: int) -> np.ndarray:
        w = order[idx]
        return _windows_of(test, w // per, w % per, length)

    def two_x(idx: np.ndarray, length: int) -> np.ndarray:
        w = order[idx]
        return _windows_of(test_2x, w // per, 2 * (w % per), 2 * length - 1)

    return _Data(description, tuple(test.shape[2:]), image, n_seq * per, train_windows,
                 test_windows, None if test_2x is None else two_x)


def _load_data(name: str, hp: dict[str, Any]) -> _Data:
    """The dataset ``name`` for hyper-parameters ``hp``.

    Raises:
        ValueError: unknown or unreadable data (one line naming it).
    """
    from gantk.data import physics

    k, test_len = hp["n_cond"], hp["n_cond"] + hp["n_test"]
    if name == "waveeq" or name.startswith("waveeq-"):
        pixels = None
        if name != "waveeq":
            tail = name.removeprefix("waveeq-")
            if not tail.isdigit() or int(tail) < 1:
                raise ValueError(f"--data {name!r}: expected waveeq or waveeq-N (N pixels).")
            pixels = int(tail)
        size = hp["size"]
        tr = physics.waveeq("train", size=size, pixels=pixels)
        te = physics.waveeq("test", size=size, pixels=pixels)
        desc = (f"WaveEq{'' if pixels is None else f'-{pixels}'} {size}x{size} (simulated by "
                f"gantk: {len(tr.ids)} train / {len(te.ids)} test sequences of "
                f"{tr.frames.shape[1]} frames)")
        return _sequence_data(tr.frames, te.frames, desc, pixels is None, test_len)
    if name == "pendulum":
        fps, n_frames = float(hp["fps"]), hp["sequence_frames"]
        tr = physics.pendulum(hp["train_sequences"], n_frames, fps=fps, split="train")
        te = physics.pendulum(hp["test_sequences"], test_len, fps=fps, split="test")
        te2 = physics.pendulum(hp["test_sequences"], 2 * test_len - 1, fps=2 * fps,
                               split="test", substeps=20)
        desc = (f"damped pendulum 32x32 at {fps:g} fps (simulated by gantk: "
                f"{hp['train_sequences']} train sequences of {n_frames} frames, "
                f"{hp['test_sequences']} test)")
        return _sequence_data(tr.frames, te.frames, desc, True, test_len, te2.frames)
    if name.startswith(("moving-digits", "moving-mnist:")):
        from gantk.data.video import MovingDigits

        size = hp["size"]
        md = MovingDigits(source=name, size=size if size in (32, 64) else 64,
                          n_frames=k + hp["n_pred"])
        n_test = 5000

        def train_windows(seed: int, step: int, batch: int, length: int) -> np.ndarray:
            return md.sequences(np.random.default_rng([seed, step, 7]), batch,
                                n_frames=length)

        def test_windows(idx: np.ndarray, length: int) -> np.ndarray:
            return np.concatenate([md.test_videos(1, length, start=int(i)) for i in idx])

        return _Data(md.description, (md.size, md.size, 1), True, n_test, train_windows,
                     test_windows)
    raise ValueError(f"--data {name!r}: the pde model accepts waveeq, waveeq-N, pendulum, "
                     "moving-digits, moving-digits-deterministic, moving-mnist:PATH.")


# --------------------------------------------------------------------------------------------
# the Experiment (gantk.models.registry's plug-in interface)


def _check_hparams(hp: dict[str, Any]) -> None:
    """Validate the preset values the model reads (clear error naming the value)."""
    ints = ("n_cond", "n_pred", "n_test", "batch_size", "train_sequences", "sequence_frames",
            "test_sequences", "size")
    for name in ints:
        v = hp[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"--set {name}: expected a positive integer; got {v!r}.")
    for name in ("lr", "fps"):
        if not (isinstance(hp[name], (int, float)) and math.isfinite(hp[name]) and hp[name] > 0):
            raise ValueError(f"--set {name}: expected a positive number; got {hp[name]!r}.")
    for name in ("lambda_pred", "lambda_ae", "lambda_s", "lambda_t"):
        if not (math.isfinite(hp[name]) and hp[name] >= 0):
            raise ValueError(f"--set {name}: expected a non-negative number; got {hp[name]!r}.")
    for name in ("beta1", "beta2"):
        if not 0 <= hp[name] < 1:
            raise ValueError(f"--set {name}: expected a number in [0, 1); got {hp[name]!r}.")
    if hp["offset"] not in (0, hp["n_cond"]):
        raise ValueError(f"--set offset: expected 0 or n_cond={hp['n_cond']}; got "
                         f"{hp['offset']!r}.")


def _figure_array(fig: Any) -> np.ndarray:
    """Render a matplotlib figure to an ``(H, W, 3)`` array in [0, 1] and close it."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0
    plt.close(fig)
    return img


def _tile(rows: list[np.ndarray], labels: list[str], title: str) -> np.ndarray:
    """Rows of frames ``(T, *obs)`` as a labelled figure array (pixel data as a P×T map)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_t = max(len(r) for r in rows)
    image = rows[0].ndim == 4
    fig, axes = plt.subplots(len(rows), 1 if not image else n_t, squeeze=False,
                             figsize=((0.75 * n_t if image else 6.0) + 1.2,
                                      0.8 * len(rows) + 0.5 if image else 1.3 * len(rows) + 0.5))
    for i, (r, lab) in enumerate(zip(rows, labels, strict=True)):
        if image:
            for j in range(n_t):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(r):
                    ax.imshow(np.clip(r[j, ..., 0], 0, 1), cmap="gray", vmin=0, vmax=1)
                else:
                    ax.axis("off")
            axes[i, 0].set_ylabel(lab, rotation=0, ha="right", va="center", fontsize=7)
        else:
            ax = axes[i, 0]
            ax.imshow(np.clip(np.asarray(r).T, 0, 1), aspect="auto", cmap="viridis",
                      vmin=0, vmax=1)
            ax.set_ylabel(lab, fontsize=7)
            ax.set_xlabel("frame", fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _figure_array(fig)


class PDEExperiment:
    """The PDE-driven model on one dataset, as :mod:`gantk.models.train` drives it.

    Built by :func:`build` from a :class:`~gantk.models.registry.RunSpec`; implements the
    :class:`~gantk.models.registry.Experiment` interface (init, train_batch, loss, strip,
    evaluate). The model is deterministic: ``evaluate`` draws one prediction per window
    whatever ``samples`` is.
    """

    def __init__(self, spec: Any) -> None:
        hp = dict(spec.hparams)
        _check_hparams(hp)
        self.spec, self.hp, self.seed = spec, hp, int(spec.seed)
        self.data = _load_data(spec.data, hp)
        self.model = PDEModel(
            obs_shape=self.data.obs_shape, n_cond=hp["n_cond"], s_dim=hp["s_dim"],
            t_dim=hp["t_dim"], combiner=hp["combiner"], arch=hp["arch"],
            enc_hidden=hp["enc_hidden"], enc_layers=hp["enc_layers"],
            dec_hidden=hp["dec_hidden"], dec_layers=hp["dec_layers"], nf=hp["nf"],
            n_blocks=hp["n_blocks"], res_hidden=hp["res_hidden"], gain=float(hp["gain"]),
            method=hp["method"], tied=bool(hp["tied"]), init_std=float(hp["init_std"]))
        _check_model(self.model)
        self.description = self.data.description
        self.optimizer = optax.adam(hp["lr"], b1=hp["beta1"], b2=hp["beta2"])
        self.length = hp["n_cond"] + hp["n_pred"]
        self._loss_kw = dict(offset=hp["offset"], lambda_pred=hp["lambda_pred"],
                             lambda_ae=hp["lambda_ae"], lambda_s=hp["lambda_s"],
                             lambda_t=hp["lambda_t"])
        self._predict = jax.jit(self._predict_impl, static_argnames=("n_frames", "rate"))

    # ---- training
    def init(self, key: jax.Array) -> tuple[Any, Any]:
        """Initial ``({"params": ...}, model_state)`` (``batch_stats`` for DCGAN nets)."""
        x = jnp.zeros((1, self.hp["n_cond"]) + self.data.obs_shape, jnp.float32)
        variables = dict(self.model.init(key, x))
        params = {"params": variables.pop("params")}
        return params, variables

    def train_batch(self, step: int) -> np.ndarray:
        """Random training windows ``(B, n_cond + n_pred, *obs)`` of step ``step``."""
        return self.data.train_windows(self.seed, step, self.hp["batch_size"], self.length)

    def loss(self, params: Any, model_state: Any, batch: Array, key: jax.Array):
        """:func:`pde_loss` with the preset's weights: ``(loss, (terms, model_state))``."""
        return pde_loss(self.model, {**params, **model_state}, batch, key, **self._loss_kw)

    # ---- prediction
    def _predict_impl(self, params: Any, cond: Array, s_cond: Array | None = None, *,
                      n_frames: int, rate: int = 1) -> Array:
        """Frames after the conditioning ones: ``(B, rate·(n_frames−1)+1, *obs)`` from the
        first predicted frame ``k+1`` on (S from ``s_cond`` when given: content swap)."""
        off = self.hp["offset"]
        s = self.model.apply(params, cond if s_cond is None else s_cond,
                             method=PDEModel.encode_s)
        t0 = self.model.apply(params, cond, method=PDEModel.encode_t)
        frames, _ = rollout(self.model, params, s, t0, n_frames + off, rate=rate)
        return frames[:, rate * off:]

    def predict(self, params: Any, cond: Array, n_frames: int, *, rate: int = 1,
                s_cond: Array | None = None) -> np.ndarray:
        """Predict ``n_frames`` frames after ``cond`` ``(B, k, *obs)`` (numpy output)."""
        return np.asarray(self._predict(params, jnp.asarray(cond), None if s_cond is None
                                        else jnp.asarray(s_cond), n_frames=n_frames,
                                        rate=rate))

    def strip(self, params: Any, model_state: Any, key: jax.Array) -> np.ndarray:
        """Two test windows: ground truth above prediction (conditioning frames included)."""
        k, n = self.hp["n_cond"], self.hp["n_pred"]
        x = self.data.test_windows(np.arange(2), k + n)
        pred = self.predict({**params, **model_state}, x[:, :k], n)
        rows, labels = [], []
        for i in range(2):
            rows += [x[i], np.concatenate([x[i, :k], pred[i]])]
            labels += [f"true {i}", f"pred {i}"]
        return _tile(rows, labels, f"{k} conditioning frames, then {n} predicted")

    # ---- evaluation
    def evaluate(self, params: Any, model_state: Any, *, samples: int, videos: int | None,
                 key: jax.Array, progress: bool) -> Any:
        """Test protocol: ``n_cond → n_test`` frames on every test window (or ``videos``).

        Per predicted frame: MSE (mean over pixels) of the model and of the copy-last-frame
        baseline, PSNR/SSIM for image data, with 95% intervals over windows; the content-swap
        disentanglement numbers (:meth:`disentanglement`); for the pendulum, 2× frame-rate
        generation against linear interpolation (:meth:`frame_rate`).
        """
        from tqdm.auto import tqdm

        from gantk.models.evaluate import frame_metrics, mean_ci
        from gantk.models.registry import EvalResult

        params = {**params, **model_state}  # the model's variables
        k, n = self.hp["n_cond"], self.hp["n_test"]
        total = self.data.n_test_windows if videos is None else min(videos,
                                                                    self.data.n_test_windows)
        per: dict[str, list[np.ndarray]] = {}
        chunk = 128
        for start in tqdm(range(0, total, chunk), disable=not progress, desc="evaluate"):
            x = self.data.test_windows(np.arange(start, min(start + chunk, total)), k + n)
            pred = np.clip(self.predict(params, x[:, :k], n), 0.0, 1.0)
            truth, last = x[:, k:], np.repeat(x[:, k - 1 : k], n, axis=1)
            axes = tuple(range(2, x.ndim))
            vals = {"mse": ((pred - truth) ** 2).mean(axes),
                    "mse_copy_last": ((last - truth) ** 2).mean(axes)}
            if self.data.image and min(self.data.obs_shape[:2]) >= 11:
                flat, shape = (-1,) + self.data.obs_shape, truth.shape[:2]  # dm-pix: NHWC
                m, c = ({name: np.asarray(v).reshape(shape) for name, v in
                         frame_metrics(a.reshape(flat), truth.reshape(flat)).items()}
                        for a in (pred, last))
                vals.update(psnr=m["psnr"], ssim=m["ssim"], psnr_copy_last=c["psnr"],
                            ssim_copy_last=c["ssim"])
            for name, v in vals.items():
                per.setdefault(name, []).append(np.asarray(v, np.float64))
        per_arr = {name: np.concatenate(v) for name, v in per.items()}  # (windows, n)
        cols = list(per_arr)
        rows = []
        for f in range(n):
            row: dict[str, Any] = {"frame": f + 1}
            for name in cols:
                m_, h_ = mean_ci(per_arr[name][:, f])
                row[name], row[f"{name}_ci95"] = float(m_), float(h_)
            rows.append(row)
        means = {}
        for name in cols:
            m_, h_ = mean_ci(per_arr[name].mean(1))
            means[name] = {"mean": float(m_), "ci95": float(h_)}
        mse_ratio = means["mse"]["mean"] / max(means["mse_copy_last"]["mean"], 1e-30)
        images: dict[str, np.ndarray] = {}
        swap, images["swap"] = self.disentanglement(params, min(total, 256))
        summary: dict[str, Any] = {
            "means": means, "mse_over_copy_last": mse_ratio, "disentanglement": swap,
            "protocol": {"conditioning_frames": k, "predicted_frames": n, "windows": total,
                         "samples": 1, "note": "deterministic model: one prediction per "
                         "window (--samples is ignored); MSE is the mean over pixels of each "
                         "frame, averaged over windows", "offset": self.hp["offset"]},
            "data": self.description,
        }
        if self.data.test_2x is not None:
            if self.model.tied:
                summary["frame_rate"], images["frame_rate"] = self.frame_rate(
                    params, min(total, 256))
            else:
                summary["frame_rate"] = "skipped: 2x generation needs tied=True"
        panels = {"MSE": ["mse", "mse_copy_last"]}
        if "psnr" in per_arr:
            panels.update(PSNR=["psnr", "psnr_copy_last"], SSIM=["ssim", "ssim_copy_last"])
        columns = ("frame", *cols, *(f"{c}_ci95" for c in cols))
        return EvalResult(rows=rows, columns=columns, summary=summary, panels=panels,
                          images=images)

    def disentanglement(self, params: Any, n: int) -> tuple[dict[str, Any], np.ndarray]:
        """Content swap between test windows ``A`` and ``B = π(A)`` (a fixed derangement).

        ``x̂_{AB} = D(S_A, T_B(t))`` is predicted with A's content and B's dynamics. Numbers
        (ratios of means over the ``n`` pairs, predicted frames only):

        - ``follow_T = MSE(x̂_{AB}, x_B) / MSE(x_A, x_B)``: how far the swap is from the
          T-donor's true future, relative to the distance between the two true futures. 0:
          the frames follow B's dynamics (phase) exactly; 1: no closer to B than A is.
        - ``share_S = MSE(x̂_{AB}, x̂_{BB}) / MSE(x̂_{AA}, x̂_{BB})``: the part of the difference
          between the two predictions carried by ``S`` (0: S changes nothing; 1: everything).

        Returns:
            ``(numbers, figure array)``.
        """
        k, m = self.hp["n_cond"], self.hp["n_test"]
        n = max(2, n)
        x = self.data.test_windows(np.arange(n), k + m)
        perm = np.roll(np.arange(n), n // 2)  # pairs windows far apart in the shuffled order
        xa, xb = x, x[perm]
        aa = self.predict(params, xa[:, :k], m)
        bb = aa[perm]
        ab = self.predict(params, xb[:, :k], m, s_cond=xa[:, :k])  # S from A, T from B

        def mse(u: np.ndarray, v: np.ndarray) -> float:
            return float(np.mean((np.clip(u, 0, 1) - v) ** 2))

        out = {
            "follow_T": mse(ab, xb[:, k:]) / mse(xa[:, k:], xb[:, k:]),
            "share_S": mse(ab, bb) / mse(aa, bb),
            "mse_swap_vs_T_donor_truth": mse(ab, xb[:, k:]),
            "mse_swap_vs_S_donor_truth": mse(ab, xa[:, k:]),
            "mse_between_true_futures": mse(xa[:, k:], xb[:, k:]),
            "pairs": n,
            "definition": "follow_T = MSE(D(S_A,T_B), x_B)/MSE(x_A, x_B); share_S = "
                          "MSE(D(S_A,T_B), D(S_B,T_B))/MSE(D(S_A,T_A), D(S_B,T_B)); "
                          "predicted frames, ratios of means over pairs",
        }
        step = max(1, m // 10)
        sel = slice(0, m, step)
        rows = [xa[0, k:][sel], xb[0, k:][sel], ab[0][sel], bb[0][sel]]
        labels = ["true A", "true B", "S_A, T_B", "S_B, T_B"]
        fig = _tile(rows, labels, f"content swap (every {step} predicted frames): "
                    f"follow_T = {out['follow_T']:.3f}, share_S = {out['share_S']:.3f}")
        return out, fig

    def frame_rate(self, params: Any, n: int) -> tuple[dict[str, Any], np.ndarray]:
        """Generate at 2× the training frame rate (twice the sub-steps per interval).

        The in-between frames ``t + ½`` of consecutive predicted frames are scored against
        the simulator's true 2×-rate frames, beside the linear interpolation
        ``½(x̂_t + x̂_{t+1})`` of the model's 1× frames and of the true frames.
        """
        k, m = self.hp["n_cond"], self.hp["n_test"]
        x = self.data.test_windows(np.arange(n), k + m)
        x2 = self.data.test_2x(np.arange(n), k + m)  # (n, 2(k+m)−1, ...)
        one = np.clip(self.predict(params, x[:, :k], m), 0, 1)  # frames k+1 … k+m
        two = np.clip(self.predict(params, x[:, :k], m, rate=2), 0, 1)  # k+1, k+1.5, …
        truth_mid = x2[:, 2 * k + 1 : 2 * (k + m) - 1 : 2]  # k+1.5 … k+m−½ (0-based ×2)
        model_mid = two[:, 1::2]
        interp = 0.5 * (one[:, :-1] + one[:, 1:])
        true_interp = 0.5 * (x[:, k:-1] + x[:, k + 1 :])

        def mse(u: np.ndarray, v: np.ndarray) -> float:
            return float(np.mean((u - v) ** 2))

        out = {
            "mse_inbetween_model_2x": mse(model_mid, truth_mid),
            "mse_inbetween_linear_interp": mse(interp, truth_mid),
            "mse_inbetween_linear_interp_of_true_frames": mse(true_interp, truth_mid),
            "mse_integer_frames_2x_vs_1x": mse(two[:, ::2], one),
            "mse_integer_frames_1x": mse(one, x[:, k:]),
            "inbetween_frames": int(truth_mid.shape[1]), "sequences": n,
        }
        sel = slice(0, min(12, 2 * m - 1))
        rows = [x2[0, 2 * k :][sel], two[0][sel],
                np.stack([one[0, i // 2] if i % 2 == 0 else interp[0, i // 2]
                          for i in range(2 * m - 1)])[sel]]
        fig = _tile(rows, ["true 2x", "model 2x", "linear interp"],
                    "2x frame rate: in-between MSE model "
                    f"{out['mse_inbetween_model_2x']:.4f} vs linear interpolation "
                    f"{out['mse_inbetween_linear_interp']:.4f}")
        return out, fig


def build(spec: Any) -> PDEExperiment:
    """The registry's entry point: a :class:`PDEExperiment` for ``spec``.

    Raises:
        ValueError: bad data name or hyper-parameters (one line naming the value).
    """
    return PDEExperiment(spec)
