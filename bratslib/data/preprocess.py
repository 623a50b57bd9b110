"""Preprocessing of one BraTS case (report section 2.2): intensities, labels, sizes.

Everything here is numpy / scipy and works on one case at a time:

* :func:`normalize_intensity`: MRI intensities (arbitrary scanner units) -> [0, 1];
* :func:`to_training_labels` / :func:`to_brats_labels`: BraTS labels {0, 1, 2, 4} <->
  class indices {0, 1, 2, 3}; :func:`one_hot`;
* :func:`resize_slices` (axial slices 240x240 -> 128x128, the 2-D models),
  :func:`resize_volume` (240x240x155 -> 128^3, the 3-D model) and :func:`resize_back`
  (a prediction back onto the original 240x240x155 grid);
* :func:`brain_box`: the box around the brain that ``crop=True`` keeps before resizing, so
  that 128 pixels span the brain rather than the 240 mm field of view (the tumour gets about
  1.4 times as many pixels); :func:`paste_box` puts a prediction of the box back;
* :func:`preprocess_case`: all of the above for one :class:`~bratslib.data.cases.BratsCase`.

Array axes follow nibabel's: a volume is (x, y, z) with z the axial (slice) axis, and a
channel axis, when there is one, comes last.  The 2-D pipeline puts slices first,
(z, size, size, C), so that one training sample is one contiguous block.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import ndimage

from bratslib.labels import LABELS

if TYPE_CHECKING:
    from bratslib.data.cases import BratsCase

#: BraTS label of each training class index: class k is BraTS label ``BRATS_LABEL_OF_CLASS[k]``.
BRATS_LABEL_OF_CLASS: tuple[int, ...] = LABELS
N_CLASSES = len(BRATS_LABEL_OF_CLASS)

#: Robust min-max: intensities are clipped at these percentiles of the brain voxels.
CLIP_PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: ``"median"`` normalisation: the brain's median intensity maps to this value (its
#: 0.5th percentile to 0), so that 1 is 2.5 times as far above the floor as the median.
MEDIAN_TARGET: float = 0.4

Normalization = Literal["volume", "slice", "median", "rank"]
#: The normalisation modes, for checking a setting.
NORMALIZATIONS: tuple[str, ...] = ("volume", "slice", "median", "rank")


# --------------------------------------------------------------------------- intensities


def normalize_intensity(volume: np.ndarray, mode: Normalization = "volume") -> np.ndarray:
    """Scale MRI intensities to [0, 1], background (voxels equal to 0) staying 0.

    Args:
        volume: one modality (x, y, z), or several stacked on a last channel axis
            (x, y, z, C); any real dtype.  Each channel is normalised on its own.
        mode: ``"volume"`` (default): robust min-max over the brain voxels (the nonzero
            ones) of the whole volume: intensities are clipped at the 0.5th and 99.5th
            percentiles of the brain and mapped linearly onto [0, 1].
            ``"slice"``: the report's per-slice min-max, each axial slice (``[:, :, k]``)
            mapped from [min, max] onto [0, 1] on its own.
            ``"median"``: anchored on typical brain, not on its brightest voxels: the
            brain's 0.5th percentile maps to 0 and its median to :data:`MEDIAN_TARGET`
            (0.4), linearly, clipped to [0, 1] (so up to 2.5 times the median's height).
            ``"rank"``: each brain voxel's rank among the brain's voxels of the volume, as a
            fraction (the share of brain voxels darker than it, ties sharing their mean
            rank): the brain's histogram made flat, so that any monotone change of the
            intensities (a scanner's contrast, a brighter or fainter tumour relative to
            white matter) gives the same values, as long as the order of the tissues holds.

    Returns:
        float32 array of the same shape, values in [0, 1].

    Why per volume is the default: per-slice min-max gives one tissue different values on
    different slices, and on slices with little brain (the top and bottom of the head) a
    handful of voxels gets stretched over the whole [0, 1] range; the 3-D model needs one
    scale across the volume anyway.  The percentiles keep a few hot voxels (vessels,
    artefacts) from squeezing all other tissue into a narrow band near 0.  ``"slice"`` is
    kept to reproduce the report.

    Why ``"median"`` exists: the 99.5th percentile of a glioma's T1ce is usually its
    enhancing tumour, so per-volume min-max maps enhancement to about 1 however faint it is,
    and what a model learns of how bright enhancement is relative to white matter is lost.
    Anchored on the median (mostly white and grey matter) a tissue keeps its contrast to
    normal brain; the hottest 0.5 % no longer decides every other value's scale.  Measured by
    ``benchmarks/bench_sim2real.py`` (rows ``norm=median``): the U-Net learnt the synthetic
    enhancement better with it and the real scans no better, so the profiles keep ``"volume"``.

    Why ``"rank"`` exists: a network trained on synthetic tumours of fixed contrast learns how
    much brighter than the brain a tumour is, and misses a real one that is less so (scan 901
    of ``book/data/real``: found once made 1.3 times brighter).  Ranks do not move with the
    contrast, only with the order of the voxels.  Measured by ``benchmarks/bench_sim2real.py``
    (rows ``norm=rank``): the U-Net then finds 901's tumour (the median tumour probability in
    it 0.94 with one seed, against 0.09 with ``"volume"``), making the tumour brighter changes
    its scores little, and with all four modalities as input its real enhancing tumour is at
    least 0.50 with each of five training seeds (902's, absent, left empty); but it marks bright
    normal tissue elsewhere, and its real whole tumour is no better at the book's budget.  The
    profiles keep ``"volume"``: a gain on one region of two scans is not yet a reason to leave it.
    """
    volume = np.asarray(volume)
    if volume.ndim == 4:
        return np.stack([normalize_intensity(volume[..., c], mode) for c in range(volume.shape[-1])], axis=-1)
    if volume.ndim != 3:
        raise ValueError(f"expected a volume (x, y, z) or (x, y, z, C), got shape {volume.shape}")
    volume = volume.astype(np.float32, copy=False)
    brain = volume != 0
    if mode == "volume":
        if not brain.any():
            return np.zeros_like(volume)
        lo, hi = np.percentile(volume[brain], CLIP_PERCENTILES)
        scaled = (np.clip(volume, lo, hi) - lo) / max(float(hi - lo), 1e-8)
    elif mode == "median":
        if not brain.any():
            return np.zeros_like(volume)
        lo, median = np.percentile(volume[brain], (CLIP_PERCENTILES[0], 50.0))
        scaled = np.clip((volume - lo) * (MEDIAN_TARGET / max(float(median - lo), 1e-8)), 0.0, 1.0)
    elif mode == "rank":
        scaled = np.zeros_like(volume)
        scaled[brain] = _mid_ranks(volume[brain])
    elif mode == "slice":
        lo = volume.min(axis=(0, 1), keepdims=True)
        hi = volume.max(axis=(0, 1), keepdims=True)
        scaled = (volume - lo) / np.maximum(hi - lo, 1e-8)
    else:
        raise ValueError(f"unknown normalisation mode {mode!r}; use one of {', '.join(NORMALIZATIONS)}")
    return np.where(brain, scaled, 0.0).astype(np.float32)


def _mid_ranks(values: np.ndarray) -> np.ndarray:
    """Each of ``values`` (1-D) as the share of ``values`` below it, ties counted half: float32
    in (0, 1).  (``scipy.stats.rankdata(values) - 0.5`` over the count; ``np.unique`` with its
    counts is four times as fast on a brain's 2 million voxels.)"""
    if values.size == 0:
        return values.astype(np.float32)
    _, which, counts = np.unique(values, return_inverse=True, return_counts=True)
    below_and_upto = 2 * np.cumsum(counts) - counts  # (darker) + (darker or equal), per distinct value
    return (below_and_upto[which.ravel()] / np.float32(2 * values.size)).astype(np.float32)


# --------------------------------------------------------------------------- labels


def _lookup(values: np.ndarray, allowed: Sequence[int], mapped: Sequence[int], what: str) -> np.ndarray:
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.integer):
        if not np.array_equal(values, np.round(values)):
            raise ValueError(f"{what} must be integers, got non-integer values of dtype {values.dtype}")
    table = np.full(256, 255, np.uint8)
    table[list(allowed)] = mapped
    in_range = (values >= 0) & (values <= 255)
    out = table[np.where(in_range, values, 255).astype(np.intp)]
    bad = ~in_range | (out == 255)
    if bad.any():
        found = ", ".join(str(v) for v in np.unique(values[bad])[:10])
        raise ValueError(f"{what} outside {{{', '.join(map(str, allowed))}}}: found {found}")
    return out


def to_training_labels(seg: np.ndarray) -> np.ndarray:
    """BraTS labels {0, 1, 2, 4} -> class indices {0, 1, 2, 3} (uint8, same shape).

    Raises:
        ValueError: a label outside {0, 1, 2, 4} (3 included: BraTS 2020 does not use it).
    """
    return _lookup(seg, BRATS_LABEL_OF_CLASS, range(N_CLASSES), "BraTS labels")


def to_brats_labels(labels: np.ndarray) -> np.ndarray:
    """Class indices {0, 1, 2, 3} -> BraTS labels {0, 1, 2, 4} (uint8): the inverse of
    :func:`to_training_labels`, for writing predictions in the BraTS convention.

    Raises:
        ValueError: a class index outside {0, 1, 2, 3}.
    """
    return _lookup(labels, range(N_CLASSES), BRATS_LABEL_OF_CLASS, "class indices")


def one_hot(labels: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Class indices (...) -> one-hot float32 (..., n_classes).

    Raises:
        ValueError: an index outside [0, n_classes).
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"class indices must lie in [0, {n_classes}), found {labels.min()}..{labels.max()}")
    return np.take(np.eye(n_classes, dtype=np.float32), labels, axis=0)  # ~15x faster than eye[labels]


# --------------------------------------------------------------------------- sizes


def _resize(volume: np.ndarray, spatial_shape: Sequence[int], order: int) -> np.ndarray:
    """Resize the leading ``len(spatial_shape)`` axes of ``volume`` to ``spatial_shape``.

    Trailing axes (slices, channels) are left alone: each 2-D or 3-D block is zoomed on its
    own with :func:`scipy.ndimage.zoom`, which is faster than zooming with a factor of 1 along
    the trailing axes (in threads, one per core).  Pixel areas are aligned (``grid_mode=True``: the convention of
    ``cv2.resize``, ``tf.image.resize`` and ``skimage.transform.resize``) and edges are
    extended with the nearest value.  The dtype is kept.
    """
    volume = np.asarray(volume)
    spatial_shape = tuple(int(n) for n in spatial_shape)
    n = len(spatial_shape)
    if volume.ndim < n or min(spatial_shape) < 1:
        raise ValueError(f"cannot resize shape {volume.shape} to {spatial_shape}")
    if volume.shape[:n] == spatial_shape:
        return volume.copy()
    factors = [new / old for new, old in zip(spatial_shape, volume.shape[:n])]
    blocks = np.ascontiguousarray(np.moveaxis(volume.reshape(volume.shape[:n] + (-1,)), -1, 0))
    out = np.empty((len(blocks),) + spatial_shape, volume.dtype)

    def zoom(k: int) -> None:
        ndimage.zoom(blocks[k], factors, output=out[k], order=order, mode="nearest", grid_mode=True, prefilter=order > 1)

    # scipy's zoom releases the GIL: blocks are resized on every core (each on its own: the same result)
    workers = min(len(blocks), os.cpu_count() or 1, 8)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(zoom, range(len(blocks))))
    else:
        for k in range(len(blocks)):
            zoom(k)
    return np.moveaxis(out, 0, -1).reshape(spatial_shape + volume.shape[n:])


def resize_slices(volume: np.ndarray, size: int = 128, order: int = 1) -> np.ndarray:
    """Resize each axial slice: (x, y, z[, C]) -> (size, size, z[, C]), same dtype.

    ``order=1`` (bilinear) for images; ``order=0`` (nearest neighbour) for label maps, so
    that every output voxel holds one of the input labels (no 1.5 between 1 and 2).
    """
    volume = np.asarray(volume)
    if volume.ndim not in (3, 4):
        raise ValueError(f"expected (x, y, z) or (x, y, z, C), got shape {volume.shape}")
    return _resize(volume, (size, size), order)


def resize_volume(volume: np.ndarray, size: int | Sequence[int] = 128, order: int = 1) -> np.ndarray:
    """Resize a volume: (x, y, z[, C]) -> (a, b, c[, C]), by default 128^3 (the 3-D input).

    ``size`` is one int for a cube or three for (a, b, c).  ``order=1`` (trilinear) for
    images, ``order=0`` (nearest neighbour) for label maps, which keeps them in the label set.
    """
    shape = (size,) * 3 if np.isscalar(size) else tuple(size)
    if len(shape) != 3 or np.ndim(volume) not in (3, 4):
        raise ValueError(f"cannot resize shape {np.shape(volume)} to {shape}")
    return _resize(volume, shape, order)


def resize_back(
    prediction: np.ndarray,
    target_shape: Sequence[int],
    order: int = 0,
    *,
    slices_first: bool = False,
) -> np.ndarray:
    """A prediction back onto the original grid: (a, b, c[, C]) -> target_shape[:3] (+ C).

    Args:
        prediction: class indices (use ``order=0``) or per-class probabilities on a last axis
            (use ``order=1``, then take the argmax on the original grid).
        target_shape: the case's shape, e.g. ``(240, 240, 155)`` (a trailing channel entry
            is ignored).
        slices_first: ``prediction`` is a stack of axial slices (z, a, b[, C]) as the 2-D
            models give it; it is moved back to (a, b, z[, C]) first.
    """
    prediction = np.asarray(prediction)
    if slices_first:
        prediction = np.moveaxis(prediction, 0, 2)
    target = tuple(int(n) for n in target_shape)[:3]
    if len(target) != 3 or prediction.ndim not in (3, 4):
        raise ValueError(f"cannot resize shape {prediction.shape} back to {tuple(target_shape)}")
    if prediction.shape[2] == target[2]:  # a stack of slices: resize in-plane only
        return _resize(prediction, target[:2], order)
    return _resize(prediction, target, order)


# --------------------------------------------------------------------------- cropping

#: Voxels of background kept around the brain by :func:`brain_box`.
BOX_MARGIN = 4

Box = tuple[tuple[int, int], ...]


def brain_box(images: np.ndarray, mode: Literal["2d", "3d"] = "2d", margin: int = BOX_MARGIN) -> Box:
    """The box to crop a case to before resizing: ``((x0, x1), (y0, y1), (z0, z1))``, stops exclusive.

    In-plane the box is the square around the brain (voxels not 0 in any channel of
    ``images``, (x, y, z[, C])) plus ``margin``, centred on the brain and shifted to lie inside
    the grid (square, so that resizing to S x S keeps the aspect ratio); it is the whole grid
    when the brain is that large.  Along z the box keeps every slice in 2-D mode (the slices
    without brain are skipped by the samplers, and a prediction needs every slice) and spans the
    brain plus ``margin`` in 3-D mode.  An image without brain gives the whole grid.
    """
    images = np.asarray(images)
    brain = np.any(images != 0, axis=-1) if images.ndim == 4 else images != 0
    shape = brain.shape
    if not brain.any():
        return tuple((0, n) for n in shape)
    lo = [int(np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != k)))[0]) for k in range(3)]
    hi = [int(np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != k)))[-1]) + 1 for k in range(3)]
    side = min(max(hi[0] - lo[0], hi[1] - lo[1]) + 2 * margin, min(shape[:2]))
    box = []
    for k in range(2):
        centre = (lo[k] + hi[k]) // 2
        start = int(np.clip(centre - side // 2, 0, shape[k] - side))
        box.append((start, start + side))
    box.append((0, shape[2]) if mode == "2d" else (max(lo[2] - margin, 0), min(hi[2] + margin, shape[2])))
    return tuple(box)


def paste_box(labels: np.ndarray, box: Box, shape: Sequence[int]) -> np.ndarray:
    """A label map of the box (as :func:`brain_box` gives it) on the whole grid of ``shape``,
    background (0) outside the box."""
    out = np.zeros(tuple(int(n) for n in shape)[:3], dtype=labels.dtype)
    out[tuple(slice(a, b) for a, b in box)] = labels
    return out


# --------------------------------------------------------------------------- one case


def brain_slices(images: np.ndarray) -> np.ndarray:
    """Indices of the slices that contain brain, for a slice-first stack (z, H, W[, C]): int32."""
    images = np.asarray(images)
    return np.flatnonzero(np.any(images != 0, axis=tuple(range(1, images.ndim)))).astype(np.int32)


def preprocess_case(
    case: BratsCase,
    modalities: Sequence[str] = ("flair", "t1ce"),
    size: int | Sequence[int] = 128,
    mode: Literal["2d", "3d"] = "2d",
    normalize: Normalization = "volume",
    box: Box | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalise, relabel and resize one case for training.

    Intensities are normalised on the original grid (see :func:`normalize_intensity`), then
    cropped to ``box`` when one is given (:func:`brain_box`) and resized (bilinear /
    trilinear); labels are mapped to class indices, cropped alike, then resized with nearest
    neighbour.

    Returns:
        ``(images, labels)``:

        * ``mode="2d"``: images float32 (z, size, size, C), one axial slice per row, and
          labels uint8 (z, size, size) in {0, 1, 2, 3};
        * ``mode="3d"``: images float32 (S, S, S, C) in (x, y, z) order (``size`` may be a
          triple), and labels uint8 (S, S, S).

        ``labels`` is None for an unlabeled case.  C follows ``modalities``.
    """
    images = normalize_intensity(case.stack(tuple(modalities)), normalize)
    labels = None if case.seg is None else to_training_labels(case.seg)
    if box is not None:
        crop = tuple(slice(a, b) for a, b in box)
        images = images[crop]
        labels = None if labels is None else labels[crop]
    if mode == "2d":
        if not np.isscalar(size):
            raise ValueError(f"2-D preprocessing takes one int size, got {size!r}")
        images = np.moveaxis(resize_slices(images, size, order=1), 2, 0)
        labels = None if labels is None else np.moveaxis(resize_slices(labels, size, order=0), 2, 0)
    elif mode == "3d":
        images = resize_volume(images, size, order=1)
        labels = None if labels is None else resize_volume(labels, size, order=0)
    else:
        raise ValueError(f"unknown mode {mode!r}; use '2d' or '3d'")
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = None if labels is None else np.ascontiguousarray(labels, dtype=np.uint8)
    return images, labels
