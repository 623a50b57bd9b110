"""Segmentation metrics: Keras metrics for training, numpy metrics for whole BraTS cases.

Two kinds, for two moments of a study:

* **Training-time metrics** (:class:`DiceScore`, :class:`ClassPrecision`, :class:`Sensitivity`,
  :class:`Specificity`, and :func:`training_metrics`, the list every chapter compiles
  with): stateful ``keras.metrics.Metric`` s on one-hot ``y_true`` and softmax ``y_pred``,
  shape ``(B, *spatial, C)``, in the network's class space ``0 .. C-1`` (0 background,
  then necrotic core, oedema, enhancing tumour).  Each voxel counts once, as
  ``argmax(y_true)`` versus ``argmax(y_pred)``, accumulated over all the batches of an epoch.
* **Case evaluation** (:func:`case_scores`, :func:`hausdorff95`, :func:`summarise`, ...):
  numpy and scipy on whole label volumes in the original BraTS label space ``{0, 1, 2, 4}``,
  typically ``(240, 240, 155)`` at 1 mm, including the BraTS regions WT, TC and ET
  (:mod:`bratslib.labels` defines the labels and regions) and the 95th percentile Hausdorff
  distance in millimetres.

Empty masks.  Every ratio here (Dice, IoU, precision, sensitivity, specificity) follows one
rule when its denominator is 0: it is **1.0 where prediction and truth agree perfectly on
the class** (for instance both empty) **and 0.0 otherwise**.  So

===========================  =====  =====  =========  ===========  ===========  =============
truth / prediction           Dice   IoU    precision  sensitivity  specificity  HD95 (mm)
===========================  =====  =====  =========  ===========  ===========  =============
both empty                   1      1      1          1            TN/(TN+FP)   0
truth empty, prediction not  0      0      0          0            TN/(TN+FP)   HD95_EMPTY_MM
prediction empty, truth not  0      0      0          0            TN/(TN+FP)   HD95_EMPTY_MM
===========================  =====  =====  =========  ===========  ===========  =============

(Specificity's denominator is 0 only when the class fills the whole array.)  A precision of
0 for an empty prediction is a choice: no voxel was predicted so none was wrong, but
scoring it 1 would reward a model that never predicts a tumour that is there.  No metric of
a case is NaN, so means over cases are never silently taken over a subset of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops
from scipy import ndimage

from bratslib.labels import (
    LABEL_KEYS, REGIONS, bounding_box, dice, overlap_counts, overlap_ratio, region_masks,
)

__all__ = [
    "ConfusionMatrixMetric", "DiceScore", "ClassPrecision", "Sensitivity", "Specificity",
    "training_metrics",
    "HD95_EMPTY_MM",
    "dice", "iou", "precision", "sensitivity", "specificity", "hausdorff95",
    "case_scores", "region_split", "summarise", "PooledDice", "classification_metrics",
]

# --------------------------------------------------------------------------------------
# Training-time Keras metrics
# --------------------------------------------------------------------------------------


class ConfusionMatrixMetric(keras.metrics.Metric):
    """Base class: a confusion matrix over all voxels, accumulated across batches.

    ``update_state(y_true, y_pred, sample_weight=None)`` takes one-hot ``y_true`` and
    probabilities (or one-hot) ``y_pred``, both ``(B, *spatial, n_classes)``, and adds
    ``argmax(y_true)`` versus ``argmax(y_pred)`` of every voxel to an
    ``(n_classes, n_classes)`` matrix (rows true class, columns predicted class) kept in
    float64.  ``sample_weight``, if given, weights each sample (shape ``(B,)``) or each
    voxel (shape ``(B, *spatial)``).  ``reset_state()`` zeroes it.

    Subclasses define :meth:`score`, a ratio of the per-class counts TP, FP, FN, TN; the
    result is that of class ``class_id``, or with ``class_id=None`` the mean of the
    per-class scores over the tumour classes ``1 .. n_classes-1`` (a macro average, each
    class weighted alike).  A 0/0 ratio is 1.0 when the class has no false positive and no
    false negative so far (for Dice: absent from both truth and prediction, the BraTS
    convention) and 0.0 otherwise.

    Args:
        class_id: the class scored, or ``None`` for the mean over tumour classes.
        n_classes: number of classes ``C`` (the last axis of ``y_true`` and ``y_pred``).
        name: name of the metric (the key in the Keras history); defaults to the snake-case
            class name, with the class id appended when there is one.
    """

    def __init__(self, class_id: int | None = None, n_classes: int = 4,
                 name: str | None = None, dtype=None):
        if class_id is not None and not 0 <= class_id < n_classes:
            raise ValueError(f"class_id must be in [0, {n_classes}), got {class_id}")
        if name is None:
            name = _snake(type(self).__name__) + ("" if class_id is None else f"_{class_id}")
        super().__init__(name=name, dtype=dtype)
        self.class_id = class_id
        self.n_classes = int(n_classes)
        self.confusion = self.add_variable(shape=(self.n_classes, self.n_classes),
                                           initializer="zeros", dtype="float64",
                                           name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        n = self.n_classes
        if any(x.shape[-1] not in (None, n) for x in (y_true, y_pred)):
            raise ValueError(f"{self.name}: expected {n} classes on the last axis, got "
                             f"y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}")
        cell = ops.argmax(y_true, axis=-1) * n + ops.argmax(y_pred, axis=-1)
        weights = ops.ones_like(cell, dtype="float64")
        if sample_weight is not None:
            weights = ops.cast(sample_weight, "float64")
            while len(weights.shape) < len(cell.shape):
                weights = ops.expand_dims(weights, -1)
            weights = ops.broadcast_to(weights, ops.shape(cell))
        # A segment sum with a static number of segments (unlike bincount) compiles with XLA.
        counts = ops.segment_sum(ops.reshape(weights, (-1,)), ops.reshape(cell, (-1,)),
                                 num_segments=n * n)
        self.confusion.assign_add(ops.reshape(counts, (n, n)))

    def score(self, tp, fp, fn, tn):
        """Per-class score from per-class counts (tensors of shape ``(n_classes,)``)."""
        raise NotImplementedError

    def result(self):
        cm = self.confusion
        tp = ops.diagonal(cm)
        fp = ops.sum(cm, axis=0) - tp
        fn = ops.sum(cm, axis=1) - tp
        tn = ops.sum(cm) - tp - fp - fn
        per_class = self.score(tp, fp, fn, tn)
        value = (ops.mean(per_class[1:]) if self.class_id is None
                 else per_class[self.class_id])
        return ops.cast(value, self.dtype)

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {"class_id": self.class_id, "n_classes": self.n_classes,
                "name": self.name, "dtype": self.dtype}


def _snake(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name).lstrip("_")


def _safe_ratio(num, den, fp, fn):
    """``num / den``; where ``den == 0``: 1.0 if ``fp + fn == 0`` else 0.0 (keras.ops)."""
    perfect = ops.cast(ops.equal(fp + fn, 0), num.dtype)
    return ops.where(den > 0, ops.divide_no_nan(num, den), perfect)


@keras.saving.register_keras_serializable(package="bratslib")
class DiceScore(ConfusionMatrixMetric):
    """Hard Dice ``2TP / (2TP + FP + FN)``, 1.0 for a class absent from truth and prediction."""

    def score(self, tp, fp, fn, tn):
        return _safe_ratio(2 * tp, 2 * tp + fp + fn, fp, fn)


@keras.saving.register_keras_serializable(package="bratslib")
class ClassPrecision(ConfusionMatrixMetric):
    """Precision ``TP / (TP + FP)`` of one class, or the mean over the tumour classes, from the
    argmax of every voxel (unlike ``keras.metrics.Precision``, which thresholds the probabilities
    of a binary or multi-label output); never predicted: 1.0 if also absent from truth, else 0.0."""

    def score(self, tp, fp, fn, tn):
        return _safe_ratio(tp, tp + fp, fp, fn)


# Models saved before this class was renamed name it by its registered name of then,
# "bratslib>Precision" (in their compiled metrics): they keep loading.
keras.saving.get_custom_objects()["bratslib>Precision"] = ClassPrecision


@keras.saving.register_keras_serializable(package="bratslib")
class Sensitivity(ConfusionMatrixMetric):
    """Sensitivity (recall) ``TP / (TP + FN)``; absent from truth: 1.0 if never predicted, else 0.0."""

    def score(self, tp, fp, fn, tn):
        return _safe_ratio(tp, tp + fn, fp, fn)


@keras.saving.register_keras_serializable(package="bratslib")
class Specificity(ConfusionMatrixMetric):
    """Specificity ``TN / (TN + FP)``; no negative voxel in truth: 1.0 if none predicted, else 0.0."""

    def score(self, tp, fp, fn, tn):
        return _safe_ratio(tn, tn + fp, fp, fn)


def training_metrics(
    n_classes: int = 4,
    class_names: Sequence[str] = tuple(LABEL_KEYS.values()),
) -> list[keras.metrics.Metric]:
    """The metrics every chapter compiles with, fresh objects on each call.

    Names (the keys of the Keras history, ``val_`` prefixed on validation data):
    ``accuracy`` (voxel accuracy), ``mean_iou`` (``keras.metrics.OneHotMeanIoU`` over all
    ``n_classes``, background included, as the report does; Keras leaves classes absent
    from both truth and prediction out of the mean), ``dice_<class name>`` for every class,
    ``dice_tumour`` (mean Dice of the tumour classes ``1 .. n_classes-1``, the value
    training monitors as ``val_dice_tumour``), and ``precision``, ``sensitivity``,
    ``specificity`` (means over the tumour classes).
    """
    if len(class_names) != n_classes:
        raise ValueError(f"{len(class_names)} class names for {n_classes} classes")
    return [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        keras.metrics.OneHotMeanIoU(num_classes=n_classes, name="mean_iou"),
        *(DiceScore(k, n_classes, name=f"dice_{c}") for k, c in enumerate(class_names)),
        DiceScore(None, n_classes, name="dice_tumour"),
        ClassPrecision(None, n_classes, name="precision"),
        Sensitivity(None, n_classes, name="sensitivity"),
        Specificity(None, n_classes, name="specificity"),
    ]


# --------------------------------------------------------------------------------------
# Evaluation of whole cases in the BraTS label space (numpy and scipy)
# --------------------------------------------------------------------------------------

#: HD95 (mm) given when exactly one of prediction and truth is empty: the diagonal of the
#: 240 x 240 x 155 BraTS volume at 1 mm, sqrt(240**2 + 240**2 + 155**2) = 373.1287 mm, the
#: largest distance possible in a case.  This is the value BraTS evaluation code in
#: circulation uses for that case (373.1287 in many public BraTS 2020/2021 evaluation
#: scripts; an nnU-Net BraTS 2021 script is reported to use 373.12668); both masks empty
#: gives 0.  The BraTS 2023 lesion-wise metrics use 374 for the same purpose.  The official
#: CaPTk/Synapse source was not at hand to check.
HD95_EMPTY_MM = 373.13


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union (Jaccard) ``|P & T| / |P | T|``; 1.0 when both are empty."""
    tp, fp, fn, _ = overlap_counts(pred, truth)
    return overlap_ratio(tp, tp + fp + fn, fp, fn)


def precision(pred: np.ndarray, truth: np.ndarray) -> float:
    """Precision ``TP / (TP + FP)``; empty prediction: 1.0 if truth is empty too, else 0.0."""
    tp, fp, fn, _ = overlap_counts(pred, truth)
    return overlap_ratio(tp, tp + fp, fp, fn)


def sensitivity(pred: np.ndarray, truth: np.ndarray) -> float:
    """Sensitivity ``TP / (TP + FN)``; empty truth: 1.0 if prediction is empty too, else 0.0."""
    tp, fp, fn, _ = overlap_counts(pred, truth)
    return overlap_ratio(tp, tp + fn, fp, fn)


def specificity(pred: np.ndarray, truth: np.ndarray) -> float:
    """Specificity ``TN / (TN + FP)`` over the whole array; 1.0 if truth and prediction are both full."""
    tp, fp, fn, tn = overlap_counts(pred, truth)
    return overlap_ratio(tn, tn + fp, fp, fn)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-connected (face) neighbour outside it or off the array."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask ^ ndimage.binary_erosion(mask, structure=structure)


def hausdorff95(pred: np.ndarray, truth: np.ndarray,
                spacing: Sequence[float] = (1.0, 1.0, 1.0), crop: bool = True) -> float:
    """95th percentile Hausdorff distance between two boolean masks, in mm.

    The surface of a mask is ``mask XOR binary_erosion(mask)`` with a 6-connectivity
    (face-neighbour) structuring element.  Each surface voxel of one mask is given its
    Euclidean distance (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``)
    to the nearest surface voxel of the other; both directions are pooled and the result is
    ``np.percentile(distances, 95)`` (linear interpolation).  Empty masks: both empty gives
    0.0, exactly one empty gives :data:`HD95_EMPTY_MM`.

    Args:
        pred, truth: boolean masks of the same shape, e.g. ``(240, 240, 155)``.
        spacing: voxel size along each axis, in mm.
        crop: compute on the bounding box of the two masks together.  This gives the same
            number in a fraction of the time: every voxel outside the box is background in
            both masks, which is what ``binary_erosion`` assumes beyond the array's edge, and
            every surface voxel, hence every nearest one, lies inside the box.
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs truth {truth.shape}")
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match {pred.ndim} dimensions")
    has_pred, has_truth = pred.any(), truth.any()
    if not (has_pred or has_truth):
        return 0.0
    if not (has_pred and has_truth):
        return HD95_EMPTY_MM
    if crop:
        box = bounding_box(pred | truth)
        pred, truth = pred[box], truth[box]
    surface_pred, surface_truth = _surface(pred), _surface(truth)
    to_truth = ndimage.distance_transform_edt(~surface_truth, sampling=spacing)[surface_pred]
    to_pred = ndimage.distance_transform_edt(~surface_pred, sampling=spacing)[surface_truth]
    return float(np.percentile(np.concatenate([to_truth, to_pred]), 95))


def _check_labels(labels: np.ndarray, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"{what} must hold integer BraTS labels, got dtype {labels.dtype}")
    if labels.dtype == np.uint8:  # predictions and most label files: a table lookup, 10x faster than isin
        allowed = np.zeros(256, bool)
        allowed[list(LABEL_KEYS)] = True
        bad = ~allowed[labels]
    else:
        bad = ~np.isin(labels, tuple(LABEL_KEYS))
    if bad.any():
        raise ValueError(f"{what} holds labels {np.unique(labels[bad])[:10].tolist()} outside "
                         f"the BraTS labels {sorted(LABEL_KEYS)}")
    return labels


def case_scores(pred_labels: np.ndarray, true_labels: np.ndarray,
                spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    """Every metric of one case, from two label volumes in the BraTS label space.

    Args:
        pred_labels, true_labels: label volumes of the same shape (typically
            ``(240, 240, 155)``), any integer dtype, values in ``{0, 1, 2, 4}``.
        spacing: voxel size in mm, for the Hausdorff distances.

    Returns:
        A flat ``dict`` of floats with keys ``accuracy`` (fraction of voxels with the right
        label), ``mean_iou`` (mean of the per-class IoUs, background included, over the
        classes present in truth or prediction, as ``keras.metrics.MeanIoU`` computes it),
        for each class key ``N`` of :data:`bratslib.labels.LABEL_KEYS` ``dice_N``, ``iou_N``,
        ``precision_N``, ``sensitivity_N``, ``specificity_N``, and for each region ``R`` of
        :data:`bratslib.labels.REGIONS` ``dice_R``, ``precision_R``, ``sensitivity_R``, ``specificity_R``,
        ``hd95_R`` (mm) and ``volume_R_ml``, the region's volume in the *truth* (millilitres; 0 where the case
        has none, which :func:`region_split` uses).  Empty classes and regions follow the
        conventions of the module docstring.

    Raises:
        ValueError: if the shapes differ or a volume holds a label outside ``{0, 1, 2, 4}``.
    """
    pred_labels = _check_labels(pred_labels, "pred_labels")
    true_labels = _check_labels(true_labels, "true_labels")
    if pred_labels.shape != true_labels.shape:
        raise ValueError(f"shape mismatch: pred_labels {pred_labels.shape} vs "
                         f"true_labels {true_labels.shape}")
    # Outside the box of every tumour voxel of either volume both are background: count there
    # once instead of comparing voxel by voxel (the same numbers, a fraction of the work).
    total = pred_labels.size
    box = bounding_box((pred_labels > 0) | (true_labels > 0))
    if box is not None:
        pred_labels, true_labels = pred_labels[box], true_labels[box]
    outside = total - pred_labels.size  # voxels that are background in both

    def counts(pred: np.ndarray, truth: np.ndarray, background: bool = False) -> tuple[int, int, int, int]:
        tp, fp, fn, tn = overlap_counts(pred, truth)
        return (tp + outside, fp, fn, tn) if background else (tp, fp, fn, tn + outside)

    out = {"accuracy": float((np.count_nonzero(pred_labels == true_labels) + outside) / total), "mean_iou": 0.0}
    ious = []
    for label, name in LABEL_KEYS.items():
        tp, fp, fn, tn = counts(pred_labels == label, true_labels == label, background=label == 0)
        out[f"dice_{name}"] = overlap_ratio(2 * tp, 2 * tp + fp + fn, fp, fn)
        out[f"iou_{name}"] = overlap_ratio(tp, tp + fp + fn, fp, fn)
        out[f"precision_{name}"] = overlap_ratio(tp, tp + fp, fp, fn)
        out[f"sensitivity_{name}"] = overlap_ratio(tp, tp + fn, fp, fn)
        out[f"specificity_{name}"] = overlap_ratio(tn, tn + fp, fp, fn)
        if tp + fp + fn:
            ious.append(out[f"iou_{name}"])
    out["mean_iou"] = float(np.mean(ious)) if ious else 1.0
    for region, pred, truth in zip(REGIONS, region_masks(pred_labels), region_masks(true_labels)):
        tp, fp, fn, tn = counts(pred, truth)
        out[f"dice_{region}"] = overlap_ratio(2 * tp, 2 * tp + fp + fn, fp, fn)
        out[f"precision_{region}"] = overlap_ratio(tp, tp + fp, fp, fn)
        out[f"sensitivity_{region}"] = overlap_ratio(tp, tp + fn, fp, fn)
        out[f"specificity_{region}"] = overlap_ratio(tn, tn + fp, fp, fn)
        out[f"hd95_{region}"] = hausdorff95(pred, truth, spacing)
        out[f"volume_{region}_ml"] = float(tp + fn) * float(np.prod(spacing)) / 1000.0
    return out


def region_split(per_case: Sequence[dict[str, Any]], region: str = "ET") -> dict[str, Any]:
    """The Dice of ``region`` over cases, split by whether the truth holds the region.

    By the BraTS rule (module docstring) a case without, say, enhancing tumour scores Dice 1
    when the model predicts none and 0 for a single false voxel.  A mean over all cases then
    mixes two questions: how well is the region outlined where it exists, and is its absence
    recognised where it does not?  This answers them apart.

    Args:
        per_case: rows of :func:`case_scores` (with ``dice_R`` and ``volume_R_ml``).

    Returns:
        ``{"n_present": cases whose truth holds the region, "dice_present": their mean Dice
        (NaN when there is none), "n_absent": cases without it, "absent_found": how many of
        those the model left empty (Dice 1)}``.
    """
    present = [float(r[f"dice_{region}"]) for r in per_case if r[f"volume_{region}_ml"] > 0]
    absent = [float(r[f"dice_{region}"]) for r in per_case if r[f"volume_{region}_ml"] == 0]
    return {"n_present": len(present), "dice_present": float(np.mean(present)) if present else float("nan"),
            "n_absent": len(absent), "absent_found": int(sum(d == 1.0 for d in absent))}


def summarise(per_case: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Summary statistics of every key over cases, ignoring NaN (and missing keys).

    Returns ``{key: {"mean", "std", "median", "q25", "q75", "min", "max", "n"}}`` with
    ``std`` the population standard deviation (``ddof=0``), ``q25``/``q75`` the quartiles
    (linear interpolation) and ``n`` the number of non-NaN values; a key with no value
    gets ``n = 0`` and NaN for the rest.  Keys keep their first-seen order.
    """
    keys = list(dict.fromkeys(k for case in per_case for k in case))
    summary = {}
    for key in keys:
        values = np.array([case.get(key, np.nan) for case in per_case], dtype=float)
        values = values[~np.isnan(values)]
        if values.size == 0:
            stats = dict.fromkeys(("mean", "std", "median", "q25", "q75", "min", "max"), np.nan)
        else:
            q25, median, q75 = np.percentile(values, (25, 50, 75))
            stats = {"mean": values.mean(), "std": values.std(), "median": median,
                     "q25": q25, "q75": q75, "min": values.min(), "max": values.max()}
        summary[key] = {**{k: float(v) for k, v in stats.items()}, "n": int(values.size)}
    return summary


class PooledDice:
    """The "Dice" many Keras notebooks report: all voxels and all classes pooled together.

    ``update(y_true, y_pred)`` takes numpy arrays ``(..., C)``, one-hot truth and
    probabilities or one-hot predictions, and accumulates ``sum(y * p)`` and
    ``sum(y) + sum(p)`` over every voxel, class and call; :meth:`result` is
    ``2 * sum(y * p) / (sum(y) + sum(p))`` (NaN before any update).

    Background included, this is dominated by the background class, and for hard one-hot
    predictions ``sum(y * p)`` counts the correctly labelled voxels while
    ``sum(y) + sum(p)`` is twice the number of voxels: the score *equals voxel accuracy*.
    That is why it reads about 0.99 on BraTS whatever happens to the tumour, and why it is
    computed here only to compare with reported numbers.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.intersection = 0.0
        self.total = 0.0

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")
        self.intersection += float(np.sum(y_true * y_pred))
        self.total += float(y_true.sum() + y_pred.sum())

    def result(self) -> float:
        return 2.0 * self.intersection / self.total if self.total else float("nan")


# --------------------------------------------------------------------------------------
# Binary classification (tumour / no tumour slices)
# --------------------------------------------------------------------------------------


def classification_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of a binary classifier: class 1 (tumour) positive.

    Args:
        y_true: true classes, 0 or 1, shape (N,).
        score: the predicted probability of class 1, shape (N,).
        threshold: a sample is predicted positive when ``score >= threshold``.

    Returns:
        ``accuracy``, ``precision``, ``recall`` (sensitivity), ``f1``, ``specificity``,
        ``roc_auc`` (the probability that a random positive scores above a random negative,
        ties counting half: the Mann-Whitney statistic, from average ranks), ``confusion``
        (``[[TN, FP], [FN, TP]]``, rows true class), ``n``, ``positives``.  A ratio with a
        zero denominator follows the module's rule (1.0 if there is nothing to get wrong,
        else 0.0); the AUC is NaN when one class is absent.
    """
    from scipy.stats import rankdata

    y_true = np.asarray(y_true).astype(int).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if y_true.shape != score.shape:
        raise ValueError(f"y_true {y_true.shape} and score {score.shape} differ in length")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must hold classes 0 and 1 only")
    pred = score >= threshold
    truth = y_true == 1
    tp, fp, fn, tn = overlap_counts(pred, truth)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives and negatives:
        ranks = rankdata(score)
        auc = (ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    else:
        auc = float("nan")
    precision_ = overlap_ratio(tp, tp + fp, fp, fn)
    recall_ = overlap_ratio(tp, tp + fn, fp, fn)
    return {
        "accuracy": (tp + tn) / y_true.size if y_true.size else float("nan"),
        "precision": precision_,
        "recall": recall_,
        "f1": overlap_ratio(2 * tp, 2 * tp + fp + fn, fp, fn),
        "specificity": overlap_ratio(tn, tn + fp, fp, fn),
        "roc_auc": float(auc),
        "confusion": [[tn, fp], [fn, tp]],
        "n": int(y_true.size),
        "positives": positives,
    }
