"""Empirical and Monte-Carlo kernels and batching (neural-tangents parity, issue #15)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gantk
from gantk import stax
from gantk.empirical import NtkImplementation

X1 = jax.random.normal(jax.random.PRNGKey(0), (4, 3), dtype=jnp.float64)
X2 = jax.random.normal(jax.random.PRNGKey(1), (3, 3), dtype=jnp.float64)
W = jax.random.normal(jax.random.PRNGKey(2), (3, 5), dtype=jnp.float64)


def _linear(params, x, **kwargs):
    return x @ params


def _rel(a, b):
    """NT's assert_close_matrices metric: relative Frobenius error."""
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("implementation", [0, 1, 2])
@pytest.mark.parametrize("vmap_axes", [None, 0])
def test_empirical_kernels_of_a_linear_model_in_closed_form(implementation, vmap_axes):
    # f(x) = x W with W (3, 5): ∂f_k/∂W_ab = x_a δ_bk, so Θ_{ij,kl} = (x_i·x_j) δ_kl and
    # the NNGP is f_i f_j^T; traced over the 5 outputs both are divided by 5.
    kfn = gantk.empirical_kernel_fn(_linear, vmap_axes=vmap_axes, implementation=implementation)
    out = kfn(X1, X2, None, W)
    assert out._fields == ("nngp", "ntk")
    np.testing.assert_allclose(out.ntk, X1 @ X2.T, rtol=1e-12)
    np.testing.assert_allclose(out.nngp, (X1 @ W) @ (X2 @ W).T / 5, rtol=1e-12)
    full = gantk.empirical_ntk_fn(
        _linear, trace_axes=(), vmap_axes=vmap_axes, implementation=implementation
    )(X1, None, W)
    assert full.shape == (4, 4, 5, 5)  # NT's zipped layout (N1, N2, K1, K2)
    np.testing.assert_allclose(full, np.einsum("ij,kl->ijkl", X1 @ X1.T, np.eye(5)), atol=1e-12)
    diag = gantk.empirical_nngp_fn(_linear, trace_axes=(), diagonal_axes=(-1,))(X1, X2, W)
    np.testing.assert_allclose(diag, np.einsum("ik,jk->ijk", X1 @ W, X2 @ W), rtol=1e-12)


def test_empirical_ntk_of_stax_net_agrees_across_implementations():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(16, 1.3, 0.2), stax.Erf(), stax.Dense(2))
    _, params = init_fn(jax.random.PRNGKey(3), X1.shape)
    ks = [
        gantk.empirical_ntk_fn(apply_fn, vmap_axes=v, implementation=i)(X1, X2, params)
        for i, v in ((1, 0), (2, None), (NtkImplementation.STRUCTURED_DERIVATIVES, 0))
    ]
    for k in ks[1:]:
        np.testing.assert_allclose(k, ks[0], rtol=1e-11)
    # nets.empirical_ntk is the scalar-output case of the same function.
    scalar = lambda p, x: apply_fn(p, x)[:, 0]
    ref = gantk.empirical_ntk_fn(scalar, trace_axes=())(X1, X2, params)
    np.testing.assert_allclose(gantk.empirical_ntk(scalar)(X1, X2, params), ref, rtol=1e-11)


def test_empirical_kernel_fn_arguments_are_strict():
    with pytest.raises(ValueError, match="implementation"):
        gantk.empirical_ntk_fn(_linear, implementation=7)
    with pytest.raises(ValueError, match="trace_axes"):
        gantk.empirical_nngp_fn(_linear, trace_axes="last")
    kfn = gantk.empirical_kernel_fn(_linear)
    with pytest.raises(ValueError, match="get"):
        kfn(X1, None, "cov1", W)
    with pytest.raises(ValueError, match="disjoint"):
        gantk.empirical_nngp_fn(_linear, (-1,), (1,))(X1, None, W)
    with pytest.raises(ValueError, match="out of range"):
        gantk.empirical_nngp_fn(_linear, (2,))(X1, None, W)
    with pytest.raises(ValueError, match="params"):
        kfn(X1, None, "ntk")


def test_monte_carlo_is_the_mean_of_empirical_kernels_with_nt_keys():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(8, 1.0, 0.5), stax.Relu(), stax.Dense(3))
    key = jax.random.PRNGKey(7)
    mc = gantk.monte_carlo_kernel_fn(init_fn, apply_fn, key, 3)(X1, X2, ("nngp", "ntk"))
    # NT's sampling: key, k_s = split(key); init_key, rng = split(k_s); params = init(init_key).
    emp = gantk.empirical_kernel_fn(apply_fn)
    total = None
    for _ in range(3):
        key, sample = jax.random.split(key)
        init_key, _ = jax.random.split(sample)
        k = emp(X1, X2, None, init_fn(init_key, X1.shape)[1])
        total = k if total is None else jax.tree.map(jnp.add, total, k)
    np.testing.assert_allclose(mc.nngp, total.nngp / 3, rtol=1e-12)
    np.testing.assert_allclose(mc.ntk, total.ntk / 3, rtol=1e-12)
    # A list of counts gives a generator of running means; the last equals the int form,
    # also in tiles of 2 points stored on the host.
    gen = gantk.monte_carlo_kernel_fn(
        init_fn, apply_fn, jax.random.PRNGKey(7), [1, 3], batch_size=2, store_on_device=False
    )
    first, last = list(gen(X1, X2, "ntk"))
    assert isinstance(last, np.ndarray)
    np.testing.assert_allclose(last, mc.ntk, rtol=1e-12)
    assert not np.allclose(first, last)
    for bad in (0, -2, [2, 0], 2.5, "3"):
        with pytest.raises(ValueError, match="n_samples"):
            gantk.monte_carlo_kernel_fn(init_fn, apply_fn, key, bad)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("parameterization", "get"),
    # The NNGP is the same in both parameterizations; the NTK differs.
    [("ntk", "nngp"), ("ntk", "ntk"), ("standard", "ntk")],
)
def test_monte_carlo_converges_to_stax_kernels(parameterization, get):
    # NT's elementwise_test protocol (fc model, CPU): Dense(1024, 2, 0.5) -> act -> Dense,
    # read-out width 1024 for the NNGP and 1 for the NTK, 200 samples, rtol 0.08.
    p = parameterization
    out_dim = 1024 if get == "nngp" else 1
    net = stax.serial(
        stax.Dense(1024, 2.0, 0.5, parameterization=p), stax.Relu(),
        stax.Dense(out_dim, 1.0, None, parameterization=p),
    )
    x1 = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    mc = gantk.monte_carlo_kernel_fn(net[0], net[1], jax.random.PRNGKey(2), 200, vmap_axes=0)
    assert _rel(mc(x1, None, get), net[2](x1, None, get)) < 0.08


def test_batch_matches_unbatched_kernel():
    _, _, kfn = stax.serial(stax.Dense(8, 1.0, 0.5), stax.Gelu(), stax.Dense(1))
    x1 = jnp.concatenate([X1, X2])
    for x2 in (None, X2):
        ref, out = kfn(x1, x2), gantk.batch(kfn, batch_size=3)(x1, x2)
        for f in ("nngp", "ntk", "cov1", "cov2"):
            a, b = getattr(out, f), getattr(ref, f)
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-13)
        assert out.shape1 == ref.shape1 and out.shape2 == ref.shape2
    tup = gantk.batch(kfn, 2)(x1, X2, ("ntk", "nngp"))
    np.testing.assert_allclose(tup.ntk, kfn(x1, X2, "ntk"), rtol=1e-13)
    with pytest.raises(ValueError, match="batch_size"):
        gantk.batch(kfn, -1)
    with pytest.raises(ValueError, match="device_count"):
        gantk.batch(kfn, 2, device_count=10_000)


def test_vmap_axes_as_pytrees_for_tuple_inputs_and_outputs():
    # NT's vmap_axes=((0, 0), [0, 0], {}) for a parallel network on a tuple of inputs: the
    # per-example Jacobians give the same kernels as the whole-batch ones.
    net = stax.serial(
        stax.parallel(stax.Dense(16, 1.0, 0.2), stax.Dense(16, 1.5)),
        stax.parallel(stax.Relu(), stax.Erf()),
        stax.parallel(stax.Dense(3), stax.Dense(3)),
    )
    x = (X1, X1[:, :2])
    _, params = net[0](jax.random.PRNGKey(0), [a.shape for a in x])
    whole = gantk.empirical_ntk_fn(net[1])(x, None, params)
    per_example = gantk.empirical_ntk_fn(net[1], vmap_axes=((0, 0), [0, 0], {}))(x, None, params)
    assert len(whole) == 2
    for a, b in zip(whole, per_example, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
