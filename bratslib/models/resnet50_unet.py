"""U-Net with a ResNet50 encoder, as the report uses it (section 2.3.3).

The encoder is ResNet50 pre-trained on ImageNet (:mod:`bratslib.models.backbones`), fed
128x128 slices with three channels (FLAIR, T1CE and a placeholder, since the weights expect
three).  The decoder mirrors it: five times, upsample by 2 (bilinear), concatenate the
encoder's feature map of that size (the skip connection) and apply two 3x3 convolutions with
BatchNorm and ReLU (:func:`~bratslib.models.unet2d.conv_block`).  A 1x1 convolution with a
softmax gives one probability per class and pixel.

    images -> [ResNet50 encoder]                                   [up, conv x2, f4] -> 1x1 softmax
                conv1_relu         (H/2,    64) ------ skip --> [up, concat, conv x2, f3]
                conv2_block3_out   (H/4,   256) ---- skip --> [up, concat, conv x2, f2]
                conv3_block4_out   (H/8,   512) -- skip --> [up, concat, conv x2, f1]
                conv4_block6_out   (H/16, 1024) - skip -> [up, concat, conv x2, f0]
                conv5_block3_out   (H/32, 2048) ---------------^

with ``(f0, ..., f4) = decoder_filters``, the decoder read from the bottom up.  The last
block, back at full size, has no encoder map to join (ResNet50's first map is at H/2).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from bratslib.models.backbones import resnet50_encoder
from bratslib.models.unet2d import check_size, conv_block


def build_resnet50_unet(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    n_classes: int = 4,
    encoder_weights: str | None = "imagenet",
    decoder_filters: Sequence[int] = (256, 128, 64, 32, 16),
    freeze_encoder: bool = False,
    name: str = "resnet50_unet",
) -> keras.Model:
    """A U-Net on ResNet50: images (B, H, W, C) in [0, 1] -> class probabilities (B, H, W, n_classes).

    ``encoder_weights`` is ``"imagenet"`` or ``None`` (ImageNet weights need C = 3); the
    weights the encoder actually holds are in ``model.encoder_weights``, as
    :func:`~bratslib.models.backbones.resnet50_encoder` explains (not saved with the model).  ``freeze_encoder`` makes the
    encoder untrainable, its BatchNorm layers included (they then normalise with their
    moving statistics).  H and W must be divisible by 32.  The output is float32, even under
    a mixed-precision policy.

    Parameter counts for 3 input channels and ``n_classes=4`` (total, and trainable, i.e.
    less the BatchNorm moving statistics); they do not depend on H, W or the weights:

    ====================  ======  ==========  ==========
    decoder_filters       frozen       total   trainable
    ====================  ======  ==========  ==========
    256, 128, 64, 32, 16  no      32,603,684  32,548,580
    256, 128, 64, 32, 16  yes     32,603,684   9,013,988
    128, 64, 32, 32, 32   no      27,839,300  27,785,028
    ====================  ======  ==========  ==========

    The encoder holds 23,587,712 of them (23,534,592 trainable); most of the decoder's sit in
    its first block, whose input has 2048 + 1024 channels.
    """
    check_size(input_shape[:2], 5, "ResNet50's output stride")
    if len(decoder_filters) != 5:
        raise ValueError(f"decoder_filters needs one count per upsampling step (5), got {decoder_filters!r}")

    encoder, weights_used = resnet50_encoder(input_shape, encoder_weights)
    encoder.trainable = not freeze_encoder
    *skips, x = encoder.outputs  # strides 2, 4, 8, 16 and 32

    # Decoder: double the size, join the encoder's map of that size (none at full size), convolve.
    for level, filters in zip(reversed(range(5)), decoder_filters):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_up")(x)
        if level:
            x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level - 1]])
        x = conv_block(x, filters, name=f"dec{level}")

    x = layers.Conv2D(n_classes, 1, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(encoder.input, outputs, name=name)
    model.encoder_weights = weights_used
    return model
