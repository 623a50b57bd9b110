"""Where does training time go?  Each architecture's throughput beside its data pipeline's.

    .venv/bin/python benchmarks/bench_train.py [--profiles smoke full] [--models unet2d ...] [--steps 5]

For every model of the book (``bratslib.registry.MODELS``: the six segmentation networks, and
chapter 8's classical and quantum ResNet classifiers) at a profile's size (``smoke``: what ``make book`` trains on a
2-core CPU; ``full``: the report's settings), each row is measured in a fresh Python process:

* training: ``model.fit`` steps on a batch already in memory (so the model never waits),
  the profile's optimizer, loss and batch size; after ``--warmup`` steps (graph tracing, XLA
  compilation) the median of ``--steps`` timed steps gives samples (slices or volumes) per
  second and seconds per epoch (the profile's samples per epoch: for ``full`` the whole
  training split of BraTS 2020, 258 of 369 cases: 39,990 slices or 258 volumes);
* data: the book's generator for the same profile (size, modalities, augmentation, batch,
  one worker as the chapters use it) over the preprocessed cache of ``--cases`` synthetic
  full-size cases, samples per second through Keras' ``PyDatasetAdapter``;
* ``data / train``: how many times faster the generator is than the model consumes.  Below 1
  the model waits for data; the book asks for at least 2.
* peak memory: the process' peak resident memory on the CPU, the GPU's peak allocation on a GPU.

On a GPU every row is also measured with mixed precision and with XLA (``jit_compile``),
as ratios to the plain float32 row; on a CPU with native bfloat16 (AVX512-BF16, AMX) with
``mixed_bfloat16`` (``bf16``), the policy :func:`bratslib.training.precision_default` then
trains with; ``--variants`` chooses them anywhere (on the CPU, XLA is off by default in Keras
and slower; float16 has no CPU units, and bfloat16 without them is emulated).  ``size128`` is
float32 with the report's 128 x 128 (128^3) input instead of the profile's: at ``smoke`` it
measures what the 64 x 64 crops of the book's CPU budget buy.

``--out DIR`` also writes ``DIR/bench_train.md`` (shown in the book's performance page)
and ``DIR/bench_train.json`` (``--name`` changes the name).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    epoch_rates, gpu_names, machine_summary, markdown_table, peak_rss_mb, print_row, rerender, run_row, write_report,
)
from bratslib.registry import MODELS  # noqa: E402

#: BraTS 2020 training cases in the report's split (70 % of 369), and axial slices per case.
FULL_TRAIN_CASES, SLICES_PER_CASE = 258, 155
#: ``mixed``: Keras' mixed_float16 (GPUs with tensor cores); ``bf16``: mixed_bfloat16 (CPUs with
#: native bfloat16, e.g. AVX512-BF16 or AMX); ``xla``: ``jit_compile``.
VARIANTS = ("float32", "mixed", "bf16", "xla", "mixed+xla", "size128")


def variant_policy(variant: str) -> str:
    """The Keras dtype policy of a variant: mixed_float16, mixed_bfloat16 or float32."""
    return "mixed_float16" if "mixed" in variant else "mixed_bfloat16" if "bf16" in variant else "float32"


def default_variants() -> list[str]:
    """All but bf16 on a GPU; on a CPU float32, and bf16 where the CPU computes it natively."""
    from bratslib.training import cpu_has_native_bf16

    if gpu_names():
        return [v for v in VARIANTS if v not in ("bf16", "size128")]
    return ["float32", "bf16"] if cpu_has_native_bf16() else ["float32"]


def same_batch(x, y, n: int):
    """A PyDataset serving one in-memory batch ``n`` times: training that never waits for data."""
    import keras

    class SameBatch(keras.utils.PyDataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return x, y

    return SameBatch()


def _setup(model: str, profile: str):
    from bratslib.chapter import ChapterSetup

    spec = MODELS[model]
    settings = spec.settings(profile)
    setup = ChapterSetup(spec.profile, profile, 0, settings, Path("."), {})
    return setup, spec.builder(), setup.builder_kwargs(spec)


def epoch_samples(settings: dict, profile: str) -> int:
    """Samples in one training epoch of this profile (``full``: all of BraTS 2020's training split)."""
    if settings.get("samples_per_epoch"):
        return int(settings["samples_per_epoch"])
    if profile == "full":
        return FULL_TRAIN_CASES * (SLICES_PER_CASE if settings["mode"] == "2d" else 1)
    return 20 * (SLICES_PER_CASE if settings["mode"] == "2d" else 1)  # the book's 20 training cases


def train_rate(model_name: str, profile: str, variant: str, warmup: int, steps: int) -> dict:
    """Samples per second of ``model.fit`` on one in-memory batch, median of ``steps`` steps."""
    import keras

    from bratslib.chapter import classification_training
    from bratslib.losses import DiceFocalLoss
    from bratslib.metrics import training_metrics
    from bratslib.training import peak_memory_mb, precision_policy

    setup, builder, kwargs = _setup(model_name, profile)
    if variant == "size128":
        setup.settings["size"] = 128
        kwargs["input_shape"] = setup.input_shape
    s = setup.settings
    bs = s["batch_size"]
    keras.utils.set_random_seed(0)
    with precision_policy(variant_policy(variant)):
        model = builder(**kwargs)
    x = np.random.default_rng(0).random((bs, *setup.input_shape), dtype=np.float32)
    classes = s.get("n_classes", 4)
    labels = np.random.default_rng(1).integers(0, classes, (bs, *model.output_shape[1:-1]))
    y = np.eye(classes, dtype=np.float32)[labels]
    if MODELS[model_name].is_classifier:
        task = classification_training()
        loss, metrics = task["loss"], task["metrics"]
    else:
        loss, metrics = DiceFocalLoss(), training_metrics()
    model.compile(optimizer=keras.optimizers.Adam(s["learning_rate"]), loss=loss, metrics=metrics,
                  jit_compile="xla" in variant)

    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(same_batch(x, y, warmup + steps), epochs=1, verbose=0, callbacks=[Clock()], shuffle=False)
    step = float(np.median(times[warmup:]))
    n = epoch_samples(s, profile)
    return {"params": int(model.count_params()), "batch": bs, "input": list(setup.input_shape),
            "step_s": step, "train_rate": bs / step, "epoch_samples": n, "epoch_s": n / (bs / step),
            "peak_mb": peak_memory_mb() if gpu_names() else peak_rss_mb()}


def data_rate(model_name: str, profile: str, data_dir: str, cache_dir: str, batches: int) -> float:
    """Samples per second of the chapter's generator for this profile (one worker)."""
    from bratslib.data import find_cases
    from bratslib.data.augment import augment_config
    from bratslib.data.cache import PreprocessedCache
    from bratslib.data.generators import SliceDataset, TumourSliceDataset, VolumeDataset

    setup, _, _ = _setup(model_name, profile)
    s = setup.settings
    cache = PreprocessedCache(cache_dir, s["modalities"], s["size"], s["mode"])
    cached = cache.build(find_cases(data_dir), progress=False)
    if MODELS[model_name].is_classifier:
        cls, task = TumourSliceDataset, {"min_tumour_pixels": s["min_tumour_pixels"]}
    else:
        cls, task = (SliceDataset if s["mode"] == "2d" else VolumeDataset), {}
    # every case serves as training data here, with the chapter's sampling and augmentation
    dataset = cls(cached, batch_size=s["batch_size"], shuffle=True, seed=0,
                  samples_per_epoch=None if s["mode"] == "3d" else batches * s["batch_size"],
                  foreground_fraction=s["foreground_fraction"], augment=augment_config(s["augment"]),
                  **task)
    return epoch_rates(dataset, 2, batches)[-1]  # the first epoch opens the memory maps


def table_of(results: list[dict]) -> tuple[list[str], list[tuple]]:
    """Header and rows of the report; the variant columns only when more than float32 ran."""
    header = ["model", "profile", "variant", "parameters", "input x batch", "samples/s", "s/epoch (samples)",
              "data samples/s", "data / train", "x float32", "peak memory (MiB)"]
    rows, plain = [], {(r["model"], r["profile"]): r for r in results if r["variant"] == "float32" and "error" not in r}
    for r in results:
        if "error" in r:
            rows.append((r["model"], r["profile"], r["variant"], "", "", "", "", "", "", "", f"failed: {r['error'][0][:60]}"))
            continue
        base = plain.get((r["model"], r["profile"]))
        data = base.get("data_rate") if base else None
        rows.append((r["model"], r["profile"], r["variant"], f"{r['params']:,}",
                     f"{'x'.join(map(str, r['input']))} x {r['batch']}", round(r["train_rate"], 2),
                     f"{r['epoch_s']:,.{0 if r['epoch_s'] >= 100 else 1}f} ({r['epoch_samples']:,})",
                     round(data, 1) if data and r["variant"] == "float32" else "",
                     f"{data / r['train_rate']:.1f}x" if data else "",
                     f"{r['train_rate'] / base['train_rate']:.2f}x" if base else "", round(r["peak_mb"])))
    if all(r["variant"] == "float32" for r in results):
        keep = [i for i, h in enumerate(header) if h not in ("variant", "x float32")]
        header, rows = [header[i] for i in keep], [tuple(row[i] for i in keep) for row in rows]
    return header, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--profiles", nargs="*", default=["smoke", "full"], choices=["tiny", "smoke", "full"])
    parser.add_argument("--variants", nargs="*", choices=VARIANTS,
                        help="default: float32 on the CPU; all four on a GPU")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing, compiling)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps; the median is used")
    parser.add_argument("--data-batches", type=int, default=12, help="batches timed for the generator")
    parser.add_argument("--cases", type=int, default=6, help="synthetic full-size cases for the generator")
    parser.add_argument("--data-dir", default="build/bench-data")
    parser.add_argument("--out", help="also write <name>.md and <name>.json into this folder")
    parser.add_argument("--name", default="bench_train", help="the report's name (default bench_train)")
    parser.add_argument("--render", metavar="JSON", help="only rewrite the .md of an earlier report from its .json")
    parser.add_argument("--row", nargs=3, help=argparse.SUPPRESS)  # internal: model profile variant
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.render:
        return rerender(args.render, table_of)
    if args.row:
        model, profile, variant = args.row
        row = train_rate(model, profile, variant, args.warmup, args.steps)
        if variant == "float32":
            row["data_rate"] = data_rate(model, profile, args.data_dir, args.cache_dir, args.data_batches)
        print_row(row)
        return 0

    from bratslib.data.synth import write_synthetic_dataset

    variants = args.variants or default_variants()
    if "float32" not in variants:
        variants.insert(0, "float32")
    root = write_synthetic_dataset(args.data_dir, n_cases=args.cases, seed=0, progress=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-train-cache-") as cache_dir:
        for profile in args.profiles:
            for model in args.models:
                for variant in variants:
                    print(f"measuring: {model} {profile} {variant} ...", flush=True)
                    cmd = [sys.executable, __file__, "--row", model, profile, variant, "--warmup", str(args.warmup),
                           "--steps", str(args.steps), "--data-batches", str(args.data_batches),
                           "--data-dir", str(root), "--cache-dir", cache_dir]
                    key = {"model": model, "profile": profile, "variant": variant}
                    try:
                        results.append({**key, **run_row(cmd)})
                    except RuntimeError as e:  # e.g. out of memory: the other rows still count
                        print(f"  failed: {e}", file=sys.stderr)
                        results.append({**key, "error": [str(e).splitlines()[-1]]})

    title = (f"Training throughput of {', '.join(args.models) if len(args.models) < len(MODELS) else 'each model'} "
             f"at the {' and '.join(args.profiles)} size{'s' if len(args.profiles) > 1 else ''}, "
             f"{', '.join(variants)} (median of {args.steps} steps after {args.warmup}; batch in memory)")
    table = markdown_table(*table_of(results))
    print(f"\n{title}\n{machine_summary()}\n\n{table}")
    if args.out:
        write_report(args.out, args.name, title, table, results, sys.argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
