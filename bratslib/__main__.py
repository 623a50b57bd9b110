"""The bratslib command line.

    python -m bratslib synth OUT --cases N --seed S     write a synthetic BraTS data set
    python -m bratslib check DIR                         report every problem of a data folder

Only this module parses arguments; each command is a thin call into the library.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _cmd_synth(args: argparse.Namespace) -> int:
    from bratslib.data.synth import write_synthetic_dataset

    root = write_synthetic_dataset(args.out, n_cases=args.cases, seed=args.seed, compress=args.gz, progress=not args.quiet)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bratslib", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic BraTS 2020 data set (Kaggle layout, real NIfTI files)")
    p.add_argument("out", help="folder to write into")
    p.add_argument("--cases", type=int, default=20, help="number of cases (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same bytes")
    p.add_argument("--gz", action="store_true", help="write .nii.gz (official layout) instead of .nii (Kaggle)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("check", help="report every problem of a BraTS data folder (exit 1 if any)")
    p.add_argument("dir", help="the data folder, or any parent of it")
    p.add_argument("--headers-only", action="store_true", help="check headers only, do not read voxel data (fast)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
