"""Property-based tests (hypothesis) of the metrics and the preprocessing."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bratslib.data.preprocess import resize_back, resize_slices, resize_volume, to_brats_labels, to_training_labels
from bratslib.metrics import case_scores, dice, iou

BRATS = (0, 1, 2, 4)
masks = st.integers(1, 6).flatmap(lambda n: st.tuples(arrays(bool, (n, n, 3)), arrays(bool, (n, n, 3))))
label_maps = st.tuples(st.integers(2, 12), st.integers(2, 12), st.integers(1, 6)).flatmap(
    lambda shape: arrays(np.uint8, shape, elements=st.sampled_from(BRATS)))


@given(masks)
def test_dice_and_iou_are_symmetric_bounded_and_related(pair):
    a, b = pair
    d, j = dice(a, b), iou(a, b)
    assert d == dice(b, a) and j == iou(b, a)
    assert 0.0 <= j <= d <= 1.0
    assert np.isclose(d, 2 * j / (1 + j))  # Dice = 2J / (1 + J), empty masks included (1 and 1)
    assert dice(a, a) == 1.0


@given(label_maps)
def test_label_mapping_is_reversible(seg):
    training = to_training_labels(seg)
    assert set(np.unique(training)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(to_brats_labels(training), seg)


@settings(deadline=None, max_examples=40)
@given(label_maps, st.integers(2, 16))
def test_resizing_labels_and_back_keeps_them_in_the_label_set(seg, size):
    for small in (resize_slices(seg, size, order=0), resize_volume(seg, size, order=0)):
        assert set(np.unique(small)) <= set(BRATS)
        back = resize_back(small, seg.shape, order=0)
        assert back.shape == seg.shape and set(np.unique(back)) <= set(BRATS)


@settings(deadline=None, max_examples=30)
@given(label_maps)
def test_a_case_evaluated_against_itself_is_perfect(seg):
    m = case_scores(seg, seg)
    assert m["accuracy"] == 1.0 and m["mean_iou"] == 1.0
    assert all(m[f"dice_{r}"] == 1.0 and m[f"hd95_{r}"] == 0.0 for r in ("WT", "TC", "ET"))
