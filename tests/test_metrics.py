"""Tests of bratslib.metrics against hand counts and independent numpy computations."""

from __future__ import annotations

import itertools
import math
import time

import keras
import numpy as np
import pytest

from bratslib import metrics as M
from bratslib.labels import REGIONS
from bratslib.losses import DiceFocalLoss

# ================================================================== Keras training metrics

N = 4
NAMES = ["accuracy", "mean_iou", "dice_background", "dice_necrotic", "dice_oedema",
         "dice_enhancing", "dice_tumour", "precision", "sensitivity", "specificity"]


def _batches(n_batches=3, shape=(2, 5, 5), seed=0):
    """Random one-hot truth and softmax predictions; class 3 is never true in batch 0."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        labels = rng.integers(0, N - 1 if b == 0 else N, shape)
        logits = rng.normal(size=shape + (N,))
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        out.append((np.eye(N, dtype=np.float32)[labels], p.astype(np.float32)))
    return out


def _numpy_scores(batches, weights=None):
    """Per-class (dice, precision, sensitivity, specificity) counted voxel by voxel in numpy."""
    t = np.concatenate([y.argmax(-1).ravel() for y, _ in batches])
    p = np.concatenate([q.argmax(-1).ravel() for _, q in batches])
    w = np.ones(t.size) if weights is None else np.concatenate(
        [np.broadcast_to(np.reshape(wb, (-1,) + (1,) * (y.ndim - 2)), y.shape[:-1]).ravel()
         for wb, (y, _) in zip(weights, batches)])
    scores = {}
    for c in range(N):
        tp = w[(t == c) & (p == c)].sum()
        fp = w[(t != c) & (p == c)].sum()
        fn = w[(t == c) & (p != c)].sum()
        tn = w[(t != c) & (p != c)].sum()
        perfect = 1.0 if fp == 0 and fn == 0 else 0.0
        scores[c] = [2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else perfect,
                     tp / (tp + fp) if tp + fp else perfect,
                     tp / (tp + fn) if tp + fn else perfect,
                     tn / (tn + fp) if tn + fp else perfect]
    return scores


def _result(metric) -> float:
    return float(keras.ops.convert_to_numpy(metric.result()))


@pytest.mark.parametrize("k, cls", list(enumerate([M.DiceScore, M.ClassPrecision, M.Sensitivity, M.Specificity])))
def test_confusion_metrics_accumulate_like_numpy(k, cls):
    batches = _batches()
    expected = _numpy_scores(batches)
    for class_id in (None, 0, 1, 3):
        metric = cls(class_id=class_id, n_classes=N)
        for y, p in batches:
            metric.update_state(y, p)
        want = (np.mean([expected[c][k] for c in (1, 2, 3)]) if class_id is None
                else expected[class_id][k])
        assert _result(metric) == pytest.approx(want, abs=1e-6), (cls.__name__, class_id)


def test_confusion_metric_matrix_and_sample_weight():
    batches = _batches(2, seed=4)
    weights = [np.array([1.0, 0.0]), np.array([0.5, 2.0])]
    metric = M.DiceScore(class_id=2, n_classes=N)
    for (y, p), w in zip(batches, weights):
        metric.update_state(y, p, sample_weight=w)
    assert _result(metric) == pytest.approx(_numpy_scores(batches, weights)[2][0], abs=1e-6)
    # unweighted: rows true class, columns predicted class, total = number of voxels
    metric.reset_state()
    for y, p in batches:
        metric.update_state(y, p)
    cm = metric.confusion.numpy()
    t = np.concatenate([y.argmax(-1).ravel() for y, _ in batches])
    q = np.concatenate([p.argmax(-1).ravel() for _, p in batches])
    np.testing.assert_array_equal(cm, [[np.sum((t == i) & (q == j)) for j in range(N)] for i in range(N)])


def test_confusion_metric_empty_class_conventions():
    one_hot = np.eye(3, dtype=np.float32)
    # truth [0, 1, 1, 0], prediction [0, 1, 0, 2]: class 2 predicted once, never true
    y, p = one_hot[[[0, 1, 1, 0]]], one_hot[[[0, 1, 0, 2]]]

    def value(cls, c, y=y, p=p):
        metric = cls(class_id=c, n_classes=3)
        metric.update_state(y, p)
        return _result(metric)

    assert value(M.DiceScore, 2) == 0.0      # absent from truth, predicted: 0
    assert value(M.Sensitivity, 2) == 0.0    # TP + FN = 0 but a false positive: 0
    assert value(M.ClassPrecision, 2) == 0.0      # TP = 0, FP = 1
    assert value(M.Specificity, 2) == pytest.approx(3 / 4)
    # class 2 absent from both: every ratio 1
    p_clean = one_hot[[[0, 1, 0, 0]]]
    for cls in (M.DiceScore, M.ClassPrecision, M.Sensitivity):
        assert value(cls, 2, p=p_clean) == 1.0
    # class 1 true twice, never predicted: precision 0 (not 1), sensitivity 0
    p_none = one_hot[[[0, 0, 0, 0]]]
    assert value(M.ClassPrecision, 1, p=p_none) == 0.0
    assert value(M.Sensitivity, 1, p=p_none) == 0.0
    # class 0 fills truth and prediction: specificity 0/0 -> 1; prediction not full -> 0
    full = one_hot[[[0, 0, 0, 0]]]
    assert value(M.Specificity, 0, y=full, p=full) == 1.0
    assert value(M.Specificity, 0, y=full, p=p_clean) == 0.0
    # nothing seen yet (or after reset_state): no false positive, no false negative -> 1
    metric = M.DiceScore(class_id=1, n_classes=3)
    assert _result(metric) == 1.0
    metric.update_state(y, one_hot[[[0, 0, 0, 0]]])
    assert _result(metric) == 0.0
    metric.reset_state()
    assert _result(metric) == 1.0


def test_confusion_metric_checks_arguments_and_serialises():
    with pytest.raises(ValueError, match="class_id"):
        M.DiceScore(class_id=4, n_classes=4)
    metric = M.Sensitivity(class_id=2, n_classes=5)
    assert metric.name == "sensitivity_2"
    with pytest.raises(ValueError, match="5 classes"):
        metric.update_state(np.zeros((1, 2, 4)), np.zeros((1, 2, 4)))
    for m in (metric, M.DiceScore(None, 4, name="dice_tumour")):
        copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
        assert type(copy) is type(m) and copy.get_config() == m.get_config()


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_a_model_saved_when_class_precision_was_called_precision_still_loads(tmp_path):
    import json
    import zipfile

    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(N, 1, activation="softmax")])
    model.compile(optimizer="adam", loss=DiceFocalLoss(), metrics=M.training_metrics())
    model.save(tmp_path / "new.keras")
    # the same file as bratslib wrote it before the rename: the metric's registered name was "bratslib>Precision"
    with zipfile.ZipFile(tmp_path / "new.keras") as new, zipfile.ZipFile(tmp_path / "old.keras", "w") as old:
        for item in new.infolist():
            data = new.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                (metric,) = [m for m in config["compile_config"]["metrics"] if m["config"]["name"] == "precision"]
                assert metric["registered_name"] == "bratslib>ClassPrecision"
                metric.update(class_name="Precision", registered_name="bratslib>Precision")
                data = json.dumps(config).encode()
            old.writestr(item, data)
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    x = np.random.default_rng(0).random((2, 4, 4, 2), dtype=np.float32)
    y = np.eye(N, dtype=np.float32)[np.random.default_rng(1).integers(0, N, (2, 4, 4))]
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(logs) == sorted(["loss", *NAMES])
    assert logs["precision"] == pytest.approx(model.evaluate(x, y, verbose=0, return_dict=True)["precision"])


def test_training_metrics_names_and_values():
    metrics = M.training_metrics()
    assert [m.name for m in metrics] == NAMES
    batches = _batches(seed=5)
    for m in metrics:
        for y, p in batches:
            m.update_state(y, p)
    got = {m.name: _result(m) for m in metrics}
    scores = _numpy_scores(batches)
    t = np.concatenate([y.argmax(-1).ravel() for y, _ in batches])
    q = np.concatenate([p.argmax(-1).ravel() for _, p in batches])
    ious = [np.sum((t == c) & (q == c)) / np.sum((t == c) | (q == c)) for c in range(N)]
    want = {"accuracy": np.mean(t == q), "mean_iou": np.mean(ious),
            **{f"dice_{name}": scores[c][0]
               for c, name in enumerate(("background", "necrotic", "oedema", "enhancing"))},
            "dice_tumour": np.mean([scores[c][0] for c in (1, 2, 3)]),
            **{name: np.mean([scores[c][k] for c in (1, 2, 3)])
               for k, name in ((1, "precision"), (2, "sensitivity"), (3, "specificity"))}}
    assert got == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="class names"):
        M.training_metrics(n_classes=3)


def test_training_metrics_in_model_fit_and_evaluate():
    """Graph mode (and XLA, Keras' default on TensorFlow) inside fit, evaluate matches numpy."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 12, 12, 2)).astype(np.float32)
    y = np.eye(N, dtype=np.float32)[rng.integers(0, N, (8, 12, 12))]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 2)),
                              keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                              keras.layers.Conv2D(N, 1, activation="softmax")])
    model.compile(optimizer="adam", loss=DiceFocalLoss(), metrics=M.training_metrics())
    history = model.fit(x, y, batch_size=4, epochs=1, validation_data=(x, y), verbose=0)
    assert "val_dice_tumour" in history.history
    result = model.evaluate(x, y, batch_size=3, return_dict=True, verbose=0)  # 3 uneven batches
    assert set(result) == {"loss", *NAMES}
    pred = model.predict(x, verbose=0)
    scores = _numpy_scores([(y, pred)])
    assert result["dice_tumour"] == pytest.approx(np.mean([scores[c][0] for c in (1, 2, 3)]), abs=1e-5)
    assert result["dice_oedema"] == pytest.approx(scores[2][0], abs=1e-5)
    assert result["specificity"] == pytest.approx(np.mean([scores[c][3] for c in (1, 2, 3)]), abs=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(y.argmax(-1) == pred.argmax(-1)), abs=1e-5)


def test_training_metrics_compile_with_xla():
    """Keras' jit_compile="auto" means XLA on a GPU: the updates must compile (static shapes)."""
    import tensorflow as tf

    batches = _batches(seed=6)
    eager, jitted = M.training_metrics(), M.training_metrics()

    @tf.function(jit_compile=True)
    def update(y, p):
        for m in jitted:
            m.update_state(y, p)

    for y, p in batches:
        update(tf.constant(y), tf.constant(p))
        for m in eager:
            m.update_state(y, p)
    assert [_result(m) for m in jitted] == pytest.approx([_result(m) for m in eager], abs=1e-6)


# ================================================================== binary masks, HD95


def _surface_brute(mask):
    """Voxels of mask with a face neighbour outside it (or off the array), by shifting."""
    padded = np.pad(mask, 1)
    inner = np.ones_like(mask)
    for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
        inner &= np.roll(padded, step, axis)[tuple(slice(1, -1) for _ in range(mask.ndim))]
    return mask & ~inner


def _hd95_brute(pred, truth, spacing):
    """All pairwise distances between surface voxels, both directions pooled, 95th percentile."""
    a = np.argwhere(_surface_brute(pred)) * np.asarray(spacing)
    b = np.argwhere(_surface_brute(truth)) * np.asarray(spacing)
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float(np.percentile(np.concatenate([d.min(1), d.min(0)]), 95))


def _cube(shape, lo, size):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + size) for s in lo)] = True
    return mask


def _blob(shape, centre, radii, seed):
    """An irregular blob: an ellipsoid with a noisy edge."""
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    r = np.sqrt((((grid - centre) / radii) ** 2).sum(-1))
    return r < 1 + 0.25 * np.random.default_rng(seed).standard_normal(shape)


def test_identical_masks():
    mask = _blob((20, 20, 12), (10, 9, 6), (6, 5, 4), seed=0)
    assert M.dice(mask, mask) == M.iou(mask, mask) == 1.0
    assert M.precision(mask, mask) == M.sensitivity(mask, mask) == M.specificity(mask, mask) == 1.0
    assert M.hausdorff95(mask, mask, (1.0, 1.0, 2.5)) == 0.0


def test_disjoint_single_voxels_and_cubes():
    a, b = np.zeros((4, 4, 8), bool), np.zeros((4, 4, 8), bool)
    a[1, 1, 1], b[1, 1, 4] = True, True
    assert M.dice(a, b) == M.iou(a, b) == M.precision(a, b) == M.sensitivity(a, b) == 0.0
    assert M.hausdorff95(a, b, (1.0, 1.0, 2.5)) == pytest.approx(3 * 2.5)  # 3 voxels of 2.5 mm
    assert M.hausdorff95(a, b, (0.5, 2.0, 1.0)) == pytest.approx(3.0)
    # 3x3x3 cubes at k = 0..2 and k = 5..7: every voxel but the centre is on the surface
    # (26 each).  A surface voxel at k has its nearest neighbour straight across at k' = 5
    # (or 2 for the other cube): layers of 9, 8, 9 voxels at 5, 3, 2 voxels, i.e.
    # 12.5, 7.5, 5.0 mm.  Pooled 52 distances: 18 x 5.0, 16 x 7.5, 18 x 12.5; the 95th
    # percentile sits at rank 0.95 * 51 = 48.45, among the 12.5s.
    a, b = _cube((5, 5, 10), (1, 1, 0), 3), _cube((5, 5, 10), (1, 1, 5), 3)
    assert M.hausdorff95(a, b, (1.0, 1.0, 2.5)) == pytest.approx(12.5)
    assert M.dice(a, b) == 0.0


def test_shifted_cube_against_brute_force():
    spacing = (1.0, 1.0, 2.5)
    truth = _cube((12, 12, 14), (3, 3, 3), 4)
    pred = _cube((12, 12, 14), (3, 3, 6), 4)  # shifted by 3 voxels = 7.5 mm along axis 2
    hd = M.hausdorff95(pred, truth, spacing)
    assert hd == pytest.approx(_hd95_brute(pred, truth, spacing))
    assert hd == pytest.approx(7.5)  # the far faces are 3 voxels apart, 7.5 mm
    assert M.dice(pred, truth) == pytest.approx(2 * 16 / (64 + 64))  # one 4x4x1 slab overlaps


@pytest.mark.parametrize("seed", range(3))
def test_blobs_against_brute_force_and_cropping(seed):
    shape, spacing = (18, 16, 10), (1.0, 1.5, 2.5)
    truth = _blob(shape, (9, 8, 5), (6, 5, 4), seed)
    pred = _blob(shape, (11, 7, 3), (7, 4, 5), seed + 10)  # runs off the array edge
    hd = M.hausdorff95(pred, truth, spacing)
    assert hd == pytest.approx(_hd95_brute(pred, truth, spacing))
    assert hd == M.hausdorff95(pred, truth, spacing, crop=False)
    # small masks far from each other in a bigger array: the crop is a real crop
    small_p = np.zeros((40, 40, 30), bool)
    small_t = np.zeros((40, 40, 30), bool)
    small_p[2:8, 3:9, 0:5] = pred[:6, :6, :5]
    small_t[20:26, 30:36, 20:25] = truth[6:12, 6:12, 3:8]
    assert M.hausdorff95(small_p, small_t, spacing) == M.hausdorff95(small_p, small_t, spacing, crop=False)


@pytest.mark.parametrize("pred_empty, truth_empty", list(itertools.product((True, False), repeat=2)))
def test_empty_mask_conventions(pred_empty, truth_empty):
    mask = _cube((6, 6, 6), (1, 1, 1), 2)
    empty = np.zeros_like(mask)
    pred, truth = (empty if pred_empty else mask), (empty if truth_empty else mask)
    same = pred_empty == truth_empty
    assert M.dice(pred, truth) == M.iou(pred, truth) == (1.0 if same else 0.0)
    assert M.precision(pred, truth) == M.sensitivity(pred, truth) == (1.0 if same else 0.0)
    # specificity is TN / (TN + FP) over all 216 voxels, never 0/0 here
    assert M.specificity(pred, truth) == (1.0 if pred_empty or not truth_empty else 208 / 216)
    want_hd = 0.0 if same else M.HD95_EMPTY_MM
    assert M.hausdorff95(pred, truth) == want_hd


def test_hd95_empty_value_is_the_volume_diagonal():
    assert M.HD95_EMPTY_MM == pytest.approx(math.sqrt(240**2 + 240**2 + 155**2), abs=0.005)


def test_binary_functions_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        M.dice(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 3), bool))
    with pytest.raises(ValueError, match="shape"):
        M.hausdorff95(np.ones((2, 2, 2), bool), np.ones((2, 2, 3), bool))
    with pytest.raises(ValueError, match="spacing"):
        M.hausdorff95(np.ones((2, 2, 2), bool), np.ones((2, 2, 2), bool), spacing=(1.0, 1.0))


# ================================================================== whole cases

#                 voxel   0  1  2  3  4  5  6  7  8  9
TRUE_LINE = np.array([0, 0, 1, 1, 2, 2, 2, 4, 4, 0]).reshape(1, 10, 1)
PRED_LINE = np.array([0, 1, 1, 2, 2, 2, 0, 4, 2, 0]).reshape(1, 10, 1)
# Hand counts (TP, FP, FN, TN):
#   background truth {0,1,9} pred {0,6,9}:   2, 1, 1, 6
#   necrotic   truth {2,3}   pred {1,2}:     1, 1, 1, 7
#   oedema     truth {4,5,6} pred {3,4,5,8}: 2, 2, 1, 5
#   enhancing  truth {7,8}   pred {7}:       1, 0, 1, 8
#   WT truth {2..8} pred {1,2,3,4,5,7,8}:    6, 1, 1, 2
#   TC truth {2,3,7,8} pred {1,2,7}:         2, 1, 2, 5
#   ET = enhancing
# correct voxels 0, 2, 4, 5, 7, 9: accuracy 0.6.
# With a line one voxel thick every voxel is surface.  Spacing 2 mm along the line:
#   ET: pred->truth [0], truth->pred [0, 2]: percentile 95 of [0, 0, 2] = 0.9 * 2 = 1.8
#   WT: 12 zeros and two 2s (voxel 1 and voxel 6): rank 0.95 * 13 = 12.35 -> 2.0
#   TC: [2, 0, 0] and [0, 2, 0, 2]: four 0s, three 2s: rank 5.7 -> 2.0
EXPECTED_LINE = {
    "accuracy": 0.6, "mean_iou": (2 / 4 + 1 / 3 + 2 / 5 + 1 / 2) / 4,
    "dice_background": 4 / 6, "iou_background": 2 / 4, "precision_background": 2 / 3,
    "sensitivity_background": 2 / 3, "specificity_background": 6 / 7,
    "dice_necrotic": 2 / 4, "iou_necrotic": 1 / 3, "precision_necrotic": 1 / 2,
    "sensitivity_necrotic": 1 / 2, "specificity_necrotic": 7 / 8,
    "dice_oedema": 4 / 7, "iou_oedema": 2 / 5, "precision_oedema": 2 / 4,
    "sensitivity_oedema": 2 / 3, "specificity_oedema": 5 / 7,
    "dice_enhancing": 2 / 3, "iou_enhancing": 1 / 2, "precision_enhancing": 1.0,
    "sensitivity_enhancing": 1 / 2, "specificity_enhancing": 1.0,
    # volume_R_ml: the truth's voxels of the region times 2 mm^3 (spacing 1 x 2 x 1), in ml
    "dice_WT": 12 / 14, "precision_WT": 6 / 7, "sensitivity_WT": 6 / 7, "specificity_WT": 2 / 3,
    "hd95_WT": 2.0, "volume_WT_ml": 7 * 2 / 1000,
    "dice_TC": 4 / 7, "precision_TC": 2 / 3, "sensitivity_TC": 2 / 4, "specificity_TC": 5 / 6,
    "hd95_TC": 2.0, "volume_TC_ml": 4 * 2 / 1000,
    "dice_ET": 2 / 3, "precision_ET": 1.0, "sensitivity_ET": 1 / 2, "specificity_ET": 1.0,
    "hd95_ET": 1.8, "volume_ET_ml": 2 * 2 / 1000,
}


def test_case_scores_by_hand():
    result = M.case_scores(PRED_LINE.astype(np.int16), TRUE_LINE.astype(np.uint8), spacing=(1.0, 2.0, 1.0))
    assert list(result) == list(EXPECTED_LINE)
    assert result == pytest.approx(EXPECTED_LINE, abs=1e-12)
    assert all(type(v) is float for v in result.values())


def test_region_split_separates_cases_without_the_region():
    with_et = M.case_scores(PRED_LINE, TRUE_LINE)  # ET present, Dice 2/3
    no_et = TRUE_LINE.copy()
    no_et[no_et == 4] = 1
    found = M.case_scores(no_et, no_et)  # no ET anywhere: Dice 1 by the BraTS rule
    false_alarm = M.case_scores(TRUE_LINE, no_et)  # ET predicted where there is none: Dice 0
    split = M.region_split([with_et, found, false_alarm], "ET")
    assert split == {"n_present": 1, "dice_present": pytest.approx(2 / 3), "n_absent": 2, "absent_found": 1}
    assert np.isnan(M.region_split([found], "ET")["dice_present"])


def test_case_scores_mean_iou_matches_keras():
    # enhancing (4) absent from both: Keras leaves it out of the mean, so does case_scores
    truth, pred = TRUE_LINE.copy(), PRED_LINE.copy()
    truth[truth == 4], pred[pred == 4] = 2, 2
    keras_iou = keras.metrics.MeanIoU(num_classes=5)  # class 3 never occurs either
    keras_iou.update_state(truth.ravel(), pred.ravel())
    result = M.case_scores(pred, truth)
    assert result["mean_iou"] == pytest.approx(float(keras_iou.result()), abs=1e-6)
    assert result["iou_enhancing"] == 1.0 and result["dice_ET"] == 1.0 and result["hd95_ET"] == 0.0


@pytest.mark.parametrize("label, regions", [(1, {"WT", "TC"}), (2, {"WT"}), (4, {"WT", "TC", "ET"})])
def test_region_definitions(label, regions):
    truth = np.zeros((5, 5, 5), np.uint8)
    truth[2, 2, 2] = label
    result = M.case_scores(np.zeros_like(truth), truth)  # the prediction misses it
    for region in REGIONS:
        inside = region in regions
        assert result[f"dice_{region}"] == (0.0 if inside else 1.0), region
        assert result[f"sensitivity_{region}"] == (0.0 if inside else 1.0), region
        assert result[f"hd95_{region}"] == (M.HD95_EMPTY_MM if inside else 0.0), region
    result = M.case_scores(truth, truth)
    assert all(result[f"dice_{r}"] == 1.0 for r in REGIONS)


def test_case_scores_rejects_bad_input():
    good = np.zeros((3, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        M.case_scores(good, np.zeros((3, 3, 4), np.uint8))
    for bad_label in (3, 5, -1):
        bad = good.astype(np.int16)
        bad[1, 1, 1] = bad_label
        with pytest.raises(ValueError, match=rf"pred_labels holds labels \[{bad_label}\]"):
            M.case_scores(bad, good)
        with pytest.raises(ValueError, match="true_labels"):
            M.case_scores(good, bad)
    with pytest.raises(ValueError, match="dtype"):
        M.case_scores(good.astype(bool), good)


def test_case_scores_full_size_volume():
    """One realistic 240 x 240 x 155 case: nested blob tumour, a prediction shifted by 2 voxels."""
    shape = (240, 240, 155)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    d = np.sqrt(((grid[0] - 130) / 30.0) ** 2 + ((grid[1] - 100) / 25.0) ** 2 + ((grid[2] - 70) / 20.0) ** 2)
    truth = np.select([d <= 0.35, d <= 0.6, d <= 1.0], [1, 4, 2], 0).astype(np.uint8)
    pred = np.roll(truth, 2, axis=0)
    pred[(d > 0.55) & (d <= 0.6)] = 2  # and a thinner enhancing ring
    start = time.perf_counter()
    result = M.case_scores(pred, truth)
    print(f"case_scores on {shape}: {time.perf_counter() - start:.2f} s")
    assert set(result) == set(EXPECTED_LINE)
    assert 0.8 < result["dice_WT"] < 1.0 and 0.0 < result["dice_ET"] < 1.0
    assert 0.0 < result["hd95_WT"] <= 2.0  # a 2-voxel shift moves no surface voxel further
    assert result["specificity_WT"] > 0.99 and result["accuracy"] > 0.99


# ================================================================== summarise, PooledDice


def test_summarise_is_nan_aware():
    cases = [{"a": 1.0, "b": float("nan"), "c": float("nan")}, {"a": 3.0, "b": 2.0}, {"a": 5.0}]
    summary = M.summarise(cases)
    assert list(summary) == ["a", "b", "c"]
    assert summary["a"] == pytest.approx({"mean": 3.0, "std": math.sqrt(8 / 3), "median": 3.0,
                                          "q25": 2.0, "q75": 4.0, "min": 1.0, "max": 5.0, "n": 3})
    assert summary["b"] == {"mean": 2.0, "std": 0.0, "median": 2.0, "q25": 2.0, "q75": 2.0,
                            "min": 2.0, "max": 2.0, "n": 1}
    assert summary["c"]["n"] == 0 and math.isnan(summary["c"]["mean"])
    assert M.summarise([]) == {}


def test_pooled_dice_equals_accuracy_for_hard_predictions():
    rng = np.random.default_rng(0)
    pooled = M.PooledDice()
    assert math.isnan(pooled.result())
    t, p = rng.integers(0, 4, (2, 6, 6, 3)), rng.integers(0, 4, (2, 6, 6, 3))
    for i in range(2):  # two updates accumulate
        pooled.update(np.eye(4)[t[i]], np.eye(4)[p[i]])
    assert pooled.result() == pytest.approx(np.mean(t == p))
    # soft: truth classes (1, 0), probabilities (.2, .8) and (.6, .4):
    # sum(y * p) = .8 + .6 = 1.4, sum(y) + sum(p) = 2 + 2 -> 2 * 1.4 / 4 = 0.7
    pooled.reset()
    pooled.update(np.array([[0, 1], [1, 0]]), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert pooled.result() == pytest.approx(0.7)
    with pytest.raises(ValueError, match="shape"):
        pooled.update(np.zeros((2, 3)), np.zeros((2, 4)))


# --------------------------------------------------------------------------------------
# classification_metrics (tumour / no tumour slices)
# --------------------------------------------------------------------------------------


def test_classification_metrics_by_hand():
    from bratslib.metrics import classification_metrics

    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.4, 0.6, 0.1, 0.2, 0.3, 0.7])
    m = classification_metrics(y, s)
    # predicted positive: 0.9, 0.8, 0.6, 0.7 -> TP 3, FP 1, FN 1, TN 3
    assert m["confusion"] == [[3, 1], [1, 3]] and m["n"] == 8 and m["positives"] == 4
    assert m["accuracy"] == 0.75 and m["precision"] == 0.75 and m["recall"] == 0.75
    assert m["f1"] == 0.75 and m["specificity"] == 0.75
    # pairs (positive, negative) ranked correctly: 0.9, 0.8, 0.7 beat all 4; 0.4 beats 0.1, 0.2, 0.3
    assert m["roc_auc"] == pytest.approx((4 + 4 + 4 + 3) / 16)


@pytest.mark.parametrize("seed", range(3))
def test_classification_auc_matches_scikit_learn(seed):
    from sklearn.metrics import f1_score, roc_auc_score

    from bratslib.metrics import classification_metrics

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1), 2)  # rounded: ties occur
    m = classification_metrics(y, s)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["f1"] == pytest.approx(f1_score(y, s >= 0.5))


def test_classification_metrics_one_class_and_bad_input():
    from bratslib.metrics import classification_metrics

    m = classification_metrics(np.zeros(4, int), np.array([0.1, 0.2, 0.3, 0.9]))
    assert np.isnan(m["roc_auc"]) and m["specificity"] == 0.75 and m["recall"] == 0.0
    with pytest.raises(ValueError, match="classes 0 and 1"):
        classification_metrics(np.array([0, 2]), np.array([0.1, 0.2]))
