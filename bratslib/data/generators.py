"""Keras data pipelines over the preprocessed cache: 2-D slices and 3-D volumes.

:class:`SliceDataset` and :class:`VolumeDataset` are ``keras.utils.PyDataset`` s that read
memory-mapped :class:`~bratslib.data.cache.CachedCase` s, so an epoch costs a few array
copies per batch and no NIfTI decoding.  Shuffling and augmentation are drawn from
``(seed, epoch[, batch])``: the same seed gives the same batches, epoch after epoch, with
any number of workers.  (``model.fit`` shuffles the order of whole batches once more with
Python's ``random`` unless it is called with ``shuffle=False``; the batches themselves do
not change.)  :func:`make_datasets` goes from a data folder to train / val / test
datasets in one call.

Importing this module imports Keras (and so TensorFlow).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import keras
import numpy as np

from bratslib.data.augment import AugmentConfig
from bratslib.data.augment import augment as augment_sample
from bratslib.data.cache import CachedCase, PreprocessedCache, as_float32
from bratslib.data.layout import find_cases
from bratslib.data.preprocess import N_CLASSES, Normalization, one_hot
from bratslib.data.splits import SPLIT_NAMES, save_split, split_cases


class _CachedDataset(keras.utils.PyDataset):
    """Batches of samples drawn from cached cases; subclasses say what a sample is.

    ``self.samples`` is an int array (N, k): one row per sample, its first column the case.
    """

    def __init__(
        self,
        cached_cases: Sequence[CachedCase],
        mode: str,
        batch_size: int,
        shuffle: bool,
        augment: AugmentConfig | None,
        seed: int,
        n_classes: int,
        workers: int,
        use_multiprocessing: bool,
        max_queue_size: int,
        samples_per_epoch: int | None = None,
        foreground_fraction: float | None = None,
    ):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        self.cases = list(cached_cases)
        if not self.cases:
            raise ValueError("no cases given")
        wrong = [c.case_id for c in self.cases if c.mode != mode]
        if wrong:
            raise ValueError(f"{type(self).__name__} needs cases cached in {mode!r} mode; {wrong[0]} is in {self.cases[0].mode!r} mode")
        labeled = {c.labeled for c in self.cases}
        if len(labeled) > 1:
            raise ValueError("mix of labeled and unlabeled cases; give one kind only")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.labeled = labeled.pop()
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.n_classes = n_classes
        self.epoch = 0
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be >= 1 or None, got {samples_per_epoch}")
        self.samples_per_epoch = samples_per_epoch
        if foreground_fraction is not None and not 0 <= foreground_fraction <= 1:
            raise ValueError(f"foreground_fraction must lie in [0, 1], got {foreground_fraction}")
        if foreground_fraction is not None and not self.labeled:
            raise ValueError("foreground_fraction needs labeled cases")
        self.foreground_fraction = foreground_fraction
        self.samples = self._make_samples()
        if len(self.samples) == 0:
            raise ValueError("the cases hold no sample to draw (check the slice range)")
        self._foreground = self._foreground_samples() if foreground_fraction is not None else None
        self._order = self._make_order()

    def _make_samples(self) -> np.ndarray:
        raise NotImplementedError

    def _read(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One sample: image float (..., C) and labels uint8 (...) or None."""
        raise NotImplementedError

    def _foreground_samples(self) -> np.ndarray:
        """Indices of the samples whose labels hold tumour (any class > 0)."""
        return np.flatnonzero([self._read(row)[1].any() for row in self.samples])

    def _make_order(self) -> np.ndarray:
        n = len(self.samples)
        k = n if self.samples_per_epoch is None else min(n, self.samples_per_epoch)
        if self.shuffle:  # a fresh random draw of k samples each epoch
            rng = np.random.default_rng([self.seed, self.epoch])
            if self._foreground is None or k == n:
                return rng.permutation(n)[:k]
            # like nnU-Net's foreground oversampling: at least this share holds tumour
            fg = rng.choice(self._foreground, min(len(self._foreground), round(k * self.foreground_fraction)), replace=False)
            rest = rng.choice(np.setdiff1d(np.arange(n), fg), k - len(fg), replace=False)
            return rng.permutation(np.concatenate([fg, rest]))
        return np.linspace(0, n - 1, k).round().astype(np.int64) if k < n else np.arange(n)  # evenly spread

    def set_epoch(self, epoch: int) -> None:
        """Jump to the sample order of ``epoch`` (e.g. when resuming training)."""
        self.epoch = int(epoch)
        self._order = self._make_order()

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def __len__(self) -> int:
        return math.ceil(len(self._order) / self.batch_size)

    def batch_samples(self, index: int) -> np.ndarray:
        """The sample rows of batch ``index`` in the current epoch, (B, k) int."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        return self.samples[self._order[index * self.batch_size:(index + 1) * self.batch_size]]

    def __getitem__(self, index: int):
        rows = self.batch_samples(index)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment is not None else None
        images, labels = [], []
        for row in rows:
            image, label = self._read(row)
            if rng is not None:
                image, label = augment_sample(image, label, rng, self.augment)
            images.append(image)
            labels.append(label)
        x = as_float32(np.stack(images))
        if not self.labeled:
            return (x,)
        return x, one_hot(np.stack(labels), self.n_classes)


class SliceDataset(_CachedDataset):
    """Batches of axial slices for the 2-D models.

    Args:
        cached_cases: cases cached in 2-D mode (:class:`~bratslib.data.cache.PreprocessedCache`
            with ``mode="2d"``).
        batch_size: slices per batch; the last batch of an epoch may be smaller.
        shuffle: draw the slices of all cases in a new random order each epoch (the order of
            epoch e depends only on ``(seed, e)``).
        augment: an :class:`~bratslib.data.augment.AugmentConfig`, or None for no augmentation.
        seed: seed of the shuffle and the augmentation.
        slices: ``"brain"`` (every slice that holds brain, the default), ``"all"``, or
            ``(start, stop)`` for a fixed range of slice indices per case (the report's
            common choice is ``(22, 122)``).
        n_classes: length of the one-hot axis.
        samples_per_epoch: draw only this many slices per epoch (a new random draw each
            epoch when shuffling, evenly spread slices otherwise); None: every slice.  Keeps
            a CPU epoch short without dropping cases.
        foreground_fraction: with ``samples_per_epoch`` and shuffling, at least this share
            of each epoch's slices holds tumour (nnU-Net's foreground oversampling; about a
            third of the brain slices of a BraTS case show tumour), the rest drawn from all.
        workers, use_multiprocessing, max_queue_size: passed to ``keras.utils.PyDataset``.
            Without augmentation one worker serves thousands of slices per second; with it,
            use several workers and ``use_multiprocessing=True`` (scipy holds the GIL).

    Batches: ``(x, y)`` with x float32 (B, S, S, C) in [0, 1] (augmented intensities may
    stray a little outside) and y float32 one-hot (B, S, S, n_classes); ``(x,)`` when the
    cases are unlabeled.
    """

    def __init__(
        self,
        cached_cases: Sequence[CachedCase],
        batch_size: int = 16,
        shuffle: bool = True,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        slices: Literal["brain", "all"] | tuple[int, int] = "brain",
        n_classes: int = N_CLASSES,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        samples_per_epoch: int | None = None,
        foreground_fraction: float | None = None,
    ):
        self.slices = slices
        super().__init__(cached_cases, "2d", batch_size, shuffle, augment, seed, n_classes,
                         workers, use_multiprocessing, max_queue_size, samples_per_epoch, foreground_fraction)

    def _slice_indices(self, case: CachedCase) -> np.ndarray:
        if isinstance(self.slices, str):
            if self.slices == "brain":
                return np.asarray(case.brain_slices)
            if self.slices == "all":
                return np.arange(case.n_slices)
            raise ValueError(f"slices must be 'brain', 'all' or (start, stop), got {self.slices!r}")
        start, stop = self.slices
        return np.arange(max(0, start), min(stop, case.n_slices))

    def _make_samples(self) -> np.ndarray:
        rows = [np.stack([np.full(len(z), k), z], axis=1) for k, c in enumerate(self.cases) if len(z := self._slice_indices(c))]
        return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)

    def _read(self, row):
        case = self.cases[row[0]]
        return case.images[row[1]], None if case.labels is None else case.labels[row[1]]


class TumourSliceDataset(SliceDataset):
    """Axial slices labelled *tumour* or *no tumour*, for the slice classifiers (chapter 8).

    A slice is "tumour" when its label map, at the cached resolution (S x S), holds at least
    ``min_tumour_pixels`` tumour pixels (labels 1, 2 or 4).  A threshold above 1 keeps the
    few slices that graze the tip of a tumour, where a handful of pixels are labelled and
    nothing is visible, from counting as tumour slices; 20 pixels of a 128 x 128 slice are
    about 70 mm^2 of the original 1 mm grid.

    Batches are ``(x, y)``: x float32 (B, S, S, C) and y float32 one-hot (B, 2), class 1
    tumour.  With ``foreground_fraction``, that share of each epoch's draw is tumour slices
    by this rule.  The other arguments are those of :class:`SliceDataset`.
    """

    def __init__(self, cached_cases: Sequence[CachedCase], *, min_tumour_pixels: int = 20, **kwargs):
        if min_tumour_pixels < 1:
            raise ValueError(f"min_tumour_pixels must be >= 1, got {min_tumour_pixels}")
        self.min_tumour_pixels = int(min_tumour_pixels)
        self._slice_labels: np.ndarray | None = None
        super().__init__(cached_cases, **kwargs)
        if not self.labeled:
            raise ValueError("TumourSliceDataset needs labeled cases (the class of a slice comes from its mask)")

    def slice_labels(self) -> np.ndarray:
        """The class of every sample (0 no tumour, 1 tumour), in the order of ``samples``."""
        if self._slice_labels is None:
            counts = [np.count_nonzero(self._read(row)[1]) for row in self.samples]
            self._slice_labels = (np.asarray(counts) >= self.min_tumour_pixels).astype(np.int64)
        return self._slice_labels

    def _foreground_samples(self) -> np.ndarray:
        return np.flatnonzero(self.slice_labels())

    def __getitem__(self, index: int):
        x, y = super().__getitem__(index)
        tumour = np.count_nonzero(y[..., 1:] > 0.5, axis=(1, 2, 3)) >= self.min_tumour_pixels
        return x, np.eye(2, dtype=np.float32)[tumour.astype(np.int64)]


class VolumeDataset(_CachedDataset):
    """Batches of whole volumes for the 3-D model.

    Args:
        cached_cases: cases cached in 3-D mode (``PreprocessedCache(mode="3d", size=S)``;
            S = 128 as in the report, or e.g. 64 for a CPU smoke run).
        batch_size: volumes per batch (1 fits a 128^3 U-Net on most GPUs).
        shuffle, augment, seed, n_classes, workers, use_multiprocessing, max_queue_size,
            samples_per_epoch, foreground_fraction: as for :class:`SliceDataset`.

    Batches: ``(x, y)`` with x float32 (B, S, S, S, C) and y float32 one-hot
    (B, S, S, S, n_classes); ``(x,)`` when the cases are unlabeled.
    """

    def __init__(
        self,
        cached_cases: Sequence[CachedCase],
        batch_size: int = 1,
        shuffle: bool = True,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        n_classes: int = N_CLASSES,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        samples_per_epoch: int | None = None,
        foreground_fraction: float | None = None,
    ):
        super().__init__(cached_cases, "3d", batch_size, shuffle, augment, seed, n_classes,
                         workers, use_multiprocessing, max_queue_size, samples_per_epoch, foreground_fraction)

    def _make_samples(self) -> np.ndarray:
        return np.arange(len(self.cases), dtype=np.int64)[:, None]

    def _read(self, row):
        case = self.cases[row[0]]
        return case.images, case.labels


@dataclass
class Datasets:
    """What :func:`make_datasets` returns: the three datasets, the split and the cache."""

    train: _CachedDataset
    val: _CachedDataset
    test: _CachedDataset
    split: dict[str, list[str]]
    cache: PreprocessedCache
    #: Cases left out because they could not be read (``skip_bad_cases=True``): id -> error.
    skipped: dict[str, str] = field(default_factory=dict)


def make_datasets(
    data_dir: str | os.PathLike,
    *,
    mode: Literal["2d", "3d"] = "2d",
    modalities: Sequence[str] = ("flair", "t1ce"),
    size: int = 128,
    normalize: Normalization = "volume",
    cache_dir: str | os.PathLike | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    batch_size: int | None = None,
    augment: AugmentConfig | None = None,
    split_path: str | os.PathLike | None = None,
    progress: bool = True,
    samples_per_epoch: int | None = None,
    foreground_fraction: float | None = None,
    val_samples: int | None = None,
    dataset_class: type[_CachedDataset] | None = None,
    skip_bad_cases: bool = False,
    crop: bool = False,
    **dataset_kwargs,
) -> Datasets:
    """From a BraTS folder to train / val / test datasets, split by case.

    Finds the labeled cases under ``data_dir``, splits them with
    :func:`~bratslib.data.splits.split_cases` (``fractions``, ``seed``), caches them
    (:class:`~bratslib.data.cache.PreprocessedCache`) and wraps each split in a
    :class:`SliceDataset` (``mode="2d"``, batch size 16 by default) or a
    :class:`VolumeDataset` (``mode="3d"``, batch size 1).  Only the training set is
    shuffled, augmented and (with ``samples_per_epoch`` and ``foreground_fraction``)
    subsampled each epoch; ``val_samples`` keeps that many evenly spread validation samples.  With ``split_path``, the split is written there as JSON.
    ``dataset_class`` replaces the class chosen by ``mode`` (e.g.
    :class:`TumourSliceDataset` for slice classification); other keyword arguments go to the
    dataset classes (``slices``, ``workers``, ``min_tumour_pixels``...).

    A case that cannot be read stops everything with a
    :class:`~bratslib.data.cases.BratsDataError` naming the case, the file and the problem.
    With ``skip_bad_cases=True`` such cases are left out before the split, each logged as a
    warning; ``Datasets.skipped`` and the split file (``split_path``) list them.
    ``crop=True`` crops each case to the box around its brain before resizing
    (:func:`~bratslib.data.preprocess.brain_box`).
    """
    cases = [c for c in find_cases(data_dir) if c.labeled]
    cache = PreprocessedCache(cache_dir, modalities, size, mode, normalize, crop=crop)
    cached = {c.case_id: c for c in cache.build(cases, progress=progress, skip_bad=skip_bad_cases)}
    if not cached:
        raise ValueError(f"{data_dir}: none of the {len(cases)} labeled cases could be read "
                         f"({len(cache.skipped)} skipped, see the warnings)")
    split = split_cases(cached, fractions, seed)
    cls = dataset_class or (SliceDataset if mode == "2d" else VolumeDataset)
    batch_size = batch_size or (16 if mode == "2d" else 1)
    made = {
        name: cls([cached[i] for i in split[name]], batch_size=batch_size, shuffle=name == "train",
                  augment=augment if name == "train" else None, seed=seed,
                  samples_per_epoch={"train": samples_per_epoch, "val": val_samples}.get(name),
                  foreground_fraction=foreground_fraction if name == "train" else None, **dataset_kwargs)
        for name in SPLIT_NAMES
    }
    if split_path is not None:
        save_split(split, split_path, seed=seed, fractions=list(fractions), data_dir=str(data_dir),
                   **({"skipped": dict(cache.skipped)} if cache.skipped else {}))
    return Datasets(**made, split=split, cache=cache, skipped=dict(cache.skipped))
