"""DCGAN frame encoder and decoder (Radford et al. 2016) as used by SRVP and the PDE model.

Mirrors ``module/conv.py`` of the SRVP code for 64×64 frames, generalized to 32×32 (one
stride-2 block fewer):

- encoder: ``4×4`` stride-2 convolutions ``nf → 2nf → 4nf → 8nf`` (no bias, LeakyReLU 0.2,
  BatchNorm after all but the first), then a ``4×4`` valid convolution to ``nh``, BatchNorm,
  tanh. Input ``(N, H, W, C)`` in [0, 1], output ``(N, nh)``.
- decoder: the mirror with transposed convolutions from ``(N, n_in)`` (a ``4×4`` one to
  ``8nf`` channels, BatchNorm, LeakyReLU, then stride-2 ones), returning **logits**
  ``(N, H, W, C)`` (apply a sigmoid for frames in [0, 1]).
- weights initialized N(0, 0.02) as in the SRVP code.

Frames are channels-last (flax convention). BatchNorm uses batch statistics when
``train=True`` (state collection ``batch_stats``, momentum 0.9 = PyTorch's 0.1, eps 1e-5).

**Speed on CPU.** XLA:CPU differentiates strided and transposed (input-dilated) convolutions
slowly (the weight gradient of a ``4×4`` stride-2 convolution costs ~10× its forward pass).
With ``impl="matmul"`` (the default) every layer is computed exactly as the same
convolution re-expressed as one matrix product, in one of two forms per layer shape:

- a stride-2 ``4×4`` convolution (:func:`conv4x4_s2`) cuts the padded input into 2×2
  blocks (space-to-depth); *im2col* concatenates the 4 shifted block windows and multiplies
  by the rearranged kernel; *col2im* multiplies every block by the 4 block kernels and sums
  the 4 shifted products;
- a stride-2 transposed convolution (:func:`conv_transpose4x4_s2`, sub-pixel form with 4
  output phases and depth-to-space) multiplies every input pixel by all 16 taps and sums
  the 4 shifted products per phase (*col2im*, exact arithmetic, the way PyTorch's CPU
  transposed convolution works), in chunks of frames (``jax.lax.map``) so that the
  ``16·O``-wide product stays in cache (2–4× faster than one matmul over the batch);
- the valid ``4×4`` layers at the ``1×1`` ends are plain matmuls.

The gradients of the col2im forms are written by hand (``jax.custom_vjp``; XLA's gradient
of the shifted sums is a slow scatter-like loop): a transposed convolution's input and kernel
gradients are one matmul each with the ``4×4`` stride-2 windows of the output gradient (in
chunks of frames, the kernel gradient summed over them), and a col2im stride-2
convolution's are two matmuls with the output gradient padded four ways. Kernel gradients
``aᵀb`` of tall operands of unequal widths run as a batch of row blocks (``_gram``). The
im2col forms keep XLA's gradients (matmuls, slices and pads). On the paper decoder
(240 frames, forward + backward) this went from 3.4 to 2.3 s, the paper SRVP step from 5.9 to
4.6 s (interleaved in one process); chunking the gradients took the PDE model's Moving MNIST
step at batch 128 from 29.0 to 26.0 s and SRVP nf16 at batch 16 from 0.59 to 0.55 s. The
convolution form is picked by channel count and frame size from per-layer timings on 2-core
AVX2 and AVX-512 CPUs (col2im for a stride-2 convolution with at most twice as many output
channels as input ones and an output of 16 or more pixels a side); all forms are exact
(tested). The parameter trees are those of ``flax.linen.Conv``/``ConvTranspose`` (same
names, shapes and meaning), so checkpoints are interchangeable with ``impl="lax"`` (the
flax layers), and the outputs agree to float32 rounding (tested). ``benchmarks/srvp.py
--components`` times both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

__all__ = ["DCGANDecoder", "DCGANEncoder", "GroupBatchNorm", "check_frame_size",
           "conv4x4_s2", "conv_transpose4x4_s2"]

_INIT = nn.initializers.normal(0.02)
_IMPLS = ("matmul", "lax")
# Which of two exact matmul forms a stride-2 convolution uses, and how a transposed one is
# chunked (same values; chosen from timings of each layer's forward + backward on a 2-core
# AVX2 CPU): im2col copies the input windows side by side (cheap for few channels), col2im
# multiplies the input once and sums shifted products (cheap for a large frame)
_MIN_CHUNK_OUT = 8  # transposed convolutions with fewer output channels: not chunked
_CHUNK_FLOATS = 2 ** 19  # size of the matmul product per chunk of a transposed convolution
_COL2IM_MIN_SIZE = 16  # stride-2 convolutions with this output size and O <= 2C: col2im
# (im2col's copy grows with C, col2im's shifted sums with O). Forward + backward, 2-core
# AVX-512 EPYC, ms, im2col vs col2im: 128 frames 64->32 px C=3 O=64 24 vs 78, C=16 O=64 119
# vs 117; 32->16 px C=8 O=128 16 vs 40, C=16 O=128 38 vs 73, C=32 O=128 113 vs 140, C=64
# O=128 175 vs 110; 240 frames 32->16 px C=16 O=32 48 vs 21, C=32 O=64 97 vs 61, C=5 O=64
# 18 vs 38. The PDE encoder's first layer (5 stacked frames, C=5 O=64) was col2im: now
# im2col, the encoder 418 -> 350-380 ms per call of 128 windows, the step at batch 16 -7%.
# kernel gradients aᵀb of tall matrices whose widths differ by 4× or more run as a batch of
# row blocks of ~_GRAM_ROWS rows, the narrow operand first (then summed): 1.5-2.5× faster
# than one dot with a long contraction on the same CPU (e.g. 61440×1024 by 61440×128:
# 59 -> 102 GFLOP/s)
_GRAM_ROWS = 30720
# the gradient of a transposed convolution runs in chunks of frames with about this many
# 4×4 windows of the output gradient each (a 16x16 128->64 layer's fwd+bwd over 240 frames
# 0.92 -> 0.73 s, over 1920 frames 7.6 -> 5.5 s)
_GRAD_CHUNK_ROWS = 7680


def check_frame_size(size: int) -> int:
    """Number of stride-2 blocks for a frame size (3 for 32, 4 for 64).

    Raises:
        ValueError: ``size`` not 32 or 64.
    """
    if size not in (32, 64):
        raise ValueError(f"`size` (frame size) must be 32 or 64; got {size!r}")
    return 3 if size == 32 else 4


def _check_impl(impl: str) -> None:
    if impl not in _IMPLS:
        raise ValueError(f"`impl` must be one of {_IMPLS}; got {impl!r}")


def _s2_im2col(x: Float[Array, "N H W C"]) -> Float[Array, "M 16C"]:
    """The ``4×4`` stride-2 (pad 1) windows of ``x`` as rows ``(N·H/2·W/2, 16C)``, columns
    ordered ``(a, b, p, q, C)``: block offset ``(a, b)``, pixel ``(p, q)`` in the 2×2 block,
    i.e. kernel tap ``(2a + p, 2b + q)`` (see :func:`_s2_kernel`)."""
    n, h, w, c = x.shape
    ho, wo = h // 2, w // 2
    blocks = _s2_blocks(x)
    return jnp.concatenate([blocks[:, a:a + ho, b:b + wo] for a in range(2) for b in range(2)],
                           -1).reshape(-1, 16 * c)


def _s2_blocks(x: Float[Array, "N H W C"]) -> Float[Array, "N H/2+1 W/2+1 4C"]:
    """``x`` zero-padded by one and cut into 2×2 blocks (space-to-depth, ``(p, q, C)``)."""
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    blocks = xp.reshape(n, h // 2 + 1, 2, w // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return blocks.reshape(n, h // 2 + 1, w // 2 + 1, 4 * c)


def _s2_kernel(kernel: Float[Array, "4 4 C O"]) -> Float[Array, "16C O"]:
    """A ``(4, 4, C, O)`` kernel as the ``(16C, O)`` matrix matching :func:`_s2_im2col`."""
    c, o = kernel.shape[2:]
    return kernel.reshape(2, 2, 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(16 * c, o)


def _s2_kernel_inverse(mat: Float[Array, "16C O"]) -> Float[Array, "4 4 C O"]:
    """Inverse of :func:`_s2_kernel`."""
    c, o = mat.shape[0] // 16, mat.shape[1]
    return mat.reshape(2, 2, 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(4, 4, c, o)


def _gram(a: Float[Array, "M P"], b: Float[Array, "M Q"]) -> Float[Array, "P Q"]:
    """``aᵀb`` (exact), as a sum over row blocks for tall operands of unequal widths."""
    m, p = a.shape
    q = b.shape[1]
    if m % 2 or m < 4096 or max(p, q) < max(256, 4 * min(p, q)):
        return a.T @ b
    s = 2
    while m % (2 * s) == 0 and m // (2 * s) >= _GRAM_ROWS:
        s *= 2
    if q < p:
        return jnp.einsum("smq,smp->sqp", b.reshape(s, -1, q), a.reshape(s, -1, p)).sum(0).T
    return jnp.einsum("smp,smq->spq", a.reshape(s, -1, p), b.reshape(s, -1, q)).sum(0)


def conv4x4_s2(x: Float[Array, "N H W C"], kernel: Float[Array, "4 4 C O"]
               ) -> Float[Array, "N H/2 W/2 O"]:
    """``flax.linen.Conv(O, (4, 4), strides=2, padding=1, use_bias=False)`` as one matmul.

    The zero-padded input is cut into 2×2 blocks (space-to-depth, ``4C`` channels); output
    pixel ``(i, j)`` sees blocks ``(i + a, j + b)``, ``a, b ∈ {0, 1}``, with kernel tap
    ``(2a + p, 2b + q)`` on the block's pixel ``(p, q)``.

    Args:
        x: ``(N, H, W, C)`` with ``H``, ``W`` even.
        kernel: ``(4, 4, C, O)`` in flax's ``HWIO`` layout.

    Raises:
        ValueError: odd ``H``/``W`` or a kernel that is not ``(4, 4, C, O)``.
    """
    n, h, w, c = x.shape
    if h % 2 or w % 2 or kernel.shape[:3] != (4, 4, c):
        raise ValueError(f"conv4x4_s2 needs even H, W and a (4, 4, {c}, O) kernel; got x "
                         f"{x.shape}, kernel {kernel.shape}")
    if 2 * c >= kernel.shape[-1] and h // 2 >= _COL2IM_MIN_SIZE:
        return _col2im_conv(x, kernel)
    # im2col: the 4 shifted block windows side by side times the rearranged kernel
    return (_s2_im2col(x) @ _s2_kernel(kernel)).reshape(n, h // 2, w // 2, -1)


@jax.custom_vjp
def _col2im_conv(x: Array, kernel: Array) -> Array:
    """col2im form of :func:`conv4x4_s2`: every 2×2 block times the 4 block kernels (one
    matmul), then the 4 products that land on an output pixel summed from shifted windows."""
    n, h, w, c = x.shape
    ho, wo = h // 2, w // 2
    k6 = kernel.reshape(2, 2, 2, 2, c, -1)  # (a, p, b, q, C, O): tap (2a + p, 2b + q)
    kb = k6.transpose(1, 3, 4, 0, 2, 5).reshape(4 * c, -1)  # (p, q, C) × (a, b, O)
    prod = (_s2_blocks(x).reshape(-1, 4 * c) @ kb).reshape(n, ho + 1, wo + 1, 2, 2, -1)
    return sum(prod[:, a:a + ho, b:b + wo, a, b] for a in range(2) for b in range(2))


def _col2im_conv_fwd(x: Array, kernel: Array) -> tuple[Array, tuple[Array, Array]]:
    return _col2im_conv(x, kernel), (x, kernel)


def _col2im_conv_bwd(res: tuple[Array, Array], dy: Array) -> tuple[Array, Array]:
    # the gradient of the shifted sums is dy zero-padded four ways (one per block offset
    # (a, b)); then one matmul each for the blocks' and the kernel's gradients
    x, kernel = res
    n, h, w, c = x.shape
    ho, wo, o = h // 2, w // 2, kernel.shape[-1]
    dprod = jnp.stack([jnp.pad(dy, ((0, 0), (a, 1 - a), (b, 1 - b), (0, 0)))
                       for a in range(2) for b in range(2)], 3).reshape(-1, 4 * o)
    k6 = kernel.reshape(2, 2, 2, 2, c, o)
    kb = k6.transpose(1, 3, 4, 0, 2, 5).reshape(4 * c, 4 * o)
    blocks = _s2_blocks(x).reshape(-1, 4 * c)
    dk = _gram(blocks, dprod).reshape(2, 2, c, 2, 2, o).transpose(3, 0, 4, 1, 2, 5)
    dblocks = (dprod @ kb.T).reshape(n, ho + 1, wo + 1, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    dx = dblocks.reshape(n, h + 2, w + 2, c)[:, 1:-1, 1:-1]
    return dx.astype(x.dtype), dk.reshape(4, 4, c, o).astype(kernel.dtype)


_col2im_conv.defvjp(_col2im_conv_fwd, _col2im_conv_bwd)


def conv_transpose4x4_s2(x: Float[Array, "N H W C"], kernel: Float[Array, "4 4 C O"]
                         ) -> Float[Array, "N 2H 2W O"]:
    """``flax.linen.ConvTranspose(O, (4, 4), strides=2, padding=2, use_bias=False)`` as one
    matmul (= PyTorch's ``ConvTranspose2d(4, stride=2, padding=1)`` up to the kernel flip).

    Output pixel ``(2m + r, 2l + s)`` (phase ``(r, s)``) is
    ``Σ_{d,e∈{0,1}} x̃[m + r + d, l + s + e] · K[2d + r, 2e + s]`` with ``x̃`` the input
    zero-padded by one: every input pixel times all 16 taps (one ``(C, 16O)`` matmul), the 4
    shifted products of each phase summed, then the phases interleaved (depth-to-space).
    With 8 or more output channels this runs in chunks of frames of ~2 MB of product each.

    Its gradient is written by hand (``jax.custom_vjp``): the input gradient of a transposed
    convolution is the stride-2 convolution of the output gradient with the flipped,
    channel-transposed kernel, ``dx[m] = Σ_j dy_pad[2m + j] · K[3 − j]ᵀ``, and the kernel
    gradient is ``dK[3 − j] = Σ_m x[m] ⊗ dy_pad[2m + j]``; both are one matmul each with the
    ``4×4`` stride-2 windows of ``dy`` (exact arithmetic), in chunks of frames of ~7,680
    windows when the output has 8 or more channels. It is jit-, vmap- and
    grad-friendly (also grad of grad) but reverse mode only: ``jax.jvp``/``jacfwd`` raise.

    Args:
        x: ``(N, H, W, C)``.
        kernel: ``(4, 4, C, O)`` in flax's ``HWIO`` layout (not flipped).

    Raises:
        ValueError: a kernel that is not ``(4, 4, C, O)``.
    """
    if kernel.shape[:3] != (4, 4, x.shape[-1]):
        raise ValueError(f"conv_transpose4x4_s2 needs a (4, 4, {x.shape[-1]}, O) kernel; got "
                         f"{kernel.shape}")
    return _conv_transpose(x, kernel)


def _col2im_transpose(x: Array, kernel: Array) -> Array:
    """The transposed convolution in col2im form (exact work): every input pixel times all 16
    taps in one matmul, then each output phase ``(r, s)`` sums the 4 products that reach it
    from shifted input pixels, and the phases are interleaved (depth-to-space)."""
    n, h, w, c = x.shape
    o = kernel.shape[-1]
    k6 = kernel.reshape(2, 2, 2, 2, c, o)  # (d, r, e, s, C, O)
    prod = x.reshape(-1, c) @ k6.transpose(4, 0, 1, 2, 3, 5).reshape(c, 16 * o)
    prod = jnp.pad(prod.reshape(n, h, w, 2, 2, 2, 2, o),
                   ((0, 0), (1, 1), (1, 1)) + ((0, 0),) * 5)
    phases = [[sum(prod[:, r + d:r + d + h, s + e:s + e + w, d, r, e, s]
                   for d in range(2) for e in range(2)) for s in range(2)]
              for r in range(2)]
    out = jnp.stack([jnp.stack(row, 3) for row in phases], 2)  # (N, H, r, W, s, O)
    return out.reshape(n, 2 * h, 2 * w, o)


def _in_chunks(f: Callable[..., Any], xs: tuple[Array, ...], rows: int) -> Any:
    """``f`` (frame-wise, batch axis 0 of every argument) applied to chunks of frames of
    ``xs`` with about ``rows`` pixel rows each (``jax.lax.map``; the remainder in one more
    call), so that the matmul's product stays in cache instead of round-tripping through
    memory. Every output leaf of ``f`` is concatenated over the chunks along axis 0."""
    n, h, w = xs[0].shape[:3]
    bs = max(1, min(n, rows // (h * w)))
    m = n // bs * bs
    if bs == n:
        return f(*xs)
    ys = jax.lax.map(lambda ch: f(*ch), tuple(x[:m].reshape(n // bs, bs, *x.shape[1:])
                                               for x in xs))
    ys = jax.tree.map(lambda y: y.reshape(-1, *y.shape[2:]), ys)
    if m == n:
        return ys
    return jax.tree.map(lambda y, r: jnp.concatenate([y, r]), ys, f(*(x[m:] for x in xs)))


@jax.custom_vjp
def _conv_transpose(x: Array, kernel: Array) -> Array:
    o = kernel.shape[-1]
    if o < _MIN_CHUNK_OUT:  # a thin output: one matmul over the whole batch is faster
        return _col2im_transpose(x, kernel)
    # chunks whose 16·O-wide product is ~2 MB (at least 256 rows for the matmul's sake)
    return _in_chunks(lambda xc: _col2im_transpose(xc, kernel), (x,),
                      max(256, _CHUNK_FLOATS // (16 * o)))


def _conv_transpose_fwd(x: Array, kernel: Array) -> tuple[Array, tuple[Array, Array]]:
    return _conv_transpose(x, kernel), (x, kernel)


def _conv_transpose_bwd(res: tuple[Array, Array], dy: Array) -> tuple[Array, Array]:
    x, kernel = res
    n, h, w, c = x.shape
    flipped = _s2_kernel(kernel[::-1, ::-1].transpose(0, 1, 3, 2))  # K[3 − j]ᵀ: (16·O, C)

    def grads(xc: Array, dyc: Array) -> tuple[Array, Array]:
        windows = _s2_im2col(dyc)  # (frames·H·W, 16·O): dy_pad[2m + j] for the 16 offsets j
        return _gram(windows, xc.reshape(-1, c))[None], (windows @ flipped).reshape(xc.shape)

    # chunks of frames (~_GRAD_CHUNK_ROWS windows each; thin outputs in one piece): the
    # input gradient stacked, the kernel gradient summed over them
    rows = n * h * w if kernel.shape[-1] < _MIN_CHUNK_OUT else _GRAD_CHUNK_ROWS
    dks, dx = _in_chunks(grads, (x, dy), rows)  # chunks sized by x's pixels = windows
    dflipped = _s2_kernel_inverse(dks.sum(0))  # (4, 4, O, C)
    return (dx.astype(x.dtype),
            dflipped[::-1, ::-1].transpose(0, 1, 3, 2).astype(kernel.dtype))


_conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


class _Conv4x4(nn.Module):
    """A bias-free ``4×4`` (transposed) convolution with flax's parameter tree (``kernel``).

    ``kind``: ``down`` (stride 2, pad 1), ``up`` (transposed, stride 2, flax padding 2),
    ``valid`` (``4×4`` input → ``1×1``), ``first`` (transposed, ``1×1`` input → ``4×4``).
    """

    features: int
    kind: str
    impl: str = "matmul"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = x.shape[-1]
        # float32 parameters as flax.linen.Conv's default param_dtype (also under x64)
        k = self.param("kernel", _INIT, (4, 4, c, self.features), jnp.float32)
        x, k = nn.dtypes.promote_dtype(x, k, dtype=None)  # as flax.linen.Conv does
        dn = ("NHWC", "HWIO", "NHWC")
        fast = self.impl == "matmul"
        if self.kind == "down":
            if fast:
                return conv4x4_s2(x, k)
            return lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                            dimension_numbers=dn)
        if self.kind == "up":
            if fast:
                return conv_transpose4x4_s2(x, k)
            return lax.conv_transpose(x, k, (2, 2), ((2, 2), (2, 2)), dimension_numbers=dn)
        if self.kind == "valid":  # (N, 4, 4, C) -> (N, 1, 1, O)
            if fast:
                return (x.reshape(x.shape[0], 16 * c) @ k.reshape(16 * c, -1))[:, None, None]
            return lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=dn)
        # "first": (N, 1, 1, C) -> (N, 4, 4, O); flax's VALID transposed convolution of a 1×1
        # input puts tap K[3 - a, 3 - b] at output pixel (a, b)
        if fast:
            return jnp.einsum("nc,abco->nabo", x[:, 0, 0], k[::-1, ::-1])
        return lax.conv_transpose(x, k, (1, 1), "VALID", dimension_numbers=dn)


def _bn(train: bool, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def _check_groups(groups: Any, n: int) -> int:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or n % groups:
        raise ValueError(f"`groups` must be a positive integer dividing the batch {n}; got "
                         f"{groups!r}")
    return groups


class GroupBatchNorm(nn.Module):
    """BatchNorm (Ioffe & Szegedy, ICML 2015) with statistics per group of consecutive
    frames, as if every group went through ``flax.linen.BatchNorm`` in its own call.

    The authors' PDE code decodes each time step in its own decoder call, so in training
    BatchNorm normalizes each time step's ``B`` frames by their own mean and variance;
    decoding all ``F·B`` frames at once (one big matmul per layer) with ``groups = F`` gives
    the same outputs. Variables, initial values and arithmetic are those of
    ``nn.BatchNorm(momentum=0.9, epsilon=1e-5)`` on the last axis (biased "fast" variance
    ``E[x²] − E[x]²`` clipped at 0), and the running averages end as after ``groups``
    sequential updates in group order: ``r ← m^G·r + (1 − m)·Σ_g m^(G−1−g)·stat_g``.
    With ``groups = 1`` it equals ``nn.BatchNorm`` to float rounding (the DCGAN decoder then
    uses ``nn.BatchNorm`` itself).

    Attributes:
        groups: number of groups ``G`` (``N`` must be a multiple of it); frames
            ``[g·N/G, (g + 1)·N/G)`` form group ``g``.
        momentum: running-average decay ``m`` (flax convention; PyTorch's is ``1 − m``).
        epsilon: added to the variance.
    """

    groups: int = 1
    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: Float[Array, "N ... C"], use_running_average: bool
                 ) -> Float[Array, "N ... C"]:
        """Normalize ``x`` (``(N, ..., C)``, features last).

        Raises:
            ValueError: ``groups`` not a positive integer dividing ``N``.
        """
        g = _check_groups(self.groups, x.shape[0])
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), (c,))
        ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), (c,))
        dtype = jnp.promote_types(x.dtype, jnp.float32)
        xg = x.astype(dtype).reshape(g, -1, c)
        if use_running_average:
            mean, var = ra_mean.value[None, None], ra_var.value[None, None]
        else:
            mean = xg.mean(1, keepdims=True)  # (G, 1, C)
            var = jnp.maximum(0.0, (xg * xg).mean(1, keepdims=True) - mean * mean)
            if not self.is_initializing():
                m = self.momentum
                w = (1 - m) * m ** jnp.arange(g - 1, -1, -1, dtype=dtype)  # oldest group first
                ra_mean.value = m ** g * ra_mean.value + w @ mean[:, 0]
                ra_var.value = m ** g * ra_var.value + w @ var[:, 0]
        y = (xg - mean) * (lax.rsqrt(var + self.epsilon) * scale) + bias
        return y.reshape(x.shape).astype(jnp.result_type(x, scale))


def _norm(train: bool, groups: int, name: str) -> nn.Module:
    if groups == 1:
        return _bn(train, name)
    return functools.partial(GroupBatchNorm(groups, name=name), use_running_average=not train)


class DCGANEncoder(nn.Module):
    """DCGAN encoder ``(N, size, size, C) → (N, nh)`` with a tanh output.

    Attributes:
        size: frame size, 32 or 64.
        nf: channels of the first convolution.
        nh: output size.
        impl: ``matmul`` (default, fast on CPU) or ``lax`` (flax's convolutions); same
            parameters and outputs (module docstring).
    """

    size: int = 64
    nf: int = 64
    nh: int = 128
    impl: str = "matmul"

    @nn.compact
    def __call__(self, x: Float[Array, "N H W C"], train: bool = True) -> Float[Array, "N nh"]:
        """Encode frames (module docstring).

        Raises:
            ValueError: a wrong frame size or ``impl``.
        """
        n_blocks = check_frame_size(self.size)
        _check_impl(self.impl)
        if x.ndim != 4 or x.shape[1:3] != (self.size, self.size):
            raise ValueError(f"encoder input must be (N, {self.size}, {self.size}, C) frames; "
                             f"got shape {x.shape}")
        h = x
        for i in range(n_blocks):
            h = _Conv4x4(self.nf * 2 ** i, "down", self.impl, name=f"conv_{i}")(h)
            if i > 0:
                h = _bn(train, f"bn_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        h = _Conv4x4(self.nh, "valid", self.impl, name="conv_last")(h)
        h = _bn(train, "bn_last")(h)
        return jnp.tanh(h.reshape(h.shape[0], self.nh))


class DCGANDecoder(nn.Module):
    """DCGAN decoder ``(N, n_in) → (N, size, size, channels)`` logits.

    Attributes:
        size: frame size, 32 or 64.
        nf: channels of the mirror encoder's first convolution.
        channels: output channels.
        impl: ``matmul`` (default, fast on CPU) or ``lax`` (flax's convolutions); same
            parameters and outputs (module docstring).
    """

    size: int = 64
    nf: int = 64
    channels: int = 1
    impl: str = "matmul"

    @nn.compact
    def __call__(self, h: Float[Array, "N n_in"], train: bool = True, groups: int = 1
                 ) -> Float[Array, "N H W C"]:
        """Decode vectors into frame logits (module docstring).

        ``groups``: in training, BatchNorm statistics per group of ``N/groups`` consecutive
        frames (:class:`GroupBatchNorm`), i.e. the outputs of ``groups`` separate calls,
        computed in one.

        Raises:
            ValueError: a wrong ``size`` or ``impl``, or ``groups`` not dividing ``N``.
        """
        n_blocks = check_frame_size(self.size)
        _check_impl(self.impl)
        _check_groups(groups, h.shape[0])
        top = self.nf * 2 ** (n_blocks - 1)
        x = _Conv4x4(top, "first", self.impl, name="upconv_first")(h[:, None, None, :])
        x = nn.leaky_relu(_norm(train, groups, "bn_first")(x), 0.2)
        for i in range(n_blocks - 1, -1, -1):
            last = i == 0
            # PyTorch ConvTranspose2d(4, stride 2, padding 1) == flax padding k - 1 - p = 2
            x = _Conv4x4(self.channels if last else self.nf * 2 ** (i - 1), "up", self.impl,
                         name=f"upconv_{i}")(x)
            if not last:
                x = nn.leaky_relu(_norm(train, groups, f"bn_{i}")(x), 0.2)
        return x
