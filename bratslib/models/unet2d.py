"""2-D U-Net (Ronneberger et al., 2015), as the report uses it (section 2.3.1).

An encoder halves the image and doubles the filters ``depth`` times; a bottleneck with
dropout sits at the bottom; a decoder upsamples back, concatenating the encoder's feature
map of the same size (the skip connection) at each level.  A 1x1 convolution with a
softmax gives one probability per class and pixel.

    images -> [conv x2, f] ------------- skip -------------> [concat, conv x2, f] -> 1x1 softmax
                   | max-pool 2x2                              ^ up-conv 2x2
              [conv x2, 2f] ------- skip -------> [concat, conv x2, 2f]
                   |                                  ^
                  ...  bottleneck: conv x2, f * 2**depth, dropout

with ``f = base_filters``.  The defaults are the book's 2-D setting: 128x128 axial slices
with two channels in, four classes (BraTS labels 0, 1, 2, 4) out.
"""

from __future__ import annotations

import keras
from keras import layers


#: Momentum of the BatchNorm moving statistics.  Keras' default, 0.99, averages over ~100
#: steps: a short CPU run (a few dozen steps per epoch) would validate with statistics that
#: still remember their initial values.  0.9 (PyTorch's default) settles in ~10 steps.
BN_MOMENTUM = 0.9


def conv_block(x, filters: int, batch_norm: bool = True, name: str = "block"):
    """Two 3x3 convolutions (he_normal), each followed by optional BatchNorm and ReLU."""
    for k in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv{k}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn{k}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{k}")(x)
    return x


def check_size(size, depth: int, why: str | None = None) -> None:
    """Raise ValueError unless each spatial size divides by ``2**depth`` (one halving per
    level); ``why`` names the reason in the message (default: the depth)."""
    factor = 2**depth
    if any(n % factor for n in size):
        reason = f"by {factor} ({why})" if why else f"by 2**depth = {factor} (depth={depth})"
        raise ValueError(f"input size {'x'.join(map(str, size))} must be divisible {reason}")


def encoder(inputs, base_filters: int, depth: int, dropout: float, batch_norm: bool = True):
    """The contracting path and the bottleneck: returns (bottleneck features, skips by level).

    Level ``l`` is a :func:`conv_block` of ``base_filters * 2**l`` filters, kept as the skip
    connection, then a 2x2 max-pooling; the bottleneck has ``base_filters * 2**depth`` and dropout.
    """
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block(x, base_filters * 2**level, batch_norm, name=f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    x = conv_block(x, base_filters * 2**depth, batch_norm, name="bottleneck")
    return layers.Dropout(dropout, name="bottleneck_dropout")(x), skips


def build_unet2d(
    input_shape: tuple[int, int, int] = (128, 128, 2),
    n_classes: int = 4,
    base_filters: int = 32,
    depth: int = 4,
    dropout: float = 0.2,
    batch_norm: bool = True,
    name: str = "unet2d",
) -> keras.Model:
    """A 2-D U-Net: images (B, H, W, C) -> class probabilities (B, H, W, n_classes).

    Level ``l`` of the encoder and decoder has ``base_filters * 2**l`` filters; the
    bottleneck has ``base_filters * 2**depth``.  H and W must be divisible by
    ``2**depth``.  The output is float32 (softmax over the last axis), even under a
    mixed-precision policy.

    Parameter counts for 2 input channels and ``n_classes=4``, with BatchNorm (total, and
    trainable, i.e. less the BatchNorm moving statistics); they do not depend on H and W:

    ============  =====  =========  =========
    base_filters  depth      total  trainable
    ============  =====  =========  =========
    32            4      7,771,684  7,765,796
    16            3        484,756    483,348
    8             3        122,188    121,484
    ============  =====  =========  =========

    Each extra level multiplies the count by about 4, as does doubling ``base_filters``.
    """
    check_size(input_shape[:2], depth)
    inputs = keras.Input(shape=input_shape, name="images")
    x, skips = encoder(inputs, base_filters, depth, dropout, batch_norm)

    # Decoder: double the size, join the encoder's features of that size, convolve.
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = conv_block(x, filters, batch_norm, name=f"dec{level}")

    x = layers.Conv2D(n_classes, 1, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
