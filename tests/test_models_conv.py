"""DCGAN layers as matmuls (``impl="matmul"``) equal flax's convolutions, values and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk.models import conv
from gantk.models.conv import (
    DCGANDecoder,
    DCGANEncoder,
    _Conv4x4,
    _gram,
    conv4x4_s2,
    conv_transpose4x4_s2,
)


def _rand(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


# kind, input shape, output channels, output shape
# ("down" in both matmul forms: im2col for small frames or O > 2C (2 → 8 channels of 32×32),
# col2im for 2 → 3 channels of 32×32; "up" whole-batch, chunked with a
# remainder chunk (5 frames in chunks of 2), with 128 input channels, with a thin output,
# and with a kernel gradient summed over row blocks (4096 rows × 256 by 4096 × 32, see _gram))
_KINDS = [("down", (2, 8, 6, 3), 5, (2, 4, 3, 5)), ("down", (1, 32, 34, 2), 3, (1, 16, 17, 3)),
          ("down", (1, 32, 34, 2), 8, (1, 16, 17, 8)),
          ("up", (2, 4, 3, 3), 9, (2, 8, 6, 9)), ("up", (1, 3, 2, 128), 8, (1, 6, 4, 8)),
          ("up", (5, 16, 16, 4), 64, (5, 32, 32, 64)),
          ("up", (2, 4, 3, 5), 1, (2, 8, 6, 1)), ("up", (16, 16, 16, 32), 16, (16, 32, 32, 16)),
          ("valid", (2, 4, 4, 3), 5, (2, 1, 1, 5)), ("first", (2, 1, 1, 3), 5, (2, 4, 4, 5))]


@pytest.mark.parametrize("kind,shape,out,out_shape", _KINDS)
def test_matmul_layer_equals_flax_convolution(kind, shape, out, out_shape, monkeypatch):
    """Each of the four layer kinds: same value and same input and kernel gradients as the
    flax/lax convolution with the same kernel (float32 rounding). The gradients of the
    transposed convolutions run in chunks of 512 windows here (2 frames of 16×16: the 5-frame
    batch in chunks of 2 + a remainder, the 16-frame one in 8 chunks)."""
    monkeypatch.setattr(conv, "_GRAD_CHUNK_ROWS", 512)
    x = _rand(shape, 0)
    fast, slow = _Conv4x4(out, kind, "matmul"), _Conv4x4(out, kind, "lax")
    k = jax.jit(slow.init)(jax.random.key(0), x)["params"]["kernel"]

    @jax.jit
    def value_and_grads(x, k):
        def read(m):
            return lambda x, k: jnp.sum(jnp.sin(3 * m.apply({"params": {"kernel": k}}, x)))
        return [(m.apply({"params": {"kernel": k}}, x), jax.grad(read(m), (0, 1))(x, k))
                for m in (fast, slow)]

    (yf, gf), (ys, gs) = value_and_grads(x, k)
    assert yf.shape == ys.shape == out_shape
    np.testing.assert_allclose(np.asarray(yf), np.asarray(ys), rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(ys))) > 0.01
    for a, b in zip(gf, gs, strict=True):  # float32 sums of up to 16·128 products
        scale = float(jnp.max(jnp.abs(b)))
        assert scale > 0.01
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=2e-6 * scale)
    # and the "up" layer is flax's ConvTranspose (PyTorch's ConvTranspose2d(4, 2, 1))
    if kind == "up":
        ref = nn.ConvTranspose(out, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                               use_bias=False).apply({"params": {"kernel": k}}, x)
        np.testing.assert_allclose(np.asarray(yf), np.asarray(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("c,o,h,col2im", [(5, 64, 64, False), (1, 16, 64, False),
                                           (32, 128, 32, False), (16, 32, 32, True),
                                           (64, 128, 32, True), (256, 512, 16, False)])
def test_stride2_form_choice(c, o, h, col2im):
    """col2im (the hand-differentiated form) exactly for O <= 2C and an output of >= 16
    pixels a side; im2col otherwise (e.g. the PDE encoder's 5 stacked frames to 64)."""
    jaxpr = str(jax.make_jaxpr(conv4x4_s2)(jnp.zeros((1, h, h, c)), jnp.zeros((4, 4, c, o))))
    assert ("custom_vjp" in jaxpr) == col2im


@pytest.mark.parametrize("m,p,q,split", [(8192, 512, 16, True), (8192, 16, 512, True),
                                         (4098, 256, 32, True), (4097, 256, 16, False),
                                         (100, 512, 4, False), (8192, 64, 64, False)])
def test_gram_row_blocks_equal_one_product(m, p, q, split):
    """``_gram(a, b) = aᵀb``, whether it splits the rows into blocks (tall, widths 4× apart
    and the wide one ≥ 256, even row count) or not, compared with a float64 product."""
    a, b = _rand((m, p), 1), _rand((m, q), 2)
    exact = np.asarray(a, np.float64).T @ np.asarray(b, np.float64)
    np.testing.assert_allclose(np.asarray(_gram(a, b)), exact, rtol=0, atol=2e-4 * m ** 0.5)
    assert ("reduce_sum" in str(jax.make_jaxpr(_gram)(a, b))) == split


def test_bad_kernel_and_impl():
    with pytest.raises(ValueError, match="kernel"):
        conv4x4_s2(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 1)))
    with pytest.raises(ValueError, match="even"):
        conv4x4_s2(jnp.zeros((1, 5, 4, 2)), jnp.zeros((4, 4, 2, 1)))
    with pytest.raises(ValueError, match="kernel"):
        conv_transpose4x4_s2(jnp.zeros((1, 4, 4, 2)), jnp.zeros((4, 4, 3, 1)))
    with pytest.raises(ValueError, match="impl"):
        DCGANEncoder(size=32, nf=2, nh=3, impl="cudnn").init(jax.random.key(0),
                                                              jnp.zeros((1, 32, 32, 1)))


def test_dcgan_matmul_and_lax_share_parameters_and_outputs():
    """Checkpoints are interchangeable: same parameter tree, same encodings and frames."""
    x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 1), jnp.float32)
    h = _rand((3, 6), 3)
    for fast, slow, inp in ((DCGANEncoder(32, 4, 5), DCGANEncoder(32, 4, 5, impl="lax"), x),
                            (DCGANDecoder(32, 4, 1), DCGANDecoder(32, 4, 1, impl="lax"), h)):
        shapes = jax.eval_shape(fast.init, jax.random.key(0), inp)
        v = jax.jit(slow.init)(jax.random.key(0), inp)
        assert jax.tree.structure(shapes) == jax.tree.structure(v)
        assert all(a.shape == b.shape and a.dtype == b.dtype  # float32 even under x64
                   for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(v), strict=True))
        run = jax.jit(lambda v, m=None, inp=inp: m.apply(v, inp, True, mutable=["batch_stats"])[0],
                      static_argnames="m")
        a, b = run(v, m=fast), run(v, m=slow)
        assert a.shape == b.shape and float(jnp.std(b)) > 0.01
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_transposed_convolution_vmap_and_second_order_gradient():
    """The hand-written gradient of the transposed convolution composes: vmap equals a loop,
    and grad of grad equals lax's (reverse over reverse); forward mode raises."""
    x, k = _rand((5, 16, 16, 4), 1), 0.1 * _rand((4, 4, 4, 64), 2)  # chunked: 2 + 2 + 1

    def lax_t(x, k):
        return jax.lax.conv_transpose(x, k, (2, 2), ((2, 2), (2, 2)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))

    batched = jax.jit(jax.vmap(conv_transpose4x4_s2, (None, 0)))(x, jnp.stack([k, -2 * k]))
    np.testing.assert_allclose(np.asarray(batched[1]), -2 * np.asarray(lax_t(x, k)),
                               rtol=1e-5, atol=1e-5)

    def second(f):
        def inner(x, k):
            return jnp.sum(jnp.sin(f(x, k)))
        return jax.jit(jax.grad(lambda x, k: jnp.sum(jax.grad(inner, 1)(x, k) ** 2), (0, 1)))

    for a, b in zip(second(conv_transpose4x4_s2)(x, k), second(lax_t)(x, k), strict=True):
        scale = float(jnp.max(jnp.abs(b)))
        assert scale > 0.01
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5 * scale)
    # gradients keep each argument's dtype (float32 frames, float64 kernel under x64)
    with jax.enable_x64(True):
        for f, xs in ((conv_transpose4x4_s2, x), (conv4x4_s2, _rand((2, 32, 32, 3), 3))):
            kk = jnp.ones((4, 4, xs.shape[-1], 2), jnp.float64)
            gx, gk = jax.grad(lambda a, b, f=f: jnp.sum(f(a, b)), (0, 1))(xs, kk)
            assert gx.dtype == jnp.float32 and gk.dtype == jnp.float64
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda x: conv_transpose4x4_s2(x, k), (x,), (x,))


def test_group_batchnorm_equals_separate_calls():
    """GroupBatchNorm(G) on G·B frames = nn.BatchNorm called on each group of B in turn: same
    outputs, running averages as after the G sequential updates; eval mode uses them."""
    groups, b = 5, 4
    x = 2 * _rand((groups * b, 6, 6, 3), 4) + 1 + jnp.arange(groups * b)[:, None, None, None] / 5
    v = {"params": {"scale": jnp.array([1.0, 2.0, 3.0]), "bias": jnp.array([-1.0, 0.0, 1.0])},
         "batch_stats": {"mean": jnp.full(3, 0.3), "var": jnp.full(3, 2.0)}}
    bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    outs, stats = [], v["batch_stats"]
    for g in range(groups):
        o, upd = bn.apply({"params": v["params"], "batch_stats": stats}, x[g * b:(g + 1) * b],
                          mutable=["batch_stats"])
        outs.append(o)
        stats = upd["batch_stats"]
    out, upd = conv.GroupBatchNorm(groups).apply(v, x, False, mutable=["batch_stats"])
    np.testing.assert_allclose(out, jnp.concatenate(outs), atol=1e-5)
    for name in ("mean", "var"):
        np.testing.assert_allclose(upd["batch_stats"][name], stats[name], rtol=1e-5)
    # pooled statistics differ (the groups have different means)
    assert float(jnp.abs(out - bn.apply(v, x, mutable=["batch_stats"])[0]).max()) > 0.1
    np.testing.assert_allclose(
        conv.GroupBatchNorm(groups).apply(v, x, True),
        nn.BatchNorm(use_running_average=True, epsilon=1e-5).apply(v, x), atol=1e-6)
    assert jax.tree.structure(conv.GroupBatchNorm(2).init(jax.random.key(0), x, False)) == \
        jax.tree.structure(bn.init(jax.random.key(0), x))
    with pytest.raises(ValueError, match="`groups`"):
        conv.GroupBatchNorm(3).apply(v, x, False, mutable=["batch_stats"])


def test_decoder_groups_equal_separate_calls():
    """DCGANDecoder(groups=G) on G·B rows = G decoder calls on B rows each (training mode);
    groups=1 is the plain decoder; a bad ``groups`` raises."""
    d = DCGANDecoder(32, 4, 1)
    h = _rand((3 * 2, 7), 5)
    v = d.init(jax.random.key(3), h)
    run = jax.jit(lambda v, h, g: d.apply(v, h, groups=g, mutable=["batch_stats"]),
                  static_argnums=2)
    full, upd = run(v, h, 3)
    sep, stats = [], v["batch_stats"]
    for g in range(3):
        o, u = run({"params": v["params"], "batch_stats": stats}, h[2 * g:2 * g + 2], 1)
        sep.append(o)
        stats = u["batch_stats"]
    np.testing.assert_allclose(full, jnp.concatenate(sep), atol=1e-5)
    for a, b in zip(jax.tree.leaves(upd["batch_stats"]), jax.tree.leaves(stats), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(full - run(v, h, 1)[0]).max()) > 1e-3  # pooled statistics differ
    for bad in (0, 4, True, 1.5):
        with pytest.raises(ValueError, match="`groups`"):
            run(v, h, bad)
