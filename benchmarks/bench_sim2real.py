"""Does what the synthetic data teaches carry over to real MRI?  One row per generator variant.

    .venv/bin/python benchmarks/bench_sim2real.py [--cases 40] [--variants v1 default ...] [--train-seeds 0 1 2]
        [--out benchmarks/results]

For each variant of the synthetic generator (``--variants``), in a fresh Python process:

1. write ``--cases`` synthetic cases (seed ``--seed``) with the generator's options
   (:data:`bratslib.data.synth.SYNTH_OPTIONS`), timing the generator per case;
2. train chapter 2's 2D U-Net at the ``smoke`` profile on them exactly as the chapter does
   (:class:`bratslib.chapter.ChapterSetup`, its split, schedule and seed), once per seed of
   ``--train-seeds`` when given (each its own split, initial weights and slice order; the row is
   their mean, and each seed's real Dice is shown beside it: one seed moves a row by more than
   most options do);
3. score it as the book does (:func:`bratslib.evaluate.evaluate_run` / ``evaluate_cases``: whole
   cases on the original grid, Dice and HD95 of WT / TC / ET, BraTS rule for empty regions) on
   (a) the synthetic test cases and (b) the real scans of ``--real-dir``, which are never
   trained on.  Their ``seg`` is a majority vote of five BraTS 2020 algorithms, not an expert
   annotation: scores are agreement with the state of the art of 2020;
4. score it on copies of the real scans whose tumour is made more conspicuous
   (:func:`conspicuous_copies`: FLAIR x 1.3 inside the whole tumour, T1ce x 1.5 inside the
   enhancing tumour): a probe of whether a model misses a real tumour for its contrast.
5. with several ``--train-seeds``, score their models together on the real scans (class
   probabilities averaged, :func:`bratslib.evaluate.evaluate_cases`): the seeds' ensemble, shown
   after each seed's scores as "all 3 as one".

Beside the variants, reference rows on the same real scans:

* one threshold on one channel tuned per case on that case's own truth (FLAIR for WT, T1ce for
  TC / ET: :class:`bratslib.baseline.ThresholdBaseline` fitted on the one case it is scored on;
  an upper bound for a threshold, which no model is given);
* the five BraTS 2020 algorithms against one another, every pair (``--algorithms-dir``): how well
  any model can be expected to agree with their consensus.

A variant is a name or ``+``-joined option names: ``v1`` (the first generator: every option
off), ``default`` (the synthetic default, :data:`~bratslib.data.synth.DEFAULT_OPTIONS`), or
e.g. ``contrast+glioma``; ``+augment`` or ``+augment=all`` adds intensity augmentation at
training time (the profile's ``augment`` setting, :data:`bratslib.data.augment.AUGMENT_PRESETS`;
``+noaugment`` switches it off); ``+norm=median`` normalises intensities another way (the
profile's ``normalize``, :func:`bratslib.data.preprocess.normalize_intensity`; ``+norm=rank``: each
voxel's rank in its brain, which no change of contrast moves); ``+epochs=48``
trains three times the book's 16 epochs (is the budget what limits a row?); ``+lr=0.005`` trains at
another learning rate than the profile's 2e-3 (the same steps, larger ones); ``+sched=cosine``
spends the same steps under a warm-up and a cosine decay of the rate
(:func:`bratslib.training.cosine_schedule`), not halving it on a plateau; ``+cases=80`` writes 80
synthetic cases for the row instead of ``--cases`` (the same steps over twice the cases: does
variety buy what steps do not?); ``+batch=8`` trains on batches of 8 slices,
not 16: the same slices per epoch in twice the steps, at a little more cost (is it updates that
a row lacks, or slices?); ``+size=128`` trains on 128 x 128 slices, the report's, not the
smoke profile's 64 x 64 (is a thin enhancing rim lost at 2.5 mm per pixel?);
``+inputs=flair,t1,t1ce,t2`` feeds the U-Net those modalities, not the report's FLAIR and T1ce;
``+post=largest`` keeps only the largest connected tumour of each prediction (the profile's
``postprocess``, :func:`bratslib.evaluate.keep_largest_tumour`), on the synthetic and the real scans;
``+mirror`` predicts with test-time mirroring (the profile's ``mirror``: each prediction the mean
over the slices and their mirror images, :func:`bratslib.evaluate.predict_probabilities`).
``--out DIR`` writes ``DIR/bench_sim2real.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (machine_summary, markdown_table, print_row, rerender, rounded, run_row,  # noqa: E402
                               write_report)

from bratslib.comparison import region_triple  # noqa: E402
from bratslib.data.source import SYNTHETIC_CASES  # noqa: E402
from bratslib.real import REGIONS, algorithms_agreement, real_cases, real_data_dir  # noqa: E402


def default_real_dir() -> Path | None:
    """book/data/real, else ../shared/real (:func:`bratslib.real.real_data_dir`)."""
    return real_data_dir()


#: Variant tokens ``name=N`` (a positive whole number) and the setting each sets: the profile's
#: ``epochs``, ``size`` (the slices' side in pixels), ``batch_size`` (token ``batch``),
#: ``stop_patience`` (token ``patience``) and ``lr_patience`` (token ``lrpatience``), and
#: ``cases``, the row's number of synthetic cases.
COUNT_TOKENS = {"epochs": "epochs", "size": "size", "batch": "batch_size", "cases": "cases",
                "patience": "stop_patience", "lrpatience": "lr_patience"}


def _positive_number(text: str) -> bool:
    """Whether ``text`` reads as a finite number above 0 (``0.005``, ``5e-3``)."""
    try:
        return 0 < float(text) < float("inf")
    except ValueError:
        return False


def parse_variant(variant: str) -> tuple[dict[str, bool] | None, dict[str, object]]:
    """``(generator options, profile overrides)`` of a variant name; options None: the default's;
    overrides: ``augment``, ``normalize``, ``epochs``, ``size``, ``batch_size`` (token ``batch=``),
    ``modalities`` (token ``inputs=``), ``learning_rate`` (token ``lr=``), ``lr_schedule`` (token
    ``sched=``), ``stop_patience`` (token ``patience=``: epochs without progress before training
    stops), ``lr_patience`` (token ``lrpatience=``: before the plateau schedule halves the rate),
    ``postprocess`` (token ``post=``) and ``mirror`` (token ``mirror``) where the variant sets
    them (else the profile's), and ``cases`` (the row's number of synthetic cases, else ``--cases``)."""
    from bratslib.data.layout import MODALITIES
    from bratslib.data.preprocess import NORMALIZATIONS
    from bratslib.data.synth import SYNTH_OPTIONS, synth_options
    from bratslib.profiles import LR_SCHEDULES, POSTPROCESSING

    options: dict[str, bool] | None = None
    overrides: dict[str, object] = {}
    tokens = variant.split("+")
    # an option added to ``default`` adds to the default's options; alone or after v1, to none
    start = synth_options(None) if "default" in tokens else dict.fromkeys(SYNTH_OPTIONS, False)
    for token in tokens:
        key, _, value = token.partition("=")
        if token == "default":
            continue
        if token == "v1":
            options = dict.fromkeys(SYNTH_OPTIONS, False)
        elif key == "augment":
            overrides["augment"] = value or "intensity"
        elif token == "noaugment":
            overrides["augment"] = False
        elif key == "norm" and value in NORMALIZATIONS:
            overrides["normalize"] = value
        elif key == "inputs":
            chosen = tuple(value.split(","))
            if not set(chosen) <= set(MODALITIES) or len(set(chosen)) < len(chosen):
                raise ValueError(f"variant token {token!r}: name each of {', '.join(MODALITIES)} at most once, "
                                 "joined by commas")
            overrides["modalities"] = chosen
        elif key in COUNT_TOKENS and value.isdigit() and int(value) > 0:
            overrides[COUNT_TOKENS[key]] = int(value)
        elif key == "lr" and _positive_number(value):
            overrides["learning_rate"] = float(value)
        elif key == "sched" and value in LR_SCHEDULES:
            overrides["lr_schedule"] = value
        elif key == "post" and value in POSTPROCESSING:
            overrides["postprocess"] = value
        elif token == "mirror":
            overrides["mirror"] = True
        elif token.startswith("no") and token[2:] in SYNTH_OPTIONS:
            options = {**(options or {}), token[2:]: False}
        elif token in SYNTH_OPTIONS:
            options = {**(options if options is not None else start), token: True}
        else:
            raise ValueError(f"unknown variant token {token!r} in {variant!r}: use v1, default, "
                             f"{', '.join(SYNTH_OPTIONS)}, no<option>, augment[=preset], noaugment, "
                             f"norm=<{'|'.join(NORMALIZATIONS)}>, inputs=<modality,...>, lr=<rate>, "
                             f"sched=<{'|'.join(LR_SCHEDULES)}>, post=<{'|'.join(POSTPROCESSING)}>, mirror or "
                             f"{', '.join(f'{k}=<N>' for k in COUNT_TOKENS)}")
    return options, overrides


def _scores(evaluation) -> dict:
    """Mean and per-case Dice / HD95 of WT, TC, ET, and ET split by whether the truth holds it
    (:func:`bratslib.metrics.region_split`: a mean over every case mixes outlining the region
    with leaving it out where there is none)."""
    from bratslib.metrics import region_split

    keys = [f"{m}_{r}" for m in ("dice", "hd95") for r in REGIONS]
    return {"mean": {k: evaluation.mean(k) for k in keys}, "et_split": region_split(evaluation.per_case, "ET"),
            "per_case": [{"case_id": row["case_id"], **{k: row[k] for k in keys}} for row in evaluation.per_case]}


#: The probe's gains: FLAIR inside the whole tumour, T1ce inside the enhancing tumour.
CONSPICUOUS_GAINS = {"flair": 1.3, "t1ce": 1.5}


def conspicuous_copies(cases, folder: Path) -> list:
    """Copies of the real scans whose tumour is made more conspicuous: FLAIR times 1.3 inside the
    whole tumour, T1ce times 1.5 inside the enhancing tumour (regions from each scan's consensus
    ``seg``), every other voxel and file as it was.  A probe, never training data: a model that
    misses a scan's tumour but finds it in the copy misses it for its contrast, not for its
    shape, size or place."""
    import nibabel as nib

    from bratslib.data.layout import case_files

    copies = []
    for files in cases:
        out = folder / files.case_id
        out.mkdir(parents=True, exist_ok=True)
        seg = np.asarray(nib.load(files.seg).dataobj)
        regions = {"flair": seg > 0, "t1ce": seg == 4}
        for modality, path in [*files.images.items(), ("seg", files.seg)]:
            image = nib.load(path)
            if modality in regions:
                data = np.asarray(image.dataobj).astype(np.float32)
                data[regions[modality]] *= CONSPICUOUS_GAINS[modality]
                image = nib.Nifti1Image(np.clip(np.rint(data), -32768, 32767).astype(image.get_data_dtype()),
                                        image.affine, image.header)
            nib.save(image, out / Path(path).name)
        copies.append(case_files(out))
    return copies


def tuned_threshold(cases) -> dict:
    """:func:`bratslib.real.tuned_threshold`'s scores."""
    from bratslib.real import tuned_threshold as tuned

    return _scores(tuned(cases))


def _pooled(scores: list[dict]) -> dict:
    """Several training seeds' :func:`_scores` as one: the mean of their means, per case the mean
    over the seeds (real scans: the same cases every time), ET split over every seed's cases."""
    mean = {k: float(np.mean([sc["mean"][k] for sc in scores])) for k in scores[0]["mean"]}
    splits = [sc["et_split"] for sc in scores]
    n_present = sum(sp["n_present"] for sp in splits)
    et_split = {"n_present": n_present, "n_absent": sum(sp["n_absent"] for sp in splits),
                "absent_found": sum(sp["absent_found"] for sp in splits),
                "dice_present": (sum(sp["dice_present"] * sp["n_present"] for sp in splits if sp["n_present"]) / n_present
                                 if n_present else float("nan"))}
    ids = [row["case_id"] for row in scores[0]["per_case"]]
    same_cases = all([row["case_id"] for row in sc["per_case"]] == ids for sc in scores)
    per_case = [{"case_id": cid, **{k: float(np.mean([sc["per_case"][i][k] for sc in scores]))
                                    for k in scores[0]["per_case"][i] if k != "case_id"}}
                for i, cid in enumerate(ids)] if same_cases else []
    return {"mean": mean, "et_split": et_split, "per_case": per_case}


def run_variant(variant: str, cases: int, seed: int, data_dir: Path, real_dir: Path, work: Path,
                profile: str = "smoke", train_seeds: list[int] | None = None) -> dict:
    """One row: write the data (seed ``seed``), train the chapter-2 U-Net at ``smoke`` once per
    training seed (``train_seeds``, default ``[seed]``: the split, the initial weights and the
    order of the slices), score each; the row's scores are the mean over the training seeds and
    ``runs`` keeps each one's; ``real_ensemble`` scores the seeds' models together on the real
    scans (their class probabilities averaged; None with one seed)."""
    from bratslib.chapter import ChapterSetup
    from bratslib.data.synth import GENERATOR_VERSION, options_name, synth_options, write_synthetic_dataset
    from bratslib.evaluate import evaluate_cases, evaluate_run, run_cases, run_mirror, run_postprocess
    from bratslib.models.unet2d import build_unet2d

    options, overrides = parse_variant(variant)
    cases = overrides.pop("cases", cases)
    opts = synth_options(options)
    on = sorted(k for k, v in opts.items() if v)
    folder = data_dir / GENERATOR_VERSION / options_name(opts) / f"seed{seed}-cases{cases}"
    timing = folder / "seconds_per_case.json"
    start = time.perf_counter()
    root = write_synthetic_dataset(folder, n_cases=cases, seed=seed, options=opts, progress=False)
    if not timing.exists():  # a data set written earlier keeps the time it took then
        timing.write_text(json.dumps((time.perf_counter() - start) / cases))
    per_case_s = json.loads(timing.read_text())

    runs, models = [], []
    cache_dir = work / "cache"
    probe = conspicuous_copies(real_cases(real_dir), work / "conspicuous")
    for train_seed in train_seeds or [seed]:
        setup = ChapterSetup.create("unet2d", profile, data_dir=root, seed=train_seed, **overrides)
        datasets = setup.datasets(cache_dir, progress=False)
        start = time.perf_counter()
        result = setup.train(build_unet2d, datasets, results_dir=work / f"results-seed{train_seed}", verbose=0)
        train_s = time.perf_counter() - start
        synthetic = evaluate_run(result.run, root, model=result.model, cache_dir=cache_dir, progress=False)
        post, mirror = run_postprocess(result.run), run_mirror(result.run)
        real = evaluate_cases(result.model, real_cases(real_dir), result.run.config["preprocessing"],
                              cache_dir=cache_dir, progress=False, postprocess=post, mirror=mirror)
        # the copies keep the real case ids: a cache of their own
        conspicuous = evaluate_cases(result.model, probe, result.run.config["preprocessing"],
                                     cache_dir=work / "cache-conspicuous", progress=False, postprocess=post,
                                     mirror=mirror)
        runs.append({"train_seed": train_seed, "train_s": train_s, "epochs": result.trained_epochs,
                     "precision": result.run.config["training"].get("precision"),
                     "best_epoch": result.best_epoch, "synthetic": _scores(synthetic),
                     "synthetic_threshold": tuned_threshold(run_cases(result.run, root, "test")), "real": _scores(real),
                     "real_conspicuous": _scores(conspicuous)})
        models.append(result.model)
    # the seeds' models as one: class probabilities averaged (bratslib.evaluate.evaluate_cases)
    ensemble = (_scores(evaluate_cases(models, real_cases(real_dir), result.run.config["preprocessing"],
                                       cache_dir=cache_dir, progress=False, postprocess=post, mirror=mirror))
                if len(models) > 1 else None)
    return {"variant": variant, "generator_version": GENERATOR_VERSION, "options": on, "augment": setup.settings["augment"],
            "normalize": setup.settings["normalize"], "postprocess": setup.settings["postprocess"],
            "mirror": setup.settings["mirror"], "cases": cases,
            "seconds_per_case": per_case_s, "train_seeds": [r["train_seed"] for r in runs],
            "train_s": float(np.mean([r["train_s"] for r in runs])),
            "epochs": runs[0]["epochs"], "best_epoch": runs[0]["best_epoch"],  # the first seed's; each run has its own
            "precision": runs[0]["precision"],
            **{k: _pooled([r[k] for r in runs]) for k in ("synthetic", "synthetic_threshold", "real", "real_conspicuous")},
            "real_ensemble": ensemble, "runs": runs}


def _triple(scores: dict | None, metric: str = "dice", digits: int = 2) -> str:
    """``0.55 / 0.42 / 0.04``: the mean ``metric`` of WT / TC / ET of a row's scores, as the book prints them."""
    return region_triple(scores["mean"], metric, digits) if scores else ""


def _with_hd95(scores: dict | None) -> str:
    """``0.55 / 0.42 / 0.04 (49 / 43 / 210)``: Dice, and HD95 in mm, of WT / TC / ET."""
    return f"{_triple(scores)} ({_triple(scores, 'hd95', 0)})" if scores else ""


def _et_split(scores: dict | None) -> str:
    """``0.72 (16) / 6 of 8``: ET Dice where the truth has ET (how many cases), absent ET left empty."""
    split = (scores or {}).get("et_split")
    if not split:
        return ""
    present = "-" if not split["n_present"] else f"{split['dice_present']:.2f} ({split['n_present']})"
    return f"{present} / {split['absent_found']} of {split['n_absent']}"


def _per_case(scores: dict | None, probe: dict | None = None) -> str:
    """``901: WT / TC / ET; 902: ...``, and with ``probe`` (the same models on the conspicuous
    copies) each case's probe Dice after it: ``901: ... (brighter: ...)``."""
    if not scores:
        return ""
    probed = {row["case_id"]: row for row in probe["per_case"]} if probe else {}
    return "; ".join(f"{row['case_id'].rsplit('_', 1)[-1]}: {region_triple(row)}"
                     + (f" (brighter: {region_triple(probed[row['case_id']])})" if row["case_id"] in probed else "")
                     for row in scores["per_case"])


def describe(options: list[str], augment, normalize: str = "volume", cases: int | None = None,
             size: int | None = None, modalities: tuple[str, ...] | None = None,
             learning_rate: float | None = None, lr_schedule: str | None = None,
             batch_size: int | None = None, postprocess: str | None = None,
             stop_patience: int | None = None, lr_patience: int | None = None, mirror: bool = False) -> str:
    """What a row changes, in words: the first generator, every option, every option but one, or the
    options; and ``cases`` where the row has its own number of synthetic cases, ``size`` its own
    slice size, ``modalities`` its own inputs, ``learning_rate`` its own learning rate,
    ``lr_schedule`` its own learning-rate schedule, ``batch_size`` its own batch,
    ``lr_patience`` and ``stop_patience`` their own patience, ``postprocess`` its own
    post-processing and ``mirror`` test-time mirroring."""
    from bratslib.data.synth import SYNTH_OPTIONS

    missing = [k for k in SYNTH_OPTIONS if k not in options]
    text = ("first generator (no option)" if not options else "every option" if not missing
            else f"every option but {missing[0]}" if len(missing) == 1 and len(SYNTH_OPTIONS) > 2
            else ", ".join(options))
    return (text + (f"; {augment} augmentation while training" if augment else "")
            + (f"; intensities normalised by {normalize}" if normalize != "volume" else "")
            + (f"; {cases} cases" if cases else "") + (f"; {size} x {size} slices" if size else "")
            + (f"; inputs {', '.join(modalities)}" if modalities else "")
            + (f"; learning rate {learning_rate:g}" if learning_rate else "")
            + (f"; {lr_schedule} schedule" if lr_schedule else "")
            + (f"; batches of {batch_size}" if batch_size else "")
            + (f"; rate halved after {lr_patience} epochs without progress" if lr_patience else "")
            + (f"; stops after {stop_patience} epochs without progress" if stop_patience else "")
            + ("; largest connected tumour kept" if postprocess == "largest" else "")
            + ("; mirrored at test time" if mirror else ""))


#: The dtype policies as the table names them.
SHORT_PRECISION = {"float32": "float32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}


def _training(r: dict) -> str:
    """``16 epochs, 51 s``, or over several training seeds ``3 seeds: 15-16 epochs, 55 s each``, and
    the dtype policy it trained under where the row recorded it."""
    runs = r.get("runs") or [r]
    epochs = sorted({run["epochs"] for run in runs})
    span = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"
    # the dtype policy, where the row recorded it (earlier rows did not): bfloat16 on CPUs that have it
    precision = f" ({SHORT_PRECISION.get(r['precision'], r['precision'])})" if r.get("precision") else ""
    if len(runs) == 1:
        return f"{span} epochs, {r['train_s']:.0f} s{precision}"
    return f"{len(runs)} seeds: {span} epochs, {r['train_s']:.0f} s each{precision}"


#: The goal of issue 15 on the real scans: mean Dice of the two at least these, region by region.
GOAL = {"dice_WT": 0.80, "dice_TC": 0.50, "dice_ET": 0.50}


def at_goal(scores: dict) -> bool:
    """Whether a run's real mean Dice (``scores["mean"]``) reaches :data:`GOAL` in every region,
    compared as the table prints them (two decimals)."""
    from bratslib.comparison import regions_compared

    return not regions_compared(scores["mean"], GOAL)["below"]


def _per_seed(r: dict) -> str:
    """Each training seed's real Dice (how far one row moves with the seed), how many seeds reach
    :data:`GOAL` and, where the row has it, the seeds' ensemble (their class probabilities
    averaged)."""
    runs = r.get("runs") or []
    if len(runs) < 2:
        return ""
    # "all 3 as one": no word longer than the column's others (the table is at its narrowest on the page)
    ensemble = f"; all {len(runs)} as one: {_triple(r['real_ensemble'])}" if r.get("real_ensemble") else ""
    reached = sum(at_goal(run["real"]) for run in runs)
    return ("; ".join(f"seed {run['train_seed']}: {_triple(run['real'])}" for run in runs)
            + f"; at the goal: {reached} of {len(runs)}" + ensemble)


def own_settings(row: dict) -> dict:
    """What the row's tokens set that :func:`describe` words: ``cases``, ``size``, ``modalities``,
    ``learning_rate``, ``lr_schedule``, ``batch_size``, ``lr_patience``, ``stop_patience``,
    ``postprocess``, ``mirror``."""
    worded = ("cases", "size", "modalities", "learning_rate", "lr_schedule", "batch_size", "lr_patience",
              "stop_patience", "postprocess", "mirror")
    return {k: v for k, v in parse_variant(row["variant"])[1].items() if k in worded}


def shown_name(variant: str) -> str:
    """A variant's name as the table shows it, with room to wrap: ``default + inputs=flair, t1``."""
    return variant.replace("+", " + ").replace(",", ", ")


def table_of(results: dict) -> tuple[list[str], list[tuple]]:
    from bratslib.data.synth import GENERATOR_VERSION

    header = ["variant", "what it changes", "train aug.", "training", "s / case", "synthetic test Dice WT / TC / ET",
              "synthetic ET where present (cases) / no ET left empty", "tuned threshold, synthetic test",
              "real Dice WT / TC / ET (HD95, mm)", "real, per training seed",
              "real, per case (brighter: the probe, tumour more conspicuous)"]
    blank = [""] * (len(header) - 1)
    rows = []
    for r in results["variants"]:
        if "error" in r:
            rows.append((shown_name(r["variant"]), *blank[:7], f"failed: {r['error'][:60]}", *blank[8:]))
            continue
        # rows written before the generator's version was recorded are bratslib-synth-2's
        version = r.get("generator_version", "bratslib-synth-2")
        stale = "" if version == GENERATOR_VERSION else f" (data of {version})"
        what = describe(r["options"], r["augment"], r.get("normalize", "volume"), **own_settings(r))
        rows.append((shown_name(r["variant"]), what + stale, str(r["augment"]),
                     _training(r), round(r["seconds_per_case"], 1),
                     _triple(r["synthetic"]), _et_split(r["synthetic"]), _triple(r["synthetic_threshold"]),
                     _with_hd95(r["real"]), _per_seed(r), _per_case(r["real"], r.get("real_conspicuous"))))
    for name, label in (("real_threshold", "one threshold on one channel, tuned per case on its truth"),
                        ("algorithms", "the five BraTS 2020 algorithms, pairwise")):
        ref = results.get(name)
        if ref:
            rows.append((label, *blank[:7], _with_hd95(ref), "", _per_case(ref)))
    return header, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="*", default=["v1", "default"], help="generator variants (see above)")
    parser.add_argument("--cases", type=int, default=SYNTHETIC_CASES,
                        help=f"synthetic cases per variant (the book's {SYNTHETIC_CASES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (and of training, "
                        "without --train-seeds)")
    parser.add_argument("--train-seeds", type=int, nargs="+", metavar="SEED",
                        help="train once per seed on the same data (split, initial weights, slice order) and report "
                             "the mean and each seed's real Dice")
    parser.add_argument("--data-dir", default=str(ROOT / "build" / "bench-sim2real"),
                        help="where each variant's synthetic data is written (kept for later runs)")
    parser.add_argument("--real-dir", help="real scans in the BraTS 2020 layout with their consensus seg "
                        "(default: book/data/real, else ../shared/real)")
    parser.add_argument("--algorithms-dir", help="the algorithms' own segmentations, <case>/<algorithm>.nii.gz "
                        "(default: <real-dir>/algorithms)")
    parser.add_argument("--out", help="also write <name>.md and <name>.json into this folder")
    parser.add_argument("--name", default="bench_sim2real")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of the report already in --out (same cases and seed) and add these "
                             "variants' (each row records when it was measured)")
    parser.add_argument("--render", metavar="JSON", help="only rewrite the .md of an earlier report from its .json")
    parser.add_argument("--profile", default="smoke", help=argparse.SUPPRESS)  # the tests: tiny
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: one variant in this process
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.render:
        return rerender(args.render, table_of)
    real_dir = Path(args.real_dir) if args.real_dir else default_real_dir()
    if real_dir is None:
        parser.error("no real scans found in book/data/real or ../shared/real; give --real-dir")
    if args.row:
        print_row(run_variant(args.row, args.cases, args.seed, Path(args.data_dir), real_dir, Path(args.work),
                              args.profile, args.train_seeds))
        return 0

    for variant in args.variants:
        parse_variant(variant)  # fail early on a typo
    algorithms_dir = Path(args.algorithms_dir) if args.algorithms_dir else real_dir / "algorithms"
    real = real_cases(real_dir)
    print(f"real scans: {', '.join(c.case_id for c in real)} in {real_dir}", flush=True)
    earlier = Path(args.out or ".") / f"{args.name}.json"
    if args.append and earlier.is_file():
        results = json.loads(earlier.read_text())["results"]
        if (results["cases"], results["seed"], results.get("train_seeds")) != (args.cases, args.seed, args.train_seeds):
            parser.error(f"{earlier} has {results['cases']} cases, seed {results['seed']} and training seeds "
                         f"{results.get('train_seeds')}: cannot append to it")
        results["variants"] = [r for r in results["variants"] if r["variant"] not in args.variants]
    else:
        results = {"real_dir": str(real_dir), "cases": args.cases, "seed": args.seed, "train_seeds": args.train_seeds,
                   "real_threshold": tuned_threshold(real),
                   "algorithms": algorithms_agreement(real_dir, algorithms_dir) if algorithms_dir.is_dir() else None,
                   "variants": []}
    for variant in args.variants:
        n_cases = parse_variant(variant)[1].get("cases", args.cases)
        print(f"variant {variant}: writing {n_cases} cases, training the U-Net ({args.profile}), scoring ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-sim2real-") as work:
            cmd = [sys.executable, __file__, "--row", variant, "--cases", str(args.cases), "--seed", str(args.seed),
                   "--data-dir", args.data_dir, "--real-dir", str(real_dir), "--work", work,
                   "--profile", args.profile, *(["--train-seeds", *map(str, args.train_seeds)] if args.train_seeds else [])]
            try:
                row = {**run_row(cmd), "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            except RuntimeError as e:
                print(f"  failed: {e}", file=sys.stderr)
                row = {"variant": variant, "error": str(e).splitlines()[-1]}
        results["variants"].append(row)
        if "error" not in row:
            print(f"  synthetic {_triple(row['synthetic'])}, real {_triple(row['real'])} ({_per_case(row['real'])})",
                  flush=True)

    seeds = (f"data seed {args.seed}, training seeds {', '.join(map(str, args.train_seeds))}: mean" if args.train_seeds
             else f"seed {args.seed}")
    title = (f"Trained on synthetic data only (chapter 2's U-Net, profile {args.profile}, {args.cases} cases, {seeds}), "
             f"scored on synthetic test cases and on {len(real)} real scans against the consensus of five BraTS "
             "2020 algorithms")
    notes = ("Real scans: " + ", ".join(c.case_id for c in real) + " (TCGA via the BraTS Toolkit; see "
             "SOURCE.md). Their `seg` is a majority vote of five BraTS 2020 algorithms, not an expert annotation. "
             "Dice and HD95 per region as the book evaluates (BraTS rule: an empty region predicted empty scores "
             "Dice 1). Scan 902 has no enhancing tumour: a model that predicts none anywhere scores ET 1 there, so a "
             "mean ET of 0.50 over the two scans can mean no enhancing tumour found in either (see the per-case column). "
             "The tuned threshold is fitted on each case's own truth: a bound no model is given. "
             "In the last column, \"brighter\" scores the same models on copies of the real scans whose "
             "tumour is made more conspicuous (FLAIR x 1.3 inside the whole tumour, T1ce x 1.5 inside the "
             "enhancing tumour; rows measured before it was added lack it): a model that finds the tumour there "
             "but not in the scan misses it for its contrast, not its shape or place. "
             + ("Each row is the mean over its training seeds (each seed its own split of the synthetic cases); "
                "the per-seed column shows how far one row moves with the seed, and how many seeds reach the goal of "
                "issue 15 on the real scans (mean Dice WT 0.80, TC 0.50, ET 0.50 or more, as printed). "
                if args.train_seeds else
                "One seed per row: ")
             + "two real scans: small differences between rows need not hold for another seed or other scans.")
    results = rounded(results)  # per-case scores of every run: 5 digits, not 16, in the .json and the table
    table = markdown_table(*table_of(results))
    print(f"\n{title}\n{machine_summary()}\n\n{table}")
    if args.out:
        write_report(args.out, args.name, title, table, results, sys.argv, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
