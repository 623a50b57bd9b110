"""3-D U-Net (Çiçek et al., 2016), as the report uses it (section 2.3.2).

The 2-D U-Net of :mod:`bratslib.models.unet2d` with every operation made volumetric: 3x3x3
convolutions, 2x2x2 max-pooling and 2x2x2 up-convolutions.  The network sees whole
128x128x128 crops of a case at once, so a tumour is segmented with its context above and
below, not one axial slice at a time.

    volume -> [conv x2, f] ------------- skip -------------> [concat, conv x2, f] -> 1x1x1 softmax
                   | max-pool 2x2x2                            ^ up-conv 2x2x2
              [conv x2, 2f] ------- skip -------> [concat, conv x2, 2f]
                   |                                  ^
                  ...  bottleneck: conv x2, f * 2**depth, dropout

with ``f = base_filters``.  Çiçek et al. double the filters inside each encoder block
(32 -> 64, then 64 -> 128, ...); here, as in the 2-D U-Net, a level keeps one width, so the
two U-Nets differ only in dimension.

Memory.  Training keeps every layer's output for the backward pass.  A level holds about 15
feature maps of its width (6 in the encoder block: conv, BatchNorm, ReLU twice; 9 in the
decoder: up-conv, concatenation, then the block), and each level down has 8 times fewer
voxels but only twice the filters, so the levels add up to 4/3 of the first: about
``20 * base_filters`` float32 values per input voxel and sample, and as much again in
gradients at the peak of the backward pass.  For the report's 128^3 crops and
``base_filters=16``, that is 2.7 GB of activations per sample (the model's layer outputs add
up to 2.8 GB), some 5.5 GB at the peak: batch 2 on a 16 GB GPU.  Depth barely matters;
``base_filters=32`` needs twice as much, a 64^3 crop 8 times less.  On a 2-core CPU, batch 1
of a ~0.5 M-parameter net takes ~2.7 s a step at 64^3 and ~22 s at 128^3.

Normalisation.  With one volume per batch, BatchNorm trains on the statistics of that one
volume but predicts with running averages over the volumes seen, and the two differ from
case to case: the validation Dice of the book's CPU runs jumped between epochs (0.10 to 0.38
and back).  ``normalization="instance"`` normalises each channel of each volume on its own,
in training and in prediction alike, as nnU-Net does for 3-D (Isensee et al., Nature Methods
2021); the ``smoke`` profile uses it, the ``full`` profile keeps the report's BatchNorm.
"""

from __future__ import annotations

import keras
from keras import layers

from bratslib.models.unet2d import BN_MOMENTUM, check_size


#: What ``normalization=`` accepts: BatchNorm, instance normalisation (each channel of each
#: volume on its own, as nnU-Net does for 3-D), or none.
NORMALIZATIONS = ("batch", "instance", None)


def conv_block3d(x, filters: int, normalization: str | None = "batch", name: str = "block"):
    """Two 3x3x3 convolutions (he_normal), each followed by a normalisation (see
    :data:`NORMALIZATIONS`) and ReLU."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    for k in (1, 2):
        x = layers.Conv3D(filters, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv{k}")(x)
        if normalization == "batch":
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn{k}")(x)
        elif normalization == "instance":
            # one group per channel: mean and variance over the voxels of one volume and channel
            x = layers.GroupNormalization(groups=-1, name=f"{name}_in{k}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{k}")(x)
    return x


def build_unet3d(
    input_shape: tuple[int, int, int, int] = (128, 128, 128, 2),
    n_classes: int = 4,
    base_filters: int = 16,
    depth: int = 4,
    dropout: float = 0.2,
    normalization: str | None = "batch",
    name: str = "unet3d",
) -> keras.Model:
    """A 3-D U-Net: volumes (B, H, W, D, C) -> class probabilities (B, H, W, D, n_classes).

    Level ``l`` of the encoder and decoder has ``base_filters * 2**l`` filters; the
    bottleneck has ``base_filters * 2**depth``.  H, W and D must be divisible by
    ``2**depth``.  The output is float32 (softmax over the last axis), even under a
    mixed-precision policy.  ``normalization``: ``"batch"`` (the report's), ``"instance"``
    or None (see the module's docstring).

    Parameter counts for 2 input channels and ``n_classes=4``, with BatchNorm (total, and
    trainable, i.e. less the BatchNorm moving statistics); they do not depend on H, W and D:

    ============  =====  ==========  ==========
    base_filters  depth       total   trainable
    ============  =====  ==========  ==========
    16            4       5,651,284   5,648,340
    16            3       1,403,860   1,402,452
    8             3         352,108     351,404
    ============  =====  ==========  ==========

    A 3x3x3 kernel has three times the weights of a 3x3 one, so each count is about three
    times that of the 2-D U-Net of the same setting; as there, each extra level or a
    doubling of ``base_filters`` multiplies it by about 4.
    """
    spatial = input_shape[:3]
    check_size(spatial, depth)

    inputs = keras.Input(shape=input_shape, name="images")

    # Encoder: keep each level's features for the skip connection, then halve every side.
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block3d(x, base_filters * 2**level, normalization, name=f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling3D(2, name=f"enc{level}_pool")(x)

    x = conv_block3d(x, base_filters * 2**depth, normalization, name="bottleneck")
    x = layers.Dropout(dropout, name="bottleneck_dropout")(x)

    # Decoder: double every side, join the encoder's features of that size, convolve.
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = layers.Conv3DTranspose(filters, 2, strides=2, padding="same", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = conv_block3d(x, filters, normalization, name=f"dec{level}")

    x = layers.Conv3D(n_classes, 1, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
