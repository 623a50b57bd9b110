"""The model registry, and the contract every builder in it keeps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from bratslib.claims import load_all_claims
from bratslib.profiles import PROFILES
from bratslib.registry import MODELS, TASKS, chapter_models, model_label, model_spec

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    # PennyLane 0.45 still supports its TensorFlow interface, but warns at every new trace.
    pytest.mark.filterwarnings("ignore:Support for the TensorFlow interface is deprecated"),
    # a compiled model saved before its first step has no optimizer state to restore
    pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer"),
]


@pytest.mark.parametrize("spec", MODELS.values(), ids=lambda spec: spec.name)
def test_builder_contract(spec, tmp_path):
    """Built at the ``tiny`` profile as its chapter builds it: a named model from ``images`` to a
    softmax of the right shape, that compiles with its task's loss and metrics and, saved,
    loads back through ``bratslib.models.load_model`` with the same predictions."""
    from bratslib.chapter import ChapterSetup, classification_training
    from bratslib.losses import DiceFocalLoss
    from bratslib.metrics import training_metrics
    from bratslib.models import load_model

    setup = ChapterSetup(spec.profile, "tiny", 0, spec.settings("tiny"), tmp_path, {})
    kwargs = setup.builder_kwargs(spec)
    builder = spec.builder()
    assert builder.__name__ == f"build_{spec.name}"  # run names are builder names (ChapterSetup.run_name)
    keras.utils.set_random_seed(0)
    model = builder(**kwargs)
    assert model.name == spec.name and model.input.name == "images" and model.layers[-1].name == "probabilities"
    assert model.count_params() > 0

    x = np.random.default_rng(0).random((2, *setup.input_shape), dtype=np.float32)
    y = model.predict(x, verbose=0)
    n_classes = kwargs["n_classes"]
    spatial = () if spec.is_classifier else setup.input_shape[:-1]
    assert y.shape == (2, *spatial, n_classes) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)

    task = classification_training() if spec.is_classifier else {"loss": DiceFocalLoss(), "metrics": training_metrics()}
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=task["loss"], metrics=task["metrics"])
    model.save(tmp_path / f"{spec.name}.keras")
    loaded = load_model(tmp_path / f"{spec.name}.keras")
    assert loaded.name == spec.name and loaded.count_params() == model.count_params()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), y, atol=1e-6)
    truth = np.eye(n_classes, dtype=np.float32)[np.random.default_rng(1).integers(0, n_classes, (2, *spatial))]
    logs = loaded.evaluate(x, truth, verbose=0, return_dict=True)
    assert sorted(logs) == sorted(["loss", *(m.name for m in task["metrics"])])


def test_every_entry_names_a_real_chapter_profile_and_claims_entry():
    claims = load_all_claims()
    chapters = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    for spec in MODELS.values():
        assert spec.task in TASKS, spec.name
        assert spec.chapter in chapters, spec.name
        settings = spec.settings("tiny")
        assert spec.head is None or spec.head in settings, spec.name
        assert spec.claims is None or "claims" in claims[spec.claims], spec.name
    # every profile and every model's claims entry belongs to a model of the registry
    assert set(PROFILES) == {spec.profile for spec in MODELS.values()}
    answered = {spec.claims for spec in MODELS.values()} - {None}
    assert answered == {key for key, entry in claims.items() if isinstance(entry, dict) and "claims" in entry} - {"report"}
    assert len({spec.label for spec in MODELS.values()}) == len(MODELS)


def test_lookups():
    assert model_spec("unet2d") is MODELS["unet2d"] and MODELS["unet2d"].label == "2D U-Net"
    with pytest.raises(ValueError, match="unknown model 'unet4d'; known models: .*unet2d"):
        model_spec("unet4d")
    assert model_label("transunet") == "TransUNet" and model_label("ensemble") == "ensemble"
    assert [spec.name for spec in chapter_models("08_quantum_vs_classical")] == ["resnet_classifier",
                                                                               "quantum_classifier"]
    assert [spec.name for spec in MODELS.values() if spec.is_classifier] == ["resnet_classifier", "quantum_classifier"]


def test_build_model_builds_any_registered_model_by_name():
    from bratslib.models import build_model

    model = build_model("unet2d", (16, 16, 2), 3, base_filters=2, depth=1, name="tiny")
    assert model.output_shape == (None, 16, 16, 3) and model.name == "tiny"
    classifier = build_model("resnet_classifier", (32, 32, 3), 2, width=4, hidden=())
    assert classifier.output_shape == (None, 2)
    with pytest.raises(ValueError, match="unknown model 'unet4d'"):
        build_model("unet4d", (16, 16, 2), 4)


def test_importing_the_registry_imports_no_keras():
    code = "import sys, bratslib.registry; print(sorted(m for m in ('keras', 'tensorflow', 'pennylane') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
