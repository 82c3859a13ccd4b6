"""PDE-driven spatiotemporal disentanglement: shapes, combiners, the residual blocks, the loss
terms against hand computations, training (a few steps, overfitting one batch), the CLI."""

import csv
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gantk.data import physics
from gantk.models import evaluate as evaluate_cli
from gantk.models import train as train_cli
from gantk.models.ode import MLPField
from gantk.models.pde import PRESETS, PDEModel, _codes, pde_loss, rollout

OBS = (16, 16, 1)
TINY = dict(obs_shape=OBS, enc_hidden=64, dec_hidden=64, res_hidden=32, s_dim=8, t_dim=8,
            combiner="product", n_blocks=2, gain=0.71)


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTK_CACHE", str(tmp_path / "cache"))


@functools.cache
def _wave_batch():
    """8 windows of 10 frames of 16×16 WaveEq (generated without cache)."""
    d = physics.waveeq("all", size=16, n_sequences=8, chunk=8, cache=False)
    return jnp.asarray(d.frames[:, 20:30, :, :, None])


def _init(model, x, seed=0):
    return model.init(jax.random.key(seed), x[:, : model.n_cond])


@pytest.mark.parametrize("combiner, s_dim", [("concat", 12), ("product", 8)])
def test_shapes_and_combiner(combiner, s_dim):
    m = PDEModel(**{**TINY, "combiner": combiner, "s_dim": s_dim})
    x = jnp.zeros((3, 7) + OBS)
    p = _init(m, x)
    s = m.apply(p, x[:, :5], method=PDEModel.encode_s)
    t = m.apply(p, x[:, :5], method=PDEModel.encode_t)
    assert s.shape == (3, s_dim) and t.shape == (3, 8)
    # decoder input: [S, T] (s + t) for concat, S ⊙ T (t) for product
    k0 = p["params"]["dec"]["Dense_0"]["kernel"]
    assert k0.shape[0] == (s_dim + 8 if combiner == "concat" else 8)
    frames, codes = rollout(m, p, s, t, 6)
    assert frames.shape == (3, 6) + OBS and codes.shape == (6, 3, 8)
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1  # sigmoid output
    np.testing.assert_allclose(codes[0], t)
    # the decoded frame is a function of (S, T) only
    np.testing.assert_allclose(frames[:, 0], m.apply(p, s, t, method=PDEModel.decode), atol=1e-6)


@pytest.mark.slow  # XLA CPU compiles the conv nets slowly (minutes on a loaded 2-core machine)
def test_dcgan_nets_with_batchnorm_state():
    # the shared DCGAN encoder/decoder (frames stacked on channels), BatchNorm statistics
    # threaded through the loss as model state
    m = PDEModel(obs_shape=(32, 32, 1), arch="dcgan", nf=4, s_dim=6, t_dim=3,
                 combiner="concat", res_hidden=16)
    x = jax.random.uniform(jax.random.key(0), (2, 7, 32, 32, 1))
    v = m.init(jax.random.key(1), x[:, :5])
    assert set(v) == {"params", "batch_stats"}
    assert v["params"]["enc_s"]["conv_0"]["kernel"].shape == (4, 4, 5, 4)  # 5 frames in
    loss, (terms, state) = jax.jit(lambda v: pde_loss(m, v, x, jax.random.key(2)))(v)
    assert np.isfinite(float(loss)) and set(state) == {"batch_stats"}
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()),
                                   state["batch_stats"], v["batch_stats"])
    assert max(jax.tree_util.tree_leaves(moved)) > 0  # running statistics updated

    # as the authors' code: every time step decoded in its own call, so in training
    # BatchNorm normalizes each step's frames by their own statistics (not the 7·2 pooled)
    @jax.jit
    def per_step_pred(v):
        def train_apply(method, *a):
            return m.apply(v, *a, train=True, method=method, mutable=["batch_stats"])[0]
        s_old = train_apply(PDEModel.encode_s, x[:, :5])
        codes = _codes(m, v, train_apply(PDEModel.encode_t, x[:, :5]), 7, 1)
        steps = jnp.stack([train_apply(PDEModel.decode, s_old, c) for c in codes], 1)
        pooled = train_apply(PDEModel.decode, jnp.tile(s_old, (7, 1)), codes.reshape(14, -1))
        pooled = jnp.moveaxis(pooled.reshape(7, 2, 32, 32, 1), 0, 1)
        return jnp.mean((steps - x) ** 2), jnp.mean((pooled - x) ** 2)

    ref, pooled = per_step_pred(v)
    np.testing.assert_allclose(terms["pred"], ref, rtol=1e-6)  # measured: equal
    assert abs(float(pooled - ref)) > 2e-5 * float(ref)  # pooled statistics: 6e-5 off
    frames = jax.eval_shape(lambda v: rollout(m, v, jnp.zeros((2, 6)), jnp.zeros((2, 3)), 3)[0], v)
    assert frames.shape == (2, 3, 32, 32, 1)


def test_product_combiner_is_elementwise():
    m = PDEModel(**TINY)
    p = _init(m, jnp.zeros((1, 5) + OBS))
    s, t = jax.random.normal(jax.random.key(1), (2, 4, 8))
    # D(S, T) depends on S ⊙ T only: scaling S by 2 and T by 1/2 gives the same frame
    np.testing.assert_allclose(m.apply(p, s, t, method=PDEModel.decode),
                               m.apply(p, 2 * s, t / 2, method=PDEModel.decode), atol=1e-6)


def test_untied_blocks_are_residual_mlps():
    # tied=False, Euler, n_substeps = n_blocks with a unit step per block:
    # T ← T + MLP_b(T) for b = 1..n_blocks with distinct weights (the authors' MLPResnet)
    m = PDEModel(**{**TINY, "n_blocks": 3, "tied": False})
    p = _init(m, jnp.zeros((1, 5) + OBS))
    ode = p["params"]["ode"]
    assert sorted(ode) == ["field_0", "field_1", "field_2"]
    assert not np.allclose(ode["field_0"]["dense_0"]["kernel"], ode["field_1"]["dense_0"]["kernel"])
    t = jax.random.normal(jax.random.key(2), (4, 8))
    out = m.apply(p, t, method=PDEModel.advance)
    mlp = MLPField(hidden=32, n_layers=3, out_dim=8, gain=0.71)
    ref = t
    for b in range(3):
        ref = ref + mlp.apply({"params": ode[f"field_{b}"]}, ref)
    np.testing.assert_allclose(out.y, ref, rtol=1e-5, atol=1e-6)
    assert out.increments.shape == (3, 4, 8)
    with pytest.raises(ValueError, match="tied"):
        rollout(m, p, jnp.ones((4, 8)), t, 3, rate=2)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_tied_rollout_at_twice_the_frame_rate(method):
    m = PDEModel(**{**TINY, "tied": True, "method": method})
    p = _init(m, jnp.zeros((1, 5) + OBS))
    s, t = jax.random.normal(jax.random.key(3), (2, 2, 8))
    one, c1 = rollout(m, p, s, t, 5)
    two, c2 = rollout(m, p, s, t, 5, rate=2)
    assert two.shape == (2, 9) + OBS and c2.shape == (9, 2, 8)
    # same ODE, step halved: integer-time states agree to the method's accuracy
    tol = 5e-2 if method == "euler" else 1e-3
    np.testing.assert_allclose(c2[::2], c1, atol=tol * float(jnp.abs(c1).max()))
    assert float(jnp.abs(c2[1] - c1[0]).max()) > 0  # the half-step state is a new frame


def test_loss_terms_match_hand_computation():
    m = PDEModel(**TINY)
    x = _wave_batch()
    p = _init(m, x)
    key = jax.random.key(5)
    k, length = 5, 10
    t_end = np.asarray(jax.random.randint(key, (8,), k, length + 1))

    @jax.jit
    def both(p):
        loss, (terms, _) = pde_loss(m, p, x, key, lambda_pred=2.0, lambda_ae=3.0,
                                    lambda_s=5.0, lambda_t=7.0)
        _, (terms0, _) = pde_loss(m, p, x, key, offset=0)
        s_old = m.apply(p, x[:, :k], method=PDEModel.encode_s)
        s_new = m.apply(p, x[:, -k:], method=PDEModel.encode_s)
        t0 = m.apply(p, x[:, :k], method=PDEModel.encode_t)
        # offset = k: the rollout from T₀ decodes frames 1..L (conditioning ones included)
        frames, _ = rollout(m, p, s_old, t0, length)
        frames0, _ = rollout(m, p, s_old, t0, length - k)
        windows = jnp.stack([x[i, e - k : e] for i, e in enumerate(t_end)])
        target = jnp.stack([x[i, e - k] for i, e in enumerate(t_end)])
        t_r = m.apply(p, windows, method=PDEModel.encode_t)
        ref = {"pred": jnp.mean((frames - x) ** 2), "s": jnp.mean((s_old - s_new) ** 2),
               "t": 0.5 * jnp.mean(jnp.sum(t0**2, -1)),
               "ae": jnp.mean((m.apply(p, s_old, t_r, method=PDEModel.decode) - target) ** 2),
               # offset = 0: T₀ codes frame k+1, the loss covers the predicted frames only
               "pred0": jnp.mean((frames0 - x[:, k:]) ** 2)}
        return loss, terms, terms0, ref

    loss, terms, terms0, ref = both(p)
    for name in ("pred", "s", "t", "ae"):
        np.testing.assert_allclose(terms[name], ref[name], rtol=1e-5)
    np.testing.assert_allclose(terms0["pred"], ref["pred0"], rtol=1e-5)
    total = 2 * terms["pred"] + 3 * terms["ae"] + 5 * terms["s"] + 7 * terms["t"]
    np.testing.assert_allclose(loss, total, rtol=1e-6)


def _train(m, x, steps, lr=1e-3):
    p = _init(m, x)
    opt = optax.adam(lr)
    o = opt.init(p)

    @jax.jit
    def step(p, o, key):
        (loss, (terms, _)), g = jax.value_and_grad(
            lambda p: pde_loss(m, p, x, key, lambda_ae=1.0), has_aux=True)(p)
        u, o = opt.update(g, o, p)
        return optax.apply_updates(p, u), o, loss, terms

    hist = []
    for i in range(steps):
        p, o, loss, terms = step(p, o, jax.random.key(i))
        hist.append((float(loss), float(terms["pred"])))
    return hist


def test_overfit_one_batch():
    # 8 windows of 16×16 WaveEq: the prediction MSE (10 frames, offset 5) drops from 1.5e-2
    # to ~1.8e-4 in 200 Adam steps (measured); a few steps already lower the loss.
    hist = _train(PDEModel(**TINY), _wave_batch(), 200)
    losses = [h[0] for h in hist]
    assert max(losses[5:10]) < losses[0]
    assert hist[-1][1] < 5e-4
    assert hist[-1][1] < hist[0][1] / 20


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(combiner="sum"), "`combiner`"),
        (dict(combiner="product", s_dim=4), "s_dim == t_dim"),
        (dict(method="heun"), "`method`"),
        (dict(arch="dcgan"), "arch='dcgan'"),
        (dict(n_blocks=0), "`n_blocks`"),
    ],
)
def test_bad_model(kw, match):
    m = PDEModel(**{**TINY, "obs_shape": (10,), **kw})
    with pytest.raises(ValueError, match=match):
        m.init(jax.random.key(0), jnp.zeros((1, 5, 10)))


def test_bad_loss_input():
    m = PDEModel(**TINY)
    x = jnp.zeros((2, 5) + OBS)
    p = _init(m, x)
    with pytest.raises(ValueError, match="`offset`"):
        pde_loss(m, p, jnp.zeros((2, 8) + OBS), jax.random.key(0), offset=3)
    with pytest.raises(ValueError, match="longer than n_cond"):
        pde_loss(m, p, x, jax.random.key(0))
    with pytest.raises(ValueError, match="`n_frames`"):
        rollout(m, p, jnp.ones((2, 8)), jnp.ones((2, 8)), 0)


def test_presets_documented_values():
    paper = PRESETS["paper"]
    assert (paper["enc_hidden"], paper["dec_layers"], paper["s_dim"], paper["t_dim"]) == (
        1200, 4, 32, 32)
    assert (paper["combiner"], paper["n_blocks"], paper["gain"], paper["lambda_ae"]) == (
        "product", 3, 0.71, 1.0)
    mnist = PRESETS["paper-mnist"]
    assert (mnist["s_dim"], mnist["t_dim"], mnist["combiner"], mnist["n_blocks"]) == (
        128, 20, "concat", 1)
    pend, small = PRESETS["pendulum"], PRESETS["small"]
    assert (pend["method"], pend["tied"], pend["n_test"]) == ("rk4", True, 20)
    differ = {k for k in small if pend[k] != small[k]}
    assert differ == {"method", "n_test"} and set(pend) == set(small)
    for p in PRESETS.values():
        assert (p["lr"], p["beta2"], p["lambda_pred"], p["lambda_s"], p["lambda_t"]) == (
            4e-4, 0.99, 45.0, 45.0, 1e-3)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--model", "pde", "--data", "sst"], "invalid choice 'sst'"),
        (["--model", "pde", "--data", "pendulum", "--set", "combiner=sum"], "`combiner`"),
        (["--model", "pde", "--data", "pendulum", "--set", "offset=2"], "offset"),
        (["--model", "pde", "--data", "pendulum", "--set", "fps=-1"], "fps"),
    ],
)
def test_cli_bad_arguments(argv, match, tmp_path, capsys):
    assert train_cli.main([*argv, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_cli_pendulum_train_and_evaluate(tmp_path):
    sets = ["enc_hidden=64", "dec_hidden=64", "res_hidden=32", "s_dim=8", "t_dim=8",
            "train_sequences=64", "sequence_frames=30", "test_sequences=8", "n_test=10",
            "n_pred=10", "batch_size=8"]
    argv = ["--model", "pde", "--data", "pendulum", "--steps", "20", "--out", str(tmp_path),
            "--no-progress", "--log-every", "10"]
    for s in sets:
        argv += ["--set", s]
    assert train_cli.main(argv) == 0
    run = tmp_path / "pde-pendulum-small-s0"
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert evaluate_cli.main([str(run), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(run / "eval" / "metrics.csv")))
    assert [int(r["frame"]) for r in rows] == list(range(1, 11))
    for col in ("mse", "mse_copy_last", "psnr", "ssim", "psnr_copy_last", "ssim_copy_last"):
        assert col in rows[0]
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["protocol"]["windows"] == 8  # one window of 15 frames per test sequence
    fr = summary["frame_rate"]
    assert fr["inbetween_frames"] == 9
    assert {"follow_T", "share_S"} <= set(summary["disentanglement"])
    for name in ("swap.png", "frame_rate.png", "metrics.png"):
        assert (run / "eval" / name).stat().st_size > 1000
