"""A cache of preprocessed cases, so that only the first epoch ever decodes NIfTI.

Decoding the 240x240x155 volumes of a BraTS case, normalising and resizing them takes one to
two seconds; a batch read from the cache takes a few milliseconds.  :class:`PreprocessedCache` does that work
once per case and keeps the result as ``.npy`` files that later epochs, runs and notebook
restarts open with ``np.load(mmap_mode="r")``: a batch reads only the slices it needs, and
RAM stays small for the 369 training cases (the OS page cache does the rest).

Layout (one folder per case, grouped by settings so a whole setting can be deleted)::

    $BRATSLIB_CACHE (or ~/.cache/bratslib)/
        v1-2d-128-flair+t1ce-volume-float16/
            BraTS20_Training_001-3f9a0c1e5b2d7a44/
                images.npy        float16 (z, 128, 128, C) in 2-D mode, (S, S, S, C) in 3-D
                labels.npy        uint8 class indices 0..3, same shape without C (labeled cases)
                brain_slices.npy  int32 indices of the axial slices that hold brain
                meta.json         case id, settings, original shape / affine / spacing

The folder name ends in a hash of the cache-format version, the preprocessing settings and
each source file's path, size and modification time: change any of them and the case is
built again (old folders are left behind, never trusted).  A case folder is written under a
temporary name and renamed into place (:func:`bratslib.files.atomic_path`), so an
interrupted build leaves no half-written case that a later run would read.

Images are stored as float16 (``dtype="float32"`` is available): half the disk and page
cache of float32 (9.7 MB instead of 19.4 MB per case in 2-D at 128 px: 3.6 GB instead of
7.2 GB for the 369 training cases), which decides whether the whole cache stays in the page
cache of a 13 GB Colab or 30 GB Kaggle machine while a model trains, and halves what a cold
epoch reads from disk.  The rounding error (at most 2.4e-4 on [0, 1]) is far below MRI
noise.  The price, measured with ``benchmarks/bench_data.py`` on 2 CPUs: about 7,000 instead
of 13,000 slices per second from :class:`~bratslib.data.generators.SliceDataset`, because
batches are converted to float32 (by :func:`as_float32`, a table lookup); both are far
above what a GPU consumes and 25x above the augmentation, so the size wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from bratslib.data.cases import BratsDataError, load_case
from bratslib.data.layout import CaseFiles, case_files
from bratslib.data.preprocess import NORMALIZATIONS, Normalization, brain_box, brain_slices, preprocess_case
from bratslib.files import atomic_path

log = logging.getLogger(__name__)

#: Bump when the files written or the preprocessing they hold change meaning.
CACHE_FORMAT_VERSION = 1


#: float32 value of every float16 bit pattern: ``np.take(_FLOAT16_TO_32, a.view(np.uint16))``
#: converts a batch 2-3x faster than ``a.astype(np.float32)`` on CPUs where numpy's
#: float16 conversion is not vectorised.
_FLOAT16_TO_32 = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)


def as_float32(array: np.ndarray) -> np.ndarray:
    """``array`` as float32 (a fast exact lookup for float16; a copy only when needed)."""
    array = np.asarray(array)
    if array.dtype == np.float16:
        return np.take(_FLOAT16_TO_32, array.view(np.uint16))
    return array.astype(np.float32, copy=False)


def default_cache_dir() -> Path:
    """``$BRATSLIB_CACHE`` if set, else ``~/.cache/bratslib`` (never next to the data:
    Kaggle's input folder is read-only)."""
    return Path(os.environ.get("BRATSLIB_CACHE") or "~/.cache/bratslib").expanduser()


class CachedCase:
    """One preprocessed case in the cache; arrays are memory-mapped on first access.

    Attributes:
        case_id: e.g. ``"BraTS20_Training_001"``.
        path: the case's cache folder.
        meta: what ``meta.json`` holds (settings, original ``shape``, ``affine``, ``spacing``).

    Arrays (images and labels are read-only memory maps; pickling sends only the path):
        ``images``: float16 or float32, (z, S, S, C) in 2-D mode or (S, S, S, C) in 3-D mode,
        values in [0, 1]; ``labels``: uint8 class indices 0..3 of the same shape without C,
        or None for an unlabeled case; ``brain_slices``: int32 indices of the axial slices
        whose images are not all zero (the first axis in 2-D mode, the third in 3-D mode).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.meta: dict = json.loads((self.path / "meta.json").read_text())
        self.case_id: str = self.meta["case_id"]
        self._arrays: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"CachedCase({self.case_id!r}, mode={self.mode!r}, images={tuple(self.meta['images_shape'])})"

    def _array(self, name: str, mmap: bool = True) -> np.ndarray:
        # each memory map holds a file descriptor: 2 per case, 738 for the 369 BraTS cases
        if name not in self._arrays:
            self._arrays[name] = np.load(self.path / f"{name}.npy", mmap_mode="r" if mmap else None)
        return self._arrays[name]

    @property
    def images(self) -> np.ndarray:
        return self._array("images")

    @property
    def labels(self) -> np.ndarray | None:
        return self._array("labels") if self.labeled else None

    @property
    def brain_slices(self) -> np.ndarray:
        return self._array("brain_slices", mmap=False)  # small: read whole

    @property
    def labeled(self) -> bool:
        return bool(self.meta["labeled"])

    @property
    def mode(self) -> str:
        return self.meta["settings"]["mode"]

    @property
    def n_slices(self) -> int:
        """Length of the first axis of ``images`` (the axial slices in 2-D mode)."""
        return int(self.meta["images_shape"][0])

    def close(self) -> None:
        """Drop the memory maps (they are opened again on next access)."""
        self._arrays.clear()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": {}}


class PreprocessedCache:
    """Preprocessed cases on disk, built on first use and memory-mapped afterwards.

    Args:
        cache_dir: root folder; default :func:`default_cache_dir`.
        modalities, size, mode, normalize: passed to
            :func:`~bratslib.data.preprocess.preprocess_case`.
        crop: crop each case to :func:`~bratslib.data.preprocess.brain_box` before resizing
            (the box is kept in ``meta.json`` as ``box``, for putting predictions back).
        dtype: dtype of the stored images, ``"float16"`` (default, see the module docstring)
            or ``"float32"``.

    Example::

        cache = PreprocessedCache(mode="2d", size=128)
        cached = cache.build(find_cases("/kaggle/input"))   # slow once, then instant
        cached[0].images.shape                              # (155, 128, 128, 2)
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike | None = None,
        modalities: Sequence[str] = ("flair", "t1ce"),
        size: int | Sequence[int] = 128,
        mode: Literal["2d", "3d"] = "2d",
        normalize: Normalization = "volume",
        dtype: Literal["float16", "float32"] = "float16",
        crop: bool = False,
    ):
        if mode not in ("2d", "3d"):
            raise ValueError(f"unknown mode {mode!r}; use '2d' or '3d'")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown normalisation {normalize!r}; use one of {', '.join(NORMALIZATIONS)}")
        if np.dtype(dtype) not in (np.float16, np.float32):
            raise ValueError(f"dtype must be float16 or float32, got {dtype!r}")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.settings = {
            "modalities": list(modalities),
            "size": size if np.isscalar(size) else list(size),
            "mode": mode,
            "normalize": normalize,
            "dtype": np.dtype(dtype).name,
        }
        if crop:  # recorded only when on, so the caches and runs of uncropped settings stay as they were
            self.settings["crop"] = True
        #: Cases left out by ``build(..., skip_bad=True)``: case id -> the error, in words.
        self.skipped: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"PreprocessedCache({str(self.folder)!r})"

    @property
    def folder(self) -> Path:
        """The folder of this cache's settings, under ``cache_dir``."""
        s = self.settings
        size = s["size"] if np.isscalar(s["size"]) else "x".join(map(str, s["size"]))
        tag = f"v{CACHE_FORMAT_VERSION}-{s['mode']}-{size}-{'+'.join(s['modalities'])}-{s['normalize']}-{s['dtype']}"
        tag += "-crop" if s.get("crop") else ""
        return self.cache_dir / tag

    def _sources(self, files: CaseFiles) -> list[Path]:
        missing = [m for m in self.settings["modalities"] if m not in files.images]
        if missing:
            raise BratsDataError(files.case_id, files.folder, f"missing modality {missing[0]} "
                                 f"(expected {files.case_id}_{missing[0]}.nii or .nii.gz)")
        return [files.images[m] for m in self.settings["modalities"]] + ([files.seg] if files.seg else [])

    def key(self, files: CaseFiles) -> str:
        """Hash of (format version, settings, each source file's path, size, mtime): hex str.

        Reads file metadata only (``os.stat``), never voxel data.
        """
        stats = [(str(p.resolve()), (st := p.stat()).st_size, st.st_mtime_ns) for p in self._sources(files)]
        blob = json.dumps([CACHE_FORMAT_VERSION, self.settings, files.case_id, stats], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def path(self, files: CaseFiles) -> Path:
        """The cache folder of one case (it may not exist yet)."""
        return self.folder / f"{files.case_id}-{self.key(files)[:16]}"

    def contains(self, files: CaseFiles) -> bool:
        """Whether the case is cached for the current files and settings."""
        return (self.path(files) / "meta.json").is_file()

    def get(self, case: CaseFiles | str | os.PathLike) -> CachedCase:
        """The cached case, built first if it is not cached yet (or its files changed).

        ``case`` is a :class:`~bratslib.data.layout.CaseFiles` or a case folder.
        """
        files = case if isinstance(case, CaseFiles) else case_files(case)
        path = self.path(files)
        if not (path / "meta.json").is_file():
            self._write(files, path)
        return CachedCase(path)

    def build(self, cases: Iterable[CaseFiles | str | os.PathLike], progress: bool = True,
              skip_bad: bool = False) -> list[CachedCase]:
        """Make sure every case is cached; returns them in order.

        With ``progress``, a tqdm bar counts the cases that had to be built.  A case that
        cannot be read raises :class:`~bratslib.data.cases.BratsDataError` (naming the case,
        the file and the problem); with ``skip_bad=True`` it is left out of the list instead,
        logged as a warning and recorded in :attr:`skipped` (case id -> the error).  Cases
        cached earlier passed every check when they were written and are not read again.
        """
        files = [c if isinstance(c, CaseFiles) else case_files(c) for c in cases]
        paths: list[Path | None] = []
        for f in files:
            try:
                paths.append(self.path(f))  # one stat of each source file
            except BratsDataError as e:
                self._skip_or_raise(e, skip_bad)
                paths.append(None)
        todo = [(f, p) for f, p in zip(files, paths) if p is not None and not (p / "meta.json").is_file()]
        bad = set()

        def write(item):
            try:
                self._write(*item)
                return None
            except BratsDataError as e:
                return item[1], e

        # cases are written in threads, one per core: reading NIfTI and numpy's and scipy's work
        # release Python's lock (each case is written on its own: the same arrays as one by one)
        workers = min(os.cpu_count() or 1, 8, max(len(todo), 1))
        with ThreadPoolExecutor(workers) as pool:
            done = pool.map(write, todo)
            if todo and progress:
                from tqdm import tqdm

                done = tqdm(done, total=len(todo), desc=f"preprocessing into {self.folder.name}", unit="case",
                            file=sys.stderr)
            failures = [r for r in done if r is not None]
        for p, error in failures:
            self._skip_or_raise(error, skip_bad)
            bad.add(p)
        return [CachedCase(p) for p in paths if p is not None and p not in bad]

    def _skip_or_raise(self, error: BratsDataError, skip_bad: bool) -> None:
        if not skip_bad:
            raise error
        log.warning("skipping case %s (skip_bad): %s", error.case_id, error)
        self.skipped[error.case_id] = str(error)

    def _write(self, files: CaseFiles, path: Path) -> None:
        """Preprocess one case into a temporary folder, then rename it to ``path``."""
        s = self.settings
        case = load_case(files, s["modalities"])
        try:
            box = brain_box(case.stack(s["modalities"]), s["mode"]) if s.get("crop") else None
            images, labels = preprocess_case(case, s["modalities"], s["size"], s["mode"], s["normalize"], box)
            meta = {
                "case_id": files.case_id,
                "format_version": CACHE_FORMAT_VERSION,
                "settings": s,
                "sources": [str(p) for p in self._sources(files)],
                "labeled": labels is not None,
                "images_shape": list(images.shape),
                "shape": list(case.shape),
                "affine": case.affine.tolist(),
                "spacing": list(case.spacing),
                "box": None if box is None else [list(b) for b in box],
            }
        finally:
            case.release()
        try:
            with atomic_path(path) as tmp:
                tmp.mkdir()
                np.save(tmp / "images.npy", images.astype(s["dtype"]))
                if labels is not None:
                    np.save(tmp / "labels.npy", labels)
                axial = images if s["mode"] == "2d" else np.moveaxis(images, 2, 0)
                np.save(tmp / "brain_slices.npy", brain_slices(axial))
                (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
                if path.exists() and not (path / "meta.json").is_file():
                    shutil.rmtree(path)  # not written by this module: never trusted
        except OSError:  # another process cached the same case first (the rename failed): keep theirs
            if not (path / "meta.json").is_file():
                raise
