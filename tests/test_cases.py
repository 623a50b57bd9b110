"""Finding and loading BraTS cases, and every kind of bad input, with real NIfTI files.

Each fault is written to disk as a user would meet it (a truncated download, a renamed
file, a corrupt archive...) and the test checks that the error names the case and the file
and says what is wrong, both from ``load_case`` and from ``check``.
"""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratslib.data import (
    BratsDataError,
    NoCasesFoundError,
    check_case,
    check_dataset,
    find_cases,
    load_case,
    load_cases,
)
from bratslib.data.layout import MODALITIES

SHAPE = (24, 20, 12)
AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]])


def write_case(parent: Path, case_id: str, *, ext: str = ".nii", seg: bool = True, shape=SHAPE, seed: int = 0) -> Path:
    """A small, well-formed case in the BraTS layout (int16 images, uint8 labels)."""
    rng = np.random.default_rng(seed)
    folder = parent / case_id
    folder.mkdir(parents=True)
    brain = np.zeros(shape, bool)
    brain[2:-2, 2:-2, 1:-1] = True
    for i, m in enumerate(MODALITIES):
        data = np.where(brain, rng.integers(100, 1000, shape), 0).astype(np.int16)
        nib.save(nib.Nifti1Image(data, AFFINE), folder / f"{case_id}_{m}{ext}")
    if seg:
        labels = np.zeros(shape, np.uint8)
        labels[8:14, 8:12, 4:8] = 2
        labels[10:12, 9:11, 5:7] = 4
        labels[10, 10, 6] = 1
        nib.save(nib.Nifti1Image(labels, AFFINE), folder / f"{case_id}_seg{ext}")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A Kaggle-layout tree: 3 training cases (.nii) and 1 validation case without seg."""
    train = tmp_path / "brats20" / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    for k in (1, 2, 3):
        write_case(train, f"BraTS20_Training_00{k}", seed=k)
    (train / "name_mapping.csv").write_text("Grade,BraTS_2020_subject_ID\nHGG,BraTS20_Training_001\n")
    (train / "survival_info.csv").write_text("Brats20ID,Age\n")
    val = tmp_path / "brats20" / "BraTS2020_ValidationData" / "MICCAI_BraTS2020_ValidationData"
    write_case(val, "BraTS20_Validation_001", seg=False)
    return tmp_path / "brats20"


def problems_of(folder: Path) -> list[tuple[str, str, str]]:
    _, rows = check_dataset(folder)
    return [(r.case_id, Path(r.file).name, r.problem) for r in rows]


# ------------------------------------------------------------------------- finding cases


def test_find_cases_in_kaggle_layout_from_any_parent(root: Path):
    ids = [c.case_id for c in find_cases(root)]
    assert ids == ["BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_003", "BraTS20_Validation_001"]
    # the same cases from the MICCAI folder, and a single case folder on its own
    inner = root / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    assert [c.case_id for c in find_cases(inner)] == ids[:3]
    assert [c.case_id for c in find_cases(inner / "BraTS20_Training_002")] == ["BraTS20_Training_002"]


def test_official_layout_nii_gz(tmp_path: Path):
    write_case(tmp_path / "MICCAI_BraTS2020_TrainingData", "BraTS20_Training_010", ext=".nii.gz")
    (case,) = find_cases(tmp_path)
    assert case.images["flair"].name == "BraTS20_Training_010_flair.nii.gz"
    loaded = load_case(case)
    assert loaded.flair.dtype == np.float32 and loaded.seg.dtype == np.uint8


def test_validation_case_loads_unlabeled(root: Path):
    case = load_case(find_cases(root)[-1])
    assert not case.labeled and case.seg is None
    assert case.flair.shape == SHAPE
    with pytest.raises(BratsDataError, match="BraTS20_Validation_001.*no segmentation"):
        load_case(find_cases(root)[-1], require_seg=True)


def test_non_standard_segmentation_name_is_found(root: Path):
    """BraTS20_Training_355's mask is named W39_1998.09.19_Segm.nii in the real release."""
    folder = root / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_002"
    (folder / "BraTS20_Training_002_seg.nii").rename(folder / "W39_1998.09.19_Segm.nii")
    case = [c for c in find_cases(root) if c.case_id == "BraTS20_Training_002"][0]
    assert case.seg.name == "W39_1998.09.19_Segm.nii"
    assert any("non-standard name" in n for n in case.notes)
    assert set(np.unique(load_case(case).seg)) == {0, 1, 2, 4}
    assert problems_of(root) == []


def test_extra_files_in_a_case_folder_are_ignored(root: Path):
    folder = root / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_001"
    (folder / "notes.txt").write_text("hello")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    assert load_case(find_cases(root)[0]).flair.shape == SHAPE
    assert problems_of(root) == []


def test_empty_folder_and_no_case_found(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoCasesFoundError, match="empty.* is empty"):
        find_cases(tmp_path / "empty")
    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "other" / "sub" / "readme.txt").write_text("x")
    with pytest.raises(NoCasesFoundError, match="holds no BraTS case folder"):
        find_cases(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_cases(tmp_path / "missing")


def test_duplicate_case_ids_are_named(root: Path):
    dup = root / "copy"
    shutil.copytree(root / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_003", dup / "BraTS20_Training_003")
    with pytest.raises(ValueError, match="duplicate case id BraTS20_Training_003"):
        find_cases(root)
    rows = problems_of(root)
    assert [(r[0], "duplicate" in r[2]) for r in rows] == [("BraTS20_Training_003", True)]


# ------------------------------------------------------------------------- loading


def test_load_case_geometry_and_dtypes(root: Path):
    case = load_case(find_cases(root)[0])
    assert case.case_id == "BraTS20_Training_001"
    assert case.shape == SHAPE and case.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(case.affine, AFFINE)
    for m in MODALITIES:
        assert case.image(m).dtype == np.float32 and case.image(m).shape == SHAPE
    assert case.stack(("flair", "t1ce")).shape == (*SHAPE, 2)
    assert case.seg.dtype == np.uint8 and set(np.unique(case.seg)) <= {0, 1, 2, 4}


def test_load_case_is_lazy(root: Path, monkeypatch):
    """Headers are read at load time; voxel data only when first asked for, then kept."""
    calls = []
    original = nib.Nifti1Image.get_fdata
    monkeypatch.setattr(nib.Nifti1Image, "get_fdata", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    case = load_case(find_cases(root)[0])
    assert calls == []
    case.flair, case.flair
    assert len(calls) == 1
    case.release()
    case.flair
    assert len(calls) == 2


def test_subset_of_modalities(root: Path):
    case = load_case(find_cases(root)[0], ("flair", "t1ce"))
    assert case.modalities == ("flair", "t1ce")
    with pytest.raises(KeyError, match="t2.*not loaded"):
        case.t2
    with pytest.raises(ValueError, match="unknown modality 'dwi'"):
        load_case(find_cases(root)[0], ("dwi",))


# ------------------------------------------------------------------------- faults
# Each fault: how to make it, the file that must be named, and the words the message holds.


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _replace_data(path: Path, fn) -> None:
    img = nib.load(path, mmap=False)
    nib.save(nib.Nifti1Image(fn(np.asanyarray(img.dataobj)), img.affine), path)  # dtype of the new data


def _set_header_shape(path: Path, shape) -> None:
    """Rewrite only the header's shape (the voxel bytes stay): a header that lies about its data."""
    gz = path.name.endswith(".gz")
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    header.set_data_shape(shape)
    raw = header.binaryblock + raw[len(header.binaryblock):]
    path.write_bytes(gzip.compress(raw) if gz else raw)


FAULTS = {
    "missing modality": (lambda f: (f / f"{f.name}_t1.nii").unlink(), None, "missing modality t1"),
    "zero-byte file": (lambda f: (f / f"{f.name}_t2.nii").write_bytes(b""), "t2", "empty file (0 bytes)"),
    "truncated .nii": (lambda f: _truncate(f / f"{f.name}_flair.nii", 400), "flair", "truncated file"),
    "garbage bytes": (lambda f: (f / f"{f.name}_t1ce.nii").write_bytes(b"this is not a NIfTI file" * 40), "t1ce", "not a readable NIfTI file"),
    "header shape smaller than its data": (lambda f: _set_header_shape(f / f"{f.name}_t1.nii", (24, 20, 10)), "t1",
                                           "header shape does not match the data: shape (24, 20, 10)"),
    "header shape larger than its data": (lambda f: _set_header_shape(f / f"{f.name}_t1.nii", (24, 20, 14)), "t1",
                                          "truncated file: header promises"),
    "different shapes": (lambda f: _replace_data(f / f"{f.name}_t2.nii", lambda a: a[:-2]), "t2", "shape (22, 20, 12) differs"),
    "different affines": (
        lambda f: nib.save(nib.Nifti1Image(np.asanyarray(nib.load(f / f"{f.name}_t1.nii", mmap=False).dataobj), AFFINE @ np.diag([2.0, 1, 1, 1])), f / f"{f.name}_t1.nii"),
        "t1", "affine differs",
    ),
    "4-D image": (lambda f: _replace_data(f / f"{f.name}_flair.nii", lambda a: a[..., None]), "flair", "expected a 3-D volume"),
    "NaN voxels": (lambda f: _replace_data(f / f"{f.name}_t1.nii", lambda a: np.where(a > 900, np.nan, a).astype(np.float32)), "t1", "NaN"),
    "Inf voxels": (lambda f: _replace_data(f / f"{f.name}_t2.nii", lambda a: np.where(a > 900, np.inf, a).astype(np.float32)), "t2", "Inf voxels"),
    "all-zero image": (lambda f: _replace_data(f / f"{f.name}_t1ce.nii", np.zeros_like), "t1ce", "all zeros"),
    "label 3": (lambda f: _replace_data(f / f"{f.name}_seg.nii", lambda a: np.where(a == 1, 3, a).astype(np.uint8)), "seg", "labels outside {0, 1, 2, 4}: 3 (1 voxels)"),
    "label 5": (lambda f: _replace_data(f / f"{f.name}_seg.nii", lambda a: np.where(a == 4, 5, a).astype(np.uint8)), "seg", "labels outside {0, 1, 2, 4}: 5"),
    "negative label": (lambda f: _replace_data(f / f"{f.name}_seg.nii", lambda a: np.where(a == 4, -1, a.astype(np.int16))), "seg", "values range from -1"),
    "fractional label": (lambda f: _replace_data(f / f"{f.name}_seg.nii", lambda a: np.where(a == 4, 1.5, a).astype(np.float32)), "seg", "non-integer labels"),
    "missing segmentation": (lambda f: (f / f"{f.name}_seg.nii").unlink(), None, "no segmentation file"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_is_named_by_check_and_by_load(root: Path, fault: str):
    make, file_tag, words = FAULTS[fault]
    folder = root / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_002"
    make(folder)
    expected_file = folder.name if file_tag is None else f"BraTS20_Training_002_{file_tag}.nii"

    rows = problems_of(root)
    assert rows, f"check found nothing wrong after: {fault}"
    assert {r[0] for r in rows} == {"BraTS20_Training_002"}, rows
    assert any(r[1] == expected_file and words in r[2] for r in rows), rows

    case = [c for c in find_cases(root) if c.case_id == "BraTS20_Training_002"][0]
    with pytest.raises(BratsDataError) as info:
        loaded = load_case(case, require_seg=True)
        for m in MODALITIES:  # data-level faults surface when the voxels are read
            loaded.image(m)
        loaded.seg
    err = info.value
    assert err.case_id == "BraTS20_Training_002" and err.file.name == expected_file
    assert words in str(err) and "BraTS20_Training_002" in str(err)


def test_truncated_nii_gz_is_named(tmp_path: Path):
    folder = write_case(tmp_path, "BraTS20_Training_007", ext=".nii.gz")
    flair = folder / "BraTS20_Training_007_flair.nii.gz"
    # a gzip stream cut short: the header still decompresses, the voxels do not
    raw = gzip.decompress(flair.read_bytes())
    flair.write_bytes(gzip.compress(raw)[:-60])
    rows = problems_of(tmp_path)
    assert len(rows) == 1 and rows[0][1] == flair.name and "corrupt" in rows[0][2], rows
    with pytest.raises(BratsDataError, match="BraTS20_Training_007.*flair.nii.gz.*corrupt"):
        load_case(folder).flair


def test_nii_gz_whose_header_shape_is_smaller_than_its_data_is_named(tmp_path: Path):
    # every file of the case rewritten with the same, wrong shape: the geometry agrees, the
    # voxels do not (nibabel alone would read the first 10 of 12 slices and say nothing)
    folder = write_case(tmp_path, "BraTS20_Training_008", ext=".nii.gz")
    for path in sorted(folder.iterdir()):
        _set_header_shape(path, (24, 20, 10))
    rows = problems_of(tmp_path)
    assert {r[1] for r in rows} == {p.name for p in folder.iterdir()}, rows
    assert all("header shape does not match the data: shape (24, 20, 10)" in r[2] for r in rows), rows
    by_file = {r[1]: r[2] for r in rows}  # two slices of 24 x 20: int16 images, uint8 labels
    assert "(1,920 bytes more)" in by_file["BraTS20_Training_008_flair.nii.gz"]
    assert "(960 bytes more)" in by_file["BraTS20_Training_008_seg.nii.gz"]
    with pytest.raises(BratsDataError, match="BraTS20_Training_008.*flair.nii.gz.*header shape does not match"):
        load_case(folder).flair


def test_a_few_trailing_padding_bytes_are_tolerated(tmp_path: Path):
    folder = write_case(tmp_path, "BraTS20_Training_009")
    with open(folder / "BraTS20_Training_009_t2.nii", "ab") as f:
        f.write(b"\0" * 8)
    assert problems_of(tmp_path) == []


def test_check_reports_every_problem_in_one_pass(root: Path):
    inner = root / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    FAULTS["zero-byte file"][0](inner / "BraTS20_Training_001")
    FAULTS["label 5"][0](inner / "BraTS20_Training_003")
    FAULTS["missing modality"][0](inner / "BraTS20_Training_003")
    rows = problems_of(root)
    assert sorted((r[0], r[1]) for r in rows) == [
        ("BraTS20_Training_001", "BraTS20_Training_001_t2.nii"),
        ("BraTS20_Training_003", "BraTS20_Training_003"),
        ("BraTS20_Training_003", "BraTS20_Training_003_seg.nii"),
    ]


def test_check_headers_only_skips_voxel_faults(root: Path):
    folder = root / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_001"
    FAULTS["label 5"][0](folder)
    case = find_cases(root)[0]
    assert check_case(case, read_voxels=False) == []
    assert len(check_case(case)) == 1


def test_skip_bad_cases_explicitly_and_logged(root: Path, caplog):
    folder = root / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_002"
    FAULTS["NaN voxels"][0](folder)
    # by default only headers are checked up front; the bad voxels surface when read
    lazy = load_cases(root)
    with pytest.raises(BratsDataError, match="BraTS20_Training_002.*t1.nii.*NaN"):
        lazy[1].t1
    with caplog.at_level("WARNING"):
        cases = load_cases(root, skip_bad=True)
    assert [c.case_id for c in cases] == ["BraTS20_Training_001", "BraTS20_Training_003", "BraTS20_Validation_001"]
    assert "skipping case BraTS20_Training_002" in caplog.text and "NaN" in caplog.text
