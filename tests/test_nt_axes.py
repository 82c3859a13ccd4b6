"""Non-default ``batch_axis``/``channel_axis`` in the kernels of ``gantk.stax`` (issue #15).

NT 0.6.5 (``neural_tangents/_src/stax/requirements.py``: ``requires``,
``_inputs_to_kernel``; ``combinators.py``: ``_get_input_req_attr``) lets layers state the
layout of their input activations. A network reads ``x1``/``x2`` in the layout of its first
layer that states one, the kernel is that of the inputs moved to the canonical ``(n,
*spatial, C)`` order, ``Flatten(batch_axis, batch_axis_out)`` and integer ``Index`` entries
change the layout, and a layer whose layout differs from the one reaching it raises.

So the analytic kernels of a network with non-default axes must equal, *exactly*, those of
the same network with default axes on the transposed inputs; and the finite networks, whose
``apply_fn`` really work in the non-default layout, must agree with them in the
Monte-Carlo limit (tolerance as in ``tests/test_nt_linear.py``: 512 units into the
read-out, 64 read-out units, 64 samples, NT's relative Frobenius metric held to 0.1).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gantk
from gantk import stax

KEY = jax.random.PRNGKey
# Transposed rank-2 inputs: (features, batch).
XT1 = jax.random.normal(KEY(0), (3, 4), dtype=jnp.float64)
XT2 = jax.random.normal(KEY(1), (3, 5), dtype=jnp.float64)
# Rank-4 inputs laid out (C, H, N, W): batch_axis=2, channel_axis=0.
IMG1 = jax.random.normal(KEY(2), (3, 3, 2, 4), dtype=jnp.float64)
IMG2 = jax.random.normal(KEY(3), (3, 3, 3, 4), dtype=jnp.float64)
CHNW = {"batch_axis": 2, "channel_axis": 0}
T = {"batch_axis": 1, "channel_axis": 0}
WIDTH, OUT, SAMPLES, TOL = 512, 64, 64, 0.1
MC_WIDTH = 256  # x 2 positions after Flatten: the read-out sees 512 units
GETS = ("nngp", "ntk", "cov1", "cov2")


def _canon(x):
    """(C, H, N, W) -> (N, H, W, C)."""
    return jnp.moveaxis(x, (2, 0), (0, -1))


def _rel(a, b):
    """NT's assert_close_matrices metric: relative Frobenius error."""
    return float(jnp.linalg.norm(jnp.asarray(a) - b) / jnp.linalg.norm(b))


def _assert_same_kernels(net, ref, x1, x2, ref_x1, ref_x2, **kwargs):
    got, want = net[2](x1, x2, GETS, **kwargs), ref[2](ref_x1, ref_x2, GETS, **kwargs)
    for g in GETS:
        np.testing.assert_array_equal(getattr(got, g), getattr(want, g), err_msg=g)


def _mlp(p, axes=None):
    axes = axes or {}
    return stax.serial(
        stax.Dense(WIDTH, 1.3, 0.2, parameterization=p, **axes), stax.Erf(),
        stax.Dense(OUT, 0.9, 0.1, parameterization=p, **axes),
    )


def test_transposed_dense_network_equals_default_on_transposed_inputs():
    # Standard parameterization: the widths in shape1 enter the NTK, so the layout of the
    # shapes is exercised as well (the NTK parameterization is in the tests below).
    net, ref = _mlp("standard", T), _mlp("standard")
    _assert_same_kernels(net, ref, XT1, XT2, XT1.T, XT2.T)
    k = net[2](XT1, XT2)
    # The Kernel describes the (out, n) outputs, as NT's: shapes, axes.
    assert (k.shape1, k.shape2, k.batch_axis, k.channel_axis) == ((OUT, 4), (OUT, 5), 1, 0)
    assert net[0](KEY(0), XT1.shape)[0] == k.shape1
    # A Kernel fed back in is read in its own layout; plain and jitted kernels agree.
    again = stax.serial(stax.Relu(), stax.Dense(1, **T))
    np.testing.assert_allclose(
        again[2](k).ntk, stax.serial(net, again)[2](XT1, XT2, "ntk"), rtol=1e-12
    )
    np.testing.assert_allclose(stax.ntk(net)(XT1, XT2), ref[2](XT1.T, XT2.T, "ntk"), rtol=1e-12)
    jitted = jax.jit(net[2], static_argnames="get")
    np.testing.assert_allclose(jitted(XT1, XT2, "ntk"), k.ntk, rtol=1e-12)
    # gantk.batch tiles the inputs along the network's batch axis (1 here).
    tiled = gantk.batch(net[2], batch_size=2)(XT1, XT2)
    np.testing.assert_allclose(tiled.ntk, k.ntk, rtol=1e-12)
    assert (tiled.shape1, tiled.shape2) == (k.shape1, k.shape2)
    # Differentiable in the inputs: d/dx of the transposed layout is the transposed gradient.
    grad = jax.grad(lambda x: net[2](x, XT2, "ntk").sum())(XT1)
    grad_ref = jax.grad(lambda x: ref[2](x, XT2.T, "ntk").sum())(XT1.T)
    np.testing.assert_allclose(grad, grad_ref.T, rtol=1e-10)


def _conv_free_net(axes_in, flat, axes_out, idx, ln_axis=None):
    ln = [] if ln_axis is None else [stax.LayerNorm(ln_axis, **axes_in)]
    return stax.serial(
        stax.Dense(WIDTH, 1.2, 0.3, **axes_in), *ln, stax.Relu(),
        stax.Index(idx, **axes_in), stax.Dense(WIDTH, 1.1, 0.1, **axes_in), stax.Erf(),
        flat, stax.Dense(OUT, 0.8, 0.2, **axes_out),
    )


def test_rank4_layouts_index_flatten_layernorm_equal_the_canonical_network():
    # (C, H, N, W) with Index over H and W, LayerNorm over (C, W), Flatten to (width, n):
    # NT's stax_test pairs Flatten(batch_axis, batch_axis_fc) with Dense(batch_axis_fc, ..).
    net = _conv_free_net(CHNW, stax.Flatten(2, 1), T, stax.Slice[:, 1:, :, ::2], (0, 3))
    ref = _conv_free_net({}, stax.Flatten(), {}, stax.Slice[:, 1:, ::2, :], (-1, 2))
    _assert_same_kernels(net, ref, IMG1, IMG2, _canon(IMG1), _canon(IMG2))
    meta = net[2](IMG1, IMG2, ("shape1", "shape2", "batch_axis", "channel_axis"))
    assert tuple(meta) == ((OUT, 2), (OUT, 3), 1, 0)
    assert net[0](KEY(0), IMG1.shape)[0] == (OUT, 2)
    # Spatial outputs: NT's layouts (batch, batch, then the spatial axes in order).
    body, body_ref = stax.serial(*[stax.Dense(8, **CHNW), stax.Relu()]), stax.serial(
        stax.Dense(8), stax.Relu())
    for ds in (False, True):
        np.testing.assert_array_equal(
            body[2](IMG1, IMG2, "nngp", diagonal_spatial=ds),
            body_ref[2](_canon(IMG1), _canon(IMG2), "nngp", diagonal_spatial=ds),
        )
    # An integer index removes the H axis: the batch axis moves from 2 to 1, as NT's.
    cut = stax.serial(body, stax.Index(stax.Slice[:, 1, :, :], **CHNW), stax.Dense(1, **T))
    k = cut[2](IMG1, IMG2)
    assert (k.shape1, k.batch_axis, k.channel_axis) == ((1, 2, 4), 1, 0)
    ref_cut = stax.serial(body_ref, stax.Index(stax.Slice[:, 1]), stax.Dense(1))
    np.testing.assert_array_equal(k.ntk, ref_cut[2](_canon(IMG1), _canon(IMG2), "ntk"))


def test_masks_and_tuple_inputs_in_a_transposed_layout():
    # Masks stay in the activations' layout (NT's); the kernels equal the canonical ones.
    net = _conv_free_net(CHNW, stax.Flatten(2, 0), {}, stax.Slice[:, :, :, 1:])
    ref = _conv_free_net({}, stax.Flatten(), {}, stax.Slice[:, :, 1:, :])
    x1 = IMG1.at[:, 0, 1, 2].set(9.0)  # all channels of one position of sample 1
    _assert_same_kernels(net, ref, x1, IMG2, _canon(x1), _canon(IMG2), mask_constant=9.0)
    body = stax.serial(stax.Dense(8, **CHNW), stax.Relu())
    m1 = body[2](x1, IMG2, "mask1", mask_constant=9.0)
    assert m1.shape == (1, 3, 2, 4) and bool(m1[0, 0, 1, 2]) and int(m1.sum()) == 1
    # parallel with tuple inputs: every input in the network's layout.
    par = stax.serial(stax.parallel(stax.Dense(8, **T), stax.Dense(8, **T)), stax.FanInSum())
    par_ref = stax.serial(stax.parallel(stax.Dense(8), stax.Dense(8)), stax.FanInSum())
    y1 = jax.random.normal(KEY(7), (2, 4), dtype=jnp.float64)
    np.testing.assert_array_equal(
        par[2]((XT1, y1), None, "nngp"), par_ref[2]((XT1.T, y1.T), None, "nngp")
    )
    # FanInConcat along the channel axis of a (C, n) layout.
    cat = stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(6, **T), stax.Dense(2, **T)),
                      stax.FanInConcat(axis=0))
    cat_ref = stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(6), stax.Dense(2)),
                          stax.FanInConcat())
    np.testing.assert_array_equal(cat[2](XT1, XT2, "nngp"), cat_ref[2](XT1.T, XT2.T, "nngp"))
    assert cat[2](XT1, XT2, "shape1") == (8, 4)
    # repeat keeps the layout; kernel_fn's own batch_axis/channel_axis override (NT's
    # user requirement) for a network that states none.
    rep = stax.repeat(stax.serial(stax.Dense(8, **T), stax.Relu()), 3)
    rep_ref = stax.repeat(stax.serial(stax.Dense(8), stax.Relu()), 3)
    np.testing.assert_array_equal(rep[2](XT1, XT2, "ntk"), rep_ref[2](XT1.T, XT2.T, "ntk"))
    np.testing.assert_array_equal(
        stax.Identity()[2](XT1, XT2, "nngp", batch_axis=1, channel_axis=0),
        XT1.T @ XT2 / 3,
    )


def test_layernorm_over_batch_and_channels_closed_form():
    # NT LayerNorm.kernel_fn with the batch axis in `axis`: v = mean_batch(eps + cov),
    # nngp' = nngp / sqrt(v1 v2), cov' = cov / v.
    eps = 0.01
    dense = stax.Dense(8, 1.4, 0.3, **T)
    net = stax.serial(dense, stax.LayerNorm((0, 1), eps, **T))
    k, k0 = net[2](XT1, XT2), dense[2](XT1, XT2)
    v1, v2 = jnp.mean(eps + k0.cov1), jnp.mean(eps + k0.cov2)
    np.testing.assert_allclose(k.nngp, k0.nngp / jnp.sqrt(v1 * v2), rtol=1e-12)
    np.testing.assert_allclose(k.ntk, k0.ntk / jnp.sqrt(v1 * v2), rtol=1e-12)
    np.testing.assert_allclose(k.cov1, k0.cov1 / v1, rtol=1e-12)
    with pytest.raises(ValueError, match="channel axis"):
        stax.serial(dense, stax.LayerNorm(1, **T))[2](XT1)


def test_conflicting_layouts_raise_naming_the_argument():
    # Dense's channel axis would be the previous Dense's batch axis: NT raises.
    with pytest.raises(ValueError, match="requires `batch_axis == 0`.*`batch_axis == 1`"):
        stax.serial(stax.Dense(4, **T), stax.Relu(), stax.Dense(3))[2](XT1)
    # Flatten(batch_axis_out=1) hands (width, n) on: the next Dense must say so.
    with pytest.raises(ValueError, match="Dense requires `batch_axis == 0`"):
        stax.serial(stax.Dense(4), stax.Flatten(0, 1), stax.Dense(3))[2](XT1.T)
    with pytest.raises(ValueError, match="Index requires `batch_axis == 0`"):
        stax.serial(stax.Dense(4, **CHNW), stax.Index(stax.Slice[:, :1]))[2](IMG1)
    with pytest.raises(ValueError, match="LayerNorm requires"):
        stax.serial(stax.Dense(4, **T), stax.LayerNorm())[2](XT1)
    # Parallel branches in different layouts: NT's warning, then the error.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        par = stax.parallel(stax.Dense(4, **T), stax.Dense(4))
    assert any("batch_axis" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="batch_axis"):
        par[2]((XT1, XT1))
    # Input layouts that cannot be.
    with pytest.raises(ValueError, match="`batch_axis` and `channel_axis` must be different"):
        stax.Dense(4, batch_axis=1, channel_axis=1)[2](XT1)
    with pytest.raises(ValueError, match="`batch_axis`=4 is out of range"):
        stax.Dense(4, batch_axis=4)[2](XT1)
    with pytest.raises(ValueError, match="`channel_axis` must be an int"):
        stax.Identity()[2](XT1, channel_axis="0")
    with pytest.raises(ValueError, match=r"non-batch shape of `x1`, \(3,\); got \(4, 3\)"):
        stax.Dense(4, **T)[2](XT1, XT1.T)


@pytest.mark.slow
@pytest.mark.parametrize("p", ["ntk", "standard"])
def test_transposed_layouts_agree_with_monte_carlo(p):
    # The finite networks compute in the (C, N, W) / (width, n) layouts themselves; the
    # read-out (OUT, n) is traced over its channel axis 0 (NT's trace_axes=(channel_axis,)).
    x1 = jax.random.normal(KEY(8), (3, 3, 2), dtype=jnp.float64)
    x2 = jax.random.normal(KEY(9), (3, 2, 2), dtype=jnp.float64)
    net = stax.serial(
        stax.Dense(MC_WIDTH, 1.3, 0.2, parameterization=p, **T), stax.Relu(),
        stax.Flatten(1, 1), stax.Dense(OUT, 0.9, 0.1, parameterization=p, **T),
    )
    mc = gantk.monte_carlo_kernel_fn(net[0], net[1], KEY(5), SAMPLES, trace_axes=(0,))
    est = mc(x1, x2, ("nngp", "ntk"))
    for get in ("nngp", "ntk"):
        err = _rel(getattr(est, get), net[2](x1, x2, get))
        assert err < TOL, (get, err)
