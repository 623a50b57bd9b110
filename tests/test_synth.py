"""The synthetic BraTS generator: layout, geometry, labels, realism, determinism."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import bratslib
from bratslib.data.cases import check_case, load_case
from bratslib.data.layout import BRATS_SHAPE, MODALITIES, find_cases
from bratslib.data.synth import (
    BRATS_AFFINE,
    DEFAULT_OPTIONS,
    FAINT_EDGE,
    GENERATOR_VERSION,
    SYNTH_OPTIONS,
    _draw_pose,
    _draw_tumour,
    _template,
    synth_options,
    synthesize_case,
    write_synthetic_dataset,
)
from bratslib.labels import LABELS, dice

SEED = 7  # its first two cases: one with enhancing tumour (HGG), one without (LGG)


def _hashes(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _best_threshold_dice(image: np.ndarray, whole_tumour: np.ndarray) -> float:
    """Best whole-tumour Dice of ``image > t`` or ``image < t`` over 50 percentiles of the brain's intensities."""
    brain = image > 0
    values, truth = image[brain].astype(np.float32), whole_tumour[brain]
    best = 0.0
    for t in np.percentile(values, np.linspace(1, 99, 50)):
        best = max(best, dice(values > t, truth), dice(values < t, truth))
    return best


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(out, n_cases=2, seed=SEED, progress=False)
    return out


@pytest.fixture(scope="module")
def cases(dataset):
    return [load_case(files, require_seg=True) for files in find_cases(dataset)]


@pytest.fixture(scope="module")
def other_case():
    """Case 1 of another seed, in memory, forced to have no enhancing tumour."""
    return synthesize_case(np.random.SeedSequence(SEED + 1).spawn(1)[0], enhancing=False)


# --------------------------------------------------------------------------- layout


def test_layout_and_names(dataset):
    data_dir = dataset / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    found = find_cases(dataset)
    assert [c.case_id for c in found] == ["BraTS20_Training_001", "BraTS20_Training_002"]
    for files in found:
        assert files.folder.parent == data_dir
        assert files.missing == () and files.labeled and files.notes == ()
        for m in MODALITIES:
            assert files.images[m].name == f"{files.case_id}_{m}.nii"
        assert files.seg.name == f"{files.case_id}_seg.nii"
        assert check_case(files) == []
    assert not [p for p in dataset.rglob(".*")], "temporary files left behind"


def test_geometry_and_dtypes(cases):
    for case in cases:
        assert case.shape == BRATS_SHAPE
        assert case.spacing == (1.0, 1.0, 1.0)
        np.testing.assert_array_equal(case.affine, BRATS_AFFINE)
        for m in MODALITIES:
            img = nib.load(case.files.images[m])
            assert img.get_data_dtype() == np.int16
            assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
            np.testing.assert_array_equal(img.header.get_qform(), BRATS_AFFINE)
            assert case.image(m).dtype == np.float32
        assert nib.load(case.files.seg).get_data_dtype() == np.uint8


def test_labels(cases):
    grades = []
    for case in cases:
        labels = set(np.unique(case.seg).tolist())
        assert labels <= set(LABELS) and {0, 1, 2} <= labels
        grades.append(4 in labels)
    assert grades == [True, False]


def test_forced_grade(other_case):
    assert other_case.params["has_enhancing"] is False
    assert 4 not in np.unique(other_case.seg) and {1, 2} <= set(np.unique(other_case.seg).tolist())


def test_draw_frequency_of_non_enhancing_tumours():
    template = _template()

    def enhancing(seed):
        rng = np.random.default_rng(seed)  # the draws in synthesize_case's order
        _draw_pose(rng)
        return _draw_tumour(rng, template, None)["has_enhancing"]

    share = np.mean([enhancing(s) for s in np.random.SeedSequence(0).spawn(300)])
    assert 0.6 < share < 0.8  # about 30 % of cases have no enhancing tumour


def test_background_zero_outside_brain(cases):
    for case in cases:
        brain = case.flair > 0
        for m in MODALITIES:
            np.testing.assert_array_equal(case.image(m) > 0, brain)  # one brain mask, skull-stripped
        assert not np.any(case.seg[~brain])
        assert 1.2e6 < brain.sum() < 2.4e6  # voxels (mm3) of an adult brain
        assert brain[0].sum() == brain[-1].sum() == brain[:, 0].sum() == brain[:, -1].sum() == 0
        assert brain.any(axis=(0, 1)).sum() >= 125  # the brain fills most of the 155 slices
        whole = (case.seg > 0).sum()
        assert 0.005 < whole / brain.sum() < 0.2
        assert (case.seg == 0).mean() > 0.97  # BraTS: ~98.5-99 % background


def test_orientation(cases):
    """LPS+ voxel axes: the cerebellum (lowest slices) is at the back, i.e. larger j."""
    for case in cases:
        brain = case.flair > 0
        ks = np.flatnonzero(brain.any(axis=(0, 1)))
        j = np.arange(BRATS_SHAPE[1])
        centre_j = (brain.sum(axis=(0, 2)) * j).sum() / brain.sum()
        low = brain[:, :, ks[0] : ks[0] + 20]
        assert (low.sum(axis=(0, 2)) * j).sum() / low.sum() > centre_j + 10


def test_intensity_contrasts(cases):
    """T2: the tumour core is brighter than the brain; T1ce: enhancing tumour brighter than the
    brain and the core darker; FLAIR: oedema brighter.  (The synthetic default draws each value
    per case, enhancement from faint to strong: the relations hold, their size varies.)"""
    hgg = cases[0]
    brain = hgg.flair > 0
    normal = brain & (hgg.seg == 0)
    assert np.median(hgg.t1ce[hgg.seg == 4]) > 1.1 * np.median(hgg.t1ce[normal])
    assert np.median(hgg.t1ce[hgg.seg == 1]) < np.median(hgg.t1ce[normal])
    assert np.median(hgg.t2[hgg.seg == 1]) > 1.3 * np.median(hgg.t2[normal])
    assert np.median(hgg.flair[hgg.seg == 2]) > 1.2 * np.median(hgg.flair[normal])


def test_no_single_threshold_segments_the_tumour(cases, other_case):
    volumes = [{m: c.image(m) for m in MODALITIES} | {"seg": c.seg} for c in cases]
    volumes.append(other_case.images | {"seg": other_case.seg})
    for vol in volumes:
        whole = vol["seg"] > 0
        dice = {m: _best_threshold_dice(vol[m], whole) for m in MODALITIES}
        print({m: round(d, 3) for m, d in dice.items()})
        assert max(dice.values()) < 0.9, dice
        assert dice["flair"] >= 0.25, dice  # FLAIR shows the tumour (faintly, for a small one)


# --------------------------------------------------------------------------- files


def test_name_mapping(dataset):
    path = dataset / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "name_mapping.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["Grade", "BraTS_2017_subject_ID", "BraTS_2018_subject_ID", "TCGA_TCIA_subject_ID",
                             "BraTS_2019_subject_ID", "BraTS_2020_subject_ID"]
    assert [(r["Grade"], r["BraTS_2020_subject_ID"]) for r in rows] == [
        ("HGG", "BraTS20_Training_001"), ("LGG", "BraTS20_Training_002")]
    assert all(r[k] == "NA" for r in rows for k in ("BraTS_2017_subject_ID", "TCGA_TCIA_subject_ID"))


def test_provenance(dataset):
    info = json.loads((dataset / "bratslib_synthetic.json").read_text())
    assert info["seed"] == SEED and info["n_cases"] == 2 and info["compress"] is False
    assert info["bratslib_version"] == bratslib.__version__
    assert info["generator_version"]
    assert "Louis Collins" in info["template"]["licence"] and "Fonov" in info["template"]["citation"]
    assert {"numpy", "scipy", "nibabel"} <= set(info["versions"])


def test_same_seed_same_bytes(dataset, tmp_path):
    again = write_synthetic_dataset(tmp_path, n_cases=2, seed=SEED, progress=False)
    assert again == tmp_path / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    assert _hashes(tmp_path) == _hashes(dataset)


def test_worker_processes_write_the_same_bytes(dataset, tmp_path):
    write_synthetic_dataset(tmp_path, n_cases=2, seed=SEED, progress=False, workers=2)
    assert _hashes(tmp_path) == _hashes(dataset)


def test_other_seed_other_bytes(cases, other_case):
    assert not np.array_equal(other_case.images["flair"], cases[0].flair.astype(np.int16))
    assert not np.array_equal(other_case.seg, cases[0].seg)


def test_compressed_case_does_not_depend_on_n_cases(dataset, tmp_path):
    data_dir = write_synthetic_dataset(tmp_path, n_cases=1, seed=SEED, compress=True, progress=False)
    plain = dataset / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_001"
    for m in (*MODALITIES, "seg"):
        packed = (data_dir / "BraTS20_Training_001" / f"BraTS20_Training_001_{m}.nii.gz").read_bytes()
        assert packed[4:8] == b"\0\0\0\0"  # gzip mtime 0: same bytes whenever written
        assert gzip.decompress(packed) == (plain / f"BraTS20_Training_001_{m}.nii").read_bytes()
    assert check_case(find_cases(data_dir)[0]) == []


def test_rerun_resumes_and_refuses_another_dataset(dataset):
    before = _hashes(dataset)
    write_synthetic_dataset(dataset, n_cases=2, seed=SEED, progress=False)  # complete cases are skipped
    assert _hashes(dataset) == before
    with pytest.raises(FileExistsError, match="different synthetic data set"):
        write_synthetic_dataset(dataset, n_cases=2, seed=SEED + 1, progress=False)
    with pytest.raises(FileExistsError, match="different synthetic data set"):
        write_synthetic_dataset(dataset, n_cases=3, seed=SEED, progress=False)
    assert _hashes(dataset) == before


def test_refuses_folder_with_foreign_cases(tmp_path):
    (tmp_path / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_001").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="did not write"):
        write_synthetic_dataset(tmp_path, n_cases=1, progress=False)


# --------------------------------------------------------------------------- options


ALL_OPTIONS = tuple(SYNTH_OPTIONS)


def _case_bytes(case) -> bytes:
    return b"".join(case.images[m].tobytes() for m in MODALITIES) + case.seg.tobytes()


def test_synth_options_resolve_names_and_refuse_unknown_ones():
    assert synth_options(()) == dict.fromkeys(SYNTH_OPTIONS, False)
    assert synth_options(None) == {k: k in DEFAULT_OPTIONS for k in SYNTH_OPTIONS}
    assert synth_options(["glioma"]) == {k: k == "glioma" for k in SYNTH_OPTIONS}
    assert synth_options({"glioma": False})["glioma"] is False
    with pytest.raises(ValueError, match="unknown synthetic data option"):
        synth_options(["colour"])


@pytest.fixture(scope="module")
def option_cases():
    """Case 1 of SEED with every option off, each option alone, and all of them (twice), with the
    seconds each took."""
    seed = np.random.SeedSequence(SEED).spawn(1)[0]
    out = {}
    for name in ("off", *ALL_OPTIONS, "all", "all again"):
        options = () if name == "off" else ALL_OPTIONS if name.startswith("all") else (name,)
        start = time.perf_counter()
        out[name] = (synthesize_case(seed, options=options), time.perf_counter() - start)
    return out


@pytest.mark.slow
def test_options_same_seed_same_bytes_and_each_option_changes_the_case(option_cases):
    for name, (case, seconds) in option_cases.items():
        print(f"{name}: {seconds:.1f} s per case")  # reported, not asserted (shared CPUs)
    off = _case_bytes(option_cases["off"][0])
    assert _case_bytes(option_cases["all"][0]) == _case_bytes(option_cases["all again"][0])
    for name in (*ALL_OPTIONS, "all"):
        case = option_cases[name][0]
        assert _case_bytes(case) != off, name
        assert case.params["options"] == (sorted(ALL_OPTIONS) if name == "all" else [name])
        assert case.seg.shape == BRATS_SHAPE and set(np.unique(case.seg).tolist()) <= set(LABELS)
        brain = case.images["flair"] > 0
        for m in MODALITIES:
            assert case.images[m].dtype == np.int16
            np.testing.assert_array_equal(case.images[m] > 0, brain)
        assert not np.any(case.seg[~brain]) and 1.2e6 < brain.sum() < 2.4e6


@pytest.mark.slow
def test_other_seed_other_bytes_with_every_option(option_cases):
    other = synthesize_case(np.random.SeedSequence(SEED + 1).spawn(1)[0], options=ALL_OPTIONS)
    assert _case_bytes(other) != _case_bytes(option_cases["all"][0])


def test_contrast_draws_keep_the_relations_a_reader_relies_on():
    """Option contrast: values vary per case, but oedema stays bright on FLAIR, enhancement above
    white matter on T1ce, CSF darkest on FLAIR and T1 and brightest on T2."""
    from bratslib.data.synth import _draw_appearance, _draw_contrast

    looks = [_draw_contrast(rng, _draw_appearance(rng)) for rng in map(np.random.default_rng, range(200))]
    flair_oedema = [look["flair"]["tumour"][0] for look in looks]
    assert min(flair_oedema) > 1.1 and np.std(flair_oedema) > 0.1
    assert min(look["t1ce"]["tumour"][3] for look in looks) > 1.1
    assert max(look["t1ce"]["tumour"][3] for look in looks) > 2.0
    for look in looks:
        for m in ("flair", "t1", "t1ce"):
            assert look[m]["tissue"][0] < look[m]["tissue"][2]
        assert look["t2"]["tissue"][0] > look["t2"]["tissue"][1] > 1


def test_glioma_draws_cover_small_large_solid_multifocal_and_patchy_tumours():
    from bratslib.data.synth import _draw_glioma

    template = _template()
    tumours = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        _draw_pose(rng)
        tumours.append(_draw_glioma(rng, _draw_tumour(rng, template, None)))
    radius = np.array([np.mean(t["core_radii_mm"]) for t in tumours])
    assert radius.min() < 8 and radius.max() > 20
    enhancing = [t for t in tumours if t["has_enhancing"]]
    assert 0.1 < np.mean([t["solid"] for t in enhancing]) < 0.3
    assert 0.2 < np.mean([len(t["foci"]) > 0 for t in tumours]) < 0.4
    # rims 3-6 mm: at least a pixel of the book's 64-pixel slices (~2.5 mm; from thinner ones the U-Net learnt
    # hardly any enhancement); from a closed ring (high patch_offset) to one with gaps, never reduced to scattered specks
    rims = [t["rim_mm"] for t in enhancing if not t["solid"]]
    assert 3.0 <= min(rims) < 3.3 and 5.7 < max(rims) <= 6.0
    assert 0.5 <= min(t["patch_offset"] for t in enhancing) < 0.8 and max(t["patch_offset"] for t in enhancing) > 2.7
    assert all(t["net_share"] == 1.0 for t in tumours if not t["has_enhancing"])


def test_dataset_records_its_options_and_refuses_other_options(tmp_path):
    write_synthetic_dataset(tmp_path, n_cases=1, seed=SEED, options=(), progress=False)
    info = json.loads((tmp_path / "bratslib_synthetic.json").read_text())
    assert info["options"] == [] and info["generator_version"] == GENERATOR_VERSION
    with pytest.raises(FileExistsError, match="options"):
        write_synthetic_dataset(tmp_path, n_cases=1, seed=SEED, options=("glioma",), progress=False)


def test_surface_band_lies_under_the_brain_edge_and_covers_part_of_it():
    """Option surface: the bright band stays within a few mm of the brain's edge, never outside
    the brain, and covers about the drawn share of the surface."""
    from scipy import ndimage

    from bratslib.data.synth import _draw_surface, _surface_map

    grid = np.indices((96, 96, 96)).astype(np.float32) - 47.5
    brain = (np.sqrt((grid**2).sum(0)) < 40).astype(np.float32)
    depth = ndimage.distance_transform_edt(brain > 0.5)
    for coverage in (0.2, 0.6):
        rng = np.random.default_rng(1)
        band = _surface_map(rng, brain, {**_draw_surface(rng), "depth_mm": 2.0, "coverage": coverage})
        assert band.dtype == np.float32 and band.min() >= 0 and band.max() <= 1
        assert not band[brain <= 0.5].any()
        assert band[depth > 6].max() < 0.01  # the blur's kernel: 2.5 sigma = 5 mm along each axis,
        assert band[depth > 9].max() == 0  # its corners sqrt(3) times that
        edge = band[(depth > 0) & (depth <= 1.5)]
        assert coverage - 0.15 < np.mean(edge > 0.5) < coverage + 0.2, coverage


def test_sites_reach_closer_to_the_surface_than_the_first_generator():
    """Option sites: centres from 6 mm below the surface, where the first generator's are >= 15 mm deep."""
    from bratslib.data.synth import _distance_mm

    template = _template()
    depth = _distance_mm(template.brain > 0)
    deep = depth[tuple(template.tumour_sites.T)]
    shallow = depth[tuple(template.shallow_sites.T)]
    assert deep.min() >= 15 and 6 <= shallow.min() < 8
    assert np.mean(shallow < 15) > 0.2  # a quarter of the centres lie between 6 and 15 mm deep


def test_faint_draws_the_enhancement_from_faint_to_bright_on_t1ce_only():
    """Option faint: the enhancing tumour's T1ce value (white matter = 1) log-uniform in 1.25-2.1."""
    from bratslib.data.synth import _draw_appearance, _draw_faint

    looks = [_draw_faint(rng, _draw_appearance(rng)) for rng in map(np.random.default_rng, range(300))]
    values = np.array([look["t1ce"]["et_value"] for look in looks])
    assert 1.25 <= values.min() < 1.3 and 2.0 < values.max() <= 2.1
    assert 0.38 < np.mean(values < 1.6) < 0.58  # log-uniform: 0.48
    assert not any("et_value" in look[m] for look in looks for m in ("flair", "t1", "t2"))


@pytest.mark.slow
def test_faint_changes_only_the_enhancing_tumour_on_t1ce(monkeypatch):
    """Two cases that differ only in the drawn value: same labels, same FLAIR / T1 / T2 bytes,
    and T1ce's enhancing tumour darker by about the ratio of the values (partial volume at the
    rim's edges pulls it towards its neighbours)."""
    import bratslib.data.synth as synth

    draw = synth._draw_faint
    seed = np.random.SeedSequence(SEED + 7).spawn(1)[0]

    def case_at(value):
        def at_value(rng, look):
            drawn = draw(rng, look)  # the same random draws, then the value pinned
            return {**drawn, "t1ce": {**drawn["t1ce"], "et_value": value}}
        monkeypatch.setattr(synth, "_draw_faint", at_value)
        return synthesize_case(seed, enhancing=True, options=("glioma", "faint"))

    bright, faint = case_at(1.9), case_at(1.3)
    np.testing.assert_array_equal(bright.seg, faint.seg)
    for m in ("flair", "t1", "t2"):
        np.testing.assert_array_equal(bright.images[m], faint.images[m])
    et = bright.seg == 4
    ratio = np.median(faint.images["t1ce"][et]) / np.median(bright.images["t1ce"][et])
    assert 1.3 / 1.9 - 0.02 < ratio < 0.85
    change = bright.images["t1ce"].astype(int) - faint.images["t1ce"]
    assert change.min() >= -1  # rounding
    # most of it within the labelled tumour (the soft enhancement map's edge, below one half, reaches a few mm beyond)
    assert change[bright.seg > 0].sum() > 0.8 * change.sum()


@pytest.mark.parametrize("option, key", [("subtle", "tumour_contrast"), ("faint_oedema", "oedema_contrast")])
def test_subtle_and_faint_oedema_draw_one_contrast_factor_per_modality(option, key):
    """Options subtle (every tumour value) and faint_oedema (the oedema's): per modality a factor
    uniform in 0.35-1 (1: the first generator's contrast)."""
    import bratslib.data.synth as synth

    draw = getattr(synth, f"_draw_{option}")
    looks = [draw(rng, synth._draw_appearance(rng)) for rng in map(np.random.default_rng, range(300))]
    factors = np.array([[look[m][key] for m in synth.MODALITIES] for look in looks])
    assert 0.35 <= factors.min() < 0.4 and 0.95 < factors.max() <= 1.0
    assert 0.4 < np.mean(factors < 0.675) < 0.6  # uniform: half below the middle
    assert abs(np.corrcoef(factors[:, 0], factors[:, 1])[0, 1]) < 0.2  # drawn apart per modality


def _pinned_pair(monkeypatch, option: str, key: str, factors=(1.0, 0.4)):
    """Two enhancing cases of one seed with ``glioma`` and ``option``, whose drawn contrast factor
    (``look[m][key]``) is pinned at each of ``factors`` on every modality after the same random draws."""
    import bratslib.data.synth as synth

    draw = getattr(synth, f"_draw_{option}")
    seed = np.random.SeedSequence(SEED + 7).spawn(1)[0]

    def case_at(factor):
        def at_factor(rng, look):
            drawn = draw(rng, look)
            return {m: {**drawn[m], key: factor} for m in drawn}
        monkeypatch.setattr(synth, f"_draw_{option}", at_factor)
        return synthesize_case(seed, enhancing=True, options=("glioma", option))

    return [case_at(f) for f in factors]


def _to_normal_brain(case, modality: str, region: int | np.ndarray) -> float:
    """Median of a region (a label, or a boolean mask) over the median of the normal brain (brain
    voxels without a label)."""
    normal = (case.images["flair"] > 0) & (case.seg == 0)
    inside = region if isinstance(region, np.ndarray) else case.seg == region
    return float(np.median(case.images[modality][inside]) / np.median(case.images[modality][normal]))


@pytest.mark.slow
def test_subtle_brings_oedema_and_enhancement_towards_normal_brain(monkeypatch):
    """Two cases that differ only in the drawn factors (1: the first generator's contrast, and 0.4
    on every modality): the same labels, the change mostly within them; on FLAIR the oedema darker,
    on T1ce the enhancement darker: each region's distance from normal brain (median to median)
    shrinks to about 0.4 of what it was (partial volume, the grey matter in normal brain and the
    noise blur it)."""
    from bratslib.data.synth import MODALITIES as modalities

    full, subtle = _pinned_pair(monkeypatch, "subtle", "tumour_contrast")
    np.testing.assert_array_equal(full.seg, subtle.seg)
    for m in modalities:  # most of the change within the labels (the oedema's faint tail, below
        change = np.abs(full.images[m].astype(int) - subtle.images[m])  # the label's threshold, reaches beyond)
        assert change[full.seg > 0].sum() > 0.7 * change.sum(), m
    for m, label in (("flair", 2), ("t1ce", 4)):
        shrink = (_to_normal_brain(subtle, m, label) - 1) / (_to_normal_brain(full, m, label) - 1)
        assert 0.25 < shrink < 0.7, (m, label, shrink)


@pytest.mark.slow
def test_faint_oedema_dims_the_oedema_and_leaves_the_enhancement(monkeypatch):
    """Option faint_oedema, its factor pinned at 1 and at 0.4 on every modality: the same labels;
    on FLAIR the oedema's distance from normal brain shrinks to about 0.4 of it, on T1ce the
    enhancing tumour keeps its brightness (within partial volume at its edge)."""
    full, faint = _pinned_pair(monkeypatch, "faint_oedema", "oedema_contrast")
    np.testing.assert_array_equal(full.seg, faint.seg)
    assert 0.25 < (_to_normal_brain(faint, "flair", 2) - 1) / (_to_normal_brain(full, "flair", 2) - 1) < 0.7
    assert _to_normal_brain(faint, "t1ce", 4) == pytest.approx(_to_normal_brain(full, "t1ce", 4), rel=0.03)


def test_wmh_patches_lie_in_white_matter_and_some_cases_have_none():
    """Option wmh (white-matter hyperintensities): a third of the cases without; patches 0..1, only where there is
    white matter, brighter on FLAIR and T2 and darker on T1 / T1ce."""
    from bratslib.data.synth import _draw_wmh, _wmh_map

    draws = [_draw_wmh(np.random.default_rng(k)) for k in range(300)]
    assert 0.25 < np.mean([d["count"] == 0 for d in draws]) < 0.42
    assert max(d["count"] for d in draws) == 40
    assert all(d["gain"]["flair"] > 0.25 and d["gain"]["t2"] > 0.25 and d["gain"]["t1ce"] < 0 for d in draws)
    grid = np.indices((64, 64, 64)).astype(np.float32) - 31.5
    radius = np.sqrt((grid**2).sum(0))
    wm = np.clip(20 - radius, 0, 1).astype(np.float32)  # a ball of white matter in a larger box
    rng = np.random.default_rng(3)
    strength = _wmh_map(rng, {"wm": wm}, {"count": 12, "gain": draws[0]["gain"]})
    assert strength.dtype == np.float32 and strength.min() >= 0 and strength.max() == pytest.approx(1.0)
    assert not strength[wm == 0].any()
    assert 200 < (strength > 0.5).sum() < 0.5 * (wm > 0.9).sum()
    assert not _wmh_map(rng, {"wm": wm}, {"count": 0, "gain": {}}).any()


@pytest.mark.slow
def test_wmh_brighten_flair_outside_the_labels_and_leave_the_labels_alone(monkeypatch):
    """One seed, the option's draws kept and its gains pinned at 0 or left as drawn (the same
    random numbers, so the same noise and bias): the same label map; the patches brighten FLAIR
    in unlabelled white matter by about the drawn gain and darken T1ce there."""
    import bratslib.data.synth as synth

    drawn = synth._draw_wmh

    def case_with(scale):
        def draw(rng):
            out = drawn(rng)
            return {"count": max(out["count"], 20), "gain": {m: g * scale for m, g in out["gain"].items()}}
        monkeypatch.setattr(synth, "_draw_wmh", draw)
        return synthesize_case(np.random.SeedSequence(SEED + 3).spawn(1)[0], options=("glioma", "wmh"))

    none, some = case_with(0.0), case_with(1.0)
    gains = some.params["wmh"]["gain"]
    np.testing.assert_array_equal(none.seg, some.seg)
    unlabelled = (none.images["flair"] > 0) & (none.seg == 0)
    ratio = some.images["flair"][unlabelled].astype(float) / none.images["flair"][unlabelled]
    assert np.sum(ratio > 1 + gains["flair"] / 2) > 500 and ratio.min() > 0.97  # only brighter
    tops = ratio[ratio > 1 + gains["flair"] / 2]  # the patches' flat tops: the drawn gain (noise aside)
    assert np.percentile(tops, 90) == pytest.approx(1 + gains["flair"], abs=0.1)
    core = unlabelled & (some.images["flair"] > (1 + gains["flair"] / 2) * none.images["flair"].astype(float))
    assert np.median(some.images["t1ce"][core] / none.images["t1ce"][core]) < 1 + gains["t1ce"] / 3


def test_leukoaraiosis_spreads_from_the_ventricles_lining_in_white_matter_and_half_the_cases_have_none():
    """Option leukoaraiosis: half the cases without (an all-zero map, no draws); with it, strength 0..1,
    confluent next to the ventricles' lining, fading with distance from it, only in white matter;
    brighter on FLAIR and T2, darker on T1 / T1ce."""
    from bratslib.data.synth import _draw_leukoaraiosis, _leukoaraiosis_map

    draws = [_draw_leukoaraiosis(np.random.default_rng(k)) for k in range(300)]
    assert 0.4 < np.mean([d["present"] for d in draws]) < 0.6
    assert all(3 <= d["extent_mm"] <= 10 and 0.2 <= d["gain"]["flair"] <= 0.7 and d["gain"]["t1"] < 0 for d in draws)
    grid = np.indices((64, 64, 64)).astype(np.float32) - 31.5
    radius = np.sqrt((grid**2).sum(0))
    wm = np.clip(28 - radius, 0, 1).astype(np.float32)  # a ball of white matter ...
    wm[radius < 6] = 0  # ... around a ventricle
    lining = np.clip(1 - (radius - 6) / 3, 0, 1).astype(np.float32) * (radius >= 6)
    present = next(d for d in draws if d["present"])
    maps = [_leukoaraiosis_map(np.random.default_rng(k), {"lining": lining, "wm": wm}, present) for k in range(8)]
    for strength in maps:
        assert strength.dtype == np.float32 and strength.min() >= 0 and strength.max() <= 1
        assert not strength[wm == 0].any()
    strength = np.mean(maps, axis=0)  # the patches averaged out over eight cases

    def shell(r0, r1):
        return strength[(radius >= r0) & (radius < r1)].mean()

    assert shell(6, 8) > shell(14, 16) > shell(24, 26)  # fades away from the lining
    assert shell(6, 8) > 0.4 and shell(24, 26) < 0.05
    absent = {**present, "present": False}
    rng = np.random.default_rng(0)
    assert not _leukoaraiosis_map(rng, {"lining": lining, "wm": wm}, absent).any()
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn for a case without it


@pytest.mark.slow
def test_leukoaraiosis_brightens_flair_around_the_ventricles_and_leaves_the_labels_alone(monkeypatch):
    """One seed, the option forced on and its gains pinned at 0 or left as drawn: the same label map; FLAIR
    brighter in unlabelled white matter, only brighter."""
    import bratslib.data.synth as synth

    drawn = synth._draw_leukoaraiosis

    def case_with(scale):
        def draw(rng):
            out = drawn(rng)
            return {**out, "present": True, "gain": {m: g * scale for m, g in out["gain"].items()}}
        monkeypatch.setattr(synth, "_draw_leukoaraiosis", draw)
        return synthesize_case(np.random.SeedSequence(SEED + 3).spawn(1)[0], options=("glioma", "leukoaraiosis"))

    none, some = case_with(0.0), case_with(1.0)
    gain = some.params["leukoaraiosis"]["gain"]["flair"]
    np.testing.assert_array_equal(none.seg, some.seg)
    unlabelled = (none.images["flair"] > 0) & (none.seg == 0)
    ratio = some.images["flair"][unlabelled].astype(float) / none.images["flair"][unlabelled]
    assert ratio.min() > 0.97 and np.sum(ratio > 1 + gain / 2) > 2000  # only brighter, in thousands of voxels
    assert np.percentile(ratio, 99.99) < 1 + gain + 0.1  # by at most the drawn gain (noise aside)


@pytest.mark.slow
def test_faint_edge_moves_the_oedemas_signal_inside_its_label_and_nothing_else():
    """Option faint_edge draws nothing: the same labels and, away from the tumour, the same bytes (the
    oedema's faint tail reaches some 40 mm along white matter); the oedema's signal fades inside its
    label, so its outer band (2 mm) is fainter and the tissue just outside the label (3 mm) closer
    to normal brain than without it."""
    from scipy import ndimage as ndi

    seed = np.random.SeedSequence(SEED + 5).spawn(1)[0]
    without = synthesize_case(seed, enhancing=True, options=("glioma",))
    with_edge = synthesize_case(seed, enhancing=True, options=("glioma", "faint_edge"))
    np.testing.assert_array_equal(without.seg, with_edge.seg)
    assert with_edge.params["tumour"]["oedema_edge"] == FAINT_EDGE and "oedema_edge" not in without.params["tumour"]
    tumour = without.seg > 0
    far = ndi.distance_transform_edt(~tumour) > 60
    for m in ("flair", "t1", "t1ce", "t2"):
        np.testing.assert_array_equal(without.images[m][far], with_edge.images[m][far])
    band = (without.seg == 2) & ~ndi.binary_erosion(tumour, iterations=2)
    outside = ndi.binary_dilation(tumour, iterations=3) & ~tumour & (without.images["flair"] > 0)
    for region in (band, outside):
        before, after = (_to_normal_brain(case, "flair", region) for case in (without, with_edge))
        assert 1 < after < before - 0.05, (before, after)
