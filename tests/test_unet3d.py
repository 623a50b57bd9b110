"""The 3-D U-Net."""

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


@pytest.mark.parametrize("config", [dict(TINY, n_classes=4), dict(TINY, batch_norm=False, dropout=0.0)])
def test_output_is_a_softmax_per_voxel(config):
    model = build_unet3d(**config)
    x = np.random.default_rng(0).random((2, 16, 16, 16, 2), dtype=np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 16, 16, 16, config["n_classes"]) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


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


def test_save_and_load_give_the_same_predictions(tmp_path):
    model = build_unet3d(**TINY)
    x = np.random.default_rng(1).random((1, 16, 16, 16, 2), dtype=np.float32)
    model.save(tmp_path / "unet3d.keras")
    loaded = keras.models.load_model(tmp_path / "unet3d.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.name == "unet3d"
