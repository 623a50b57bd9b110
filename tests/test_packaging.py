"""The project's packaging stays consistent: pins, table of contents, committed notebooks.

* ``environment.yml`` (conda users) repeats exactly the pins of ``pyproject.toml``'s
  dependencies and of its ``cpu``, ``book`` and ``test`` extras, plus ``-e .``;
* ``_toc.yml`` lists only files that exist, and every notebook under ``notebooks/``;
* committed notebooks carry no outputs and exactly one cell tagged ``parameters``;
* ``_config.yml`` builds from executed notebooks and loads plotly.js locally.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from bratslib.book import missing_toc_entries, toc_entries, toc_files

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
EXTRAS_IN_ENVIRONMENT = ("cpu", "book", "test")


def _normalise(requirement: str) -> str:
    """``Name_X [extra] == 1.0`` -> ``name-x[extra]==1.0`` (PEP 503 name, no spaces)."""
    requirement = re.sub(r"\s+", "", requirement)
    m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", requirement)
    assert m, f"cannot parse requirement {requirement!r}"
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() + m.group(2)


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _pyproject_pins() -> set[str]:
    project = _pyproject()["project"]
    pins = list(project["dependencies"])
    for extra in EXTRAS_IN_ENVIRONMENT:
        pins += project["optional-dependencies"][extra]
    return {_normalise(p) for p in pins}


def _environment() -> dict:
    with open(ROOT / "environment.yml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_pyproject_pins_are_exact():
    loose = [p for p in _pyproject_pins() if "==" not in p]
    assert not loose, f"pyproject.toml: pin these exactly (==): {loose}"


def test_environment_yml_repeats_pyproject_pins():
    env = _environment()
    deps = env["dependencies"]
    plain = [d for d in deps if isinstance(d, str)]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert "python=3.11" in [d.replace(" ", "") for d in plain], "environment.yml must pin python=3.11"
    assert "pip" in plain, "environment.yml must install pip"
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    pip = [str(p).strip() for p in pip_sections[0]]
    assert "-e ." in pip, "environment.yml must install the project itself (-e .)"
    env_pins = {_normalise(p) for p in pip if p != "-e ."}
    project_pins = _pyproject_pins()
    assert env_pins == project_pins, (
        "environment.yml and pyproject.toml disagree:\n"
        f"  only in pyproject.toml: {sorted(project_pins - env_pins)}\n"
        f"  only in environment.yml: {sorted(env_pins - project_pins)}"
    )


def test_toc_lists_only_existing_files():
    toc = ROOT / "_toc.yml"
    assert missing_toc_entries(toc) == [], "_toc.yml lists files that do not exist"
    data = yaml.safe_load(toc.read_text())
    assert data["format"] == "jb-book"
    assert data["root"] == "book/intro"


def test_toc_has_no_duplicates():
    entries = toc_entries(ROOT / "_toc.yml")
    assert len(entries) == len(set(entries)), f"_toc.yml lists a file twice: {entries}"


def test_every_notebook_is_in_the_toc():
    listed = {p.resolve() for p in toc_files(ROOT / "_toc.yml")}
    missing = [str(p.relative_to(ROOT)) for p in NOTEBOOKS if p.resolve() not in listed]
    assert not missing, f"notebooks not listed in _toc.yml (make book would not run them): {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; commit notebooks cleared"
    tagged = [i + 1 for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found cells {tagged}"
    assert nb.cells[tagged[0] - 1].cell_type == "code", f"{path.name}: the 'parameters' cell must be a code cell"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"


def test_book_config():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off", "notebooks arrive executed (make book); execution stays off"
    assert config["only_build_toc_files"] is True
    sphinx = config["sphinx"]["config"]
    assert sphinx["nb_render_markdown_format"] == "myst"
    assert "plotly.min.js" in sphinx["html_js_files"]
    assert "_static" in sphinx["html_static_path"]
    # the 4 MB library is copied at build time, never committed
    assert not (ROOT / "_static" / "plotly.min.js").exists()
    assert not (ROOT / "book" / "_static" / "plotly.min.js").exists()
    for bib in config.get("bibtex_bibfiles", []):
        assert (ROOT / bib).is_file(), f"_config.yml names a missing bibliography {bib}"


def test_ci_script():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable"
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert "make test" in text
