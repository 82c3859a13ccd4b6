"""Tests of gantk.losses: the (a, b, c) table, lookup, hashing and validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import losses

F = np.linspace(-4.0, 4.0, 41)


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


def relu(x):
    return np.maximum(x, 0.0)


TABLE = {
    "ipm": (lambda f: f, lambda f: -f, lambda f: -f, "ipm"),
    "lsgan": (lambda f: (f + 1) ** 2, lambda f: (f - 1) ** 2, lambda f: f**2, "quadratic"),
    "vanilla": (
        softplus,
        lambda f: softplus(-f),
        lambda f: softplus(-f),
        "nonlinear",
    ),
    "vanilla_saturating": (
        softplus,
        lambda f: softplus(-f),
        lambda f: -softplus(f),
        "nonlinear",
    ),
    "hinge": (lambda f: relu(1 + f), lambda f: relu(1 - f), lambda f: -f, "nonlinear"),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_table_values(name):
    loss = losses.get(name)
    a, b, c, kind = TABLE[name]
    x = jnp.asarray(F)
    np.testing.assert_allclose(loss.a(x), a(F), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss.b(x), b(F), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss.c(x), c(F), rtol=1e-12, atol=1e-12)
    assert loss.kind == kind
    assert loss.name == name
    # Unpacks as the (a, b, c) triple.
    a2, b2, c2 = loss
    assert (a2, b2, c2) == (loss.a, loss.b, loss.c)


def test_vanilla_is_log_sigmoid_form():
    x = jnp.asarray(F)
    d = jax.nn.sigmoid(x)
    v, s = losses.get("vanilla"), losses.get("vanilla_saturating")
    np.testing.assert_allclose(v.a(x), -jnp.log1p(-d), rtol=1e-10)  # -log(1 - D(fake))
    np.testing.assert_allclose(v.b(x), -jnp.log(d), rtol=1e-10)  # -log D(real)
    np.testing.assert_allclose(v.c(x), -jnp.log(d), rtol=1e-10)  # non-saturating
    np.testing.assert_allclose(s.c(x), jnp.log1p(-d), rtol=1e-10)  # minimax log(1 - D)


def test_discriminator_and_generator_loss():
    loss = losses.get("lsgan")
    ff, fr = jnp.array([0.5, -1.0, 2.0]), jnp.array([1.0, 3.0])
    expected = np.mean([(0.5 + 1) ** 2, 0.0, 9.0]) + np.mean([0.0, 4.0])
    np.testing.assert_allclose(loss.discriminator_loss(ff, fr), expected, rtol=1e-12)
    np.testing.assert_allclose(loss.generator_loss(ff), [0.25, 1.0, 4.0], rtol=1e-12)


def test_lsgan_generator_target_option():
    loss = losses.lsgan(gen_target=1.0)
    x = jnp.asarray(F)
    np.testing.assert_allclose(loss.c(x), (F - 1) ** 2, rtol=1e-12)
    assert loss.targets == (-1.0, 1.0)
    assert loss.kind == "quadratic"
    other = losses.lsgan(fake_target=0.0, real_target=1.0)
    np.testing.assert_allclose(other.a(x), F**2, rtol=1e-12)
    assert other.targets == (0.0, 1.0)
    with pytest.raises(ValueError, match="gen_target"):
        losses.lsgan(gen_target=float("nan"))


def test_get_passes_loss_through_and_accepts_triples():
    loss = losses.lsgan(gen_target=1.0)
    assert losses.get(loss) is loss
    custom = losses.get((jnp.square, jnp.abs, jnp.negative))
    assert custom.kind == "nonlinear" and custom.name == "custom"
    np.testing.assert_allclose(custom.b(jnp.asarray(-2.0)), 2.0)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="'ipm'.*'lsgan'.*'vanilla'.*'hinge'.*got 'wgan'"):
        losses.get("wgan")
    with pytest.raises(ValueError, match="loss"):
        losses.get(3)


def test_hashable_and_equal_so_jit_caches():
    assert losses.get("lsgan") == losses.get("lsgan")
    assert hash(losses.get("lsgan")) == hash(losses.get("lsgan"))
    assert losses.lsgan(gen_target=1.0) == losses.lsgan(gen_target=1.0)
    assert losses.lsgan(gen_target=1.0) != losses.get("lsgan")
    assert hash(losses.get("hinge")) == hash(losses.get("hinge"))

    traces = []

    def gen_loss(loss, f):
        traces.append(1)
        return loss.c(f)

    fn = jax.jit(gen_loss, static_argnums=0)
    x = jnp.ones(3)
    fn(losses.get("lsgan"), x)
    fn(losses.get("lsgan"), x)
    assert len(traces) == 1
    np.testing.assert_allclose(fn(losses.get("ipm"), x), -x)


def test_smooth_flags():
    assert not losses.get("hinge").smooth
    for name in ("ipm", "lsgan", "vanilla", "vanilla_saturating"):
        assert losses.get(name).smooth


def test_loss_validation():
    with pytest.raises(ValueError, match="`a`"):
        losses.Loss(1.0, jnp.abs, jnp.abs)
    with pytest.raises(ValueError, match="kind"):
        losses.Loss(jnp.abs, jnp.abs, jnp.abs, kind="quadratic")
    with pytest.raises(ValueError, match="targets"):
        losses.Loss(jnp.square, jnp.square, jnp.square, kind="quadratic")
    # Claims to be linear with targets (-1, 1) but a = f^2 is centred at 0.
    with pytest.raises(ValueError, match=r"\(f - -1.0\)\^2"):
        losses.Loss(jnp.square, jnp.square, jnp.square, kind="quadratic", targets=(-1, 1))
    # Claims to be IPM but is not affine.
    with pytest.raises(ValueError, match="affine"):
        losses.Loss(jnp.square, jnp.negative, jnp.negative, kind="ipm")
    with pytest.raises(ValueError, match="targets"):
        losses.Loss(jnp.abs, jnp.abs, jnp.abs, targets=(0.0, 1.0))
    # A valid custom affine loss: a = 2 f, b = -f.
    ok = losses.Loss(lambda f: 2 * f, jnp.negative, jnp.negative, kind="ipm")
    assert ok.kind == "ipm"
