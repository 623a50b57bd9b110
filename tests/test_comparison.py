"""bratslib.comparison: collecting runs, claims beside reproduced values, intervals, paired tests."""

from __future__ import annotations

import numpy as np
import pytest

from bratslib.comparison import bootstrap_ci, claim_table, collect_runs, paired_comparison
from bratslib.metrics import case_scores, summarise
from bratslib.results import open_run

DATA = {"kind": "synthetic", "folder": "/data/synth", "n_cases": 4, "seed": 0, "description": "synthetic test data"}
SPLIT = {"train": ["a", "b"], "val": ["c"], "test": ["t1", "t2", "t3"]}


def _case(shift: int) -> dict:
    truth = np.zeros((12, 12, 6), np.uint8)
    truth[3:8, 3:8, 1:5] = 2
    truth[4:6, 4:6, 2:4] = 4
    pred = np.roll(truth, shift, axis=0)
    return case_scores(pred, truth)


def _finished_run(root, model, shifts, data=DATA, profile="smoke"):
    run = open_run(f"{model}-{profile}", {"model": model, "profile": profile}, data, SPLIT, root)
    run.write_history([{"epoch": 0, "loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.99, "seconds": 3.0}])
    run.write_state(status="finished", epoch=0, best=0.5, best_epoch=0)
    rows = [{"case_id": c, **_case(s)} for c, s in zip(SPLIT["test"], shifts)]
    run.write_evaluation({"summary": summarise([{k: v for k, v in r.items() if k != "case_id"} for r in rows]),
                          "pooled_dice": 0.95}, rows)
    return run


def test_collect_runs_keeps_finished_runs_of_this_data_and_profile(tmp_path):
    _finished_run(tmp_path, "unet2d", [0, 1, 0])
    _finished_run(tmp_path, "unet3d", [1, 2, 1])
    _finished_run(tmp_path, "attention_unet", [0, 0, 0], data={**DATA, "seed": 1})  # other data
    _finished_run(tmp_path, "transunet", [0, 0, 0], profile="full")  # other profile
    open_run("deeplabv3plus-smoke", {"model": "deeplabv3plus", "profile": "smoke"}, DATA, SPLIT, tmp_path)  # unfinished
    found = collect_runs(DATA, "smoke", tmp_path)
    assert list(found) == ["unet2d", "unet3d"]
    assert found["unet2d"].label == "2D U-Net" and found["unet2d"].values("dice_WT").shape == (3,)


def test_claim_table_pairs_claims_with_runs_and_says_why_not(tmp_path):
    _finished_run(tmp_path, "unet2d", [0, 1, 0])
    results = collect_runs(DATA, "smoke", tmp_path)
    claims = {"unet2d": {"model": "Standard U-Net", "claims": [
                  {"key": "mean_iou", "label": "mean IoU", "value": 0.63, "where": "Table 3.1"},
                  {"key": "val_loss", "label": "validation loss", "value": 0.0186, "where": "Table 3.1"},
                  {"key": "nonsense", "label": "something", "value": 0.5, "where": "p. 1"}]},
              "unet3d": {"model": "3D U-Net", "claims": [{"key": "dice", "label": "Dice", "value": 0.81, "where": "T"}]},
              "structure": {}}
    rows = claim_table(claims, results, DATA)
    iou, loss, nonsense, missing = rows
    assert iou["reproduced"] == pytest.approx(results["unet2d"].values("mean_iou").mean())
    assert iou["interval"][0] <= iou["reproduced"] <= iou["interval"][1]
    assert iou["verdict"] == "not comparable: synthetic data" and iou["data"] == "synthetic test data"
    assert loss["reproduced"] == 0.9 and loss["interval"] is None  # a training log value, not a mean over cases
    assert nonsense["verdict"] == "not reproduced" and "no measurement that matches" in nonsense["measures"]
    assert missing["verdict"] == "not reproduced" and "no finished run on this data" in missing["measures"]
    real = claim_table(claims, results, {**DATA, "kind": "real"})
    assert real[0]["verdict"].startswith("differs by") or real[0]["verdict"].startswith("agrees")


def test_bootstrap_interval_and_paired_comparison(tmp_path):
    low, high = bootstrap_ci([0.1, 0.5, 0.9, 0.4, 0.6], seed=0)
    assert low < 0.5 < high and bootstrap_ci([0.1, 0.5, 0.9, 0.4, 0.6], seed=0) == (low, high)
    assert np.isnan(bootstrap_ci([0.3])[0]) and bootstrap_ci([0.2, 0.2]) == (0.2, 0.2)
    _finished_run(tmp_path, "unet2d", [0, 1, 0])
    _finished_run(tmp_path, "unet3d", [1, 2, 1])
    results = collect_runs(DATA, "smoke", tmp_path)
    c = paired_comparison(results["unet2d"], results["unet3d"], "dice_WT")
    assert c["n"] == 3 and c["difference"] > 0 and c["ci"][0] > 0  # the un-shifted prediction is better in every case
    assert c["p"] == pytest.approx(0.25)  # the smallest two-sided Wilcoxon p for 3 cases
    same = paired_comparison(results["unet2d"], results["unet2d"], "dice_WT")
    assert same["difference"] == 0 and same["p"] == 1.0
