"""The CLI `python -m gantk.run`: outputs, exit codes, no-overwrite, resume, divergence."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from gantk import run as grun
from gantk.cli.logger import RunLogger

SMALL = ["--n-particles", "40", "--eta", "80", "--steps", "20", "--log-every", "10",
         "--no-progress",
         "--metrics", "energy,mmd"]


def strict_json(path):
    """Parse a JSON file gantk wrote, refusing NaN/Infinity (RFC 8259)."""
    def refuse(name):
        raise ValueError(f"{path}: non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--loss", "wgan"], "--loss: invalid choice: 'wgan' (choose from 'ipm', 'lsgan'"),
        (["--kernel", "tanh"], "--kernel: invalid choice"),
        (["--steps", "0"], "--steps: expected a positive integer"),
        (["--eta", "-1"], "--eta"),
        (["--time", "0"], "--time"),
        (["--time", "inf", "--loss", "ipm"], "--time"),
        (["--width", "0"], "--width"),
        (["--n-particles", "-3"], "--n-particles"),
        (["--preset", "nope"], "--preset: invalid choice"),
        (["--data", "nosuchdata"], "nosuchdata"),
        (["--data", "image:/does/not/exist.png"], "exist.png"),
        (["--metrics", "sinkhorn,fid"], "--metrics: invalid choice 'fid'"),
        (["--devices", "64"], "--devices"),
        (["--steps", "abc"], "--steps"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, needle):
    code = grun.main([*args, "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cli_subprocess_bad_argument_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gantk.run", "--loss", "bogus", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "invalid choice" in proc.stderr


def test_run_writes_all_outputs(tmp_path, capsys):
    code = grun.main([*SMALL, "--out", str(tmp_path), "--name", "r", "--metrics",
                      "sinkhorn,energy,mmd"])
    assert code == 0
    d = tmp_path / "r"
    cfg = strict_json(d / "config.json")
    assert cfg["loss"] == "ipm" and cfg["arch"] == "relu" and cfg["n_particles"] == 40
    rows = list(csv.DictReader(open(d / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [0, 10, 20]
    assert set(grun.CSV_FIELDS) <= set(rows[0])
    assert float(rows[-1]["energy"]) < float(rows[0]["energy"])  # the flow makes progress
    for s in (0, 10, 20):
        z = np.load(d / f"particles_{s}.npz")
        assert z["fake"].shape == (40, 2) and z["real"].shape == (40, 2)
    assert (d / "figures" / "metrics.png").stat().st_size > 1000
    assert (d / "figures" / "step_0.png").exists() and (d / "figures" / "step_20.png").exists()
    assert (d / "flow.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    summary = strict_json(d / "summary.json")
    assert summary["status"] == "completed" and summary["steps_done"] == 20
    out = capsys.readouterr().out
    assert "completed: 20/20 steps" in out and "energy" in out
    # no overwrite without --overwrite, and the existing run is untouched
    before = (d / "metrics.csv").read_bytes()
    assert grun.main([*SMALL, "--out", str(tmp_path), "--name", "r"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (d / "metrics.csv").read_bytes() == before
    assert grun.main([*SMALL, "--out", str(tmp_path), "--name", "r", "--overwrite",
                      "--no-figures"]) == 0


def test_interrupt_then_resume_is_bit_for_bit(tmp_path, monkeypatch):
    args = ["--n-particles", "30", "--eta", "60", "--steps", "40", "--log-every", "10",
            "--no-progress",
            "--metrics", "energy", "--no-figures", "--out", str(tmp_path)]
    assert grun.main([*args, "--name", "full"]) == 0

    orig_log = RunLogger.log

    def interrupting_log(self, state, step, *rest):
        orig_log(self, state, step, *rest)
        if step == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunLogger, "log", interrupting_log)
    assert grun.main([*args, "--name", "cut"]) == 130
    monkeypatch.setattr(RunLogger, "log", orig_log)
    ck = np.load(tmp_path / "cut" / "checkpoint.npz")
    assert int(ck["step"]) == 20
    assert not (tmp_path / "cut" / "particles_30.npz").exists()
    assert grun.main(["--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    a = np.load(tmp_path / "full" / "particles_40.npz")["fake"]
    b = np.load(tmp_path / "cut" / "particles_40.npz")["fake"]
    assert np.array_equal(a, b)
    rows = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 30, 40]
    # resume may not change the configuration
    assert grun.main(["--resume", str(tmp_path / "cut"), "--loss", "lsgan"]) == 2


def test_divergence_exits_1_and_keeps_last_finite_state(tmp_path, capsys):
    code = grun.main(["--n-particles", "20", "--steps", "30", "--log-every", "10",
                      "--eta", "1e37", "--no-progress", "--metrics", "energy", "--no-figures",
                      "--out", str(tmp_path), "--name", "div"])
    assert code == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "step" in err
    summary = strict_json(tmp_path / "div" / "summary.json")
    assert summary["status"] == "diverged"
    step = summary["steps_done"]
    z = np.load(tmp_path / "div" / f"particles_{step}.npz")
    assert np.all(np.isfinite(z["fake"]))


def test_preset_resolution():
    p = grun.build_parser()
    cfg = grun.resolve_config(p.parse_args(["--preset", "inf_lsgan-relu_nobias-eight_gaussians"]))
    assert (cfg.loss, cfg.arch, cfg.eta, cfg.time, cfg.width) == (
        "lsgan", "relu-nobias", 1000.0, 1.0, None)
    assert cfg.spec.b_std == 0.0
    cfg = grun.resolve_config(p.parse_args(["--preset", "ipm_reset-relu-eight_gaussians",
                                            "--eta", "10"]))
    assert cfg.reset and cfg.width == 128 and cfg.discr_lr == 0.1 and cfg.eta == 10.0
    cfg = grun.resolve_config(p.parse_args(["--preset", "inf_ipm-relu-digits"]))
    assert cfg.data == "digits" and cfg.n_particles == 1024 and cfg.time == 1000.0


@pytest.mark.parametrize(
    "extra",
    [
        ["--width", "64", "--discr-lr", "0.1", "--time", "1", "--loss", "lsgan", "--eta", "40"],
        # --x64: the tests run with jax_enable_x64 on, and flows.FiniteWidthFit.init draws
        # reset parameters in the default float (float64), not the points' float32
        ["--preset", "ipm_reset-relu-eight_gaussians", "--width", "64", "--eta", "40", "--x64"],
        ["--width", "64", "--single-step", "--loss", "ipm", "--discr-lr", "0.1", "--eta", "40"],
    ],
)
def test_finite_width_runs_make_progress(tmp_path, extra):
    code = grun.main(["--n-particles", "40", "--steps", "20", "--log-every", "10",
                      "--no-progress", "--metrics", "energy", "--no-figures", "--out",
                      str(tmp_path), "--name", "fw", *extra])
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "fw" / "metrics.csv")))
    assert float(rows[-1]["energy"]) < 0.9 * float(rows[0]["energy"])
    cfg = strict_json(tmp_path / "fw" / "config.json")
    assert cfg["width"] == 64


def test_generator_mlp_run(tmp_path):
    code = grun.main(["--generator", "mlp", "--n-particles", "64", "--steps", "30",
                      "--log-every", "10", "--gen-lr", "0.01", "--no-progress", "--metrics",
                      "energy", "--out", str(tmp_path), "--name", "g"])
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "g" / "metrics.csv")))
    assert float(rows[-1]["energy"]) < float(rows[0]["energy"])
    z = np.load(tmp_path / "g" / "particles_30.npz")
    assert z["fake"].shape == (64, 2) and np.all(np.isfinite(z["fake"]))


def test_digits_generator_writes_image_grids(tmp_path):
    code = grun.main(["--data", "digits", "--generator", "mlp", "--n-particles", "32",
                      "--n-real", "64", "--steps", "4", "--log-every", "2", "--eta", "100",
                      "--time", "1000", "--no-progress", "--metrics", "nn_distance", "--out",
                      str(tmp_path), "--name", "dg"])
    assert code == 0
    assert (tmp_path / "dg" / "figures" / "step_4.png").stat().st_size > 1000
    z = np.load(tmp_path / "dg" / "particles_4.npz")
    assert z["fake"].shape == (32, 64) and np.all(np.abs(z["fake"]) <= 1.0)  # tanh output


def test_log_ntk_drift_columns(tmp_path):
    """--log-ntk-drift: the empirical NTK's relative motion, 0 at initialization."""
    code = grun.main(["--n-particles", "16", "--steps", "4", "--log-every", "2", "--width", "32",
                      "--loss", "lsgan", "--eta", "10", "--no-progress", "--no-figures",
                      "--metrics", "energy", "--log-ntk-drift", "--out", str(tmp_path),
                      "--name", "nd"])
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "nd" / "metrics.csv")))
    assert float(rows[0]["ntk_drift"]) == 0.0
    assert 0.0 < float(rows[-1]["ntk_drift"]) < 1.0
    assert 0.0 < float(rows[0]["ntk_inf_distance"]) < 1.0  # width 32 vs infinite width
    assert grun.main(["--log-ntk-drift", "--out", str(tmp_path)]) == 2  # needs --width
