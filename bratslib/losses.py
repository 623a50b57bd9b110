"""Soft segmentation losses for ``model.compile``: Dice, focal and their sum.

All three take ``y_true`` one-hot, shape ``(B, *spatial, C)`` (``float``), and ``y_pred``
softmax probabilities of the same shape, channels last, ``C`` classes with class 0 the
background.  They work for 2D slices ``(B, H, W, C)`` and 3D volumes ``(B, H, W, D, C)``
alike, are written with ``keras.ops`` only (any Keras backend, graph mode and XLA), and are
registered as Keras serialisables (package ``bratslib``), so a model compiled with them
saves to ``.keras`` and loads back with ``keras.saving.load_model`` and no
``custom_objects``.

Example::

    model.compile(optimizer="adam", loss=DiceFocalLoss(), metrics=training_metrics())
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

__all__ = ["DiceLoss", "FocalLoss", "DiceFocalLoss"]


def _batch_dice(y_true, y_pred, smooth: float, include_background: bool):
    """Per-class soft Dice, shape ``(C,)`` (``(C - 1,)`` without background), batch pooled."""
    y_true = ops.cast(y_true, y_pred.dtype)
    axes = tuple(range(len(y_pred.shape) - 1))  # batch and every spatial axis
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return dice if include_background else dice[1:]


@keras.saving.register_keras_serializable(package="bratslib")
class DiceLoss(keras.losses.Loss):
    """Soft "batch Dice" loss: one minus the mean over classes of the soft Dice coefficient.

    For each class ``c`` the intersection and the sums run over the batch *and* all spatial
    axes together::

        dice_c = (2 * sum(y_c * p_c) + smooth) / (sum(y_c) + sum(p_c) + smooth)
        loss   = 1 - mean_c dice_c

    the mean running over classes ``1 .. C-1`` (tumour classes) unless
    ``include_background``.  The Dice is pooled over the batch rather than computed per
    sample and averaged because most 2D slices of a BraTS volume hold no tumour at all: per
    sample, a class absent from both truth and prediction gives ``0/0``, which ``smooth``
    turns into a Dice of 1 that swamps the few slices that matter, and a single false
    positive voxel on an empty slice into a Dice near 0.  Pooled over the batch, a class is
    empty only when it is absent from every sample, and then (both sums 0) its Dice is
    ``smooth / smooth = 1``: nothing to find, nothing wrongly found, no loss.

    Args:
        smooth: added to numerator and denominator; keeps the loss defined for empty
            classes and its gradient smooth.  Unitless (a count of voxels).
        include_background: whether class 0 enters the mean.  Background is most of every
            volume and its Dice is close to 1 whatever the tumour classes do, so it is left
            out by default.
        name: name of the loss.

    ``call`` returns a scalar: the batch *is* the sample, so ``sample_weight`` can only
    rescale the loss as a whole.
    """

    def __init__(self, smooth: float = 1.0, include_background: bool = False,
                 name: str = "dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)
        self.include_background = bool(include_background)

    def call(self, y_true, y_pred):
        return 1.0 - ops.mean(_batch_dice(y_true, y_pred, self.smooth, self.include_background))

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth,
                "include_background": self.include_background}


@keras.saving.register_keras_serializable(package="bratslib")
class FocalLoss(keras.losses.Loss):
    """Multi-class focal loss (Lin et al., ICCV 2017), mean over voxels and batch.

    Per voxel, with ``p`` the softmax probabilities and ``y`` the one-hot truth::

        loss = - sum_c alpha_c * (1 - p_c) ** gamma * y_c * log(clip(p_c, eps, 1))

    with ``eps = keras.config.epsilon()`` (1e-7).  The factor ``(1 - p_c) ** gamma``
    down-weights voxels already classified with confidence (the many easy background
    voxels), so the loss concentrates on the hard ones.  With ``gamma=0`` and
    ``alpha=None`` this is categorical cross-entropy (``keras.losses.CategoricalCrossentropy``
    up to its clipping of ``p`` at ``1 - eps``).

    Args:
        gamma: focusing parameter, ``>= 0``; 0 switches focusing off.
        alpha: ``None`` (every class weight 1) or a sequence of ``C`` per-class weights.
        name: name of the loss.

    ``call`` returns the per-voxel loss, shape ``(B, *spatial)``; Keras' default reduction
    (``"sum_over_batch_size"``) then takes its mean, weighted by ``sample_weight`` if given.
    """

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | None = None,
                 name: str = "focal_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else [float(a) for a in alpha]

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        eps = keras.config.epsilon()
        ce = -y_true * ops.log(ops.clip(y_pred, eps, 1.0))
        if self.gamma > 0:
            # Clipping 1 - p away from 0 keeps the gradient of x ** gamma finite at p = 1
            # for gamma < 1; the value changes by at most eps ** gamma times a term that
            # is itself ~eps.
            ce = ops.power(ops.clip(1.0 - y_pred, eps, 1.0), self.gamma) * ce
        if self.alpha is not None:
            ce = ops.convert_to_tensor(self.alpha, dtype=y_pred.dtype) * ce
        return ops.sum(ce, axis=-1)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="bratslib")
class DiceFocalLoss(keras.losses.Loss):
    """Weighted sum ``dice_weight * DiceLoss + focal_weight * FocalLoss``.

    Dice optimises the overlap of the small tumour classes directly but gives noisy
    gradients; focal loss gives a dense per-voxel signal.  The arguments are those of
    :class:`DiceLoss` and :class:`FocalLoss`; ``call`` returns a scalar (the focal term
    is its mean over voxels and batch).
    """

    def __init__(self, dice_weight: float = 1.0, focal_weight: float = 1.0,
                 smooth: float = 1.0, include_background: bool = False, gamma: float = 2.0,
                 alpha: Sequence[float] | None = None, name: str = "dice_focal_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight = float(dice_weight)
        self.focal_weight = float(focal_weight)
        self.dice = DiceLoss(smooth=smooth, include_background=include_background)
        self.focal = FocalLoss(gamma=gamma, alpha=alpha)

    def call(self, y_true, y_pred):
        return (self.dice_weight * self.dice.call(y_true, y_pred)
                + self.focal_weight * ops.mean(self.focal.call(y_true, y_pred)))

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight,
                "focal_weight": self.focal_weight, "smooth": self.dice.smooth,
                "include_background": self.dice.include_background,
                "gamma": self.focal.gamma, "alpha": self.focal.alpha}
