"""The Attention U-Net and its attention gates (what every builder does is tested once for all in
``test_registry.py``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bratslib.models.attention_unet import attention_coefficients, build_attention_unet

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.
TINY = dict(input_shape=(16, 16, 2), n_classes=2, base_filters=4, depth=2)


def test_attention_coefficients_are_in_0_1_at_the_skip_size():
    depth = 3
    model = build_attention_unet((32, 32, 2), 4, base_filters=4, depth=depth)
    maps = [model.get_layer(f"att{level}_coefficients").output for level in range(depth)]
    explain = keras.Model(model.inputs, [model.output, *maps])
    x = np.random.default_rng(2).random((2, 32, 32, 2), dtype=np.float32)
    probabilities, *alphas = explain.predict(x, verbose=0)
    np.testing.assert_array_equal(probabilities, model.predict(x, verbose=0))
    for level, alpha in enumerate(alphas):
        skip = model.get_layer(f"enc{level}_relu2").output
        assert alpha.shape == (2, *skip.shape[1:3], 1) == (2, 32 // 2**level, 32 // 2**level, 1)
        assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    # the library's helper returns the same maps, without the channel axis
    for ours, alpha in zip(attention_coefficients(model, x), alphas, strict=True):
        np.testing.assert_allclose(ours, alpha[..., 0], atol=1e-6)
    with pytest.raises(ValueError, match="no attention gates"):
        attention_coefficients(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]), np.zeros((1, 4)))


@pytest.mark.parametrize(
    "base_filters, depth, total, trainable",
    [(32, 4, 8_033_288, 8_027_400), (16, 3, 500_999, 499_591), (8, 3, 126_279, 125_575)],
)
def test_parameter_counts_match_the_docstring(base_filters, depth, total, trainable):
    model = build_attention_unet((128, 128, 2), 4, base_filters, depth)
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert f"{total:,}" in build_attention_unet.__doc__ and f"{trainable:,}" in build_attention_unet.__doc__


def test_input_size_must_divide_by_two_to_the_depth():
    with pytest.raises(ValueError, match=r"2\*\*depth = 16"):
        build_attention_unet((120, 120, 2), depth=4)
    build_attention_unet((24, 24, 2), base_filters=2, depth=3)  # 24 = 3 * 2**3 is fine


def test_a_tiny_attention_unet_learns_a_threshold():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((32, 16, 16, 2), dtype=np.float32)
    y = (x[..., 0] > 0.5).astype("int32")
    model = build_attention_unet(**TINY)
    model.compile(keras.optimizers.Adam(3e-2), "sparse_categorical_crossentropy", jit_compile=False)
    losses = model.fit(x, y, batch_size=8, epochs=4, verbose=0).history["loss"]
    assert losses[-1] < 0.75 * losses[0], losses
