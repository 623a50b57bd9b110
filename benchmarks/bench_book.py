"""Where does ``make book`` spend its time?  Wall time of each notebook, and its training share.

    .venv/bin/python benchmarks/bench_book.py [--executed build/executed] [--out DIR]

Reads the executed notebooks of the last ``make book`` (``build/executed/``, in the order
of ``_toc.yml``) and the cell timings papermill records in them, and prints per notebook:
when it started (seconds after the first notebook: ``make book`` runs two at a time), the wall
time papermill measured (kernel start included), the time in cells that train (a cell that
calls ``.train(``), its share of the notebook, and the longest other cell; then the sum of the
notebooks' wall times and the span from the first start to the last end, which is what the
execution step took.
Nothing is executed here: run ``make book`` first (on a quiet machine; the numbers are
those of that run).  ``--out DIR`` also writes ``DIR/bench_book.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_summary, markdown_table, write_report  # noqa: E402
from bratslib.book import FINGERPRINT_SUFFIX, notebooks_in_toc  # noqa: E402

#: A cell that trains: it calls a ``train(`` (ChapterSetup.train, bratslib.training.train) or
#: ``ChapterSetup.train_and_evaluate(`` (which also evaluates: its time counts as training).
TRAINS = re.compile(r"\btrain(_and_evaluate)?\(")


def notebook_times(path: Path) -> dict:
    """Total, training and per-cell seconds of one executed notebook (papermill's metadata)."""
    nb = json.loads(path.read_text())
    total = float(nb["metadata"].get("papermill", {}).get("duration") or 0.0)
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        seconds = float(cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0)
        first = next((line for line in src.splitlines() if line.strip() and not line.startswith("#")), "")
        cells.append({"seconds": seconds, "trains": bool(TRAINS.search(src)), "first_line": first[:70]})
    training = sum(c["seconds"] for c in cells if c["trains"])
    others = [c for c in cells if not c["trains"]]
    longest = max(others, key=lambda c: c["seconds"], default={"seconds": 0.0, "first_line": ""})
    meta = nb["metadata"].get("papermill", {})
    start, end = (datetime.fromisoformat(meta[k]).timestamp() if meta.get(k) else None for k in ("start_time", "end_time"))
    return {"total_s": total, "cells_s": sum(c["seconds"] for c in cells), "training_s": training,
            "longest_other": longest, "cells": cells, "start": start, "end": end}


def at_once(results: dict) -> int:
    """The most notebooks that ran at the same moment (from papermill's start and end times)."""
    spans = [(r["start"], r["end"]) for r in results.values() if r.get("start") and r.get("end")]
    return max((sum(a <= t < b for a, b in spans) for t, _ in spans), default=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=".", help="the repository (its _toc.yml)")
    parser.add_argument("--executed", default="build/executed", help="the executed copies of `make book`")
    parser.add_argument("--out", help="also write bench_book.md and bench_book.json into this folder")
    args = parser.parse_args(argv)

    root, executed = Path(args.root), Path(args.executed)
    results, missing = {}, []
    for source in notebooks_in_toc(root / "_toc.yml"):
        rel = source.relative_to(root)
        copy = executed / rel
        if not copy.is_file():
            missing.append(str(rel))
            continue
        results[str(rel)] = notebook_times(copy)
        stamp = copy.with_name(copy.name + FINGERPRINT_SUFFIX)
        if stamp.is_file():
            results[str(rel)]["profile"] = json.loads(stamp.read_text()).get("parameters", {}).get("profile")
    if not results:
        raise SystemExit(f"no executed notebooks under {executed}: run `make book` first")
    if missing:
        print(f"not executed yet (left out): {', '.join(missing)}", file=sys.stderr)

    total = sum(r["total_s"] for r in results.values())
    # chapters 3-7 train and evaluate in one cell (ChapterSetup.train_and_evaluate): their evaluation counts as training
    first = min((r["start"] for r in results.values() if r.get("start")), default=None)
    header = ["notebook", "start s", "wall s", "share", "training s (3-7: and evaluation)", "training share",
              "longest other cell (s)"]
    rows = [(Path(name).stem, round(r["start"] - first) if first and r.get("start") else "", round(r["total_s"], 1),
             f"{r['total_s'] / total:.0%}", round(r["training_s"], 1),
             f"{r['training_s'] / r['total_s']:.0%}" if r["total_s"] else "",
             f"`{r['longest_other']['first_line']}` ({r['longest_other']['seconds']:.1f})")
            for name, r in results.items()]
    training = sum(r["training_s"] for r in results.values())
    rows.append(("all notebooks (sum)", "", round(total, 1), "100%", round(training, 1), f"{training / total:.0%}", ""))
    ends = [r["end"] for r in results.values() if r.get("end")]
    if first and ends:
        span = max(ends) - first
        rows.append(("execution (first start to last end)", 0, round(span, 1), "", "", "", ""))
    profiles = sorted({str(r.get("profile")) for r in results.values() if r.get("profile")})
    jobs = at_once(results)
    title = (f"Wall time of each notebook in `make book` (profile {', '.join(profiles) or 'unknown'}; "
             f"{jobs} notebook{'s' if jobs > 1 else ''} at a time)")
    table = markdown_table(header, rows)
    print(f"\n{title}\n{machine_summary()}\n\n{table}")
    if args.out:
        write_report(args.out, "bench_book", title, table, results, sys.argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
