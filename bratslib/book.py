"""Executing the book's notebooks and building the HTML book (what ``make book`` runs).

The committed notebooks in ``notebooks/`` carry no outputs.  Building the book is two steps:

1. :func:`execute_notebooks` runs every notebook listed in ``_toc.yml`` with papermill,
   injecting parameters (the data folder, the profile), into ``build/executed/`` at the same
   relative paths.  Beside each executed copy it stores a fingerprint of what the run
   depended on (the notebook, the parameters, the bratslib sources, ``pyproject.toml`` and any
   extra input file such as the synthetic data set's manifest); a later run re-executes only
   notebooks whose fingerprint changed or whose last run failed.  A notebook that reads
   other notebooks' results names them in its metadata (``bratslib.needs``, see
   :func:`notebook_needs`): it starts after them, and their fingerprints are part of its own,
   so re-executing a chapter re-executes the pages that show its numbers.  With ``jobs=2``
   two notebooks run at a time, each kernel on its share of the CPU cores.  A notebook that fails
   raises :class:`BookExecutionError`, which names the notebook, the failing cell and the
   exception; the executed copy, traceback included, is kept for inspection.
2. :func:`stage_and_build` copies ``_config.yml``, ``_toc.yml``, ``book/`` and the executed
   notebooks into ``build/site/``, adds a local copy of plotly.js to ``_static/``, and runs
   ``jupyter-book build`` on it (execution off; warnings are errors).

``python -m bratslib book execute|build`` is the command-line face of both.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from bratslib.results import NOT_IN_RUN_IDENTITY

log = logging.getLogger(__name__)

#: Suffixes tried, in order, for a ``_toc.yml`` entry given without one.
TOC_SUFFIXES: tuple[str, ...] = (".ipynb", ".md", ".rst")

#: Where the benchmarks write their reports (``--out``); staged with the book.
BENCHMARK_REPORTS = Path("benchmarks/results")

#: Suffix of the fingerprint file stored beside each executed notebook.
FINGERPRINT_SUFFIX = ".inputs.json"

#: Environment of the kernels that execute the book's notebooks.
BOOK_ENVIRONMENT: dict[str, str] = {
    "BRATSLIB_BOOK_BUILD": "1",           # bratslib.viz: figures as HTML for the book
    "TF_CPP_MIN_LOG_LEVEL": "2",          # TensorFlow: errors only, no info/warning spam
    "TQDM_DISABLE": "1",                  # no progress bars (widgets) in a static page
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # no debugger warning from every kernel start
    "PYTHONHASHSEED": "0",
}


#: Output mime types that the built book cannot show (no JavaScript for them on the page).
_INVISIBLE_MIME = {
    "application/vnd.plotly.v1+json": "a plotly figure without HTML: `import bratslib.viz` before showing figures",
    "application/vnd.jupyter.widget-view+json": "an ipywidget, which a static page cannot show",
}


# ----------------------------------------------------------------------------- table of contents


def _load_yaml(path: Path) -> Any:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def toc_entries(toc_path: str | os.PathLike) -> list[str]:
    """Every ``file`` entry of a jb-book ``_toc.yml`` (the root first), as written there."""
    toc = _load_yaml(Path(toc_path))
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{toc_path}: not a jb-book table of contents (no 'root' entry)")
    entries = [str(toc["root"])]

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "file" in node:
                entries.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    walk(node[key])

    walk({k: v for k, v in toc.items() if k in ("parts", "chapters", "sections")})
    return entries


def resolve_toc_entry(root: str | os.PathLike, entry: str) -> Path | None:
    """The file a toc entry refers to (suffix optional, relative to ``root``), or None."""
    path = Path(root) / entry
    if path.suffix in TOC_SUFFIXES:
        return path if path.is_file() else None
    for suffix in TOC_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def missing_toc_entries(toc_path: str | os.PathLike) -> list[str]:
    """The entries of ``toc_path`` that name no existing file."""
    root = Path(toc_path).parent
    return [e for e in toc_entries(toc_path) if resolve_toc_entry(root, e) is None]


def toc_files(toc_path: str | os.PathLike) -> list[Path]:
    """The files of the book, in toc order.  Raises FileNotFoundError naming missing entries."""
    root = Path(toc_path).parent
    missing = missing_toc_entries(toc_path)
    if missing:
        raise FileNotFoundError(f"{toc_path} lists files that do not exist: {', '.join(missing)}")
    return [resolve_toc_entry(root, e) for e in toc_entries(toc_path)]  # type: ignore[misc]


def notebooks_in_toc(toc_path: str | os.PathLike) -> list[Path]:
    """The notebooks (``.ipynb``) of the book, in toc order."""
    return [p for p in toc_files(toc_path) if p.suffix == ".ipynb"]


# ----------------------------------------------------------------------------- fingerprints


def library_sources() -> list[Path]:
    """The bratslib source files whose changes re-execute the notebooks: all but
    :data:`bratslib.results.NOT_IN_RUN_IDENTITY` (modules that do not run inside them)."""
    package = Path(__file__).resolve().parent
    return sorted(
        p for p in package.rglob("*.py")
        if "__pycache__" not in p.parts and p.relative_to(package).as_posix() not in NOT_IN_RUN_IDENTITY
    )


def fingerprint(notebook: Path, parameters: Mapping[str, Any], inputs: Iterable[Path] = (),
                needs: Iterable[str] = ()) -> str:
    """A hash of everything an executed notebook depends on (see the module docstring);
    ``needs``: the fingerprints of the notebooks whose results it reads."""
    h = hashlib.sha256(b"bratslib-book-fingerprint-v1\0")

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    add("notebook", Path(notebook).read_bytes())
    add("parameters", json.dumps(dict(parameters), sort_keys=True, default=str).encode())
    package = Path(__file__).resolve().parent
    for src in library_sources():
        add("bratslib/" + src.relative_to(package).as_posix(), src.read_bytes())
    for extra in inputs:
        extra = Path(extra)
        add(f"input:{extra}", extra.read_bytes() if extra.is_file() else b"<missing>")
    for digest in needs:
        add("needs", digest.encode())
    return h.hexdigest()


def notebook_needs(notebook: str | os.PathLike) -> list[str]:
    """The notebooks whose results ``notebook`` reads, by name without suffix (``"02_unet2d"``,
    in the same folder): its metadata's ``bratslib.needs`` list (none when absent).

    Chapter 3 sets its 3-D U-Net beside chapter 2's run, the results chapter reads every
    chapter's: such a notebook must run after those it reads, and again when they do."""
    meta = json.loads(Path(notebook).read_text(encoding="utf-8")).get("metadata", {})
    needs = meta.get("bratslib", {}).get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise ValueError(f"{notebook}: metadata bratslib.needs must be a list of notebook names, got {needs!r}")
    return list(needs)


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_environment(jobs: int) -> dict[str, str]:
    """Environment that gives each of ``jobs`` kernels running at once its share of the cores
    (TensorFlow's intra- and inter-op pools, OpenMP); empty for one job (TensorFlow's defaults).

    Measured on 2 cores (bf16 CPU): a chapter-2 U-Net step on one thread takes 1.5 times as
    long as on two, so two kernels of one thread each train 1.33 times as many samples per
    second as one kernel of two (ResNet50 U-Net: 1.25 times)."""
    if jobs <= 1:
        return {}
    threads = str(max(1, cpu_cores() // jobs))
    return {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads, "OMP_NUM_THREADS": threads}


def _fingerprint_file(executed: Path) -> Path:
    return executed.with_name(executed.name + FINGERPRINT_SUFFIX)


# ----------------------------------------------------------------------------- execution


@dataclass
class NotebookFailure:
    """Why one notebook failed.

    Attributes:
        notebook: the committed notebook.
        executed: its executed copy, kept with the traceback for inspection.
        cell: 1-based number of the failing cell in the committed notebook (markdown cells
            counted), or None when the failure is not tied to a cell (the kernel died, say).
        exec_count: the cell's execution count in the executed copy (``In [n]``).
        ename, evalue: the exception's type and message.
        source: the failing cell's source.
        line: the line of the cell that raised (1-based), when the traceback says.
    """

    notebook: Path
    executed: Path
    cell: int | None
    exec_count: int | None
    ename: str
    evalue: str
    source: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = "" if self.cell is None else f" in cell {self.cell}" + (
            f", line {self.line}" if self.line else "") + (
            f" (In [{self.exec_count}] in the executed copy)" if self.exec_count is not None else "")
        lines = [f"{self.notebook}: failed{where}: {self.ename}: {self.evalue}"]
        src = self.source.splitlines()
        # up to 8 lines of the cell, around the failing line when it is known
        first = max(0, min((self.line or 1) - 4, len(src) - 8))
        if first > 0:
            lines.append("    | ...")
        for n, text in enumerate(src[first:first + 8], start=first + 1):
            lines.append(f"  {'>' if n == self.line else ' '} | {text}")
        if first + 8 < len(src):
            lines.append(f"    | ... ({len(src) - first - 8} more lines)")
        lines.append(f"  executed copy with the full output: {self.executed}")
        return "\n".join(lines)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failing_line(traceback: list[str] | None) -> int | None:
    """The line of the cell that raised, from IPython's traceback ("Cell In[4], line 7")."""
    for entry in traceback or []:
        m = re.search(r"Cell In\[\d*\], line (\d+)", _ANSI.sub("", entry))
        if m:
            return int(m.group(1))
    return None


class BookExecutionError(RuntimeError):
    """One or more notebooks failed; ``failures`` says which, where and why."""

    def __init__(self, failures: list[NotebookFailure], runs: list["NotebookRun"]):
        self.failures, self.runs = failures, runs
        n = len(failures)
        super().__init__(f"{n} notebook{'s' if n != 1 else ''} failed:\n" + "\n".join(map(str, failures)))


@dataclass
class NotebookRun:
    """What happened to one notebook: ``status`` is "executed", "skipped" or "failed"."""

    notebook: Path
    executed: Path
    status: str
    seconds: float = 0.0
    failure: NotebookFailure | None = field(default=None, repr=False)


@contextlib.contextmanager
def book_environment(extra: Mapping[str, str] | None = None) -> Iterator[None]:
    """Set :data:`BOOK_ENVIRONMENT` (and ``extra``) for the kernels started inside."""
    changes = {**BOOK_ENVIRONMENT, **(extra or {})}
    saved = {k: os.environ.get(k) for k in [*changes, "MPLBACKEND"]}
    try:
        os.environ.update(changes)
        # A non-interactive backend (MPLBACKEND=Agg, as test runs set) would hide inline plots.
        if "inline" not in os.environ.get("MPLBACKEND", "inline"):
            del os.environ["MPLBACKEND"]
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cell_number(notebook: Path, source: str | None, cell_index: int | None) -> int | None:
    """1-based number, in the committed notebook, of the cell papermill reports.

    ``cell_index`` counts the cells of the executed notebook, where papermill's
    injected-parameters cell follows the ``parameters`` cell (or comes first).
    """
    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    if source is not None:
        matches = [i for i, c in enumerate(cells) if c.source == source]
        if len(matches) == 1:
            return matches[0] + 1
    if cell_index is None or cell_index < 0:
        return None
    params = next((i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
    return (cell_index if cell_index <= params else cell_index - 1) + 1


def _invisible_outputs(executed: Path, notebook: Path, name: Path) -> NotebookFailure | None:
    """A failure for the first output the book could not show, if any (``name``: how to call it)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            for mime, why in _INVISIBLE_MIME.items():
                if mime in data and not (mime == "application/vnd.plotly.v1+json" and "text/html" in data):
                    return NotebookFailure(
                        name, executed, _cell_number(notebook, cell.source, None), cell.get("execution_count"),
                        "InvisibleOutput", f"the cell outputs {why}", cell.source,
                    )
    return None


def _declared(notebook: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The ``parameters`` that ``notebook`` declares in its ``parameters`` cell.

    A book-wide parameter (the profile, say) goes only to the notebooks that use it.  A
    notebook without a ``parameters`` cell gets them all (papermill puts them first).
    """
    import papermill as pm

    try:
        declared = pm.inspect_notebook(str(notebook))
    except Exception:  # an unparsable parameters cell: let papermill inject everything
        declared = {}
    if not declared:
        return dict(parameters)
    return {k: v for k, v in parameters.items() if k in declared}


def _execute_one(nb: Path, executed: Path, rel: Path, passed: Mapping[str, Any], kernel_name: str,
                 timeout: float | None, environment: Mapping[str, str]) -> tuple[NotebookFailure | None, float]:
    """Execute one notebook with papermill: ``(failure or None, seconds)`` (a worker process's task)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    start = time.perf_counter()
    failure = None
    try:
        with book_environment(environment):
            pm.execute_notebook(
                str(nb), str(executed), parameters=dict(passed), kernel_name=kernel_name, cwd=str(nb.parent),
                progress_bar=False, log_output=False, request_save_on_cell_execute=True,
                execution_timeout=timeout,
            )
        failure = _invisible_outputs(executed, nb, rel)
    except PapermillExecutionError as e:
        failure = NotebookFailure(rel, executed, _cell_number(nb, e.source, e.cell_index), e.exec_count,
                                  e.ename, e.evalue, e.source or "", _failing_line(e.traceback))
    except Exception as e:  # the kernel died, a cell timed out, the notebook is unreadable ...
        failure = NotebookFailure(rel, executed, None, None, type(e).__name__, str(e).strip())
    return failure, time.perf_counter() - start


@dataclass
class _Planned:
    index: int
    notebook: Path
    rel: Path
    executed: Path
    parameters: dict[str, Any]
    digest: str
    needs: list[Path]


def execute_notebooks(
    notebooks: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    root: str | os.PathLike = ".",
    parameters: Mapping[str, Any] | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    force: bool = False,
    keep_going: bool = False,
    kernel_name: str = "python3",
    timeout: float | None = None,
    report: Callable[[str], None] | None = print,
    jobs: int = 1,
) -> list[NotebookRun]:
    """Execute ``notebooks`` with papermill into ``out_dir``, skipping those up to date.

    Args:
        notebooks: the committed notebooks, e.g. ``notebooks_in_toc("_toc.yml")``, in the
            order they run; a notebook's needs (:func:`notebook_needs`) must come before it.
        out_dir: where the executed copies go, at their paths relative to ``root``.
        root: the repository root.
        parameters: injected by papermill after each notebook's ``parameters`` cell; a
            notebook gets only those its ``parameters`` cell declares (all when it has none).
        inputs: further files whose content the results depend on (the data set's manifest).
            ``root/pyproject.toml`` is always one.
        force: execute even the notebooks that are up to date.
        keep_going: after a failure, execute the remaining notebooks before raising (but not
            those that need a failed one: they fail as ``NotExecuted``).
        kernel_name: the Jupyter kernel.
        timeout: seconds allowed per cell (None: no limit).
        report: called with one line per notebook (None: silent).
        jobs: how many notebooks run at once, each in its own worker process with its share
            of the CPU cores (:func:`thread_environment`); a notebook starts once the notebooks
            it needs have run, otherwise in the given order.  1 (the default) runs them one
            after the other in this process.

    Each notebook runs with its own folder as working directory and with
    :data:`BOOK_ENVIRONMENT` set.  A notebook whose output the book cannot show (a plotly
    figure shown before ``import bratslib.viz``, an ipywidget) counts as failed.

    Returns:
        one :class:`NotebookRun` per notebook that was executed, skipped or failed, in the
        given order.

    Raises:
        BookExecutionError: a notebook failed (after the others ran, with ``keep_going``).
        ValueError: a notebook needs one that comes after it in ``notebooks``.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    root, out_dir = Path(root).resolve(), Path(out_dir).resolve()
    parameters = dict(parameters or {})
    inputs = [Path(p) for p in inputs]
    if (root / "pyproject.toml").is_file():
        inputs.append(root / "pyproject.toml")
    say = report or (lambda line: None)
    notebooks = [Path(nb).resolve() for nb in notebooks]
    listed = {nb.with_suffix(""): nb for nb in notebooks}
    digests: dict[Path, str] = {}
    plan: list[_Planned] = []
    for i, nb in enumerate(notebooks):
        rel = nb.relative_to(root) if nb.is_relative_to(root) else Path(nb.name)
        needs = [listed[nb.parent / name] for name in notebook_needs(nb) if nb.parent / name in listed]
        later = [n.name for n in needs if n not in digests]
        if later:
            raise ValueError(f"{rel} needs {', '.join(later)}, which come(s) after it: list the notebooks it reads first")
        passed = _declared(nb, parameters)
        digest = fingerprint(nb, passed, inputs, [digests[n] for n in needs])
        digests[nb] = digest
        plan.append(_Planned(i, nb, rel, out_dir / rel, passed, digest, needs))

    environment = thread_environment(jobs)
    runs: dict[Path, NotebookRun] = {}
    failures: list[NotebookFailure] = []
    pending = list(plan)
    running: dict[Any, _Planned] = {}
    pool = None
    if jobs > 1:
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))

    def tag(item: _Planned) -> str:
        return f"[{item.index + 1}/{len(plan)}] {item.rel}"

    def finish(item: _Planned, failure: NotebookFailure | None, seconds: float) -> None:
        if failure is not None:
            say(f"{tag(item)}: FAILED after {seconds:.1f} s")
            failures.append(failure)
            runs[item.notebook] = NotebookRun(item.notebook, item.executed, "failed", seconds, failure)
            return
        _fingerprint_file(item.executed).write_text(json.dumps({
            "fingerprint": item.digest, "notebook": item.rel.as_posix(), "parameters": item.parameters,
            "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }, indent=1, default=str) + "\n")
        say(f"{tag(item)}: executed in {seconds:.1f} s")
        runs[item.notebook] = NotebookRun(item.notebook, item.executed, "executed", seconds)

    def up_to_date(item: _Planned) -> bool:
        stamp = _fingerprint_file(item.executed)
        if force or not item.executed.is_file() or not stamp.is_file():
            return False
        try:
            return json.loads(stamp.read_text())["fingerprint"] == item.digest
        except (ValueError, KeyError):
            return False

    try:
        while pending or running:
            for item in list(pending):
                if failures and not keep_going:
                    break
                states = [runs[n].status if n in runs else None for n in item.needs]
                if "failed" in states:
                    pending.remove(item)
                    bad = [n.name for n, st in zip(item.needs, states) if st == "failed"]
                    failure = NotebookFailure(item.rel, item.executed, None, None, "NotExecuted",
                                              f"it reads the results of {', '.join(bad)}, which failed")
                    failures.append(failure)
                    runs[item.notebook] = NotebookRun(item.notebook, item.executed, "failed", 0.0, failure)
                    continue
                if None in states:
                    continue  # a notebook it needs has not run yet
                if up_to_date(item):
                    pending.remove(item)
                    say(f"{tag(item)}: up to date, skipped")
                    runs[item.notebook] = NotebookRun(item.notebook, item.executed, "skipped")
                    continue
                if len(running) >= jobs:
                    break
                pending.remove(item)
                _fingerprint_file(item.executed).unlink(missing_ok=True)
                item.executed.parent.mkdir(parents=True, exist_ok=True)
                say(f"{tag(item)}: executing ...")
                task = (item.notebook, item.executed, item.rel, item.parameters, kernel_name, timeout, environment)
                if pool is None:
                    finish(item, *_execute_one(*task))
                    continue
                try:
                    running[pool.submit(_execute_one, *task)] = item
                except concurrent.futures.process.BrokenProcessPool as e:  # a worker died (out of memory?)
                    finish(item, NotebookFailure(item.rel, item.executed, None, None, type(e).__name__, str(e)), 0.0)
            if not running:
                if failures and not keep_going:
                    break
                if pending and all(any(n not in runs for n in item.needs) for item in pending):
                    raise RuntimeError(f"no notebook can start: {', '.join(str(i.rel) for i in pending)}")  # a bug
                continue
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                try:
                    failure, seconds = future.result()
                except Exception as e:  # the worker process died
                    failure, seconds = NotebookFailure(item.rel, item.executed, None, None, type(e).__name__,
                                                       str(e).strip()), 0.0
                finish(item, failure, seconds)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise BookExecutionError(failures, [runs[item.notebook] for item in plan if item.notebook in runs])
    return [runs[item.notebook] for item in plan if item.notebook in runs]


# ----------------------------------------------------------------------------- staging and building


def plotly_js() -> Path:
    """The plotly.min.js shipped with the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: plotly.min.js not found in the installed plotly package")
    return path


#: stderr lines that TensorFlow's C++ runtime prints when it starts, before any Python logging
#: setting applies (absl's banner, oneDNN and CPU-feature notes): dropped from the book's pages.
_RUNTIME_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} \d+:\d+:\d+\.\d+ +\d+ \S+:\d+\] .*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.)$"
)


def _page_notebook(executed: Path) -> bytes:
    """The executed notebook as the book shows it: papermill's injected-parameters cell
    removed from the page (it holds build-machine paths; each chapter says which data it
    used), and TensorFlow's start-up log lines (:data:`_RUNTIME_NOISE`) dropped from stderr.
    The executed copy itself keeps everything, for inspection.
    """
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                kept = [line for line in output["text"].splitlines(keepends=True) if not _RUNTIME_NOISE.match(line.rstrip("\n"))]
                if not "".join(kept).strip():
                    continue
                output["text"] = "".join(kept)
            outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = outputs
    return nbformat.writes(nb).encode("utf-8")


#: The book's style sheet, staged into ``_static/`` beside plotly.js: tables fit the article's column.
BOOK_CSS = Path("book/static/brats.css")


def stage_book(root: str | os.PathLike, executed_dir: str | os.PathLike, site_dir: str | os.PathLike) -> list[Path]:
    """Copy the book's sources and executed notebooks into ``site_dir``; return the files.

    ``site_dir`` receives ``_config.yml``, ``_toc.yml``, ``book/``, every file of the toc
    (notebooks from ``executed_dir``), the benchmark reports (``benchmarks/results/*.md``, which
    the performance page includes), ``_static/plotly.min.js`` and the style sheet
    :data:`BOOK_CSS` (as ``_static/brats.css``).  Files whose content did
    not change are left alone (so Sphinx rebuilds only what changed); files no longer part of
    the book are removed (the ``_build`` folder excepted).

    Raises:
        FileNotFoundError: a toc file is missing, or a notebook has no successful executed copy.
    """
    root, executed_dir, site_dir = Path(root).resolve(), Path(executed_dir).resolve(), Path(site_dir).resolve()
    toc = root / "_toc.yml"
    wanted: dict[Path, Callable[[], bytes]] = {}
    for name in ("_config.yml", "_toc.yml"):
        wanted[Path(name)] = (root / name).read_bytes
    for path in sorted((root / "book").rglob("*")) if (root / "book").is_dir() else []:
        if path.is_file() and not {"_build", ".ipynb_checkpoints", "__pycache__"} & set(path.parts):
            wanted[path.relative_to(root)] = path.read_bytes
    # the benchmarks' reports, which the performance page includes (not pages of their own)
    for path in sorted((root / BENCHMARK_REPORTS).glob("*.md")):
        wanted[path.relative_to(root)] = path.read_bytes
    for path in toc_files(toc):
        rel = path.relative_to(root)
        if path.suffix == ".ipynb":
            executed = executed_dir / rel
            if not (executed.is_file() and _fingerprint_file(executed).is_file()):
                raise FileNotFoundError(
                    f"{rel}: no successful executed copy in {executed_dir} "
                    "(run `python -m bratslib book execute` or `make book` first)"
                )
            wanted[rel] = lambda executed=executed: _page_notebook(executed)
        else:
            wanted[rel] = path.read_bytes
    wanted[Path("_static/plotly.min.js")] = plotly_js().read_bytes
    css = root / BOOK_CSS
    if css.is_file():  # the book's style sheet (_config.yml's html_css_files)
        wanted[Path("_static") / css.name] = css.read_bytes

    site_dir.mkdir(parents=True, exist_ok=True)
    for rel, content in wanted.items():
        dst = site_dir / rel
        data = content()
        if not (dst.is_file() and dst.read_bytes() == data):
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
    for path in sorted(site_dir.rglob("*"), reverse=True):
        rel = path.relative_to(site_dir)
        if rel.parts[0] == "_build":
            continue
        if path.is_file() and rel not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return sorted(site_dir / rel for rel in wanted)


class BookBuildError(RuntimeError):
    """``jupyter-book build`` failed (warnings count as errors), or a page fetches from the network."""


#: What a page loads by itself when viewed: scripts, stylesheets, images, frames.
_LOADED_URL = re.compile(
    r"<(?:script|img|iframe|source|embed)\b[^>]*?\ssrc=[\"']((?:https?:)?//[^\"']+)"
    r"|<link\b(?=[^>]*\srel=[\"'](?:stylesheet|preload|modulepreload)[\"'])[^>]*?\shref=[\"']((?:https?:)?//[^\"']+)",
    re.IGNORECASE,
)


def network_loads(html_dir: str | os.PathLike) -> dict[str, list[str]]:
    """Pages of a built book that load something from the network when viewed, and what.

    Links the reader may follow (launch buttons, references) do not count.  MathJax is the
    usual culprit: Sphinx loads it from a CDN on every page that holds an equation.
    """
    html_dir = Path(html_dir)
    found: dict[str, list[str]] = {}
    for page in sorted(html_dir.rglob("*.html")):
        urls = sorted({a or b for a, b in _LOADED_URL.findall(page.read_text(encoding="utf-8", errors="replace"))})
        if urls:
            found[page.relative_to(html_dir).as_posix()] = urls
    return found


def build_html(site_dir: str | os.PathLike, out_dir: str | os.PathLike, *, strict: bool = True,
               fresh: bool = False, quiet: bool = False) -> Path:
    """Run ``jupyter-book build`` on ``site_dir``; return the folder of the HTML book.

    The HTML lands in ``out_dir/_build/html``.  With ``strict`` warnings are errors and
    missing references are warned about (``-W -n --keep-going``).  ``fresh`` rebuilds every
    page (``--all``).
    """
    site_dir, out_dir = Path(site_dir).resolve(), Path(out_dir).resolve()
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(site_dir), "--path-output", str(out_dir), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    if fresh:
        cmd.append("--all")
    if quiet:
        cmd.append("-q")
    proc = subprocess.run(cmd, cwd=site_dir, stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.STDOUT if quiet else None, text=True)
    if proc.returncode != 0:
        # Sphinx keeps the environment of the failed build: the next build would find "no
        # targets out of date" and pass without reporting the warnings again.  Forget it.
        shutil.rmtree(out_dir / "_build" / ".doctrees", ignore_errors=True)
        detail = f"\n{proc.stdout}" if quiet and proc.stdout else ""
        raise BookBuildError(f"jupyter-book build {site_dir} failed (exit {proc.returncode}){detail}")
    html = out_dir / "_build" / "html"
    if not (html / "index.html").is_file():
        raise BookBuildError(f"jupyter-book build finished but {html / 'index.html'} is missing")
    loads = network_loads(html)
    if loads:
        detail = "\n".join(f"  {page}: {', '.join(urls)}" for page, urls in loads.items())
        message = (f"pages of the book load from the network when viewed (the book must work offline):\n{detail}\n"
                   "  (MathJax: an equation or a LaTeX output on the page; serve a local MathJax via mathjax_path)")
        if strict:
            raise BookBuildError(message)
        print(f"warning: {message}", file=sys.stderr)
    return html


def stage_and_build(root: str | os.PathLike, executed_dir: str | os.PathLike, site_dir: str | os.PathLike,
                    out_dir: str | os.PathLike, *, strict: bool = True, fresh: bool = False,
                    quiet: bool = False) -> Path:
    """:func:`stage_book` then :func:`build_html`; returns the HTML folder."""
    stage_book(root, executed_dir, site_dir)
    return build_html(site_dir, out_dir, strict=strict, fresh=fresh, quiet=quiet)


__all__ = [
    "BOOK_ENVIRONMENT", "BookBuildError", "BookExecutionError", "NotebookFailure", "NotebookRun",
    "book_environment", "build_html", "execute_notebooks", "fingerprint", "library_sources",
    "missing_toc_entries", "network_loads", "notebooks_in_toc", "plotly_js", "resolve_toc_entry", "stage_and_build",
    "stage_book", "toc_entries", "toc_files",
]
