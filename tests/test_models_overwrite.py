"""gantk.models.train / evaluate never delete or overwrite what they did not write.

``--overwrite`` replaces a run (or evaluation) folder only if everything in it is something
these CLIs write; otherwise one line, exit status 2, and every pre-existing byte is unchanged.
"""

import hashlib
import os
import pathlib

import pytest
from test_models_cli import fake_model  # noqa: F401  (the fixture)

from gantk.models import evaluate as ev
from gantk.models import train


def _snapshot(root: pathlib.Path) -> dict[str, str]:
    """Relative path → sha256 of every file (and '<link>'/'<dir>' markers) under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = pathlib.Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "<link>" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "<dir>"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _train(out, name, *extra):
    return train.main(["--model", "fake", "--data", "toy", "--out", str(out), "--name", name,
                       "--no-progress", "--log-every", "2", "--checkpoint-every", "2",
                       "--steps", "2", *extra])


def test_overwrite_replaces_a_run_folder_it_wrote(fake_model, tmp_path):  # noqa: F811
    assert _train(tmp_path, "r") == 0
    assert ev.main([str(tmp_path / "r"), "--no-progress"]) == 0
    (tmp_path / "r" / "strips" / "step_999.png").write_bytes(b"stale strip")
    assert _train(tmp_path, "r", "--overwrite") == 0
    run = tmp_path / "r"
    assert not (run / "eval").exists()  # the old evaluation belonged to the old run
    assert not (run / "strips" / "step_999.png").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["0", "2"]


@pytest.mark.parametrize("plant", [
    "notes.txt",                      # a user's file beside the run files
    "strips/holiday.jpg",             # inside a folder gantk writes
    "eval/my_analysis.ipynb",
    "checkpoints/best_by_hand",       # a folder that is not an orbax step
    "data/",                          # a foreign sub-folder
])
def test_overwrite_refuses_a_folder_with_foreign_entries(fake_model, tmp_path, capsys,  # noqa: F811
                                                        plant):
    assert _train(tmp_path, "r") == 0
    assert ev.main([str(tmp_path / "r"), "--no-progress"]) == 0
    target = tmp_path / "r" / plant
    if plant.endswith("/"):
        target.mkdir()
        (target / "x.npy").write_bytes(b"user data")
    elif "." not in target.name:
        target.mkdir()
        (target / "weights.bin").write_bytes(b"hand-picked")
    else:
        target.write_bytes(b"the user's own bytes")
    before = _snapshot(tmp_path)
    capsys.readouterr()
    assert _train(tmp_path, "r", "--overwrite") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing was deleted" in err
    assert plant.rstrip("/").split("/")[0] in err
    assert _snapshot(tmp_path) == before


def test_overwrite_refuses_a_folder_without_config_or_a_link(fake_model, tmp_path, capsys):  # noqa: F811
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.csv").write_text("my,own,csv\n")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "config.json").write_text("{}")
    (tmp_path / "link").symlink_to(target)
    before = _snapshot(tmp_path)
    assert _train(tmp_path, "mine", "--overwrite") == 2
    assert "no config.json" in capsys.readouterr().err
    assert _train(tmp_path, "link", "--overwrite") == 2
    assert "symbolic link" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_evaluate_overwrite_only_replaces_its_own_files(fake_model, tmp_path, capsys):  # noqa: F811
    assert _train(tmp_path, "r") == 0
    run = tmp_path / "r"
    user = tmp_path / "report"
    user.mkdir()
    (user / "metrics.csv").write_text("a user's table\n")  # same name as gantk's file
    before = _snapshot(tmp_path)
    assert ev.main([str(run), "--out", str(user), "--no-progress"]) == 2
    assert ev.main([str(run), "--out", str(user), "--overwrite", "--no-progress"]) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before
    # its own folder is replaced, and a stale figure of the earlier evaluation goes with it
    assert ev.main([str(run), "--no-progress"]) == 0
    (run / "eval" / "old_panel.png").write_bytes(b"png")
    assert ev.main([str(run), "--overwrite", "--no-progress"]) == 0
    assert not (run / "eval" / "old_panel.png").exists()
    assert (run / "eval" / "summary.json").is_file()
