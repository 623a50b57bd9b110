"""Which data a chapter runs on: resolving ``data_dir`` and naming the data's provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from bratslib.data.layout import find_cases
from bratslib.data.source import data_provenance, resolve_data_dir
from tests.conftest import write_tiny_case


def test_none_means_synthetic_written_once_and_resumed(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BRATSLIB_CACHE", str(tmp_path / "cache"))
    root = resolve_data_dir(None, synthetic_cases=1, seed=3, progress=False)
    assert root == tmp_path / "cache" / "synthetic" / "seed3-cases1"
    (case,) = find_cases(root)
    # an interrupted first run (a case file missing) is finished by the next call
    case.images["t2"].unlink()
    assert resolve_data_dir(None, synthetic_cases=1, seed=3, progress=False) == root
    assert case.images["t2"].exists()
    info = data_provenance(root)
    assert info["kind"] == "synthetic" and info["seed"] == 3 and info["n_cases"] == 1
    assert "not patient data" in info["description"]
    # the marker is found from the inner MICCAI folder too
    assert data_provenance(case.folder.parent)["kind"] == "synthetic"


def test_a_folder_without_the_marker_is_real_data(tmp_path: Path):
    write_tiny_case(tmp_path / "MICCAI_BraTS2020_TrainingData", "BraTS20_Training_001")
    assert resolve_data_dir(tmp_path) == tmp_path
    info = data_provenance(tmp_path)
    assert info["kind"] == "real" and info["n_cases"] == 1 and tmp_path.name in info["description"]


def test_missing_data_dir_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope does not exist"):
        resolve_data_dir(tmp_path / "nope")
