"""The 3-D U-Net (what every builder does is tested once for all in ``test_registry.py``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bratslib.losses import DiceFocalLoss
from bratslib.models.unet3d import build_unet3d

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.
TINY = dict(input_shape=(16, 16, 16, 2), n_classes=2, base_filters=4, depth=2)


def test_the_report_setting_builds_with_the_right_output_shape():
    model = build_unet3d()  # 128^3 crops, FLAIR + T1ce in, four classes out; built, not run
    assert model.input_shape == (None, 128, 128, 128, 2)
    assert model.output_shape == (None, 128, 128, 128, 4)
    assert model.output.dtype == "float32"


def norms(model, kind=keras.layers.BatchNormalization):
    return sum(isinstance(layer, kind) for layer in model.layers)


def test_batch_norm_can_be_left_out():
    plain = build_unet3d(**dict(TINY, normalization=None, dropout=0.0))
    assert norms(plain) == 0 and norms(build_unet3d(**TINY)) == 2 * (2 * 2 + 1)  # 2 per block, depth 2
    x = np.random.default_rng(0).random((2, 16, 16, 16, 2), dtype=np.float32)
    np.testing.assert_allclose(plain.predict(x, verbose=0).sum(-1), 1.0, atol=1e-5)


def test_instance_normalisation_treats_each_volume_alone_in_training_as_in_inference():
    model = build_unet3d(**dict(TINY, normalization="instance", dropout=0.0))
    assert norms(model) == 0 and norms(model, keras.layers.GroupNormalization) == 2 * (2 * 2 + 1)
    x = np.random.default_rng(0).random((2, 16, 16, 16, 2), dtype=np.float32)
    alone = np.asarray(model(x[:1], training=True))
    # the same volume beside another, in training and in inference mode: the same output
    np.testing.assert_allclose(np.asarray(model(x, training=True))[:1], alone, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model(x, training=False))[:1], alone, atol=1e-5)
    with pytest.raises(ValueError, match="normalization must be one of"):
        build_unet3d(**dict(TINY, normalization="layer"))


@pytest.mark.parametrize(
    "base_filters, depth, total, trainable",
    [(16, 4, 5_651_284, 5_648_340), (16, 3, 1_403_860, 1_402_452), (8, 3, 352_108, 351_404)],
)
def test_parameter_counts_match_the_docstring(base_filters, depth, total, trainable):
    model = build_unet3d((128, 128, 128, 2), 4, base_filters, depth)
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert f"{total:,}" in build_unet3d.__doc__ and f"{trainable:,}" in build_unet3d.__doc__


def test_every_side_must_divide_by_two_to_the_depth():
    with pytest.raises(ValueError, match=r"128x128x120 must be divisible by 2\*\*depth = 16"):
        build_unet3d((128, 128, 120, 2), depth=4)
    build_unet3d((24, 16, 8, 2), base_filters=2, depth=3)  # every side a multiple of 2**3


def test_a_tiny_unet_learns_a_threshold():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((4, 16, 16, 16, 2), dtype=np.float32)
    y = keras.utils.to_categorical(x[..., 0] > 0.5, 2)
    model = build_unet3d(**TINY)
    model.compile(keras.optimizers.Adam(3e-2), DiceFocalLoss(), jit_compile=False)
    losses = model.fit(x, y, batch_size=2, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < 0.75 * losses[0], losses
