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

``normalize``: how each volume's intensities are scaled
(:func:`bratslib.data.preprocess.normalize_intensity`), by default ``"volume"``.

``postprocess``: what is done to a segmentation model's predicted label map before it is saved
or scored (:data:`POSTPROCESSING`, :func:`bratslib.evaluate.postprocess_labels`): ``"none"`` in every profile, as the report
scores its models; chapter 12 trains a U-Net for ``"largest"`` (keep the largest connected tumour).
The run records it in ``config.json`` and its evaluations use it.

``mirror``: whether a segmentation model predicts with test-time mirroring, the mean of its
class probabilities over the case and its mirror images (:func:`bratslib.evaluate.predict_probabilities`):
False in every profile, as the report predicts; chapter 12 trains a U-Net for True.  Recorded
and used like ``postprocess``.

``crop``: the ``tiny`` and ``smoke`` profiles crop each case to the square around its brain
before resizing (:func:`bratslib.data.preprocess.brain_box`: 128 pixels then span the brain,
not the 240 mm field of view); ``full`` resizes the whole slice, as the report does.

Any setting can be overridden from the chapter's ``parameters`` cell (``epochs`` and the
like); :func:`profile_settings` merges them.  Every value ends up in the run's
``config.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The learning-rate schedules a profile's ``lr_schedule`` names (:func:`bratslib.training.train`):
#: halve the rate on a plateau, or warm up and decay along a cosine.
LR_SCHEDULES = ("plateau", "cosine")

#: What a segmentation profile's ``postprocess`` names (:func:`bratslib.evaluate.postprocess_labels`):
#: the network's most probable class as it is, or only the largest connected tumour kept.
POSTPROCESSING = ("none", "largest")


def check_postprocess(postprocess: str) -> str:
    """``postprocess`` if it names one of :data:`POSTPROCESSING`, else ValueError."""
    if postprocess not in POSTPROCESSING:
        raise ValueError(f"postprocess={postprocess!r}: use one of {', '.join(POSTPROCESSING)}")
    return postprocess


def _check_mirror(mirror) -> bool:
    """``mirror`` if it is True or False, else ValueError (a string such as ``"no"`` is not False)."""
    if not isinstance(mirror, bool):
        raise ValueError(f"mirror={mirror!r}: use True or False")
    return mirror


#: Settings shared by the 2-D segmentation chapters (U-Net, Attention U-Net, ...).
#:
#: ``smoke`` is one training budget for every 2-D segmentation model: the same 20 training
#: cases, 64 x 64 crops of the brain, batches of 16 and 256 optimizer steps (16 epochs of 256
#: slices, 60 % of them with tumour).  The budget is counted in steps, not in wall time: the
#: same steps give every model the same updates on the same slices, whatever the machine and
#: its load, so a run is reproducible; what each model costs is then measured beside it
#: (seconds per epoch in every run's history).  64 x 64 rather than the report's 128 x 128: on a
#: 2-core CPU a step at 128 costs four times as much, and 256 steps at 128 would not fit the
#: book's half hour (``benchmarks/bench_train.py``); cropped to the brain first, 64 pixels still
#: span it at about 2.5 mm.
_SEG2D: dict[str, dict[str, Any]] = {
    "tiny": dict(mode="2d", modalities=("flair", "t1ce"), normalize="volume",
                 size=128, crop=True, epochs=2, batch_size=8,
                 samples_per_epoch=32, val_samples=16, foreground_fraction=0.5, learning_rate=1e-3,
                 lr_schedule="plateau", augment=False, lr_patience=3, stop_patience=8, baseline_cases=2,
                 postprocess="none", mirror=False,
                 split=(0.7, 0.15, 0.15)),
    "smoke": dict(mode="2d", modalities=("flair", "t1ce"), normalize="volume",
                  size=64, crop=True, epochs=16, batch_size=16,
                  samples_per_epoch=256, val_samples=128, foreground_fraction=0.6, learning_rate=2e-3,
                  lr_schedule="plateau", augment=False, lr_patience=3, stop_patience=8, baseline_cases=6,
                  postprocess="none", mirror=False,
                  split=(0.5, 0.2, 0.3)),
    "full": dict(mode="2d", modalities=("flair", "t1ce"), normalize="volume",
                 size=128, crop=False, epochs=50, batch_size=16,
                 samples_per_epoch=None, val_samples=None, foreground_fraction=None, learning_rate=1e-3,
                 lr_schedule="plateau", augment=True, lr_patience=4, stop_patience=10, baseline_cases=40,
                 postprocess="none", mirror=False,
                 split=(0.7, 0.15, 0.15)),
}
#: The report feeds ResNet50 three channels: FLAIR, T1ce and a placeholder; the book uses T2.
_THREE_CHANNELS = {"modalities": ("flair", "t1ce", "t2")}
#: The ResNet50 chapters: three channels, the same budget (ResNet50 is 25 M parameters; without
#: ImageNet weights, offline, its encoder starts from random weights).
_RESNET: dict[str, dict[str, Any]] = {
    "tiny": {**_SEG2D["tiny"], **_THREE_CHANNELS, "size": 32},
    "smoke": {**_SEG2D["smoke"], **_THREE_CHANNELS},
    "full": {**_SEG2D["full"], **_THREE_CHANNELS},
}
#: Chapter 8, tumour / no-tumour slice classification: ResNet18 on three channels, 128 x 128 (the
#: report's input) under ``full`` and 64 x 64 under ``smoke`` as in the other chapters, half the
#: slices of each training epoch with tumour, cross-entropy, best epoch by validation ROC AUC.
_CLASSIFY: dict[str, dict[str, Any]] = {
    name: {**{k: v for k, v in _SEG2D[name].items() if k not in ("baseline_cases", "postprocess", "mirror")}, **_THREE_CHANNELS,
           "n_classes": 2, "min_tumour_pixels": 20, "foreground_fraction": 0.5, **changes}
    for name, changes in {
        "tiny": dict(size=32),
        "smoke": dict(epochs=6, batch_size=32, samples_per_epoch=512, val_samples=256, learning_rate=1e-3),
        "full": dict(epochs=30, batch_size=32, samples_per_epoch=None, val_samples=None, foreground_fraction=None),
    }.items()
}
#: The 3-D chapter: whole volumes resized to S^3 (the report's 128^3; 64^3 on the CPU), batch 1.
#: Under ``smoke`` about the 2-D chapters' number of steps: 13 epochs of the 20 training volumes,
#: 260 steps of one volume each (a 64^3 volume holds as many voxels as 64 slices), at a learning
#: rate of 5e-3 rather than the 2-D chapters' 2e-3 (at 2e-3 the validation Dice was still climbing
#: when the steps ran out; chapter 3's exercise 4 compares the two).  5e-3 is near the largest
#: rate this network takes: with some seeds it sits near Dice 0 for its first epochs.
_SEG3D: dict[str, dict[str, Any]] = {
    "tiny": {**_SEG2D["tiny"], "mode": "3d", "size": 16, "batch_size": 1, "samples_per_epoch": None,
             "val_samples": None, "foreground_fraction": None},
    "smoke": {**_SEG2D["smoke"], "mode": "3d", "size": 64, "epochs": 13, "batch_size": 1, "samples_per_epoch": None,
              "val_samples": None, "foreground_fraction": None, "learning_rate": 5e-3},
    "full": {**_SEG2D["full"], "mode": "3d", "batch_size": 1},
}

#: Per chapter: the profile settings, each with the model's keyword arguments under ``model``.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "unet2d": {
        "tiny": {**_SEG2D["tiny"], "model": dict(base_filters=4, depth=2, dropout=0.0)},
        "smoke": {**_SEG2D["smoke"], "model": dict(base_filters=16, depth=3, dropout=0.1)},
        "full": {**_SEG2D["full"], "model": dict(base_filters=32, depth=4, dropout=0.2)},
    },
    # one volume per batch: instance normalisation on the CPU (see bratslib.models.unet3d), the
    # report's BatchNorm in ``full``
    "unet3d": {
        "tiny": {**_SEG3D["tiny"], "model": dict(base_filters=2, depth=2, dropout=0.0, normalization="instance")},
        "smoke": {**_SEG3D["smoke"], "model": dict(base_filters=8, depth=3, dropout=0.1, normalization="instance")},
        "full": {**_SEG3D["full"], "model": dict(base_filters=16, depth=4, dropout=0.2, normalization="batch")},
    },
    # smoke: the last three decoder blocks have 32 filters, not 32, 16 and 8 (the report's widths
    # halved).  With 16 and 8 channels at the top, the randomly initialised encoder (offline) sat
    # at validation Dice ~0 for half its epochs and took off at an epoch that moved with every
    # change; with 32 it learns from the first epochs, at about the same cost (chapter 4's
    # exercise 4 compares the two).
    "resnet50_unet": {
        "tiny": {**_RESNET["tiny"], "model": dict(encoder_weights=None, decoder_filters=(16, 8, 8, 4, 4))},
        "smoke": {**_RESNET["smoke"], "model": dict(encoder_weights="imagenet", decoder_filters=(128, 64, 32, 32, 32))},
        "full": {**_RESNET["full"], "model": dict(encoder_weights="imagenet", decoder_filters=(256, 128, 64, 32, 16))},
    },
    "attention_unet": {
        "tiny": {**_SEG2D["tiny"], "model": dict(base_filters=4, depth=2, dropout=0.0)},
        "smoke": {**_SEG2D["smoke"], "model": dict(base_filters=16, depth=3, dropout=0.1)},
        "full": {**_SEG2D["full"], "model": dict(base_filters=32, depth=4, dropout=0.2)},
    },
    "transunet": {
        "tiny": {**_SEG2D["tiny"], "model": dict(base_filters=4, depth=2, embed_dim=16, num_heads=2, num_layers=1,
                                                 mlp_dim=32, dropout=0.0)},
        "smoke": {**_SEG2D["smoke"], "model": dict(base_filters=8, depth=3, embed_dim=64, num_heads=2,
                                                      num_layers=2, mlp_dim=128, dropout=0.1)},
        "full": {**_SEG2D["full"], "model": dict(base_filters=32, depth=4, embed_dim=256, num_heads=8, num_layers=4,
                                                 mlp_dim=1024, dropout=0.1)},
    },
    "quantum": {
        "tiny": {**_CLASSIFY["tiny"], "model": dict(width=4), "classical_head": dict(hidden=(16,), dropout=0.5),
                 "quantum_head": dict(n_qubits=2, n_layers=1)},
        "smoke": {**_CLASSIFY["smoke"], "model": dict(width=16), "classical_head": dict(hidden=(256,), dropout=0.5),
                  "quantum_head": dict(n_qubits=4, n_layers=6)},
        "full": {**_CLASSIFY["full"], "model": dict(width=64), "classical_head": dict(hidden=(256,), dropout=0.5),
                 "quantum_head": dict(n_qubits=4, n_layers=6)},
    },
    "deeplabv3plus": {
        "tiny": {**_RESNET["tiny"], "model": dict(encoder_weights=None, aspp_filters=16)},
        # at 64 x 64 the stride-16 map is 4 x 4: the paper's rates (6, 12, 18) would see only padding,
        # at four times the CPU time of rates (1, 2, 3) (dilated convolutions on a tiny map)
        "smoke": {**_RESNET["smoke"], "model": dict(encoder_weights="imagenet", aspp_filters=128, atrous_rates=(1, 2, 3))},
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
            settings[key] = (check_postprocess(value) if key == "postprocess"
                             else _check_mirror(value) if key == "mirror" else value)
    return settings


def optimizer_steps(settings: Mapping[str, Any]) -> int | None:
    """The number of optimizer steps a run of ``settings`` takes when it runs every epoch:
    ``epochs`` x ``samples_per_epoch / batch_size``; None when an epoch is the whole training
    set (``samples_per_epoch`` None: the count depends on the data)."""
    if settings.get("samples_per_epoch") is None:
        return None
    return int(settings["epochs"]) * -(-int(settings["samples_per_epoch"]) // int(settings["batch_size"]))
