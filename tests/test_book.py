"""The book machinery: executing notebooks, building the HTML book, figures that really draw.

The slow tests run the real thing on a tiny book (the repository's ``_config.yml`` and
``book/`` plus a test notebook): papermill through :mod:`bratslib.book`, ``jupyter-book
build`` with warnings as errors, then headless Chromium, which must find the plotly figures
drawn (plotly's ``main-svg`` inside each figure's div) and the table rendered.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from bratslib import book
from bratslib.__main__ import main as cli

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=15000",
)


# ----------------------------------------------------------------------------- helpers


def write_notebook(path: Path, cells: list[str | tuple[str, str]], parameters: str | None = 'data_dir = "unset"\nprofile = "unset"') -> Path:
    """A notebook: an optional ``parameters`` cell, then ``cells`` (code, or ("md", text))."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        out.append(cell)
    for c in cells:
        out.append(nbformat.v4.new_markdown_cell(c[1]) if isinstance(c, tuple) else nbformat.v4.new_code_cell(c))
    nb.cells = out
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def chromium() -> str:
    """Chromium's path; without it, fail on CI and skip elsewhere."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    reason = f"{CHROMIUM} not found: the headless-browser check of the built book needs Debian's chromium"
    if os.environ.get("CI"):
        pytest.fail(reason + " (.ci/run installs it)")
    pytest.skip(reason + " (apt-get install chromium)")


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after its scripts ran, serialised by headless Chromium."""
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


#: Run in the page after it loaded: every table, figure and image that reaches past the right
#: edge of the article's column (in a scroll box or not: a reader sees it cut), every plotly
#: figure not drawn and every image not loaded, as JSON in the body's ``data-layout-problems``.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const column = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const right = column.getBoundingClientRect().right + 2;
  const name = (el) => {
    const text = (el.innerText || el.id || el.src || "").replace(/\\s+/g, " ").trim();
    return el.tagName.toLowerCase() + ": " + text.slice(0, 80);
  };
  const problems = [];
  for (const el of column.querySelectorAll("table, .plotly-graph-div, img, pre")) {
    if (el.closest(".highlight") && el.tagName !== "PRE") continue;
    const box = el.getBoundingClientRect();
    const width = Math.max(box.width, el.scrollWidth);
    if (box.left + width > right && el.tagName !== "PRE") problems.push("wider than the column by " + Math.round(box.left + width - right) + " px: " + name(el));
    if (el.classList.contains("plotly-graph-div") && !el.querySelector(".main-svg")) problems.push("figure not drawn: " + name(el));
    if (el.tagName === "IMG" && !(el.complete && el.naturalWidth > 0)) problems.push("image not loaded: " + name(el));
  }
  document.body.setAttribute("data-layout-problems", JSON.stringify(problems));
}, 500));
</script>"""


def probe_page(page: Path, profile: Path) -> tuple[str, list[str]]:
    """``page`` opened in headless Chromium at a laptop's window size (1280 x 900): its DOM
    after its scripts ran, and what :data:`LAYOUT_PROBE` found there (overflowing tables and
    figures, figures not drawn, images not loaded)."""
    import html as html_module

    probe = page.with_name(page.stem + ".layout-probe.html")
    probe.write_text(page.read_text().replace("</body>", LAYOUT_PROBE + "</body>", 1))
    profile.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([chromium(), *CHROMIUM_FLAGS, "--window-size=1280,900", f"--user-data-dir={profile}",
                               "--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    finally:
        probe.unlink()
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    found = re.search(r'data-layout-problems="([^"]*)"', proc.stdout)
    assert found, f"{page.name}: the layout probe did not run"
    return proc.stdout, json.loads(html_module.unescape(found.group(1)))


def figure_segments(dom: str) -> dict[str, str]:
    """Each plotly figure div's id -> the DOM from its opening tag to the next figure's."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div\b[^>]*\bid="([^"]+)"[^>]*class="[^"]*plotly-graph-div', dom)]
    ends = [s for s, _ in starts[1:]] + [len(dom)]
    return {fid: dom[s:e] for (s, fid), e in zip(starts, ends)}


# ----------------------------------------------------------------------------- table of contents


def test_toc_entries_and_notebooks(tmp_path: Path):
    for rel in ("book/intro.md", "notebooks/a.ipynb", "notebooks/b.ipynb", "book/part.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}" if rel.endswith(".ipynb") else "# x\n")
    toc = tmp_path / "_toc.yml"
    toc.write_text(yaml.safe_dump({
        "format": "jb-book", "root": "book/intro",
        "parts": [{"caption": "One", "chapters": [
            {"file": "notebooks/a", "sections": [{"file": "book/part.md"}]},
            {"file": "notebooks/b.ipynb"},
        ]}],
    }))
    assert book.toc_entries(toc) == ["book/intro", "notebooks/a", "book/part.md", "notebooks/b.ipynb"]
    assert book.notebooks_in_toc(toc) == [tmp_path / "notebooks/a.ipynb", tmp_path / "notebooks/b.ipynb"]
    assert book.missing_toc_entries(toc) == []
    (tmp_path / "notebooks/b.ipynb").unlink()
    assert book.missing_toc_entries(toc) == ["notebooks/b.ipynb"]
    with pytest.raises(FileNotFoundError, match="notebooks/b.ipynb"):
        book.notebooks_in_toc(toc)


def test_fingerprint_depends_on_notebook_parameters_and_inputs(tmp_path: Path):
    nb = write_notebook(tmp_path / "n.ipynb", ["x = 1"])
    extra = tmp_path / "manifest.json"
    extra.write_text("{}")
    base = book.fingerprint(nb, {"data_dir": "/a"}, [extra])
    assert base == book.fingerprint(nb, {"data_dir": "/a"}, [extra])
    assert base != book.fingerprint(nb, {"data_dir": "/b"}, [extra])
    extra.write_text('{"seed": 1}')
    assert base != book.fingerprint(nb, {"data_dir": "/a"}, [extra])
    assert book.fingerprint(nb, {}, [tmp_path / "absent"]) != book.fingerprint(nb, {}, [])
    sources = {p.name for p in book.library_sources()}
    assert "viz.py" in sources and "book.py" not in sources


def test_cli_book_build_without_executed_copies_fails_clearly(tmp_path: Path, capsys):
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro",
                                                       "chapters": [{"file": "notebooks/ch"}]}))
    write_notebook(tmp_path / "notebooks/ch.ipynb", ["x = 1"])
    rc = cli(["book", "build", "--root", str(tmp_path), "--executed", str(tmp_path / "ex"),
              "--site", str(tmp_path / "site"), "--out", str(tmp_path / "out")])
    assert rc == 1
    assert "notebooks/ch.ipynb: no successful executed copy" in capsys.readouterr().err
    (tmp_path / "notebooks/ch.ipynb").unlink()
    rc = cli(["book", "execute", "--root", str(tmp_path), "--out", str(tmp_path / "ex")])
    assert rc == 1
    assert "notebooks/ch" in capsys.readouterr().err


# ----------------------------------------------------------------------------- viz


def _run_python(code: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**{k: v for k, v in os.environ.items() if k != "BRATSLIB_BOOK_BUILD"}, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_book_renderer_is_default_only_for_the_book_build():
    code = ("import sys, plotly.io as pio, bratslib.viz as viz; "
            "print(pio.renderers.default, viz.BOOK_RENDERER in pio.renderers, 'tensorflow' in sys.modules, sep='|')")
    default, registered, tf = _run_python(code).split("|")
    assert default != "bratslib_book" and registered == "True" and tf == "False"
    default, registered, tf = _run_python(code, BRATSLIB_BOOK_BUILD="1").split("|")
    assert (default, registered, tf) == ("bratslib_book", "True", "False")


def test_book_renderer_emits_figure_without_the_library():
    import plotly.graph_objects as go
    import plotly.io as pio

    from bratslib import viz

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout=dict(title="t"))
    bundle = pio.renderers._build_mime_bundle(fig.to_dict(), viz.BOOK_RENDERER)
    html = bundle["text/html"]
    assert "Plotly.newPlot" in html and 'class="plotly-graph-div"' in html
    assert "<script src" not in html and "cdn.plot.ly" not in html
    assert len(html) < 20_000, "the figure HTML must not embed plotly.js"
    assert set(bundle) == {"text/html", "text/plain"}


def test_display_slice_puts_the_front_of_the_head_at_the_top():
    """BraTS voxel y runs to the back (affine diag(-1, -1, 1)): row 0 shown must be y = 0."""
    from bratslib.data.synth import BRATS_AFFINE
    from bratslib.viz import display_slice

    vol = np.arange(4 * 3 * 2).reshape(4, 3, 2)
    assert np.array_equal(display_slice(vol, 1), vol[:, :, 1].T)
    assert BRATS_AFFINE[1, 1] < 0  # voxel y grows towards posterior, so y = 0 (top row) is anterior


def _phantom(shape=(240, 240, 155), seed=0):
    rng = np.random.default_rng(seed)
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c = np.array(shape) / 2
    brain = ((x - c[0]) / (0.35 * shape[0])) ** 2 + ((y - c[1]) / (0.42 * shape[1])) ** 2 + ((z - c[2]) / (0.42 * shape[2])) ** 2 < 1
    images = {m: (brain * rng.normal(500 + 100 * i, 80, shape)).astype(np.float32)
              for i, m in enumerate(("flair", "t1", "t1ce", "t2"))}
    seg = np.zeros(shape, np.uint8)
    r2 = (x - 0.4 * shape[0]) ** 2 + (y - 0.55 * shape[1]) ** 2 + (z - 0.6 * shape[2]) ** 2
    s = shape[0] / 240
    seg[r2 < (30 * s) ** 2] = 2
    seg[r2 < (18 * s) ** 2] = 4
    seg[r2 < (9 * s) ** 2] = 1
    return images, seg


def test_case_viewer_full_size_case():
    from bratslib import viz

    images, seg = _phantom()
    fig = viz.case_viewer(images, seg, title="phantom")
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 4
    assert {t.name for t in fig.data if t.type == "scatter"} == {"1: necrotic core", "2: oedema", "4: enhancing tumour"}
    slider = fig.layout.sliders[0]
    labels = [int(s.label) for s in slider.steps]
    start = int(np.argmax((seg > 0).sum(axis=(0, 1))))
    assert labels[slider.active] == start, "the slider starts at the slice with the most tumour"
    assert len(fig.frames) == len(labels) <= 33
    assert all(np.diff(labels) == labels[1] - labels[0])
    z = np.asarray(heatmaps[0].z)
    assert z.dtype == np.uint8 and z.shape[0] < 240 // 2 + 8 and z.shape[1] < 240 // 2 + 8
    # tumour voxels carry an overlay slot (the top two bits), background none
    assert (z >= 64).any() and (z < 64).any()
    size = len(fig.to_html(full_html=False, include_plotlyjs=False))
    assert size < 2_000_000, f"case viewer HTML is {size:,} bytes"


def test_case_viewer_without_labels_and_errors():
    from bratslib import viz

    images, _ = _phantom((40, 40, 20))
    fig = viz.case_viewer({"flair": images["flair"]}, None)
    assert len(fig.data) == 1 and len(fig.frames) >= 1
    with pytest.raises(ValueError, match="shape"):
        viz.case_viewer({"a": images["flair"], "b": images["t1"][:, :, :10]})


def test_history_figure_names_and_colours_every_curve_apart():
    from bratslib import viz

    keys = [k for keys in viz.HISTORY_PANELS.values() for k in keys]
    history = [{"epoch": e, **{k: 1.0 / (e + 1) for k in keys}} for e in range(3)]
    fig = viz.history_figure(history, best_epoch=1, title="run")
    names = [t.name for t in fig.data]
    assert len(names) == len(keys) == len(set(names)), names
    assert len({t.line.color for t in fig.data}) == len(keys), "two curves share a colour"
    assert not any("_" in n for n in names) and "Dice tumour (validation)" in names and "loss (training)" in names
    assert {t.line.dash for t in fig.data if t.name.endswith("(training)")} == {"dot"}
    assert viz.history_figure(history[:1], {"loss": ("loss", "absent")}).data[0].name == "loss (training)"


def test_show_source_batch_figure_and_data_note():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import Code

    from bratslib import viz

    code = viz.show_source(viz.display_slice)
    assert isinstance(code, Code) and "def display_slice" in code.data
    formats, _ = InteractiveShell.instance().display_formatter.format(code)
    assert "text/html" in formats and "text/latex" not in formats  # LaTeX would pull MathJax from a CDN
    both = viz.show_source(viz.display_slice, viz.markdown_table).data
    assert both.index("def display_slice") < both.index("def markdown_table")
    with pytest.raises(TypeError, match="at least one"):
        viz.show_source()

    x = np.random.default_rng(0).random((6, 32, 32, 2)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[np.random.default_rng(1).integers(0, 4, (6, 32, 32))]
    fig = viz.batch_figure(x, y, channel_names=("FLAIR", "T1ce"), title="batch")
    assert sum(t.type == "heatmap" for t in fig.data) == 4 * 3

    note = viz.data_note({"kind": "synthetic", "description": "synthetic <data>"})
    assert "admonition warning" in note._repr_html_() and "&lt;data&gt;" in note._repr_html_()
    assert "admonition note" in viz.data_note({"kind": "real", "description": "BraTS"})._repr_html_()


# ----------------------------------------------------------------------------- execution


TINY_CHAPTER = [
    'print(f"data_dir={data_dir} profile={profile}")',
    ("md", "A figure, drawn by plotly.js loaded from the book's own `_static/`:"),
    "import numpy as np\nimport plotly.graph_objects as go\nimport bratslib.viz as viz\n"
    'fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 3, 2], name="line"))\n'
    'fig.update_layout(title="tiny figure", height=320)\nfig.show()',
    "from IPython.display import Markdown\n"
    'Markdown("| metric | value |\\n|---|---:|\\n| dice | 0.875 |")',
    "x, y, z = np.ogrid[:40, :40, :24]\n"
    "brain = ((x - 20) ** 2 + (y - 20) ** 2) < 300\n"
    "vol = np.broadcast_to(brain, (40, 40, 24)) * (1.0 + z)\n"
    "seg = np.zeros((40, 40, 24), np.uint8)\nseg[15:22, 15:22, 10:14] = 2\nseg[17:20, 17:20, 11:13] = 4\n"
    'viz.case_viewer({"flair": vol, "t2": vol[::-1]}, seg, title="tiny viewer").show()',
    "viz.show_source(viz.display_slice)",
]


@pytest.mark.slow
def test_tiny_book_end_to_end(tmp_path: Path):
    """Execute a tiny book with papermill, build it with jupyter-book, check it in Chromium."""
    chromium()  # fail (CI) or skip early, before the slow part
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "_config.yml", repo / "_config.yml")
    shutil.copytree(ROOT / "book", repo / "book")
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    toc.pop("parts", None)
    toc["chapters"] = [{"file": "notebooks/tiny"}]
    (repo / "_toc.yml").write_text(yaml.safe_dump(toc))
    write_notebook(repo / "notebooks/tiny.ipynb", TINY_CHAPTER)

    t0 = time.perf_counter()
    runs = book.execute_notebooks(book.notebooks_in_toc(repo / "_toc.yml"), repo / "build/executed", root=repo,
                                  parameters={"data_dir": "/data/brats", "profile": "tiny"}, report=None)
    t1 = time.perf_counter()
    assert [r.status for r in runs] == ["executed"]
    executed = nbformat.read(repo / "build/executed/notebooks/tiny.ipynb", as_version=4)
    assert "data_dir=/data/brats profile=tiny" in json.dumps(executed.cells[3].outputs)

    html_dir = book.stage_and_build(repo, repo / "build/executed", repo / "build/site", repo / "build", quiet=True)
    t2 = time.perf_counter()
    assert html_dir == repo / "build/_build/html"
    assert (repo / "build/site/_static/plotly.min.js").is_file()
    assert not (repo / "_static").exists(), "the repository copy stays untouched"
    assert book.network_loads(html_dir) == {}, "a page loads something from the network"
    page = html_dir / "notebooks/tiny.html"
    static = page.read_text()
    assert "plotly.min.js" in static
    assert "/data/brats" not in static.replace("data_dir=/data/brats", ""), "the injected parameters cell is hidden"

    dom = dump_dom(page, tmp_path / "chromium-profile")
    t3 = time.perf_counter()
    figures = figure_segments(dom)
    assert len(figures) == 2, f"expected 2 plotly figures on the page, found {len(figures)}"
    for fid, segment in figures.items():
        assert "js-plotly-plot" in segment[:500] and 'class="main-svg"' in segment, f"figure {fid} was not drawn"
    viewer = [s for s in figures.values() if re.search(r'class="gtitle"[^>]*>tiny viewer<', s)]
    assert viewer and "slider-container" in viewer[0], "the case viewer's slider was not drawn"
    tables = re.findall(r"<table\b.*?</table>", dom, flags=re.S)
    assert any("dice" in t and "0.875" in t and "metric" in t for t in tables), "the markdown table is missing"
    assert "def display_slice(vol" in re.sub(r"<[^>]+>", "", dom), "show_source's code is missing"
    print(f"\ntiny book: execute {t1 - t0:.1f} s, jupyter-book build {t2 - t1:.1f} s, chromium {t3 - t2:.1f} s")


@pytest.mark.slow
def test_figures_draw_even_when_an_amd_loader_is_on_the_page(tmp_path: Path):
    """With RequireJS on a page, a UMD build of plotly.js registers as an AMD module and leaves
    ``window.Plotly`` undefined.  The book loads no RequireJS (``nb_ipywidgets_js: {}``), and the
    shipped plotly.js must set ``window.Plotly`` anyway: check with an AMD ``define`` present."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from bratslib import viz

    chromium()
    shutil.copy(book.plotly_js(), tmp_path / "plotly.min.js")
    fig = go.Figure(go.Bar(y=[2, 1, 3]))
    figure_html = pio.renderers._build_mime_bundle(fig.to_dict(), viz.BOOK_RENDERER)["text/html"]
    page = tmp_path / "amd.html"
    page.write_text(
        "<html><head><script>window.define = function () { window.amdCalls = (window.amdCalls || 0) + 1; };"
        "window.define.amd = {}; window.require = function () {};</script>"
        '<script src="plotly.min.js"></script></head><body>' + figure_html + "</body></html>"
    )
    dom = dump_dom(page, tmp_path / "chromium-profile")
    (segment,) = figure_segments(dom).values()
    assert 'class="main-svg"' in segment, "plotly.js did not set window.Plotly with an AMD loader present"


@pytest.mark.slow
def test_failures_name_notebook_and_cell_keep_copy_and_reruns_skip(tmp_path: Path):
    nbs = tmp_path / "notebooks"
    good = write_notebook(nbs / "good.ipynb", ['print("fine", data_dir)'], parameters='data_dir = "unset"')
    bad = write_notebook(nbs / "bad.ipynb", ["x = 41", 'raise ValueError(f"boom-{x + 1}")', 'print("never")'])
    invisible = write_notebook(nbs / "invisible.ipynb", [
        "import plotly.graph_objects as go, plotly.io as pio\npio.renderers.default = 'plotly_mimetype'\n"
        "go.Figure(go.Bar(y=[1])).show()"])
    out = tmp_path / "executed"
    params = {"data_dir": "/d", "profile": "p"}

    def run(notebooks, **kw):
        lines: list[str] = []
        try:
            runs = book.execute_notebooks(notebooks, out, root=tmp_path, parameters=params, report=lines.append, **kw)
            return runs, None, lines
        except book.BookExecutionError as e:
            return e.runs, e, lines

    # 1. keep going: both failures reported, each with notebook, cell and exception
    runs, err, _ = run([good, bad, invisible], keep_going=True)
    assert [r.status for r in runs] == ["executed", "failed", "failed"]
    assert err is not None and len(err.failures) == 2
    f = err.failures[0]
    assert (f.notebook, f.cell, f.line, f.ename, f.evalue) == (Path("notebooks/bad.ipynb"), 4, 1, "ValueError", "boom-42")
    message = str(err)
    assert "notebooks/bad.ipynb: failed in cell 4" in message and "ValueError: boom-42" in message
    assert 'raise ValueError(f"boom-{x + 1}")' in message
    assert str(out / "notebooks/bad.ipynb") in message
    assert err.failures[1].notebook == Path("notebooks/invisible.ipynb") and err.failures[1].ename == "InvisibleOutput"
    # the failed notebook's executed copy is kept, with the traceback; it has no fingerprint
    kept = nbformat.read(out / "notebooks/bad.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in kept.cells for o in c.get("outputs", []))
    assert not (out / f"notebooks/bad.ipynb{book.FINGERPRINT_SUFFIX}").exists()
    assert (out / f"notebooks/good.ipynb{book.FINGERPRINT_SUFFIX}").exists()

    # 2. a re-run skips what succeeded, re-executes what failed, stops at the first failure
    runs, err, lines = run([good, bad, invisible])
    assert [r.status for r in runs] == ["skipped", "failed"]
    assert err is not None and len(err.failures) == 1
    assert "up to date, skipped" in lines[0]

    # 3. fixed: only the fixed notebook runs; then nothing runs
    write_notebook(bad, ["x = 41", 'print(f"boom-{x + 1}")'])
    runs, err, _ = run([good, bad])
    assert err is None and [r.status for r in runs] == ["skipped", "executed"]
    runs, err, _ = run([good, bad])
    assert err is None and [r.status for r in runs] == ["skipped", "skipped"]
    # a notebook gets only the parameters it declares
    stamp = json.loads((out / f"notebooks/good.ipynb{book.FINGERPRINT_SUFFIX}").read_text())
    assert stamp["parameters"] == {"data_dir": "/d"}
    stamp = json.loads((out / f"notebooks/bad.ipynb{book.FINGERPRINT_SUFFIX}").read_text())
    assert stamp["parameters"] == params


def _needs(path: Path, needs: list[str]) -> Path:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["bratslib"] = {"needs": needs}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_two_jobs_run_two_notebooks_at_once_and_a_notebook_after_those_it_reads(tmp_path: Path):
    flags = tmp_path / "flags"
    flags.mkdir()

    def waits_for(me: str, other: str, fail: bool = False) -> list[str]:
        # each notebook starts, then waits for the other to have started: only two at once pass
        return [f"import os, pathlib, time\nflags = pathlib.Path({str(flags)!r})\n(flags / '{me}.started').touch()\n"
                f"(flags / '{me}.threads').write_text(os.environ.get('TF_NUM_INTRAOP_THREADS', 'unset'))\n"
                f"t = time.monotonic()\nwhile not (flags / '{other}.started').exists():\n"
                f"    assert time.monotonic() - t < 120, 'the other notebook never started alongside'\n"
                f"    time.sleep(0.2)\n",
                f"(flags / '{me}.done').touch()" + ("\nraise RuntimeError('broken')" if fail else "")]

    nbs = tmp_path / "notebooks"
    a = write_notebook(nbs / "a.ipynb", waits_for("a", "b"))
    b = write_notebook(nbs / "b.ipynb", waits_for("b", "a"))
    reader = _needs(write_notebook(nbs / "reader.ipynb", [
        f"import pathlib\nflags = pathlib.Path({str(flags)!r})\n"
        "assert (flags / 'a.done').exists() and (flags / 'b.done').exists(), 'started before what it reads'"]),
        ["a", "b"])
    out = tmp_path / "executed"
    lines: list[str] = []
    runs = book.execute_notebooks([a, b, reader], out, root=tmp_path, report=lines.append, jobs=2)
    assert [r.status for r in runs] == ["executed"] * 3
    assert (flags / "a.threads").read_text() == str(max(1, book.cpu_cores() // 2))
    assert lines[0].endswith("a.ipynb: executing ...") and lines[1].endswith("b.ipynb: executing ...")

    # up to date: nothing runs; a changed notebook re-executes the one that reads it, not the other
    assert [r.status for r in book.execute_notebooks([a, b, reader], out, root=tmp_path, report=None, jobs=2)] == \
        ["skipped"] * 3
    write_notebook(b, [*waits_for("b", "a"), "x = 1"])
    (flags / "a.started").touch()
    runs = book.execute_notebooks([a, b, reader], out, root=tmp_path, report=None, jobs=2)
    assert [r.status for r in runs] == ["skipped", "executed", "executed"]

    # one that fails: what reads it is not executed, and says why
    write_notebook(a, waits_for("a", "b", fail=True))
    with pytest.raises(book.BookExecutionError) as caught:
        book.execute_notebooks([a, b, reader], out, root=tmp_path, report=None, jobs=2, keep_going=True)
    assert [r.status for r in caught.value.runs] == ["failed", "skipped", "failed"]
    assert caught.value.failures[1].ename == "NotExecuted" and "a.ipynb, which failed" in str(caught.value)

    # a notebook listed before one it reads
    with pytest.raises(ValueError, match="reader.ipynb needs a.ipynb, which come"):
        book.execute_notebooks([reader, a], out, root=tmp_path, report=None)


def test_book_notebooks_name_the_chapters_whose_results_they_read():
    """A page that reads other chapters' runs (their models, chapter 2's threshold baseline)
    names them in its metadata, so that ``make book`` (two notebooks at once) starts it after
    them and a re-executed chapter re-executes the pages that show its numbers."""
    from bratslib.registry import MODELS

    notebooks = book.notebooks_in_toc(ROOT / "_toc.yml")
    chapter_of = {spec.name: spec.chapter for spec in MODELS.values()} | {"threshold_baseline": "02_unet2d"}
    every_chapter = {spec.chapter for spec in MODELS.values()}
    for nb in notebooks:
        src = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
        reads: set[str] = set()
        for call in re.finditer(r"collect_runs\([^)]*\)(\.get\(\"(\w+)\"\))?", src):
            reads |= {chapter_of[call.group(2)]} if call.group(2) else every_chapter  # one model's run, or all
        for call in re.finditer(r"collect_replicates\([^)]*\"(\w+)\"", src):
            reads.add(chapter_of[call.group(1)])
        if re.search(r"train_and_evaluate\(|\.baseline\(", src):  # chapter 2's threshold baseline
            reads.add("02_unet2d")
        reads.discard(nb.stem)
        assert reads <= set(book.notebook_needs(nb)), f"{nb.name} reads the runs of {sorted(reads)}, needs {book.notebook_needs(nb)}"
        assert set(book.notebook_needs(nb)) <= reads, f"{nb.name} needs {book.notebook_needs(nb)} but reads only {sorted(reads)}"


def test_markdown_table_aligns_numbers_and_escapes_pipes():
    from bratslib.viz import markdown_table

    text = markdown_table(["model", "dice"], [("a|b", 0.5), ("c", 1)]).data
    assert text.splitlines() == ["| model | dice |", "|---|---:|", "| a\\|b | 0.5 |", "| c | 1 |"]


def test_pages_drop_tensorflow_start_up_logs_but_keep_real_warnings(tmp_path: Path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import tensorflow")])
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=(
            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1795622548.623329   25907 port.cc:153] oneDNN custom operations are on.\n")),
        nbformat.v4.new_output("stream", name="stderr", text=(
            "E0000 00:00:1795619834.137034   19380 util.cc:131] oneDNN supports DT_INT32 only on AVX-512.\n"
            "model.py:98: PretrainedWeightsWarning: the encoder is randomly initialised\n")),
        nbformat.v4.new_output("stream", name="stdout", text="I0000 printed by the chapter itself stays\n"),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    page = nbformat.reads(book._page_notebook(path).decode(), as_version=4)
    outputs = page.cells[0].outputs
    assert [o.name for o in outputs] == ["stderr", "stdout"]
    assert outputs[0].text == "model.py:98: PretrainedWeightsWarning: the encoder is randomly initialised\n"
    assert nbformat.read(path, as_version=4).cells[0].outputs[0].text.startswith("WARNING: All log")  # copy untouched


@pytest.mark.slow
def test_a_failed_strict_build_fails_again_until_the_page_is_mended(tmp_path: Path):
    # Sphinx pickles the environment of a failed build; without care the next build finds
    # nothing out of date and passes without a word about the warnings of the first
    repo = tmp_path / "repo"
    (repo / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", repo / "_config.yml")
    shutil.copy(ROOT / "book" / "references.bib", repo / "book" / "references.bib")
    (repo / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (repo / "book" / "intro.md").write_text("# Intro\n\nSee {func}`nowhere.no_such_function`.\n")
    for _ in range(2):
        with pytest.raises(book.BookBuildError, match="failed"):
            book.stage_and_build(repo, repo / "build/executed", repo / "build/site", repo / "build", quiet=True)
    (repo / "book" / "intro.md").write_text("# Intro\n\nSee `nowhere.no_such_function`.\n")
    html = book.stage_and_build(repo, repo / "build/executed", repo / "build/site", repo / "build", quiet=True)
    assert "nowhere.no_such_function" in (html / "book" / "intro.html").read_text()
