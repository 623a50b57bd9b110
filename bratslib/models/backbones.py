"""ResNet50 (He et al., 2016) as a segmentation encoder: the feature maps of its five stages.

    images (H, W, 3), MRI in [0, 1]
      | imagenet_preprocessing: x * 255 - ImageNet mean, per channel
      | conv1 ................ conv1_relu         H/2    64 channels
      | pool1, conv2 x3 ...... conv2_block3_out    H/4   256
      | conv3 x4 ............. conv3_block4_out    H/8   512
      | conv4 x6 ............. conv4_block6_out    H/16 1024
      | conv5 x3 ............. conv5_block3_out    H/32 2048

:func:`resnet50_encoder` returns a model from ``images`` to these five maps (:data:`STAGES`)
and the weights it actually holds.  The segmentation builders take the maps they need as
skip connections; layers no output depends on (stage 5 for DeepLabV3+) drop out of their
model.

**Pre-training, and when it cannot be had.**  ``weights="imagenet"`` downloads Keras' ImageNet
weights (94 MB, cached in ``~/.keras/models``), as on Colab or Kaggle.  Where the download
fails (no network) the encoder is built with random weights instead, a
:class:`PretrainedWeightsWarning` says so, and the returned string reads
``"random (imagenet download failed: <reason>)"``: the builders store it as
``model.encoder_weights``, so that results never pass a random encoder off as pre-trained.
Only download failures fall back; a wrong input shape or any other error is raised.

**Input normalisation.**  The ImageNet weights were trained on "caffe" inputs: pixel values
0..255 less the ImageNet mean of each channel, about [-124, 152].  Our images are MRI
intensities normalised to [0, 1] (background 0).  Fed as they are, the first convolution
would see inputs ~100 times smaller than in pre-training, and ``conv1_bn``, normalising with
ImageNet's statistics, would pass on a nearly constant map: the pre-trained filters would be
wasted until fine-tuning relearns the scale.  So the encoder starts with a ``Rescaling``
layer, ``x * 255 - mean``: background looks like a black pixel and the brightest tissue like
a white one.  Channels are not flipped to BGR: (FLAIR, T1CE, placeholder) are no colours, and
channel k simply takes the place of the weights' channel k.  The layer is part of the model
(saved with it), so every architecture reads the same [0, 1] batches and a saved model needs
no preprocessing function beside it.  It is there with random weights too, so that a random
and a pre-trained model differ in their weights only.

**BatchNorm.**  The encoder's BatchNorm layers get the momentum of the rest of the book,
:data:`~bratslib.models.unet2d.BN_MOMENTUM` (0.9, Keras' default is 0.99), for the reason
given there; for pre-trained weights it also lets ImageNet's moving statistics give way to
those of MRI within a few dozen steps.
"""

from __future__ import annotations

import warnings

import keras
from keras import layers

from bratslib.models.unet2d import BN_MOMENTUM

#: Output layer of each ResNet50 stage, by its stride (input size / feature map size).
STAGES = {
    2: "conv1_relu",
    4: "conv2_block3_out",
    8: "conv3_block4_out",
    16: "conv4_block6_out",
    32: "conv5_block3_out",
}

#: Mean of the ImageNet training images per channel (B, G, R), on the 0..255 scale.
IMAGENET_MEAN = (103.939, 116.779, 123.68)


class PretrainedWeightsWarning(UserWarning):
    """The ImageNet weights could not be downloaded: the encoder is randomly initialised."""


def _is_download_failure(err: BaseException) -> bool:
    """Whether ``err`` says the weights file could not be fetched (and nothing else).

    ``keras.utils.get_file`` turns urllib's errors into a bare ``Exception("URL fetch failure
    on <url>: <code> -- <reason>")``; socket errors and time-outs are ``OSError``\\ s (as is
    ``urllib.error.URLError``), and so is an unwritable cache folder or a truncated cached file.
    """
    if isinstance(err, OSError):
        return True
    return type(err) is Exception and str(err).startswith("URL fetch failure")


def resnet50_encoder(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    weights: str | None = "imagenet",
    name: str = "resnet50_encoder",
) -> tuple[keras.Model, str]:
    """ResNet50 without its classifier: ``images`` -> the five stage outputs of :data:`STAGES`.

    Args:
        input_shape: (H, W, C), H and W at least 32.  ImageNet weights need C = 3.
        weights: ``"imagenet"`` (pre-trained, falling back to random weights with a
            :class:`PretrainedWeightsWarning` where the download fails) or ``None`` (random
            initialisation, on purpose).
        name: name of the encoder model.

    Returns:
        ``(encoder, weights_used)``: the encoder, whose outputs are the stage maps at strides
        2, 4, 8, 16 and 32 in that order, and ``"imagenet"``, ``"random"`` (for
        ``weights=None``) or ``"random (imagenet download failed: <reason>)"``.  Whatever is
        random starts with ``"random"``.
    """
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    channels = input_shape[-1]
    if weights == "imagenet" and channels != 3:
        raise ValueError(
            f"ResNet50's ImageNet weights need 3 input channels, got input_shape={tuple(input_shape)}; "
            "add placeholder channels (the report feeds FLAIR, T1CE and a placeholder) or use weights=None"
        )

    images = keras.Input(shape=input_shape, name="images")
    # Other channel counts (random weights only) get the mean of the three means.
    offset = [-m for m in IMAGENET_MEAN] if channels == 3 else -sum(IMAGENET_MEAN) / 3
    x = layers.Rescaling(255.0, offset=offset, name="imagenet_preprocessing")(images)

    def resnet50(with_weights):
        return keras.applications.ResNet50(include_top=False, weights=with_weights,
                                           input_tensor=x, input_shape=input_shape)

    try:
        backbone, weights_used = resnet50(weights), ("imagenet" if weights else "random")
    except Exception as err:
        if weights is None or not _is_download_failure(err):
            raise
        reason = str(err) if type(err) is Exception else f"{type(err).__name__}: {err}"
        warnings.warn(
            f"Could not download ResNet50's ImageNet weights ({reason}). The encoder is "
            "randomly initialised, NOT pre-trained on ImageNet (the builders record this in "
            "model.encoder_weights). Run where the download works (Colab, Kaggle with internet "
            "on) for a pre-trained encoder, or pass encoder_weights=None to choose a random one "
            "without this warning.",
            PretrainedWeightsWarning,
            stacklevel=2,
        )
        backbone, weights_used = resnet50(None), f"random (imagenet download failed: {reason})"

    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    outputs = [backbone.get_layer(layer_name).output for layer_name in STAGES.values()]
    return keras.Model(images, outputs, name=name), weights_used
