"""Run folders: atomic files, identity, never overwriting an earlier run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bratslib import results
from bratslib.results import Run, find_runs, open_run, read_csv, read_json, write_csv, write_json

DATA = {"kind": "synthetic", "n_cases": 5, "seed": 0, "folder": "/data/x", "description": "synthetic"}
SPLIT = {"train": ["a", "b", "c"], "val": ["d"], "test": ["e"]}


def test_json_and_csv_round_trip(tmp_path):
    write_json(tmp_path / "x.json", {"a": np.float32(0.5), "b": np.arange(3), "nan": float("nan"), "p": tmp_path})
    assert read_json(tmp_path / "x.json") == {"a": 0.5, "b": [0, 1, 2], "nan": None, "p": str(tmp_path)}
    rows = [{"epoch": 0, "loss": 0.25, "name": "x"}, {"epoch": 1, "loss": float("nan"), "extra": 3}]
    write_csv(tmp_path / "h.csv", rows)
    back = read_csv(tmp_path / "h.csv")
    assert back[0] == {"epoch": 0, "loss": 0.25, "name": "x", "extra": back[0]["extra"]}
    assert math.isnan(back[0]["extra"]) and math.isnan(back[1]["loss"]) and back[1]["extra"] == 3
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = write_json(tmp_path / "m.json", {"v": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_json(path, {"v": 2})
    assert read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_open_run_writes_provenance(tmp_path):
    run = open_run("unet2d-smoke-seed0", {"model": "unet2d", "epochs": 3}, DATA, SPLIT, tmp_path)
    assert run.path == tmp_path / "unet2d-smoke-seed0"
    assert run.config["model"] == "unet2d" and run.config["identity"]
    assert run.data == DATA and run.split == SPLIT and run.status == "new"
    env = run.environment
    assert env["packages"]["keras"] and env["packages"]["numpy"] == np.__version__
    assert env["python"] and env["library_hash"]


def test_same_configuration_reuses_the_folder_and_another_gets_a_new_one(tmp_path, capsys):
    first = open_run("r", {"epochs": 3}, DATA, SPLIT, tmp_path)
    (first.path / "history.csv").write_text("epoch\n0\n")
    again = open_run("r", {"epochs": 3}, DATA, SPLIT, tmp_path)
    assert again.path == first.path
    other = open_run("r", {"epochs": 4}, DATA, SPLIT, tmp_path)
    assert other.path == tmp_path / "r-2"
    assert "different configuration" in capsys.readouterr().err
    assert (first.path / "history.csv").read_text() == "epoch\n0\n"  # untouched
    assert read_json(first.path / "config.json")["epochs"] == 3
    assert open_run("r", {"epochs": 4}, DATA, SPLIT, tmp_path).path == other.path
    assert open_run("r", {"epochs": 3}, {**DATA, "seed": 1}, SPLIT, tmp_path).path == tmp_path / "r-3"
    assert [r.name for r in find_runs("r", tmp_path)] == ["r", "r-2", "r-3"]


def test_same_configuration_with_another_split_is_an_error(tmp_path):
    open_run("r", {"epochs": 3}, DATA, SPLIT, tmp_path)
    with pytest.raises(ValueError, match="different split"):
        open_run("r", {"epochs": 3}, DATA, {**SPLIT, "test": ["f"]}, tmp_path)


def test_bad_run_names_are_refused(tmp_path):
    for name in ("", "../x", "a b", "a/b"):
        with pytest.raises(ValueError, match="run name"):
            open_run(name, {}, DATA, SPLIT, tmp_path)


class _FakeModel:
    """Stands in for a Keras model: ``save`` writes its payload."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.payload)


def test_checkpoints_keep_the_last_and_the_best_then_finish(tmp_path):
    run = open_run("r", {}, DATA, SPLIT, tmp_path)
    run.save_checkpoint(_FakeModel(b"e0"), 0, improved=True, best=0.5, best_epoch=0)
    run.save_checkpoint(_FakeModel(b"e1"), 1, improved=False, best=0.5, best_epoch=0)
    names = sorted(p.name for p in run.checkpoint_dir.iterdir())
    assert names == ["best-epoch-0000.keras", "epoch-0001.keras"]
    assert run.last_checkpoint().read_bytes() == b"e1" and run.state["epoch"] == 1
    run.save_checkpoint(_FakeModel(b"e2"), 2, improved=True, best=0.7, best_epoch=2)
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == ["best-epoch-0002.keras", "epoch-0002.keras"]
    run.finish()
    assert run.finished and run.model_path.read_bytes() == b"e2"
    assert run.state == {"status": "finished", "epoch": 2, "best": 0.7, "best_epoch": 2}
    assert not run.checkpoint_dir.exists() and run.last_checkpoint() is None


def test_evaluations_are_never_overwritten(tmp_path):
    run = open_run("r", {}, DATA, SPLIT, tmp_path)
    run.write_evaluation({"summary": {}}, [{"case_id": "e", "dice_WT": 0.5}])
    assert run.metrics() == {"summary": {}} and run.per_case() == [{"case_id": "e", "dice_WT": 0.5}]
    with pytest.raises(FileExistsError):
        run.write_evaluation({"summary": {}}, [])
    a = run.write_evaluation({"n": 1}, [{"case_id": "x"}], name="real-test")
    b = run.write_evaluation({"n": 2}, [{"case_id": "y"}], name="real-test")
    assert (a.name, b.name) == ("real-test", "real-test-2")
    assert json.loads((a / "metrics.json").read_text()) == {"n": 1}


def test_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a bratslib run"):
        Run(tmp_path)


def test_run_identity_ignores_the_book_build_and_the_command_line(tmp_path, monkeypatch):
    """Editing ``bratslib/book.py`` or ``__main__.py`` (neither trains nor evaluates) must not
    make every chapter train again; editing a module that trains must."""
    import shutil

    from bratslib import results

    copy = tmp_path / "bratslib"
    shutil.copytree(results._LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(results, "_LIBRARY", copy)
    before = results.library_hash()
    for name in results.NOT_IN_RUN_IDENTITY:
        (copy / name).write_text((copy / name).read_text() + "\n# edited\n")
    assert results.library_hash() == before
    (copy / "losses.py").write_text((copy / "losses.py").read_text() + "\n# edited\n")
    assert results.library_hash() != before
