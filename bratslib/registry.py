"""The models of the book, in one table: what each is called, where it is built, trained and checked.

Every place that needs to know the book's models reads :data:`MODELS` instead of listing
them again: :func:`bratslib.models.build_model`, the results chapter's comparison
(:mod:`bratslib.comparison`), the benchmarks (``benchmarks/bench_train.py``,
``benchmarks/gpu_check.py``), the chapters' tables and the builder-contract test::

    spec = MODELS["unet2d"]
    spec.label                      # "2D U-Net", what tables and figures call it
    settings = spec.settings("smoke")   # bratslib.profiles.profile_settings("unet2d", "smoke")
    model = spec.builder()(input_shape=(128, 128, 2), n_classes=4, **settings["model"])

A model's ``name`` is its builder's name without ``build_`` (``build_unet2d`` -> ``unet2d``),
which is also how :class:`bratslib.chapter.ChapterSetup` names its runs and how
:mod:`bratslib.comparison` finds a run's model again.

Importing this module imports nothing but the standard library; :meth:`ModelSpec.builder`
imports the builder's module (Keras, and PennyLane for the quantum classifier) when called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What a model does: a class per voxel, or a class per image (tumour / no tumour slice).
TASKS = ("segmentation", "classification")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the book.

    Attributes:
        name: the key of :data:`MODELS` and the prefix of its runs' names: the builder's
            name without ``build_`` (``"unet2d"``).
        label: what tables and figures call it (``"2D U-Net"``).
        module, function: where its builder is (``"bratslib.models.unet2d"``,
            ``"build_unet2d"``); :meth:`builder` imports it.
        chapter: the chapter that trains it, its notebook's name (``notebooks/02_unet2d.ipynb``
            -> ``"02_unet2d"``).
        profile: its chapter's key in :data:`bratslib.profiles.PROFILES` (``"unet2d"``; both
            classifiers share ``"quantum"``).
        head: the profile setting with its further builder arguments (the classifiers'
            ``"classical_head"`` and ``"quantum_head"``), or None when ``model`` holds them all.
        claims: its entry in ``bratslib/claims.yml`` (the report's numbers it answers), or
            None when the report makes no claim about it.
        task: ``"segmentation"`` (input ``(S, S, C)`` or ``(S, S, S, C)``, a softmax over the
            4 classes per pixel or voxel) or ``"classification"`` (a softmax over 2 classes per
            slice).
    """

    name: str
    label: str
    module: str
    function: str
    chapter: str
    profile: str
    claims: str | None
    task: str
    head: str | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task {self.task!r} is not one of {', '.join(TASKS)}")

    def builder(self) -> Callable[..., Any]:
        """The builder, ``build_<name>(input_shape, n_classes, ...) -> keras.Model`` (imports its module)."""
        return getattr(importlib.import_module(self.module), self.function)

    def settings(self, profile: str, **overrides: Any) -> dict[str, Any]:
        """Its chapter's settings under ``profile``: :func:`bratslib.profiles.profile_settings`."""
        from bratslib.profiles import profile_settings

        return profile_settings(self.profile, profile, **overrides)

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"


#: Every model of the book, in the order of its chapters.
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("unet2d", "2D U-Net", "bratslib.models.unet2d", "build_unet2d", "02_unet2d", "unet2d",
              "unet2d", "segmentation"),
    ModelSpec("unet3d", "3D U-Net", "bratslib.models.unet3d", "build_unet3d", "03_unet3d", "unet3d",
              "unet3d", "segmentation"),
    ModelSpec("resnet50_unet", "ResNet50 U-Net", "bratslib.models.resnet50_unet", "build_resnet50_unet",
              "04_resnet50_unet", "resnet50_unet", "resnet50_unet", "segmentation"),
    ModelSpec("attention_unet", "Attention U-Net", "bratslib.models.attention_unet", "build_attention_unet",
              "05_attention_unet", "attention_unet", "attention_unet", "segmentation"),
    ModelSpec("transunet", "TransUNet", "bratslib.models.transunet", "build_transunet", "06_transunet",
              "transunet", "transunet", "segmentation"),
    ModelSpec("deeplabv3plus", "DeepLabV3+", "bratslib.models.deeplabv3plus", "build_deeplabv3plus",
              "07_deeplabv3plus", "deeplabv3plus", "deeplabv3plus", "segmentation"),
    # the report's claims are about the hybrid only; the classical classifier is the book's control
    ModelSpec("resnet_classifier", "classical ResNet classifier", "bratslib.models.resnet_classifier",
              "build_resnet_classifier", "08_quantum_vs_classical", "quantum", None, "classification",
              head="classical_head"),
    ModelSpec("quantum_classifier", "quantum ResNet classifier", "bratslib.models.quantum",
              "build_quantum_classifier", "08_quantum_vs_classical", "quantum", "quantum", "classification",
              head="quantum_head"),
)}


#: Chapter 2's threshold baseline: not a network, but scored on the same test cases and ranked
#: beside the models (:func:`bratslib.evaluate.baseline_run` keeps it as a run without a model).
BASELINE_NAME = "threshold_baseline"
BASELINE_LABEL = "threshold baseline"


def model_spec(name: str) -> ModelSpec:
    """The entry of :data:`MODELS` called ``name``.

    Raises:
        ValueError: no model has that name (the message lists those that do).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def model_label(name: str) -> str:
    """The label of the model ``name``, or ``name`` itself when it is not one of :data:`MODELS`
    (an ensemble, a model of another code version)."""
    if name == BASELINE_NAME:
        return BASELINE_LABEL
    return MODELS[name].label if name in MODELS else name


def chapter_models(chapter: str) -> list[ModelSpec]:
    """The models that the chapter ``chapter`` (a notebook name, ``"08_quantum_vs_classical"``) trains."""
    return [spec for spec in MODELS.values() if spec.chapter == chapter]


__all__ = ["BASELINE_LABEL", "BASELINE_NAME", "MODELS", "TASKS", "ModelSpec", "chapter_models", "model_label", "model_spec"]
