"""TransUNet (Chen et al., 2021), as the report uses it (section 2.3.5).

A CNN encoder shrinks the image ``depth`` times; each pixel of its deepest feature map
becomes a token (a 1x1 "patch"), and a Transformer encoder lets every token attend to every
other, so the bottleneck sees the whole slice at once.  The tokens are folded back into a
feature map and a cascaded upsampling decoder (CUP) doubles the size ``depth`` times,
concatenating the CNN's feature map of the same size (the skip connection) at each level.
A 1x1 convolution with a softmax gives one probability per class and pixel.

    images -> [res block, f] ------------------- skip -------------------> [concat, conv x2, f] -> 1x1 softmax
                  | stride 2                                                 ^ bilinear up 2x
             [res block, 2f] ----------- skip ----------> [concat, conv x2, 2f]
                  |                                          ^
                 ...                                        ...
             [res block, stride 2, f * 2**depth]          [conv 3x3, f * 2**depth]
                  | 1x1 conv: patch embedding                ^ reshape to (h, w, D)
             tokens (h * w, D) + position -> transformer x num_layers -> LayerNorm

with ``f = base_filters``, ``D = embed_dim`` and ``h, w = H / 2**depth, W / 2**depth``.

The paper's encoder is a ResNet-50 (its stages at 1/4, 1/8 and 1/16 of a 224x224 image)
followed by a ViT-B/16 (12 layers, D = 768, 12 heads, MLP 3072), both pre-trained on
ImageNet-21k: 196 tokens, about 100 M parameters, a GPU model.  We use a compact residual CNN
of our own and a smaller transformer, trained from scratch, so that the model trains on a
CPU and takes any number of input channels (the book's default is two, FLAIR and T1ce; the
report used three).  The paper's encoder remains an option:
``keras.applications.ResNet50(include_top=False, input_shape=(H, W, 3))`` has its skips at
``"conv1_relu"``, ``"conv2_block3_out"``, ``"conv3_block4_out"`` and the deepest map at
``"conv4_block6_out"`` (i.e. ``depth=4``); ImageNet weights need three channels.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from bratslib.models.resnet_classifier import basic_block
from bratslib.models.unet2d import BN_MOMENTUM, check_size, conv_block


@keras.saving.register_keras_serializable(package="bratslib")
class PositionEmbedding(layers.Layer):
    """Adds a learned vector to each token, (B, N, D) -> (B, N, D), so that attention,
    which is blind to order, knows where each token sits in the image."""

    def __init__(self, stddev: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.stddev = float(stddev)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=tuple(input_shape[1:]),
            initializer=keras.initializers.TruncatedNormal(stddev=self.stddev),
            name="embeddings",
        )

    def call(self, tokens):
        return tokens + self.embeddings

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


def transformer_block(x, num_heads: int, mlp_dim: int, dropout: float, name: str = "transformer"):
    """Pre-norm ViT block: x + attention(norm(x)), then x + MLP(norm(x)) with a GELU."""
    embed_dim = x.shape[-1]
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    h = layers.MultiHeadAttention(num_heads, embed_dim // num_heads, name=f"{name}_attention")(h, h)
    h = layers.Dropout(dropout, name=f"{name}_dropout1")(h)
    x = layers.Add(name=f"{name}_add1")([x, h])
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    h = layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp1")(h)
    h = layers.Dropout(dropout, name=f"{name}_dropout2")(h)
    h = layers.Dense(embed_dim, name=f"{name}_mlp2")(h)
    h = layers.Dropout(dropout, name=f"{name}_dropout3")(h)
    return layers.Add(name=f"{name}_add2")([x, h])


def build_transunet(
    input_shape: tuple[int, int, int] = (128, 128, 2),
    n_classes: int = 4,
    base_filters: int = 32,
    depth: int = 4,
    embed_dim: int = 256,
    num_heads: int = 8,
    num_layers: int = 4,
    mlp_dim: int = 1024,
    dropout: float = 0.1,
    name: str = "transunet",
) -> keras.Model:
    """A TransUNet: images (B, H, W, C) -> class probabilities (B, H, W, n_classes).

    Level ``l`` of the CNN encoder and of the decoder has ``base_filters * 2**l`` filters;
    the deepest map, level ``depth``, has ``base_filters * 2**depth`` and gives
    ``(H / 2**depth) * (W / 2**depth)`` tokens of size ``embed_dim`` to ``num_layers``
    transformer blocks with ``num_heads`` heads and an MLP of width ``mlp_dim``.  H and W
    must be divisible by ``2**depth``, ``embed_dim`` by ``num_heads``.  ``dropout`` acts on
    the tokens and in each block (as in ViT, not on the attention weights).  The output is
    float32 (softmax over the last axis), even under a mixed-precision policy.

    Parameter counts for 2 input channels and ``n_classes=4`` (total, and trainable, i.e.
    less the BatchNorm moving statistics); the first two rows are report-like, the last is
    the CPU smoke setting.  The position embedding makes them depend on H and W, here 128
    (and ties a model to the input size it was built for):

    ============  =====  =========  =========  ==========  =======  ==========  ==========
    base_filters  depth  embed_dim  num_heads  num_layers  mlp_dim       total   trainable
    ============  =====  =========  =========  ==========  =======  ==========  ==========
    32            4      256        8          4           1024     12,523,332  12,514,436
    32            4      256        8          12          1024     18,841,412  18,832,516
    8             3      64         2          2           128         251,156     250,084
    ============  =====  =========  =========  ==========  =======  ==========  ==========

    The attention layers are named ``transformer{i}_attention``, ``i = 0 .. num_layers - 1``.
    To see where block ``i`` looks, compute its (normalised) input, then call its attention
    layer on it, eagerly, with ``return_attention_scores=True``::

        norm = keras.Model(model.input, model.get_layer(f"transformer{i}_norm1").output)
        tokens = norm.predict(images)  # (B, h*w, embed_dim)
        attention = model.get_layer(f"transformer{i}_attention")
        _, scores = attention(tokens, tokens, return_attention_scores=True)  # (B, heads, h*w, h*w)

    (A second *symbolic* call with two outputs is rejected by Keras 3.15's graph check.)
    :func:`attention_maps` does this for every block.
    """
    height, width = input_shape[:2]
    factor = 2**depth
    check_size((height, width), depth)
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim = {embed_dim} must be divisible by num_heads = {num_heads}")

    inputs = keras.Input(shape=input_shape, name="images")

    # CNN encoder: keep each level's features for the skip connection; each level halves.
    x, skips = basic_block(inputs, base_filters, name="enc0"), []
    for level in range(1, depth + 1):
        skips.append(x)
        x = basic_block(x, base_filters * 2**level, strides=2, name=f"enc{level}")

    # Transformer encoder on the deepest map: one token per pixel, plus its position.
    h, w = height // factor, width // factor
    x = layers.Conv2D(embed_dim, 1, name="patch_embedding")(x)
    x = layers.Reshape((h * w, embed_dim), name="tokens")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    x = layers.Dropout(dropout, name="tokens_dropout")(x)
    for i in range(num_layers):
        x = transformer_block(x, num_heads, mlp_dim, dropout, name=f"transformer{i}")
    x = layers.LayerNormalization(epsilon=1e-6, name="transformer_norm")(x)

    # Cascaded upsampling decoder: back to a feature map, then double, join, convolve.
    x = layers.Reshape((h, w, embed_dim), name="feature_map")(x)
    x = layers.Conv2D(base_filters * factor, 3, padding="same", use_bias=False, name="bottleneck_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="bottleneck_bn")(x)
    x = layers.Activation("relu", name="bottleneck_relu")(x)
    for level in reversed(range(depth)):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = conv_block(x, base_filters * 2**level, name=f"dec{level}")

    x = layers.Conv2D(n_classes, 1, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def attention_maps(model: keras.Model, images) -> list[np.ndarray]:
    """Where each transformer block of a TransUNet looks, for a batch of images.

    Args:
        model: a model of :func:`build_transunet` (trained or not).
        images: (B, H, W, C) float, the model's input.

    Returns:
        One array per block, in order: float32 ``(B, heads, N, N)``, ``N = h * w`` tokens
        (row-major over the ``h x w`` deepest map, ``h = H / 2**depth``); row ``q`` holds the
        softmax weights token ``q`` gives every token (each row sums to 1).
    """
    blocks = sorted(int(layer.name.removeprefix("transformer").removesuffix("_attention")) for layer in model.layers
                    if layer.name.startswith("transformer") and layer.name.endswith("_attention"))
    if not blocks:
        raise ValueError(f"{model.name} has no transformer blocks (no layer named transformer<i>_attention)")
    norms = keras.Model(model.input, [model.get_layer(f"transformer{i}_norm1").output for i in blocks])
    tokens = norms(np.asarray(images, np.float32), training=False)
    tokens = tokens if len(blocks) > 1 else [tokens]
    maps = []
    for i, x in zip(blocks, tokens):
        _, scores = model.get_layer(f"transformer{i}_attention")(x, x, return_attention_scores=True, training=False)
        maps.append(np.asarray(keras.ops.convert_to_numpy(scores), np.float32))
    return maps
