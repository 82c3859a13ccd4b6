"""Finite width → infinite width: empirical NTK and trained discriminators vs gantk.stax.

Float32 parameters (inputs cast explicitly) keep the wide nets affordable; the errors
measured here are ~1e-2, far above float32 round-off.
"""

import jax
import numpy as np
import pytest

from gantk import nets
from gantk.architectures import MLPSpec
from gantk.discriminator import discriminator

F32 = np.float32


def _slope(widths, errors):
    return float(np.polyfit(np.log(widths), np.log(errors), 1)[0])


@pytest.mark.slow
def test_empirical_ntk_converges_to_stax_ntk_like_inverse_sqrt_width():
    spec = MLPSpec("relu", depth=3, W_std=1.0, b_std=1.0)
    x = np.array([[1.0, 0.0], [0.3, -0.8], [-1.2, 0.5], [0.0, 0.0], [2.0, 1.5]])
    k_inf = np.asarray(spec.discriminator_kernel()(x))
    widths, seeds = (128, 512, 2048), (16, 16, 8)  # measured RMS errors 0.17, 0.10, 0.036
    errors = []
    for width, n_seeds in zip(widths, seeds, strict=True):
        s = spec.replace(width=width)
        ntk_fn = jax.jit(nets.empirical_ntk(nets.discriminator_apply(s), "jacobian"))
        errs = []
        for seed in range(n_seeds):
            params = nets.init_discriminator(
                jax.random.PRNGKey(seed), s, 2, antisymmetric=False, dtype=F32
            )
            k = np.asarray(ntk_fn(x.astype(F32), None, params), dtype=np.float64)
            errs.append(np.linalg.norm(k - k_inf) / np.linalg.norm(k_inf))
        errors.append(float(np.sqrt(np.mean(np.square(errs)))))  # RMS over seeds
    slope = _slope(widths, errors)
    assert -0.8 <= slope <= -0.3, (errors, slope)
    assert errors[-1] < errors[0] / 3, errors
    assert errors[-1] < 0.06, errors


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ipm", "lsgan"])
def test_finite_discriminator_approaches_infinite_width(loss):
    """SGD for τ/lr steps → f_τ of gantk.discriminator (ipm: τ (mean_real k − mean_fake k))."""
    rng = np.random.default_rng(0)
    fake = rng.normal(size=(8, 2))
    real = rng.normal(size=(8, 2)) + np.array([1.5, 0.0])
    grid = 1.5 * rng.normal(size=(20, 2))
    spec = MLPSpec("relu", depth=3, b_std=1.0)
    tau, lr = 1.0, 0.1
    k = spec.discriminator_kernel()
    if loss == "ipm":  # closed form, Franceschi et al. 2022, Sec. 5.1
        f_inf = tau * (np.asarray(k(grid, real)).mean(1) - np.asarray(k(grid, fake)).mean(1))
    else:
        f_inf = np.asarray(discriminator(loss, k, fake, real, tau)(grid))
    widths, seeds = (64, 256, 1024), (6, 6, 4)
    errors = []
    for width, n_seeds in zip(widths, seeds, strict=True):
        s = spec.replace(width=width)
        errs = []
        for seed in range(n_seeds):
            params = nets.init_discriminator(jax.random.PRNGKey(seed), s, 2, dtype=F32)
            D = nets.fit_finite_discriminator(
                loss, s, params, fake.astype(F32), real.astype(F32), tau, lr
            )
            f = np.asarray(D(grid.astype(F32)), dtype=np.float64)
            errs.append(np.linalg.norm(f - f_inf) / np.linalg.norm(f_inf))
        errors.append(float(np.sqrt(np.mean(np.square(errs)))))
    print(loss, {w: round(e, 4) for w, e in zip(widths, errors, strict=True)})
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[-1] < 0.2, errors  # ~ C / sqrt(width): measured 0.14 (ipm), 0.06 (lsgan)
    assert errors[-1] < errors[0] / 2.5, errors
