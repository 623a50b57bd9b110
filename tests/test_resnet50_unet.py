"""The U-Net on a ResNet50 encoder (report section 2.3.3); what every builder does is tested once
for all in ``test_registry.py``.

Every model here has a random encoder (``encoder_weights=None``), or one whose ImageNet
download is made to fail, so no test downloads anything.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bratslib.models.backbones import PretrainedWeightsWarning
from bratslib.models.resnet50_unet import build_resnet50_unet
from tests.test_backbones import URL_FAILURE, imagenet_fails_with

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.

@pytest.fixture(scope="module")
def report_model():
    """The report's setting: 128x128 slices with 3 channels, 4 classes."""
    return build_resnet50_unet((128, 128, 3), 4, encoder_weights=None)


def test_the_report_setting_says_its_encoder_is_random(report_model):
    assert report_model.output_shape == (None, 128, 128, 4) and report_model.output.dtype == "float32"
    assert report_model.encoder_weights == "random"


@pytest.mark.parametrize(
    "kwargs, total, trainable",
    [
        ({}, 32_603_684, 32_548_580),
        ({"freeze_encoder": True}, 32_603_684, 9_013_988),
        ({"decoder_filters": (128, 64, 32, 32, 32)}, 27_839_300, 27_785_028),
    ],
)
def test_parameter_counts_match_the_docstring(report_model, kwargs, total, trainable):
    model = build_resnet50_unet(encoder_weights=None, **kwargs) if kwargs else report_model
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert f"{total:,}" in build_resnet50_unet.__doc__ and f"{trainable:,}" in build_resnet50_unet.__doc__


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="divisible by 32"):
        build_resnet50_unet((120, 120, 3), encoder_weights=None)
    with pytest.raises(ValueError, match=r"one count per upsampling step \(5\)"):
        build_resnet50_unet(encoder_weights=None, decoder_filters=(64, 32, 16, 8))
    with pytest.raises(ValueError, match="ImageNet weights need 3 input channels"):
        build_resnet50_unet((128, 128, 2), encoder_weights="imagenet")


def test_a_few_steps_learn_a_threshold():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((4, 4, 4, 3), dtype=np.float32).repeat(8, 1).repeat(8, 2)  # 32x32
    y = (x[..., 0] > 0.5).astype("int32")
    model = build_resnet50_unet((32, 32, 3), 2, encoder_weights=None)
    # Eagerly: tracing ResNet50's training step takes longer on a CPU than these six steps.
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True)
    losses = model.fit(x, y, batch_size=4, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses


def test_a_frozen_encoder_stays_frozen_when_saved_and_loaded(tmp_path):
    model = build_resnet50_unet((32, 32, 3), 2, encoder_weights=None, freeze_encoder=True)
    model.save(tmp_path / "resnet50_unet.keras")
    loaded = keras.models.load_model(tmp_path / "resnet50_unet.keras")
    assert len(loaded.trainable_weights) == len(model.trainable_weights) < len(model.weights)


def test_a_failed_download_is_recorded_on_the_model(monkeypatch):
    imagenet_fails_with(monkeypatch, Exception(URL_FAILURE))
    with pytest.warns(PretrainedWeightsWarning, match="NOT pre-trained"):
        model = build_resnet50_unet((32, 32, 3), encoder_weights="imagenet")
    assert model.encoder_weights == f"random (imagenet download failed: {URL_FAILURE})"
