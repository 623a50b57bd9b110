"""What every benchmark shares: the machine it ran on, its table, and its report files.

A benchmark prints a markdown table; with ``--out DIR`` it also writes ``DIR/<name>.md``
(a title, the machine, the command, the table: what the book's performance page shows) and
``DIR/<name>.json`` (the same numbers, the machine and the versions, for a later comparison).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

#: Packages whose versions every report records.
PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "scipy", "nibabel", "pennylane")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs (``nvidia-smi``), without importing TensorFlow; [] when none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def machine() -> dict[str, Any]:
    """CPU count and model, memory, GPUs and package versions."""
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gb = None
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"cpus": os.cpu_count(), "cpu": cpu_model(), "memory_gb": round(mem_gb, 1) if mem_gb else None,
            "gpus": gpu_names(), "python": platform.python_version(), "versions": versions}


def machine_summary(info: dict[str, Any] | None = None) -> str:
    """One line: ``2 CPUs (Intel ...), 24 GB, no GPU; tensorflow 2.21.0, keras 3.15.1``."""
    m = info or machine()
    gpus = ", ".join(m["gpus"]) if m["gpus"] else "no GPU"
    tf = m["versions"].get("tensorflow") or m["versions"].get("tensorflow-cpu")
    versions = ", ".join(f"{k} {v}" for k, v in (("tensorflow", tf), ("keras", m["versions"].get("keras"))) if v)
    return f"{m['cpus']} CPUs ({m['cpu']}), {m['memory_gb']} GB, {gpus}; Python {m['python']}, {versions}"


def peak_rss_mb() -> float:
    """Peak resident memory (MiB) of this process, or of its largest child process when that is
    larger (worker processes of a ``use_multiprocessing`` dataset)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)  # KiB on Linux


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """:func:`bratslib.viz.markdown_text` with the columns that hold only numbers right-aligned."""
    from bratslib.viz import markdown_text

    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(header))]
    return markdown_text(header, rows, numeric=numeric)


#: Significant digits :func:`rounded` keeps: a Dice of 0.74560 or 9.4340 s, not 16 digits of float
#: noise (a report that keeps every case of every run stays small in the repository).
JSON_DIGITS = 5


def rounded(value: Any, digits: int = JSON_DIGITS) -> Any:
    """``value`` with every float in it (nested in dicts, lists and tuples) rounded to ``digits``
    significant digits; other values as they are."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def write_report(out: str | os.PathLike, name: str, title: str, table: str, results: Any, argv: Sequence[str] | None,
                 notes: str = "", earlier: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<out>/<name>.md`` (title, machine, command, table, notes) and ``<out>/<name>.json``.

    ``earlier``: a report read back from its ``.json``, whose machine, time, command and notes
    are kept (the table of an earlier measurement drawn again), instead of this machine and now.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if earlier is not None:
        info, when, command = earlier["machine"], earlier["measured"], earlier["command"]
        notes = notes or earlier.get("notes", "")
    else:
        info = machine()
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(argv[0]), *argv[1:]])
    md = (f"**{title}.**  \nMeasured {when} on {machine_summary(info)}.  \nCommand: `{command}`\n\n{table}\n"
          + (f"\n{notes}\n" if notes else ""))
    md_path, json_path = out / f"{name}.md", out / f"{name}.json"
    md_path.write_text(md)
    json_path.write_text(json.dumps({"title": title, "measured": when, "command": command, "machine": info,
                                     **({"notes": notes} if notes else {}), "results": results}, indent=1) + "\n")
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return md_path, json_path


def epoch_rates(dataset, epochs: int, max_batches: int | None = None) -> list[float]:
    """Samples per second of each of ``epochs`` epochs of a ``keras.utils.PyDataset``, read as
    ``model.fit`` reads it: through Keras' ``PyDatasetAdapter``, with the workers and queue of
    the dataset's settings.  ``max_batches`` cuts each epoch short."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(dataset, shuffle=False)
    rates = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        adapter.on_epoch_begin()
        for i, (x, *_rest) in enumerate(adapter.get_numpy_iterator()):
            n += x.shape[0]
            if max_batches is not None and i + 1 >= max_batches:
                break
        adapter.on_epoch_end()
        rates.append(n / (time.perf_counter() - start))
    return rates


#: The prefix of the one line of JSON a benchmark row prints in its own process.
ROW_PREFIX = "ROW "


def print_row(row: dict) -> None:
    """What a row's process prints for :func:`run_row`."""
    print(ROW_PREFIX + json.dumps(row))


def run_row(cmd: Sequence[str]) -> dict:
    """Run one benchmark row in a fresh Python process (so that its memory and its TensorFlow
    are its own); returns the row it printed with :func:`print_row`.

    Raises:
        RuntimeError: the process failed or printed no row; the message ends with its stderr.
    """
    done = subprocess.run(list(cmd), capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [x for x in done.stdout.splitlines() if x.startswith(ROW_PREFIX)]
    if done.returncode or not lines:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    return json.loads(lines[0][len(ROW_PREFIX):])


def rerender(json_path: str | os.PathLike, table_of) -> int:
    """``--render JSON``: rewrite the ``.md`` of an earlier report from its ``.json``, the table
    drawn again by ``table_of(results) -> (header, rows)``; returns the exit code 0."""
    path = Path(json_path)
    report = json.loads(path.read_text())
    write_report(path.parent, path.stem, report["title"], markdown_table(*table_of(report["results"])),
                 report["results"], None, earlier=report)
    return 0
