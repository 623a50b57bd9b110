"""The real scans the book ships (book/data/real): found, read, credited, and their references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bratslib.data.cases import check_case, load_case
from bratslib.real import CREDIT, algorithms_agreement, real_cases, real_data_dir, tuned_threshold

ROOT = Path(__file__).resolve().parents[1]
BOOK_REAL = ROOT / "book" / "data" / "real"


def test_the_book_ships_two_real_cases_with_their_credit():
    assert real_data_dir() == BOOK_REAL
    cases = real_cases(BOOK_REAL)
    assert [c.case_id for c in cases] == ["BraTS20_Training_901", "BraTS20_Training_902"]
    for files in cases:
        assert check_case(files) == []
        assert sorted(p.name for p in (BOOK_REAL / "algorithms" / files.case_id).glob("*.nii.gz")) == [
            f"{a}.nii.gz" for a in ("hnfnetv1-20", "isen-20", "sanet0-20", "scan-20", "yixinmpl-20")]
    labels = [set(np.unique(load_case(f, ("flair",)).seg).tolist()) for f in cases]
    assert labels == [{0, 1, 2, 4}, {0, 1, 2}]
    source = (BOOK_REAL / "SOURCE.md").read_text()
    for needle in ("TCGA-LGG", "CC BY 3.0", "doi:10.7937/K9/TCIA.2016.L4LTD3TK", "not an expert annotation"):
        assert needle in source
    assert "CC BY 3.0" in CREDIT and "Kofler" in CREDIT
    size = sum(p.stat().st_size for p in BOOK_REAL.rglob("*") if p.is_file())
    assert size < 20e6  # the repository grows by the two cases only


def test_real_data_dir_prefers_a_given_folder_and_says_none_when_missing(tmp_path, monkeypatch):
    assert real_data_dir(BOOK_REAL) == BOOK_REAL
    assert real_data_dir(tmp_path) is None
    monkeypatch.setenv("BRATSLIB_REAL", str(BOOK_REAL))
    assert real_data_dir() == BOOK_REAL


def test_references_on_the_real_scans():
    agreement = algorithms_agreement(BOOK_REAL)
    assert len(agreement["pairs"]) == 20
    by_case = {row["case_id"]: row for row in agreement["per_case"]}
    assert by_case["BraTS20_Training_901"]["dice_WT"] > 0.85
    threshold = tuned_threshold(real_cases(BOOK_REAL))
    assert [row["case_id"] for row in threshold.per_case] == list(by_case)
    assert 0.5 < threshold.mean("dice_WT") < agreement["mean"]["dice_WT"]  # a tuned threshold is no algorithm


def test_the_real_scans_notebook_is_in_the_book_after_the_discussion():
    from bratslib.book import notebooks_in_toc

    names = [p.stem for p in notebooks_in_toc(ROOT / "_toc.yml")]
    assert names[names.index("10_discussion") + 1] == "11_real_scans"
