"""Preprocessing (report section 2.2), case splits and the preprocessed cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bratslib.data import find_cases, load_case
from bratslib.data.cache import CachedCase, PreprocessedCache, default_cache_dir
from bratslib.data.preprocess import (
    MEDIAN_TARGET,
    normalize_intensity,
    one_hot,
    preprocess_case,
    resize_back,
    resize_slices,
    resize_volume,
    to_brats_labels,
    to_training_labels,
)
from bratslib.data.splits import load_split, save_split, split_cases
from tests.conftest import TINY_SHAPE, write_tiny_case


def brain_volume(shape=(40, 36, 20), seed=0) -> np.ndarray:
    """Positive intensities inside a box, 0 outside, with a few very hot voxels."""
    rng = np.random.default_rng(seed)
    v = np.zeros(shape, np.float32)
    v[5:-5, 5:-5, 2:-2] = rng.uniform(100, 1000, (shape[0] - 10, shape[1] - 10, shape[2] - 4))
    v[10, 10, 10] = v[11, 11, 11] = 1e5
    return v


# ------------------------------------------------------------------------- intensities


@pytest.mark.parametrize("mode", ["volume", "slice", "median", "rank"])
def test_normalize_range_and_background(mode):
    v = brain_volume()
    out = normalize_intensity(v, mode)
    assert out.dtype == np.float32 and out.shape == v.shape
    assert out.min() >= 0 and out.max() <= 1
    assert np.all(out[v == 0] == 0)
    assert out.max() == pytest.approx(1.0, abs=1e-3)  # rank: the two hottest voxels share 1 - 1 / n


def test_normalize_volume_clips_hot_voxels_at_percentiles():
    v = brain_volume()
    out = normalize_intensity(v)
    # plain min-max would squeeze the brain below 1000 / 1e5; robust min-max spreads it
    assert np.median(out[v > 0]) > 0.3
    assert out[10, 10, 10] == 1.0


def test_per_volume_keeps_a_tissue_at_one_value_across_slices_per_slice_does_not():
    v = np.zeros((20, 20, 6), np.float32)
    v[2:18, 2:18, :] = 500.0  # one tissue everywhere
    v[5:15, 5:15, :3] = 1000.0  # a brighter tissue on the lower slices only
    vol, sl = normalize_intensity(v, "volume"), normalize_intensity(v, "slice")
    assert np.ptp(vol[3, 3, :]) == 0  # the 500 tissue has one value on every slice
    assert np.ptp(sl[3, 3, :]) > 0.4  # per-slice: 0.5 on the lower slices, 1.0 above


def lesion_volume(lesion_value: float) -> np.ndarray:
    """Brain of intensities 40-120 around a 4 x 4 x 4 lesion (1 % of the brain) of ``lesion_value``."""
    v = np.zeros((24, 24, 16), np.float32)
    v[2:-2, 2:-2, :] = np.random.default_rng(0).uniform(40, 120, (20, 20, 16))
    v[10:14, 10:14, 6:10] = lesion_value
    return v


def test_median_normalisation_keeps_a_lesions_contrast_to_brain_volume_maps_it_to_one():
    faint, strong = lesion_volume(130.0), lesion_volume(220.0)
    # per-volume min-max: the lesion is the top 1 %, above the 99.5th percentile, so 1 either way
    assert normalize_intensity(faint, "volume")[12, 12, 8] == normalize_intensity(strong, "volume")[12, 12, 8] == 1.0
    lo_faint, lo_strong = (normalize_intensity(v, "median") for v in (faint, strong))
    brain = faint != 0
    assert np.median(lo_faint[brain]) == pytest.approx(MEDIAN_TARGET, abs=0.01)
    # anchored on the median (about 80, floor about 40): 130 sits 2.2 times as high above the floor
    # as the median, 0.9; 220 is past 2.5 times, clipped at 1
    assert 0.85 < lo_faint[12, 12, 8] < 0.95 and lo_strong[12, 12, 8] == 1.0
    # the rest of the brain does not move with the lesion
    np.testing.assert_allclose(lo_faint[5, 5, 3], lo_strong[5, 5, 3], atol=1e-6)


def test_rank_normalisation_is_the_share_of_brain_below_and_ignores_any_monotone_change():
    faint, strong = lesion_volume(130.0), lesion_volume(220.0)
    brain = faint != 0
    rank_faint, rank_strong = normalize_intensity(faint, "rank"), normalize_intensity(strong, "rank")
    # the lesion is the brightest 1 % (64 of 6400 voxels) however bright: mean rank of the top 64
    assert rank_faint[12, 12, 8] == rank_strong[12, 12, 8] == pytest.approx(1 - 32 / 6400)
    np.testing.assert_array_equal(rank_faint, rank_strong)
    # a monotone change of every intensity (a scanner's contrast) changes nothing, ties included
    whole = np.rint(faint)  # 40-130: many ties; their squares are exact in float32
    np.testing.assert_array_equal(normalize_intensity(3 * whole**2 + 7 * (whole > 0), "rank"),
                                  normalize_intensity(whole, "rank"))
    # whole and fractional values: the same ranks
    np.testing.assert_array_equal(normalize_intensity(whole + 0.5 * (whole > 0), "rank"),
                                  normalize_intensity(whole, "rank"))
    # the brain's values are flat: its median voxel sits at 0.5
    assert np.median(rank_faint[brain]) == pytest.approx(0.5, abs=1e-3)


def test_normalize_channels_separately():
    v = np.stack([brain_volume(seed=1), 10 * brain_volume(seed=2)], axis=-1)
    out = normalize_intensity(v)
    assert out.shape == v.shape
    np.testing.assert_allclose(out[..., 0], normalize_intensity(v[..., 0]))
    np.testing.assert_allclose(out[..., 1], normalize_intensity(v[..., 1]))


def test_normalize_empty_volume_and_bad_mode():
    assert not normalize_intensity(np.zeros((4, 4, 4))).any()
    with pytest.raises(ValueError, match="mode"):
        normalize_intensity(brain_volume(), "zscore")


# ------------------------------------------------------------------------- labels


def test_label_mapping_round_trip():
    seg = np.array([[0, 1], [2, 4]], np.uint8)
    labels = to_training_labels(seg)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, [[0, 1], [2, 3]])
    np.testing.assert_array_equal(to_brats_labels(labels), seg)


@pytest.mark.parametrize("bad", [[0, 3], [5], [-1], [0.5], [300]])
def test_bad_brats_labels_raise(bad):
    with pytest.raises(ValueError, match="outside|integers"):
        to_training_labels(np.array(bad))


def test_bad_class_indices_raise():
    with pytest.raises(ValueError, match=r"\{0, 1, 2, 3\}"):
        to_brats_labels(np.array([0, 4]))


def test_one_hot():
    labels = np.array([[0, 3], [1, 2]], np.uint8)
    oh = one_hot(labels)
    assert oh.shape == (2, 2, 4) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.sum(-1), 1)
    np.testing.assert_array_equal(oh.argmax(-1), labels)
    with pytest.raises(ValueError):
        one_hot(np.array([4]))


# ------------------------------------------------------------------------- sizes


def blob_labels(shape=(60, 60, 10)) -> np.ndarray:
    x, y, z = np.indices(shape)
    r = np.sqrt((x - 30) ** 2 + (y - 28) ** 2)
    return np.select([r < 5, r < 10, r < 18], [1, 3, 2], 0).astype(np.uint8)


def test_resize_slices_shapes_and_label_set():
    img = np.random.default_rng(0).random((60, 60, 10, 2), dtype=np.float32)
    assert resize_slices(img, 32).shape == (32, 32, 10, 2)
    assert resize_slices(img, 32).dtype == np.float32
    labels = resize_slices(blob_labels(), 32, order=0)
    assert labels.shape == (32, 32, 10) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_resize_volume_shapes_and_label_set():
    img = np.random.default_rng(0).random((60, 60, 10, 2), dtype=np.float32)
    assert resize_volume(img, 16).shape == (16, 16, 16, 2)
    assert resize_volume(img, (8, 12, 6)).shape == (8, 12, 6, 2)
    labels = resize_volume(blob_labels(), 24, order=0)
    assert labels.shape == (24, 24, 24)
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_resize_back_to_original_grid():
    labels = blob_labels((240, 240, 12))
    small = resize_volume(labels, 128, order=0)
    back = resize_back(small, labels.shape)
    assert back.shape == labels.shape and back.dtype == np.uint8
    assert (back == labels).mean() > 0.98
    # a slice stack (z, 128, 128, classes) of probabilities from a 2-D model
    probs = one_hot(np.moveaxis(resize_slices(labels, 128, order=0), 2, 0))
    back = resize_back(probs, (240, 240, 12), order=1, slices_first=True)
    assert back.shape == (240, 240, 12, 4)
    assert (back.argmax(-1) == labels).mean() > 0.98


# ------------------------------------------------------------------------- one case


@pytest.fixture(scope="module")
def case(tiny_dataset):
    return load_case(find_cases(tiny_dataset)[0])


def test_preprocess_case_2d(case):
    images, labels = preprocess_case(case, ("flair", "t1ce"), size=32, mode="2d")
    z = TINY_SHAPE[2]
    assert images.shape == (z, 32, 32, 2) and images.dtype == np.float32
    assert labels.shape == (z, 32, 32) and labels.dtype == np.uint8
    assert images.min() >= 0 and images.max() <= 1
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_preprocess_case_3d_and_slice_normalisation(case):
    images, labels = preprocess_case(case, ("flair", "t1", "t1ce", "t2"), size=16, mode="3d", normalize="slice")
    assert images.shape == (16, 16, 16, 4) and labels.shape == (16, 16, 16)
    assert images.min() >= 0 and images.max() <= 1


def test_preprocess_unlabeled_case(tmp_path):
    folder = write_tiny_case(tmp_path, "BraTS20_Validation_001", labeled=False)
    images, labels = preprocess_case(load_case(folder), size=16)
    assert images.shape == (TINY_SHAPE[2], 16, 16, 2) and labels is None


# ------------------------------------------------------------------------- splits

IDS = [f"BraTS20_Training_{k:03d}" for k in range(1, 370)]


def test_split_by_case_no_overlap_all_used():
    split = split_cases(IDS)
    assert set(split) == {"train", "val", "test"}
    parts = [set(v) for v in split.values()]
    assert sum(map(len, parts)) == len(IDS) and set().union(*parts) == set(IDS)
    assert len(split["train"]) == 259 and len(split["val"]) == len(split["test"]) == 55


def test_split_deterministic_order_independent_and_seeded():
    shuffled = list(np.random.default_rng(1).permutation(IDS))
    assert split_cases(IDS, seed=3) == split_cases(shuffled, seed=3)
    assert split_cases(IDS, seed=3) != split_cases(IDS, seed=4)


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_small_splits_are_never_empty(n):
    split = split_cases(IDS[:n], fractions=(0.1, 0.45, 0.45))
    assert all(split.values()) and sum(map(len, split.values())) == n


def test_split_errors():
    with pytest.raises(ValueError, match="at least 3"):
        split_cases(IDS[:2])
    with pytest.raises(ValueError, match="repeated"):
        split_cases(IDS[:3] + IDS[:1])
    with pytest.raises(ValueError, match="fractions"):
        split_cases(IDS, fractions=(0.8, 0.2, 0.0))


def test_split_save_and_load(tmp_path):
    split = split_cases(IDS[:10])
    path = save_split(split, tmp_path / "split.json", seed=0)
    assert load_split(path) == split and json.loads(path.read_text())["seed"] == 0


# ------------------------------------------------------------------------- cache


@pytest.fixture
def one_case(tmp_path):
    """A fresh case (its files may be modified by the test) and a cache folder."""
    folder = write_tiny_case(tmp_path / "data", "BraTS20_Training_001", seed=3)
    return find_cases(folder)[0], tmp_path / "cache"


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("BRATSLIB_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("BRATSLIB_CACHE")
    assert default_cache_dir() == Path("~/.cache/bratslib").expanduser()


def test_cache_matches_preprocessing_and_is_memory_mapped(one_case):
    files, cache_dir = one_case
    cached = PreprocessedCache(cache_dir, size=32).get(files)
    images, labels = preprocess_case(load_case(files), size=32)
    assert isinstance(cached.images, np.memmap) and cached.images.dtype == np.float16
    np.testing.assert_allclose(cached.images, images, atol=1e-3)
    np.testing.assert_array_equal(cached.labels, labels)
    assert cached.labels.dtype == np.uint8
    brain = np.flatnonzero(images.any(axis=(1, 2, 3)))
    np.testing.assert_array_equal(cached.brain_slices, brain)
    assert cached.meta["shape"] == list(TINY_SHAPE)


def test_cache_hit_reads_no_nifti(one_case, monkeypatch):
    files, cache_dir = one_case
    cache = PreprocessedCache(cache_dir, size=32)
    first = cache.build([files], progress=False)[0]

    def no_load(*args, **kwargs):
        raise AssertionError("NIfTI file read on a cache hit")

    monkeypatch.setattr(nib, "load", no_load)
    again = PreprocessedCache(cache_dir, size=32).get(files)
    assert again.path == first.path
    np.testing.assert_array_equal(again.labels, first.labels)


def test_cache_key_changes_with_settings_and_files(one_case):
    files, cache_dir = one_case
    base = PreprocessedCache(cache_dir, size=32)
    key = base.key(files)
    assert PreprocessedCache(cache_dir, size=32).key(files) == key
    for other in (dict(size=16), dict(mode="3d"), dict(normalize="slice"),
                  dict(modalities=("flair",)), dict(dtype="float32")):
        assert PreprocessedCache(cache_dir, **{"size": 32, **other}).key(files) != key
    path = base.get(files).path
    flair = files.images["flair"]
    st = flair.stat()
    os.utime(flair, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file was touched
    assert base.key(files) != key and not base.contains(files)
    rebuilt = base.get(files)
    assert rebuilt.path != path and (rebuilt.path / "meta.json").is_file()


def test_interrupted_build_is_never_trusted(one_case, monkeypatch):
    files, cache_dir = one_case
    cache = PreprocessedCache(cache_dir, size=32)
    real_save = np.save

    def save_then_die(path, arr, *args, **kwargs):
        real_save(path, arr, *args, **kwargs)
        if str(path).endswith("labels.npy"):
            raise KeyboardInterrupt  # killed half-way through the case

    monkeypatch.setattr(np, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        cache.get(files)
    monkeypatch.setattr(np, "save", real_save)
    assert not cache.contains(files)
    assert not cache.path(files).exists()
    assert not list(cache.folder.glob(".tmp-*"))  # the temporary folder was cleaned up
    cached = cache.get(files)
    assert cached.labels.shape == (TINY_SHAPE[2], 32, 32)


def test_cached_case_pickles_without_its_arrays(one_case):
    import pickle

    files, cache_dir = one_case
    cached = PreprocessedCache(cache_dir, size=32).get(files)
    cached.images  # opened
    blob = pickle.dumps(cached)
    assert len(blob) < 10_000
    back = pickle.loads(blob)
    assert isinstance(back, CachedCase) and back.images.shape == cached.images.shape


def test_cache_3d_mode(one_case):
    files, cache_dir = one_case
    cached = PreprocessedCache(cache_dir, size=16, mode="3d", dtype="float32").get(files)
    assert cached.images.shape == (16, 16, 16, 2) and cached.images.dtype == np.float32
    assert cached.labels.shape == (16, 16, 16) and cached.mode == "3d"


def test_brain_box_is_a_square_around_the_brain_inside_the_grid_and_pasting_inverts_cropping():
    from bratslib.data.preprocess import brain_box, paste_box

    images = np.zeros((240, 240, 155, 2), np.float32)
    images[60:180, 40:210, 20:130, 0] = 1.0  # a 120 x 170 brain
    box = brain_box(images, "2d")
    (x0, x1), (y0, y1), (z0, z1) = box
    assert x1 - x0 == y1 - y0 == 170 + 2 * 4  # square: the longer side plus the margin
    assert x0 <= 60 and x1 >= 180 and y0 <= 40 and y1 >= 210 and (z0, z1) == (0, 155)
    assert brain_box(images, "3d")[2] == (16, 134)
    edge = np.zeros((240, 240, 155), np.float32)
    edge[0:200, 0:30, 10:20] = 1.0  # at the border: the square is shifted into the grid
    (ex0, ex1), (ey0, ey1), _ = brain_box(edge, "2d")
    assert (ex0, ey0) == (0, 0) and ex1 - ex0 == ey1 - ey0 == 208
    assert brain_box(np.zeros((20, 20, 5))) == ((0, 20), (0, 20), (0, 5))

    labels = np.zeros((240, 240, 155), np.uint8)
    labels[100:120, 100:130, 50:60] = 2
    crop = tuple(slice(a, b) for a, b in box)
    np.testing.assert_array_equal(paste_box(labels[crop], box, labels.shape), labels)


def test_cropped_preprocessing_gives_the_tumour_more_pixels_and_predictions_come_back_to_the_grid(tmp_path):
    """Through the cache and evaluate's inverse: a perfect 'model' of the cropped labels,
    put back on the original grid, scores Dice 1 on the whole case."""
    from bratslib.data import find_cases, load_case
    from bratslib.data.cache import PreprocessedCache
    from bratslib.evaluate import _to_original_grid
    from bratslib.data.preprocess import one_hot

    import nibabel as nib

    from tests.conftest import write_tiny_case

    case_dir = write_tiny_case(tmp_path / "data", "BraTS20_Training_001")
    for path in case_dir.iterdir():  # the brain in a wider field of view, as in BraTS
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.pad(np.asarray(img.dataobj), ((30, 10), (20, 20), (0, 0))), img.affine), path)
    files = find_cases(case_dir)[0]
    plain = PreprocessedCache(tmp_path, size=32, mode="2d").get(files)
    cropped = PreprocessedCache(tmp_path, size=32, mode="2d", crop=True).get(files)
    assert cropped.path.parent != plain.path.parent and cropped.meta["box"] is not None
    assert plain.meta["box"] is None
    assert np.count_nonzero(cropped.labels) > np.count_nonzero(plain.labels)
    seg = load_case(files).seg
    for cached in (plain, cropped):
        back = _to_original_grid(one_hot(np.asarray(cached.labels)), cached)
        assert back.shape == seg.shape
        tumour_agreement = np.logical_and(back > 0, seg > 0).sum() * 2 / ((back > 0).sum() + (seg > 0).sum())
        assert tumour_agreement > 0.8
