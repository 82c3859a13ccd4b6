"""Reliability of ``python -m gantk.run`` (issue #14), one test per class of fault.

Every case asserts the exit status, a one-line message without a traceback, and that every
file that existed before is byte-identical after. Cases whose behaviour depends on the
process (exit status, real SIGINT, warnings printed) run the CLI as a subprocess; the
others call ``gantk.run.main(argv)`` in-process, which is the same code path.
"""

import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from gantk import data as gdata
from gantk import run as grun

TINY = ["--data", "two_couples_2d", "--steps", "4", "--log-every", "2", "--no-progress",
        "--no-figures", "--metrics", "energy"]


def strict_json(path):
    """Parse a JSON file, refusing the non-standard NaN/Infinity literals."""
    def refuse(name):
        raise ValueError(f"{path}: non-standard JSON constant {name}")

    return json.loads(pathlib.Path(path).read_text(), parse_constant=refuse)


def check_all_json(root):
    """Every .json file under ``root`` parses strictly; returns how many there were."""
    files = list(pathlib.Path(root).rglob("*.json"))
    for f in files:
        strict_json(f)
    return len(files)


def snapshot(root):
    """{relative path: bytes (files) or None (folders)} of everything under ``root``."""
    root = pathlib.Path(root)
    out = {}
    for p in root.rglob("*"):
        out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


def assert_kept(before, after, allowed_prefix=None):
    """Every path of ``before`` is in ``after`` with the same bytes (except under prefix)."""
    for path, content in before.items():
        if allowed_prefix is not None and (path == allowed_prefix
                                           or path.startswith(allowed_prefix + os.sep)):
            continue
        assert path in after, f"{path} was deleted"
        assert after[path] == content, f"{path} was modified"


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Warning" not in err, err
    return lines[0]


def run_main(capsys, *argv):
    code = grun.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli(*argv, cwd=None, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "gantk.run", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A completed tiny run, copied by the tests that need one."""
    root = tmp_path_factory.mktemp("base")
    assert grun.main([*TINY, "--out", str(root), "--name", "run"]) == 0
    return root / "run"


def _copy(src, dst):
    dst.mkdir(parents=True)
    for p in src.rglob("*"):
        q = dst / p.relative_to(src)
        if p.is_dir():
            q.mkdir(exist_ok=True)
        else:
            q.write_bytes(p.read_bytes())
    return dst


# --------------------------------------------------------------------- 1. data loss
def test_overwrite_never_deletes_what_gantk_did_not_write(tmp_path, capsys, base_run):
    runs = tmp_path / "runs"
    _copy(base_run, runs / "mine")
    (runs / "notes.txt").write_text("precious")
    (tmp_path / "elsewhere.txt").write_text("also precious")
    foreign = runs / "project"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    (foreign / "thesis.tex").write_text("years of work")
    before = snapshot(tmp_path)
    for name, needle in ((".", "not a folder name"), ("..", "not a folder name"),
                         ("a/b", "path separator"), ("", "empty"), ("x\ny", "control"),
                         ("project", "not a gantk run folder"), ("z" * 300, "longer")):
        code, _, err = run_main(capsys, *TINY, "--out", runs, "--name", name, "--overwrite")
        assert code == 2 and needle in one_line(err), (name, err)
        assert_kept(before, snapshot(tmp_path))
        assert set(snapshot(tmp_path)) == set(before)
    # a symlinked run folder is not followed
    (runs / "link").symlink_to(foreign, target_is_directory=True)
    code, _, err = run_main(capsys, *TINY, "--out", runs, "--name", "link", "--overwrite")
    assert code == 2 and "symbolic link" in one_line(err)
    # a gantk run folder is replaced, file by file; a stray extra file blocks it
    code, _, err = run_main(capsys, *TINY, "--out", runs, "--name", "mine", "--overwrite")
    assert code == 0, err
    (runs / "mine" / "figures").mkdir(exist_ok=True)
    (runs / "mine" / "figures" / "my_plot.png").write_bytes(b"x")
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, *TINY, "--out", runs, "--name", "mine", "--overwrite")
    assert code == 2 and "figures/my_plot.png" in one_line(err)
    assert_kept(before, snapshot(tmp_path))


def test_overwrite_parent_subprocess(tmp_path):
    """The reported case: ``--name .. --overwrite`` deleted the parent of --out."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "other.txt").write_text("keep")
    before = snapshot(tmp_path)
    code, _, err = cli(*TINY, "--out", "runs", "--name", "..", "--overwrite", cwd=tmp_path)
    assert code == 2 and "--name" in one_line(err)
    assert snapshot(tmp_path) == before


def test_run_name_check_in_process():
    from gantk.cli.errors import UsageError
    from gantk.cli.paths import check_run_name, is_run_file, safe_name

    for ok in ("run", "a.b", "-x", " spaced ", "ü", "x" * 255):
        assert check_run_name(ok) == ok
    for bad in ("", ".", "..", "a/b", "/abs", "a\\b", "tab\there", "\x7f", "é" * 128):
        with pytest.raises(UsageError, match="--name"):
            check_run_name(bad)
    assert safe_name("ipm-relu-points:/a/../b.npz-s0") == "ipm-relu-points__a_.._b.npz-s0"
    assert safe_name("..") == "run"
    assert is_run_file("particles_10.npz") and not is_run_file("particles_x.npz")
    assert is_run_file("step_3.png", in_figures=True) and not is_run_file("step_3.png")


# --------------------------------------------------------------------- 2. strict outputs
def test_outputs_are_strict_json_and_csv_cells_empty(tmp_path, capsys, base_run):
    assert check_all_json(base_run) == 2
    summary = strict_json(base_run / "summary.json")
    assert summary["initial"]["generator_loss"] is None
    rows = (base_run / "metrics.csv").read_text().splitlines()
    assert "nan" not in (base_run / "metrics.csv").read_text().lower()
    cells = rows[1].split(",")
    assert cells[1] == cells[3] == "" and float(cells[2]) > 0  # only energy requested
    code, _, err = run_main(capsys, *TINY, "--loss", "lsgan", "--time", "inf", "--out",
                            tmp_path, "--name", "inf")
    assert code == 0, err
    assert strict_json(tmp_path / "inf" / "config.json")["time"] == "inf"
    assert check_all_json(tmp_path / "inf") == 2
    # and it is read back on resume
    code, out, err = run_main(capsys, "--resume", tmp_path / "inf", "--steps", "6")
    assert code == 0, err
    assert strict_json(tmp_path / "inf" / "summary.json")["steps_done"] == 6


def test_files_honour_the_umask(base_run):
    mask = os.umask(0o022)
    os.umask(mask)
    mode = stat.S_IMODE((base_run / "metrics.csv").stat().st_mode)
    assert mode == 0o666 & ~mask


# --------------------------------------------------------------------- 3. interrupts
def _popen_as_in_a_terminal(args):
    """Start a child with Ctrl-C at its default action, as a shell's foreground job is: a test
    process that ignores SIGINT (a background job of a non-interactive shell) would pass
    SIG_IGN on through exec, and Python then rightly never raises KeyboardInterrupt. exec
    resets a *handled* signal to its default, so the test process handles SIGINT while it
    spawns (no ``preexec_fn``: that forks a copy of this JAX process, threads and all)."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                                stdout=subprocess.DEVNULL)
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigint_when(proc, ready, wait=240):
    t0 = time.time()
    while not ready() and proc.poll() is None and time.time() - t0 < wait:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.slow
def test_ctrl_c_during_startup_and_run(tmp_path, capsys):
    args = [sys.executable, "-m", "gantk.run", *TINY, "--out", str(tmp_path)]
    # during the import of JAX (nothing written yet)
    proc = _popen_as_in_a_terminal([*args, "--name", "a"])
    code, err = _sigint_when(proc, lambda: False, wait=1.0)
    assert code == 130 and "interrupted" in one_line(err)
    # during start-up: the folder exists, step 0 is being computed
    # (a small eta keeps this long run finite: the signal, not a divergence, must end it)
    proc = _popen_as_in_a_terminal([*args, "--name", "b", "--steps", "100000", "--log-every",
                                    "50000", "--eta", "1e-3"])
    code, err = _sigint_when(proc, (tmp_path / "b" / "config.json").exists)
    assert code == 130 and "interrupted" in one_line(err), err
    # the folder is continued by --resume or replaced by a re-run
    if (tmp_path / "b" / "checkpoint.npz").exists():
        code, _, err = run_main(capsys, "--resume", tmp_path / "b", "--steps", "100002")
    else:
        code, _, err = run_main(capsys, *TINY, "--out", tmp_path, "--name", "b",
                                "--overwrite")
    assert code == 0, err
    assert check_all_json(tmp_path)


# --------------------------------------------------------------------- 4. resume checks
@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: _edit(d, n_particles=3), "--n-particles"),
        (lambda d: _edit(d, loss="lsgan"), "another configuration"),
        (lambda d: _edit(d, arch="rbf"), "another configuration"),
        (lambda d: _edit(d, loss="bogus"), "--loss"),
        (lambda d: _edit(d, eta="fast"), "--eta"),
        (lambda d: (d / "config.json").write_text('{"loss": NaN'), "not valid JSON"),
        (lambda d: (d / "config.json").write_text('[]'), "JSON object"),
        (lambda d: (d / "checkpoint.npz").write_bytes(b""), "unreadable or truncated"),
        (lambda d: (d / "checkpoint.npz").write_bytes(
            (d / "checkpoint.npz").read_bytes()[:300]), "unreadable or truncated"),
        (lambda d: (d / "metrics.csv").write_text("step\nabc\n"), "metrics table"),
        (lambda d: (d / "checkpoint.npz").unlink(), "no config.json and checkpoint.npz"),
    ],
)
def test_refused_resume_changes_nothing(tmp_path, capsys, base_run, damage, needle):
    d = _copy(base_run, tmp_path / "run")
    damage(d)
    before = snapshot(tmp_path)
    code, _, err = run_main(capsys, "--resume", d, "--steps", "6")
    assert code == 2 and needle in one_line(err), err
    assert snapshot(tmp_path) == before


def _edit(d, **changes):
    cfg = strict_json(d / "config.json")
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def test_resume_subprocess_corrupt_checkpoint(tmp_path, base_run):
    d = _copy(base_run, tmp_path / "run")
    (d / "checkpoint.npz").write_bytes(b"PK\x03\x04garbage")
    before = snapshot(tmp_path)
    code, _, err = cli("--resume", d)
    assert code == 2 and "checkpoint.npz" in one_line(err)
    assert snapshot(tmp_path) == before


def test_resume_may_only_change_steps(tmp_path, capsys, base_run):
    d = _copy(base_run, tmp_path / "run")
    before = snapshot(tmp_path)
    for extra in (["--loss", "lsgan"], ["--depth", "2"], ["--arch", "rbf"], ["--steps", "0"]):
        code, _, err = run_main(capsys, "--resume", d, *extra)
        assert code == 2 and ("only --steps" in one_line(err) or "--steps" in err), extra
    assert snapshot(tmp_path) == before
    code, out, _ = run_main(capsys, "--resume", d)  # already complete
    assert code == 0 and "nothing to do" in out
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------- 5. output paths
def test_output_path_errors(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "taken").write_text("a file where the run folder goes")
    before = snapshot(tmp_path)
    cases = [
        (["--out", tmp_path / "afile", "--name", "r"], "is a file"),
        (["--out", tmp_path / "afile" / "sub", "--name", "r"], "is a file"),
        (["--out", tmp_path / "out", "--name", "taken", "--overwrite"], "not a folder"),
        (["--resume", tmp_path / "afile"], "--resume"),
        (["--resume", tmp_path / "missing"], "--resume"),
    ]
    for argv, needle in cases:
        code, _, err = run_main(capsys, *TINY, *argv)
        assert code == 2 and needle in one_line(err), (argv, err)
        assert snapshot(tmp_path) == before


def test_read_only_out(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()

    def denied(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", denied)
    code, _, err = run_main(capsys, *TINY, "--out", ro, "--name", "r")
    assert code == 2 and "Permission denied" in one_line(err)
    assert list(ro.iterdir()) == []


def test_write_failure_mid_run_exits_1_and_keeps_files(tmp_path, capsys, monkeypatch):
    from gantk.cli import logger as glog

    orig = glog.RunLogger.log

    def failing(self, state, step, *rest):
        if step == 2:
            raise OSError(28, "No space left on device", str(self.dir / "metrics.csv"))
        orig(self, state, step, *rest)

    monkeypatch.setattr(glog.RunLogger, "log", failing)
    code, _, err = run_main(capsys, *TINY, "--out", tmp_path, "--name", "r")
    assert code == 1 and "No space left on device" in one_line(err)
    assert (tmp_path / "r" / "checkpoint.npz").is_file()
    assert strict_json(tmp_path / "r" / "config.json")["steps"] == 4


def test_figures_cli_output_paths(tmp_path, capsys, base_run):
    from gantk import figures

    before = snapshot(tmp_path)
    for out in (tmp_path / "missing" / "x.png", tmp_path):
        assert figures.main(["snapshots", str(base_run), "--out", str(out)]) == 2
        assert "--out" in one_line(capsys.readouterr().err)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------- 6. finite width
@pytest.mark.parametrize(
    ("time_", "lr", "needle"),
    [("1e6", "1e-6", "1e+12"), ("1000", "1e-6", "1e+09"), ("1e-9", "0.1", "= 0 SGD")],
)
def test_finite_width_step_count_is_checked(tmp_path, capsys, time_, lr, needle):
    code, _, err = run_main(capsys, *TINY, "--width", "16", "--time", time_, "--discr-lr", lr,
                            "--out", tmp_path)
    line = one_line(err)
    assert code == 2 and "--time/--discr-lr" in line and needle in line, line
    assert list(tmp_path.iterdir()) == []


def test_long_discriminator_shows_inner_progress(tmp_path, capsys):
    code, _, err = run_main(capsys, "--data", "two_couples_2d", "--steps", "2", "--log-every",
                            "1", "--no-figures", "--metrics", "energy", "--width", "8",
                            "--loss", "lsgan", "--eta", "1", "--time", "20", "--discr-lr",
                            "0.01", "--out", tmp_path)
    assert code == 0, err
    assert "discriminator SGD" in err and "/4000" in err


# --------------------------------------------------------------------- 8. overflow
def test_points_that_overflow_float32(tmp_path, capsys):
    f = tmp_path / "p.npz"
    np.savez(f, fake=np.full((4, 2), 1e39), real=np.ones((4, 2)))
    code, _, err = run_main(capsys, "--data", f"points:{f}", "--out", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and "argument --data" in line and "float32" in line, line
    with pytest.raises(ValueError, match="not finite in float32"):
        gdata.load(f"points:{f}")
    assert gdata.load(f"points:{f}", dtype=jnp.float64)[0].dtype == jnp.float64
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype"):
        gdata.load("eight_gaussians", dtype=jnp.int32)


# --------------------------------------------------------------------- 9. divergence
def test_divergence_bookkeeping_subprocess(tmp_path):
    code, out, err = cli("--n-particles", "20", "--steps", "6", "--log-every", "3",
                         "--eta", "1e30", "--no-progress", "--metrics", "energy,mmd",
                         "--out", tmp_path, "--name", "div")
    line = one_line(err)  # no NumPy/matplotlib warnings leak
    assert code == 1
    d = tmp_path / "div"
    summary = strict_json(d / "summary.json")
    last, bad = summary["steps_done"], summary["diverged_at_step"]
    assert bad == last + 1
    assert f"at step {bad};" in line and f"(step {last})" in line
    steps = sorted(int(p.stem.split("_")[1]) for p in d.glob("particles_*.npz"))
    assert steps[-1] == last and np.isfinite(np.load(d / f"particles_{last}.npz")["fake"]).all()
    assert int(np.load(d / "checkpoint.npz")["step"]) <= last
    assert check_all_json(d) == 2
    before = snapshot(tmp_path)
    code, _, err = cli("--resume", d, "--steps", "9")
    assert code == 2 and "diverged" in one_line(err)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------- 10. surprises
def test_data_surprises(tmp_path, capsys):
    npy = tmp_path / "p.npy"
    np.save(npy, np.ones((3, 2)))
    pts = tmp_path / "p32.npz"
    rng = np.random.default_rng(0)
    np.savez(pts, fake=rng.normal(size=(32, 2)), real=rng.normal(size=(32, 2)) + 2)
    cases = [
        (["--data", f"points:{npy}"], ".npy file holds one array"),
        (["--seed", "99999999999999999999"], "--seed"),
        (["--data", "digits", "--n-real", "5000"], "--n-real"),
        (["--data", f"image:{tmp_path}"], "is a folder"),
        (["--data", "image:/nope.png"], "argument --data"),
        (["--metrics", ""], "--metrics"),
        (["--width", "wide"], "--width"),
    ]
    for argv, needle in cases:
        code, _, err = run_main(capsys, *TINY, *argv, "--out", tmp_path / "o")
        line = one_line(err)
        assert code == 2 and needle in line and "`name`" not in line, (argv, line)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="64-bit"):
        gdata.load("eight_gaussians", seed=2**70)
    # a points: file without --n-particles: all of its points
    code, _, err = run_main(capsys, "--data", f"points:{pts}", "--steps", "2", "--log-every",
                            "2", "--no-progress", "--no-figures", "--metrics", "energy",
                            "--out", tmp_path, "--name", "p")
    assert code == 0, err
    assert np.load(tmp_path / "p" / "particles_2.npz")["fake"].shape == (32, 2)
    assert strict_json(tmp_path / "p" / "config.json")["n_particles"] == 32


def test_help_shows_one_default_per_flag(capsys):
    with pytest.raises(SystemExit):
        grun.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "default: runs)" not in text
    assert "--arch {" in text and "--kernel" in text
