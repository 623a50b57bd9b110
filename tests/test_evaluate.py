"""Whole-case prediction back on the original grid, evaluation of runs, the CLI, the baseline."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bratslib.__main__ import main
from bratslib.data import find_cases, load_case
from bratslib.data.cache import PreprocessedCache
from bratslib.data.generators import make_datasets
from bratslib.evaluate import (
    evaluate_baseline,
    evaluate_cases,
    evaluate_run,
    keep_largest_tumour,
    postprocess_labels,
    predict_case,
    predict_probabilities,
    mirror_axes,
    run_cases,
    run_mirror,
    run_postprocess,
)
from bratslib.metrics import dice
from bratslib.models.unet2d import build_unet2d
from bratslib.training import train
from tests.conftest import TINY_AFFINE, TINY_SHAPE, write_tiny_case

PREPROCESSING = {"modalities": ["flair", "t1ce"], "size": 32, "mode": "2d", "normalize": "volume", "dtype": "float16"}


class OracleModel:
    """Answers each batch with the one-hot of the cached labels of one case, in order: the
    perfect 2-D model, to test everything after the network."""

    def __init__(self, labels: np.ndarray):
        self.labels, self.next = np.asarray(labels), 0

    def predict_on_batch(self, x):
        out = np.eye(4, dtype=np.float32)[self.labels[self.next:self.next + len(x)]]
        self.next += len(x)
        return out


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    data = make_datasets(tiny_dataset, size=32, cache_dir=tmp / "cache", batch_size=4, samples_per_epoch=8, progress=False)
    model_kwargs = dict(input_shape=(32, 32, 2), n_classes=4, base_filters=4, depth=2, dropout=0.0)
    result = train(lambda: build_unet2d(**model_kwargs), data, name="tiny", config={"model": "unet2d"},
                   data={"kind": "synthetic", "n_cases": 6}, epochs=1, results_dir=tmp / "results", verbose=0)
    return result, tmp / "cache"


@pytest.mark.parametrize("layout", ["contiguous", "channels first in memory"])
def test_most_probable_class_is_numpys_argmax_ties_included(layout):
    from bratslib.evaluate import _most_probable

    rng = np.random.default_rng(0)
    p = rng.random((7, 9, 5, 4)).astype(np.float32)
    p[0, 0, 0] = [0.3, 0.3, 0.1, 0.3]  # a tie: the first class wins, as with np.argmax
    p[1, 1, 1] = [0.1, 0.2, 0.35, 0.35]
    if layout != "contiguous":
        p = np.moveaxis(np.ascontiguousarray(np.moveaxis(p, -1, 0)), 0, -1)  # as resize_back returns it
    got = _most_probable(p)
    assert got.dtype == np.uint8 and np.array_equal(got, np.argmax(p, axis=-1))
    assert got[0, 0, 0] == 0 and got[1, 1, 1] == 2


def test_prediction_pads_the_last_short_batch_to_a_multiple_of_16_and_drops_the_padding():
    from types import SimpleNamespace

    from bratslib.evaluate import predict_probabilities

    class Recorder:
        def __init__(self):
            self.shapes = []

        def predict_on_batch(self, x):
            self.shapes.append(x.shape[0])
            return np.repeat(x[..., :1], 4, axis=-1) * np.arange(1, 5, dtype=np.float32)

    images = np.random.default_rng(0).random((70, 8, 8, 2)).astype(np.float32)
    model = Recorder()
    out = predict_probabilities(model, SimpleNamespace(images=images, mode="2d"), 64)
    assert model.shapes == [64, 16] and out.shape == (70, 8, 8, 4)  # 6 slices padded to 16, then dropped
    np.testing.assert_array_equal(out[..., 1], images[..., 0] * 2)
    model.shapes.clear()
    predict_probabilities(model, SimpleNamespace(images=images[:10], mode="2d"), 5)
    assert model.shapes == [5, 5]  # never past the batch size


class SidedModel:
    """A model that is not mirror-symmetric: the class probabilities of each pixel depend on its
    first input channel and on where it lies (a ramp along both in-plane axes)."""

    def predict_on_batch(self, x):
        x = np.asarray(x, np.float32)
        ramp = np.linspace(0, 1, x.shape[1])[None, :, None] + 2 * np.linspace(0, 1, x.shape[2])[None, None, :]
        logits = np.stack([x[..., 0] * k + ramp * (k - 1.5) for k in range(4)], axis=-1)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def test_mirroring_averages_the_prediction_over_every_combination_of_the_in_plane_mirror_images():
    from types import SimpleNamespace

    rng = np.random.default_rng(1)
    images = rng.random((20, 8, 6, 2)).astype(np.float32)  # (z, x, y, C): not square, so no axis is confused
    model = SidedModel()
    plain = predict_probabilities(model, SimpleNamespace(images=images, mode="2d"), 64)
    mirrored = predict_probabilities(model, SimpleNamespace(images=images, mode="2d"), 64, mirror=True)
    assert mirror_axes("2d") == (1, 2) and mirror_axes("3d") == (0, 1, 2)
    expected = np.mean([np.flip(model.predict_on_batch(np.flip(images, axes)), axes)
                        for axes in [(), (1,), (2,), (1, 2)]], axis=0)
    np.testing.assert_allclose(mirrored, expected, rtol=1e-6)
    assert mirrored.shape == plain.shape and not np.allclose(mirrored, plain)
    np.testing.assert_allclose(mirrored.sum(axis=-1), 1, rtol=1e-5)  # still probabilities
    # a model that ignores position answers the same mirrored or not
    pointwise = SimpleNamespace(predict_on_batch=lambda x: np.repeat(np.asarray(x[..., :1], np.float32), 4, -1) / 4)
    np.testing.assert_allclose(predict_probabilities(pointwise, SimpleNamespace(images=images, mode="2d"), 64, mirror=True),
                               np.repeat(images[..., :1], 4, -1) / 4, rtol=1e-6)


def test_mirroring_a_volume_flips_its_three_spatial_axes():
    from types import SimpleNamespace

    volume = np.random.default_rng(2).random((6, 5, 4, 2)).astype(np.float32)  # (x, y, z, C) of one 3-D case
    seen = []

    class Volumetric:
        def predict_on_batch(self, x):
            seen.append(np.asarray(x)[0, ..., 0].copy())
            return np.repeat(np.asarray(x, np.float32)[..., :1], 4, -1) / 4

    out = predict_probabilities(Volumetric(), SimpleNamespace(images=volume, mode="3d"), mirror=True)
    assert len(seen) == 8 and out.shape == (6, 5, 4, 4)
    flipped = {tuple(axes) for axes in [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
               if any(np.array_equal(s, np.flip(volume[..., 0], axes)) for s in seen)}
    assert len(flipped) == 8  # every combination of the three axes, each once
    np.testing.assert_allclose(out, np.repeat(volume[..., :1], 4, -1) / 4, rtol=1e-6)


def test_the_perfect_model_gives_back_the_ground_truth_on_the_original_grid(tiny_dataset, tmp_path):
    files = find_cases(tiny_dataset)[0]
    cached = PreprocessedCache(tmp_path, **{k: PREPROCESSING[k] for k in ("modalities", "size", "mode", "normalize")}).get(files)
    prediction = predict_case(OracleModel(cached.labels), files, PREPROCESSING, cache_dir=tmp_path, batch_size=5)
    truth = load_case(files).seg
    assert prediction.labels.shape == TINY_SHAPE == truth.shape and prediction.labels.dtype == np.uint8
    assert set(np.unique(prediction.labels)) == {0, 1, 2, 4}  # class 3 is mapped back to label 4
    for labels in ((1, 2, 4), (1, 4), (4,)):  # 48 -> 32 -> 48 costs a little at the borders only
        assert dice(np.isin(prediction.labels, labels), np.isin(truth, labels)) > 0.85
    np.testing.assert_array_equal(prediction.affine, TINY_AFFINE)

    path = prediction.save(tmp_path / "out" / "pred.nii.gz")
    img = nib.load(path)
    np.testing.assert_array_equal(img.affine, TINY_AFFINE)
    np.testing.assert_array_equal(np.asarray(img.dataobj), prediction.labels)
    assert img.get_data_dtype() == np.uint8


def test_evaluate_cases_scores_the_oracle_near_perfect_and_pools_dice(tiny_dataset, tmp_path):
    files = find_cases(tiny_dataset)[:1]
    cached = PreprocessedCache(tmp_path, ["flair", "t1ce"], 32, "2d", "volume").get(files[0])
    evaluation = evaluate_cases(OracleModel(cached.labels), files, PREPROCESSING, cache_dir=tmp_path,
                                predictions_dir=tmp_path / "pred", progress=False)
    assert evaluation.pooled_dice == pytest.approx(1.0)  # at the model's resolution the oracle is exact
    assert evaluation.mean("dice_WT") > 0.9 and evaluation.summary["dice_WT"]["n"] == 1
    assert (tmp_path / "pred" / f"{files[0].case_id}_pred.nii.gz").is_file()


def test_keep_largest_tumour_keeps_the_largest_26_connected_lesion_with_its_labels():
    labels = np.zeros((20, 20, 20), np.int16)
    labels[2:8, 2:8, 2:8] = 2
    labels[4:6, 4:6, 4:6] = 4
    labels[3, 3, 3] = 1
    labels[8, 8, 8] = 2  # touches the big lesion only at a corner: 26-connected, so kept
    labels[14:17, 14:17, 14:17] = 4  # an island of enhancing tumour: removed
    labels[14, 2, 2] = 2  # a one-voxel island: removed
    kept = keep_largest_tumour(labels)
    assert kept.dtype == labels.dtype and kept.shape == labels.shape
    expected = labels.copy()
    expected[14:17, 14:17, 14:17] = 0
    expected[14, 2, 2] = 0
    np.testing.assert_array_equal(kept, expected)
    assert labels[15, 15, 15] == 4  # the input is not changed
    empty = np.zeros((4, 4, 4), np.uint8)
    assert keep_largest_tumour(empty) is empty
    np.testing.assert_array_equal(postprocess_labels(labels, "none"), labels)
    np.testing.assert_array_equal(postprocess_labels(labels, "largest"), expected)
    with pytest.raises(ValueError, match="postprocess='biggest'"):
        postprocess_labels(labels, "biggest")


def test_evaluation_post_processes_the_predicted_map_and_says_so(tiny_dataset, tmp_path):
    """An oracle that also marks oedema in a far corner of every slice: ``largest`` removes the
    island and gives back the oracle's scores; ``none`` keeps it (lower Dice, larger HD95)."""
    files = find_cases(tiny_dataset)[:1]
    cached = PreprocessedCache(tmp_path, ["flair", "t1ce"], 32, "2d", "volume").get(files[0])

    def with_island():
        labels = np.array(cached.labels)
        labels[:, 28:32, 28:32] = 2  # far from the tumour, in every slice
        return OracleModel(labels)

    scores = {post: evaluate_cases(with_island(), files, PREPROCESSING, cache_dir=tmp_path, progress=False, postprocess=post)
              for post in ("none", "largest")}
    oracle = evaluate_cases(OracleModel(cached.labels), files, PREPROCESSING, cache_dir=tmp_path, progress=False)
    assert scores["largest"].mean("dice_WT") == pytest.approx(oracle.mean("dice_WT"))
    assert scores["none"].mean("dice_WT") < oracle.mean("dice_WT") - 0.05
    assert scores["none"].mean("hd95_WT") > scores["largest"].mean("hd95_WT")
    assert scores["largest"].info["postprocess"] == "largest" and oracle.info["postprocess"] == "none"
    prediction = predict_case(with_island(), files[0], PREPROCESSING, cache_dir=tmp_path, postprocess="largest")
    assert prediction.labels[40:, 40:, :].max() == 0  # the corner island is gone on the original grid
    with pytest.raises(ValueError, match="use one of none, largest"):
        evaluate_cases(with_island(), files, PREPROCESSING, cache_dir=tmp_path, progress=False, postprocess="lcc")


def test_predict_probabilities_of_a_real_model(trained_run, tiny_dataset):
    result, cache_dir = trained_run
    cached = PreprocessedCache(cache_dir, ["flair", "t1ce"], 32, "2d", "volume").get(find_cases(tiny_dataset)[0])
    probs = predict_probabilities(result.model, cached, batch_size=7)
    assert probs.shape == (cached.n_slices, 32, 32, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)


def test_several_models_predicted_in_turn_log_no_retracing_warning(trained_run, tiny_dataset):
    """Each model traces its own predict function; after five models TensorFlow warns of
    "excessive" retracing, which bratslib.evaluate drops.  Other TensorFlow warnings stay."""
    import logging

    _, cache_dir = trained_run
    cached = PreprocessedCache(cache_dir, ["flair", "t1ce"], 32, "2d", "volume").get(find_cases(tiny_dataset)[0])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        for _ in range(7):
            predict_probabilities(build_unet2d(input_shape=(32, 32, 2), n_classes=4, base_filters=4, depth=2), cached)
        logger.warning("another TensorFlow warning")
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert "another TensorFlow warning" in messages
    assert not [m for m in messages if "retracing" in m], messages


def test_evaluate_run_writes_once_and_reads_back(trained_run, tiny_dataset):
    result, cache_dir = trained_run
    run = result.run
    evaluation = evaluate_run(run, tiny_dataset, model=result.model, cache_dir=cache_dir, progress=False)
    assert [r["case_id"] for r in evaluation.per_case] == run.split["test"]
    saved = json.loads((run.path / "metrics.json").read_text())
    assert saved["split"] == "test" and saved["n_cases"] == len(run.split["test"])
    assert saved["summary"]["dice_WT"]["mean"] == pytest.approx(evaluation.mean("dice_WT"), nan_ok=True)
    again = evaluate_run(run, tiny_dataset, cache_dir=cache_dir, progress=False)  # read back, no model needed
    assert again.mean("dice_WT") == pytest.approx(evaluation.mean("dice_WT"))
    assert again.pooled_dice == pytest.approx(evaluation.pooled_dice)
    assert [r["case_id"] for r in again.per_case] == run.split["test"]


def test_evaluate_run_uses_the_runs_post_processing_and_keeps_another_apart(trained_run, tiny_dataset):
    result, cache_dir = trained_run
    run = result.run
    assert run_postprocess(run) == "none"  # the run names none (a run of before the setting)
    own = evaluate_run(run, tiny_dataset, model=result.model, cache_dir=cache_dir, progress=False)
    assert own.info["postprocess"] == "none"
    other = evaluate_run(run, tiny_dataset, model=result.model, cache_dir=cache_dir, progress=False, postprocess="largest")
    assert other.info["postprocess"] == "largest"
    saved = json.loads((run.path / "evaluations" / "test-postprocess-largest" / "metrics.json").read_text())
    assert saved["postprocess"] == "largest" and json.loads((run.path / "metrics.json").read_text())["postprocess"] == "none"


def test_evaluate_run_uses_the_runs_mirroring_and_keeps_another_apart(trained_run, tiny_dataset):
    result, cache_dir = trained_run
    run = result.run
    assert run_mirror(run) is False  # the run names none (a run of before the setting)
    assert evaluate_run(run, tiny_dataset, model=result.model, cache_dir=cache_dir, progress=False).info["mirror"] is False
    mirrored = evaluate_run(run, tiny_dataset, model=result.model, cache_dir=cache_dir, progress=False, mirror=True)
    assert mirrored.info["mirror"] is True
    assert json.loads((run.path / "evaluations" / "test-mirrored" / "metrics.json").read_text())["mirror"] is True
    both = evaluate_run(run, tiny_dataset, model=result.model, cache_dir=cache_dir, progress=False, mirror=True,
                        postprocess="largest")
    assert both.info["postprocess"] == "largest" and both.info["mirror"] is True
    assert (run.path / "evaluations" / "test-postprocess-largest-mirrored" / "metrics.json").is_file()
    assert json.loads((run.path / "metrics.json").read_text())["mirror"] is False  # the run's own stays unmirrored


def test_an_evaluation_saved_before_post_processing_existed_reads_back_as_none(tiny_dataset, tmp_path):
    from bratslib.evaluate import Evaluation
    from bratslib.results import open_run

    data = make_datasets(tiny_dataset, size=32, cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    run = open_run("old", {"preprocessing": PREPROCESSING}, {"kind": "synthetic"}, data.split, tmp_path / "results")
    summary = {"dice_WT": {"mean": 0.5, "std": 0.0, "median": 0.5, "n": 1}}
    run.write_evaluation({"run": "old", "split": "test", "n_cases": 1, "pooled_dice": 0.9, "summary": summary},
                         [{"case_id": "BraTS20_Training_001", "dice_WT": 0.5}])
    saved = Evaluation.saved(run)
    assert saved.info["postprocess"] == "none" and saved.info["run"] == "old" and saved.mean("dice_WT") == 0.5
    assert saved.info["mirror"] is False


def test_run_cases_names_missing_cases(trained_run, tmp_path):
    run = trained_run[0].run
    write_tiny_case(tmp_path, "BraTS20_Training_099")
    with pytest.raises(ValueError, match="not labeled cases in"):
        run_cases(run, tmp_path, "test")
    with pytest.raises(ValueError, match="unknown split"):
        run_cases(run, tmp_path, "holdout")
    assert [c.case_id for c in run_cases(run, tmp_path, "all")] == ["BraTS20_Training_099"]


def test_cli_predict_and_evaluate(trained_run, tiny_dataset, tmp_path, capsys):
    result, cache_dir = trained_run
    case = find_cases(tiny_dataset)[0]
    out = tmp_path / "pred.nii.gz"
    assert main(["predict", str(result.run.path), str(case.folder), str(out), "--cache-dir", str(cache_dir)]) == 0
    assert nib.load(out).shape == TINY_SHAPE and "wrote" in capsys.readouterr().out

    assert main(["evaluate", str(result.run.path), str(tiny_dataset), "--split", "all", "--cache-dir", str(cache_dir), "-q"]) == 0
    text = capsys.readouterr().out
    assert "dice_WT" in text and "hd95_ET" in text and "pooled all-voxel Dice" in text
    folder = result.run.path / "evaluations" / f"{tiny_dataset.name}-all"
    assert len(json.loads((folder / "metrics.json").read_text())["summary"]) > 10
    assert main(["evaluate", str(result.run.path), str(tiny_dataset), "--split", "all", "--cache-dir", str(cache_dir), "-q"]) == 0
    assert (folder.parent / f"{tiny_dataset.name}-all-2").is_dir()  # never overwritten

    assert main(["evaluate", str(result.run.path), str(tiny_dataset), "--split", "all", "--cache-dir", str(cache_dir), "-q",
                 "--postprocess", "largest", "--name", "kept"]) == 0
    assert "(post-processing: largest)" in capsys.readouterr().out
    assert json.loads((folder.parent / "kept" / "metrics.json").read_text())["postprocess"] == "largest"
    assert main(["predict", str(result.run.path), str(case.folder), str(out), "--cache-dir", str(cache_dir),
                 "--postprocess", "largest"]) == 0
    assert "post-processing: largest" in capsys.readouterr().out
    assert main(["predict", str(result.run.path), str(case.folder), str(out), "--cache-dir", str(cache_dir), "--mirror"]) == 0
    assert "mirrored at test time" in capsys.readouterr().out
    assert main(["evaluate", str(result.run.path), str(tiny_dataset), "--split", "all", "--cache-dir", str(cache_dir), "-q",
                 "--mirror", "--name", "mirrored"]) == 0
    assert "mirrored at test time" in capsys.readouterr().out
    assert json.loads((folder.parent / "mirrored" / "metrics.json").read_text())["mirror"] is True

    assert main(["predict", str(tmp_path), str(case.folder), str(out)]) == 1
    assert "not a bratslib run folder" in capsys.readouterr().err
    assert main(["predict", str(result.run.path), str(tmp_path / "nowhere"), str(out)]) == 1
    assert "error" in capsys.readouterr().err


def test_baseline_is_scored_with_the_same_metrics(tiny_dataset):
    cases = find_cases(tiny_dataset)
    baseline, evaluation = evaluate_baseline(cases[:3], cases[3:], progress=False)
    assert [r["case_id"] for r in evaluation.per_case] == [c.case_id for c in cases[3:]]
    assert evaluation.mean("dice_WT") > 0.5  # the tiny cases' tumour is bright on FLAIR
    assert set(evaluation.summary) >= {"dice_WT", "dice_TC", "dice_ET", "hd95_WT", "mean_iou"}
    assert evaluation.info["fitted_on"] == [c.case_id for c in cases[:3]]


def test_evaluate_classifier_writes_once_and_scores_every_slice(tiny_dataset, tmp_path):
    from bratslib.data.generators import TumourSliceDataset
    from bratslib.evaluate import evaluate_classifier
    from bratslib.results import open_run

    data = make_datasets(tiny_dataset, size=32, cache_dir=tmp_path / "cache", batch_size=4, progress=False,
                         dataset_class=TumourSliceDataset, min_tumour_pixels=5)
    test = data.test
    labels = test.slice_labels()

    class Oracle:  # the true class with probability 0.9
        def __init__(self):
            self.seen = 0

        def predict_on_batch(self, x):
            y = labels[self.seen:self.seen + len(x)]
            self.seen += len(x)
            return np.stack([np.where(y == 1, 0.1, 0.9), np.where(y == 1, 0.9, 0.1)], axis=-1)

    run = open_run("clf", {"model": "oracle"}, {"kind": "synthetic"}, data.split, tmp_path / "results")
    result = evaluate_classifier(run, Oracle(), test)
    pooled = result["pooled"]
    assert pooled["accuracy"] == 1.0 and pooled["roc_auc"] == 1.0 and pooled["n"] == len(labels)
    assert pooled["confusion"][1][1] == labels.sum()
    saved = run.metrics()
    assert saved["pooled"]["n"] == len(labels) and len(saved["scores"]) == len(labels)
    assert [row["case_id"] for row in run.per_case()] == data.split["test"]
    # the second call reads the saved scores back instead of predicting again
    again = evaluate_classifier(run, None, test)
    assert again["pooled"] == pooled
    with pytest.raises(ValueError, match="every slice once"):
        evaluate_classifier(run, Oracle(), data.train)


def test_an_ensemble_of_identical_oracles_is_the_oracle_and_mismatched_runs_are_refused(tiny_dataset, tmp_path):
    from bratslib.evaluate import evaluate_ensemble
    from bratslib.results import open_run

    data = make_datasets(tiny_dataset, size=32, cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    config = {"preprocessing": PREPROCESSING}
    runs = [open_run(f"m{k}", {**config, "k": k}, {"kind": "synthetic"}, data.split, tmp_path / "results") for k in range(2)]
    cache = PreprocessedCache(tmp_path / "cache", size=32)
    test_cases = run_cases(runs[0], tiny_dataset, "test")

    class CaseOracle:  # the cached labels of whichever case is asked, as probabilities
        def __init__(self):
            self.queue = [np.asarray(cache.get(c).labels) for c in test_cases]
            self.rows = np.concatenate(self.queue)
            self.next = 0

        def predict_on_batch(self, x):
            out = np.eye(4, dtype=np.float32)[self.rows[self.next:self.next + len(x)]]
            self.next += len(x)
            return out

    ensemble = evaluate_ensemble(runs, tiny_dataset, models=[CaseOracle(), CaseOracle()], cache_dir=tmp_path / "cache",
                                 progress=False)
    single = evaluate_cases(CaseOracle(), test_cases, PREPROCESSING, cache_dir=tmp_path / "cache", progress=False)
    assert [r["case_id"] for r in ensemble.per_case] == data.split["test"]
    assert ensemble.summary["dice_WT"]["mean"] == pytest.approx(single.summary["dice_WT"]["mean"])
    assert ensemble.info["ensemble"] == ["m0", "m1"]

    other = open_run("m2", {"preprocessing": {**PREPROCESSING, "size": 16}}, {"kind": "synthetic"}, data.split,
                     tmp_path / "results")
    with pytest.raises(ValueError, match="preprocessed differently"):
        evaluate_ensemble([runs[0], other], tiny_dataset, models=[CaseOracle(), CaseOracle()])
    with pytest.raises(ValueError, match="at least two"):
        evaluate_ensemble(runs[:1], tiny_dataset)
