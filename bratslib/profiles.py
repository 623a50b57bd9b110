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
    "tiny": dict(mode="2d", modalities=("flair", "t1ce"), size=128, epochs=2, batch_size=8, samples_per_epoch=32, val_samples=16, foreground_fraction=0.5,
                 learning_rate=1e-3, augment=False, lr_patience=3, stop_patience=8, baseline_cases=2),
    "smoke": dict(mode="2d", modalities=("flair", "t1ce"), size=128, epochs=8, batch_size=16, samples_per_epoch=384, val_samples=192, foreground_fraction=0.6,
                  learning_rate=2e-3, augment=False, lr_patience=3, stop_patience=8, baseline_cases=6),
    "full": dict(mode="2d", modalities=("flair", "t1ce"), size=128, epochs=50, batch_size=16, samples_per_epoch=None, val_samples=None, foreground_fraction=None,
                 learning_rate=1e-3, augment=True, lr_patience=4, stop_patience=10, baseline_cases=40),
}

#: Per chapter: the profile settings, each with the model's keyword arguments under ``model``.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "unet2d": {
        "tiny": {**_SEG2D["tiny"], "model": dict(base_filters=4, depth=2, dropout=0.0)},
        "smoke": {**_SEG2D["smoke"], "model": dict(base_filters=16, depth=3, dropout=0.1)},
        "full": {**_SEG2D["full"], "model": dict(base_filters=32, depth=4, dropout=0.2)},
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
