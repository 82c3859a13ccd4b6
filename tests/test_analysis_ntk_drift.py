import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import nets
from gantk.analysis.ntk_drift import (
    NTKDriftLogger,
    drift_vs_width,
    fit_power_law,
    relative_distance,
)
from gantk.architectures import get_spec


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _setup(width, depth=1):
    spec = get_spec("relu", depth=depth, width=width)
    params0 = nets.init_discriminator(jax.random.key(0), spec, 2)
    apply = nets.discriminator_apply(spec, antisymmetric=True)
    probe = jax.random.normal(jax.random.key(1), (12, 2))
    return spec, params0, apply, probe


def test_logger_zero_at_init_and_scales_with_perturbation():
    spec, params0, apply, probe = _setup(64)
    logger = NTKDriftLogger(apply, params0, probe, kernel_fn=spec.k())
    row = logger.log(params0)
    assert row["ntk_drift"] == 0.0
    # the infinite-width distance at init equals the distance of K0 to K_inf
    assert row["ntk_inf_distance"] == pytest.approx(
        float(relative_distance(logger.K0, logger.K_inf)), rel=1e-12)
    # a small parameter perturbation eps moves the kernel linearly in eps
    direction = jax.tree.map(lambda p: jax.random.normal(jax.random.key(2), p.shape), params0)
    d = [logger.log(jax.tree.map(lambda p, v, e=e: p + e * v, params0, direction))["ntk_drift"]
         for e in (1e-4, 2e-4)]
    assert d[1] / d[0] == pytest.approx(2.0, rel=1e-2)
    assert len(logger.history) == 3


def test_init_kernel_approaches_infinite_width():
    # distance to the infinite-width NTK at initialization falls like ~1/sqrt(width)
    dist = []
    for w in (64, 1024):
        spec, params0, apply, probe = _setup(w)
        dist.append(NTKDriftLogger(apply, params0, probe, spec.k()).log(params0)[
            "ntk_inf_distance"])
    assert dist[1] < dist[0] / 2.0
    assert dist[1] < 0.1


@pytest.mark.slow
def test_drift_falls_with_width():
    res = drift_vs_width([16, 256], n_particles=8, n_probe=6, n_steps=20, chunk_size=10,
                         depth=1)
    final = [res[w]["ntk_drift"][-1] for w in (16, 256)]
    assert res[16]["ntk_drift"][0] == 0.0 and list(res[16]["step"]) == [0, 10, 20]
    assert final[1] < final[0] / 2.0  # 1/sqrt(16) would be a factor 4
    p, _ = fit_power_law([16, 256], final)
    assert p < -0.25


def test_fit_power_law_exact():
    x = np.array([1.0, 4.0, 16.0])
    p, c = fit_power_law(x, 3.0 * x**-0.5)
    assert p == pytest.approx(-0.5) and c == pytest.approx(3.0)


def test_bad_input():
    spec, params0, apply, probe = _setup(8)
    with pytest.raises(ValueError, match="probe_points"):
        NTKDriftLogger(apply, params0, jnp.zeros(5))
    with pytest.raises(ValueError, match="apply_fn"):
        NTKDriftLogger(None, params0, probe)
    with pytest.raises(ValueError, match="kernel_fn"):
        NTKDriftLogger(apply, params0, probe, kernel_fn=3)
    with pytest.raises(ValueError, match="widths"):
        drift_vs_width([0])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2], [1, -1])
