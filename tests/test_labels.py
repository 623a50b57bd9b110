"""BraTS labels and regions, and the mask helpers the metrics and the baseline share."""

from __future__ import annotations

import numpy as np

from bratslib.labels import LABEL_KEYS, LABEL_NAMES, LABELS, REGIONS, bounding_box, dice, region_masks


def test_every_label_has_a_name_and_a_key_and_the_regions_nest():
    assert tuple(LABEL_NAMES) == tuple(LABEL_KEYS) == LABELS == (0, 1, 2, 4)
    assert set(REGIONS["ET"]) < set(REGIONS["TC"]) < set(REGIONS["WT"]) == set(LABELS) - {0}


def test_region_masks_follow_the_regions():
    seg = np.array([[0, 1, 2, 4]], dtype=np.uint8)
    wt, tc, et = region_masks(seg)
    assert wt.tolist() == [[False, True, True, True]]
    assert tc.tolist() == [[False, True, False, True]] and et.tolist() == [[False, False, False, True]]


def test_bounding_box_is_the_tightest_crop_and_none_when_empty():
    mask = np.zeros((6, 7, 5), bool)
    mask[1, 2, 3] = mask[4, 5, 3] = True
    box = bounding_box(mask)
    assert box == (slice(1, 5), slice(2, 6), slice(3, 4))
    assert mask[box].sum() == mask.sum() and mask[box].shape == (4, 4, 1)
    assert bounding_box(np.zeros((3, 3), bool)) is None


def test_dice_of_masks():
    a = np.array([1, 1, 0, 0], bool)
    assert dice(a, np.array([1, 0, 1, 0], bool)) == 0.5
    assert dice(np.zeros(4, bool), np.zeros(4, bool)) == 1.0 and dice(a, np.zeros(4, bool)) == 0.0
