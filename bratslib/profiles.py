"""Named settings of each chapter: how big a run is, from a test to the report's training.

Every chapter has a ``profile`` parameter:

``tiny``
    what the test suite executes: a handful of steps, to prove the chapter runs end to end;
    its numbers mean nothing.
``smoke``
    what ``make book`` executes on a 2-core CPU: a smaller network and a share of the
    slices each epoch, trained for a few minutes on the synthetic data.  Enough to learn the
    synthetic tumours and to compare with the baseline, not to reproduce the report.
``full``
    the report's settings, for a GPU (Colab, Kaggle) and the real BraTS 2020 data.

Any setting can be overridden from the chapter's ``parameters`` cell (``epochs`` and the
like); :func:`profile_settings` merges them.  Every value ends up in the run's
``config.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Settings shared by the 2-D segmentation chapters (U-Net, Attention U-Net, ...).
_SEG2D: dict[str, dict[str, Any]] = {
    "tiny": dict(mode="2d", modalities=("flair", "t1ce"), size=128, epochs=2, batch_size=8,
                 samples_per_epoch=32, val_samples=16, foreground_fraction=0.5, learning_rate=1e-3,
                 augment=False, lr_patience=3, stop_patience=8, baseline_cases=2),
    "smoke": dict(mode="2d", modalities=("flair", "t1ce"), size=128, epochs=8, batch_size=16,
                  samples_per_epoch=384, val_samples=192, foreground_fraction=0.6, learning_rate=2e-3,
                  augment=False, lr_patience=3, stop_patience=8, baseline_cases=6),
    "full": dict(mode="2d", modalities=("flair", "t1ce"), size=128, epochs=50, batch_size=16,
                 samples_per_epoch=None, val_samples=None, foreground_fraction=None, learning_rate=1e-3,
                 augment=True, lr_patience=4, stop_patience=10, baseline_cases=40),
}
#: The later 2-D chapters' smoke runs are shorter, so that the whole book builds on a 2-core
#: CPU within half an hour; chapter 2 keeps the longer run for its comparison with the baseline.
_SEG2D_LATER_SMOKE = {**_SEG2D["smoke"], "epochs": 5, "samples_per_epoch": 256}
#: The report feeds ResNet50 three channels: FLAIR, T1ce and a placeholder; the book uses T2.
_THREE_CHANNELS = {"modalities": ("flair", "t1ce", "t2")}
#: The ResNet50 chapters: three channels; on the CPU 64 x 64 slices (ResNet50 is 25 M parameters).
_RESNET: dict[str, dict[str, Any]] = {
    "tiny": {**_SEG2D["tiny"], **_THREE_CHANNELS, "size": 32},
    "smoke": {**_SEG2D_LATER_SMOKE, **_THREE_CHANNELS, "size": 64},
    "full": {**_SEG2D["full"], **_THREE_CHANNELS},
}
#: The 3-D chapter: whole volumes resized to S^3 (the report's 128^3; 64^3 on the CPU), batch 1.
_SEG3D: dict[str, dict[str, Any]] = {
    "tiny": {**_SEG2D["tiny"], "mode": "3d", "size": 16, "batch_size": 1, "samples_per_epoch": None,
             "val_samples": None, "foreground_fraction": None},
    "smoke": {**_SEG2D["smoke"], "mode": "3d", "size": 64, "epochs": 12, "batch_size": 1, "samples_per_epoch": None,
              "val_samples": None, "foreground_fraction": None},
    "full": {**_SEG2D["full"], "mode": "3d", "batch_size": 1},
}

#: Per chapter: the profile settings, each with the model's keyword arguments under ``model``.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "unet2d": {
        "tiny": {**_SEG2D["tiny"], "model": dict(base_filters=4, depth=2, dropout=0.0)},
        "smoke": {**_SEG2D["smoke"], "model": dict(base_filters=16, depth=3, dropout=0.1)},
        "full": {**_SEG2D["full"], "model": dict(base_filters=32, depth=4, dropout=0.2)},
    },
    "unet3d": {
        "tiny": {**_SEG3D["tiny"], "model": dict(base_filters=2, depth=2, dropout=0.0)},
        "smoke": {**_SEG3D["smoke"], "model": dict(base_filters=8, depth=3, dropout=0.1)},
        "full": {**_SEG3D["full"], "model": dict(base_filters=16, depth=4, dropout=0.2)},
    },
    "resnet50_unet": {
        "tiny": {**_RESNET["tiny"], "model": dict(encoder_weights=None, decoder_filters=(16, 8, 8, 4, 4))},
        "smoke": {**_RESNET["smoke"], "model": dict(encoder_weights="imagenet", decoder_filters=(128, 64, 32, 16, 8))},
        "full": {**_RESNET["full"], "model": dict(encoder_weights="imagenet", decoder_filters=(256, 128, 64, 32, 16))},
    },
    "attention_unet": {
        "tiny": {**_SEG2D["tiny"], "model": dict(base_filters=4, depth=2, dropout=0.0)},
        "smoke": {**_SEG2D_LATER_SMOKE, "model": dict(base_filters=16, depth=3, dropout=0.1)},
        "full": {**_SEG2D["full"], "model": dict(base_filters=32, depth=4, dropout=0.2)},
    },
    "transunet": {
        "tiny": {**_SEG2D["tiny"], "model": dict(base_filters=4, depth=2, embed_dim=16, num_heads=2, num_layers=1,
                                                 mlp_dim=32, dropout=0.0)},
        "smoke": {**_SEG2D_LATER_SMOKE, "model": dict(base_filters=8, depth=3, embed_dim=64, num_heads=2,
                                                      num_layers=2, mlp_dim=128, dropout=0.1)},
        "full": {**_SEG2D["full"], "model": dict(base_filters=32, depth=4, embed_dim=256, num_heads=8, num_layers=4,
                                                 mlp_dim=1024, dropout=0.1)},
    },
    "deeplabv3plus": {
        "tiny": {**_RESNET["tiny"], "model": dict(encoder_weights=None, aspp_filters=16)},
        "smoke": {**_RESNET["smoke"], "model": dict(encoder_weights="imagenet", aspp_filters=128)},
        "full": {**_RESNET["full"], "model": dict(encoder_weights="imagenet", aspp_filters=256)},
    },
}


def profile_settings(chapter: str, profile: str, **overrides: Any) -> dict[str, Any]:
    """The settings of ``chapter`` under ``profile``, with the given overrides applied.

    Overrides that are None are ignored (so a notebook can pass ``epochs=epochs`` with a
    parameter defaulting to None); ``model=dict(...)`` updates the model's arguments.

    Raises:
        ValueError: an unknown chapter, profile or setting.
    """
    if chapter not in PROFILES:
        raise ValueError(f"no profiles for {chapter!r}; known: {', '.join(PROFILES)}")
    if profile not in PROFILES[chapter]:
        raise ValueError(f"unknown profile {profile!r} for {chapter}; use one of {', '.join(PROFILES[chapter])}")
    settings = {**PROFILES[chapter][profile], "model": dict(PROFILES[chapter][profile]["model"])}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in settings:
            raise ValueError(f"unknown setting {key!r} for {chapter}; settings: {', '.join(settings)}")
        if key == "model":
            if not isinstance(value, Mapping):
                raise ValueError("model= takes a dict of the model's keyword arguments")
            settings["model"].update(value)
        else:
            settings[key] = value
    return settings
