"""The steps every segmentation chapter takes, in one place.

Each architecture chapter of the book does the same five things around its own model: read
its profile and data, make the datasets, train, evaluate whole cases, and set the numbers
beside the report's.  The notebook keeps the narrative and the lines particular to its
model; this module keeps the rest, so that every chapter trains and scores its model in
exactly the same way::

    setup = ChapterSetup.create("unet2d", profile, data_dir=data_dir, seed=seed, epochs=epochs)
    datasets = setup.datasets(cache_dir)
    result = setup.train(build_unet2d, datasets, results_dir=results_dir)
    evaluation = evaluate_run(result.run, setup.data_root, model=result.model, cache_dir=cache_dir)

Importing this module imports Keras (and so TensorFlow).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bratslib.data.augment import AugmentConfig
from bratslib.data.generators import Datasets, make_datasets
from bratslib.data.source import data_provenance, resolve_data_dir
from bratslib.profiles import profile_settings
from bratslib.training import TrainedRun, train

#: Class-Dice rows of the chapters' tables: key of :func:`bratslib.metrics.evaluate_case` -> label.
CLASS_ROWS = {"dice_background": "Dice, background (0)", "dice_necrotic": "Dice, necrotic core (1)",
              "dice_oedema": "Dice, oedema (2)", "dice_enhancing": "Dice, enhancing tumour (4)"}
#: BraTS-region rows: Dice, sensitivity, specificity of WT, TC, ET.
REGION_ROWS = {f"{m}_{r}": f"{label} {r}" for r in ("WT", "TC", "ET")
               for m, label in (("dice", "Dice"), ("sensitivity", "sensitivity"), ("specificity", "specificity"))}
#: 95th-percentile Hausdorff distance rows (mm).
HD95_ROWS = {f"hd95_{r}": f"HD95 {r} (mm)" for r in ("WT", "TC", "ET")}
#: Whole-volume rows: the numbers a Keras notebook usually prints.
OVERALL_ROWS = {"accuracy": "voxel accuracy", "mean_iou": "mean IoU (4 classes)"}


@dataclass
class ChapterSetup:
    """A chapter's settings and data, resolved from its ``parameters`` cell.

    Attributes:
        chapter: the profile table's key and the run names' prefix (``"unet2d"``).
        profile: ``"tiny"``, ``"smoke"`` or ``"full"`` (:mod:`bratslib.profiles`).
        seed: seeds the split, the weights and the data order.
        settings: :func:`bratslib.profiles.profile_settings` with the chapter's overrides.
        data_root: the folder of cases (:func:`bratslib.data.source.resolve_data_dir`).
        provenance: :func:`bratslib.data.source.data_provenance` of it.
    """

    chapter: str
    profile: str
    seed: int
    settings: dict[str, Any]
    data_root: Path
    provenance: dict[str, Any]

    @classmethod
    def create(cls, chapter: str, profile: str, *, data_dir: str | os.PathLike | None = None, n_cases: int = 20,
               seed: int = 0, **overrides: Any) -> ChapterSetup:
        """Settings of ``chapter`` under ``profile`` (``overrides`` that are None are ignored),
        and the data: ``data_dir``, or the synthetic data set of ``n_cases`` cases and ``seed``."""
        settings = profile_settings(chapter, profile, **overrides)
        root = resolve_data_dir(data_dir, synthetic_cases=n_cases, seed=seed)
        return cls(chapter, profile, seed, settings, root, data_provenance(root))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(S, S, C) for a 2-D model, (S, S, S, C) for a 3-D one; C = number of modalities."""
        s = self.settings
        spatial = (s["size"],) * (2 if s["mode"] == "2d" else 3)
        return (*spatial, len(s["modalities"]))

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """The builder's arguments: input shape, four classes and the profile's ``model`` settings."""
        return {"input_shape": self.input_shape, "n_classes": 4, **self.settings["model"]}

    @property
    def run_name(self) -> str:
        return f"{self.chapter}-{self.profile}-seed{self.seed}"

    def datasets(self, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Datasets:
        """Train / val / test datasets by case, as the profile says (size, modalities,
        slices per epoch, foreground share, augmentation)."""
        s = self.settings
        return make_datasets(self.data_root, mode=s["mode"], modalities=s["modalities"], size=s["size"],
                             seed=self.seed, cache_dir=cache_dir, batch_size=s["batch_size"],
                             samples_per_epoch=s["samples_per_epoch"], val_samples=s["val_samples"],
                             foreground_fraction=s["foreground_fraction"],
                             augment=AugmentConfig() if s["augment"] else None, progress=progress)

    def train(self, builder: Callable[..., Any], datasets: Datasets, *,
              results_dir: str | os.PathLike | None = None, **train_kwargs: Any) -> TrainedRun:
        """:func:`bratslib.training.train` of ``builder(**model_kwargs)`` with the profile's
        schedule, into the run ``<chapter>-<profile>-seed<seed>``."""
        s, kwargs = self.settings, self.model_kwargs
        config = {"chapter": self.chapter, "model": builder.__name__.removeprefix("build_"), "profile": self.profile,
                  "model_kwargs": kwargs}
        return train(lambda: builder(**kwargs), datasets, name=self.run_name, config=config, data=self.provenance,
                     epochs=s["epochs"], learning_rate=s["learning_rate"], lr_patience=s["lr_patience"],
                     stop_patience=s["stop_patience"], seed=self.seed, results_dir=results_dir, **train_kwargs)


def median_case_viewer(result: TrainedRun, evaluation, data_root: str | os.PathLike, *, label: str,
                       cache_dir: str | os.PathLike | None = None, extra: Mapping[str, np.ndarray] | None = None):
    """A slice viewer of the test case with the median whole-tumour Dice: its FLAIR under the
    expert labels and under this run's prediction (and under any ``extra`` label maps, e.g. a
    baseline's), on the case's original grid.

    Args:
        result: the trained run (its model and preprocessing are used).
        evaluation: the run's evaluation (picks the case).
        label: the title of the prediction's panel, e.g. ``"U-Net"``.
        extra: panel title -> a further label map of the same case.

    Returns:
        ``(figure, case_files)``.
    """
    from bratslib import viz
    from bratslib.data.cases import load_case
    from bratslib.evaluate import predict_case, run_cases

    order = np.argsort([row["dice_WT"] for row in evaluation.per_case])
    case_id = evaluation.per_case[int(order[len(order) // 2])]["case_id"]
    files = next(c for c in run_cases(result.run, data_root, "all") if c.case_id == case_id)
    prediction = predict_case(result.model, files, result.run.config["preprocessing"], cache_dir=cache_dir)
    case = load_case(files, ("flair",))
    maps = {"ground truth": case.seg, label: prediction.labels, **dict(extra or {})}
    figure = viz.case_viewer({name: case.flair for name in maps}, overlays=maps,
                             title=f"{case_id} (median WT Dice of the test cases): FLAIR with labels")
    return figure, files


def reproduced_values(evaluation, best: Mapping[str, float]) -> dict[str, tuple[float, str]]:
    """This run's number for each key a claim of ``book/claims.yml`` can have, with what it measures.

    Args:
        evaluation: the run's :class:`bratslib.evaluate.Evaluation` on its test cases.
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
        "dice_class_mean": (float(np.mean([evaluation.mean(k) for k in CLASS_ROWS])),
                            "mean of the 4 per-class Dice (background included), " + per_case),
        "dice_tumour_mean": (float(np.mean([evaluation.mean(k) for k in list(CLASS_ROWS)[1:]])),
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


__all__ = ["ChapterSetup", "median_case_viewer", "CLASS_ROWS", "REGION_ROWS", "HD95_ROWS", "OVERALL_ROWS", "reproduced_values",
           "claims_rows"]
