"""The book's architectures (six segmentation networks, chapter 8's two classifiers), one per module.

Each module holds one architecture, ``build_<name>(input_shape, n_classes, ...) ->
keras.Model``, returning an uncompiled model that maps images to per-voxel class
probabilities.  Models know nothing of files, datasets or training: that is the business of
``bratslib.data`` and ``bratslib.training``.  :func:`build_model` builds any model of the
book by its name in :data:`bratslib.registry.MODELS`.

Importing this package imports Keras (and so TensorFlow).
"""

from __future__ import annotations

import keras

from bratslib.models.attention_unet import build_attention_unet
from bratslib.models.deeplabv3plus import build_deeplabv3plus
from bratslib.models.resnet50_unet import build_resnet50_unet
from bratslib.models.transunet import build_transunet
from bratslib.models.unet2d import build_unet2d
from bratslib.models.unet3d import build_unet3d
from bratslib.registry import model_spec


def load_model(path) -> keras.Model:
    """Load a ``.keras`` file written by bratslib, in any process.

    A saved model names its custom objects (losses, metrics, layers) by their registered
    names (``bratslib>DiceFocalLoss``...); Keras finds them only once the modules that register
    them have been imported.  This imports every such module first, then calls
    ``keras.saving.load_model``.
    """
    import bratslib.losses  # noqa: F401  (registers the losses)
    import bratslib.metrics  # noqa: F401  (the training metrics)
    import bratslib.models.quantum  # noqa: F401  (QuantumLayer; imports PennyLane)

    return keras.saving.load_model(path)


def build_model(name: str, /, input_shape: tuple[int, ...], n_classes: int, **kwargs) -> keras.Model:
    """Build the model called ``name`` in :data:`bratslib.registry.MODELS` (the quantum
    classifier imports PennyLane); ``kwargs`` (a ``name=`` too) go to its builder.

    Raises:
        ValueError: an unknown name.
    """
    return model_spec(name).builder()(input_shape=input_shape, n_classes=n_classes, **kwargs)


__all__ = ["build_model", "load_model", "build_attention_unet", "build_deeplabv3plus", "build_resnet50_unet", "build_transunet", "build_unet2d", "build_unet3d"]
