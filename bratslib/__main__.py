"""The bratslib command line.

    python -m bratslib synth OUT --cases N --seed S     write a synthetic BraTS data set
    python -m bratslib check DIR                         report every problem of a data folder
    python -m bratslib predict RUN CASE_DIR OUT.nii.gz   segment one case with a trained run
    python -m bratslib evaluate RUN DATA_DIR             score a trained run on labeled cases
    python -m bratslib book execute -p data_dir DIR      execute the book's notebooks (papermill)
    python -m bratslib book build                        build the HTML book from the executed copies

Only this module parses arguments; each command is a thin call into the library.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from bratslib.profiles import POSTPROCESSING


def _cmd_synth(args: argparse.Namespace) -> int:
    from bratslib.data.synth import write_synthetic_dataset

    options = None if args.options is None else [o for o in args.options.split(",") if o and o != "none"]
    root = write_synthetic_dataset(args.out, n_cases=args.cases, seed=args.seed, compress=args.gz, progress=not args.quiet,
                                   options=options, workers=args.workers)
    print(f"wrote {args.cases} synthetic cases (seed {args.seed}) to {root}")
    return 0


def _format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def _cmd_check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bratslib.data.cases import check_dataset
    from bratslib.data.layout import NoCasesFoundError

    root = Path(args.dir)
    try:
        progress = None if args.quiet else (lambda it: tqdm(it, desc="checking cases", unit="case", file=sys.stderr))
        cases, problems = check_dataset(root, read_voxels=not args.headers_only, progress=progress)
    except (FileNotFoundError, NotADirectoryError, NoCasesFoundError) as e:
        print(_format_table(("case", "file", "problem"), [("-", str(root), str(e))]))
        return 1
    labeled = sum(c.labeled for c in cases)
    print(f"{len(cases)} cases under {root} ({labeled} labeled, {len(cases) - labeled} unlabeled)")
    for case in cases:
        for note in case.notes:
            print(f"note: {case.case_id}: {note}")
    if not problems:
        print("no problems found")
        return 0
    rows = []
    for p in problems:
        path = Path(p.file)
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        rows.append((p.case_id, shown, p.problem))
    print(_format_table(("case", "file", "problem"), rows))
    bad = len({p.case_id for p in problems})
    print(f"{len(problems)} problem(s) in {bad} case(s)")
    return 1


def _load_run(path: str):
    from bratslib.results import Run

    run = Run(path)
    if not run.model_path.is_file():
        raise FileNotFoundError(f"{run.path}: no model.keras (status {run.status}); train the run to the end first")
    return run


def _cmd_predict(args: argparse.Namespace) -> int:
    try:
        run = _load_run(args.run)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from bratslib.data.cases import BratsDataError
    from bratslib.evaluate import predict_case, run_mirror, run_postprocess
    from bratslib.models import load_model

    model = load_model(run.model_path)
    postprocess = args.postprocess or run_postprocess(run)
    mirror = run_mirror(run) if args.mirror is None else args.mirror
    try:
        prediction = predict_case(model, args.case_dir, run.config["preprocessing"], cache_dir=args.cache_dir,
                                  postprocess=postprocess, mirror=mirror)
        path = prediction.save(args.out)
    except (BratsDataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    counts = {int(k): int(n) for k, n in zip(*np.unique(prediction.labels, return_counts=True))}
    print(f"{prediction.case_id}: wrote {path} (voxels per label: {counts}; post-processing: {postprocess}"
          f"{'; mirrored at test time' if mirror else ''})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from bratslib.data.cases import BratsDataError
    from bratslib.data.layout import NoCasesFoundError
    from bratslib.evaluate import evaluate_run

    try:
        run = _load_run(args.run)
        name = args.name or f"{Path(args.data_dir).resolve().name}-{args.split}"
        evaluation = evaluate_run(run, args.data_dir, split=args.split, name=name, cache_dir=args.cache_dir,
                                  predictions_dir=args.save_predictions, progress=not args.quiet,
                                  postprocess=args.postprocess, mirror=args.mirror)
    except (BratsDataError, FileNotFoundError, NoCasesFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = []
    for key in ("dice_WT", "dice_TC", "dice_ET", "hd95_WT", "hd95_TC", "hd95_ET", "mean_iou", "accuracy"):
        s = evaluation.summary[key]
        rows.append((key, f"{s['mean']:.4f}", f"{s['std']:.4f}", f"{s['median']:.4f}", str(s["n"])))
    print(f"{run.name} on {len(evaluation.per_case)} {args.split} case(s) of {args.data_dir} "
          f"(post-processing: {evaluation.info['postprocess']}{'; mirrored at test time' if evaluation.info['mirror'] else ''})")
    print(_format_table(("metric", "mean", "std", "median", "cases"), rows))
    print(f"pooled all-voxel Dice (background included): {evaluation.pooled_dice:.4f}")
    print(f"written to {run.path / 'evaluations'}")
    return 0


def _parameter_value(text: str):
    """A papermill parameter given on the command line: JSON if it parses (3, 0.5, true), else text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _cmd_book_execute(args: argparse.Namespace) -> int:
    from bratslib.book import BookExecutionError, execute_notebooks, notebooks_in_toc

    root = Path(args.root)
    try:
        notebooks = notebooks_in_toc(Path(args.toc) if args.toc else root / "_toc.yml")
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    parameters = {name: _parameter_value(value) for name, value in args.parameter}
    try:
        runs = execute_notebooks(
            notebooks, args.out, root=root, parameters=parameters, inputs=args.input, force=args.force,
            keep_going=args.keep_going, kernel_name=args.kernel, timeout=args.timeout, jobs=args.jobs,
        )
    except BookExecutionError as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    done = sum(r.status == "executed" for r in runs)
    print(f"{len(runs)} notebook(s) in {args.out}: {done} executed, {len(runs) - done} up to date")
    return 0


def _cmd_book_build(args: argparse.Namespace) -> int:
    from bratslib.book import BookBuildError, stage_and_build

    try:
        html = stage_and_build(args.root, args.executed, args.site, args.out, strict=not args.no_strict, fresh=args.all)
    except (BookBuildError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"the HTML book is in {html} (open {html / 'index.html'})")
    return 0


def _mirror_flag(parser: argparse.ArgumentParser) -> None:
    """``--mirror`` / ``--no-mirror``: predict with or without test-time mirroring (default: the run's own)."""
    parser.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                        help="average the prediction over the case and its mirror images, or not (default: what the "
                        "run was trained for, its config.json's mirror)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bratslib", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic BraTS 2020 data set (Kaggle layout, real NIfTI files)")
    p.add_argument("out", help="folder to write into")
    p.add_argument("--cases", type=int, default=20, help="number of cases (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same bytes")
    p.add_argument("--gz", action="store_true", help="write .nii.gz (official layout) instead of .nii (Kaggle)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="cases written at once, in worker processes (default: the CPU count); the bytes do not depend on it")
    p.add_argument("--options", help="the generator's options, comma-separated (contrast, artefacts, anatomy, glioma, "
                   "sites, surface, faint, subtle, faint_oedema, wmh, faint_edge, leukoaraiosis; 'none': the first generator); default: the "
                   "synthetic default's")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("check", help="report every problem of a BraTS data folder (exit 1 if any)")
    p.add_argument("dir", help="the data folder, or any parent of it")
    p.add_argument("--headers-only", action="store_true", help="check headers only, do not read voxel data (fast)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("predict", help="segment one case folder with a trained run; writes BraTS labels 0/1/2/4 as NIfTI")
    p.add_argument("run", help="the run folder (results/<run>) holding model.keras")
    p.add_argument("case_dir", help="a case folder (with at least the run's modalities)")
    p.add_argument("out", help="the label map to write (.nii or .nii.gz)")
    p.add_argument("--cache-dir", help="preprocessed-array cache (default $BRATSLIB_CACHE or ~/.cache/bratslib)")
    p.add_argument("--postprocess", choices=POSTPROCESSING,
                   help="none: the network's most probable class; largest: keep the largest connected tumour "
                   "(default: what the run was trained for, its config.json's postprocess)")
    _mirror_flag(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="score a trained run on the labeled cases of a data folder")
    p.add_argument("run", help="the run folder (results/<run>) holding model.keras")
    p.add_argument("data_dir", help="the data folder, or any parent of it")
    p.add_argument("--split", default="test", help="test (default), val, train: the run's cases of that split; all: every labeled case")
    p.add_argument("--name", help="name of the evaluation folder in RUN/evaluations (default: DATA-SPLIT)")
    p.add_argument("--save-predictions", metavar="DIR", help="also write each prediction as NIfTI into DIR")
    p.add_argument("--cache-dir", help="preprocessed-array cache (default $BRATSLIB_CACHE or ~/.cache/bratslib)")
    p.add_argument("--postprocess", choices=POSTPROCESSING,
                   help="none: the network's most probable class; largest: keep the largest connected tumour "
                   "(default: what the run was trained for, its config.json's postprocess)")
    _mirror_flag(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("book", help="execute the book's notebooks, build the HTML book")
    book = p.add_subparsers(dest="book_command", required=True)
    p = book.add_parser("execute", help="execute the notebooks of _toc.yml with papermill (skips those up to date)")
    p.add_argument("--root", default=".", help="the repository root (default: .)")
    p.add_argument("--toc", help="the table of contents (default: ROOT/_toc.yml)")
    p.add_argument("--out", default="build/executed", help="where the executed copies go (default: build/executed)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="papermill parameter (repeatable); VALUE is read as JSON when it parses, else as text")
    p.add_argument("--input", action="append", default=[], metavar="FILE",
                   help="a further file the results depend on (its content changes re-execute); repeatable")
    p.add_argument("--force", action="store_true", help="execute every notebook, up to date or not")
    p.add_argument("--keep-going", action="store_true", help="after a failure, execute the remaining notebooks")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel (default: python3)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell (default: no limit)")
    p.add_argument("--jobs", type=int, default=1,
                   help="notebooks executed at once, each on its share of the CPU cores; a notebook waits for those "
                        "it reads (metadata bratslib.needs) (default: 1)")
    p.set_defaults(func=_cmd_book_execute)
    p = book.add_parser("build", help="stage the executed notebooks and build the HTML book with jupyter-book")
    p.add_argument("--root", default=".", help="the repository root (default: .)")
    p.add_argument("--executed", default="build/executed", help="the executed copies (default: build/executed)")
    p.add_argument("--site", default="build/site", help="the staged book sources (default: build/site)")
    p.add_argument("--out", default="build", help="the HTML goes to OUT/_build/html (default: build)")
    p.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    p.add_argument("--all", action="store_true", help="rebuild every page")
    p.set_defaults(func=_cmd_book_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
