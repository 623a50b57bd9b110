"""DeepLabV3+ (Chen et al., ECCV 2018) on a ResNet50 encoder, as the report uses it.

Atrous spatial pyramid pooling (ASPP) looks at the encoder's coarse features at several
scales at once: five parallel branches, concatenated and fused by a 1x1 convolution.  A
light decoder brings back detail from the encoder's stride-4 features.

    images -> ResNet50 to conv4_block6_out (H/16, 1024) -> ASPP (256) -> up x4 --+
                 |                                                              v
                 +-> conv2_block3_out (H/4, 256) -> 1x1 conv (48) --------> [concat, 3x3 conv x2]
                                                                                |
                             probabilities (H, W) <- softmax <- up x4 <- 1x1 conv (logits)

    ASPP:  1x1 conv | 3x3 conv, rate 6 | rate 12 | rate 18 | image pooling -> concat -> 1x1 conv

Every convolution but the last is followed by BatchNorm and ReLU.

**Output stride.**  The paper runs ASPP at output stride 16, keeping ResNet's last stage at
that stride with atrous convolutions of rate 2.  Keras' ResNet50 has no atrous option, so,
as the keras-io ``deeplabv3_plus`` example does, ASPP takes ``conv4_block6_out``, the
features at their natural stride 16, and stage 5 is left out (15 million parameters fewer).
The low-level features are the output of stage 2 (``conv2_block3_out``, the paper's
"Conv2"), reduced to 48 channels.  At the report's 128x128 input the ASPP sees an 8x8 map:
a 3x3 kernel at rate 12 or 18 then has its eight outer taps in the zero padding wherever it
is, and acts as a 1x1 convolution (the paper notes this for large rates on small maps).  The
rates are kept as published; ``atrous_rates`` can try smaller ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from bratslib.models.backbones import resnet50_encoder
from bratslib.models.unet2d import BN_MOMENTUM, check_size


def convolution_block(x, filters: int, kernel_size: int = 3, dilation_rate: int = 1, name: str = "conv"):
    """Convolution (he_normal, no bias) -> BatchNorm -> ReLU."""
    x = layers.Conv2D(filters, kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def aspp(x, filters: int = 256, rates: Sequence[int] = (6, 12, 18), name: str = "aspp"):
    """Atrous spatial pyramid pooling: a 1x1 conv, a 3x3 conv per rate and image pooling, fused."""
    height, width = x.shape[1:3]
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = convolution_block(pooled, filters, 1, name=f"{name}_pool")
    branches = [
        layers.UpSampling2D((height, width), name=f"{name}_pool_up")(pooled),  # broadcast back
        convolution_block(x, filters, 1, name=f"{name}_1x1"),
        *(convolution_block(x, filters, 3, rate, name=f"{name}_rate{rate}") for rate in rates),
    ]
    x = layers.Concatenate(name=f"{name}_concat")(branches)
    return convolution_block(x, filters, 1, name=f"{name}_project")


def atrous_coverage(map_size: int, rate: int, kernel_size: int = 3) -> float:
    """The share of a dilated convolution's taps that fall on the feature map, not its padding.

    A ``kernel_size`` x ``kernel_size`` kernel dilated by ``rate`` reaches ``rate * (kernel_size
    // 2)`` pixels from its centre.  On a ``map_size`` x ``map_size`` map with "same" padding,
    this averages, over every output position, the fraction of the kernel's taps that land
    inside the map: 1.0 when the kernel fits everywhere; ``1 / kernel_size**2`` when only the
    centre tap ever does (the branch is then a 1 x 1 convolution that pays for nine taps).
    """
    offsets = (np.arange(kernel_size) - kernel_size // 2) * int(rate)
    positions = np.arange(int(map_size))
    inside = ((positions[:, None] + offsets[None, :] >= 0) & (positions[:, None] + offsets[None, :] < map_size)).mean()
    return float(inside**2)  # the two axes are independent


def build_deeplabv3plus(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    n_classes: int = 4,
    encoder_weights: str | None = "imagenet",
    atrous_rates: Sequence[int] = (6, 12, 18),
    aspp_filters: int = 256,
    name: str = "deeplabv3plus",
) -> keras.Model:
    """DeepLabV3+ on ResNet50: images (B, H, W, C) in [0, 1] -> class probabilities (B, H, W, n_classes).

    ``encoder_weights`` is ``"imagenet"`` or ``None`` (ImageNet weights need C = 3); the
    weights the encoder actually holds are in ``model.encoder_weights``, as
    :func:`~bratslib.models.backbones.resnet50_encoder` explains (not saved with the model).  The decoder's convolutions have
    ``aspp_filters`` filters, as in the paper.  H and W must be divisible by 16.  The output
    is float32, even under a mixed-precision policy.

    Parameter counts for 3 input channels and ``n_classes=4`` (total, and trainable, i.e.
    less the BatchNorm moving statistics); they do not depend on H, W or the weights:

    ============  ============  ==========  ==========
    aspp_filters  atrous_rates       total   trainable
    ============  ============  ==========  ==========
    256           6, 12, 18     17,830,980  17,796,196
    128           6, 12, 18     12,839,492  12,806,756
    256           6, 12         15,405,124  15,370,852
    ============  ============  ==========  ==========

    The encoder, ResNet50 up to stage 4, holds 8,589,184 of them (8,558,592 trainable); the
    three atrous 3x3 convolutions on its 1024 channels hold 2.4 million each.
    """
    check_size(input_shape[:2], 4, "the ASPP's output stride")

    encoder, weights_used = resnet50_encoder(input_shape, encoder_weights)
    _, low_level, _, features, _ = encoder.outputs  # strides 2, 4, 8, 16 and 32

    x = aspp(features, aspp_filters, atrous_rates)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="aspp_up")(x)
    low_level = convolution_block(low_level, 48, 1, name="low_level")
    x = layers.Concatenate(name="decoder_concat")([x, low_level])
    x = convolution_block(x, aspp_filters, name="decoder1")
    x = convolution_block(x, aspp_filters, name="decoder2")

    x = layers.Conv2D(n_classes, 1, name="logits")(x)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="logits_up")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(encoder.input, outputs, name=name)
    model.encoder_weights = weights_used
    return model
