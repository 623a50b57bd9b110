"""The project's packaging stays consistent: ranges, lock, table of contents, committed notebooks.

* ``pyproject.toml`` declares ranges (Colab and Kaggle bring their own versions), Python 3.10
  to 3.13, an SPDX licence, every package the library imports, and TensorFlow only as the plain
  ``tensorflow`` distribution (a preinstalled one satisfies it, none is overlaid);
* ``constraints.txt`` pins every declared package within its range (the Makefile, ``.ci/run``
  and ``environment.yml`` install from it);
* each chapter's install cell is the same and matches the command of the README and
  ``book/real_data.md``;
* ``_toc.yml`` lists only files that exist, and every notebook under ``notebooks/``;
* committed notebooks carry no outputs and exactly one cell tagged ``parameters``;
* ``_config.yml`` builds from executed notebooks and loads plotly.js locally.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bratslib.book import missing_toc_entries, toc_entries, toc_files

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
EXTRAS_IN_ENVIRONMENT = ("cpu", "book", "test")
#: import name -> distribution, where they differ
DISTRIBUTION_OF = {"yaml": "pyyaml", "IPython": "ipython", "pennylane_lightning": "pennylane"}
#: the two lines of the documented Colab / Kaggle install (README, book/real_data.md)
INSTALL_LINES = ("pip list --format=freeze > /tmp/preinstalled.txt",
                 'pip install -c /tmp/preinstalled.txt "bratslib @ git+https://github.com/brats-book/brats-book"')


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _requirements(*extras: str) -> list[Requirement]:
    project = _pyproject()["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_dependencies_are_ranges_for_python_3_10_to_3_13():
    project = _pyproject()["project"]
    exact = [str(r) for r in _requirements(*project["optional-dependencies"]) if any(s.operator == "==" for s in r.specifier)]
    assert not exact, f"pyproject.toml: declare ranges, the exact versions belong in constraints.txt: {exact}"
    python = project["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert all(f"3.{minor}" in SpecifierSet(python) for minor in (10, 11, 12, 13)), python
    assert isinstance(project["license"], str) and project["license"] == "MIT", "an SPDX licence string"


def test_tensorflow_is_the_plain_distribution():
    """tensorflow-cpu over a preinstalled tensorflow breaks both (same package folder)."""
    extras = _pyproject()["project"]["optional-dependencies"]
    names = {canonicalize_name(Requirement(r).name) for reqs in extras.values() for r in reqs}
    assert "tensorflow-cpu" not in names
    assert {canonicalize_name(Requirement(r).name) for r in extras["cpu"]} == {"tensorflow"}
    assert "tensorflow-cpu" not in _constraints()


def test_every_imported_package_is_declared():
    declared = {canonicalize_name(r.name) for r in _requirements()}
    optional = {canonicalize_name(r.name) for r in _requirements("cpu", "book")}
    stdlib = set(sys.stdlib_module_names)
    missing = {}
    for path in (ROOT / "bratslib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top in ("bratslib", "__future__"):
                    continue
                dist = canonicalize_name(DISTRIBUTION_OF.get(top, top))
                if dist not in declared | optional:
                    missing.setdefault(dist, str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_constraints_pin_every_declared_package_within_its_range():
    pins = _constraints()
    problems = []
    for req in _requirements(*EXTRAS_IN_ENVIRONMENT):
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name}: not pinned in constraints.txt")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} outside pyproject.toml's {req.specifier}")
        for extra in req.extras:  # tensorflow[and-cuda] and the like only in the gpu extra
            problems.append(f"{req}: extras are not installed in CI")
    assert not problems, "constraints.txt and pyproject.toml disagree:\n  " + "\n  ".join(problems)


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    deps = env["dependencies"]
    plain = [d.replace(" ", "") for d in deps if isinstance(d, str)]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert "python=3.11" in plain and "pip" in plain
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    assert [str(p).strip() for p in pip_sections[0]] == ["-c constraints.txt", f"-e .[{','.join(EXTRAS_IN_ENVIRONMENT)}]"]


def test_makefile_and_ci_install_from_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -c constraints.txt -e" in makefile
    assert re.search(r"^\$\(VENV_STAMP\): pyproject\.toml constraints\.txt$", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make test-hosted" in ci


def _install_cells() -> dict[str, str]:
    cells = {}
    for path in NOTEBOOKS:
        tagged = [c for c in nbformat.read(path, as_version=4).cells if "install" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'install', found {len(tagged)}"
        cells[path.name] = tagged[0].source
    return cells


def test_every_chapter_starts_with_the_same_install_cell():
    cells = _install_cells()
    assert len(set(cells.values())) == 1, "the install cells differ between chapters"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "install" in first_code.metadata.get("tags", []), f"{path.name}: the install cell must come first"
    source = next(iter(cells.values()))
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f'"git+{repository}"' in source, "the install cell must install from _config.yml's repository"
    # the same command as the documentation: pip's constraints are the frozen list of what is installed
    assert '"list", "--format=freeze"' in source and '"install", "-c", "/tmp/preinstalled.txt"' in source
    assert 'find_spec("bratslib") is None' in source


@pytest.mark.parametrize("page", ["README.md", "book/real_data.md"])
def test_documentation_gives_the_install_command(page: str):
    text = (ROOT / page).read_text()
    for line in INSTALL_LINES:
        assert line in text, f"{page}: the documented install must read {line!r}"


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


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in {"02", "03", "04", "05", "06", "07", "08"}],
                         ids=lambda p: p.name)
def test_every_model_chapter_ends_with_exercises(path: Path):
    last = nbformat.read(path, as_version=4).cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Exercises"), f"{path.name}: end with '## Exercises'"
    items = re.findall(r"^\d+\. ", last.source, flags=re.M)
    assert len(items) >= 3, f"{path.name}: at least three exercises, found {len(items)}"
