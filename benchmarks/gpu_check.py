"""Does this machine train the report in time?  Every model measured, every chapter's full run projected.

    .venv/bin/python benchmarks/gpu_check.py [--out DIR] [--models unet2d ...] [--variants ...] [--profile full]

One command for a GPU machine (Colab, Kaggle, a cluster node) before the report's training:

* measures every model of ``bratslib.registry.MODELS`` (the six segmentation networks, chapter 8's
  classical and quantum ResNet18 classifiers) at the ``--profile`` size (default ``full``: the
  report's settings), each variant in a fresh Python process, with ``bench_train.train_rate``:
  ``model.fit`` steps on one batch in memory, samples per second, seconds per epoch of the
  profile (for ``full`` the whole training split of BraTS 2020), peak memory (the GPU's peak
  allocation on a GPU, the process' peak resident memory on a CPU).  Variants: float32, mixed
  precision and XLA on a GPU; float32 only on a CPU, so that the check finishes there in a few
  minutes (``--variants`` chooses them anywhere);
* projects the wall time of each chapter's run: the profile's ``epochs`` x (seconds per training
  epoch + seconds per validation epoch) of the fastest variant measured.  Validation is estimated,
  not measured: the validation samples of an epoch at 3 x the training rate (a forward pass, no
  gradients).  Chapter 8 trains two models, so its projection is their sum; the whole book is the
  sum of the chapters.  Each chapter is compared with a 12 h Kaggle session: a run that does not
  fit resumes from its checkpoints in the next session;
* prints both tables; ``--out DIR`` also writes ``DIR/gpu_check.md`` and ``DIR/gpu_check.json``.

Without a GPU the report says so in its title: its numbers test the check, they say nothing
about a GPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train import SLICES_PER_CASE, VARIANTS, table_of, train_rate  # noqa: E402
from benchmarks.common import gpu_names, machine_summary, markdown_table, print_row, run_row, write_report  # noqa: E402
from bratslib.registry import MODELS, chapter_models  # noqa: E402

#: Cases of BraTS 2020's training release (the ``full`` profile), and of the book's synthetic data set.
FULL_CASES, BOOK_CASES = 369, 20
#: A validation sample is assumed to cost 1 / VAL_SPEEDUP of a training sample (forward pass only).
VAL_SPEEDUP = 3.0
#: Hours of one Kaggle notebook session.
KAGGLE_SESSION_H = 12.0
GPU_VARIANTS = ("float32", "mixed", "xla")
#: Untimed and timed steps per row by default: (warmup, steps) on a CPU and on a GPU.
CPU_STEPS, GPU_STEPS = (1, 2), (3, 10)
NO_GPU = "no GPU was measured: CPU numbers, for testing the check only"


def val_samples(settings: dict, profile: str) -> int:
    """Samples in one validation epoch of this profile: the profile's ``val_samples``, else every
    slice (2-D) or volume (3-D) of the split's validation cases (``full``: 55 of BraTS' 369)."""
    if settings.get("val_samples"):
        return int(settings["val_samples"])
    from bratslib.data.splits import split_cases

    n = FULL_CASES if profile == "full" else BOOK_CASES
    cases = len(split_cases([f"{i:03d}" for i in range(n)])["val"])
    return cases * (SLICES_PER_CASE if settings["mode"] == "2d" else 1)


def kaggle_fit(seconds: float) -> str:
    """``yes`` when a run of ``seconds`` fits in one Kaggle session, else how many sessions it needs."""
    sessions = math.ceil(seconds / (KAGGLE_SESSION_H * 3600))
    return "yes" if sessions <= 1 else f"no: resume across {sessions} sessions"


def duration(seconds: float) -> str:
    """Seconds as ``42 s``, ``17 min`` or ``3.4 h``."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 6000 else f"{seconds / 3600:.1f} h"


def fastest(rows: list[dict], model: str) -> dict | None:
    """The measured row of ``model`` with the most samples per second, None when every variant failed."""
    ok = [r for r in rows if r["model"] == model and "error" not in r]
    return max(ok, key=lambda r: r["train_rate"]) if ok else None


def model_projection(row: dict, settings: dict, profile: str) -> dict:
    """One model's epoch in seconds from its fastest row: training (measured) and validation (estimated)."""
    n_val = val_samples(settings, profile)
    return {"model": row["model"], "variant": row["variant"], "train_rate": row["train_rate"],
            "epoch_s": row["epoch_s"], "val_samples": n_val, "val_epoch_s": n_val / (VAL_SPEEDUP * row["train_rate"])}


def project(rows: list[dict], profile: str) -> list[dict]:
    """Per chapter whose models were measured: epochs x (training + validation seconds per epoch),
    summed over the chapter's models; ``missing`` names the chapter's models without a measurement
    (not measured, or failed in every variant), whose time the projection lacks."""
    measured = list(dict.fromkeys(r["model"] for r in rows))
    chapters = list(dict.fromkeys(MODELS[m].chapter for m in measured))
    out = []
    for chapter in chapters:
        models = chapter_models(chapter)
        settings = models[0].settings(profile)  # a chapter's models share its profile
        best = {spec.name: fastest(rows, spec.name) for spec in models}
        parts = [model_projection(row, settings, profile) for row in best.values() if row]
        train_s, val_s = sum(p["epoch_s"] for p in parts), sum(p["val_epoch_s"] for p in parts)
        total = settings["epochs"] * (train_s + val_s)
        out.append({"chapter": models[0].profile, "notebook": chapter, "epochs": settings["epochs"],
                    "models": parts, "missing": [m for m, row in best.items() if not row], "epoch_s": train_s,
                    "val_epoch_s": val_s, "projected_s": total, "projected_h": total / 3600,
                    "kaggle": kaggle_fit(total)})
    return out


def book_total(chapters: list[dict]) -> dict:
    """The sum of the chapters' projections, in seconds and hours; ``complete``: every model of the
    book was measured."""
    total = sum(c["projected_s"] for c in chapters)
    complete = len(chapters) == len({spec.chapter for spec in MODELS.values()}) and not any(c["missing"] for c in chapters)
    return {"projected_s": total, "projected_h": total / 3600, "complete": complete, "kaggle": kaggle_fit(total)}


def measured_table(rows: list[dict]) -> str:
    """``bench_train``'s table of the rows, without its data-pipeline columns (not measured here)."""
    header, cells = table_of(rows)
    keep = [i for i, h in enumerate(header) if h not in ("data samples/s", "data / train")]
    return markdown_table([header[i] for i in keep], [tuple(row[i] for i in keep) for row in cells])


def projection_table(chapters: list[dict], book: dict) -> str:
    """One row per chapter and one for the book: variant used, epochs, seconds per epoch, hours."""
    header = ["chapter", "models (fastest variant)", "epochs", "train s/epoch", "val s/epoch (est.)",
              "projected", "fits a 12 h Kaggle session"]
    rows = []
    for c in chapters:
        models = " + ".join(f"{p['model']} ({p['variant']})" for p in c["models"])
        if c["missing"]:
            models += f"; not measured: {', '.join(c['missing'])}"
        rows.append((c["notebook"], models, c["epochs"], round(c["epoch_s"], 1), round(c["val_epoch_s"], 1),
                     duration(c["projected_s"]), c["kaggle"]))
    rows.append(("**whole book**" + ("" if book["complete"] else " (measured models only)"), "", "", "", "",
                 f"**{duration(book['projected_s'])}**", book["kaggle"]))
    return markdown_table(header, rows)


def notes_of(gpus: list[str], profile: str, seconds: float) -> str:
    """What the projection assumes, and how long the check took."""
    memory = "the GPU's peak allocation" if gpus else "the process' peak resident memory (no GPU)"
    return "\n".join([
        f"How the projection is made: the {profile} profile's epochs x (s/epoch of training + s/epoch of "
        "validation), with the fastest variant measured for each model; chapter 8 sums its classical and quantum "
        "classifiers, the whole book sums the chapters.",
        "- validation is estimated, not measured: the validation samples of one epoch (the profile's val_samples, "
        "or every slice or volume of the validation cases: 55 of 369 at full size) at "
        f"{VAL_SPEEDUP:g} x the training rate, a forward pass without gradients;",
        "- every epoch of the schedule is counted: early stopping may end a run sooner;",
        "- the batch is in memory: waiting for data (see bench_train's data / train), building the cache, "
        "evaluating the test cases and TensorFlow's start-up are not included;",
        f"- a chapter longer than a {KAGGLE_SESSION_H:g} h Kaggle session resumes from its checkpoints in the "
        "next one;",
        f"- peak memory is {memory}.",
        "",
        f"The check took {seconds / 60:.1f} min." + ("" if gpus else f"  **{NO_GPU[0].upper() + NO_GPU[1:]}.**"),
    ])


def measure(models: list[str], profile: str, variants: list[str], warmup: int, steps: int) -> list[dict]:
    """Every (model, variant) row in a fresh process; a failed row (e.g. out of memory) keeps its error."""
    results = []
    for model in models:
        for variant in variants:
            print(f"measuring: {model} {profile} {variant} ...", flush=True)
            cmd = [sys.executable, __file__, "--row", model, profile, variant, "--warmup", str(warmup),
                   "--steps", str(steps)]
            key = {"model": model, "profile": profile, "variant": variant}
            try:
                results.append({**key, **run_row(cmd)})
            except RuntimeError as e:
                print(f"  failed: {e}", file=sys.stderr)
                results.append({**key, "error": [str(e).splitlines()[-1]]})
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--profile", default="full", choices=["tiny", "smoke", "full"],
                        help="the size measured and projected (default full: the report's)")
    parser.add_argument("--variants", nargs="*", choices=VARIANTS,
                        help=f"default: {', '.join(GPU_VARIANTS)} on a GPU; float32 on a CPU")
    parser.add_argument("--warmup", type=int, help=f"untimed steps first (default {CPU_STEPS[0]} on a CPU, "
                                                   f"{GPU_STEPS[0]} on a GPU)")
    parser.add_argument("--steps", type=int, help=f"timed steps, the median is used (default {CPU_STEPS[1]} on a "
                                                  f"CPU, {GPU_STEPS[1]} on a GPU)")
    parser.add_argument("--out", help="also write gpu_check.md and gpu_check.json into this folder")
    parser.add_argument("--row", nargs=3, help=argparse.SUPPRESS)  # internal: model profile variant
    args = parser.parse_args(argv)

    gpus = gpu_names()
    defaults = GPU_STEPS if gpus else CPU_STEPS
    warmup, steps = [a if a is not None else d for a, d in zip((args.warmup, args.steps), defaults)]
    if args.row:
        print_row(train_rate(*args.row, warmup, steps))
        return 0

    start = time.perf_counter()
    variants = list(dict.fromkeys(args.variants or (GPU_VARIANTS if gpus else ["float32"])))
    if "float32" not in variants:
        variants.insert(0, "float32")  # the ratios' baseline
    rows = measure(args.models, args.profile, variants, warmup, steps)
    chapters = project(rows, args.profile)
    book = book_total(chapters)
    seconds = time.perf_counter() - start

    title = (f"GPU check{': ' + NO_GPU if not gpus else ' on ' + ', '.join(gpus)}. Each model's training step at the "
             f"{args.profile} size ({', '.join(variants)}; median of {steps} steps after {warmup}, batch in memory), "
             f"and each chapter's {args.profile} run projected from it")
    table = f"{measured_table(rows)}\n\n{projection_table(chapters, book)}"
    notes = notes_of(gpus, args.profile, seconds)
    print(f"\n{title}\n{machine_summary()}\n\n{table}\n\n{notes}")
    if args.out:
        report = {"gpu": bool(gpus), "statement": None if gpus else NO_GPU, "profile": args.profile,
                  "variants": variants, "warmup": warmup, "steps": steps, "val_speedup": VAL_SPEEDUP,
                  "kaggle_session_h": KAGGLE_SESSION_H, "check_s": seconds, "rows": rows, "chapters": chapters,
                  "book": book}
        write_report(args.out, "gpu_check", title, table, report, sys.argv if argv is None else [__file__, *argv],
                     notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
