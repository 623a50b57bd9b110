"""Every chapter of the book, executed with papermill at a tiny size on synthetic data.

This is the chapters' smoke test: the same notebooks as ``make book``, through the same
``bratslib.book.execute_notebooks``, but on three synthetic cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bratslib.book import execute_notebooks, notebooks_in_toc
from bratslib.data.synth import write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebooks_in_toc(ROOT / "_toc.yml")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(out, n_cases=3, seed=0, progress=False)
    return out


def test_the_toc_lists_notebooks():
    assert NOTEBOOKS, "no notebook in _toc.yml"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_at_tiny_size(notebook: Path, tiny_data: Path, tmp_path: Path):
    parameters = {"data_dir": str(tiny_data), "n_cases": 3, "census_cases": 3, "seed": 0,
                  "cache_dir": str(tmp_path / "cache"), "profile": "tiny",
                  "results_dir": str(tmp_path / "results")}
    (run,) = execute_notebooks([notebook], tmp_path / "executed", root=ROOT, parameters=parameters, force=True, report=None)
    executed = json.loads(Path(run.executed).read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    # the chapter says which data its numbers come from
    text = json.dumps(executed)
    assert "synthetic" in text
