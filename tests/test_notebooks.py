"""Every chapter of the book, executed with papermill at a tiny size on synthetic data.

This is the chapters' smoke test: the same notebooks as ``make book``, through the same
``bratslib.book.execute_notebooks``, but on three synthetic cases.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bratslib.book import execute_notebooks, notebooks_in_toc
from bratslib.data.synth import write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebooks_in_toc(ROOT / "_toc.yml")


@pytest.fixture(scope="module")
def shared_results(tmp_path_factory) -> Path:
    """One results folder for all chapters, as in ``make book``: the results and discussion
    chapters collect the runs of the chapters executed before them."""
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def shared_executed(tmp_path_factory) -> Path:
    """The executed copies of all chapters, for the book built from them at the end."""
    return tmp_path_factory.mktemp("executed")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(out, n_cases=3, seed=0, progress=False)
    return out


def test_the_toc_lists_notebooks():
    assert NOTEBOOKS, "no notebook in _toc.yml"


#: Numbers the chapters' prose may state that are neither the report's (``bratslib/claims.yml``)
#: nor section numbers: fixed facts, each with where it comes from.
FIXED_NUMBERS = {
    "7.8": "parameters of the full profile's 2-D U-Net (model.count_params())",
    "23.6": "parameters of keras.applications.ResNet50 without its top",
    "373.13": "the BraTS penalty HD95, the diagonal of the 240 x 240 x 155 grid in mm",
    "2.7": "the 3-D U-Net docstring's activation memory of one 128^3 volume",
    "0.97": "the report's background Dice values, rounded (0.9679 to 0.9981)",
    "0.998": "the report's background Dice values, rounded (0.9679 to 0.9981)",
    "0.90": "a region Dice the report gives DeepLabV3+ (section 3.2.2)",
    "0.014": "an example difference in the text on paired tests",
    "0.25": "the smallest Wilcoxon p on three cases, 2 / 2**3",
    "0.05": "the significance level",
    "10.7937": "a DOI prefix",
    "2.0": "the Apache licence's version",
    "3.0": "the CC BY licence's version",
    "0.80": "the real-scan goal's whole-tumour Dice (benchmarks/bench_sim2real.py GOAL)",
    "0.50": "the real-scan goal's tumour-core and enhancing-tumour Dice (benchmarks/bench_sim2real.py GOAL)",
}


def _claimed_values() -> list[float]:
    import yaml

    values: list[float] = []

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, float):
            values.append(node)

    walk(yaml.safe_load((ROOT / "bratslib" / "claims.yml").read_text()))
    return values


def test_the_goal_in_the_prose_is_the_benchmark_s():
    from benchmarks.bench_sim2real import GOAL

    assert {f"{v:.2f}" for v in GOAL.values()} == {"0.80", "0.50"} <= set(FIXED_NUMBERS)


def test_the_prose_states_no_measured_number():
    """A number in a chapter's written prose (its markdown cells) is the report's, a section
    number or a fixed fact of :data:`FIXED_NUMBERS`: every number this book measures reaches
    the page through a cell's output, computed from the run beside it, so no sentence can keep
    a number that a new run contradicts."""
    claimed = _claimed_values()
    sections = set()
    for notebook in NOTEBOOKS:
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                sections |= set(re.findall(r"^#+ (\d+\.\d+) ", "".join(cell["source"]), flags=re.M))
    stray = []
    for notebook in NOTEBOOKS:
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            text = re.sub(r"`[^`]*`", "", "".join(cell["source"]))  # code (a parameter to try) is not a claim
            for match in re.finditer(r"(?<![\w.])\d+\.\d+(?![\w.])", text):
                number = match.group()
                decimals = len(number.split(".")[1])
                percent = text[match.end():match.end() + 2].strip().startswith("%")
                value = float(number) / 100 if percent else float(number)
                if (number in sections or number in FIXED_NUMBERS
                        or any(round(v, decimals + 2 * percent) == value for v in claimed)):
                    continue
                stray.append(f"{notebook.name}: {number} in \"...{text[max(0, match.start() - 60):match.end() + 30]}...\"")
    assert not stray, "numbers in prose that no output computes:\n" + "\n".join(stray)


#: Sentences an earlier build printed beside tables that contradicted them (issue 17).
CONTRADICTED = ["lands near the plain U-Net", "its numbers sit beside theirs", "sit near 1",
                "the rarest classes are the hardest for every model", "whether it helps is in the table above",
                "nearly perfect"]


def test_no_chapter_repeats_a_sentence_its_tables_contradicted():
    for notebook in NOTEBOOKS:
        text = " ".join(" ".join("".join(c["source"]).split()) for c in json.loads(notebook.read_text())["cells"])
        for sentence in CONTRADICTED:
            assert sentence not in text, f"{notebook.name}: {sentence!r}"


def test_the_architecture_chapters_share_at_most_three_code_cells():
    """Chapters 3 to 7 take chapter 2's steps through library calls and spend their cells on
    their own architecture: with each chapter's model name and label masked, at most three of
    their code cells are the same in two or more of them (the install cell, the parameters cell
    and ``ChapterSetup.train_and_evaluate``)."""
    from collections import defaultdict

    from bratslib.registry import MODELS

    chapters = {spec.chapter: spec for spec in MODELS.values() if spec.chapter[:2] in ("03", "04", "05", "06", "07")}
    assert len(chapters) == 5, sorted(chapters)
    seen: dict[str, set[str]] = defaultdict(set)
    for chapter, spec in chapters.items():
        nb = json.loads((ROOT / "notebooks" / f"{chapter}.ipynb").read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                for name in (spec.name, spec.label, spec.function):
                    source = source.replace(name, "MODEL")
                seen[source].add(chapter)
    shared = {source: sorted(where) for source, where in seen.items() if len(where) > 1}
    assert len(shared) <= 3, "\n\n".join(f"{where}:\n{source}" for source, where in shared.items())


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_at_tiny_size(notebook: Path, tiny_data: Path, shared_results: Path, shared_executed: Path,
                                        tmp_path: Path):
    parameters = {"data_dir": str(tiny_data), "n_cases": 3, "census_cases": 3, "seed": 0,
                  "cache_dir": str(tmp_path / "cache"), "profile": "tiny",
                  "results_dir": str(shared_results)}
    if notebook.stem == "04_resnet50_unet":
        parameters["compare_frozen"] = True  # offline its encoder is random: by default 4.4 would not train
    (run,) = execute_notebooks([notebook], shared_executed, root=ROOT, parameters=parameters, force=True, report=None)
    executed = json.loads(Path(run.executed).read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    # the chapter says which data its numbers come from, in what it prints (not in its source)
    printed = json.dumps([o for c in executed["cells"] for o in c.get("outputs", [])])
    assert "synthetic BraTS-format data" in printed, "the chapter's outputs do not say which data they come from"
    if notebook.stem == "02_unet2d":  # its training seeds as one model, in 2.6's table and sentence
        assert "as one model" in printed
    if notebook.stem == "11_real_scans":  # chapter 2's seeds as one, and each model's misses and additions
        assert "training seeds as one" in printed and "found / inside" in printed and "more added than missed" in printed
    if notebook.stem == "12_training_for_real_scans":  # chapter 2's U-Net by rank, on four modalities, longer, mirrored,
        # its largest tumour kept, beside chapter 2's; and the same U-Net not mirrored, and with every voxel kept
        assert "rank; flair, t1, t1ce, t2; 6 x 32 slices; largest, mirrored" in printed
        assert "6 x 32 slices; largest |" in printed and "6 x 32 slices; none, mirrored" in printed
        assert "Against chapter 2's U-Net, the 2D U-Net for real" in printed
        assert "Mirroring at test time, against the same U-Net not mirrored, is" in printed
        assert "Keeping only the largest connected tumour, against keeping every predicted voxel" in printed
        # 12.1's sentence (the tiny data's three cases may have no enhancing tumour to set beside 901's)
        assert "enhancing tumour's median T1ce" in printed or "have no enhancing tumour to compare" in printed


@pytest.mark.slow
def test_the_book_of_the_tiny_chapters_builds_and_its_pages_draw(shared_executed: Path, tmp_path: Path):
    """The whole book (the repository's pages and every chapter executed above) built with
    warnings as errors, then every page opened in headless Chromium."""
    from bratslib.book import stage_and_build, toc_entries
    from tests.test_book import chromium, figure_segments, probe_page

    missing = [nb.stem for nb in NOTEBOOKS if not (shared_executed / "notebooks" / nb.name).is_file()]
    if missing:
        pytest.skip(f"run with the chapter tests: not executed here: {', '.join(missing)}")
    chromium()
    html = stage_and_build(ROOT, shared_executed, tmp_path / "site", tmp_path, quiet=True)
    assert (html / "book" / "real_data.html").is_file()

    # every page of the book, at a laptop's window size: no table or figure past the column's
    # right edge, no figure left undrawn, no image missing
    pages = [html / f"{Path(entry).with_suffix('')}.html" for entry in toc_entries(ROOT / "_toc.yml")]
    assert len(pages) == len(NOTEBOOKS) + 3, pages
    probed = {page.stem: probe_page(page, tmp_path / "chromium") for page in pages}
    problems = {name: found for name, (_, found) in probed.items() if found}
    assert not problems, problems

    def page(name: str) -> tuple[str, dict[str, str], list[str]]:
        dom = probed[name][0]
        figures = figure_segments(dom)
        for fid, segment in figures.items():
            assert 'class="main-svg"' in segment, f"{name}: figure {fid} was not drawn"
        return dom, figures, re.findall(r"<table\b.*?</table>", dom, flags=re.S)

    dom, figures, tables = page("02_unet2d")
    assert len(figures) >= 2 and any("threshold baseline" in t for t in tables)
    assert any("Table 3.1" in t and "section 3.2.1" in t for t in tables), "the report's figures are missing"
    for chapter in ("03_unet3d", "04_resnet50_unet", "05_attention_unet", "06_transunet", "07_deeplabv3plus"):
        dom, figures, tables = page(chapter)  # ChapterSetup.train_and_evaluate's history, viewer and tables
        assert len(figures) >= 2 and any("threshold baseline" in t for t in tables), chapter
        assert any("report’s source" in t or "report's source" in t for t in tables), chapter
    dom, figures, tables = page("08_quantum_vs_classical")
    assert len(figures) == 2 and any("ROC AUC" in t for t in tables)
    assert "&lt;Z&gt;" in dom, "the circuit drawing is missing"
    dom, figures, tables = page("09_results")
    assert len(figures) >= 3, "the results chapter's figures are missing"
    assert any("not comparable: synthetic data" in t for t in tables), "the claims table is missing"
    assert any("same per-class Dice" in t for t in tables), "the audit is missing"
    # the performance page includes the committed benchmark reports
    dom, _, tables = page("performance")
    assert len(tables) == 8, f"expected the 8 benchmark tables, found {len(tables)}"
    # bench_sim2real's report and the one of two more training seeds
    assert sum("the five BraTS 2020 algorithms, pairwise" in t for t in tables) == 2, "a sim2real table is missing"
    assert any("fits a 12 h Kaggle session" in t for t in tables), "the GPU check's projection is missing"
    assert any("naive, shuffled slices" in t for t in tables) and any("quantum_classifier" in t for t in tables)
    assert any("02_unet2d" in t for t in tables), "the book's timing table is missing"
