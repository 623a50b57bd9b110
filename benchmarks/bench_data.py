"""How fast can the 2-D models be fed?  Naive NIfTI generator vs the preprocessed cache.

    .venv/bin/python benchmarks/bench_data.py [--cases 6] [--epoch-batches 16] [--epochs 3]

Writes full-size (240x240x155) synthetic BraTS cases as uncompressed ``.nii``, like the
Kaggle release, into ``build/bench-data`` (kept for the next run), then measures each
generator below in a fresh Python process (so that its peak memory is its own), through
the same Keras ``PyDatasetAdapter`` that ``model.fit`` uses, for ``--epochs`` epochs of
``--epoch-batches`` batches:

* naive: the generator common in Kaggle notebooks, written below: for every batch it opens
  the NIfTI files of the cases its slices come from with nibabel, min-max normalises and
  resizes the slices it needs (240 -> 128, scipy.ndimage.zoom) and one-hot encodes the
  labels.  "shuffled" draws exactly the same (case, slice) samples as the cached
  :class:`~bratslib.data.generators.SliceDataset`, so most batches touch every case; "one
  case per batch" feeds consecutive slices of one case (the naive approach at its most
  favourable).
* cached: :class:`SliceDataset` over a :class:`~bratslib.data.cache.PreprocessedCache`
  (float16 or float32 memory-mapped arrays), without and with augmentation.  The first
  cached row starts from an empty cache: its first epoch includes preprocessing every case;
  the other rows find their cache built (the float32 one is built before its clock starts).

Workers: ``workers=2`` uses threads for the cached generator without augmentation and
processes (``use_multiprocessing``) for the others (scipy and nibabel hold the GIL).

Columns: slices per second in the first epoch and in the later ones (median), each
generator's later-epoch rate as a multiple of the naive shuffled one measured in the same
run, and the peak resident memory of the process (of its worker processes too, when it has
any).  The OS file cache is warm for every row (the data was just written or read), so the
numbers compare decoding and preprocessing work, not the disk.

``--out DIR`` also writes the table as ``DIR/bench_data.md`` (shown in the book's
performance page) and the numbers as ``DIR/bench_data.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    epoch_rates, machine_summary, markdown_table, peak_rss_mb, print_row, run_row, write_report,
)

MODALITIES = ("flair", "t1ce")
SIZE = 128

#: name -> (generator, dtype, augment, workers, use_multiprocessing)
ROWS = {
    "naive, shuffled slices": ("naive", None, False, 1, False),
    "naive, shuffled slices, 2 processes": ("naive", None, False, 2, True),
    "naive, one case per batch": ("naive-by-case", None, False, 1, False),
    "cached float16 (empty cache at start)": ("cached", "float16", False, 1, False),
    "cached float16, 2 threads": ("cached", "float16", False, 2, False),
    "cached float32": ("cached", "float32", False, 1, False),
    "cached float16 + augmentation": ("cached", "float16", True, 1, False),
    "cached float16 + augmentation, 2 processes": ("cached", "float16", True, 2, True),
}
BASELINE = "naive, shuffled slices"
#: The row that starts from an empty cache: its first epoch includes preprocessing every case.
COLD = "cached float16 (empty cache at start)"


def naive_generator_class():
    import keras
    import nibabel as nib
    from scipy import ndimage

    class NaiveSliceGenerator(keras.utils.PyDataset):
        """What many Kaggle notebooks do: decode NIfTI for every batch.

        ``samples`` is an int array (N, 2) of (case index, slice index); batch ``i`` is rows
        ``i * batch_size`` to ``(i + 1) * batch_size``.  Returns (x float32 (B, 128, 128, C),
        y float32 one-hot (B, 128, 128, 4)).
        """

        def __init__(self, cases, samples, batch_size, **kwargs):
            super().__init__(**kwargs)
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

    return NaiveSliceGenerator


def measure_row(name: str, args) -> dict:
    """One row, in this process: the generator of ``ROWS[name]`` for ``args.epochs`` epochs."""
    from bratslib.data import find_cases
    from bratslib.data.augment import AugmentConfig
    from bratslib.data.cache import PreprocessedCache
    from bratslib.data.generators import SliceDataset

    kind, dtype, augment, workers, processes = ROWS[name]
    bs, n = args.batch_size, args.epoch_batches * args.batch_size
    cases = find_cases(args.data_dir)
    cache = PreprocessedCache(Path(args.cache_dir) / (dtype or "float16"), MODALITIES, SIZE, "2d", dtype=dtype or "float16")
    start = time.perf_counter()
    pool = {"workers": workers, "use_multiprocessing": processes}
    if kind == "cached":
        cached = cache.build(cases, progress=False)  # nothing to do unless the cache is empty
        build_s = time.perf_counter() - start if name == COLD else 0.0  # only the cold row counts it
        ds = SliceDataset(cached, batch_size=bs, seed=args.seed, samples_per_epoch=n,
                          augment=AugmentConfig() if augment else None, **pool)
        rates = epoch_rates(ds, args.epochs)
        rates[0] = n / (n / rates[0] + build_s)  # the first epoch waits for the cache
    else:
        # the same (case, slice) draws as the cached generator's epochs, or one case per batch
        ref_cache = PreprocessedCache(Path(args.cache_dir) / "reference", MODALITIES, SIZE, "2d")
        ref = SliceDataset(ref_cache.build(cases, progress=False), batch_size=bs, seed=args.seed, samples_per_epoch=n)
        if kind == "naive":
            samples = np.concatenate([ref.batch_samples(i) for i in range(len(ref))])
        else:
            per_case = 155 - 155 % bs
            samples = np.concatenate([np.stack([np.full(per_case, k), np.arange(per_case)], 1) for k in range(len(cases))])[:n]
        ds = naive_generator_class()(cases, samples, bs, **pool)
        rates = epoch_rates(ds, args.epochs)
    return {"name": name, "first": rates[0], "later": float(np.median(rates[1:])) if len(rates) > 1 else rates[0],
            "rates": rates, "peak_mb": peak_rss_mb(), "workers": workers,
            "pool": "processes" if processes else "threads" if workers > 1 else "main thread"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=6, help="synthetic full-size cases (default 6)")
    parser.add_argument("--epoch-batches", type=int, default=16, help="batches per epoch (default 16)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per row: the first, then the later ones (default 3)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-dir", default="build/bench-data", help="where the synthetic cases go (kept)")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), help="rows to measure (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write bench_data.md and bench_data.json into this folder")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: measure one row in this process
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:
        print_row(measure_row(args.row, args))
        return 0
    if BASELINE not in args.rows:
        args.rows.insert(0, BASELINE)

    from bratslib.data.synth import write_synthetic_dataset

    t0 = time.perf_counter()
    root = write_synthetic_dataset(args.data_dir, n_cases=args.cases, seed=args.seed, progress=True)
    print(f"data: {args.cases} synthetic cases, 240x240x155 .nii, in {root} ({time.perf_counter() - t0:.0f} s)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache_dir:
        for name in [BASELINE] + [r for r in args.rows if r != BASELINE]:
            print(f"measuring: {name} ...", flush=True)
            cmd = [sys.executable, __file__, "--row", name, "--cache-dir", cache_dir, "--data-dir", str(root),
                   "--epoch-batches", str(args.epoch_batches), "--epochs", str(args.epochs),
                   "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
            try:
                results[name] = run_row(cmd)
            except RuntimeError as e:
                raise SystemExit(f"row {name!r} failed: {e}") from None

    base = results[BASELINE]["later"]
    header = ["generator", "workers", "slices/s, epoch 1", "slices/s, later epochs", "x naive", "peak memory (MiB)"]
    rows = [(name, f"{r['workers']} ({r['pool']})", round(r["first"], 1), round(r["later"], 1),
             f"{r['later'] / base:.1f}x", round(r["peak_mb"])) for name, r in results.items()]
    title = (f"Data pipeline: {args.epochs} epochs of {args.epoch_batches} batches of {args.batch_size} "
             f"{SIZE}x{SIZE} slices ({'+'.join(MODALITIES)}) from {args.cases} synthetic full-size cases")
    table = markdown_table(header, rows)
    print(f"\n{title}\n{machine_summary()}\n\n{table}")
    best = max((r for n, r in results.items() if n.startswith("cached")), key=lambda r: r["later"], default=None)
    if best:
        print(f"\nfastest cached generator ({best['name']}): {best['later'] / base:.0f}x the naive shuffled one")
    if args.out:
        write_report(args.out, "bench_data", title, table, results, sys.argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
