"""Where BraTS cases live on disk, and how to find them.

A BraTS 2020 case is a folder named after its case id that holds one NIfTI file per MRI
modality and, for training cases, a segmentation::

    MICCAI_BraTS2020_TrainingData/
        BraTS20_Training_001/
            BraTS20_Training_001_flair.nii      (Kaggle release: uncompressed .nii)
            BraTS20_Training_001_t1.nii         (official release: .nii.gz)
            BraTS20_Training_001_t1ce.nii
            BraTS20_Training_001_t2.nii
            BraTS20_Training_001_seg.nii        (absent in validation cases)

:func:`find_cases` walks any parent folder (for example ``/kaggle/input``) and returns one
:class:`CaseFiles` per case folder.  It reads no voxel data.

Three namings are read, each recorded as :attr:`CaseFiles.naming` (see :data:`NAMINGS`):

* ``brats2020``: as above, labels 0 / 1 / 2 / 4;
* ``brats2021``: the same pattern with ids such as ``BraTS2021_00000``
  (``BraTS2021_00000_flair.nii.gz``), labels 0 / 1 / 2 / 4;
* ``brats2023``: the BraTS 2023+ glioma naming, ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz``
  with ``t2f`` (FLAIR), ``t1n`` (T1), ``t1c`` (T1ce), ``t2w`` (T2) and ``seg``, whose labels are
  0 / 1 / 2 / 3 with **3 the enhancing tumour**.  bratslib reads 3 as 4, so that everything
  downstream (regions, metrics, models) sees the BraTS 2020 labels.

Known quirks of the real release, handled here:

* ``BraTS20_Training_355`` names its segmentation ``W39_1998.09.19_Segm.nii`` instead of
  ``BraTS20_Training_355_seg.nii``.  Any single ``*seg*`` NIfTI file in a case folder is
  accepted as the segmentation when the canonical name is missing (logged).
* The Kaggle release ships ``name_mapping.csv`` and ``survival_info.csv`` beside the case
  folders; they are not cases and are ignored.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: The four MRI modalities of BraTS, in the order used throughout bratslib.
MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")

#: Shape and voxel size of every released BraTS 2020 volume (SRI24 space, 1 mm isotropic).
BRATS_SHAPE: tuple[int, int, int] = (240, 240, 155)

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")

#: A case folder name: ``BraTS20_Training_001``, ``BraTS20_Validation_125``.  Other BraTS
#: years (``BraTS2021_00000``) follow the same "<id>/<id>_<modality>.nii[.gz]" pattern and
#: are found through that pattern rather than through this name.
CASE_ID_PATTERN = re.compile(r"^BraTS\d{2,4}_(?:(?:Training|Validation|Testing)_)?\d+$")

#: A BraTS 2023+ case folder name: ``BraTS-GLI-00000-000`` (also ``-MEN-``, ``-MET-``, ``-PED-``, ``-SSA-``).
CASE_ID_PATTERN_2023 = re.compile(r"^BraTS-[A-Z]{2,4}-\d{5}-\d{3}$")


@dataclass(frozen=True)
class Naming:
    """How one BraTS release names a case's files and labels its segmentation.

    Attributes:
        name: ``"brats2020"``, ``"brats2021"`` or ``"brats2023"``.
        separator: between the case id and the file's kind (``_`` or ``-``).
        modality_files: bratslib's modality name -> the release's file kind.
        enhancing_label: the label of the enhancing tumour in the release's files (4, or 3
            since BraTS 2023); bratslib always hands it on as 4.
    """

    name: str
    separator: str
    modality_files: dict[str, str]
    enhancing_label: int

    @property
    def labels(self) -> tuple[int, ...]:
        """The labels a segmentation of this release may hold."""
        return (0, 1, 2, self.enhancing_label)

    @property
    def label_convention(self) -> str:
        """One line for results files: which labels the files had, and how they were read."""
        if self.enhancing_label == 4:
            return "labels 0/1/2/4 (BraTS 2017-2021)"
        return f"labels 0/1/2/{self.enhancing_label} ({self.enhancing_label} = enhancing tumour, read as 4)"


_CLASSIC = {m: m for m in MODALITIES}
#: The namings bratslib reads, by name.
NAMINGS: dict[str, Naming] = {
    "brats2020": Naming("brats2020", "_", _CLASSIC, 4),
    "brats2021": Naming("brats2021", "_", _CLASSIC, 4),
    "brats2023": Naming("brats2023", "-", {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}, 3),
}


def naming_of(case_id: str) -> Naming:
    """The naming a case id belongs to: ``BraTS-GLI-...`` is 2023+, ``BraTS2021_...`` is 2021,
    anything else the BraTS 2020 pattern."""
    if CASE_ID_PATTERN_2023.match(case_id):
        return NAMINGS["brats2023"]
    if case_id.startswith("BraTS2021_"):
        return NAMINGS["brats2021"]
    return NAMINGS["brats2020"]


#: Known files whose names do not follow the pattern, by case id.
KNOWN_QUIRKS: dict[str, str] = {
    "BraTS20_Training_355": "segmentation is named W39_1998.09.19_Segm.nii",
}


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case, found on disk but not yet read.

    Attributes:
        case_id: the folder name, e.g. ``"BraTS20_Training_001"``.
        folder: the case folder.
        images: modality name -> file, for the modalities that were found.
        seg: the segmentation file, or None for an unlabeled (validation) case.
        notes: remarks made while finding the files (a non-standard file name, say).
        naming: the release's naming, a key of :data:`NAMINGS` (it decides the labels).
    """

    case_id: str
    folder: Path
    images: dict[str, Path]
    seg: Path | None = None
    notes: tuple[str, ...] = field(default=())
    naming: str = "brats2020"

    @property
    def labels(self) -> tuple[int, ...]:
        """The labels this case's segmentation file may hold (0/1/2/4, or 0/1/2/3 since 2023)."""
        return NAMINGS[self.naming].labels

    @property
    def missing(self) -> tuple[str, ...]:
        """Modalities with no file in the folder."""
        return tuple(m for m in MODALITIES if m not in self.images)

    def expected_name(self, kind: str) -> str:
        """The file name (without suffix) of a modality or ``"seg"`` in this case's naming."""
        naming = NAMINGS[self.naming]
        return f"{self.case_id}{naming.separator}{naming.modality_files.get(kind, kind)}"

    @property
    def labeled(self) -> bool:
        return self.seg is not None

    @property
    def split(self) -> str:
        """``"validation"`` for BraTS validation cases, else ``"training"``.  BraTS 2023+ ids do
        not say: there a case without segmentation counts as a validation case."""
        if self.naming == "brats2023":
            return "training" if self.seg is not None else "validation"
        return "validation" if "_Validation_" in self.case_id else "training"


class NoCasesFoundError(FileNotFoundError):
    """Raised when a folder holds no BraTS case."""


def _strip_nifti_suffix(name: str) -> str | None:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def case_files(folder: str | os.PathLike) -> CaseFiles:
    """Collect the files of the case folder ``folder`` (its name is the case id).

    A modality file is ``<case_id>_<modality>.nii`` or ``.nii.gz`` (BraTS 2020 and 2021), or
    ``<case_id>-<t2f|t1n|t1c|t2w>.nii.gz`` (BraTS 2023+); the naming follows from the case id
    (:func:`naming_of`).  Names are matched case insensitively.  When the canonical
    segmentation name is missing but exactly one other NIfTI file in the folder has ``seg`` in
    its name (the ``W39_1998.09.19_Segm.nii`` quirk), that file is the segmentation and a note
    says so.
    """
    folder = Path(folder)
    case_id = folder.name
    naming = naming_of(case_id)
    kinds = {f.lower(): m for m, f in naming.modality_files.items()}
    images: dict[str, Path] = {}
    seg: Path | None = None
    other_seg_like: list[Path] = []
    notes: list[str] = []
    prefix = (case_id + naming.separator).lower()
    for entry in sorted(folder.iterdir()):
        if not entry.is_file():
            continue
        stem = _strip_nifti_suffix(entry.name)
        if stem is None:
            continue
        lower = stem.lower()
        kind = lower[len(prefix):] if lower.startswith(prefix) else None
        if kind in kinds:
            modality = kinds[kind]
            if modality in images:
                notes.append(f"both {images[modality].name} and {entry.name} found; using {images[modality].name}")
                continue
            images[modality] = entry
        elif kind == "seg":
            seg = entry
        elif "seg" in lower:
            other_seg_like.append(entry)
    if seg is None and len(other_seg_like) == 1:
        seg = other_seg_like[0]
        note = f"segmentation file has a non-standard name: {seg.name}"
        notes.append(note)
        log.info("%s: %s", case_id, note)
    return CaseFiles(case_id=case_id, folder=folder, images=images, seg=seg, notes=tuple(notes), naming=naming.name)


def _looks_like_case_folder(path: Path, filenames: list[str]) -> bool:
    if CASE_ID_PATTERN.match(path.name) or CASE_ID_PATTERN_2023.match(path.name):
        return True
    naming = naming_of(path.name)
    prefix = (path.name + naming.separator).lower()
    kinds = set(naming.modality_files.values())
    return any(
        (stem := _strip_nifti_suffix(f.lower())) is not None and stem.startswith(prefix) and stem[len(prefix):] in kinds
        for f in filenames
    )


def scan_case_folders(root: str | os.PathLike) -> list[CaseFiles]:
    """Every case folder under ``root``, duplicates of a case id included, sorted by id.

    Most code wants :func:`find_cases`; this is what ``check`` uses to report duplicates
    alongside every other problem.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        NoCasesFoundError: ``root`` holds no case folder (the message says whether it is empty).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder (give the folder that holds the BraTS cases)")
    found: list[CaseFiles] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        path = Path(dirpath)
        if _looks_like_case_folder(path, filenames):
            found.append(case_files(path))
            dirnames[:] = []  # a case folder holds no further cases
    if not found:
        empty = not any(root.iterdir())
        what = ("is empty" if empty else "holds no BraTS case folder "
                "(expected e.g. BraTS20_Training_001/BraTS20_Training_001_flair.nii)")
        raise NoCasesFoundError(f"{root} {what}")
    return sorted(found, key=lambda c: (c.case_id, str(c.folder)))


def duplicate_ids(cases: list[CaseFiles]) -> dict[str, list[Path]]:
    """Case ids that occur in more than one folder, with those folders."""
    folders: dict[str, list[Path]] = {}
    for case in cases:
        folders.setdefault(case.case_id, []).append(case.folder)
    return {k: v for k, v in folders.items() if len(v) > 1}


def find_cases(root: str | os.PathLike) -> list[CaseFiles]:
    """Find every BraTS case folder under ``root`` (at any depth), sorted by case id.

    ``root`` may be a case folder itself, the ``MICCAI_BraTS2020_TrainingData`` folder, or
    any parent of it such as the Kaggle input folder.  Hidden folders are skipped.

    Raises:
        FileNotFoundError, NotADirectoryError, NoCasesFoundError: see :func:`scan_case_folders`.
        ValueError: two folders carry the same case id (the message names both).
    """
    cases = scan_case_folders(root)
    for case_id, folders in duplicate_ids(cases).items():
        raise ValueError(
            f"duplicate case id {case_id}: found in " + " and in ".join(map(str, folders))
            + "; point bratslib at one copy of the data"
        )
    return cases
