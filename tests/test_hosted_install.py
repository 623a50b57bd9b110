"""Installing bratslib on Colab and on Kaggle changes nothing they ship, and a chapter runs there.

Each environment is rebuilt from its description in ``tests/hosted/``: a virtual environment
of the right Python (3.13 for Colab, 3.12 for Kaggle, from pyenv or the PATH) with the
versions those services preinstall of the packages that matter (TensorFlow, Keras, NumPy,
SciPy, pandas, numba, plotly, nibabel, requests, ...), for Colab with a stand-in for
google-colab's own pins.  Then bratslib is installed the documented way, from a wheel of this
checkout standing in for the repository URL:

* Kaggle: the two lines of the README run in a shell, ``pip`` being the environment's;
* Colab: the chapter's own first cell installs it (``BRATSLIB_SOURCE`` points it at the wheel),
  as it does when the launch button opens the notebook there.

Every package present before must be there afterwards at the same version, ``pip check`` must
be clean, and the chapter must execute at the ``tiny`` size with papermill, in a kernel of that
environment.  Marked ``hosted``: ``make test-hosted`` (several minutes), which ``.ci/run``
runs after ``make test``.  Each test writes a row of the summary table to
``build/hosted/<environment>.json``.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOSTED = ROOT / "tests" / "hosted"
README_URL = "git+https://github.com/brats-book/brats-book"

#: environment -> (Python version, extra local packages preinstalled, chapters executed)
ENVIRONMENTS = {
    "colab": ("3.13", [HOSTED / "google-colab-standin"], ["02_unet2d", "08_quantum_vs_classical"]),
    "kaggle": ("3.12", [], ["02_unet2d", "08_quantum_vs_classical"]),
}

pytestmark = [pytest.mark.hosted, pytest.mark.slow]


def find_python(version: str) -> str:
    """An interpreter of ``version`` ("3.13"): the newest under pyenv, else one on the PATH that
    runs (a pyenv shim of a version that is not active does not)."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"),
                        key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parents[1].name)])
    on_path = shutil.which(f"python{version}")
    if on_path and subprocess.run([on_path, "--version"], capture_output=True).returncode == 0:
        candidates.insert(0, on_path)
    if not candidates:
        pytest.fail(f"no Python {version}: install it (e.g. `pyenv install {version}`) to test the "
                    f"{'Colab' if version == '3.13' else 'Kaggle'}-like environment")
    return candidates[-1]


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise AssertionError(f"{cmd if isinstance(cmd, str) else ' '.join(map(str, cmd))} failed "
                             f"({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


def frozen(python: Path) -> dict[str, str]:
    """name -> version of everything installed (``pip list --format=freeze``)."""
    out = run([python, "-m", "pip", "list", "--format=freeze"]).stdout
    return dict(line.split("==", 1) for line in out.splitlines() if "==" in line)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout, built from a copy (the build leaves nothing in the repository)."""
    src = tmp_path_factory.mktemp("bratslib-src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "bratslib", src / "bratslib", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(out)])
    (built,) = out.glob("bratslib-*.whl")
    return built


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from bratslib.data.synth import write_synthetic_dataset

    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(out, n_cases=3, seed=0, progress=False)
    return out


def documented_install_lines() -> list[str]:
    """The install lines of the README's Colab / Kaggle section (the ``pip ...`` lines of its
    first bash block)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Colab and Kaggle"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.strip() for line in block.splitlines() if line.strip().startswith("pip ")]
    assert len(lines) == 2 and README_URL in lines[1], lines
    return lines


def kernel_for(python: Path, name: str, jupyter_path: Path) -> str:
    spec = jupyter_path / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python"}))
    return name


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_documented_install_changes_nothing_preinstalled_and_a_chapter_runs(environment, wheel, tiny_data, tmp_path,
                                                                           monkeypatch):
    import papermill as pm

    version, local_packages, chapters = ENVIRONMENTS[environment]
    started = time.monotonic()
    env = tmp_path / environment
    run([find_python(version), "-m", "venv", env])
    python = env / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", "-r", HOSTED / f"{environment}.txt", *local_packages])
    before = frozen(python)
    assert "bratslib" not in before
    run([python, "-m", "pip", "check"])  # the description itself is consistent
    built = time.monotonic()

    wheel_url = f"bratslib @ {wheel.as_uri()}"
    if environment == "kaggle":  # the README's lines, in a shell whose `pip` is this environment's
        lines = [line.replace(f'"bratslib @ {README_URL}"', f'"{wheel_url}"') for line in documented_install_lines()]
        command = "\n".join(lines)
        run(["bash", "-c", f'set -euo pipefail\npip() {{ "{python}" -m pip "$@"; }}\n{command}'])
    else:  # the chapter's first cell installs it
        command = "(the chapter's install cell)"
        monkeypatch.setenv("BRATSLIB_SOURCE", wheel.as_uri())

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    kernel = kernel_for(python, f"hosted-{environment}", tmp_path / "jupyter")
    executed = {}
    for chapter in chapters:
        out = tmp_path / f"{chapter}.ipynb"
        pm.execute_notebook(ROOT / "notebooks" / f"{chapter}.ipynb", out, kernel_name=kernel, cwd=str(tmp_path),
                            progress_bar=False, parameters={
                                "data_dir": str(tiny_data), "n_cases": 3, "profile": "tiny",
                                "cache_dir": str(tmp_path / "cache"), "results_dir": str(tmp_path / "results")})
        executed[chapter] = json.loads(out.read_text())
    after = frozen(python)
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)

    changed = {name: (v, after.get(name)) for name, v in before.items() if after.get(name) != v}
    added = sorted(f"{name}=={v}" for name, v in after.items() if name not in before)
    row = {"environment": environment, "python": version, "command": command,
           "preinstalled": len(before), "changed": changed, "added": added,
           "pip_check": check.stdout.strip() or check.stderr.strip(), "chapters": chapters,
           "build_s": round(built - started), "install_and_run_s": round(time.monotonic() - built)}
    (ROOT / "build" / "hosted").mkdir(parents=True, exist_ok=True)
    (ROOT / "build" / "hosted" / f"{environment}.json").write_text(json.dumps(row, indent=1))

    assert not changed, f"{environment}: the install changed preinstalled packages (name: before, after): {changed}"
    assert check.returncode == 0, f"{environment}: pip check after the install:\n{check.stdout}{check.stderr}"
    assert any(a.startswith("bratslib==") for a in added), added
    where = run([python, "-c", "import bratslib; print(bratslib.__file__)"], cwd=tmp_path).stdout
    assert str(env) in where, f"bratslib imported from {where}, not from the {environment} environment"
    for chapter, nb in executed.items():
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{environment}, {chapter}: {errors}"
        install = next(c for c in nb["cells"] if "install" in c["metadata"].get("tags", []))
        printed = "".join("".join(o.get("text", "")) for o in install.get("outputs", []))
        if environment == "colab" and chapter == chapters[0]:
            assert "Successfully installed" in printed and "bratslib" in printed, printed
        else:  # installed already: the cell does nothing
            assert printed == "", printed
