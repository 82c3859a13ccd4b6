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
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["DCGANDecoder", "DCGANEncoder", "check_frame_size"]

_INIT = nn.initializers.normal(0.02)


def check_frame_size(size: int) -> int:
    """Number of stride-2 blocks for a frame size (3 for 32, 4 for 64).

    Raises:
        ValueError: ``size`` not 32 or 64.
    """
    if size not in (32, 64):
        raise ValueError(f"`size` (frame size) must be 32 or 64; got {size!r}")
    return 3 if size == 32 else 4


def _bn(train: bool, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class DCGANEncoder(nn.Module):
    """DCGAN encoder ``(N, size, size, C) → (N, nh)`` with a tanh output.

    Attributes:
        size: frame size, 32 or 64.
        nf: channels of the first convolution.
        nh: output size.
    """

    size: int = 64
    nf: int = 64
    nh: int = 128

    @nn.compact
    def __call__(self, x: Float[Array, "N H W C"], train: bool = True) -> Float[Array, "N nh"]:
        """Encode frames (module docstring); raises ``ValueError`` on a wrong frame size."""
        n_blocks = check_frame_size(self.size)
        if x.ndim != 4 or x.shape[1:3] != (self.size, self.size):
            raise ValueError(f"encoder input must be (N, {self.size}, {self.size}, C) frames; "
                             f"got shape {x.shape}")
        h = x
        for i in range(n_blocks):
            h = nn.Conv(self.nf * 2 ** i, (4, 4), strides=2, padding=((1, 1), (1, 1)),
                        use_bias=False, kernel_init=_INIT, name=f"conv_{i}")(h)
            if i > 0:
                h = _bn(train, f"bn_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        h = nn.Conv(self.nh, (4, 4), padding="VALID", use_bias=False, kernel_init=_INIT,
                    name="conv_last")(h)
        h = _bn(train, "bn_last")(h)
        return jnp.tanh(h.reshape(h.shape[0], self.nh))


class DCGANDecoder(nn.Module):
    """DCGAN decoder ``(N, n_in) → (N, size, size, channels)`` logits.

    Attributes:
        size: frame size, 32 or 64.
        nf: channels of the mirror encoder's first convolution.
        channels: output channels.
    """

    size: int = 64
    nf: int = 64
    channels: int = 1

    @nn.compact
    def __call__(self, h: Float[Array, "N n_in"], train: bool = True) -> Float[Array, "N H W C"]:
        """Decode vectors into frame logits (module docstring)."""
        n_blocks = check_frame_size(self.size)
        top = self.nf * 2 ** (n_blocks - 1)
        x = nn.ConvTranspose(top, (4, 4), padding="VALID", use_bias=False, kernel_init=_INIT,
                             name="upconv_first")(h[:, None, None, :])
        x = nn.leaky_relu(_bn(train, "bn_first")(x), 0.2)
        for i in range(n_blocks - 1, -1, -1):
            last = i == 0
            # PyTorch ConvTranspose2d(4, stride 2, padding 1) == flax padding k - 1 - p = 2
            x = nn.ConvTranspose(self.channels if last else self.nf * 2 ** (i - 1), (4, 4),
                                 strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=False,
                                 kernel_init=_INIT, name=f"upconv_{i}")(x)
            if not last:
                x = nn.leaky_relu(_bn(train, f"bn_{i}")(x), 0.2)
        return x
