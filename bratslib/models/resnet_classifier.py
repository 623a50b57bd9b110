"""A compact ResNet-18 and the classical tumour / no-tumour classifier (report section 2.3.6).

The study classifies axial slices as "tumour" or "no tumour" with a ResNet18 backbone and
either a classical head (this module) or a dressed quantum circuit
(:mod:`bratslib.models.quantum`).  Both heads sit on the same backbone, built here:

    images (H, W, C)
      | stem: conv 7x7 /2, BN, ReLU, max-pool 3x3 /2 .... H/4    w channels
      | stage 1: 2 basic blocks .......................... H/4    w
      | stage 2: 2 basic blocks, the first /2 ............ H/8   2w
      | stage 3: 2 basic blocks, the first /2 ............ H/16  4w
      | stage 4: 2 basic blocks, the first /2 ............ H/32  8w
      | global average pooling ........................... (8w,)  features

with ``w = width`` (64 in He et al., 2016).  A basic block is two 3x3 convolutions with
BatchNorm, and a shortcut added before the last ReLU: the identity, or a strided 1x1
convolution with BatchNorm where the block halves the size or changes the channels.

**Trained from scratch.**  ``keras.applications`` has ResNet50 and larger, but no ResNet18,
so there are no ImageNet weights for this network in Keras: it is written here and starts
from random weights (He-normal convolutions).  The builders record this as the plain
attribute ``model.encoder_weights``, like the segmentation encoders of
:mod:`bratslib.models.backbones`, so that results never pass it off as pre-trained.  (A plain
attribute is not saved: a loaded model does not have it.)  ``width`` shrinks every stage at
once, so that a CPU smoke run can use ``width=8`` or ``16``.

**The classical head.**  Two fully-connected layers, as the report has it: a hidden ReLU layer
(``hidden=(256,)``) with dropout, then a dense layer to the classes and a softmax.  This
matches the dressed quantum head, which also has one dense layer on each side of its
circuit.  ``hidden`` takes more sizes for a deeper head, each followed by ReLU and dropout.
"""

from __future__ import annotations

import keras
from keras import layers

from bratslib.models.unet2d import BN_MOMENTUM

#: What :func:`build_resnet18_backbone` starts from; recorded as ``model.encoder_weights``.
ENCODER_WEIGHTS = "random (no ImageNet ResNet18 in keras.applications)"

#: Basic blocks per stage of ResNet-18.
BLOCKS = (2, 2, 2, 2)


def conv_bn(x, filters: int, kernel_size: int, strides: int = 1, relu: bool = True, name: str = "conv"):
    """Convolution (no bias: BatchNorm follows), BatchNorm, and optionally ReLU."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if relu:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def basic_block(x, filters: int, strides: int = 1, name: str = "block"):
    """ResNet basic block: conv3x3-BN-ReLU, conv3x3-BN, plus the shortcut, then ReLU.

    The shortcut is ``x`` itself when the shapes match, else a strided 1x1 conv with BN,
    computed as every ``strides``-th pixel followed by a 1x1 convolution: the same numbers,
    but TensorFlow 2.21's oneDNN CPU kernels crash the process (heap corruption) when they
    train a strided 1x1 convolution with few channels in graph mode, which is how Keras trains
    on a machine without a GPU (tests/test_transunet.py checks).
    """
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        if strides != 1:
            shortcut = layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample")(shortcut)
        shortcut = conv_bn(shortcut, filters, 1, relu=False, name=f"{name}_shortcut")
    x = conv_bn(x, filters, 3, strides, name=f"{name}_1")
    x = conv_bn(x, filters, 3, relu=False, name=f"{name}_2")
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(x)


def build_resnet18_backbone(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    width: int = 64,
    blocks: tuple[int, ...] = BLOCKS,
    name: str = "resnet18",
) -> keras.Model:
    """ResNet-18 without its classifier: images (B, H, W, C) -> features (B, 8 * width).

    Stage ``s`` (0-based) has ``width * 2**s`` filters and ``blocks[s]`` basic blocks; every
    stage but the first halves the size.  The output is the global average of the last
    stage.  Random weights (see the module docstring); ``model.encoder_weights`` says so.

    Parameter counts for 3 input channels (total, and trainable, i.e. less the BatchNorm
    moving statistics); they do not depend on H and W:

    =====  ==========  ==========
    width       total   trainable
    =====  ==========  ==========
    64     11,186,112  11,176,512
    16        704,496     702,096
    8         177,912     176,712
    =====  ==========  ==========

    ``width=64`` is He et al.'s ResNet-18 (11,176,512 trainable weights less its 1000-class
    layer, as in torchvision).  Halving ``width`` divides the count by about 4.
    """
    inputs = keras.Input(shape=input_shape, name="images")

    # Stem: a large strided convolution and a max-pool bring the image to 1/4 of its size.
    x = conv_bn(inputs, width, 7, strides=2, name="stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)

    # Four stages of basic blocks; from the second on, the first block halves the size and
    # doubles the filters (its shortcut becomes a strided 1x1 convolution).
    for stage, n_blocks in enumerate(blocks):
        filters = width * 2**stage
        for block in range(n_blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, filters, strides, name=f"stage{stage + 1}_block{block + 1}")

    outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.encoder_weights = ENCODER_WEIGHTS
    return model


def build_resnet_classifier(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    n_classes: int = 2,
    width: int = 64,
    hidden: tuple[int, ...] = (256,),
    dropout: float = 0.5,
    name: str = "resnet_classifier",
) -> keras.Model:
    """The classical ResNet classifier: images (B, H, W, C) -> class probabilities (B, n_classes).

    :func:`build_resnet18_backbone` (a nested model named ``resnet18``, so that it can be
    frozen as one: ``model.get_layer("resnet18").trainable = False``), then a dense ReLU
    layer with dropout per entry of ``hidden``, then a dense layer to ``n_classes`` and a
    float32 softmax named ``probabilities``.

    Parameter counts for 3 input channels and ``n_classes=2`` (total, and trainable):

    =====  ==========  ==========  ==========
    width  hidden           total   trainable
    =====  ==========  ==========  ==========
    64     (256,)      11,317,954  11,308,354
    16     (256,)        738,034     735,634
    8      (32,)         180,058     178,858
    =====  ==========  ==========  ==========
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = build_resnet18_backbone(input_shape, width)(inputs)

    # The head: fully-connected ReLU layers, each with dropout, then one to the classes.
    for k, units in enumerate(hidden, start=1):
        x = layers.Dense(units, activation="relu", name=f"fc{k}")(x)
        x = layers.Dropout(dropout, name=f"fc{k}_dropout")(x)
    x = layers.Dense(n_classes, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)

    model = keras.Model(inputs, outputs, name=name)
    model.encoder_weights = ENCODER_WEIGHTS
    return model
