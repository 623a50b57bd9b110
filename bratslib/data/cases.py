"""Reading one BraTS case, and checking a whole data folder.

:func:`load_case` returns a :class:`BratsCase`: the case id, the affine and voxel spacing
read from the NIfTI headers at once, and the voxel data read lazily (on first access, then
kept).  Every problem found raises a :class:`BratsDataError` that names the case, the file
and what is wrong.

:func:`check_case` and :func:`check_dataset` run the same checks but collect every problem
instead of stopping at the first; ``python -m bratslib check DIR`` prints them as a table.

The checks:

========================  ==============================================================
header level (cheap)      file missing, empty (0 bytes), not a NIfTI file, not 3-D,
                          truncated ``.nii`` (fewer bytes than the header promises), a
                          ``.nii`` with more voxel bytes than its header's shape accounts
                          for (at least one row more: fewer trailing bytes pass as padding),
                          shape or affine differing between a case's files
data level (reads voxels) corrupt or truncated ``.nii.gz``, a ``.nii.gz`` that decompresses
                          to more than its header's shape, NaN or Inf voxels, an image
                          that is all zeros, labels outside {0, 1, 2, 4} or not integers
========================  ==============================================================
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import nibabel as nib
import numpy as np

from bratslib.files import atomic_path
from bratslib.labels import LABELS

from bratslib.data.layout import (
    MODALITIES,
    NAMINGS,
    CaseFiles,
    case_files,
    duplicate_ids,
    scan_case_folders,
)

log = logging.getLogger(__name__)

#: Largest difference between two affines (mm) still taken as "the same affine".
AFFINE_TOLERANCE_MM = 1e-3


class BratsDataError(ValueError):
    """A BraTS file or case that cannot be used as it is.

    Attributes:
        case_id: the case, e.g. ``"BraTS20_Training_001"``.
        file: the offending file (or the case folder when no single file is to blame).
        problem: what is wrong, in words.
    """

    def __init__(self, case_id: str, file: str | os.PathLike, problem: str):
        self.case_id, self.file, self.problem = case_id, Path(file), problem
        super().__init__(f"{case_id}: {self.file}: {problem}")


@dataclass(frozen=True)
class Problem:
    """One row of ``check``'s report."""

    case_id: str
    file: str
    problem: str


# --------------------------------------------------------------------------- checks
# Each check returns a list of problems in words (empty when all is well), so that
# load_case can raise the first and check_case can collect them all.


def _open(path: Path) -> tuple[nib.Nifti1Image | None, list[str]]:
    """Open a NIfTI file's header (no voxel data) and run the header-level checks."""
    if not path.exists():
        return None, ["file missing"]
    size = path.stat().st_size
    if size == 0:
        return None, ["empty file (0 bytes)"]
    try:
        # mmap=False: a memory map of a file that is truncated or rewritten while mapped
        # kills the process with SIGBUS instead of raising; reading into memory is as fast.
        img = nib.load(path, mmap=False)
    except Exception as e:  # nibabel raises ImageFileError, gzip/zlib errors, ValueError...
        kind = "corrupt compressed file" if path.name.endswith(".gz") else "not a readable NIfTI file"
        return None, [f"{kind} ({type(e).__name__}: {e})"]
    if len(img.shape) != 3:
        return None, [f"expected a 3-D volume, header says shape {tuple(img.shape)}"]
    if not path.name.endswith(".gz"):
        expected = _expected_bytes(img)
        if size < expected:
            return None, [
                f"truncated file: header promises {expected:,} bytes (shape {tuple(img.shape)}, "
                f"{img.get_data_dtype()}), file holds {size:,}"
            ]
        if size - expected >= _row_bytes(img):
            return None, [_shape_mismatch(img, size)]
    return img, []


def _expected_bytes(img: nib.Nifti1Image) -> int:
    """Bytes of a NIfTI file (uncompressed) as its header describes it: offset + voxels."""
    return int(img.dataobj.offset) + int(np.prod(img.shape)) * img.get_data_dtype().itemsize


def _row_bytes(img: nib.Nifti1Image) -> int:
    """Bytes of one row of voxels: trailing bytes fewer than this are tolerated as padding."""
    return int(img.shape[0]) * img.get_data_dtype().itemsize


def _shape_mismatch(img: nib.Nifti1Image, size: int) -> str:
    expected = _expected_bytes(img)
    return (f"header shape does not match the data: shape {tuple(img.shape)} of {img.get_data_dtype()} accounts "
            f"for {expected:,} bytes, the file holds {size:,} ({size - expected:,} bytes more)")


def _gzip_size_problems(img: nib.Nifti1Image) -> list[str]:
    """For a ``.nii.gz`` whose voxels were read: does the stream hold more than the header says?

    The gzip trailer's ISIZE (uncompressed size modulo 2**32, of the last member) is checked
    first; only when it disagrees is the stream decompressed again to count its bytes (a
    file of several gzip members would otherwise be misjudged).
    """
    path = Path(img.get_filename())
    expected = _expected_bytes(img)
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        isize = int.from_bytes(f.read(4), "little")
    if isize == expected % 2**32:
        return []
    import gzip

    size = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            size += len(chunk)
    return [_shape_mismatch(img, size)] if size - expected >= _row_bytes(img) else []


def _read(img: nib.Nifti1Image, *, float32: bool) -> tuple[np.ndarray | None, list[str]]:
    try:
        data = img.get_fdata(dtype=np.float32, caching="unchanged") if float32 else np.asanyarray(img.dataobj)
    except (EOFError, zlib.error, OSError, ValueError) as e:
        return None, [f"truncated or corrupt voxel data ({type(e).__name__}: {e})"]
    if str(img.get_filename()).endswith(".gz"):
        problems = _gzip_size_problems(img)
        if problems:
            return None, problems
    return data, []


def _image_problems(data: np.ndarray) -> list[str]:
    problems = []
    finite = np.isfinite(data)
    if not finite.all():
        n_nan, n_inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
        problems.append(f"{n_nan:,} NaN and {n_inf:,} Inf voxels")
    if not np.any(data[finite]):
        problems.append("image is all zeros")
    return problems


def _label_problems(data: np.ndarray, labels: tuple[int, ...] = LABELS) -> list[str]:
    """What is wrong with a label map whose allowed values are ``labels`` ([] when nothing)."""
    allowed = "{" + ", ".join(map(str, labels)) + "}"
    if not np.issubdtype(data.dtype, np.integer):
        if not np.isfinite(data).all():
            return ["segmentation has NaN or Inf voxels"]
        if not np.array_equal(data, np.round(data)):
            return ["segmentation has non-integer labels"]
    lo, hi = data.min(), data.max()
    if lo < 0 or hi > 255:
        return [f"labels outside {allowed}: values range from {lo} to {hi}"]
    counts = np.bincount(data.astype(np.uint8, copy=False).ravel(), minlength=256)
    bad = [int(v) for v in np.flatnonzero(counts) if v not in labels]
    if bad:
        detail = ", ".join(f"{v} ({counts[v]:,} voxels)" for v in bad)
        hint = " (BraTS 2023+ files label the enhancing tumour 3, earlier ones 4: is the folder named as its release?)" \
            if set(bad) & {3, 4} else ""
        return [f"labels outside {allowed}: {detail}{hint}"]
    return []


def _to_brats2020_labels(data: np.ndarray, files: CaseFiles) -> np.ndarray:
    """uint8 labels 0/1/2/4 from a checked segmentation of ``files``' naming (3 -> 4 since 2023)."""
    labels = data.astype(np.uint8)
    enhancing = NAMINGS[files.naming].enhancing_label
    if enhancing != 4:
        labels[labels == enhancing] = 4
    return labels


def _geometry_problems(reference: tuple[str, nib.Nifti1Image], img: nib.Nifti1Image) -> list[str]:
    ref_name, ref = reference
    if tuple(img.shape) != tuple(ref.shape):
        return [f"shape {tuple(img.shape)} differs from {ref_name}'s {tuple(ref.shape)}"]
    if not np.allclose(img.affine, ref.affine, atol=AFFINE_TOLERANCE_MM):
        return [f"affine differs from {ref_name}'s (largest difference {np.abs(img.affine - ref.affine).max():.3g} mm)"]
    return []


# --------------------------------------------------------------------------- BratsCase


class BratsCase:
    """One BraTS case: four co-registered MRI volumes and, when labeled, its label map.

    Geometry comes from the headers when the case is loaded; voxel data is read on first
    access and then kept (call :meth:`release` to drop it).

    Attributes:
        case_id: e.g. ``"BraTS20_Training_001"``.
        files: the :class:`~bratslib.data.layout.CaseFiles` the case was read from.
        shape: volume shape (x, y, z) in voxels; (240, 240, 155) for BraTS 2020.
        affine: 4x4 voxel-to-world matrix (mm), shared by all the case's files.
        spacing: voxel size along each array axis, in mm.

    Voxel data (all of shape ``shape``):
        ``flair``, ``t1``, ``t1ce``, ``t2``: float32 intensities in the scanner's arbitrary
        units (background 0 in skull-stripped BraTS).
        ``seg``: uint8 labels 0 / 1 / 2 / 4, or None for an unlabeled case.
    """

    def __init__(self, files: CaseFiles, images: dict[str, nib.Nifti1Image], seg: nib.Nifti1Image | None):
        self.case_id = files.case_id
        self.files = files
        self._headers = images
        self._seg_header = seg
        first = next(iter(images.values()))
        self.shape: tuple[int, int, int] = tuple(int(n) for n in first.shape)
        self.affine: np.ndarray = first.affine.copy()
        self.spacing: tuple[float, float, float] = tuple(float(s) for s in first.header.get_zooms()[:3])
        self._cache: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        label = "labeled" if self.labeled else "unlabeled"
        return f"BratsCase({self.case_id!r}, shape={self.shape}, spacing={self.spacing}, {label}, modalities={self.modalities})"

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self._headers)

    @property
    def labeled(self) -> bool:
        return self._seg_header is not None

    def image(self, modality: str) -> np.ndarray:
        """The volume of ``modality`` (one of ``flair``, ``t1``, ``t1ce``, ``t2``), float32."""
        if modality not in self._headers:
            raise KeyError(f"{self.case_id}: modality {modality!r} was not loaded (loaded: {', '.join(self.modalities)})")
        if modality not in self._cache:
            path = self.files.images[modality]
            data, problems = _read(self._headers[modality], float32=True)
            problems = problems or _image_problems(data)
            if problems:
                raise BratsDataError(self.case_id, path, problems[0])
            self._cache[modality] = data
        return self._cache[modality]

    flair = property(lambda self: self.image("flair"), doc="FLAIR volume, float32.")
    t1 = property(lambda self: self.image("t1"), doc="T1 volume, float32.")
    t1ce = property(lambda self: self.image("t1ce"), doc="Contrast-enhanced T1 volume, float32.")
    t2 = property(lambda self: self.image("t2"), doc="T2 volume, float32.")

    @property
    def seg(self) -> np.ndarray | None:
        """Label map, uint8 with values in {0, 1, 2, 4} whatever the release (a BraTS 2023+
        file's enhancing label 3 is read as 4); None for an unlabeled case."""
        if self._seg_header is None:
            return None
        if "seg" not in self._cache:
            data, problems = _read(self._seg_header, float32=False)
            problems = problems or _label_problems(data, self.files.labels)
            if problems:
                raise BratsDataError(self.case_id, self.files.seg, problems[0])
            self._cache["seg"] = _to_brats2020_labels(data, self.files)
        return self._cache["seg"]

    def stack(self, modalities: tuple[str, ...] | list[str] = ("flair", "t1ce")) -> np.ndarray:
        """The chosen modalities stacked on a last channel axis: (x, y, z, C), float32."""
        return np.stack([self.image(m) for m in modalities], axis=-1)

    def release(self) -> None:
        """Forget the voxel data read so far (it is read again on next access)."""
        self._cache.clear()


def load_case(
    case: CaseFiles | str | os.PathLike,
    modalities: tuple[str, ...] | list[str] = MODALITIES,
    *,
    require_seg: bool = False,
) -> BratsCase:
    """Open one BraTS case and check its headers.

    Args:
        case: a :class:`CaseFiles` from :func:`~bratslib.data.layout.find_cases`, or the path
            of a case folder.
        modalities: which modalities to open (all four by default).
        require_seg: raise if the case has no segmentation (validation cases have none).

    Returns:
        A :class:`BratsCase` whose geometry is read and checked; voxel data is read on first
        access, and checked then (NaN / Inf, all-zero images, labels outside {0, 1, 2, 4}).

    Raises:
        BratsDataError: naming the case and the file: a missing modality, an unreadable,
            empty, corrupt or truncated file, or a shape or affine that differs between files.
    """
    files = case if isinstance(case, CaseFiles) else case_files(case)
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown modality {unknown[0]!r}; BraTS has {', '.join(MODALITIES)}")
    images: dict[str, nib.Nifti1Image] = {}
    reference: tuple[str, nib.Nifti1Image] | None = None
    for modality in modalities:
        path = files.images.get(modality)
        if path is None:
            raise BratsDataError(files.case_id, files.folder, f"missing modality {modality} (expected {files.expected_name(modality)}.nii or .nii.gz)")
        img, problems = _open(path)
        if not problems and reference is not None:
            problems = _geometry_problems(reference, img)
        if problems:
            raise BratsDataError(files.case_id, path, problems[0])
        images[modality] = img
        reference = reference or (path.name, img)
    seg = None
    if files.seg is not None:
        seg, problems = _open(files.seg)
        problems = problems or _geometry_problems(reference, seg)
        if problems:
            raise BratsDataError(files.case_id, files.seg, problems[0])
    elif require_seg:
        raise BratsDataError(files.case_id, files.folder, f"no segmentation file (expected {files.expected_name('seg')}.nii or .nii.gz)")
    return BratsCase(files, images, seg)


def save_label_map(path: str | os.PathLike, labels: np.ndarray, affine: np.ndarray) -> Path:
    """Write a label map (a prediction) as NIfTI with the case's affine, atomically.

    Args:
        path: ``.nii`` or ``.nii.gz`` file to write (folders are created).
        labels: BraTS labels {0, 1, 2, 4}, (x, y, z) on the case's grid; stored as uint8.
        affine: the case's 4x4 voxel-to-world affine (``BratsCase.affine``), so the map
            overlays the MRI in any viewer (ITK-SNAP, 3D Slicer, nilearn).

    Raises:
        ValueError: labels not 3-D or outside {0, 1, 2, 4}; a name without a NIfTI suffix.
    """
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{path}: a label map is written as .nii or .nii.gz")
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"{path}: a label map is 3-D, got shape {labels.shape}")
    problems = _label_problems(labels)
    if problems:
        raise ValueError(f"{path}: {problems[0]}")
    img = nib.Nifti1Image(labels.astype(np.uint8), np.asarray(affine, dtype=np.float64))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_path(path, suffix=".nii.gz" if path.name.endswith(".nii.gz") else ".nii") as tmp:
        nib.save(img, tmp)
    return path


# --------------------------------------------------------------------------- check


def check_case(files: CaseFiles, *, read_voxels: bool = True) -> list[Problem]:
    """Every problem of one case (an empty list when it is well formed).

    Unlike :func:`load_case` this does not stop at the first problem.  With
    ``read_voxels=False`` only the headers are checked (fast).
    """
    rows: list[Problem] = []

    def add(path: Path, problems: list[str]) -> None:
        rows.extend(Problem(files.case_id, str(path), p) for p in problems)

    for modality in files.missing:
        add(files.folder, [f"missing modality {modality} (expected {files.expected_name(modality)}.nii or .nii.gz)"])
    if files.seg is None and files.split == "training":
        add(files.folder, ["no segmentation file in a training case"])
    reference = None
    named = [(p, False) for p in files.images.values()] + ([(files.seg, True)] if files.seg else [])
    for path, is_seg in named:
        img, problems = _open(path)
        if img is not None and reference is not None:
            problems = _geometry_problems(reference, img)
        if img is not None and not problems and read_voxels:
            data, problems = _read(img, float32=not is_seg)
            if data is not None:
                problems = _label_problems(data, files.labels) if is_seg else _image_problems(data)
        add(path, problems)
        if img is not None and reference is None:
            reference = (path.name, img)
    return rows


def check_dataset(root: str | os.PathLike, *, read_voxels: bool = True, progress: Callable[[Iterator], Iterator] | None = None) -> tuple[list[CaseFiles], list[Problem]]:
    """Check every case under ``root``; returns (cases found, problems).

    Duplicate case ids are reported as problems too.  ``progress`` wraps the loop over
    cases (pass ``tqdm.tqdm`` for a progress bar).

    Raises:
        FileNotFoundError, NoCasesFoundError: ``root`` is missing, empty or holds no case.
    """
    cases = scan_case_folders(root)
    rows: list[Problem] = []
    for case_id, folders in duplicate_ids(cases).items():
        rows.append(Problem(case_id, str(folders[1]), f"duplicate case id: also in {folders[0]}"))
    for files in (progress or iter)(cases):
        rows.extend(check_case(files, read_voxels=read_voxels))
    return cases, rows


def load_cases(
    root_or_cases: str | os.PathLike | list[CaseFiles],
    modalities: tuple[str, ...] | list[str] = MODALITIES,
    *,
    require_seg: bool = False,
    skip_bad: bool = False,
) -> list[BratsCase]:
    """Open every case under a folder (or in a list of :class:`CaseFiles`).

    By default the first bad case raises :class:`BratsDataError`.  With ``skip_bad=True`` a
    bad case is left out and logged as a warning (never silently); its voxel data is checked
    too, so that no error surfaces later in training.
    """
    from bratslib.data.layout import find_cases

    cases_files = find_cases(root_or_cases) if isinstance(root_or_cases, (str, os.PathLike)) else root_or_cases
    loaded = []
    for files in cases_files:
        try:
            case = load_case(files, modalities, require_seg=require_seg)
            if skip_bad:
                for m in case.modalities:
                    case.image(m)
                case.seg
                case.release()
        except BratsDataError as e:
            if not skip_bad:
                raise
            log.warning("skipping case %s: %s", files.case_id, e)
            continue
        loaded.append(case)
    return loaded
