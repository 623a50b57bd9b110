"""A non-learned baseline: intensity thresholds and a little morphology.

What does a network add over simple intensity rules?  :class:`ThresholdBaseline` reads
the three BraTS regions straight off two modalities, normalised to [0, 1]
(see :func:`bratslib.data.preprocess.normalize_intensity`):

* whole tumour (WT): FLAIR brighter than ``t_flair``, then connected components of at least
  ``min_size`` voxels (only the largest, by default): oedema is bright on FLAIR;
* enhancing tumour (ET): T1ce brighter than ``t_t1ce`` inside WT: the contrast-enhancing ring;
* tumour core (TC): ET with its holes filled, axial slice by axial slice, so the dark
  non-enhancing centre inside the ring joins it.

Its two thresholds are fitted by a grid search on training cases (:meth:`ThresholdBaseline.fit`).
Pure numpy / scipy: it takes arrays and reads no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from bratslib.labels import REGIONS, bounding_box, dice, region_masks

#: Thresholds tried by :meth:`ThresholdBaseline.fit`.
DEFAULT_GRID = np.linspace(0.3, 0.95, 14)


def _check(images: np.ndarray, seg: np.ndarray | None = None) -> None:
    if images.ndim != 4 or images.shape[-1] != 2:
        raise ValueError(f"images must have shape (x, y, z, 2), channels (FLAIR, T1ce); got {images.shape}")
    if seg is not None and seg.shape != images.shape[:3]:
        raise ValueError(f"segmentation shape {seg.shape} does not match images shape {images.shape}")


@dataclass
class ThresholdBaseline:
    """Threshold segmentation of images (x, y, z, 2), channels (FLAIR, T1ce) in [0, 1]."""

    t_flair: float = 0.6
    t_t1ce: float = 0.7
    min_size: int = 100
    largest_only: bool = True
    #: Mean training Dice of each region of :data:`bratslib.labels.REGIONS`, filled in by :meth:`fit`.
    train_scores: dict[str, float] = field(default_factory=dict, compare=False)

    def _whole_tumour(self, flair: np.ndarray) -> np.ndarray:
        components, n = ndimage.label(flair > self.t_flair)
        sizes = np.bincount(components.ravel(), minlength=n + 1)[1:]
        keep = sizes >= self.min_size
        if self.largest_only and n:
            keep &= np.arange(n) == sizes.argmax()
        return np.concatenate([[False], keep])[components]

    def _core(self, t1ce: np.ndarray, wt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        et = wt & (t1ce > self.t_t1ce)
        tc = np.zeros_like(et)
        # holes filled axial slice by slice, only where ET is: within its bounding box (a hole
        # cannot reach past it) and in the slices that hold it; the same as filling everywhere
        box = bounding_box(et)
        if box is not None:
            xs, ys, zs = box
            for k in range(zs.start, zs.stop):
                if et[xs, ys, k].any():
                    tc[xs, ys, k] = ndimage.binary_fill_holes(et[xs, ys, k])
        return tc, et

    def regions(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nested (WT, TC, ET) boolean masks (x, y, z); WT includes the filled core."""
        images = np.asarray(images)
        _check(images)
        wt = self._whole_tumour(images[..., 0])
        tc, et = self._core(images[..., 1], wt)
        return wt | tc, tc, et

    def predict(self, images: np.ndarray) -> np.ndarray:
        """BraTS labels (x, y, z) uint8: 4 in ET, 1 in TC less ET, 2 in WT less TC, else 0."""
        wt, tc, et = self.regions(images)
        return np.select([et, tc, wt], [4, 1, 2], 0).astype(np.uint8)

    def score(self, images: np.ndarray, seg: np.ndarray) -> dict[str, float]:
        """Dice of each region (WT, TC, ET) of the prediction for one case."""
        _check(np.asarray(images), np.asarray(seg))
        pairs = zip(self.regions(images), region_masks(seg))
        return {name: dice(p, t) for name, (p, t) in zip(REGIONS, pairs)}

    @classmethod
    def fit(
        cls,
        images_list: Sequence[np.ndarray],
        segs_list: Sequence[np.ndarray],
        grid: Sequence[float] = DEFAULT_GRID,
        **options,
    ) -> ThresholdBaseline:
        """Grid-search the thresholds on training cases; ``options`` are the other fields.

        First ``t_flair``, maximising the mean WT Dice, then, with WT fixed, ``t_t1ce``,
        maximising the mean of the TC and ET Dice.
        """
        images_list = [np.asarray(images) for images in images_list]
        segs_list = [np.asarray(seg) for seg in segs_list]
        if not images_list or len(images_list) != len(segs_list):
            raise ValueError(f"need as many segmentations as images (>= 1); got {len(images_list)} and {len(segs_list)}")
        for images, seg in zip(images_list, segs_list):
            _check(images, seg)
        # Outside the box of the images' non-zero voxels and the labels nothing is predicted
        # or labeled: cropping to it changes no Dice and saves half the work of the search.
        crops = [bounding_box(np.any(x != 0, axis=-1) | (seg > 0)) or (slice(0, 0),) * 3
                 for x, seg in zip(images_list, segs_list)]
        images_list = [x[box] for x, box in zip(images_list, crops)]
        segs_list = [seg[box] for seg, box in zip(segs_list, crops)]
        truths = [region_masks(seg) for seg in segs_list]
        model = cls(**options)

        def wt_dice(t: float) -> float:
            model.t_flair = t
            return np.mean([dice(model._whole_tumour(x[..., 0]), wt) for x, (wt, _, _) in zip(images_list, truths)])

        model.t_flair = float(max(grid, key=wt_dice))
        wts = [model._whole_tumour(x[..., 0]) for x in images_list]

        def core_dice(t: float) -> float:
            model.t_t1ce = t
            cores = [model._core(x[..., 1], wt) for x, wt in zip(images_list, wts)]
            return np.mean([dice(tc, true[1]) + dice(et, true[2]) for (tc, et), true in zip(cores, truths)]) / 2

        model.t_t1ce = float(max(grid, key=core_dice))
        scores = [model.score(x, seg) for x, seg in zip(images_list, segs_list)]
        model.train_scores = {k: float(np.mean([s[k] for s in scores])) for k in REGIONS}
        return model

    def __repr__(self) -> str:
        scores = ", ".join(f"{k}={v:.3f}" for k, v in self.train_scores.items()) or "not fitted"
        return (
            f"ThresholdBaseline(t_flair={self.t_flair:.3f}, t_t1ce={self.t_t1ce:.3f}, min_size={self.min_size}, "
            f"largest_only={self.largest_only}; training Dice: {scores})"
        )
