"""The command line as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_cases import write_case


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bratslib", *args], capture_output=True, text=True, timeout=300)


def test_check_clean_folder_exits_0(tmp_path: Path):
    for k in (1, 2):
        write_case(tmp_path / "MICCAI_BraTS2020_TrainingData", f"BraTS20_Training_00{k}")
    out = run_cli("check", str(tmp_path), "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 cases" in out.stdout and "no problems found" in out.stdout


def test_check_reports_a_table_and_exits_1(tmp_path: Path):
    data = tmp_path / "MICCAI_BraTS2020_TrainingData"
    for k in (1, 2, 3):
        write_case(data, f"BraTS20_Training_00{k}")
    flair = data / "BraTS20_Training_002" / "BraTS20_Training_002_flair.nii"
    flair.write_bytes(flair.read_bytes()[:1000])
    (data / "BraTS20_Training_003" / "BraTS20_Training_003_t1ce.nii").unlink()
    out = run_cli("check", str(tmp_path), "-q")
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("case"))
    rows = lines[header + 2 : header + 4]
    assert rows[0].startswith("BraTS20_Training_002") and "BraTS20_Training_002_flair.nii" in rows[0] and "truncated file" in rows[0]
    assert rows[1].startswith("BraTS20_Training_003") and "missing modality t1ce" in rows[1]
    assert "2 problem(s) in 2 case(s)" in out.stdout


def test_check_missing_or_empty_folder(tmp_path: Path):
    out = run_cli("check", str(tmp_path / "nope"), "-q")
    assert out.returncode == 1 and "no such folder" in out.stdout
    out = run_cli("check", str(tmp_path), "-q")
    assert out.returncode == 1 and "is empty" in out.stdout


def test_synth_help_names_every_generator_option():
    from bratslib.data.synth import SYNTH_OPTIONS

    out = run_cli("synth", "--help")
    assert out.returncode == 0
    assert [name for name in SYNTH_OPTIONS if name not in out.stdout] == []
