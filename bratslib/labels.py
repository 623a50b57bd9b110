"""BraTS labels and evaluation regions, and the operations on label masks that several modules share.

A BraTS 2020 segmentation is a label volume, typically ``(240, 240, 155)`` at 1 mm, holding

=====  ================================================  ================  ==================
label  tissue                                            name (tables)     key (metric names)
=====  ================================================  ================  ==================
0      background and healthy brain                      background        ``background``
1      necrotic and non-enhancing tumour core (NCR/NET)  necrotic core     ``necrotic``
2      peritumoral oedema (ED)                           oedema            ``oedema``
4      GD-enhancing tumour (ET)                          enhancing tumour  ``enhancing``
=====  ================================================  ================  ==================

(label 3 is unused since BraTS 2017), and is scored on three nested regions: whole tumour
WT = {1, 2, 4}, tumour core TC = {1, 4} and enhancing tumour ET = {4}.

The data checks, the preprocessing, the metrics, the threshold baseline and the figures all
read these definitions from here, and the metrics and the baseline share the mask helpers
(:func:`bounding_box`, :func:`overlap_counts`, :func:`dice`).  Pure numpy: importing this
module imports nothing of bratslib, Keras or nibabel.
"""

from __future__ import annotations

import numpy as np

#: The labels of a BraTS 2020 segmentation, in class order (class k of a network is label ``LABELS[k]``).
LABELS: tuple[int, ...] = (0, 1, 2, 4)
#: What tables, legends and figures call each label.
LABEL_NAMES: dict[int, str] = {0: "background", 1: "necrotic core", 2: "oedema", 4: "enhancing tumour"}
#: Each label's name in metric keys (``dice_necrotic``, ``iou_enhancing``...).
LABEL_KEYS: dict[int, str] = {0: "background", 1: "necrotic", 2: "oedema", 4: "enhancing"}
#: BraTS evaluation regions: whole tumour, tumour core, enhancing tumour, and the labels in each.
REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}


def region_masks(seg: np.ndarray) -> tuple[np.ndarray, ...]:
    """The boolean masks of the :data:`REGIONS` (WT, TC, ET) of a label volume, each its shape."""
    seg = np.asarray(seg)
    return tuple(np.isin(seg, labels) for labels in REGIONS.values())


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The slices, one per axis, of the smallest box that holds every True voxel of ``mask``
    (``mask[box]`` is the crop); None when ``mask`` has none."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def overlap_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """True positives, false positives, false negatives and true negatives (voxel counts) of a
    predicted boolean mask against a true one of the same shape.

    Raises:
        ValueError: the shapes differ.
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs truth {truth.shape}")
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return tp, fp, fn, pred.size - tp - fp - fn


def overlap_ratio(num: int, den: int, fp: int, fn: int) -> float:
    """``num / den``; where ``den == 0``, 1.0 if the prediction equals the truth (``fp == fn == 0``)
    and 0.0 otherwise: the rule every ratio of :mod:`bratslib.metrics` follows for empty masks."""
    return num / den if den else float(fp == 0 and fn == 0)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice ``2|P & T| / (|P| + |T|)`` of two boolean masks of the same shape; 1.0 when both are empty."""
    tp, fp, fn, _ = overlap_counts(pred, truth)
    return overlap_ratio(2 * tp, 2 * tp + fp + fn, fp, fn)


__all__ = ["LABELS", "LABEL_KEYS", "LABEL_NAMES", "REGIONS", "bounding_box", "dice", "overlap_counts",
           "overlap_ratio", "region_masks"]
