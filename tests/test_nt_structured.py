"""STRUCTURED_DERIVATIVES empirical NTK (Novak et al., ICML 2022) against Jacobian contraction.

Every kernel is jitted (eager evaluation compiles each primitive separately, which is
slower); the references for all ``trace_axes``/``diagonal_axes`` are reduced in NumPy from
one full Jacobian-contraction kernel to keep the number of compilations small.
"""

import string

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gantk
from gantk import empirical, stax
from gantk.empirical import NtkImplementation

JAC, STRUCT = NtkImplementation.JACOBIAN_CONTRACTION, NtkImplementation.STRUCTURED_DERIVATIVES
X1 = jax.random.normal(jax.random.PRNGKey(0), (5, 4), dtype=jnp.float32)
X2 = jax.random.normal(jax.random.PRNGKey(1), (3, 4), dtype=jnp.float32)


def _structured_leaves(f, params, x, vmap_axes=0):
    """Indices of the parameter leaves the dot_general rule covers (not the fallback)."""
    return sorted(empirical._example_jaxpr(f, params, x, {}, vmap_axes)[1])


def _reduce(full, trace_axes, diagonal_axes):
    """NT's layout from a zipped ``trace_axes=()`` kernel ``(a1, a2, b1, b2, ...)``."""
    ndim = full.ndim // 2
    trace = {a % ndim for a in trace_axes}
    diag = {a % ndim for a in diagonal_axes}
    letters = iter(string.ascii_letters)
    sub, out, size = "", "", 1
    for i in range(ndim):
        if i in trace or i in diag:
            c = next(letters)
            sub += 2 * c
            out += c if i in diag else ""
            size *= full.shape[2 * i] if i in trace else 1
        else:
            c1, c2 = next(letters), next(letters)
            sub, out = sub + c1 + c2, out + c1 + c2
    return np.einsum(f"{sub}->{out}", np.asarray(full, np.float64)) / size


def _structured(f, cases, x1, x2, params, **kwargs):
    """All ``(trace_axes, diagonal_axes)`` cases in one jitted function (one compilation)."""

    def run(x1, x2, params):
        return [
            gantk.empirical_ntk_fn(f, t, d, implementation=STRUCT, **kwargs)(x1, x2, params)
            for t, d in cases
        ]

    return jax.jit(run)(x1, x2, params)


def _full_jacobian(f, x1, x2, params, **kwargs):
    ntk_fn = gantk.empirical_ntk_fn(f, trace_axes=(), implementation=JAC, **kwargs)
    return jax.jit(ntk_fn)(x1, x2, params)


def _init(init_fn, seed, shape):
    """Jitted ``init_fn`` (eagerly, every random op compiles on its own: seconds)."""
    return jax.jit(init_fn, static_argnums=1)(jax.random.PRNGKey(seed), shape)[1]


def _assert_close(out, ref, rtol=1e-4):
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * float(np.max(np.abs(ref))))


def _mlp(parameterization):
    return stax.serial(
        stax.Dense(32, 1.5, 0.1, parameterization=parameterization),
        stax.Relu(),
        stax.Dense(32, 1.0, 0.2, parameterization=parameterization),
        stax.Erf(),
        stax.Dense(3, 1.0, 0.1, parameterization=parameterization),
    )


@pytest.mark.parametrize("vmap_axes", [0, None])
def test_structured_ntk_of_a_linear_model_in_closed_form(vmap_axes):
    # f(x) = W_std/sqrt(d) x W (no bias): Θ(x, x') = W_std² x·x'/d per output, whatever W.
    # Without vmap_axes, STRUCTURED_DERIVATIVES and AUTO are Jacobian contraction.
    init_fn, apply_fn, _ = stax.Dense(7, W_std=2.0)
    params = _init(init_fn, 2, X1.shape)
    assert _structured_leaves(apply_fn, params, X1) == [0]
    for impl in (STRUCT, NtkImplementation.AUTO):
        ntk_fn = gantk.empirical_ntk_fn(apply_fn, vmap_axes=vmap_axes, implementation=impl)
        np.testing.assert_allclose(jax.jit(ntk_fn)(X1, X2, params), X1 @ X2.T, rtol=1e-5)


def test_structured_equals_jacobian_on_stax_mlp_ntk_parameterization():
    init_fn, apply_fn, _ = _mlp("ntk")
    params = _init(init_fn, 3, X1.shape)
    # Every weight is covered by the dot_general rule; the biases fall back.
    assert _structured_leaves(apply_fn, params, X1) == [0, 2, 4]
    cases = [((-1,), ()), ((), ()), ((), (-1,))]
    full = _full_jacobian(apply_fn, X1, X2, params, vmap_axes=0)
    outs = _structured(apply_fn, cases, X1, X2, params, vmap_axes=0)
    for out, (t, d) in zip(outs, cases, strict=True):
        _assert_close(out, _reduce(full, t, d))
    # Diagonal over / trace over the batch axis need x2 = x1.
    cases = [((), (0,)), ((0,), ())]
    full = _full_jacobian(apply_fn, X1, None, params, vmap_axes=0)
    outs = _structured(apply_fn, cases, X1, None, params, vmap_axes=0)
    assert outs[0].shape == (5, 3, 3)  # Θ(x_i, x_i) only
    for out, (t, d) in zip(outs, cases, strict=True):
        _assert_close(out, _reduce(full, t, d))


def test_structured_equals_jacobian_on_stax_mlp_standard_parameterization():
    init_fn, apply_fn, _ = _mlp("standard")
    params = _init(init_fn, 4, X1.shape)
    assert _structured_leaves(apply_fn, params, X1) == [0, 2, 4]
    (out,) = _structured(apply_fn, [((), ())], X1, X2, params, vmap_axes=0)
    _assert_close(out, _full_jacobian(apply_fn, X1, X2, params, vmap_axes=0))


def test_structured_equals_jacobian_on_rank_4_inputs():
    # Dense over the channel axis of (N, H, W, C): X has H*W rows per example.
    init_fn, apply_fn, _ = stax.serial(stax.Dense(6, 1.0, 0.1), stax.Relu(), stax.Dense(2))
    x1 = jax.random.normal(jax.random.PRNGKey(5), (3, 2, 5, 4), dtype=jnp.float32)
    x2 = jax.random.normal(jax.random.PRNGKey(6), (2, 2, 5, 4), dtype=jnp.float32)
    params = _init(init_fn, 7, x1.shape)
    assert _structured_leaves(apply_fn, params, x1) == [0, 2]
    cases = [((-1,), (1, 2))]  # traced channels, diagonal over positions, zipped rest
    full = _full_jacobian(apply_fn, x1, x2, params, vmap_axes=0)
    outs = _structured(apply_fn, cases, x1, x2, params, vmap_axes=0)
    for out, (t, d) in zip(outs, cases, strict=True):
        _assert_close(out, _reduce(full, t, d))


class _FlaxMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(16)(x))  # relu: a custom_jvp inside a jit
        x = nn.gelu(nn.Dense(16)(x))
        return nn.Dense(2)(x)


def test_structured_equals_jacobian_on_flax_mlp():
    model = _FlaxMLP()
    params = jax.jit(model.init)(jax.random.PRNGKey(8), X1)
    apply_fn = lambda p, x: model.apply(p, x)
    assert len(_structured_leaves(apply_fn, params, X1)) == 3  # the three kernels
    (out,) = _structured(apply_fn, [((), ())], X1, X2, params, vmap_axes=0)
    _assert_close(out, _full_jacobian(apply_fn, X1, X2, params, vmap_axes=0))


def test_weight_used_twice_falls_back_to_jacobian_and_stays_exact():
    def f(p, x, shift):
        h = jnp.tanh((x + shift) @ p["W"] + p["b"])
        return jnp.tanh(h @ p["W"]) @ p["V"]  # W shared by two layers

    keys = jax.random.split(jax.random.PRNGKey(9), 3)
    params = {
        "V": jax.random.normal(keys[0], (4, 3)),
        "W": jax.random.normal(keys[1], (4, 4)) / 2,
        "b": jnp.ones(4),
    }
    shift = jax.random.normal(keys[2], X1.shape, dtype=jnp.float32)
    assert _structured_leaves(lambda p, x: f(p, x, 0.0), params, X1) == [0]  # V only
    # With a per-example keyword argument, batched through NT's vmap_axes triple.
    kwargs = dict(trace_axes=(), vmap_axes=(0, 0, {"shift": 0}))
    ntk = {i: jax.jit(gantk.empirical_ntk_fn(f, implementation=i, **kwargs)) for i in (JAC, STRUCT)}
    ref, out = (ntk[i](X1, None, params, shift=shift) for i in (JAC, STRUCT))
    _assert_close(out, np.asarray(ref))


def test_monte_carlo_with_structured_derivatives_agrees_with_default():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(16, 1.0, 0.1), stax.Relu(), stax.Dense(2))
    key = jax.random.PRNGKey(10)
    kernels = [
        gantk.monte_carlo_kernel_fn(init_fn, apply_fn, key, 2, vmap_axes=0, implementation=i)(
            X1, X2, "ntk"
        )
        for i in (empirical.DEFAULT_NTK_IMPLEMENTATION, STRUCT)
    ]
    _assert_close(kernels[1], np.asarray(kernels[0]))
