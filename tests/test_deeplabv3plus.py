"""DeepLabV3+ on a ResNet50 encoder; what every builder does is tested once for all in
``test_registry.py``.

Every model here has a random encoder (``encoder_weights=None``), or one whose ImageNet
download is made to fail, so no test downloads anything.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bratslib.models.backbones import PretrainedWeightsWarning
from bratslib.models.deeplabv3plus import build_deeplabv3plus
from tests.test_backbones import URL_FAILURE, imagenet_fails_with

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.

@pytest.fixture(scope="module")
def report_model():
    """The report's setting: 128x128 slices with 3 channels, 4 classes."""
    return build_deeplabv3plus((128, 128, 3), 4, encoder_weights=None)


def test_the_report_setting_says_its_encoder_is_random(report_model):
    assert report_model.output_shape == (None, 128, 128, 4) and report_model.output.dtype == "float32"
    assert report_model.encoder_weights == "random"


def test_aspp_sits_at_stride_16_and_the_decoder_at_stride_4(report_model):
    assert report_model.get_layer("aspp_project_relu").output.shape == (None, 8, 8, 256)
    assert report_model.get_layer("low_level_relu").output.shape == (None, 32, 32, 48)
    assert report_model.get_layer("logits").output.shape == (None, 32, 32, 4)
    names = {layer.name for layer in report_model.layers}
    assert {"aspp_rate6_conv", "aspp_rate12_conv", "aspp_rate18_conv", "aspp_pool_conv"} <= names
    assert not any(name.startswith("conv5") for name in names)  # ResNet50's stage 5 is left out


@pytest.mark.parametrize(
    "kwargs, total, trainable",
    [
        ({}, 17_830_980, 17_796_196),
        ({"aspp_filters": 128}, 12_839_492, 12_806_756),
        ({"atrous_rates": (6, 12)}, 15_405_124, 15_370_852),
    ],
)
def test_parameter_counts_match_the_docstring(report_model, kwargs, total, trainable):
    model = build_deeplabv3plus(encoder_weights=None, **kwargs) if kwargs else report_model
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert f"{total:,}" in build_deeplabv3plus.__doc__ and f"{trainable:,}" in build_deeplabv3plus.__doc__


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="divisible by 16"):
        build_deeplabv3plus((120, 120, 3), encoder_weights=None)
    with pytest.raises(ValueError, match="ImageNet weights need 3 input channels"):
        build_deeplabv3plus((128, 128, 2), encoder_weights="imagenet")


def test_a_few_steps_learn_a_threshold():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((4, 4, 4, 3), dtype=np.float32).repeat(8, 1).repeat(8, 2)  # 32x32
    y = (x[..., 0] > 0.5).astype("int32")
    model = build_deeplabv3plus((32, 32, 3), 2, encoder_weights=None)
    # Eagerly: tracing ResNet50's training step takes longer on a CPU than these six steps.
    model.compile(keras.optimizers.Adam(3e-4), "sparse_categorical_crossentropy", run_eagerly=True)
    losses = model.fit(x, y, batch_size=4, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses


def test_a_failed_download_is_recorded_on_the_model(monkeypatch):
    imagenet_fails_with(monkeypatch, Exception(URL_FAILURE))
    with pytest.warns(PretrainedWeightsWarning, match="NOT pre-trained"):
        model = build_deeplabv3plus((32, 32, 3), encoder_weights="imagenet")
    assert model.encoder_weights == f"random (imagenet download failed: {URL_FAILURE})"


def test_atrous_coverage_counts_the_taps_on_the_map():
    from bratslib.models.deeplabv3plus import atrous_coverage

    # 4 x 4 map, rate 1: per axis the edge positions have 2 of 3 taps inside, the middle ones 3 of 3
    assert atrous_coverage(4, 1) == pytest.approx((10 / 12) ** 2)
    # a rate at least the map's size: only the centre tap is ever on the map
    assert atrous_coverage(4, 6) == atrous_coverage(8, 12) == pytest.approx(1 / 9)
    assert atrous_coverage(32, 6) > atrous_coverage(8, 6) > atrous_coverage(4, 6)
    assert atrous_coverage(1000, 1) > 0.99
