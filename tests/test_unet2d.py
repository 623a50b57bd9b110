"""The 2-D U-Net (what every builder does is tested once for all in ``test_registry.py``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bratslib.models import build_unet2d

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.
TINY = dict(input_shape=(16, 16, 2), n_classes=2, base_filters=4, depth=2)


def test_batch_norm_can_be_left_out():
    def norms(model):
        return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)

    plain = build_unet2d(**dict(TINY, batch_norm=False, dropout=0.0))
    assert norms(plain) == 0 and norms(build_unet2d(**TINY)) == 2 * (2 * 2 + 1)  # 2 per block, depth 2
    x = np.random.default_rng(0).random((3, 16, 16, 2), dtype=np.float32)
    np.testing.assert_allclose(plain.predict(x, verbose=0).sum(-1), 1.0, atol=1e-5)


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
