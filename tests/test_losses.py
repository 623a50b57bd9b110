"""Tests of bratslib.losses: values worked out by hand, gradients, training and saving."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from bratslib.losses import DiceFocalLoss, DiceLoss, FocalLoss

# One sample, 2x2 voxels, 2 classes (0 background, 1 tumour), channels last: (1, 2, 2, 2).
#   voxel      a          b          c          d
#   truth      1          0          1          1
#   p          (.2, .8)   (.6, .4)   (.5, .5)   (.9, .1)
Y = np.array([[[[0, 1], [1, 0]], [[0, 1], [0, 1]]]], np.float32)
P = np.array([[[[0.2, 0.8], [0.6, 0.4]], [[0.5, 0.5], [0.9, 0.1]]]], np.float32)
# class 1: sum(y*p) = .8 + .5 + .1 = 1.4, sum(y) = 3, sum(p) = .8 + .4 + .5 + .1 = 1.8
# class 0: sum(y*p) = .6,               sum(y) = 1, sum(p) = .2 + .6 + .5 + .9 = 2.2
DICE1_SMOOTH1 = (2 * 1.4 + 1) / (3 + 1.8 + 1)  # 3.8 / 5.8 = 0.655172
DICE0_SMOOTH1 = (2 * 0.6 + 1) / (1 + 2.2 + 1)  # 2.2 / 4.2 = 0.523810
# focal, gamma 2: -(1 - p_t)^2 log p_t with p_t the probability of the true class
#   a: .04 * -log .8 = 0.008926   b: .16 * -log .6 = 0.081732
#   c: .25 * -log .5 = 0.173287   d: .81 * -log .1 = 1.865094
FOCAL_PER_VOXEL = np.array([[[0.04 * -math.log(0.8), 0.16 * -math.log(0.6)],
                             [0.25 * -math.log(0.5), 0.81 * -math.log(0.1)]]])
FOCAL_MEAN = 0.532260  # (0.008926 + 0.081732 + 0.173287 + 1.865094) / 4

TRUE_CLASS = np.array([[[1, 0], [1, 1]]])


def _value(loss, y=Y, p=P) -> float:
    return float(keras.ops.convert_to_numpy(loss(y, p)))


def _random_batch(shape=(2, 6, 6, 4), seed=0):
    rng = np.random.default_rng(seed)
    y = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])]
    logits = rng.normal(size=shape)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return y, p.astype(np.float32)


# ------------------------------------------------------------------ Dice


def test_dice_loss_by_hand():
    assert _value(DiceLoss()) == pytest.approx(1 - DICE1_SMOOTH1, abs=1e-6)  # 0.344828
    assert _value(DiceLoss(smooth=0.0)) == pytest.approx(1 - 2.8 / 4.8, abs=1e-6)
    both = 1 - (DICE0_SMOOTH1 + DICE1_SMOOTH1) / 2  # 0.410509
    assert _value(DiceLoss(include_background=True)) == pytest.approx(both, abs=1e-6)
    assert both != pytest.approx(1 - DICE1_SMOOTH1, abs=1e-3)


def test_dice_loss_perfect_prediction_is_zero():
    y, _ = _random_batch()
    assert _value(DiceLoss(smooth=1e-6), y, y) == pytest.approx(0.0, abs=1e-6)
    assert _value(DiceLoss(smooth=1e-6, include_background=True), y, y) == pytest.approx(0.0, abs=1e-6)


def test_dice_loss_pools_over_the_batch():
    """Compare with sums over batch and space together, in numpy, on a 3D batch."""
    y, p = _random_batch((3, 4, 4, 3, 4), seed=1)
    y[0] = np.eye(4)[0]  # first sample: background only (a slice without tumour)
    inter = (y * p).sum(axis=(0, 1, 2, 3))
    total = y.sum(axis=(0, 1, 2, 3)) + p.sum(axis=(0, 1, 2, 3))
    expected = 1 - np.mean(((2 * inter + 1) / (total + 1))[1:])
    assert _value(DiceLoss(), y, p) == pytest.approx(expected, abs=1e-5)


def test_dice_loss_batch_dice_differs_from_mean_per_sample():
    # two samples of two voxels, tumour probabilities p1; sample 0 holds no tumour
    y = np.eye(2, dtype=np.float32)[np.array([[0, 0], [1, 1]])]
    p1 = np.array([[0.5, 0.0], [1.0, 1.0]], np.float32)
    p = np.stack([1 - p1, p1], axis=-1)
    # pooled: sum(y*p) = 2, sum(y) = 2, sum(p) = 2.5 -> 1 - 5 / 5.5 = 0.090909
    assert _value(DiceLoss(), y, p) == pytest.approx(1 - 5 / 5.5, abs=1e-6)
    # per sample: 1 - 1 / 1.5 = 0.333333 and 1 - 5 / 5 = 0, mean 0.166667
    per_sample = [_value(DiceLoss(), y[i:i + 1], p[i:i + 1]) for i in range(2)]
    assert per_sample == pytest.approx([1 - 1 / 1.5, 0.0], abs=1e-6)


def test_dice_loss_empty_class_everywhere_costs_nothing():
    # class 1 absent from truth and (nearly) from prediction in the whole batch: Dice 1
    y = np.zeros((1, 2, 2, 2), np.float32)
    y[..., 0] = 1
    assert _value(DiceLoss(), y, y) == pytest.approx(0.0, abs=1e-7)


# ------------------------------------------------------------------ focal


def test_focal_loss_by_hand():
    assert _value(FocalLoss()) == pytest.approx(FOCAL_MEAN, abs=1e-5)
    per_voxel = keras.ops.convert_to_numpy(FocalLoss(reduction=None)(Y, P))
    np.testing.assert_allclose(per_voxel, FOCAL_PER_VOXEL, rtol=1e-5)


def test_focal_gamma0_equals_categorical_crossentropy():
    y, p = _random_batch((2, 5, 5, 4), seed=2)
    expected = _value(keras.losses.CategoricalCrossentropy(), y, p)
    assert _value(FocalLoss(gamma=0.0), y, p) == pytest.approx(expected, rel=1e-5)
    # and by hand on the tiny example: mean of -log p_t
    ce = -(math.log(0.8) + math.log(0.6) + math.log(0.5) + math.log(0.1)) / 4  # 1.064430
    assert _value(FocalLoss(gamma=0.0)) == pytest.approx(ce, abs=1e-5)


def test_focal_down_weights_easy_voxels():
    focal = keras.ops.convert_to_numpy(FocalLoss(gamma=2.0, reduction=None)(Y, P))
    ce = keras.ops.convert_to_numpy(FocalLoss(gamma=0.0, reduction=None)(Y, P))
    p_true = np.take_along_axis(P, TRUE_CLASS[..., None], -1)[..., 0]  # .8 .6 .5 .1
    np.testing.assert_allclose(focal / ce, (1 - p_true) ** 2, rtol=1e-5)
    # the easiest voxel (a, p = .8) keeps 4 % of its cross-entropy, the hardest (d) 81 %
    assert focal[0, 0, 0] / ce[0, 0, 0] == pytest.approx(0.04, rel=1e-4)
    assert focal[0, 1, 1] / ce[0, 1, 1] == pytest.approx(0.81, rel=1e-4)


def test_focal_alpha_weights_the_true_class():
    alpha = (0.25, 3.0)
    weighted = keras.ops.convert_to_numpy(FocalLoss(alpha=alpha, reduction=None)(Y, P))
    np.testing.assert_allclose(weighted, np.asarray(alpha)[TRUE_CLASS] * FOCAL_PER_VOXEL, rtol=1e-5)
    # mean: (3 * (.008926 + .173287 + 1.865094) + .25 * .081732) / 4 = 1.540590
    assert _value(FocalLoss(alpha=alpha)) == pytest.approx(1.540590, abs=1e-5)


def test_focal_rejects_negative_gamma():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)


# ------------------------------------------------------------------ combined, gradients


def test_dice_focal_is_the_weighted_sum():
    loss = DiceFocalLoss(dice_weight=0.3, focal_weight=2.0, include_background=True, alpha=(1.0, 2.0))
    dice = 1 - (DICE0_SMOOTH1 + DICE1_SMOOTH1) / 2
    focal = np.mean(np.asarray((1.0, 2.0))[TRUE_CLASS] * FOCAL_PER_VOXEL)
    assert _value(loss) == pytest.approx(0.3 * dice + 2.0 * focal, abs=1e-5)
    assert _value(DiceFocalLoss()) == pytest.approx(1 - DICE1_SMOOTH1 + FOCAL_MEAN, abs=1e-5)


@pytest.mark.parametrize("loss", [DiceLoss(), FocalLoss(), FocalLoss(gamma=0.5, alpha=(1, 2, 3)),
                                  FocalLoss(gamma=0.0), DiceFocalLoss()],
                         ids=["dice", "focal", "focal-gamma0.5", "focal-gamma0", "dice-focal"])
def test_gradients_finite_with_exact_zeros_and_ones(loss):
    y = np.eye(3, dtype=np.float32)[np.array([[[0, 1], [2, 1]]])]
    p = tf.Variable(np.eye(3, dtype=np.float32)[np.array([[[0, 2], [2, 0]]])])  # right and wrong
    with tf.GradientTape() as tape:
        value = loss(y, p)
    grad = tape.gradient(value, p)
    assert np.isfinite(value.numpy()) and np.all(np.isfinite(grad.numpy()))


# ------------------------------------------------------------------ Keras integration


def _tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 2)),
                             keras.layers.Conv2D(3, 3, padding="same", activation="softmax")])


@pytest.mark.parametrize("loss", [DiceLoss(), FocalLoss(), DiceFocalLoss()], ids=["dice", "focal", "dice-focal"])
def test_tiny_model_trains_one_step(loss):
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 2)).astype(np.float32)
    y, _ = _random_batch((4, 8, 8, 3))
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


# Keras' own saving of variables trips numpy 2's __array__(copy=...) deprecation; not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_save_and_load_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 2)).astype(np.float32)
    y, _ = _random_batch((2, 8, 8, 3), seed=3)
    for loss in (DiceLoss(smooth=0.5, include_background=True), FocalLoss(gamma=1.5, alpha=(0.2, 1.0, 2.0)),
                 DiceFocalLoss(dice_weight=0.7, focal_weight=0.3, gamma=1.0, alpha=(1.0, 2.0, 3.0))):
        model = _tiny_model()
        model.compile(optimizer="sgd", loss=loss)
        path = tmp_path / f"{loss.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)  # no custom_objects: registered serialisables
        assert type(loaded.loss) is type(loss)
        assert loaded.loss.get_config() == loss.get_config()
        assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
