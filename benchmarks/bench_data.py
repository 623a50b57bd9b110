"""How fast can the 2-D models be fed?  Naive NIfTI generator vs the preprocessed cache.

    .venv/bin/python benchmarks/bench_data.py [--cases 6] [--batches 40] [--batch-size 16]

Writes full-size (240x240x155) synthetic BraTS cases as uncompressed ``.nii``, like the
Kaggle release, into ``build/bench-data`` (kept for the next run), then times:

* naive, shuffled: the generator common in Kaggle notebooks, written below: for every batch
  it opens the NIfTI files of the cases its slices come from with nibabel, min-max
  normalises and resizes the slices it needs (240 -> 128, scipy.ndimage.zoom) and one-hot
  encodes the labels.  It draws exactly the same (case, slice) samples as the cached
  :class:`~bratslib.data.generators.SliceDataset`, so most batches touch every case.
* naive, one case per batch: the same generator fed consecutive slices of one case per batch
  (each batch opens a single case): the naive approach at its most favourable.
* cached: :class:`SliceDataset` over a :class:`~bratslib.data.cache.PreprocessedCache`
  built in a fresh temporary folder (its one-off build time is reported), with float16 and
  with float32 images, and float16 with augmentation.

Slices per second count full batches after one warm-up batch (median of --rounds timed
rounds, as the rate of a shared machine wanders); the OS file cache is warm for
every row (the data was just written or read), so the numbers compare decoding and
preprocessing work, not the disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bratslib.data import find_cases  # noqa: E402
from bratslib.data.augment import AugmentConfig  # noqa: E402
from bratslib.data.cache import PreprocessedCache  # noqa: E402
from bratslib.data.generators import SliceDataset  # noqa: E402
from bratslib.data.synth import write_synthetic_dataset  # noqa: E402

MODALITIES = ("flair", "t1ce")
SIZE = 128


class NaiveSliceGenerator:
    """What many Kaggle notebooks do: decode NIfTI for every batch.

    ``samples`` is an int array (N, 2) of (case index, slice index); batch ``i`` is rows
    ``i * batch_size`` to ``(i + 1) * batch_size``.  Returns (x float32 (B, 128, 128, C),
    y float32 one-hot (B, 128, 128, 4)).
    """

    def __init__(self, cases, samples, batch_size):
        self.cases, self.samples, self.batch_size = cases, samples, batch_size

    def __len__(self):
        return len(self.samples) // self.batch_size

    def __getitem__(self, i):
        rows = self.samples[i * self.batch_size:(i + 1) * self.batch_size]
        xs, ys = [None] * len(rows), [None] * len(rows)
        for c in np.unique(rows[:, 0]):
            files = self.cases[c]
            volumes = [nib.load(files.images[m]).get_fdata() for m in MODALITIES]
            seg = nib.load(files.seg).get_fdata()
            for j in np.flatnonzero(rows[:, 0] == c):
                z = rows[j, 1]
                channels = []
                for v in volumes:
                    s = v[:, :, z]
                    s = (s - s.min()) / max(s.max() - s.min(), 1e-8)
                    channels.append(ndimage.zoom(s, SIZE / s.shape[0], order=1))
                xs[j] = np.stack(channels, axis=-1)
                label = ndimage.zoom(seg[:, :, z], SIZE / seg.shape[0], order=0).astype(np.uint8)
                label[label == 4] = 3
                ys[j] = np.eye(4, dtype=np.float32)[label]
        return np.stack(xs).astype(np.float32), np.stack(ys)


def slices_per_second(dataset, n_batches: int, batch_size: int, rounds: int = 3) -> float:
    """Median over ``rounds`` of: slices per second over ``n_batches`` full batches
    (cycling through epochs), after one warm-up batch."""
    full = len(dataset) if len(dataset.samples) % batch_size == 0 else len(dataset) - 1
    dataset[0]
    rates, k = [], 0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n_batches):
            if k and k % full == 0 and hasattr(dataset, "on_epoch_end"):
                dataset.on_epoch_end()
            x, y = dataset[k % full]
            assert x.shape[0] == batch_size
            k += 1
        rates.append(n_batches * batch_size / (time.perf_counter() - start))
    return float(np.median(rates))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=6, help="synthetic full-size cases (default 6)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per cached row (default 40)")
    parser.add_argument("--naive-batches", type=int, default=6, help="timed batches per naive row (default 6)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per row; the median is shown (default 3)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-dir", default="build/bench-data", help="where the synthetic cases go (kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    root = write_synthetic_dataset(args.data_dir, n_cases=args.cases, seed=args.seed, progress=True)
    print(f"data: {args.cases} synthetic cases, 240x240x155 .nii, in {root} ({time.perf_counter() - t0:.0f} s)")
    cases = find_cases(root)
    bs = args.batch_size
    rows, times = [], {}

    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        for dtype in ("float16", "float32"):
            cache = PreprocessedCache(Path(tmp) / dtype, MODALITIES, SIZE, "2d", dtype=dtype)
            t0 = time.perf_counter()
            cached = cache.build(cases, progress=False)
            build_s = time.perf_counter() - t0
            mb = sum((c.path / "images.npy").stat().st_size for c in cached) / len(cached) / 2**20
            ds = SliceDataset(cached, batch_size=bs, seed=args.seed)
            samples = np.concatenate([ds.batch_samples(i) for i in range(len(ds))])  # epoch 0's order
            times[dtype] = slices_per_second(ds, args.batches, bs, args.rounds)
            rows.append((f"cached SliceDataset, {dtype}", times[dtype],
                         f"build {build_s:.1f} s ({build_s / len(cases):.2f} s/case), {mb:.1f} MB/case"))
            if dtype == "float16":
                aug = SliceDataset(cached, batch_size=bs, seed=args.seed, augment=AugmentConfig())
                times["aug"] = slices_per_second(aug, max(1, args.batches // 4), bs, args.rounds)
                rows.append(("cached SliceDataset, float16 + augmentation", times["aug"],
                             "default AugmentConfig, one process (scale with use_multiprocessing)"))

    naive = NaiveSliceGenerator(cases, samples, bs)
    times["naive"] = slices_per_second(naive, min(args.naive_batches, len(naive) - 1), bs, args.rounds)
    per_batch = np.mean([len(np.unique(naive.samples[i * bs:(i + 1) * bs, 0])) for i in range(len(naive))])
    rows.append(("naive, shuffled slices (same samples)", times["naive"], f"opens {per_batch:.1f} cases per batch"))

    n = 155 - 155 % bs  # slices per case, a whole number of batches
    by_case = np.concatenate([np.stack([np.full(n, k), np.arange(n)], axis=1) for k in range(len(cases))])
    kaggle = NaiveSliceGenerator(cases, by_case, bs)
    times["kaggle"] = slices_per_second(kaggle, min(args.naive_batches, len(kaggle) - 1), bs, args.rounds)
    rows.append(("naive, one case per batch", times["kaggle"], "opens 1 case per batch"))

    print(f"\n{os.cpu_count()} CPUs, batch size {bs}, {SIZE}x{SIZE} slices, channels {'+'.join(MODALITIES)}\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'generator':<{width}}  {'slices/s':>9}  notes")
    print(f"{'-' * width}  {'-' * 9}  -----")
    for name, rate, note in rows:
        print(f"{name:<{width}}  {rate:>9.1f}  {note}")
    print()
    for name in ("naive", "kaggle"):
        label = "naive, shuffled" if name == "naive" else "naive, one case per batch"
        print(f"cached float16 / {label}: {times['float16'] / times[name]:.0f}x")
    print(f"cached float16 / cached float32: {times['float16'] / times['float32']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
