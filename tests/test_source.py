"""Which data a chapter runs on: resolving ``data_dir`` and naming the data's provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from bratslib.data.layout import find_cases
from bratslib.data.source import data_provenance, resolve_data_dir
from bratslib.data.synth import DEFAULT_OPTIONS, GENERATOR_VERSION
from tests.conftest import write_tiny_case


def test_none_means_synthetic_written_once_and_resumed(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BRATSLIB_CACHE", str(tmp_path / "cache"))
    root = resolve_data_dir(None, synthetic_cases=1, seed=3, progress=False)
    options = "-".join(sorted(DEFAULT_OPTIONS)) or "v1"
    assert root == tmp_path / "cache" / "synthetic" / f"{GENERATOR_VERSION}-{options}-seed3-cases1"
    (case,) = find_cases(root)
    # an interrupted first run (a case file missing) is finished by the next call
    case.images["t2"].unlink()
    assert resolve_data_dir(None, synthetic_cases=1, seed=3, progress=False) == root
    assert case.images["t2"].exists()
    info = data_provenance(root)
    assert info["kind"] == "synthetic" and info["seed"] == 3 and info["n_cases"] == 1
    assert info["generator"]["options"] == sorted(DEFAULT_OPTIONS)
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


def _kaggle_tree(root: Path) -> Path:
    """The Kaggle BraTS 2020 layout: uncompressed .nii, one mask with the release's odd name,
    the CSV files beside the cases, and unlabeled validation cases."""
    training = root / "brats20-dataset-training-validation" / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    for k in range(1, 5):
        write_tiny_case(training, f"BraTS20_Training_{k:03d}", seed=k, ext=".nii")
    odd = training / "BraTS20_Training_003"
    (odd / "BraTS20_Training_003_seg.nii").rename(odd / "W39_1998.09.19_Segm.nii")
    (training / "name_mapping.csv").write_text("Grade,BraTS_2020_subject_ID\nHGG,BraTS20_Training_001\n")
    (training / "survival_info.csv").write_text("Brats20ID,Age,Survival_days,Extent_of_Resection\n")
    validation = root / "brats20-dataset-training-validation" / "BraTS2020_ValidationData" / "MICCAI_BraTS2020_ValidationData"
    write_tiny_case(validation, "BraTS20_Validation_001", labeled=False, ext=".nii")
    return root


def test_none_finds_the_data_attached_to_a_kaggle_notebook(tmp_path: Path, monkeypatch, capsys):
    from bratslib.data import source
    from bratslib.data.generators import make_datasets

    kaggle = _kaggle_tree(tmp_path / "kaggle" / "input")
    monkeypatch.setattr(source, "KAGGLE_INPUT", kaggle)
    monkeypatch.setenv("BRATSLIB_CACHE", str(tmp_path / "cache"))
    root = resolve_data_dir(None, synthetic_cases=1, progress=False)
    assert root == kaggle and "attached to this Kaggle notebook" in capsys.readouterr().out
    info = data_provenance(root)
    assert info["kind"] == "real" and info["n_cases"] == 5  # 4 training cases and 1 validation case
    data = make_datasets(root, size=32, cache_dir=tmp_path / "cache", progress=False)
    assert sorted(sum(data.split.values(), [])) == [f"BraTS20_Training_{k:03d}" for k in range(1, 5)]
    # "synthetic" still means the synthetic data, on Kaggle too
    synthetic = resolve_data_dir("synthetic", synthetic_cases=1, seed=1, progress=False)
    assert data_provenance(synthetic)["kind"] == "synthetic"


def test_no_kaggle_folder_or_no_brats_in_it_means_synthetic(tmp_path: Path, monkeypatch):
    from bratslib.data import source

    assert source.kaggle_data_dir(tmp_path / "absent") is None
    (tmp_path / "input" / "some-other-dataset").mkdir(parents=True)
    (tmp_path / "input" / "some-other-dataset" / "table.csv").write_text("a,b\n")
    assert source.kaggle_data_dir(tmp_path / "input") is None
