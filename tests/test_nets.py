"""Finite-width twins (gantk.nets): layout, empirical NTK, antisymmetry, SGD training."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from jax.scipy.special import erf

from gantk import losses, nets
from gantk.architectures import MLPSpec


def _points(key, n, d=2):
    return jax.random.normal(jax.random.PRNGKey(key), (n, d), dtype=jnp.float64)


def _explicit_ntk(apply_fn, params, x1, x2):
    """J1 J2ᵀ with J the (n, P) Jacobian w.r.t. the flattened parameter vector."""
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def jac(v, x):
        return jax.jacfwd(lambda w: apply_fn(unravel(w), x))(v)

    return jac(flat, x1) @ jac(flat, x2).T


# ---------------------------------------------------------------- layout & activations


def test_layout_matches_spec():
    spec = MLPSpec("relu", depth=3, width=7, b_std=1.0)
    params = nets.init_discriminator(jax.random.PRNGKey(0), spec, 3, antisymmetric=False)
    shapes = jax.tree.map(lambda t: t.shape, params)
    assert shapes == {
        "hidden_0": {"kernel": (3, 7), "bias": (7,)},
        "hidden_1": {"kernel": (7, 7), "bias": (7,)},
        "hidden_2": {"kernel": (7, 7), "bias": (7,)},
        "readout": {"kernel": (7, 1)},  # out_b_std = 0: no read-out bias
    }
    nobias = spec.replace(b_std=0.0, out_b_std=0.5, depth=1)
    params = nets.init_discriminator(jax.random.PRNGKey(0), nobias, 3, antisymmetric=False)
    assert jax.tree.map(lambda t: t.shape, params) == {
        "hidden_0": {"kernel": (3, 7)},
        "readout": {"kernel": (7, 1), "bias": (1,)},
    }
    assert jax.tree.leaves(params)[0].dtype == jnp.float64


def test_forward_matches_manual_ntk_parameterization():
    spec = MLPSpec("erf", depth=2, width=5, W_std=1.3, b_std=0.7, out_W_std=0.9, out_b_std=0.4,
                   act_params=(("a", 2.0), ("b", 0.5), ("c", 0.1)))
    params = nets.init_discriminator(jax.random.PRNGKey(1), spec, 3, antisymmetric=False)
    x = _points(2, 4, 3)

    def act(z):
        return 2.0 * erf(0.5 * z) + 0.1

    p = params
    h = 1.3 / math.sqrt(3) * x @ p["hidden_0"]["kernel"] + 0.7 * p["hidden_0"]["bias"]
    h = 1.3 / math.sqrt(5) * act(h) @ p["hidden_1"]["kernel"] + 0.7 * p["hidden_1"]["bias"]
    out = 0.9 / math.sqrt(5) * act(h) @ p["readout"]["kernel"] + 0.4 * p["readout"]["bias"]
    f = nets.discriminator_apply(spec)(params, x)
    assert f.shape == (4,)
    np.testing.assert_allclose(f, out[:, 0], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("relu", (), lambda x: np.maximum(x, 0)),
        ("leaky_relu", (("alpha", 0.3),), lambda x: np.where(x > 0, x, 0.3 * x)),
        ("abs", (), np.abs),
        ("abrelu", (("a", -0.5), ("b", 2.0)),
         lambda x: -0.5 * np.minimum(x, 0) + 2.0 * np.maximum(x, 0)),
        ("gelu", (), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
        ("sin", (("a", 2.0), ("b", 3.0), ("c", 0.5)), lambda x: 2.0 * np.sin(3.0 * x + 0.5)),
        ("rbf", (("gamma", 0.5),), lambda x: math.sqrt(2) * np.sin(x + math.pi / 4)),
        ("identity", (), lambda x: x),
    ],
)
def test_activations(name, params, expected):
    z = np.linspace(-3, 3, 13)
    act = nets.activation_fn(MLPSpec(name, act_params=params))
    np.testing.assert_allclose(act(jnp.asarray(z)), expected(z), rtol=1e-12, atol=1e-14)


def test_standard_parameterization_same_function_at_init():
    ntk_spec = MLPSpec("gelu", depth=2, width=16, W_std=1.5, b_std=0.3, out_b_std=0.2)
    std_spec = ntk_spec.replace(parameterization="standard")
    x = _points(3, 6)
    key = jax.random.PRNGKey(4)
    p_ntk = nets.init_discriminator(key, ntk_spec, 2, antisymmetric=False)
    p_std = nets.init_discriminator(key, std_spec, 2, antisymmetric=False)
    # standard weights are the same draws, pre-scaled by W_std/sqrt(fan_in) (bias: b_std)
    np.testing.assert_allclose(
        p_std["hidden_1"]["kernel"], 1.5 / 4.0 * p_ntk["hidden_1"]["kernel"], rtol=1e-14
    )
    f_ntk = nets.discriminator_apply(ntk_spec)(p_ntk, x)
    f_std = nets.discriminator_apply(std_spec)(p_std, x)
    np.testing.assert_allclose(f_std, f_ntk, rtol=1e-12, atol=1e-12)
    assert float(jnp.std(f_ntk)) > 0.05


# ---------------------------------------------------------------- empirical NTK


@pytest.mark.parametrize(
    ("spec", "antisymmetric"),
    [
        (MLPSpec("relu", depth=3, width=12), False),
        (MLPSpec("erf", depth=2, width=9, b_std=0.5, out_b_std=0.3,
                 parameterization="standard"), False),
        (MLPSpec("relu", depth=2, width=8, b_std=0.0), True),
    ],
)
@pytest.mark.parametrize("implementation", nets.NTK_IMPLEMENTATIONS)
def test_empirical_ntk_matches_explicit_jacobian(spec, antisymmetric, implementation):
    apply_fn = nets.discriminator_apply(spec, antisymmetric=antisymmetric)
    params = nets.init_discriminator(jax.random.PRNGKey(5), spec, 2, antisymmetric=antisymmetric)
    if antisymmetric:  # move away from θ' = θ so both halves matter
        params = {"a": params["a"], "b": jax.tree.map(lambda t: 0.8 * t, params["b"])}
    x1, x2 = _points(6, 5), _points(7, 3)
    ntk_fn = nets.empirical_ntk(apply_fn, implementation)
    expected = _explicit_ntk(apply_fn, params, x1, x2)
    got = ntk_fn(x1, x2, params)
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    # x2=None means x1; jit-able with params as a traced argument
    got11 = jax.jit(ntk_fn)(x1, None, params)
    np.testing.assert_allclose(got11, _explicit_ntk(apply_fn, params, x1, x1), rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(got11, got11.T, rtol=1e-12, atol=1e-12)
    assert float(jnp.linalg.eigvalsh(got11)[0]) > -1e-9


def test_antisymmetric_zero_at_init_and_same_ntk():
    spec = MLPSpec("relu", depth=3, width=32)
    key = jax.random.PRNGKey(8)
    anti = nets.init_discriminator(key, spec, 2, antisymmetric=True)
    plain = nets.init_discriminator(key, spec, 2, antisymmetric=False)
    # same θ as the plain net with this key, and θ' = θ
    for a, b, c in zip(jax.tree.leaves(anti["a"]), jax.tree.leaves(anti["b"]),
                       jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    x = _points(9, 6)
    f0 = nets.discriminator_apply(spec, antisymmetric=True)(anti, x)
    np.testing.assert_array_equal(f0, np.zeros(6))
    assert float(jnp.std(nets.discriminator_apply(spec)(plain, x))) > 0.1
    k_anti = nets.empirical_ntk(nets.discriminator_apply(spec, antisymmetric=True))(x, None, anti)
    k_plain = nets.empirical_ntk(nets.discriminator_apply(spec))(x, None, plain)
    np.testing.assert_allclose(k_anti, k_plain, rtol=1e-12, atol=1e-12)
    # the module's own init also gives θ' = θ
    module = nets.mlp_from_spec(spec, width=4, antisymmetric=True)
    variables = module.init(key, x)
    np.testing.assert_array_equal(module.apply(variables, x), np.zeros(6))


# ---------------------------------------------------------------- finite discriminator


def test_single_sgd_step_matches_manual_update():
    spec = MLPSpec("relu", depth=2, width=16)
    loss = losses.get("lsgan")
    params = nets.init_discriminator(jax.random.PRNGKey(10), spec, 2, antisymmetric=False)
    fake, real = _points(11, 5), _points(12, 4) + 1.0
    apply_fn = nets.discriminator_apply(spec)

    def objective(p):
        return jnp.mean(loss.a(apply_fn(p, fake))) + jnp.mean(loss.b(apply_fn(p, real)))

    grads = jax.grad(objective)(params)
    expected = jax.tree.map(lambda p, g: p - 0.05 * g, params, grads)
    D = nets.fit_finite_discriminator(loss, spec, params, fake, real, 123.0, 0.05, steps=1)
    assert D.steps == 1 and D.time == pytest.approx(0.05)
    for got, exp in zip(jax.tree.leaves(D.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-13, atol=1e-13)
    # steps = round(time / lr), and training decreases the loss
    D = nets.fit_finite_discriminator("lsgan", spec, params, fake, real, 1.0, 0.05)
    assert D.steps == 20
    assert float(objective(D.params)) < 0.7 * float(objective(params))
    D0 = nets.fit_finite_discriminator("lsgan", spec, params, fake, real, 0.0, 0.05)
    np.testing.assert_array_equal(D0(fake), apply_fn(params, fake))


def test_ipm_linear_regime_and_velocity():
    """IPM has a constant functional gradient: f_τ = τ (mean_real K − mean_fake K) + O(1/√n)."""
    spec = MLPSpec("relu", depth=3, width=1024)
    params = nets.init_discriminator(jax.random.PRNGKey(13), spec, 2)
    fake, real = _points(14, 4), _points(15, 3) + jnp.array([1.0, 0.0])
    grid = _points(16, 10)
    tau = 1.0
    D = nets.fit_finite_discriminator("ipm", spec, params, fake, real, tau, 0.1)
    k = nets.empirical_ntk(nets.discriminator_apply(spec, antisymmetric=True))
    f_lin = tau * (k(grid, real, params).mean(1) - k(grid, fake, params).mean(1))
    f = D(grid)
    rel = float(jnp.linalg.norm(f - f_lin) / jnp.linalg.norm(f_lin))
    assert rel < 0.03, rel
    # velocity = −∇_x c(f(x)) = ∇_x f(x) for IPM; check with central differences
    v = D.velocity(grid)
    assert v.shape == grid.shape
    eps = 1e-5
    for j in range(2):
        e = jnp.zeros(2).at[j].set(eps)
        fd = (D(grid + e) - D(grid - e)) / (2 * eps)
        np.testing.assert_allclose(v[:, j], fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(D.generator_loss(grid), -f, rtol=1e-14)
    vals, vel = D.value_and_velocity(grid)
    np.testing.assert_allclose(vals, -f, rtol=1e-14)
    np.testing.assert_allclose(vel, v, rtol=1e-14)


def test_finite_discriminator_is_a_jittable_pytree():
    spec = MLPSpec("relu", depth=2, width=8)
    params = nets.init_discriminator(jax.random.PRNGKey(17), spec, 2)
    fake, real = _points(18, 3), _points(19, 3)
    D = nets.fit_finite_discriminator("lsgan", spec, params, fake, real, 0.5, 0.1)
    leaves, treedef = jax.tree.flatten(D)
    assert len(leaves) == len(jax.tree.leaves(params))
    v_jit = jax.jit(lambda D, x: D.velocity(x))(D, fake)
    np.testing.assert_allclose(v_jit, D.velocity(fake), rtol=1e-12)
    # lsgan velocity = −2 f ∇f
    f = D(fake)
    grad_f = jax.grad(lambda z: jnp.sum(D(z)))(fake)
    np.testing.assert_allclose(D.velocity(fake), -2 * f[:, None] * grad_f, rtol=1e-10)

    # fit inside jit (as flows do in lax.scan): same result as eager
    @jax.jit
    def fit(p, fk, rl):
        return nets.fit_finite_discriminator("lsgan", spec, p, fk, rl, 0.5, 0.1).params

    fitted = jax.tree.leaves(fit(params, fake, real))
    for a, b in zip(fitted, jax.tree.leaves(D.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # concrete points closed over inside jit are validated without a tracer-bool error
    closed = jax.jit(
        lambda p: nets.fit_finite_discriminator("lsgan", spec, p, fake, real, 0.5, 0.1)(fake)
    )
    np.testing.assert_allclose(closed(params), D(fake), rtol=1e-12, atol=1e-14)


def test_nngp_spec_trains_only_readout():
    spec = MLPSpec("rbf", depth=1, width=64, b_std=0.0, act_params=(("gamma", 0.5),),
                   kernel="nngp")
    params = nets.init_discriminator(jax.random.PRNGKey(20), spec, 2, antisymmetric=False)
    D = nets.fit_finite_discriminator("ipm", spec, params, _points(21, 4), _points(22, 4),
                                      1.0, 0.1)
    np.testing.assert_array_equal(D.params["hidden_0"]["kernel"], params["hidden_0"]["kernel"])
    assert float(jnp.max(jnp.abs(D.params["readout"]["kernel"]
                                 - params["readout"]["kernel"]))) > 1e-3


# ---------------------------------------------------------------- generator


def test_generator_shapes_and_check():
    gen = nets.MLPGenerator(latent_dim=3, out_dim=2, width=16, depth=2, tanh_output=True)
    params = nets.init_generator(jax.random.PRNGKey(23), gen)
    z = 5.0 * _points(24, 7, 3)
    out = gen.apply({"params": params}, z)
    assert out.shape == (7, 2) and float(jnp.max(jnp.abs(out))) <= 1.0
    apply = lambda p, zz: gen.apply({"params": p}, zz)
    assert nets.check_generator_output(apply, params, z, 2) == (7, 2)
    with pytest.raises(ValueError, match=r"generator output must have shape \(n, d\) = \(7, 4\)"):
        nets.check_generator_output(apply, params, z, 4)
    with pytest.raises(ValueError, match="latent_dim=3"):
        gen.apply({"params": params}, _points(25, 7, 2))
    with pytest.raises(ValueError, match="generator"):
        nets.init_generator(jax.random.PRNGKey(0), "not a generator")
    with pytest.raises(ValueError, match="depth"):
        nets.init_generator(jax.random.PRNGKey(0), nets.MLPGenerator(3, 2, depth=-1))


# ---------------------------------------------------------------- bad input


def test_bad_input():
    spec = MLPSpec("relu", depth=2, width=8)
    apply_fn = nets.discriminator_apply(spec)
    params = nets.init_discriminator(jax.random.PRNGKey(0), spec, 2, antisymmetric=False)
    with pytest.raises(ValueError, match="width"):
        nets.mlp_from_spec(spec, width=0)
    with pytest.raises(ValueError, match="width"):
        spec.replace(width=0)
    with pytest.raises(ValueError, match="MLPSpec"):
        nets.mlp_from_spec("relu")
    with pytest.raises(ValueError, match="'jacobian', 'ntvp'.*'svd'"):
        nets.empirical_ntk(apply_fn, "svd")
    ntk_fn = nets.empirical_ntk(apply_fn)
    with pytest.raises(ValueError, match="x2.*d=2"):
        ntk_fn(_points(1, 3), _points(2, 3, 3), params)
    with pytest.raises(ValueError, match="x1.*rank 2"):
        ntk_fn(jnp.ones(3), None, params)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        nets.empirical_ntk(lambda p, x: apply_fn(p, x)[:, None])(_points(1, 3), None, params)
    fake, real = _points(3, 4), _points(4, 4)
    with pytest.raises(ValueError, match="antisymmetric"):
        nets.fit_finite_discriminator("ipm", spec, params, fake, real, 1.0, 0.1,
                                      antisymmetric=True)
    with pytest.raises(ValueError, match="do not match `spec`"):
        nets.fit_finite_discriminator("ipm", spec.replace(width=9), params, fake, real, 1.0, 0.1)
    with pytest.raises(ValueError, match="`fake`.*d=2"):
        nets.fit_finite_discriminator("ipm", spec, params, _points(3, 4, 3), real, 1.0, 0.1)
    with pytest.raises(ValueError, match="`real`"):
        nets.fit_finite_discriminator("ipm", spec, params, fake, real.at[0, 0].set(jnp.nan),
                                      1.0, 0.1)
    with pytest.raises(ValueError, match="`lr`"):
        nets.fit_finite_discriminator("ipm", spec, params, fake, real, 1.0, 0.0)
    with pytest.raises(ValueError, match="`time`"):
        nets.fit_finite_discriminator("ipm", spec, params, fake, real, -1.0, 0.1)
    with pytest.raises(ValueError, match="`steps`"):
        nets.fit_finite_discriminator("ipm", spec, params, fake, real, 1.0, 0.1, steps=-1)
    with pytest.raises(ValueError, match="`loss`"):
        nets.fit_finite_discriminator("wgan", spec, params, fake, real, 1.0, 0.1)
    with pytest.raises(ValueError, match="`d`"):
        nets.init_discriminator(jax.random.PRNGKey(0), spec, 0)
    D = nets.fit_finite_discriminator("ipm", spec, params, fake, real, 0.2, 0.1)
    with pytest.raises(ValueError, match="`points`.*d=2"):
        D.velocity(_points(5, 3, 3))
