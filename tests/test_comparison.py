"""bratslib.comparison: collecting runs, claims beside reproduced values, intervals, paired tests."""

from __future__ import annotations

import numpy as np
import pytest

from bratslib.comparison import (
    bootstrap_ci, claim_table, collect_replicates, collect_runs, comparisons_verdict, holm, paired_comparison,
    pairwise_comparisons, region_triple, regions_against, regions_compared, smallest_wilcoxon_p,
)
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


def _finished_run(root, model, shifts, data=DATA, profile="smoke", name=None, config=None):
    run = open_run(name or f"{model}-{profile}", {"model": model, "profile": profile, **(config or {})}, data, SPLIT, root)
    run.write_history([{"epoch": 0, "loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.99, "seconds": 3.0}])
    run.write_state(status="finished", epoch=0, best=0.5, best_epoch=0)
    rows = [{"case_id": c, **_case(s)} for c, s in zip(SPLIT["test"], shifts)]
    run.write_evaluation({"summary": summarise([{k: v for k, v in r.items() if k != "case_id"} for r in rows]),
                          "pooled_dice": 0.95}, rows)
    return run


def test_region_triples_are_printed_and_compared_as_the_tables_show_them():
    new = {"dice_WT": 0.8049, "dice_TC": 0.631, "dice_ET": 0.2, "hd95_WT": 7.6, "hd95_TC": float("nan"), "hd95_ET": 373.13}
    old = {"dice_WT": 0.7951, "dice_TC": 0.50, "dice_ET": 0.86}
    assert region_triple(new) == "0.80 / 0.63 / 0.20"
    assert region_triple(new, "hd95", 0) == "8 / - / 373"

    class Means:  # an evaluation: means through .mean(key)
        def mean(self, key):
            return old[key]

    assert region_triple(Means(), digits=3) == "0.795 / 0.500 / 0.860"
    # 0.8049 and 0.7951 both print as 0.80: level, not above
    assert regions_compared(new, Means()) == {"above": ["TC"], "below": ["ET"], "level": ["WT"]}
    assert regions_against(new, old) == "above in TC, below in ET, level in WT"
    assert regions_against(new, old, digits=3) == "above in WT, TC, below in ET"
    assert regions_against(old, old) == "level in WT, TC, ET"


def test_collect_runs_keeps_finished_runs_of_this_data_and_profile(tmp_path):
    _finished_run(tmp_path, "unet2d", [0, 1, 0])
    _finished_run(tmp_path, "unet3d", [1, 2, 1])
    _finished_run(tmp_path, "attention_unet", [0, 0, 0], data={**DATA, "seed": 1})  # other data
    _finished_run(tmp_path, "transunet", [0, 0, 0], profile="full")  # other profile
    open_run("deeplabv3plus-smoke", {"model": "deeplabv3plus", "profile": "smoke"}, DATA, SPLIT, tmp_path)  # unfinished
    found = collect_runs(DATA, "smoke", tmp_path)
    assert list(found) == ["unet2d", "unet3d"]
    assert found["unet2d"].label == "2D U-Net" and found["unet2d"].values("dice_WT").shape == (3,)


def test_replicates_and_variants_never_stand_in_for_the_chapter_run(tmp_path):
    chapter = _finished_run(tmp_path, "unet2d", [0, 0, 0], config={"training": {"seed": 0}})
    _finished_run(tmp_path, "unet2d", [1, 1, 1], name="unet2d-smoke-train1", config={"training": {"seed": 1}, "replicate": True})
    _finished_run(tmp_path, "unet2d", [2, 2, 2], name="unet2d-smoke-frozen", config={"training": {"seed": 0}, "variant": "frozen"})
    found = collect_runs(DATA, "smoke", tmp_path)
    assert found["unet2d"].run.path == chapter.path  # the newer replicate and variant do not replace it
    replicates = collect_replicates(DATA, "smoke", "unet2d", tmp_path)
    assert list(replicates) == [0, 1] and replicates[0].run.path == chapter.path
    assert replicates[1].values("dice_WT").mean() < replicates[0].values("dice_WT").mean()
    assert collect_replicates(DATA, "smoke", "unet3d", tmp_path) == {}


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
    assert np.isnan(iou["interval"][0])  # three test cases: too few for an interval
    assert iou["verdict"] == "not comparable: synthetic data" and iou["data"] == "synthetic test data"
    assert loss["reproduced"] == 0.9 and loss["interval"] is None  # a training log value, not a mean over cases
    assert nonsense["verdict"] == "not reproduced" and "no measurement that matches" in nonsense["measures"]
    assert missing["verdict"] == "not reproduced" and "no finished run on this data" in missing["measures"]
    real = claim_table(claims, results, {**DATA, "kind": "real"})
    assert real[0]["verdict"].startswith("differs by") or real[0]["verdict"].startswith("agrees")


def test_bootstrap_interval_and_paired_comparison(tmp_path):
    low, high = bootstrap_ci([0.1, 0.5, 0.9, 0.4, 0.6], seed=0)
    assert low < 0.5 < high and bootstrap_ci([0.1, 0.5, 0.9, 0.4, 0.6], seed=0) == (low, high)
    assert np.isnan(bootstrap_ci([0.3])[0]) and bootstrap_ci([0.2] * 6) == (0.2, 0.2)
    assert np.isnan(bootstrap_ci([0.1, 0.5, 0.9, 0.4])[0])  # four cases: no interval to print
    _finished_run(tmp_path, "unet2d", [0, 1, 0])
    _finished_run(tmp_path, "unet3d", [1, 2, 1])
    results = collect_runs(DATA, "smoke", tmp_path)
    c = paired_comparison(results["unet2d"], results["unet3d"], "dice_WT")
    assert c["n"] == 3 and c["difference"] > 0  # the un-shifted prediction is better in every case
    assert c["p"] == pytest.approx(0.25)  # the smallest two-sided Wilcoxon p for 3 cases
    same = paired_comparison(results["unet2d"], results["unet2d"], "dice_WT")
    assert same["difference"] == 0 and same["p"] == 1.0


def test_bootstrap_interval_covers_the_mean_on_a_dozen_cases():
    """On 12 cases drawn from a skewed distribution (like Dice) the 95 % interval holds the true
    mean in about 95 % of samples; the plain percentile interval falls short there."""
    rng = np.random.default_rng(0)
    true_mean = 0.8 * 0.7  # a mixture: Dice 0 in 20 % of cases (missed tumour), else Beta(7, 3)
    covered = 0
    for k in range(300):
        sample = np.where(rng.random(12) < 0.2, 0.0, rng.beta(7, 3, 12))
        low, high = bootstrap_ci(sample, n_resamples=1000, seed=k)
        covered += low <= true_mean <= high
    assert covered / 300 >= 0.88, covered / 300


def test_holm_adjusts_as_the_textbook_says():
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm([0.01, np.nan])[1]) and holm([0.01, np.nan])[0] == pytest.approx(0.01)  # NaN not counted
    assert holm([0.5, 0.9]).max() == 1.0
    assert smallest_wilcoxon_p(3) == 0.25 and smallest_wilcoxon_p(12) == pytest.approx(2 / 4096)


def _split(n):
    cases = [f"BraTS20_Training_{k:03d}" for k in range(1, n + 1)]
    return {"train": ["BraTS20_Training_900"], "val": ["BraTS20_Training_901"], "test": cases}


def test_pairwise_comparisons_say_when_cases_are_too_few_and_which_pairs_differ(tmp_path, monkeypatch):
    _finished_run(tmp_path / "three", "unet2d", [0, 1, 0])
    _finished_run(tmp_path / "three", "unet3d", [1, 2, 1])
    three = pairwise_comparisons(collect_runs(DATA, "smoke", tmp_path / "three"), ["dice_WT", "mean_iou"])
    assert [r["verdict"] for r in three] == ["too few cases to tell"] * 2
    assert "Too few cases to tell" in comparisons_verdict(three)

    import tests.test_comparison as here

    monkeypatch.setattr(here, "SPLIT", _split(12))
    _finished_run(tmp_path / "twelve", "unet2d", [0] * 12)  # exact: better than the shifted ones on every case
    _finished_run(tmp_path / "twelve", "unet3d", [2] * 12)
    _finished_run(tmp_path / "twelve", "attention_unet", [0, 1] * 6)
    results = collect_runs(DATA, "smoke", tmp_path / "twelve")
    rows = pairwise_comparisons({r.label: r for r in results.values()}, ["dice_WT"])
    assert len(rows) == 3 and all(r["comparisons"] == 3 for r in rows)
    verdicts = {(r["a"], r["b"]): r["verdict"] for r in rows}
    assert verdicts[("2D U-Net", "3D U-Net")] == "2D U-Net higher"
    assert all(r["p_holm"] >= r["p"] for r in rows)
    text = comparisons_verdict(rows)
    assert "significant at 0.05 after Holm's correction" in text and "2D U-Net vs 3D U-Net on Dice WT" in text
    # the sentence agrees in number with its counts
    n_significant = sum(r["verdict"].endswith(("higher", "lower")) for r in rows)
    assert text.startswith(f"{n_significant} of the 3 differences {'is' if n_significant == 1 else 'are'} significant")
    assert text.endswith({1: "The other 2 are not.", 2: "The other is not.", 3: "."}[n_significant])

    from bratslib.comparison import comparisons_table

    table = comparisons_table(rows, means=True).data
    lines = [line for line in table.splitlines() if line.startswith("| 2D U-Net − 3D U-Net")]
    assert len(lines) == 1 and "| Dice WT |" in lines[0] and "2D U-Net higher" in lines[0]
    first = rows[0]
    assert f"{first['mean_a']:.3f}" in lines[0] and f"{first['difference']:+.3f} [" in lines[0]
    assert "mean of the first" not in comparisons_table(rows).data


@pytest.mark.parametrize("n_cases, can_tell", [(11, False), (12, True)])
def test_twelve_test_cases_are_the_fewest_at_which_the_book_ranking_can_reach_significance(n_cases, can_tell):
    """Chapter 9 ranks six networks and the baseline on WT, TC and ET Dice: 21 pairs x 3 = 63 tests.
    Only from 12 cases can a Wilcoxon p (at best 2 / 2**n) survive Holm's correction: the smoke split."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    results = {f"model {k}": SimpleNamespace(per_case=[{"case_id": f"c{i}", **{key: float(rng.random())
               for key in ("dice_WT", "dice_TC", "dice_ET")}} for i in range(n_cases)]) for k in range(7)}
    rows = pairwise_comparisons(results, ["dice_WT", "dice_TC", "dice_ET"])
    assert len(rows) == 63
    assert all((r["verdict"] != "too few cases to tell") == can_tell for r in rows)
