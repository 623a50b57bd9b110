"""The ResNet50 encoder: its stages, its input scaling and the fallback to random weights.

No test downloads anything: the ImageNet download is replaced by a failure, or by a stand-in
weights file, so the tests behave the same with and without network.
"""

from __future__ import annotations

import urllib.error
import warnings

import h5py
import keras
import numpy as np
import pytest
from keras.src.backend import config as keras_config
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils

from bratslib.models.backbones import IMAGENET_MEAN, STAGES, PretrainedWeightsWarning, resnet50_encoder
from bratslib.models.unet2d import BN_MOMENTUM

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.
URL_FAILURE = (
    "URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5: None -- [Errno -3] Temporary failure in name resolution"
)


def imagenet_fails_with(monkeypatch, error: BaseException):
    """Make ``keras.applications.ResNet50(weights="imagenet")`` raise ``error``."""
    real = keras.applications.ResNet50

    def resnet50(*args, weights="imagenet", **kwargs):
        if weights == "imagenet":
            raise error
        return real(*args, weights=weights, **kwargs)

    monkeypatch.setattr(keras.applications, "ResNet50", resnet50)


def test_stages_have_strides_2_to_32():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PretrainedWeightsWarning)
        encoder, weights_used = resnet50_encoder((64, 64, 3), weights=None)
    assert weights_used == "random"
    assert [tuple(t.shape) for t in encoder.outputs] == [
        (None, 32, 32, 64), (None, 16, 16, 256), (None, 8, 8, 512), (None, 4, 4, 1024), (None, 2, 2, 2048)
    ]
    assert [encoder.get_layer(n).output for n in STAGES.values()] == encoder.outputs
    assert encoder.input.name == "images" and encoder.count_params() == 23_587_712
    assert {layer.momentum for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization)} == {
        BN_MOMENTUM
    }


@pytest.mark.filterwarnings("ignore:This model usually expects 1 or 3 input channels")
def test_imagenet_weights_need_three_channels():
    with pytest.raises(ValueError, match="ImageNet weights need 3 input channels"):
        resnet50_encoder((64, 64, 2), weights="imagenet")
    with pytest.raises(ValueError, match="weights must be 'imagenet' or None"):
        resnet50_encoder((64, 64, 3), weights="random")
    encoder, _ = resnet50_encoder((64, 64, 2), weights=None)  # random weights take any channel count
    assert encoder.input.shape == (None, 64, 64, 2)


@pytest.mark.parametrize(
    "error",
    [Exception(URL_FAILURE), urllib.error.URLError("[Errno 101] Network is unreachable"), TimeoutError("timed out")],
    ids=["keras-url-fetch-failure", "URLError", "TimeoutError"],
)
def test_a_failed_download_falls_back_to_random_weights_and_says_so(monkeypatch, error):
    imagenet_fails_with(monkeypatch, error)
    with pytest.warns(PretrainedWeightsWarning, match="randomly initialised, NOT pre-trained on ImageNet"):
        encoder, weights_used = resnet50_encoder((32, 32, 3))
    assert weights_used.startswith("random (imagenet download failed: ")
    assert str(error) in weights_used
    assert encoder.output_shape[-1] == (None, 1, 1, 2048)


@pytest.mark.parametrize(
    "error",
    [Exception("something else went wrong"), RuntimeError("URL fetch failure"), KeyError("conv1_conv")],
    ids=["other-bare-Exception", "RuntimeError", "KeyError"],
)
def test_other_errors_are_not_swallowed(monkeypatch, error):
    imagenet_fails_with(monkeypatch, error)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PretrainedWeightsWarning)
        with pytest.raises(type(error)) as raised:
            resnet50_encoder((32, 32, 3))
    assert raised.value is error


def test_a_bad_input_shape_is_not_taken_for_a_download_failure():
    # Keras checks the shape before it downloads anything, with and without network.
    with pytest.raises(ValueError, match="at least 32x32"):
        resnet50_encoder((16, 16, 3), weights="imagenet")


def test_the_error_keras_itself_raises_offline_is_recognised(monkeypatch, tmp_path):
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # no cached weights file
    with pytest.warns(PretrainedWeightsWarning, match="Could not download ResNet50's ImageNet weights"):
        _, weights_used = resnet50_encoder((32, 32, 3))
    assert weights_used.startswith("random (imagenet download failed: URL fetch failure on https://")
    assert "Name or service not known" in weights_used


def test_imagenet_weights_load_behind_the_input_scaling(monkeypatch, tmp_path):
    """A stand-in for the ImageNet file: the weights land in the encoder, after x * 255 - mean."""
    keras.utils.set_random_seed(0)
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    with h5py.File(tmp_path / "resnet50_notop.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(tmp_path / "resnet50_notop.h5"))

    with warnings.catch_warnings():
        warnings.simplefilter("error", PretrainedWeightsWarning)
        encoder, weights_used = resnet50_encoder((32, 32, 3))
    assert weights_used == "imagenet"
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    expected = reference(x * 255 - np.array(IMAGENET_MEAN, np.float32), training=False)
    np.testing.assert_allclose(encoder(x, training=False)[-1], expected, rtol=1e-4, atol=1e-4)
