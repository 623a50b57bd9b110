"""bratslib.chapter: a chapter's setup and the rows that set its numbers beside the report's."""

from __future__ import annotations

import numpy as np

import math

import pytest

from bratslib.chapter import CLASS_ROWS, ChapterSetup, claims_rows, reproduced_values
from bratslib.evaluate import Evaluation
from bratslib.metrics import case_scores, summarise


def test_setup_reads_the_profile_and_says_which_data(tiny_dataset):
    setup = ChapterSetup.create("unet2d", "tiny", data_dir=tiny_dataset, seed=3, epochs=1)
    assert setup.settings["epochs"] == 1 and setup.run_name() == "unet2d-tiny-seed3"
    assert setup.input_shape == (128, 128, 2)
    assert setup.model_kwargs["n_classes"] == 4 and setup.model_kwargs["base_filters"] == 4
    assert setup.provenance["kind"] == "real" and setup.provenance["n_cases"] == 6  # no synthetic marker
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        ChapterSetup.create("unet2d", "huge", data_dir=tiny_dataset)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ChapterSetup.create("unet2d", "tiny", data_dir=tiny_dataset / "nowhere")


def _evaluation() -> Evaluation:
    import numpy as np

    truth = np.zeros((8, 8, 4), np.uint8)
    truth[2:5, 2:5, 1:3] = 2
    truth[3, 3, 1:3] = 4
    pred = truth.copy()
    pred[3, 3, 1] = 1  # one enhancing voxel called necrotic
    rows = [case_scores(pred, truth), case_scores(truth, truth)]
    return Evaluation([{"case_id": f"c{k}", **r} for k, r in enumerate(rows)], summarise(rows), pooled_dice=0.97)


def test_reproduced_values_cover_the_claim_keys_and_compute_the_means():
    evaluation = _evaluation()
    ours = reproduced_values(evaluation, {"val_loss": 0.5, "val_accuracy": 0.99})
    assert ours["val_loss"][0] == 0.5 and ours["dice"][0] == 0.97
    assert ours["dice_class_mean"][0] == pytest.approx(sum(evaluation.mean(k) for k in CLASS_ROWS) / 4)
    assert ours["dice_ET"][0] == evaluation.mean("dice_ET") < 1.0
    assert ours["dice_necrotic"][0] == pytest.approx(0.5)  # 0 in the first case (wrongly predicted), 1 in the second


def test_claims_rows_show_every_claim_and_say_when_nothing_was_measured():
    claims = {"claims": [{"key": "mean_iou", "label": "mean IoU", "value": 0.63, "where": "Table 3.1"},
                         {"key": "f1", "label": "F1", "value": 0.99, "where": "section 3.1.2"}]}
    ours = {"mean_iou": (0.5, "per case"), "val_loss": (math.nan, "n/a")}
    rows = claims_rows(claims, ours)
    assert rows[0] == ("mean IoU", "0.6300", "0.5000", "per case", "Table 3.1")
    assert rows[1][2] == "n/a" and rows[1][3] == "not measured by this chapter"


def test_skipped_cases_reach_the_provenance_that_runs_record(tiny_dataset, tmp_path):
    import shutil

    from bratslib.data import BratsDataError
    from tests.conftest import write_tiny_case

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    bad = write_tiny_case(root, "BraTS20_Training_007", seed=7)
    (bad / "BraTS20_Training_007_seg.nii.gz").write_bytes(b"not a NIfTI file")
    strict = ChapterSetup.create("unet2d", "tiny", data_dir=root)
    with pytest.raises(BratsDataError, match="BraTS20_Training_007.*_seg.nii.gz.*corrupt compressed file.*not a gzip file"):
        strict.datasets(tmp_path / "cache", progress=False)
    assert "skipped_cases" not in strict.provenance

    lenient = ChapterSetup.create("unet2d", "tiny", data_dir=root, skip_bad_cases=True)
    data = lenient.datasets(tmp_path / "cache", progress=False)
    assert list(data.skipped) == ["BraTS20_Training_007"]
    assert lenient.provenance["skipped_cases"] == data.skipped
    assert lenient.provenance["n_cases"] == 7  # the folder's cases; 6 of them used


def test_datasets_can_prepare_batches_in_worker_processes(tiny_dataset, tmp_path):
    setup = ChapterSetup.create("unet2d", "tiny", data_dir=tiny_dataset)
    one = setup.datasets(tmp_path / "cache", progress=False)
    two = setup.datasets(tmp_path / "cache", progress=False, workers=2)
    assert (one.train.workers, one.train.use_multiprocessing) == (1, False)
    assert (two.train.workers, two.train.use_multiprocessing) == (2, True)
    x1, y1 = one.train[0]
    x2, y2 = two.train[0]
    assert (x1 == x2).all() and (y1 == y2).all()  # the same batches, whoever prepares them


def test_the_profiles_normalisation_reaches_the_cache_and_the_images(tiny_dataset, tmp_path):
    from bratslib.data.preprocess import MEDIAN_TARGET

    made = {mode: ChapterSetup.create("unet2d", "tiny", data_dir=tiny_dataset, normalize=mode).datasets(
        tmp_path / "cache", progress=False) for mode in ("volume", "median")}
    assert {mode: d.cache.settings["normalize"] for mode, d in made.items()} == {"volume": "volume", "median": "median"}
    assert made["volume"].cache.folder != made["median"].cache.folder
    images = {mode: d.train.cases[0].images for mode, d in made.items()}
    brain = images["volume"][..., 0] > 0
    assert np.median(images["median"][..., 0][brain]) == pytest.approx(MEDIAN_TARGET, abs=0.1)  # resized and cropped
    assert not np.allclose(images["volume"], images["median"])


def test_the_chapter_tables_come_from_the_library(tiny_dataset):
    from types import SimpleNamespace

    from bratslib.chapter import evaluation_table, report_table
    from bratslib.claims import EVALUATION_ROWS

    setup = ChapterSetup.create("unet2d", "tiny", data_dir=tiny_dataset)
    table = setup.settings_table().data
    assert "| model: base_filters | 4 |" in table and "| epochs | 2 |" in table and "baseline_cases" not in table
    assert "| baseline_cases |" in setup.settings_table(exclude=()).data

    evaluation = _evaluation()
    rows = evaluation_table(evaluation, "U-Net").data
    assert "U-Net, mean ± sd over test cases" in rows
    assert all(label in rows for label in EVALUATION_ROWS.values())
    # both cases have ET (Dice 2/3 and 1): the split rows say so, and no case is without ET
    assert f"| Dice ET, only the cases with ET | {(2 / 3 + 1) / 2:.3f} (2 cases) |" in rows
    assert "| cases without ET left without ET | 0 of 0 |" in rows
    # beside a baseline, one computed sentence says where the model's mean is above it
    empty = case_scores(np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 4), np.uint8))  # Dice 1 everywhere
    perfect = Evaluation([{"case_id": "c0", **empty}], summarise([empty]), pooled_dice=1.0)
    weaker = _evaluation()
    beside = evaluation_table(weaker, "U-Net", baseline=perfect).data
    assert "Mean Dice of the U-Net over these 2 test cases: not above it on WT, TC, ET." in beside

    result = SimpleNamespace(best={"val_loss": 0.5, "val_accuracy": 0.99})
    report = report_table("unet2d", evaluation, result).data
    assert report.startswith("|  | report | this run | what this run measures | report's source |")
    loss_row = next(line for line in report.splitlines() if line.startswith("| validation loss |"))
    assert "| 0.5" in loss_row and "section 3.2.1" in report


def test_trained_run_describe_names_folder_best_epoch_time_and_memory(tmp_path):
    from types import SimpleNamespace

    from bratslib.training import TrainedRun

    run = SimpleNamespace(path=tmp_path / "unet2d-tiny-seed0", state={"best_epoch": 1}, model_info={"parameters": 7768})
    history = [{"seconds": 3.0, "peak_memory_mb": 900.0}, {"seconds": 5.0, "peak_memory_mb": 950.0},
               {"seconds": 4.0, "peak_memory_mb": 940.0}]
    result = TrainedRun(run, None, history, 3, 0)
    assert result.best is history[1]
    assert result.describe() == (f"run folder: {run.path}\nbest epoch: 2 of 3; 7,768 parameters, 4 s per epoch "
                                 "(median), peak memory 950 MiB")


def test_train_and_evaluate_takes_chapter_2s_steps_and_shows_them_in_order(tiny_dataset, tmp_path, monkeypatch):
    """The architecture chapters' one call: it trains, evaluates the test cases beside the
    threshold baseline on the same cases, and shows settings, history, the evaluation table,
    the median case and the report's numbers, in that order; ``show=False`` shows nothing."""
    import IPython.display
    import plotly.graph_objects as go

    from bratslib.models.unet2d import build_unet2d

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects: shown.extend(objects))
    setup = ChapterSetup.create("unet2d", "tiny", data_dir=tiny_dataset, epochs=1)
    outcome = setup.train_and_evaluate(build_unet2d, cache_dir=tmp_path / "cache", results_dir=tmp_path / "results")
    test_cases = outcome.run.split["test"]
    assert [row["case_id"] for row in outcome.evaluation.per_case] == test_cases
    assert [row["case_id"] for row in outcome.baseline.per_case] == test_cases  # the baseline on the same cases
    assert outcome.label == "2D U-Net" and outcome.model is outcome.result.model and outcome.run.finished
    assert outcome.run.config["postprocess"] == "none"  # the profile's, recorded for every evaluation of the run

    texts = [getattr(o, "data", None) if not isinstance(o, go.Figure) else "figure" for o in shown]
    settings = next(i for i, t in enumerate(texts) if isinstance(t, str) and t.startswith("| setting |"))
    history = texts.index("figure")
    table = next(i for i, t in enumerate(texts) if isinstance(t, str) and "threshold baseline (chapter 2), same cases" in t)
    viewer = len(texts) - 1 - texts[::-1].index("figure")
    report = next(i for i, t in enumerate(texts) if isinstance(t, str) and "report's source" in t)
    assert settings < history < table < viewer < report, texts
    assert "Mean Dice of the 2D U-Net over these" in texts[table]

    shown.clear()
    again = setup.train_and_evaluate(build_unet2d, cache_dir=tmp_path / "cache", results_dir=tmp_path / "results",
                                     show=False)
    assert shown == [] and again.run.path == outcome.run.path  # the finished run is read back, not trained again


def test_the_verdict_says_when_the_et_mean_follows_the_cases_without_et():
    """A model that never predicts ET beats, on the ET mean, a rule that outlines it roughly:
    the case without ET scores it 1. The verdict says so, with the Dice on the case with ET."""
    from bratslib.chapter import baseline_verdict

    with_et = np.zeros((8, 8, 4), np.uint8)
    with_et[2:6, 2:6, 1:3] = 2
    with_et[3:5, 3:5, 1:3] = 4
    without_et = np.where(with_et == 4, 2, with_et).astype(np.uint8)
    never = np.where(with_et == 4, 1, with_et).astype(np.uint8)  # the model: no ET anywhere
    rough = np.where(with_et > 0, 4, 0).astype(np.uint8)  # the rule: every tumour voxel called ET
    model = [case_scores(never, with_et), case_scores(np.where(without_et > 0, 2, 0).astype(np.uint8), without_et)]
    rule = [case_scores(rough, with_et), case_scores(rough, without_et)]
    as_evaluation = lambda rows: Evaluation([{"case_id": f"c{k}", **r} for k, r in enumerate(rows)], summarise(rows))
    text = baseline_verdict(as_evaluation(model), as_evaluation(rule), "U-Net")
    assert "above the threshold baseline on" in text and "ET" in text.split(";")[0]
    assert "On ET the order is the other way round on the 1 cases that have it: 0.000 against the baseline's" in text
    assert "the U-Net left 1 and the baseline 0 without ET" in text
    # the other way round it is said too; when both orders agree (here: equal), nothing is added
    assert "0.400 against the baseline's 0.000" in baseline_verdict(as_evaluation(rule), as_evaluation(model), "rule")
    assert "other way round" not in baseline_verdict(as_evaluation(model), as_evaluation(model), "U-Net")
