"""Which data a chapter runs on, and how to say so.

Every chapter has a ``data_dir`` parameter.  ``None`` means the built-in synthetic BraTS data
set (written on first use); a path means a folder of real BraTS 2020 cases (or any parent
of it, such as ``/kaggle/input``).  :func:`resolve_data_dir` turns the parameter into a
folder and :func:`data_provenance` says what that folder holds, so that every table and
results file can name the data its numbers come from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bratslib.data.cache import default_cache_dir
from bratslib.data.layout import NAMINGS, find_cases
from bratslib.data.synth import GENERATOR_VERSION, options_name
from bratslib.data.synth import PROVENANCE_FILE as SYNTHETIC_MARKER
from bratslib.data.synth import write_synthetic_dataset


#: Cases in the synthetic default: 20 to train on, 8 to validate, 12 to test under the
#: ``smoke`` profile's split (:mod:`bratslib.profiles`); twelve is the fewest test cases at which a
#: paired test between two models can reach significance after correcting for the comparisons.
SYNTHETIC_CASES = 40

#: Where Kaggle mounts the data sets attached to a notebook.
KAGGLE_INPUT = Path("/kaggle/input")


def kaggle_data_dir(root: str | os.PathLike | None = None) -> Path | None:
    """The BraTS data attached to a Kaggle notebook: ``root`` (default :data:`KAGGLE_INPUT`)
    if it holds labeled BraTS cases at any depth, else None (not on Kaggle, or no BraTS
    data set attached)."""
    root = Path(root) if root is not None else KAGGLE_INPUT
    if not root.is_dir():
        return None
    try:
        cases = find_cases(root)
    except (OSError, ValueError):  # no case folder (NoCasesFoundError is a ValueError), duplicates
        return None
    return root if any(c.labeled for c in cases) else None


def synthetic_default_dir(seed: int = 0, n_cases: int = SYNTHETIC_CASES) -> Path:
    """Where the synthetic default is written: ``<cache>/synthetic/<generator version>-<options>-seed<seed>-cases<n>``.

    The generator's version and the default's options (``v1`` for none) are in the name, so
    that a newer generator or another default writes a folder of its own next to the old one
    rather than meeting data it did not write.
    """
    return default_cache_dir() / "synthetic" / f"{GENERATOR_VERSION}-{options_name()}-seed{seed}-cases{n_cases}"


def resolve_data_dir(data_dir: str | os.PathLike | None, *, synthetic_cases: int = SYNTHETIC_CASES, seed: int = 0, progress: bool = True) -> Path:
    """The folder a chapter reads its cases from.

    Args:
        data_dir: a folder of BraTS cases (or a parent of one); or None: the BraTS 2020 data
            attached to a Kaggle notebook when there is one (:func:`kaggle_data_dir`), else the
            synthetic default, written to :func:`synthetic_default_dir` on first use; or
            ``"synthetic"``: the synthetic default wherever the chapter runs.
        synthetic_cases, seed: size and seed of the synthetic default.

    Raises:
        FileNotFoundError: ``data_dir`` is given but does not exist.
    """
    if data_dir is None:
        found = kaggle_data_dir()
        if found is not None:
            print(f"data_dir: using the BraTS cases attached to this Kaggle notebook under {found} "
                  "(set data_dir = \"synthetic\" for the synthetic data)")
            return found
    if data_dir is not None and str(data_dir) != "synthetic":
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"data_dir {path} does not exist (give the folder holding the BraTS 2020 cases, or None for synthetic data)")
        return path
    out = synthetic_default_dir(seed, synthetic_cases)
    # always called: it skips complete cases, and so also finishes a run that was interrupted
    write_synthetic_dataset(out, n_cases=synthetic_cases, seed=seed, progress=progress, workers=os.cpu_count() or 1)
    return out


def _find_marker(path: Path) -> Path | None:
    for folder in (path, *path.parents):
        if (folder / SYNTHETIC_MARKER).is_file():
            return folder / SYNTHETIC_MARKER
    return None


def data_provenance(data_dir: str | os.PathLike) -> dict:
    """What a data folder holds, for results files and the "which data" box of a chapter.

    Returns a dict with ``kind`` (``"synthetic"`` or ``"real"``), ``description`` (one line
    for a reader), ``folder`` and ``n_cases``; synthetic data adds its ``seed`` and generator
    details from the marker file, real data the releases' ``naming`` and ``label_convention``
    (e.g. BraTS 2023's 0/1/2/3, read as 0/1/2/4).  A folder without the synthetic marker is taken as real
    BraTS data.
    """
    path = Path(data_dir).expanduser().resolve()
    cases = find_cases(path)
    n_cases = len(cases)
    marker = _find_marker(path)
    if marker is not None:
        info = json.loads(marker.read_text())
        return {
            "kind": "synthetic",
            "description": f"synthetic BraTS-format data written by bratslib (seed {info.get('seed')}, {n_cases} cases), not patient data",
            "folder": str(path),
            "n_cases": n_cases,
            "seed": info.get("seed"),
            "generator": info,
        }
    namings = sorted({c.naming for c in cases})
    release = {"brats2020": "BraTS 2020", "brats2021": "BraTS 2021", "brats2023": "BraTS 2023+"}
    return {
        "kind": "real",
        "description": f"real {' and '.join(release[n] for n in namings)} data from the folder {path.name} ({n_cases} cases)",
        "folder": str(path),
        "n_cases": n_cases,
        "naming": namings,
        "label_convention": sorted({NAMINGS[n].label_convention for n in namings}),
    }
