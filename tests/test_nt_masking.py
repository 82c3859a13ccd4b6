"""Masked inputs, ``kernel_fn(..., mask_constant=c)`` / ``apply_fn(..., mask_constant=c)`` (#15.3).

Expected values follow neural-tangents 0.6.5 (NT):

- ``_get_masked_array`` / ``_inputs_to_kernel`` (``neural_tangents/_src/stax/
  requirements.py``): the input mask is ``x == c`` (``isnan(x)`` for ``c = nan``) and the
  masked entries are replaced by 0 before the input kernel is computed;
- ``Dense``'s ``mask_fn`` (``neural_tangents/_src/stax/linear.py``): a position is masked
  when all its channels are, ``jnp.all(mask, channel_axis, keepdims=True)``; ``Dense`` is
  ``supports_masking(remask_kernel=True)``, so ``Kernel.mask`` (``neural_tangents/_src/
  utils/kernel.py``) zeroes every kernel entry whose row or column position is masked;
- ``Flatten``'s ``mask_fn`` reshapes the broadcast mask; ``FanInSum``'s ``_sum_masks`` keeps
  an entry masked when every branch masks it; ``FanInConcat``'s ``_concat_masks``
  concatenates;
- ``Kernel.mask`` refuses masks that vary along channels (NotImplementedError);
- ``apply_fn_with_masking`` zeroes each layer's masked inputs and returns a
  ``MaskedArray``; ``unmask_fn`` zeroes the masked outputs: its Monte-Carlo kernel is what
  ``kernel_fn`` computes (NT's ``MaskingTest.test_mask_fc`` in ``tests/stax/
  requirements_test.py`` checks the same).
"""

import jax
import numpy as np
import pytest

import gantk
from gantk import stax

C = 10.0  # the mask constant (an atypical input value, as NT recommends)


def masked_inputs(n, shape=(5, 3), seed=0):
    """Inputs ``(n, *shape)`` with a masked position, a masked channel and a masked sample."""
    x = np.random.default_rng(seed).standard_normal((n, *shape))
    x[0, 2, :] = C  # a whole position of sample 0: masked after Dense
    x[1, :, 0] = C  # one channel of sample 1: zeroed, but its positions stay visible
    x[n - 1, 4, :] = C
    return x


def position_mask(x):
    """NT's Dense mask_fn applied to the input mask: masked on all channels."""
    return np.all(x == C, axis=-1)


def zero_filled(x):
    return np.where(x == C, 0.0, x)


def remasked(k, m1, m2):
    """NT's Kernel.mask on an NT-layout (n1, n2, s, s') kernel of rank-3 inputs."""
    rows = m1[:, None, :, None] | m2[None, :, None, :]
    return np.where(rows, 0.0, k)


NET = stax.serial(stax.Dense(64, 1.3, 0.2), stax.Relu(), stax.Dense(1, 0.9, 0.3))


def test_masked_kernel_is_the_zero_filled_kernel_with_masked_positions_zeroed():
    net = stax.serial(
        stax.Dense(64, 1.3, 0.2, parameterization="standard"), stax.Erf(),
        stax.Dense(1, 0.9, 0.3, parameterization="standard"),
    )
    x1, x2 = masked_inputs(4), masked_inputs(3, seed=1)
    got = net[2](x1, x2, mask_constant=C)
    ref = net[2](zero_filled(x1), zero_filled(x2))
    m1, m2 = position_mask(x1), position_mask(x2)
    for f in ("nngp", "ntk"):
        np.testing.assert_allclose(getattr(got, f), remasked(getattr(ref, f), m1, m2), rtol=1e-12)
    for cov, ref_cov, m in ((got.cov1, ref.cov1, m1), (got.cov2, ref.cov2, m2)):
        # (n, s, s') variances between positions (NT's diagonal_spatial=False layout)
        np.testing.assert_allclose(cov, np.where(m[:, :, None] | m[:, None, :], 0.0, ref_cov),
                                   rtol=1e-12)
    # The masked position really is zeroed, and the unmasked ones are non-trivial.
    assert np.all(np.asarray(got.nngp)[0, :, 2, :] == 0) and np.all(np.asarray(got.cov1)[0, 2] == 0)
    variances = np.diagonal(np.asarray(got.cov1), axis1=1, axis2=2)
    assert np.min(variances[~m1]) > 0.05
    # Kernel.mask1/mask2 carry NT's masks: channel axis reduced by the Dense layers.
    np.testing.assert_array_equal(got.mask1, m1[..., None])
    np.testing.assert_array_equal(got.mask2, m2[..., None])


def test_masks_with_x2_none_and_full_covariances():
    x = masked_inputs(4)
    m = position_mask(x)
    got = NET[2](x, None, ("nngp", "cov1", "cov2", "mask1", "mask2"), mask_constant=C)
    ref = NET[2](zero_filled(x), None, ("nngp", "cov1"))
    np.testing.assert_allclose(got.nngp, remasked(ref.nngp, m, m), rtol=1e-12)
    assert got.cov2 is None and got.mask2 is None  # NT: x2 = None carries no mask2
    np.testing.assert_array_equal(got.mask1[..., 0], m)
    full = NET[2](x, None, "cov1", diagonal_batch=False, mask_constant=C)  # NT's mask11
    np.testing.assert_allclose(full, got.nngp, rtol=1e-12)


def test_flatten_averages_with_masked_positions_as_zeros():
    """NT's Flatten averages the spatial diagonal; remasked positions count as zeros."""
    x1, x2 = masked_inputs(4), masked_inputs(3, seed=1)
    x1[2] = C  # a fully masked sample: masked on all of Flatten's P * C outputs
    hidden = stax.serial(stax.Dense(64, 1.3, 0.2), stax.Relu())
    net = stax.serial(hidden, stax.Flatten(), stax.Dense(1, 0.8, 0.4))
    got = net[2](x1, x2, ("nngp", "mask1"), mask_constant=C)
    diag = np.asarray(hidden[2](x1, x2, "nngp", diagonal_spatial=True, mask_constant=C))
    expected = 0.8**2 * diag.mean(-1) + 0.4**2
    expected[2, :] = 0.0  # the last Dense remasks the fully masked sample
    np.testing.assert_allclose(got.nngp, expected, rtol=1e-12)
    np.testing.assert_array_equal(got.mask1[:, 0], [False, False, True, False])
    # The masked positions did count as zeros (not dropped from the mean).
    m1 = position_mask(x1)
    assert diag[0, 0, 2] == 0 and m1[0, 2]


def test_nan_mask_constant_and_unmasked_nan_inputs():
    x1 = masked_inputs(4)
    with_nan = np.where(x1 == C, np.nan, x1)
    np.testing.assert_allclose(
        NET[2](with_nan, None, "ntk", mask_constant=np.nan),
        NET[2](x1, None, "ntk", mask_constant=C),
        rtol=1e-14,
    )
    with pytest.raises(ValueError, match="x1.*finite"):
        NET[2](with_nan, None, "ntk", mask_constant=5.0)


@pytest.mark.parametrize("bad", ["10", True, 1j, [1.0, 2.0], np.ones(2), object()])
def test_bad_mask_constant_is_a_clear_error(bad):
    x = masked_inputs(3)
    with pytest.raises(ValueError, match="mask_constant.*real scalar"):
        NET[2](x, None, "nngp", mask_constant=bad)
    with pytest.raises(ValueError, match="mask_constant.*real scalar"):
        NET[1]([(), (), ()], x, mask_constant=bad)  # refused before the parameters are used


def test_integer_and_traced_mask_constants():
    x = masked_inputs(3)
    ref = NET[2](x, None, "nngp", mask_constant=C)
    np.testing.assert_allclose(NET[2](x, None, "nngp", mask_constant=10), ref, rtol=1e-14)
    jitted = jax.jit(NET[2], static_argnames="get")  # mask_constant traced, as in NT's tests
    np.testing.assert_allclose(jitted(x, None, "nngp", mask_constant=C), ref, rtol=1e-12)


def test_channel_varying_masks_are_refused_where_nt_refuses_them():
    x = masked_inputs(3)  # sample 1 masks one channel only
    with pytest.raises(NotImplementedError, match="channel-wise masks"):  # Flatten's mask
        stax.serial(stax.Dense(4), stax.Flatten(), stax.Erf())[2](x, None, "nngp", mask_constant=C)
    # ABRelu does not remask (NT's remask_kernel=False): allowed, then Dense reduces.
    net = stax.serial(stax.Dense(8), stax.LayerNorm(), stax.Dense(1))
    assert net[2](x, None, "nngp", mask_constant=C).shape == (3, 3, 5, 5)
    with pytest.raises(NotImplementedError, match="LayerNorm"):
        stax.serial(stax.Dense(8), stax.Flatten(), stax.LayerNorm())[2](
            x, None, "nngp", mask_constant=C
        )


def test_apply_fn_returns_masked_array_and_unmask_fn_zeroes_it():
    x = masked_inputs(4)
    m = position_mask(x)
    params = NET[0](jax.random.PRNGKey(3), x.shape)[1]
    apply = jax.jit(NET[1])  # MaskedArray is a pytree; mask_constant is traced
    out = apply(params, x, mask_constant=C)
    assert isinstance(out, stax.MaskedArray)
    np.testing.assert_array_equal(out.mask[..., 0], m)
    plain = stax.unmask_fn(apply)(params, x, mask_constant=C)
    ref = apply(params, zero_filled(x))
    np.testing.assert_allclose(plain, np.where(m[..., None], 0.0, ref), rtol=1e-12)
    # Without mask_constant nothing changes (a plain array comes back).
    assert not isinstance(apply(params, x), stax.MaskedArray)


def test_repeat_carries_masks_like_serial():
    block = stax.serial(stax.Dense(16, 1.2, 0.1), stax.Relu())
    rep, ser = stax.repeat(block, 2), stax.serial(block, block)
    x = masked_inputs(3)
    np.testing.assert_allclose(
        rep[2](x, None, "ntk", mask_constant=C), ser[2](x, None, "ntk", mask_constant=C),
        rtol=1e-12,
    )
    shape = (3, 5, 16)
    h = zero_filled(x) @ np.ones((3, 16)) / 3  # an input of the repeated block's width
    h[0, 1, :] = C
    p_rep = rep[0](jax.random.PRNGKey(0), shape)[1]
    p_ser = [jax.tree.map(lambda p, i=i: p[i], p_rep) for i in range(2)]
    a = jax.jit(stax.unmask_fn(rep[1]))(p_rep, h, mask_constant=C)
    b = jax.jit(stax.unmask_fn(ser[1]))(p_ser, h, mask_constant=C)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.all(np.asarray(a)[0, 1] == 0)


def test_fan_in_masks():
    x = masked_inputs(3)
    m = position_mask(x)
    branches = stax.parallel(stax.Dense(8, 1.1, 0.1), stax.Dense(4, 0.7, 0.2))
    concat = stax.serial(stax.FanOut(2), branches, stax.FanInConcat())
    k = concat[2](x, None, ("nngp", "mask1"), mask_constant=C)
    assert k.mask1.shape == (3, 5, 12)  # NT's _concat_masks broadcasts to the widths
    np.testing.assert_array_equal(k.mask1, np.broadcast_to(m[..., None], (3, 5, 12)))
    ref = concat[2](zero_filled(x), None, "nngp")
    np.testing.assert_allclose(k.nngp, remasked(ref, m, m), rtol=1e-12)
    total = stax.serial(stax.Dense(3, 0.8), stax.FanOut(2),
                        stax.parallel(stax.Dense(3, 1.1, 0.1), stax.Identity()), stax.FanInSum())
    k = total[2](x, None, ("nngp", "mask1"), mask_constant=C)
    np.testing.assert_array_equal(k.mask1[..., 0], m)  # the AND of equal masks
    ref = total[2](zero_filled(x), None, "nngp")
    np.testing.assert_allclose(k.nngp, remasked(ref, m, m), rtol=1e-12)


def test_index_slices_the_masks():
    x = masked_inputs(3)
    m = position_mask(x)
    net = stax.serial(stax.Dense(8, 1.0, 0.1), stax.Index(stax.Slice[:, 1:4]), stax.Dense(1))
    k = net[2](x, None, ("nngp", "mask1"), mask_constant=C)
    np.testing.assert_array_equal(k.mask1[..., 0], m[:, 1:4])
    ref = net[2](zero_filled(x), None, "nngp")
    np.testing.assert_allclose(k.nngp, remasked(ref, m[:, 1:4], m[:, 1:4]), rtol=1e-12)


def test_tuple_inputs_are_masked_per_input():
    a, b = masked_inputs(3)[:, :, 0], masked_inputs(3, seed=2)[:, :, 1]
    a[2, :] = C
    net = stax.serial(stax.parallel(stax.Dense(8, 1.0, 0.2), stax.Dense(8, 1.5, 0.1)),
                      stax.FanInSum(), stax.Dense(1))
    k = net[2]((a, b), None, ("nngp", "mask1"), mask_constant=C)
    ref = np.asarray(net[2]((zero_filled(a), zero_filled(b)), None, "nngp"))
    # The Dense of `a` remasks its fully masked samples (1 and 2), whose zero-filled
    # kernel there is the bias variance 0.2**2; FanInSum's mask is the AND of the
    # branches, and `b` masks no sample fully: nothing stays masked.
    ma = np.all(a == C, axis=-1)
    assert list(ma) == [False, True, True]
    np.testing.assert_allclose(k.nngp, ref - 0.2**2 * (ma[:, None] | ma[None, :]), rtol=1e-12)
    assert not np.any(k.mask1)


def test_layer_norm_apply_uses_unmasked_channels():
    x = masked_inputs(2)
    ln = stax.LayerNorm()
    out = jax.jit(ln[1])((), x, mask_constant=C).masked_value
    keep = x[1, 0, 1:]  # sample 1 masks channel 0: NT's mean_and_var with the mask
    mean = keep.sum() / 2
    var = (((keep - mean) ** 2).sum() + mean**2) / 2  # masked entries count as zeros
    np.testing.assert_allclose(out[1, 0, 1:], (keep - mean) / np.sqrt(var + 1e-12), rtol=1e-10)


@pytest.mark.slow
def test_monte_carlo_ntk_agrees_with_masked_kernel():
    """Finite networks with unmask_fn(apply_fn) converge to kernel_fn(mask_constant=c).

    As NT's MaskingTest (there width 512, 128 samples, tolerance 0.04; here width 256,
    32 samples, 0.06). The NTK involves every layer's NNGP and the remasking of each.
    """
    net = stax.serial(
        stax.Dense(256, 1.2, 0.2), stax.Erf(), stax.Flatten(), stax.Dense(1, 0.9, 0.1)
    )
    x1, x2 = masked_inputs(3), masked_inputs(2, seed=1)
    x1[2] = C  # a fully masked sample: its rows are zero in both
    mc = gantk.monte_carlo_kernel_fn(net[0], stax.unmask_fn(net[1]), jax.random.PRNGKey(5), 32)
    exact = np.asarray(net[2](x1, x2, "ntk", mask_constant=C))
    est = np.asarray(mc(x1, x2, "ntk", mask_constant=C))
    assert np.all(exact[2] == 0) and np.all(est[2] == 0)
    assert np.max(np.abs(est - exact)) / np.max(np.abs(exact)) < 0.06
    # Without the mask the kernel differs by far more (the test can fail).
    plain = np.asarray(net[2](zero_filled(x1), zero_filled(x2), "ntk"))
    assert np.max(np.abs(plain - exact)) / np.max(np.abs(exact)) > 0.2


def test_mask_constant_is_compared_in_the_input_dtype():
    x = np.ones((2, 3), np.float32)
    x[0, :] = 0.1
    _, apply_fn, kernel_fn = stax.Dense(4, 1.0, 0.5)
    # float32(0.1) != float64(0.1): NT compares with a weakly typed Python float.
    assert np.asarray(kernel_fn(x, None, "nngp", mask_constant=0.1))[0, 0] == 0
    ints = np.array([[3, 1], [3, 3]])
    mask = apply_fn([np.ones((2, 4)), None], ints, mask_constant=3).mask
    np.testing.assert_array_equal(mask[:, 0], [False, True])


def test_batched_kernel_concatenates_the_masks_of_its_tiles():
    x1, x2 = masked_inputs(5), masked_inputs(4, seed=3)
    kfn = stax.serial(stax.Dense(8, 1.0, 0.2), stax.Erf(), stax.Dense(1))[2]
    ref = kfn(x1, x2, None, mask_constant=C)
    out = gantk.batch(kfn, batch_size=2)(x1, x2, None, mask_constant=C)
    np.testing.assert_allclose(out.ntk, ref.ntk, rtol=1e-12)
    np.testing.assert_array_equal(out.mask1, ref.mask1)
    np.testing.assert_array_equal(out.mask2, ref.mask2)
    assert out.mask1.shape[0] == 5 and out.mask2.shape[0] == 4
    # NT's tuple-input convention x2 = (None, None) means x2 = x1, also in tiles
    net = stax.serial(stax.parallel(stax.Dense(8), stax.Dense(8)), stax.FanInSum(),
                      stax.Dense(1))
    a, b = x1[:, :, 0], x1[:, :, 1]
    tiled = gantk.batch(net[2], batch_size=2)((a, b), (None, None), "nngp")
    np.testing.assert_allclose(tiled, net[2]((a, b), None, "nngp"), rtol=1e-12)
