"""The 2-D U-Net and the model registry."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bratslib.models import MODELS, build_model, build_unet2d

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.
TINY = dict(input_shape=(16, 16, 2), n_classes=2, base_filters=4, depth=2)


@pytest.mark.parametrize(
    "config",
    [dict(input_shape=(32, 32, 2), n_classes=4, base_filters=4, depth=3), dict(TINY, batch_norm=False, dropout=0.0)],
)
def test_output_is_a_softmax_per_pixel(config):
    model = build_unet2d(**config)
    h, w, c = config["input_shape"]
    x = np.random.default_rng(0).random((3, h, w, c), dtype=np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (3, h, w, config["n_classes"]) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "base_filters, depth, total, trainable",
    [(32, 4, 7_771_684, 7_765_796), (16, 3, 484_756, 483_348), (8, 3, 122_188, 121_484)],
)
def test_parameter_counts_match_the_docstring(base_filters, depth, total, trainable):
    model = build_unet2d((128, 128, 2), 4, base_filters, depth)
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert f"{total:,}" in build_unet2d.__doc__ and f"{trainable:,}" in build_unet2d.__doc__


def test_depth_and_filters_change_the_size():
    count = lambda **kw: build_unet2d(**dict(TINY, **kw)).count_params()  # noqa: E731
    assert count(depth=1) < count() < count(depth=3)
    assert count(base_filters=2) < count() < count(base_filters=8)


def test_input_size_must_divide_by_two_to_the_depth():
    with pytest.raises(ValueError, match=r"2\*\*depth = 16"):
        build_unet2d((120, 120, 2), depth=4)
    build_unet2d((24, 24, 2), base_filters=2, depth=3)  # 24 = 3 * 2**3 is fine


def test_a_tiny_unet_learns_a_threshold():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((32, 16, 16, 2), dtype=np.float32)
    y = (x[..., 0] > 0.5).astype("int32")
    model = build_unet2d(**TINY)
    model.compile(keras.optimizers.Adam(3e-2), "sparse_categorical_crossentropy", jit_compile=False)
    losses = model.fit(x, y, batch_size=8, epochs=4, verbose=0).history["loss"]
    assert losses[-1] < 0.75 * losses[0], losses


def test_save_and_load_give_the_same_predictions(tmp_path):
    model = build_unet2d(**TINY)
    x = np.random.default_rng(1).random((2, 16, 16, 2), dtype=np.float32)
    model.save(tmp_path / "unet.keras")
    loaded = keras.models.load_model(tmp_path / "unet.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.name == "unet2d"


def test_registry():
    assert MODELS["unet2d"] is build_unet2d
    model = build_model("unet2d", (16, 16, 2), 3, base_filters=2, depth=1, name="tiny")
    assert model.output_shape == (None, 16, 16, 3) and model.name == "tiny"
    with pytest.raises(ValueError, match="unknown model 'unet4d'; known models: .*unet2d"):
        build_model("unet4d", (16, 16, 2), 4)
