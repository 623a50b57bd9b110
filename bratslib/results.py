"""Results on disk: one folder per training run, written atomically, never overwritten.

Every number the book prints comes from a run folder, and a run folder says where it came
from::

    results/                      ($BRATSLIB_RESULTS, else ./results)
        unet2d-smoke-seed0/
            config.json           what was trained: model, preprocessing, training settings
            environment.json      package versions, git commit, Python, devices, start time
            data.json             the data's provenance (synthetic + seed, or real BraTS 2020)
            split.json            the case ids of train / val / test
            state.json            "training" (with the last finished epoch) or "finished"
            model.json            the network built: parameters, shapes, encoder weights actually used
            history.csv           one row per epoch: loss, metrics, learning rate
            checkpoints/          the last and the best epoch's model while training (to resume)
            model.keras           the model of the best validation epoch
            metrics.json          evaluation on whole test cases: summary and pooled Dice
            per_case.csv          the same, one row per test case

:func:`open_run` decides which folder a run goes to.  Its *identity* is a hash of the
configuration, the data provenance and the bratslib sources: a run with the same identity
is continued (or, if finished, reused); anything else gets a new folder (``name-2``,
``name-3``...), so no run ever silently replaces another one.  Every file is written to a
temporary name and renamed into place (:func:`bratslib.files.atomic_path`), so a killed
process leaves either the old file or the new one, never half of one.

Only this module writes results.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bratslib.files import atomic_path, copy_atomic, write_bytes_atomic

log = logging.getLogger(__name__)

#: Environment variable naming the results folder.
RESULTS_ENV = "BRATSLIB_RESULTS"

#: Packages whose versions every run records.
RECORDED_PACKAGES: tuple[str, ...] = (
    "bratslib", "keras", "tensorflow", "tensorflow-cpu", "numpy", "scipy", "nibabel", "pennylane", "plotly",
)

_LIBRARY = Path(__file__).resolve().parent

#: bratslib modules that never run inside training or evaluation (the book's build, the command
#: line's argument parsing): editing them changes no run's identity, and re-executes no notebook.
NOT_IN_RUN_IDENTITY: frozenset[str] = frozenset({"book.py", "__main__.py"})


def default_results_dir() -> Path:
    """``$BRATSLIB_RESULTS`` if set, else ``./results`` (relative to the working folder)."""
    return Path(os.environ.get(RESULTS_ENV) or "results").expanduser()


# ----------------------------------------------------------------------------- files


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _finite(obj: Any) -> Any:
    """NaN and infinities as None (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """``obj`` as indented JSON, atomically; numpy values are converted, NaN becomes null."""
    text = json.dumps(_finite(json.loads(json.dumps(obj, default=_json_default))), indent=1, sort_keys=False)
    return write_bytes_atomic(path, (text + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str] | None = None) -> Path:
    """Rows of dicts as CSV, atomically; the columns are the keys in first-seen order."""
    if fieldnames is None:
        fieldnames = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return write_bytes_atomic(path, buffer.getvalue().encode())


def _number(text: str) -> Any:
    if text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a CSV written by :func:`write_csv`, numbers parsed (empty cells: NaN)."""
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ----------------------------------------------------------------------------- provenance


def git_commit(folder: str | os.PathLike = _LIBRARY) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``folder``, or None."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}


def package_versions(names: Iterable[str] = RECORDED_PACKAGES) -> dict[str, str]:
    """Installed version of each named distribution (those not installed are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def devices() -> list[str]:
    """The accelerators TensorFlow sees (only if TensorFlow is already imported), e.g. ``["GPU:0 ..."]``."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return []
    found = []
    for d in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(d)
        found.append(f"{d.name} {details.get('device_name', '')}".strip())
    return found


def environment_info() -> dict[str, Any]:
    """What a results file records about the software and machine that produced it."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "gpus": devices(),
        "packages": package_versions(),
        "git": git_commit(),
        "library_hash": library_hash(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def library_hash() -> str:
    """A hash of the bratslib sources (all ``*.py`` under the package but
    :data:`NOT_IN_RUN_IDENTITY`): changes when the code that trains and evaluates does."""
    h = hashlib.sha256()
    for path in sorted(_LIBRARY.rglob("*.py")):
        if path.relative_to(_LIBRARY).as_posix() in NOT_IN_RUN_IDENTITY:
            continue
        h.update(str(path.relative_to(_LIBRARY)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- runs


class Run:
    """One run folder (see the module docstring for its files).

    Attributes:
        path: the folder; name: its name; config / data / split: what ``config.json``,
        ``data.json`` and ``split.json`` hold.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"{self.path} is not a bratslib run folder (no config.json)")
        self.name = self.path.name
        self.config: dict = read_json(self.path / "config.json")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r})"

    # files
    @property
    def data(self) -> dict:
        return read_json(self.path / "data.json")

    @property
    def split(self) -> dict[str, list[str]]:
        return read_json(self.path / "split.json")

    @property
    def environment(self) -> dict:
        return read_json(self.path / "environment.json")

    @property
    def state(self) -> dict:
        path = self.path / "state.json"
        return read_json(path) if path.is_file() else {"status": "new"}

    @property
    def status(self) -> str:
        """``"new"``, ``"training"`` or ``"finished"``."""
        return self.state["status"]

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def model_path(self) -> Path:
        """The model of the best validation epoch."""
        return self.path / "model.keras"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def history(self) -> list[dict[str, Any]]:
        """The rows of ``history.csv`` (empty before the first epoch ends)."""
        path = self.path / "history.csv"
        return read_csv(path) if path.is_file() else []

    @property
    def model_info(self) -> dict:
        """``model.json``: name, parameter counts, input and output shapes, and
        ``encoder_weights`` (the pre-trained weights actually loaded, e.g. ``"imagenet"`` or
        ``"random (...)"``, None for a network without a pre-trained encoder); ``{}`` if absent."""
        path = self.path / "model.json"
        return read_json(path) if path.is_file() else {}

    def metrics(self) -> dict | None:
        path = self.path / "metrics.json"
        return read_json(path) if path.is_file() else None

    def per_case(self) -> list[dict[str, Any]]:
        path = self.path / "per_case.csv"
        return read_csv(path) if path.is_file() else []

    # writing (each file atomically)
    def write_state(self, **state: Any) -> None:
        write_json(self.path / "state.json", state)

    def write_model_info(self, info: Mapping[str, Any]) -> None:
        write_json(self.path / "model.json", info)

    def write_history(self, rows: Sequence[Mapping[str, Any]]) -> None:
        write_csv(self.path / "history.csv", rows)

    def save_model(self, model, path: str | os.PathLike) -> Path:
        """``model.save`` to ``path`` (a ``.keras`` file in this run) through a temporary file."""
        with atomic_path(path, suffix=".keras") as tmp:
            model.save(tmp)
        return Path(path)

    def save_checkpoint(self, model, epoch: int, *, improved: bool, **state: Any) -> Path:
        """Checkpoint after ``epoch`` (0-based): the model with its optimizer state, and a
        copy of it as the best model so far when ``improved``.

        ``state.json`` is the commit point: it is written after both files and names them,
        and only then are older checkpoints removed, so a kill at any moment leaves a
        consistent pair that ``state.json`` names.
        """
        folder = self.checkpoint_dir
        last = self.save_model(model, folder / f"epoch-{epoch:04d}.keras")
        if improved:
            best = copy_atomic(last, folder / f"best-epoch-{epoch:04d}.keras")
        else:
            best = folder / self.state["best_checkpoint"]
        self.write_state(status="training", epoch=epoch, checkpoint=last.name, best_checkpoint=best.name, **state)
        for old in folder.glob("*.keras"):
            if old not in (last, best):
                old.unlink(missing_ok=True)
        return last

    def last_checkpoint(self) -> Path | None:
        """The checkpoint ``state.json`` names, if the run is training and it exists."""
        state = self.state
        if state["status"] != "training":
            return None
        path = self.checkpoint_dir / state["checkpoint"]
        return path if path.is_file() else None

    def finish(self, **state: Any) -> Path:
        """Copy the best checkpoint to ``model.keras``, mark the run finished, drop the
        checkpoints.  Returns the model's path."""
        current = self.state
        if current["status"] == "finished":
            return self.model_path
        if current["status"] != "training":
            raise RuntimeError(f"{self.path}: nothing trained yet, cannot finish the run")
        copy_atomic(self.checkpoint_dir / current["best_checkpoint"], self.model_path)
        keep = {k: current[k] for k in ("epoch", "best", "best_epoch", "monitor") if k in current}
        self.write_state(status="finished", **keep, **state)
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        return self.model_path

    def write_evaluation(self, metrics: Mapping[str, Any], per_case: Sequence[Mapping[str, Any]], *, name: str | None = None) -> Path:
        """Write ``metrics.json`` and ``per_case.csv`` into the run (``name=None``) or into
        ``evaluations/<name>/`` (further evaluations, e.g. on other data); an existing
        evaluation of that name is never replaced: a numbered folder is used instead."""
        if name is None:
            folder = self.path
            if (folder / "metrics.json").exists():
                raise FileExistsError(f"{folder / 'metrics.json'} exists: this run was evaluated already")
        else:
            folder = _free_folder(self.path / "evaluations", name)
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(folder / "per_case.csv", per_case)
        write_json(folder / "metrics.json", metrics)
        return folder


def _free_folder(parent: Path, name: str) -> Path:
    candidate, k = parent / name, 1
    while candidate.exists():
        k += 1
        candidate = parent / f"{name}-{k}"
    return candidate


#: What makes two data provenances "the same data" (for run identity and for collecting runs).
DATA_KEYS = ("kind", "n_cases", "seed", "folder")


def _identity(config: Mapping, data: Mapping, code: str) -> str:
    data_key = {k: data.get(k) for k in DATA_KEYS}
    blob = json.dumps([config, data_key, code], sort_keys=True, default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def open_run(
    name: str,
    config: Mapping[str, Any],
    data: Mapping[str, Any],
    split: Mapping[str, Sequence[str]],
    results_dir: str | os.PathLike | None = None,
) -> Run:
    """The run folder for this configuration: an existing one with the same identity
    (to resume, or to reuse when finished), else a new one.

    Args:
        name: the run's name, e.g. ``"unet2d-smoke-seed0"``; letters, digits, ``-_.``.
        config: everything that defines the run (JSON-serialisable).
        data: the data's provenance (:func:`bratslib.data.data_provenance`).
        split: the case ids of each split.
        results_dir: default :func:`default_results_dir`.

    The identity hashes ``config``, the data (kind, size, seed, folder) and the bratslib
    sources; ``name``, ``name-2``, ``name-3``... are tried in turn and the first folder with the
    same identity, or else the first free name, is used.  A new folder gets ``config.json``,
    ``environment.json``, ``data.json`` and ``split.json`` at once.
    """
    if not name or any(not (ch.isalnum() or ch in "-_.") for ch in name):
        raise ValueError(f"run name {name!r}: use letters, digits, '-', '_' and '.' only")
    root = Path(results_dir).expanduser() if results_dir is not None else default_results_dir()
    code = library_hash()
    identity = _identity(config, data, code)
    k = 1
    while True:
        path = root / (name if k == 1 else f"{name}-{k}")
        if not path.exists():
            break
        config_file = path / "config.json"
        if config_file.is_file() and read_json(config_file).get("identity") == identity:
            run = Run(path)
            if read_json(path / "split.json") != {s: list(ids) for s, ids in split.items()}:
                raise ValueError(f"{path}: same configuration but a different split of the cases; "
                                 "the data folder changed? Use another run name.")
            log.info("%s: continuing the run in %s (%s)", name, path, run.status)
            return run
        k += 1
    if k > 1:
        log.warning("%s exists with another configuration (or code); this run goes to %s", root / name, path)
        print(f"note: {root / name} holds a different configuration or code version; writing to {path.name}", file=sys.stderr)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        write_json(tmp / "config.json", {"name": path.name, "identity": identity, **config})
        write_json(tmp / "environment.json", environment_info())
        write_json(tmp / "data.json", data)
        write_json(tmp / "split.json", {s: list(ids) for s, ids in split.items()})
    return Run(path)


def _progress(run_dir: Path) -> tuple[int, int]:
    """(finished?, last epoch) of a run folder, for choosing the copy that is further along."""
    state_file = run_dir / "state.json"
    state = read_json(state_file) if state_file.is_file() else {}
    return int(state.get("status") == "finished"), int(state.get("epoch", -1))


def restore_runs(source: str | os.PathLike, results_dir: str | os.PathLike | None = None) -> list[str]:
    """Copy the run folders of ``source`` (an earlier session's results folder, possibly
    read-only, e.g. ``/kaggle/input/<notebook>/results``) into ``results_dir``, so that
    :func:`bratslib.training.train` continues them there.

    A run that is already in ``results_dir`` is replaced only when the copy in ``source`` is
    further along (finished, or a later epoch); nothing further along is ever overwritten.
    Each run is copied to a temporary folder first and then moved into place.

    Returns:
        the names of the runs copied.

    Raises:
        FileNotFoundError: ``source`` is not a folder.
    """
    source = Path(source).expanduser()
    if not source.is_dir():
        raise FileNotFoundError(f"resume_from={str(source)!r}: no such folder (on Kaggle: add the earlier "
                                "version's output as an input; it appears under /kaggle/input/)")
    root = Path(results_dir).expanduser() if results_dir is not None else default_results_dir()
    root.mkdir(parents=True, exist_ok=True)
    copied = []
    for run_dir in sorted(p for p in source.iterdir() if (p / "config.json").is_file()):
        target = root / run_dir.name
        if target.exists() and _progress(target) >= _progress(run_dir):
            continue
        with atomic_path(target) as tmp:
            shutil.copytree(run_dir, tmp)
            if target.exists():  # a run that is not as far along: moved away, then removed
                old = root / f".{run_dir.name}.{uuid.uuid4().hex[:8]}.old"
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
        copied.append(run_dir.name)
    return copied


def find_runs(prefix: str = "", results_dir: str | os.PathLike | None = None) -> list[Run]:
    """Run folders under the results folder whose name starts with ``prefix``, oldest first."""
    root = Path(results_dir).expanduser() if results_dir is not None else default_results_dir()
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if p.name.startswith(prefix) and (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: (r.path / "config.json").stat().st_mtime)
