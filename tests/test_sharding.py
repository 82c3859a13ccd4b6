"""Multi-device flows: 4 forced CPU devices reproduce the single-device results to 1e-6."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) == 4, jax.devices()
    from gantk import flows, sharding
    from gantk.architectures import kernel_from_name
    from gantk.discriminator import discriminator

    k = kernel_from_name("relu")
    key = jax.random.key(0)
    x = jax.random.normal(key, (30, 2))            # 30 is not divisible by 4: padding path
    y = jax.random.normal(jax.random.fold_in(key, 1), (26, 2)) + 2.0
    mesh4 = sharding.particle_mesh(4)
    for loss in ("ipm", "lsgan"):
        D = discriminator(loss, k, x, y, 1.0)
        v1 = D.velocity(x)
        g4, v4 = jax.jit(lambda D, p: sharding.sharded_value_and_velocity(D, p, mesh4))(D, x)
        np.testing.assert_allclose(v4, v1, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(g4, D.generator_loss(x), rtol=1e-6, atol=1e-9)
        st = flows.FlowState(x, jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32), key)
        one = flows.infinite_width_step(loss, k, 1.0, 0.5)
        four = flows.infinite_width_step(loss, k, 1.0, 0.5, mesh=mesh4)
        r1 = flows.run_chunked(one, st, y, 10, chunk_size=5, progress=False)
        r4 = flows.run_chunked(four, st, y, 10, chunk_size=5, progress=False)
        np.testing.assert_allclose(r4.state.fake, r1.state.fake, rtol=1e-6, atol=1e-9)
        assert float(jnp.max(jnp.abs(r1.state.fake - x))) > 1e-3  # particles really moved
    try:
        sharding.particle_mesh(5)
    except ValueError as e:
        assert "devices" in str(e)
    else:
        raise AssertionError("no error for 5 devices")
    print("SHARDING-OK")
    """
)


@pytest.mark.slow
def test_four_cpu_devices_match_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SHARDING-OK" in proc.stdout


def test_single_device_mesh_and_bad_count():
    import jax

    from gantk import sharding

    mesh = sharding.particle_mesh()
    assert mesh.devices.size == len(jax.devices())
    with pytest.raises(ValueError, match="devices"):
        sharding.particle_mesh(len(jax.devices()) + 1)
    with pytest.raises(ValueError, match="devices"):
        sharding.particle_mesh(0)
