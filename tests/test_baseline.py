"""The threshold baseline on synthetic, already normalised images."""

from __future__ import annotations

import numpy as np
import pytest

from bratslib.baseline import ThresholdBaseline
from bratslib.labels import region_masks

SHAPE = (40, 40, 24)


def synthetic_case(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Images (x, y, z, 2) in [0, 1] and BraTS labels: an ellipsoidal brain holding a tumour
    that is bright on FLAIR throughout, with a T1ce-bright ring (4) around a dark core (1),
    inside oedema (2)."""
    rng = np.random.default_rng(seed)
    size = np.asarray(shape, float)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    centre = (size - 1) / 2
    brain = (((grid - centre) / (0.45 * size)) ** 2).sum(-1) <= 1
    d = np.sqrt((((grid - centre - rng.uniform(-0.1, 0.1, 3) * size) / (0.25 * size)) ** 2).sum(-1))
    seg = np.select([d <= 0.35, d <= 0.6, d <= 1.0], [1, 4, 2], 0).astype(np.uint8) * brain
    region = np.select([seg == 1, seg == 4, seg == 2], [3, 2, 1], 0)  # brain, oedema, ring, core
    flair = np.array([0.3, 0.8, 0.8, 0.75])[region]
    t1ce = np.array([0.4, 0.35, 0.9, 0.2])[region]
    images = np.stack([flair, t1ce], axis=-1) + rng.normal(0, 0.1, shape + (2,))
    return np.where(brain[..., None], np.clip(images, 0.01, 1), 0), seg


@pytest.fixture(scope="module")
def cases():
    return [synthetic_case(seed) for seed in range(4)]


@pytest.fixture(scope="module")
def fitted(cases):
    return ThresholdBaseline.fit([x for x, _ in cases[:3]], [s for _, s in cases[:3]])


def test_fit_recovers_the_regions_and_sensible_thresholds(fitted, cases):
    assert 0.4 <= fitted.t_flair <= 0.7
    assert 0.45 <= fitted.t_t1ce <= 0.8
    assert set(fitted.train_scores) == {"WT", "TC", "ET"}
    assert min(fitted.train_scores.values()) > 0.8
    held_out = fitted.score(*cases[3])
    assert min(held_out.values()) > 0.8, held_out
    assert "t_flair=" in repr(fitted) and "WT=" in repr(fitted)
    assert "not fitted" in repr(ThresholdBaseline())


def test_predict_gives_nested_brats_labels(fitted, cases):
    labels = fitted.predict(cases[3][0])
    assert labels.dtype == np.uint8 and labels.shape == SHAPE
    assert set(np.unique(labels)) <= {0, 1, 2, 4}
    wt, tc, et = fitted.regions(cases[3][0])
    assert not (et & ~tc).any() and not (tc & ~wt).any()
    assert all(np.array_equal(a, b) for a, b in zip(region_masks(labels), (wt, tc, et)))


def test_components_are_filtered():
    images = np.zeros(SHAPE + (2,))
    images[5:15, 5:15, 5:15, 0] = 0.9  # 1000 voxels
    images[25:30, 25:30, 5:9, 0] = 0.9  # 100 voxels
    images[35:37, 35:37, 5:7, 0] = 0.9  # 8 voxels
    count = lambda **kw: int((ThresholdBaseline(**kw).predict(images) > 0).sum())  # noqa: E731
    assert count() == 1000
    assert count(largest_only=False) == 1100
    assert count(largest_only=False, min_size=1) == 1108
    assert count(min_size=2000) == 0


def test_empty_image_gives_all_zeros(fitted):
    labels = fitted.predict(np.zeros(SHAPE + (2,)))
    assert labels.shape == SHAPE and not labels.any()


def test_shapes_are_checked(cases):
    images, seg = cases[0]
    with pytest.raises(ValueError, match=r"\(40, 40, 24, 3\)"):
        ThresholdBaseline().predict(np.zeros(SHAPE + (3,)))
    with pytest.raises(ValueError, match=r"\(40, 40, 23\).*\(40, 40, 24, 2\)"):
        ThresholdBaseline.fit([images], [seg[..., :-1]])
    with pytest.raises(ValueError, match="as many"):
        ThresholdBaseline.fit([images], [])


def test_padding_with_background_changes_neither_the_fit_nor_the_scores(cases):
    # fit() crops each case to the box of its brain and labels; a case padded with zeros
    # (as BraTS pads the head inside 240 x 240 x 155) must give the same thresholds and Dice
    pad = ((7, 3), (0, 9), (5, 5))
    padded = [(np.pad(x, pad + ((0, 0),)), np.pad(s, pad)) for x, s in cases[:3]]
    plain = ThresholdBaseline.fit([x for x, _ in cases[:3]], [s for _, s in cases[:3]])
    wide = ThresholdBaseline.fit([x for x, _ in padded], [s for _, s in padded])
    assert (wide.t_flair, wide.t_t1ce) == (plain.t_flair, plain.t_t1ce)
    assert wide.train_scores == pytest.approx(plain.train_scores)


def test_core_fills_the_same_holes_as_filling_every_whole_slice():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for _ in range(20):
        wt = np.zeros((30, 26, 12), bool)
        lo = rng.integers(0, 10, 3)
        wt[lo[0]:lo[0] + 15, lo[1]:lo[1] + 12, lo[2]:lo[2] + 6] = True
        t1ce = rng.random(wt.shape)
        tc, et = ThresholdBaseline(t_t1ce=0.4)._core(t1ce, wt)
        expected = np.stack([ndimage.binary_fill_holes(et[:, :, k]) for k in range(et.shape[2])], axis=-1)
        np.testing.assert_array_equal(tc, expected)
    tc, et = ThresholdBaseline()._core(np.zeros((5, 5, 3)), np.zeros((5, 5, 3), bool))
    assert not tc.any() and not et.any()


def test_the_baseline_run_is_kept_in_the_results_and_ranked_with_the_models(tiny_dataset, tmp_path):
    """Chapter 2 fits the baseline once; later chapters and the results chapter read the same
    numbers on the same test cases from the results folder."""
    from bratslib.comparison import collect_runs
    from bratslib.data import data_provenance, find_cases
    from bratslib.data.splits import split_cases
    from bratslib.evaluate import baseline_run

    provenance = data_provenance(tiny_dataset)
    split = split_cases([c.case_id for c in find_cases(tiny_dataset)], seed=0)
    kwargs = dict(profile="smoke", seed=0, fit_cases=3, results_dir=tmp_path, progress=False)
    baseline, evaluation = baseline_run(tiny_dataset, split, provenance, **kwargs)
    assert [r["case_id"] for r in evaluation.per_case] == split["test"]
    assert 0 < evaluation.mean("dice_WT") <= 1
    again, read_back = baseline_run(tiny_dataset, split, provenance, **kwargs)
    assert (again.t_flair, again.t_t1ce) == (baseline.t_flair, baseline.t_t1ce)
    assert [r["dice_WT"] for r in read_back.per_case] == pytest.approx([r["dice_WT"] for r in evaluation.per_case])
    (run,) = [p for p in tmp_path.iterdir() if p.name.startswith("threshold_baseline-smoke-seed0")]
    assert (run / "metrics.json").is_file()
    assert collect_runs(provenance, "smoke", tmp_path) == {}  # the models only, unless asked
    found = collect_runs(provenance, "smoke", tmp_path, include_baseline=True)
    assert list(found) == ["threshold_baseline"] and found["threshold_baseline"].label == "threshold baseline"
    assert found["threshold_baseline"].values("dice_WT") == pytest.approx([r["dice_WT"] for r in evaluation.per_case])
