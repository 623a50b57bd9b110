"""The report's numbers (``bratslib/claims.yml``), so chapters can set them beside their own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bratslib.labels import LABEL_KEYS, LABEL_NAMES, REGIONS

#: The claims file of the book, beside the package in a checkout.
CLAIMS_FILE = Path(__file__).resolve().parent / "claims.yml"


def load_claims(chapter: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The entry of ``chapter`` in the claims file: ``model`` and a list of ``claims``, each
    with ``key``, ``label``, ``value`` and ``where`` (the place in the report).

    Raises:
        FileNotFoundError: no claims file (bratslib installed without the book's checkout).
        KeyError: no entry for ``chapter``.
    """
    path = Path(path) if path is not None else CLAIMS_FILE
    claims = load_all_claims(path)
    if chapter not in claims:
        raise KeyError(f"{path} has no entry {chapter!r}; entries: {', '.join(claims)}")
    entry = claims[chapter]
    for claim in entry["claims"]:
        missing = {"key", "label", "value", "where"} - set(claim)
        if missing:
            raise ValueError(f"{path}: a claim of {chapter!r} lacks {', '.join(sorted(missing))}: {claim}")
    return entry


#: Keys of the claims that are a "Dice" of a model as a whole (not of one class or region).
DICE_KEYS = ("dice", "dice_class_mean", "val_dice", "test_dice", "train_dice")


#: Class-Dice rows of the chapters' tables: key of :func:`bratslib.metrics.case_scores` -> label
#: (``"dice_necrotic"`` -> ``"Dice, necrotic core (1)"``).
CLASS_ROWS = {f"dice_{key}": f"Dice, {LABEL_NAMES[label]} ({label})" for label, key in LABEL_KEYS.items()}
#: Keys of the per-class Dice claims, in class order.
CLASS_DICE_KEYS = tuple(CLASS_ROWS)
#: Dice claims that are means of per-class Dice: key -> the classes averaged.
COMPOSITE_DICE = {"dice_class_mean": CLASS_DICE_KEYS, "dice_tumour_mean": CLASS_DICE_KEYS[1:]}
#: BraTS-region rows: Dice, sensitivity, specificity of WT, TC, ET.
REGION_ROWS = {f"{m}_{r}": f"{label} {r}" for r in REGIONS
               for m, label in (("dice", "Dice"), ("sensitivity", "sensitivity"), ("specificity", "specificity"))}
#: 95th-percentile Hausdorff distance rows (mm).
HD95_ROWS = {f"hd95_{r}": f"HD95 {r} (mm)" for r in REGIONS}
#: Whole-volume rows: the numbers a Keras notebook usually prints.
OVERALL_ROWS = {"accuracy": "voxel accuracy", "mean_iou": "mean IoU (4 classes)"}
#: Every row of a chapter's evaluation table, in order.
EVALUATION_ROWS = {**CLASS_ROWS, **REGION_ROWS, **HD95_ROWS, **OVERALL_ROWS}


def reproduced_values(evaluation, best: Mapping[str, float]) -> dict[str, tuple[float, str]]:
    """This run's number for each key a claim of ``bratslib/claims.yml`` can have, with what it measures.

    Args:
        evaluation: the run's :class:`bratslib.evaluate.Evaluation` on its test cases (or
            anything with its ``mean(key)`` and ``pooled_dice``, e.g. a collected run).
        best: the history row of the best epoch (``history[best_epoch]``).

    Returns:
        ``{claim key: (value, what this run measured)}``; the report rarely says how its
        numbers were computed, so the second element says which of ours is set beside it.
    """
    per_case = "per test case on the original grid, averaged over cases"
    values = {
        "val_loss": (best.get("val_loss", np.nan),
                     "validation loss at the best epoch (this book's Dice + focal loss; the report's loss is not stated)"),
        "val_accuracy": (best.get("val_accuracy", np.nan), "validation voxel accuracy at the best epoch, model resolution"),
        "accuracy": (evaluation.mean("accuracy"), "voxel accuracy, " + per_case),
        "mean_iou": (evaluation.mean("mean_iou"), "mean IoU of the 4 classes, " + per_case),
        "dice": (evaluation.pooled_dice, "all-voxel Dice, background included, pooled over the test cases"),
        "dice_class_mean": (float(np.mean([evaluation.mean(k) for k in COMPOSITE_DICE["dice_class_mean"]])),
                            "mean of the 4 per-class Dice (background included), " + per_case),
        "dice_tumour_mean": (float(np.mean([evaluation.mean(k) for k in COMPOSITE_DICE["dice_tumour_mean"]])),
                             "mean of the 3 tumour-class Dice, " + per_case),
    }
    at_best = "at the best epoch (this book keeps the best epoch, not the last)"
    values.update({
        "train_loss": (best.get("loss", np.nan), "training loss " + at_best),
        "val_loss_final": (best.get("val_loss", np.nan), "validation loss " + at_best),
        "val_accuracy_final": (best.get("val_accuracy", np.nan), "validation voxel accuracy " + at_best),
        "train_dice": (best.get("dice_tumour", np.nan), "training mean Dice of the 3 tumour classes " + at_best),
        "val_dice": (best.get("val_dice_tumour", np.nan), "validation mean Dice of the 3 tumour classes " + at_best),
        "test_dice": (evaluation.pooled_dice, "all-voxel Dice, background included, pooled over the test cases"),
        "test_loss": (np.nan, "not reproduced: the book scores the test cases with metrics on the original grid, "
                              "not with the training loss"),
    })
    for key in (*CLASS_ROWS, *REGION_ROWS, *HD95_ROWS):
        values[key] = (evaluation.mean(key), per_case)
    return values


def claims_rows(claims: Mapping[str, Any], ours: Mapping[str, tuple[float, str]]) -> list[tuple]:
    """Rows ``(claim, report, this run, what this run measures, where in the report)`` for
    :func:`bratslib.viz.markdown_table`; a claim without a counterpart says so."""
    rows = []
    for claim in claims["claims"]:
        value, what = ours.get(claim["key"], (np.nan, "not measured by this chapter"))
        shown = f"{value:.4f}" if value is not None and np.isfinite(value) else "n/a"
        rows.append((claim["label"], f"{claim['value']:.4f}", shown, what, claim["where"]))
    return rows


def _places(*wheres: str) -> list[str]:
    """The distinct places of the report in ``wheres`` (each may list several, ``"; "``-separated)."""
    return list(dict.fromkeys(part.strip() for where in wheres for part in where.split(";") if part.strip()))


def _family(key: str) -> str:
    """What kind of measurement a claim key is: "dice", "iou", "loss", "accuracy" or the key."""
    for family in ("dice", "iou", "loss", "accuracy"):
        if family in key:
            return family
    return key


def load_all_claims(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The whole claims file: model entries (with ``claims``) and ``structure``."""
    import yaml

    path = Path(path) if path is not None else CLAIMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the report's claims ship with bratslib as bratslib/claims.yml; reinstall bratslib")
    return yaml.safe_load(path.read_text())


def audit(claims: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's internal inconsistencies, derived from the claims file, each once.

    Returns a list of ``{"kind", "finding", "locations"}`` (``locations``: the places in the
    report), for:

    * **same value**: one number given for different models or different metrics (the
      ``report`` entry, which restates others, is left out);
    * **same per-class Dice**: two models whose four class Dice values agree to two decimals;
    * **several Dice**: one model whose whole-model "Dice" values (training Dice aside) differ
      by more than 0.01;
    * **Dice above its IoU bound**: a mean Dice larger than ``2m / (1 + m)`` for the model's
      mean IoU ``m``.  Per class, Dice = 2J / (1 + J) for IoU J; that function is concave, so
      the mean of the Dice values is at most 2m / (1 + m) when both means run over the same
      classes and segmentations.  A larger mean Dice was computed on something else;
    * **table shape**: Table 3.1's column titles against its values per row;
    * **models named**: a place that states a number of models other than it names, and
      models with results that a place describing the study leaves out.
    """
    models = {k: v for k, v in claims.items() if isinstance(v, dict) and "claims" in v and k != "report"}
    findings: list[dict[str, Any]] = []

    per_class = {m: [next((c for c in e["claims"] if c["key"] == k), None) for k in CLASS_DICE_KEYS]
                 for m, e in models.items()}
    per_class = {m: cs for m, cs in per_class.items() if all(cs)}
    same_classes = [(a, b) for i, a in enumerate(per_class) for b in list(per_class)[i + 1:]
                    if [round(c["value"], 2) for c in per_class[a]] == [round(c["value"], 2) for c in per_class[b]]]

    # one number for one metric of several models, or for several metrics of one model
    groups: dict[tuple, list[tuple[str, dict]]] = {}
    for key, entry in models.items():
        for claim in entry["claims"]:
            value = round(float(claim["value"]), 4)
            groups.setdefault(("metric", claim["key"], value), []).append((key, claim))
            if claim["key"] not in CLASS_DICE_KEYS and not claim["key"].endswith(("_WT", "_TC", "_ET")):
                groups.setdefault(("model", key, value), []).append((key, claim))  # whole-model metrics
    for (kind, _, value), uses in sorted(groups.items(), key=lambda item: item[0][2]):
        models_used, keys_used = {m for m, _ in uses}, {c["key"] for _, c in uses}
        if len(uses) < 2 or (kind == "metric" and len(models_used) < 2) or (kind == "model" and len(keys_used) < 2):
            continue
        if kind == "model" and len({_family(k) for k in keys_used}) < 2:
            continue  # e.g. a table's "Dice" equal to the mean of the class Dice: one measurement, twice
        if (kind == "metric" and keys_used <= {*CLASS_DICE_KEYS, "dice_class_mean"}
                and any(models_used <= {a, b} for a, b in same_classes)):
            continue  # reported below as a whole per-class list
        what = "; ".join(f"{models[m]['model']}: {c['label']}" for m, c in uses)
        findings.append({"kind": "same value", "finding": f"{value:g} is given for {len(uses)} things: {what}",
                         "locations": _places(*(c["where"] for _, c in uses))})

    for a, b in same_classes:
        values = ", ".join(f"{c['value']:.2f}" for c in per_class[a])
        findings.append({"kind": "same per-class Dice",
                         "finding": f"{models[a]['model']} and {models[b]['model']} have the same four class Dice "
                                    f"values to two decimals ({values})",
                         "locations": _places(per_class[a][0]["where"], per_class[b][0]["where"])})

    for m, entry in models.items():
        dice = [c for c in entry["claims"] if c["key"] in DICE_KEYS and c["key"] != "train_dice"]
        if dice and max(c["value"] for c in dice) - min(c["value"] for c in dice) > 0.01:
            what = "; ".join(f"{c['label']} {c['value']:g}" for c in dice)
            findings.append({"kind": "several Dice", "finding": f"{entry['model']} is given different Dice values: {what}",
                             "locations": _places(*(c["where"] for c in dice))})
        iou = next((c for c in entry["claims"] if c["key"] == "mean_iou"), None)
        if iou is not None:
            bound = 2 * iou["value"] / (1 + iou["value"])
            above = [c for c in dice if c["key"] in ("dice", "dice_class_mean") and c["value"] > bound + 1e-4]
            if above:
                what = " and ".join(f"{c['label']} {c['value']:g}" for c in above)
                verb = "exceeds" if len(above) == 1 else "exceed"
                findings.append({"kind": "Dice above its IoU bound",
                                 "finding": f"{entry['model']}: {what} {verb} 2m/(1+m) = {bound:.4f} for its mean IoU "
                                            f"m = {iou['value']:g}; averaged over the same classes and segmentations, no "
                                            "segmentation could have both",
                                 "locations": _places(iou["where"], *(c["where"] for c in above))})

    structure = claims.get("structure", {})
    columns, per_row = structure.get("table_3_1_columns", []), structure.get("table_3_1_values_per_row")
    if columns and per_row is not None and len(columns) != per_row:
        findings.append({"kind": "table shape",
                         "finding": f"Table 3.1 has {len(columns)} column titles ({', '.join(columns)}) but {per_row} values "
                                    "per row, so one column has no numbers and which is not said",
                         "locations": ["Table 3.1"]})
    places = structure.get("models_named", [])
    results = next((p for p in places if "results" in p["where"]), None)
    for place in places:
        if "stated" in place and place["stated"] != len(place["models"]):
            findings.append({"kind": "models named",
                             "finding": f"{place['where']} speaks of {place['stated']} models and names "
                                        f"{len(place['models'])}: {', '.join(place['models'])}",
                             "locations": [place["where"]]})
        if results is not None and place is not results:
            missing = [m for m in results["models"] if m not in place["models"]]
            if missing:
                findings.append({"kind": "models named",
                                 "finding": f"{place['where']} leaves out {len(missing)} of the {len(results['models'])} models "
                                            f"with results: {', '.join(missing)}",
                                 "locations": [place["where"], results["where"]]})
    return findings
