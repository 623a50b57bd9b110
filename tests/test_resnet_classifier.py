"""The compact ResNet-18 backbone and the classical tumour / no-tumour classifier (what every builder
does is tested once for all in ``test_registry.py``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bratslib.models.resnet_classifier import ENCODER_WEIGHTS, build_resnet18_backbone, build_resnet_classifier

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.
TINY = dict(input_shape=(32, 32, 3), n_classes=2, width=4, hidden=(8,))


def tiny_batch(n: int = 8, seed: int = 0):
    """Images of noise, half of them (label 1) with a bright square: a "tumour"."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 32, 32, 3), dtype=np.float32) * 0.3
    y = np.arange(n) % 2
    x[y == 1, 8:20, 10:22] += 0.7
    return x, y.astype("int32")


def test_backbone_gives_global_features():
    model = build_resnet18_backbone((64, 64, 2), width=4)
    x = np.random.default_rng(0).random((3, 64, 64, 2), dtype=np.float32)
    assert model.predict(x, verbose=0).shape == (3, 32)
    assert model.encoder_weights == ENCODER_WEIGHTS == "random (no ImageNet ResNet18 in keras.applications)"
    # 4 stages of 2 basic blocks; the 3 stages that halve the size have a projection shortcut
    assert len([layer for layer in model.layers if layer.name.endswith("_add")]) == 8
    assert len([layer for layer in model.layers if "shortcut_conv" in layer.name]) == 3


@pytest.mark.parametrize("hidden", [(8,), (), (8, 4)])
def test_one_dense_layer_per_hidden_width_then_the_classes(hidden):
    model = build_resnet_classifier(**dict(TINY, hidden=hidden, n_classes=3))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [*hidden, 3] and model.output_shape == (None, 3)
    assert model.encoder_weights == ENCODER_WEIGHTS and model.get_layer("resnet18").output_shape == (None, 32)


@pytest.mark.parametrize(
    "width, total, trainable",
    [(64, 11_186_112, 11_176_512), (16, 704_496, 702_096), (8, 177_912, 176_712)],
)
def test_backbone_parameter_counts_match_the_docstring(width, total, trainable):
    model = build_resnet18_backbone((128, 128, 3), width)
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    doc = build_resnet18_backbone.__doc__
    assert f"{total:,}" in doc and f"{trainable:,}" in doc


@pytest.mark.parametrize(
    "width, hidden, total, trainable",
    [(64, (256,), 11_317_954, 11_308_354), (16, (256,), 738_034, 735_634), (8, (32,), 180_058, 178_858)],
)
def test_classifier_parameter_counts_match_the_docstring(width, hidden, total, trainable):
    model = build_resnet_classifier((128, 128, 3), 2, width, hidden)
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    doc = build_resnet_classifier.__doc__
    assert f"{total:,}" in doc and f"{trainable:,}" in doc


def test_a_few_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    x, y = tiny_batch()
    model = build_resnet_classifier(**dict(TINY, dropout=0.0))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", jit_compile=False)
    losses = model.fit(x, y, batch_size=8, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
