"""Regenerate GAN(TK)²'s initial eight_gaussians samples for seeds 1–4 (needs PyTorch).

GAN(TK)² draws its data with PyTorch's global RNG after ``torch.manual_seed(seed)``: first
the 500 real points (a uniform mixture of 8 isotropic Gaussians, std 0.5, centres on the
circle of radius 5 starting at angle 0), then the 500 fake particles from N(0, I₂), both as
``torch.distributions`` samples in float32. This script replays that order so that
``gantk.run --data points:benchmarks/gantk2_data/eight_gaussians_s1.npz`` starts from
exactly the samples behind GAN(TK)²'s published seed-1 numbers.

PyTorch is *not* a gantk dependency; the ``.npz`` files are shipped, so this script only
documents where they come from::

    pip install torch numpy && python benchmarks/gantk2_data/make.py
"""

import math
import pathlib

import numpy as np
import torch
from torch import distributions as D

HERE = pathlib.Path(__file__).parent


def sample(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fake, real)`` of GAN(TK)²'s eight_gaussians run with this seed, float32 (500, 2)."""
    torch.manual_seed(seed)
    k = torch.arange(8)
    cos = torch.cos(2 * math.pi / 8 * k)
    # their centres: y = sqrt(1 - x²)·sign(k − 4), i.e. the angles 0, −π/4, …, π/4
    centres = torch.stack([cos, torch.sqrt(1 - cos**2) * torch.sign(k - 4.0)], 1)
    components = D.Independent(D.Normal(5.0 * centres, torch.tensor([0.5])), 1)
    real = D.MixtureSameFamily(D.Categorical(torch.ones(8)), components).sample([500])
    fake = D.Normal(torch.zeros(2), torch.tensor([1.0])).sample([500])
    return fake.numpy(), real.numpy()


if __name__ == "__main__":
    for seed in (1, 2, 3, 4):
        fake, real = sample(seed)
        np.savez(HERE / f"eight_gaussians_s{seed}.npz", fake=fake, real=real)
        print(f"seed {seed}: wrote eight_gaussians_s{seed}.npz")
