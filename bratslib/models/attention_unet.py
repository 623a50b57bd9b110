"""Attention U-Net (Oktay et al., 2018), one of the six networks the report compares.

The 2-D U-Net of :mod:`bratslib.models.unet2d`, with an additive attention gate on every
skip connection.  A plain skip hands the decoder all of the encoder's features, background
included; a gate first weighs each pixel of them by a coefficient in [0, 1], computed from
the skip features ``x`` and a gating signal ``g``, the coarser decoder features that are
about to be upsampled, which know from more context where the tumour is:

    x (H, W, c) --- 2x2 conv, stride 2 ---> theta_x --+
                                                      + -> relu -> 1x1 conv to 1 -> sigmoid
    g (H/2, W/2, 2c) ------- 1x1 conv ----> phi_g ----+                                |
                                                              bilinear upsampling x2  <-+
    x * alpha  <------------------------------------  alpha (H, W, 1): "att{l}_coefficients"

The gate works at ``g``'s resolution, as in the authors' code: ``theta_x`` brings ``x``
down to it with a strided convolution, which costs four times less than bringing ``g`` up.
Its kernel is 2x2 rather than 1x1 so that it sees every pixel of ``x`` and not one in four.
The coefficients are then upsampled to ``x``'s size; bilinear interpolation keeps them in
[0, 1].  The gated skip is concatenated with the upsampled decoder features, as in the
U-Net; the rest of the network is the U-Net's.

The coefficients of level ``l`` (0 the finest) are the output of the layer named
``f"att{l}_coefficients"``; a sub-model returns them alongside the prediction::

    maps = [model.get_layer(f"att{l}_coefficients").output for l in range(depth)]
    explain = keras.Model(model.inputs, [model.output, *maps])
    probabilities, *alphas = explain.predict(images)  # alphas[l]: (B, H / 2**l, W / 2**l, 1)

which is what :func:`attention_coefficients` does.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from bratslib.models.unet2d import check_size, conv_block, encoder


def attention_gate(x, g, inter_filters: int, name: str = "att"):
    """Weigh the skip features ``x`` (H, W) by coefficients computed with ``g`` (H/2, W/2)."""
    theta_x = layers.Conv2D(inter_filters, 2, strides=2, use_bias=False, name=f"{name}_theta_x")(x)
    phi_g = layers.Conv2D(inter_filters, 1, name=f"{name}_phi_g")(g)
    f = layers.Add(name=f"{name}_add")([theta_x, phi_g])
    f = layers.Activation("relu", name=f"{name}_relu")(f)
    psi = layers.Conv2D(1, 1, name=f"{name}_psi")(f)
    alpha = layers.Activation("sigmoid", name=f"{name}_sigmoid")(psi)
    alpha = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_coefficients")(alpha)
    return layers.Multiply(name=f"{name}_gated")([x, alpha])  # alpha broadcasts over channels


def build_attention_unet(
    input_shape: tuple[int, int, int] = (128, 128, 2),
    n_classes: int = 4,
    base_filters: int = 32,
    depth: int = 4,
    dropout: float = 0.2,
    batch_norm: bool = True,
    name: str = "attention_unet",
) -> keras.Model:
    """An Attention U-Net: images (B, H, W, C) -> class probabilities (B, H, W, n_classes).

    Level ``l`` of the encoder and decoder has ``base_filters * 2**l`` filters, its gate
    half as many intermediate channels; the bottleneck has ``base_filters * 2**depth``.
    H and W must be divisible by ``2**depth``.  The output is float32 (softmax over the
    last axis), even under a mixed-precision policy.

    Parameter counts for 2 input channels and ``n_classes=4``, with BatchNorm (total, and
    trainable, i.e. less the BatchNorm moving statistics); they do not depend on H and W:

    ============  =====  =========  =========
    base_filters  depth      total  trainable
    ============  =====  =========  =========
    32            4      8,033,288  8,027,400
    16            3        500,999    499,591
    8             3        126,279    125,575
    ============  =====  =========  =========

    The gates add 3.4% to the 2-D U-Net of the same setting.
    """
    check_size(input_shape[:2], depth)
    inputs = keras.Input(shape=input_shape, name="images")
    x, skips = encoder(inputs, base_filters, depth, dropout, batch_norm)

    # Decoder: gate the skip with the coarser features, then upsample, join and convolve.
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        skip = attention_gate(skips[level], x, max(filters // 2, 1), name=f"att{level}")
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skip])
        x = conv_block(x, filters, batch_norm, name=f"dec{level}")

    x = layers.Conv2D(n_classes, 1, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def attention_coefficients(model: keras.Model, images) -> list[np.ndarray]:
    """The gates' coefficients for a batch of images, one array per level.

    Args:
        model: a model of :func:`build_attention_unet` (trained or not).
        images: (B, H, W, C) float, the model's input.

    Returns:
        ``[alpha_0, alpha_1, ...]``, level 0 the finest: float32 ``(B, H / 2**l, W / 2**l)``,
        values in [0, 1], the weight each pixel of that level's skip features passes with.
    """
    depth = sum(layer.name.endswith("_coefficients") for layer in model.layers)
    if depth == 0:
        raise ValueError(f"{model.name} has no attention gates (no layer named att<l>_coefficients)")
    maps = [model.get_layer(f"att{level}_coefficients").output for level in range(depth)]
    out = keras.Model(model.input, maps)(np.asarray(images, np.float32), training=False)
    return [np.asarray(keras.ops.convert_to_numpy(a), np.float32)[..., 0] for a in (out if depth > 1 else [out])]
