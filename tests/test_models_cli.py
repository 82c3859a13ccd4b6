"""gantk.models.train / evaluate: exit codes, nothing written on bad input, resume, NaN, Ctrl-C,
checkpoints, strict JSON, and the video metrics (dm-pix conventions checked by hand)."""

import json
import math
import sys
import types

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gantk.models import evaluate as ev
from gantk.models import registry, train
from gantk.models.registry import EvalResult, ModelEntry

# --------------------------------------------------------------------------- a fake model
# Linear regression y = a·x: fast to compile, with hooks that make step k produce NaN data or
# raise KeyboardInterrupt, to test the trainer's exit paths without a video model.
HOOKS = {"nan_at": None, "interrupt_at": None}


class _FakeExperiment:
    description = "fake linear model (test)"

    def __init__(self, spec):
        self.hp = spec.hparams
        self.optimizer = optax.adam(self.hp["lr"])
        self.seed = spec.seed

    def init(self, key):
        return {"a": jnp.zeros((3,))}, {}

    def train_batch(self, step):
        if HOOKS["interrupt_at"] == step:
            raise KeyboardInterrupt
        rng = np.random.default_rng([self.seed, step])
        x = rng.normal(size=(self.hp["batch_size"], 3)).astype(np.float32)
        y = x @ np.array([1.0, -2.0, 0.5], np.float32)
        if HOOKS["nan_at"] == step:
            y[0] = np.nan
        return x, y

    def loss(self, params, state, batch, key):
        x, y = batch
        mse = jnp.mean((x @ params["a"] - y) ** 2)
        return mse, ({"mse": mse}, state)

    def strip(self, params, state, key):
        return np.full((8, 8), 0.5, np.float32)

    def evaluate(self, params, state, *, samples, videos, key, progress):
        rows = [{"frame": t + 1, "mse": 0.1 * t, "mse_copy_last": 0.2 * t} for t in range(3)]
        return EvalResult(rows=rows, columns=("frame", "mse", "mse_copy_last"),
                          summary={"means": {"mse": {"mean": 0.1, "ci95": float("nan")}}},
                          panels={"MSE": ["mse", "mse_copy_last"]})


@pytest.fixture
def fake_model(monkeypatch):
    mod = types.ModuleType("_fake_video_model")
    mod.PRESETS = {"small": dict(steps=6, batch_size=8, lr=0.1)}
    mod.build = _FakeExperiment
    monkeypatch.setitem(sys.modules, "_fake_video_model", mod)
    monkeypatch.setitem(registry.MODELS, "fake", ModelEntry(
        name="fake", module="_fake_video_model", data=("toy", "file:"), description="test"))
    HOOKS.update(nan_at=None, interrupt_at=None)
    return "fake"


def _train(tmp_path, *extra):
    return train.main(["--model", "fake", "--data", "toy", "--out", str(tmp_path),
                       "--name", "r", "--no-progress", "--log-every", "2",
                       "--checkpoint-every", "2", *extra])


@pytest.mark.parametrize("argv,match", [
    (["--model", "nope"], "--model"),
    (["--model", "fake", "--data", "letters"], "--data"),
    (["--model", "fake", "--preset", "huge"], "--preset"),
    (["--model", "fake", "--set", "width=3"], "unknown key 'width'"),
    (["--model", "fake", "--set", "lr=fast"], "expected float"),
    (["--model", "fake", "--set", "lr"], "KEY=VALUE"),
    (["--model", "fake", "--steps", "0"], "--steps"),
    (["--model", "fake", "--minutes", "-1"], "--minutes"),
    (["--model", "fake", "--bogus"], "unrecognized"),
    (["--resume", "/no/such/run"], "--resume"),
])
def test_bad_arguments_exit_2_one_line_nothing_written(fake_model, tmp_path, capsys, argv,
                                                       match):
    out = tmp_path / "out"
    rc = train.main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and match in err and "Traceback" not in err
    assert not out.exists()


def test_train_resume_evaluate(fake_model, tmp_path, capsys):
    assert _train(tmp_path, "--steps", "4") == 0
    run = tmp_path / "r"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == "fake" and cfg["hparams"]["steps"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["2", "4"]
    assert (run / "strips" / "step_0.png").is_file() and (run / "loss.png").is_file()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss,mse,wall_time" and len(rows) == 3
    # an existing run is never replaced silently
    assert _train(tmp_path, "--steps", "4") == 2
    assert "already exists" in capsys.readouterr().err
    # resume continues to 8 steps with the same data order as an uninterrupted run
    assert train.main(["--resume", str(run), "--steps", "8", "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 8
    # in-process (no one_arena() at start-up, as in a user's script) malloc is left alone
    assert summary["heap"] in ("one_arena() was not called at start-up",
                               "not glibc >= 2.33 on Linux")
    assert train.main(["--model", "fake", "--data", "toy", "--out", str(tmp_path), "--name",
                       "straight", "--steps", "8", "--no-progress", "--log-every", "2"]) == 0
    a = (run / "metrics.csv").read_text().splitlines()
    b = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in a] == [r.split(",")[:3] for r in b]
    # evaluation writes its files, strict JSON (NaN -> null), then refuses to overwrite
    assert ev.main([str(run), "--no-progress"]) == 0
    s = (run / "eval" / "summary.json").read_text()
    assert "NaN" not in s and json.loads(s)["means"]["mse"]["ci95"] is None
    assert json.loads(s)["checkpoint_step"] == 8
    assert (run / "eval" / "metrics.csv").read_text().splitlines()[0] == "frame,mse,mse_copy_last"
    assert (run / "eval" / "metrics.png").is_file()
    capsys.readouterr()
    assert ev.main([str(run)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert ev.main([str(run), "--overwrite", "--no-progress"]) == 0


def test_nan_loss_exits_1_and_keeps_the_last_good_checkpoint(fake_model, tmp_path, capsys):
    HOOKS["nan_at"] = 4  # the 5th step's batch
    assert _train(tmp_path, "--steps", "6") == 1
    run = tmp_path / "r"
    assert "not finite at step 5" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["2", "4"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at_step"] == 5
    HOOKS["nan_at"] = None
    assert train.main(["--resume", str(run), "--no-progress"]) == 0


def test_ctrl_c_exits_130_after_a_checkpoint(fake_model, tmp_path, capsys):
    HOOKS["interrupt_at"] = 3
    assert _train(tmp_path, "--steps", "6") == 130
    run = tmp_path / "r"
    assert "--resume" in capsys.readouterr().err
    assert "3" in [p.name for p in (run / "checkpoints").iterdir()]
    HOOKS["interrupt_at"] = None
    assert train.main(["--resume", str(run), "--no-progress"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps_done"] == 6


def test_corrupt_checkpoint_exits_2(fake_model, tmp_path, capsys):
    assert _train(tmp_path, "--steps", "2") == 0
    run = tmp_path / "r"
    for f in (run / "checkpoints" / "2").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and "METADATA" not in f.name:
            f.write_bytes(b"garbage")
    capsys.readouterr()
    assert ev.main([str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt" in err
    assert not (run / "eval").exists()


# --------------------------------------------------------------------------- metrics
def _ssim_by_hand(a, b, k1=0.01, k2=0.03):
    """SSIM of two grey images (H, W) with the 11×11 σ=1.5 Gaussian window, valid positions."""
    g = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = k1 ** 2, k2 ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * pa * pa).sum() - ma ** 2
            vb = (w * pb * pb).sum() - mb ** 2
            cov = (w * pa * pb).sum() - ma * mb
            vals.append((2 * ma * mb + c1) * (2 * cov + c2)
                        / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return np.mean(vals)


def test_ssim_and_psnr_match_the_hand_computed_definitions():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(13, 14))
    b = np.clip(a + 0.1 * rng.normal(size=a.shape), 0, 1)
    got = float(ev.ssim(jnp.asarray(b[..., None]), jnp.asarray(a[..., None])))
    assert got == pytest.approx(_ssim_by_hand(b, a), abs=1e-5)
    # constant images: one valid position, SSIM = (2 c d + C1) / (c² + d² + C1)
    c, d = 0.3, 0.5
    got = float(ev.ssim(jnp.full((11, 11, 1), c), jnp.full((11, 11, 1), d)))
    assert got == pytest.approx((2 * c * d + 1e-4) / (c * c + d * d + 1e-4), rel=1e-5)
    # PSNR = 10 log10(1/MSE); predictions are clamped to [0, 1] first
    p = float(ev.psnr(jnp.asarray(b[..., None]), jnp.asarray(a[..., None])))
    assert p == pytest.approx(10 * math.log10(1 / np.mean((a - b) ** 2)), rel=1e-5)
    assert float(ev.psnr(jnp.full((4, 4, 1), 1.7), jnp.full((4, 4, 1), 0.9))) == pytest.approx(
        20.0, rel=1e-5)
    # any leading axes (samples, videos, frames) are evaluated frame by frame
    stack = jnp.asarray(np.stack([[a, b], [b, a]])[..., None])
    got = np.asarray(ev.ssim(stack, stack[::-1]))
    assert got.shape == (2, 2) and got[0, 0] == pytest.approx(_ssim_by_hand(a, b), abs=1e-5)
    assert np.asarray(ev.psnr(stack, stack[::-1])).shape == (2, 2)
    with pytest.raises(ValueError, match="11"):
        ev.ssim(jnp.zeros((8, 8, 1)), jnp.zeros((8, 8, 1)))


def test_best_of_is_per_video_and_mean_ci():
    # 3 samples x 2 videos x 2 frames; video 0's best is sample 2, video 1's is sample 0
    v = np.array([[[1, 1], [9, 9]], [[2, 2], [0, 0]], [[5, 3], [1, 1]]], float)
    np.testing.assert_array_equal(ev.best_of(v), [[5, 3], [9, 9]])
    np.testing.assert_array_equal(ev.best_of(v, higher_is_better=False), [[1, 1], [0, 0]])
    m, h = ev.mean_ci(np.array([1.0, 2.0, 3.0, 4.0]))
    assert m == 2.5 and h == pytest.approx(1.96 * np.std([1, 2, 3, 4], ddof=1) / 2)
