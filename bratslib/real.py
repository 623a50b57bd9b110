"""Real scans the book ships: two gliomas of TCGA, for checking what synthetic training teaches.

``book/data/real/`` (in the repository) holds two real, skull-stripped gliomas in the BraTS 2020
layout and geometry, ``BraTS20_Training_901`` (enhancing) and ``BraTS20_Training_902`` (no
enhancing tumour), and ``algorithms/<case>/<algorithm>.nii.gz``: the segmentations of five
BraTS 2020 algorithms.  Each case's ``seg`` is their majority vote: an automatic consensus, not
an expert annotation, so a score against it is *agreement with the state of the art of 2020*,
and how well the algorithms agree with one another (:func:`algorithms_agreement`) is the
reference for it.  They are never training data.  :data:`CREDIT` says where they come from.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bratslib.data.layout import CaseFiles, find_cases

#: Where the cases come from and how to credit them (from the data's SOURCE.md).
CREDIT = (
    "MRI: The Cancer Imaging Archive, TCGA-LGG collection (patients TCGA-FG-6692 and TCGA-DU-7294), CC BY 3.0: "
    "Pedano et al., Radiology Data from The Cancer Genome Atlas Low Grade Glioma [TCGA-LGG] collection, The Cancer "
    "Imaging Archive (2016), doi:10.7937/K9/TCIA.2016.L4LTD3TK; Clark et al., J Digit Imaging 26(6):1045-1057 (2013). "
    "Co-registered to SRI24, skull-stripped and segmented by five BraTS 2020 algorithms (isen-20 = nnU-Net, "
    "hnfnetv1-20, sanet0-20, scan-20, yixinmpl-20; seg = their majority vote) with the BraTS Toolkit "
    "(Kofler et al., Front. Neurosci. 14:125, 2020), tutorial data of BrainLesion/tutorials (Apache-2.0)."
)
REGIONS = ("WT", "TC", "ET")
#: Case folder layout inside a real-data folder.
CASES_FOLDER = "MICCAI_BraTS2020_TrainingData"


def real_data_dir(path: str | os.PathLike | None = None) -> Path | None:
    """The folder of real scans: ``path``, else ``$BRATSLIB_REAL``, else the repository's
    ``book/data/real``, else ``../shared/real`` beside the repository; None when none exists."""
    root = Path(__file__).resolve().parents[1]
    candidates = [path] if path is not None else [os.environ.get("BRATSLIB_REAL"), root / "book" / "data" / "real",
                                                  root.parent / "shared" / "real"]
    for folder in candidates:
        if folder and (Path(folder) / CASES_FOLDER).is_dir():
            return Path(folder)
    return None


def real_cases(real_dir: str | os.PathLike) -> list[CaseFiles]:
    """The labeled cases of ``real_dir`` (its ``MICCAI_BraTS2020_TrainingData``, not ``algorithms``)."""
    return [c for c in find_cases(Path(real_dir) / CASES_FOLDER) if c.labeled]


def _region_scores(scores: dict[str, float]) -> dict[str, float]:
    return {f"{m}_{r}": float(scores[f"{m}_{r}"]) for m in ("dice", "hd95") for r in REGIONS}


def algorithms_agreement(real_dir: str | os.PathLike, algorithms_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The algorithms' segmentations of each case scored against one another, every pair, with
    the book's metrics (:func:`bratslib.metrics.case_scores`: Dice, HD95 per region).

    Returns:
        ``mean`` (over every pair of every case), ``per_case`` (mean over the pairs of each case)
        and ``pairs`` (one row per case and pair), each with ``dice_R`` and ``hd95_R``.
    """
    import nibabel as nib

    from bratslib.metrics import case_scores

    folder = Path(algorithms_dir) if algorithms_dir is not None else Path(real_dir) / "algorithms"
    rows = []
    for files in real_cases(real_dir):
        paths = sorted((folder / files.case_id).glob("*.nii*"))
        segs = {p.name.split(".")[0]: np.asarray(nib.load(p).dataobj).astype(np.uint8) for p in paths}
        spacing = tuple(float(z) for z in nib.load(files.seg).header.get_zooms()[:3])
        for (a, sa), (b, sb) in itertools.combinations(segs.items(), 2):
            rows.append({"case_id": files.case_id, "pair": f"{a} / {b}", **_region_scores(case_scores(sa, sb, spacing))})
    if not rows:
        raise FileNotFoundError(f"no pair of algorithm segmentations under {folder}")
    keys = [k for k in rows[0] if k not in ("case_id", "pair")]
    per_case = [{"case_id": case, **{k: float(np.mean([r[k] for r in rows if r["case_id"] == case])) for k in keys}}
                for case in dict.fromkeys(r["case_id"] for r in rows)]
    return {"mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}, "per_case": per_case, "pairs": rows}


def tuned_threshold(cases: Sequence[CaseFiles], *, progress: bool = False):
    """One threshold on one channel per region (FLAIR for the whole tumour, T1ce for the core
    and enhancing tumour: :class:`bratslib.baseline.ThresholdBaseline`), fitted on each case's
    own truth and scored on that case: a bound for a threshold, which no model is given.

    Returns:
        An :class:`bratslib.evaluate.Evaluation`.
    """
    from bratslib.baseline import ThresholdBaseline
    from bratslib.evaluate import baseline_images, evaluate_predictions

    def predict(files):
        images, seg = baseline_images(files)
        return ThresholdBaseline.fit([images], [seg]).predict(images)

    evaluation = evaluate_predictions(predict, list(cases), progress=progress)
    evaluation.info = {"model": "one threshold per region, tuned on each case's own truth"}
    return evaluation


__all__ = ["CREDIT", "REGIONS", "algorithms_agreement", "real_cases", "real_data_dir", "tuned_threshold"]
