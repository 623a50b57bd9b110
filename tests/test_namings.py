"""The three BraTS namings, read from real files: BraTS 2020 (``BraTS20_Training_001_flair.nii``),
BraTS 2021 (``BraTS2021_00000_flair.nii.gz``, labels 0/1/2/4) and BraTS 2023+
(``BraTS-GLI-00000-000-t2f.nii.gz``, labels 0/1/2/3 with 3 = enhancing tumour).

The real scans are those of ``../shared/real`` (two TCGA gliomas in the BraTS 2020 layout, one
scan in the BraTS 2023 naming; see its SOURCE.md).  The 2021 and 2023 labelled cases are the
2020 case's own files under the other names (the 2023 segmentation with 4 written as 3), so the
loader must give back exactly the same arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratslib.data import NAMINGS, check_case, data_provenance, find_cases, load_case, naming_of
from bratslib.data.cases import BratsDataError

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
CASE_2020 = REAL / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_901"
CASE_2023 = REAL / "brats2023" / "BraTS-GLI-00001-000"

pytestmark = pytest.mark.skipif(not CASE_2020.is_dir(), reason=f"the real scans are not at {REAL}")


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def _as_2021(tmp_path: Path) -> Path:
    case = tmp_path / "BraTS2021_00901"
    for kind in ("flair", "t1", "t1ce", "t2", "seg"):
        _link(CASE_2020 / f"BraTS20_Training_901_{kind}.nii.gz", case / f"BraTS2021_00901_{kind}.nii.gz")
    return case


def _as_2023(tmp_path: Path, enhancing: int = 3) -> Path:
    case = tmp_path / "BraTS-GLI-00901-000"
    for kind, name in (("flair", "t2f"), ("t1", "t1n"), ("t1ce", "t1c"), ("t2", "t2w")):
        _link(CASE_2020 / f"BraTS20_Training_901_{kind}.nii.gz", case / f"BraTS-GLI-00901-000-{name}.nii.gz")
    seg = nib.load(CASE_2020 / "BraTS20_Training_901_seg.nii.gz")
    labels = np.asarray(seg.dataobj).astype(np.uint8)
    labels[labels == 4] = enhancing
    nib.save(nib.Nifti1Image(labels, seg.affine, seg.header), case / "BraTS-GLI-00901-000-seg.nii.gz")
    return case


def test_naming_follows_the_case_id():
    assert naming_of("BraTS20_Training_001").name == "brats2020"
    assert naming_of("BraTS20_Validation_125").name == "brats2020"
    assert naming_of("BraTS2021_00000").name == "brats2021"
    assert naming_of("BraTS-GLI-00000-000").name == "brats2023"
    assert naming_of("BraTS-MEN-00004-001").name == "brats2023"
    assert NAMINGS["brats2023"].labels == (0, 1, 2, 3) and NAMINGS["brats2021"].labels == (0, 1, 2, 4)


def test_brats2020_real_cases():
    cases = find_cases(REAL / "MICCAI_BraTS2020_TrainingData")
    assert [c.case_id for c in cases] == ["BraTS20_Training_901", "BraTS20_Training_902"]
    assert all(c.naming == "brats2020" and not c.missing and c.labeled for c in cases)
    case = load_case(cases[0])
    assert case.shape == (240, 240, 155)
    assert set(np.unique(case.seg)) == {0, 1, 2, 4}
    assert set(np.unique(load_case(cases[1]).seg)) == {0, 1, 2}  # 902 has no enhancing tumour
    assert check_case(cases[0]) == []


def test_brats2023_real_scan_is_found_with_its_modalities_and_checks_clean():
    (case_files,) = find_cases(REAL / "brats2023")
    assert case_files.case_id == "BraTS-GLI-00001-000" and case_files.naming == "brats2023"
    assert {m: p.name for m, p in case_files.images.items()} == {
        "flair": "BraTS-GLI-00001-000-t2f.nii.gz", "t1": "BraTS-GLI-00001-000-t1n.nii.gz",
        "t1ce": "BraTS-GLI-00001-000-t1c.nii.gz", "t2": "BraTS-GLI-00001-000-t2w.nii.gz"}
    assert not case_files.labeled and case_files.split == "validation"
    assert check_case(case_files) == []
    case = load_case(case_files)
    assert case.shape == (240, 240, 155) and case.flair.std() > 0 and case.seg is None
    provenance = data_provenance(REAL / "brats2023")
    assert provenance["naming"] == ["brats2023"] and "BraTS 2023+" in provenance["description"]
    assert provenance["label_convention"] == ["labels 0/1/2/3 (3 = enhancing tumour, read as 4)"]


@pytest.mark.parametrize("rename", [_as_2021, _as_2023], ids=["brats2021", "brats2023"])
def test_every_naming_gives_the_same_arrays_as_the_2020_files(rename, tmp_path):
    reference = load_case(CASE_2020)
    (files,) = find_cases(rename(tmp_path))
    assert files.naming == rename.__name__.replace("_as_", "brats")
    assert check_case(files) == []
    case = load_case(files, require_seg=True)
    for modality in ("flair", "t1", "t1ce", "t2"):
        np.testing.assert_array_equal(case.image(modality), reference.image(modality))
    np.testing.assert_array_equal(case.seg, reference.seg)  # 2023's 3 comes back as 4
    assert case.seg.dtype == np.uint8 and set(np.unique(case.seg)) == {0, 1, 2, 4}


def test_a_2023_segmentation_with_label_4_is_named_as_wrong(tmp_path):
    files = find_cases(_as_2023(tmp_path, enhancing=4))[0]
    (problem,) = check_case(files)
    assert problem.file.endswith("BraTS-GLI-00901-000-seg.nii.gz")
    assert "labels outside {0, 1, 2, 3}: 4" in problem.problem and "BraTS 2023+" in problem.problem
    with pytest.raises(BratsDataError, match=r"labels outside \{0, 1, 2, 3\}"):
        load_case(files).seg


def test_a_missing_2023_modality_names_the_2023_file(tmp_path):
    case = _as_2023(tmp_path)
    (case / "BraTS-GLI-00901-000-t1c.nii.gz").unlink()
    files = find_cases(case)[0]
    assert files.missing == ("t1ce",)
    with pytest.raises(BratsDataError, match="missing modality t1ce .expected BraTS-GLI-00901-000-t1c.nii or .nii.gz"):
        load_case(files)
