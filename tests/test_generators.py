"""Augmentation and the Keras datasets over the preprocessed cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from bratslib.data import find_cases
from bratslib.data.augment import AUGMENT_PRESETS, AugmentConfig, augment, augment_config, random_coordinates
from bratslib.data.cache import PreprocessedCache
from bratslib.data.generators import SliceDataset, VolumeDataset, make_datasets
from bratslib.data.preprocess import one_hot
from tests.conftest import TINY_SHAPE, write_tiny_case

GEOMETRY_ONLY = AugmentConfig(intensity=False, flip_prob=0.5, max_rotation_deg=15, elastic_prob=1.0)


def blob(shape) -> np.ndarray:
    """Nested off-centre blobs with labels 1 (inner), 3, 2 (outer): uint8."""
    grid = np.indices(shape, dtype=float)
    centre = np.array([0.4, 0.55, 0.5][: len(shape)]) * np.array(shape)
    r = np.sqrt((((grid.T - centre) / (0.3 * np.array(shape))) ** 2).T.sum(0))
    return np.select([r < 0.3, r < 0.6, r < 1.0], [1, 3, 2], 0).astype(np.uint8)


def centroid(weights: np.ndarray) -> np.ndarray:
    return np.array(ndimage.center_of_mass(weights))


# ------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("shape", [(64, 64), (32, 32, 32)])
def test_augmented_image_and_mask_stay_aligned(shape):
    mask = blob(shape)
    image = one_hot(mask)  # channels = the mask itself
    for seed in range(4):
        rng = np.random.default_rng(seed)
        aug_image, aug_mask = augment(image, mask, rng, GEOMETRY_ONLY)
        assert aug_image.shape == image.shape and aug_image.dtype == np.float32
        assert aug_mask.shape == mask.shape and aug_mask.dtype == np.uint8
        assert set(np.unique(aug_mask)) <= {0, 1, 2, 3}
        assert (aug_image.argmax(-1) == aug_mask).mean() >= 0.97


@pytest.mark.parametrize("step", [dict(flip_prob=1.0, rotate=False), dict(flip=False, max_rotation_deg=30)])
def test_flip_and_rotation_move_image_and_mask_together(step):
    mask = blob((64, 64))
    image = np.where(mask > 0, 0.5 + 0.1 * mask, 0).astype(np.float32)[..., None]
    config = AugmentConfig(scale=False, elastic=False, intensity=False, **step)
    before, moves = centroid(mask > 0), []
    for seed in range(5):
        aug_image, aug_mask = augment(image, mask, np.random.default_rng(seed), config)
        after = centroid(aug_mask > 0)
        moves.append(np.linalg.norm(after - before))
        np.testing.assert_allclose(centroid(aug_image[..., 0] > 0.25), after, atol=0.5)
        if "flip_prob" in step:
            np.testing.assert_allclose(after, [63 - before[0], before[1]], atol=1e-6)
    assert max(moves) > 2  # it did move


def test_augmentation_is_reproducible_for_a_seed():
    mask = blob((48, 48))
    image = np.stack([mask / 3, 1 - mask / 3], axis=-1).astype(np.float32)
    a = augment(image, mask, np.random.default_rng(7))
    b = augment(image, mask, np.random.default_rng(7))
    c = augment(image, mask, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_intensity_keeps_background_and_disabled_is_identity():
    mask = blob((32, 32))
    image = np.where(mask > 0, 0.5, 0).astype(np.float32)[..., None].repeat(2, -1)
    config = AugmentConfig(flip=False, rotate=False, scale=False, elastic=False)
    assert random_coordinates(np.random.default_rng(0), (32, 32), config) is None
    out, out_mask = augment(image, mask, np.random.default_rng(0), config)
    assert np.all(out[mask == 0] == 0) and not np.allclose(out, image)
    np.testing.assert_array_equal(out_mask, mask)
    same, same_mask = augment(image, mask, np.random.default_rng(0), AugmentConfig(enabled=False))
    np.testing.assert_array_equal(same, image)
    np.testing.assert_array_equal(same_mask, mask)


def test_gamma_and_contrast_change_brain_intensities_per_channel_and_keep_background():
    mask = blob((32, 32))
    ramp = np.linspace(0.1, 0.9, 32, dtype=np.float32)[:, None].repeat(32, 1)
    image = np.stack([np.where(mask > 0, ramp, 0), np.where(mask > 0, 1 - ramp, 0)], axis=-1).astype(np.float32)
    brain = mask > 0
    plain = AugmentConfig(flip=False, rotate=False, scale=False, elastic=False, intensity=False)
    for step in ({"gamma": True}, {"contrast": True}):
        config = AugmentConfig(**{**plain.__dict__, **step})
        outs = [augment(image, mask, np.random.default_rng(seed), config)[0] for seed in range(4)]
        for out in outs:
            assert np.all(out[~brain] == 0)
            np.testing.assert_array_equal(np.argsort(out[brain][:, 0], kind="stable"),
                                          np.argsort(image[brain][:, 0], kind="stable"))  # monotone per channel
        assert not np.allclose(outs[0], image) and not np.allclose(outs[0], outs[1])
        spread = [float(np.std(out[brain][:, 0]) * np.mean(out[brain][:, 0])) for out in outs]
        assert np.ptp(spread) > 0.005, (step, spread)  # a new draw per call
        np.testing.assert_array_equal(outs[0], augment(image, mask, np.random.default_rng(0), config)[0])


def test_augment_config_reads_a_profile_setting():
    assert augment_config(False) is None and augment_config(None) is None
    assert augment_config(True) == AugmentConfig()
    intensity = augment_config("intensity")
    assert intensity is AUGMENT_PRESETS["intensity"] and intensity.gamma and intensity.contrast
    assert not (intensity.rotate or intensity.scale or intensity.elastic)
    assert augment_config({"gamma": True}).gamma
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_config("colour")


def test_augment_checks_shapes():
    with pytest.raises(ValueError, match="do not match"):
        augment(np.zeros((8, 8, 2), np.float32), np.zeros((8, 7), np.uint8), np.random.default_rng(0))


# ------------------------------------------------------------------------- datasets


@pytest.fixture(scope="module")
def cached_2d(tiny_dataset, tmp_path_factory):
    cache = PreprocessedCache(tmp_path_factory.mktemp("cache2d"), size=32)
    return cache.build(find_cases(tiny_dataset), progress=False)


@pytest.fixture(scope="module")
def cached_3d(tiny_dataset, tmp_path_factory):
    cache = PreprocessedCache(tmp_path_factory.mktemp("cache3d"), size=16, mode="3d")
    return cache.build(find_cases(tiny_dataset), progress=False)


def epoch_samples(ds) -> np.ndarray:
    return np.concatenate([ds.batch_samples(i) for i in range(len(ds))])


def check_batch(x, y, spatial, channels=2):
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.shape[1:] == spatial + (channels,) and y.shape == x.shape[:-1] + (4,)
    np.testing.assert_array_equal(y.sum(-1), 1)
    assert set(np.unique(y)) <= {0.0, 1.0}


def test_slice_dataset_batches(cached_2d):
    ds = SliceDataset(cached_2d, batch_size=16, shuffle=False)
    n = sum(len(c.brain_slices) for c in cached_2d)
    assert len(ds) == -(-n // 16)
    x, y = ds[0]
    check_batch(x, y, (32, 32))
    assert x.shape[0] == 16 and 0 <= x.min() and x.max() <= 1
    last_x, _ = ds[len(ds) - 1]
    assert last_x.shape[0] == n - 16 * (len(ds) - 1)  # last partial batch kept
    case, z = ds.batch_samples(0)[3]
    np.testing.assert_array_equal(x[3], cached_2d[case].images[z].astype(np.float32))
    np.testing.assert_array_equal(y[3].argmax(-1), cached_2d[case].labels[z])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_slice_selection(cached_2d):
    ds = SliceDataset(cached_2d, slices=(5, 15))
    assert len(ds.samples) == 10 * len(cached_2d) and set(ds.samples[:, 1]) == set(range(5, 15))
    ds = SliceDataset(cached_2d, slices=(20, 99))  # clipped to the slices there are
    assert set(ds.samples[:, 1]) == set(range(20, TINY_SHAPE[2]))
    brain = SliceDataset(cached_2d, slices="brain")
    every = SliceDataset(cached_2d, slices="all")
    assert len(brain.samples) < len(every.samples) == TINY_SHAPE[2] * len(cached_2d)
    with pytest.raises(ValueError):
        SliceDataset(cached_2d, slices=(50, 60))


def test_shuffle_differs_between_epochs_and_is_reproducible(cached_2d):
    a, b = SliceDataset(cached_2d, batch_size=8, seed=3), SliceDataset(cached_2d, batch_size=8, seed=3)
    first = epoch_samples(a)
    np.testing.assert_array_equal(first, epoch_samples(b))
    assert sorted(map(tuple, first)) == sorted(map(tuple, a.samples))  # each slice once
    a.on_epoch_end()
    second = epoch_samples(a)
    assert not np.array_equal(first, second)
    b.on_epoch_end()
    np.testing.assert_array_equal(second, epoch_samples(b))
    assert not np.array_equal(first, epoch_samples(SliceDataset(cached_2d, batch_size=8, seed=4)))


def test_augmented_batches_are_reproducible(cached_2d):
    config = AugmentConfig()
    a = SliceDataset(cached_2d, batch_size=8, augment=config, seed=1)
    b = SliceDataset(cached_2d, batch_size=8, augment=config, seed=1)
    xa, ya = a[2]
    xb, yb = b[2]
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    check_batch(xa, ya, (32, 32))
    plain_x, _ = SliceDataset(cached_2d, batch_size=8, seed=1)[2]
    assert not np.array_equal(xa, plain_x)


def test_volume_dataset(cached_3d):
    ds = VolumeDataset(cached_3d, batch_size=4, shuffle=True, augment=AugmentConfig())
    assert len(ds) == 2
    x, y = ds[0]
    check_batch(x, y, (16, 16, 16))
    assert x.shape[0] == 4 and ds[1][0].shape[0] == len(cached_3d) - 4


def test_dataset_mode_mismatch_and_unlabeled(cached_2d, cached_3d, tmp_path):
    with pytest.raises(ValueError, match="'3d' mode"):
        VolumeDataset(cached_2d)
    with pytest.raises(ValueError, match="'2d' mode"):
        SliceDataset(cached_3d)
    folder = write_tiny_case(tmp_path, "BraTS20_Validation_001", labeled=False)
    unlabeled = PreprocessedCache(tmp_path / "cache", size=32).get(folder)
    batch = SliceDataset([unlabeled], shuffle=False)[0]
    assert len(batch) == 1 and batch[0].shape[1:] == (32, 32, 2)
    with pytest.raises(ValueError, match="mix"):
        SliceDataset([unlabeled, cached_2d[0]])


def test_make_datasets_records_the_split(tiny_dataset, tmp_path):
    data = make_datasets(tiny_dataset, size=32, cache_dir=tmp_path / "cache", seed=0,
                         split_path=tmp_path / "split.json", progress=False, augment=AugmentConfig())
    ids = {c.case_id for c in find_cases(tiny_dataset)}
    assert set().union(*map(set, data.split.values())) == ids
    for name in ("train", "val", "test"):
        ds = getattr(data, name)
        assert [c.case_id for c in ds.cases] == data.split[name]
    assert data.train.shuffle and data.train.augment is not None
    assert not data.val.shuffle and data.val.augment is None
    assert json.loads((tmp_path / "split.json").read_text())["train"] == data.split["train"]
    data3 = make_datasets(tiny_dataset, mode="3d", size=16, cache_dir=tmp_path / "cache", progress=False)
    assert isinstance(data3.train, VolumeDataset) and data3.train.batch_size == 1


def test_keras_fit_runs_epochs_with_worker_threads(cached_2d):
    import keras

    keras.utils.set_random_seed(0)
    ds = SliceDataset(cached_2d, batch_size=32, augment=AugmentConfig(), workers=2)
    model = keras.Sequential([keras.Input((32, 32, 2)), keras.layers.Conv2D(4, 3, padding="same", activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    history = model.fit(ds, epochs=2, verbose=0, shuffle=False)
    # Keras also calls on_epoch_end when it resets its iterator, so the count may run ahead
    assert len(history.history["loss"]) == 2 and ds.epoch >= 2


def test_samples_per_epoch_draws_a_new_subset_each_epoch(cached_2d):
    full = SliceDataset(cached_2d, batch_size=4, seed=1)
    part = SliceDataset(cached_2d, batch_size=4, seed=1, samples_per_epoch=10)
    assert len(part) == 3 and sum(len(part.batch_samples(i)) for i in range(3)) == 10
    first = {tuple(r) for i in range(3) for r in part.batch_samples(i)}
    part.on_epoch_end()
    second = {tuple(r) for i in range(3) for r in part.batch_samples(i)}
    assert len(first) == 10 and first != second
    assert first <= {tuple(r) for r in full.samples}
    val = SliceDataset(cached_2d, batch_size=4, shuffle=False, samples_per_epoch=5)
    rows = np.concatenate([val.batch_samples(i) for i in range(len(val))])
    assert len(rows) == 5 and tuple(rows[0]) == tuple(full.samples[0]) and tuple(rows[-1]) == tuple(full.samples[-1])
    with pytest.raises(ValueError, match="samples_per_epoch"):
        SliceDataset(cached_2d, samples_per_epoch=0)


def test_foreground_fraction_oversamples_tumour_slices(cached_2d):
    ds = SliceDataset(cached_2d, batch_size=8, seed=0, samples_per_epoch=16, foreground_fraction=0.75)
    tumour = {tuple(r) for r in ds.samples if cached_2d[r[0]].labels[r[1]].any()}
    share_all = len(tumour) / len(ds.samples)
    for epoch in range(3):
        ds.set_epoch(epoch)
        rows = [tuple(r) for i in range(len(ds)) for r in ds.batch_samples(i)]
        assert len(rows) == len(set(rows)) == 16
        assert sum(r in tumour for r in rows) >= 12 > 16 * share_all
    with pytest.raises(ValueError, match="foreground_fraction"):
        SliceDataset(cached_2d, foreground_fraction=1.5)


def test_make_datasets_subsamples_train_and_val_only(tiny_dataset, tmp_path):
    ds = make_datasets(tiny_dataset, size=32, cache_dir=tmp_path, batch_size=2, samples_per_epoch=6,
                       foreground_fraction=0.5, val_samples=3, progress=False)
    assert len(ds.train) == 3 and len(ds.val) == 2
    assert ds.test.samples_per_epoch is None and len(ds.test._order) == len(ds.test.samples)


# ------------------------------------------------------------------------- slice classification


def test_tumour_slice_dataset_labels_each_slice_by_its_tumour_pixels(cached_2d):
    from bratslib.data.generators import TumourSliceDataset

    ds = TumourSliceDataset(cached_2d, batch_size=8, shuffle=False, min_tumour_pixels=5)
    labels = ds.slice_labels()
    expected = [int(np.count_nonzero(cached_2d[c].labels[z]) >= 5) for c, z in ds.samples]
    np.testing.assert_array_equal(labels, expected)
    assert 0 < labels.sum() < len(labels)  # both classes occur in the tiny cases
    x, y = ds[0]
    assert x.shape == (8, 32, 32, 2) and y.shape == (8, 2) and y.dtype == np.float32
    np.testing.assert_array_equal(y.argmax(-1), labels[:8])
    stricter = TumourSliceDataset(cached_2d, batch_size=8, shuffle=False, min_tumour_pixels=200)
    assert stricter.slice_labels().sum() < labels.sum()
    with pytest.raises(ValueError, match="min_tumour_pixels"):
        TumourSliceDataset(cached_2d, min_tumour_pixels=0)


def test_tumour_slice_dataset_balances_the_training_draw(cached_2d):
    from bratslib.data.generators import TumourSliceDataset

    ds = TumourSliceDataset(cached_2d, batch_size=10, shuffle=True, samples_per_epoch=20, foreground_fraction=0.5,
                            min_tumour_pixels=5)
    tumour = set(np.flatnonzero(ds.slice_labels()).tolist())
    drawn = ds._order
    assert len(drawn) == 20 and sum(int(i) in tumour for i in drawn) >= 10
    ys = np.concatenate([ds[k][1] for k in range(len(ds))])
    assert ys[:, 1].sum() >= 10


def _copy_with_a_bad_case(tiny_dataset, tmp_path, fault):
    """The six tiny cases plus a seventh, BraTS20_Training_007, damaged by ``fault(folder)``."""
    import shutil

    from tests.conftest import write_tiny_case

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    fault(write_tiny_case(root, "BraTS20_Training_007", seed=7))
    return root


@pytest.mark.parametrize("fault", ["missing modality", "corrupt voxels"])
def test_a_bad_case_stops_make_datasets_unless_skipped_explicitly(tiny_dataset, tmp_path, caplog, fault):
    import gzip
    import json

    from bratslib.data import BratsDataError

    def damage(folder):
        if fault == "missing modality":
            (folder / f"{folder.name}_t1ce.nii.gz").unlink()
        else:  # a .nii.gz cut short: the header reads, the voxels do not
            path = folder / f"{folder.name}_flair.nii.gz"
            path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()))[:-200])

    root = _copy_with_a_bad_case(tiny_dataset, tmp_path, damage)
    words = "missing modality t1ce" if fault == "missing modality" else "flair.nii.gz: truncated or corrupt"
    with pytest.raises(BratsDataError, match=f"BraTS20_Training_007.*{words}"):
        make_datasets(root, size=32, cache_dir=tmp_path / "cache", progress=False)

    with caplog.at_level("WARNING"):
        data = make_datasets(root, size=32, cache_dir=tmp_path / "cache", progress=False, skip_bad_cases=True,
                             split_path=tmp_path / "split.json")
    assert list(data.skipped) == ["BraTS20_Training_007"] and words.split(": ")[-1] in data.skipped["BraTS20_Training_007"]
    assert "skipping case BraTS20_Training_007" in caplog.text
    used = sorted(sum(data.split.values(), []))
    assert used == [f"BraTS20_Training_00{k}" for k in range(1, 7)]
    # the split of the good cases is the split of the data set without the bad one
    clean = make_datasets(tiny_dataset, size=32, cache_dir=tmp_path / "cache", progress=False)
    assert data.split == clean.split and clean.skipped == {}
    assert json.loads((tmp_path / "split.json").read_text())["skipped"] == data.skipped
