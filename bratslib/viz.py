"""Figures for the book: a case viewer, class fractions, library source shown in place.

Plotly only; importing this module does not import TensorFlow.

**Plotly in the built book.**  Jupyter Book v1 shows a cell's ``text/html`` output as it is,
but plotly's default renderers either emit a mime type the book cannot draw
(``plotly_mimetype``) or load plotly.js from a CDN (``notebook_connected``), which shows
nothing offline.  Importing this module registers a renderer, ``"bratslib_book"``, that emits
each figure as a bare ``<div>`` plus the ``Plotly.newPlot`` call, *without* the library; the
book's pages load one local copy of plotly.js instead (``html_js_files`` in ``_config.yml``;
``bratslib.book`` copies the file from the installed plotly package at build time).  The
renderer becomes the default only when the environment variable ``BRATSLIB_BOOK_BUILD`` is
``1`` (``make book`` sets it while executing the chapters), so in Colab, Kaggle or JupyterLab
``fig.show()`` keeps plotly's own renderer.  Chapters therefore just ``import bratslib.viz``
and call ``fig.show()``.

**Orientation.**  Axial slice ``k`` of a volume is ``vol[:, :, k]``; every figure shows it
through :func:`display_slice`, the one place to change if the display convention changes.
"""

from __future__ import annotations

import html
import inspect
import math
import os
from typing import Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer
from plotly.subplots import make_subplots

from bratslib.labels import LABEL_NAMES

#: Name of the renderer registered by this module.
BOOK_RENDERER = "bratslib_book"

#: Environment variable that makes :data:`BOOK_RENDERER` the default renderer.
BOOK_BUILD_ENV = "BRATSLIB_BOOK_BUILD"

#: Line and bar colours of the figures that compare series (plotly's default sequence).
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

#: Overlay colour of each tumour label (necrotic core, oedema, enhancing tumour).
LABEL_COLOURS: dict[int, str] = {1: "#e6194b", 2: "#3cb44b", 4: "#ffe119"}

# ----------------------------------------------------------------------------- renderer


class BookHtmlRenderer(MimetypeRenderer):
    """Emit a figure as HTML that relies on plotly.js being loaded by the page.

    ``fig.to_html(full_html=False, include_plotlyjs=False)``: a ``<div>`` and a script that
    calls ``Plotly.newPlot``.  The book loads ``plotly.min.js`` once per page.
    """

    def __init__(self, config: dict | None = None, default_height: int | str = 525):
        self.config = dict(config) if config else {}
        self.default_height = default_height

    def to_mimebundle(self, fig_dict: dict) -> dict[str, str]:
        html = pio.to_html(
            fig_dict,
            config=self.config,
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            auto_play=False,  # a figure with frames (the case viewer) must not animate on load
            default_width="100%",
            default_height=self.default_height,
            validate=False,
        )
        title = (fig_dict.get("layout", {}).get("title") or {})
        text = title.get("text") if isinstance(title, dict) else title
        return {"text/html": html, "text/plain": f"<plotly figure{': ' + str(text) if text else ''}>"}


def use_book_renderer() -> None:
    """Make :data:`BOOK_RENDERER` plotly's default renderer (what ``make book`` does)."""
    pio.renderers.default = BOOK_RENDERER


pio.renderers[BOOK_RENDERER] = BookHtmlRenderer(config={"displaylogo": False, "responsive": True})
if os.environ.get(BOOK_BUILD_ENV) == "1":
    use_book_renderer()


# ----------------------------------------------------------------------------- helpers


def display_image(image: np.ndarray) -> np.ndarray:
    """An axial image (axes x, y, as in ``vol[:, :, k]``) as it is displayed: its transpose.

    BraTS voxel axes run to the patient's left (x) and to the back (y) (affine
    diag(-1, -1, 1)), so with row 0 drawn at the top the front of the head is at the top and
    the patient's right on the image's left (radiological convention).  Every figure of bratslib goes through here
    (or through :func:`display_slice`), so the convention changes in this one place.
    """
    return np.swapaxes(image, 0, 1)


def display_slice(vol: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of ``vol`` as it is displayed: ``vol[:, :, k].T``."""
    return display_image(vol[:, :, k])


def show_source(*objects) -> "IPython.display.Code":  # noqa: F821
    """The source code of ``objects`` (functions, classes or modules), one after the other,
    for display in a notebook: a chapter shows its architecture's building block beside the
    builder that uses it.

    The book shows library code from the library itself, so the text never drifts from
    what runs.  The result is an :class:`IPython.display.Code` (python lexer) without its
    LaTeX form: Sphinx counts a LaTeX output as an equation and would make the page load
    MathJax from a CDN.
    """
    from IPython.display import Code

    class SourceCode(Code):
        _repr_latex_ = None  # IPython skips a formatter whose method is not callable

    if not objects:
        raise TypeError("show_source needs at least one function, class or module")
    return SourceCode("\n\n\n".join(inspect.getsource(obj).rstrip("\n") for obj in objects) + "\n", language="python")


# ----------------------------------------------------------------------------- case viewer

#: Grey levels kept per voxel by the case viewer; the remaining bits of a uint8 carry the label.
_GREY_LEVELS = 64
#: Overlay slot of each label in the viewer's uint8 encoding (0: no overlay).
_SLOTS: dict[int, int] = {1: 1, 2: 2, 4: 3}


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def _overlay_colourscale(alpha: float) -> list[list]:
    """A colour scale over 0..255 drawing grey, and grey blended with each label colour.

    Value ``g + 64 * slot`` (``g`` in 0..63) is grey level ``g``, alpha-blended with the
    colour of ``slot`` (slot 0: no overlay).  Blending is linear in ``g``, so the linear
    interpolation between the two ends of each quarter is exact.
    """
    scale: list[list] = []
    colours = [(0, 0, 0)] + [_hex_to_rgb(LABEL_COLOURS[label]) for label in _SLOTS]
    for slot, rgb in enumerate(colours):
        a = 0.0 if slot == 0 else alpha
        for grey, value in ((0, 0), (255, _GREY_LEVELS - 1)):
            mixed = [round((1 - a) * grey + a * c) for c in rgb]
            scale.append([(slot * _GREY_LEVELS + value) / 255, f"rgb({mixed[0]},{mixed[1]},{mixed[2]})"])
    return scale


def _grey(vol: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Intensities scaled to 0.._GREY_LEVELS-1 (0.5th to 99.5th percentile of the brain)."""
    inside = vol[brain]
    if inside.size == 0:
        return np.zeros(vol.shape, np.uint8)
    lo, hi = np.percentile(inside, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1
    out = np.clip((vol.astype(np.float32) - lo) / (hi - lo), 0, 1) * (_GREY_LEVELS - 1)
    out = np.rint(out).astype(np.uint8)
    out[~brain] = 0
    return out


def _bounds(mask_1d: np.ndarray, margin: int) -> tuple[int, int]:
    idx = np.flatnonzero(mask_1d)
    if idx.size == 0:
        return 0, mask_1d.size
    return max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, mask_1d.size)


#: Legend of the image figures: one row at the top left, clear of the title and the mode bar.
_LEGEND = dict(orientation="h", yanchor="top", y=0.99, yref="container", x=0, xanchor="left")


def _equal_aspect_image_axes(fig: go.Figure, n_panels: int) -> None:
    """Hide the axes of ``n_panels`` image subplots, square pixels, row 0 at the top."""
    for i in range(1, n_panels + 1):
        suffix = "" if i == 1 else str(i)
        fig.layout[f"xaxis{suffix}"].update(visible=False, constrain="domain")
        fig.layout[f"yaxis{suffix}"].update(visible=False, autorange="reversed", scaleanchor=f"x{suffix}",
                                            scaleratio=1, constrain="domain")


def case_viewer(
    images: Mapping[str, np.ndarray],
    seg: np.ndarray | None = None,
    title: str | None = None,
    *,
    downsample: int = 2,
    max_slices: int = 32,
    alpha: float = 0.5,
    height: int = 380,
    overlays: Mapping[str, np.ndarray | None] | None = None,
) -> go.Figure:
    """The modalities of a case side by side, the label map overlaid, a slider over axial slices.

    Args:
        images: panel title -> 3-D volume (all the same shape), e.g. the modalities of a case.
        seg: the label map (labels 1, 2, 4) drawn over every panel, or None.
        overlays: panel title -> the label map drawn over that panel instead of ``seg``
            (None: no labels there), e.g. ground truth and predictions over the same FLAIR.
        title: the figure's title.
        downsample: keep every ``downsample``-th voxel in-plane (2 halves the page weight 4x).
        max_slices: at most this many slider positions; the slices are evenly spaced over
            the extent of the brain and include the slice with the most tumour.
        alpha: opacity of the label colours.
        height: figure height in pixels.

    The data travel as uint8 (6 bits of grey, 2 bits of label) and are cropped to the
    brain, which keeps a 240 x 240 x 155 case at about 1 MB of HTML.  The slider starts at
    the slice with the most tumour (or the largest brain section when there is no tumour).
    """
    if not images:
        raise ValueError("case_viewer needs at least one image")
    names = list(images)
    vols = [np.asarray(images[n]) for n in names]
    shape = vols[0].shape
    for n, v in zip(names, vols):
        if v.ndim != 3 or v.shape != shape:
            raise ValueError(f"image {n!r} has shape {v.shape}; expected 3-D and equal to {shape}")
    overlays = dict(overlays or {})
    unknown = [n for n in overlays if n not in images]
    if unknown:
        raise ValueError(f"overlay {unknown[0]!r} names no panel; panels: {', '.join(names)}")
    segs = [overlays[n] if n in overlays else seg for n in names]
    segs = [None if m is None else np.asarray(m) for m in segs]
    for n, m in zip(names, segs):
        if m is not None and m.shape != shape:
            raise ValueError(f"the label map of {n!r} has shape {m.shape}; the images have {shape}")
    if downsample < 1 or max_slices < 1:
        raise ValueError("downsample and max_slices must be at least 1")

    brain = np.zeros(shape, bool)
    for v in vols:
        brain |= v != 0
    tumour = np.zeros(shape, bool)
    for m in segs:
        if m is not None:
            tumour |= m > 0
    brain |= tumour
    if not brain.any():
        brain[:] = True

    # Crop to the brain (plus a small margin), keep every `downsample`-th voxel in-plane.
    (i0, i1), (j0, j1), (k0, k1) = (
        _bounds(brain.any(axis=tuple(a for a in range(3) if a != ax)), margin=2) for ax in range(3)
    )
    crop = (slice(i0, i1, downsample), slice(j0, j1, downsample), slice(None))
    encoded = []
    for v, m in zip(vols, segs):
        slot = np.zeros(shape, np.uint8)
        if m is not None:
            for label, s in _SLOTS.items():
                slot[m == label] = s
        encoded.append(_grey(v, brain)[crop] + slot[crop] * _GREY_LEVELS)

    # Slider positions: evenly spaced over the brain's axial extent, through the start slice.
    per_slice = tumour.sum(axis=(0, 1)) if tumour.any() else brain.sum(axis=(0, 1))
    start = int(np.argmax(per_slice))
    step = max(1, math.ceil((k1 - k0) / max_slices))
    slices = list(range(start - step * ((start - k0) // step), k1, step))
    active = slices.index(start)

    n = len(vols)
    fig = make_subplots(rows=1, cols=n, subplot_titles=names, horizontal_spacing=0.01)
    colourscale = _overlay_colourscale(alpha)

    def panels(k: int) -> list[go.Heatmap]:
        return [
            go.Heatmap(
                z=display_slice(e, k), zmin=0, zmax=255, colorscale=colourscale, showscale=False,
                zsmooth=False, hoverinfo="skip", name=name,
            )
            for e, name in zip(encoded, names)
        ]

    for col, trace in enumerate(panels(start), start=1):
        fig.add_trace(trace, row=1, col=col)
    if any(m is not None for m in segs):
        for label, colour in LABEL_COLOURS.items():
            fig.add_trace(
                go.Scatter(x=[None], y=[None], mode="markers", name=f"{label}: {LABEL_NAMES[label]}",
                           marker=dict(symbol="square", size=12, color=colour), hoverinfo="skip"),
                row=1, col=1,
            )
    fig.frames = [go.Frame(data=panels(k), traces=list(range(n)), name=f"z{k}") for k in slices]
    _equal_aspect_image_axes(fig, n)
    fig.update_layout(
        title=title,
        height=height,
        template="none",
        plot_bgcolor="black",
        margin=dict(l=10, r=10, t=90 if title else 60, b=10),
        legend=_LEGEND,
        sliders=[dict(
            active=active,
            currentvalue=dict(prefix="axial slice k = "),
            pad=dict(t=10, b=0),
            steps=[dict(
                method="animate", label=str(k),
                args=[[f"z{k}"], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))],
            ) for k in slices],
        )],
    )
    return fig


# ----------------------------------------------------------------------------- class fractions


def class_fractions(seg: np.ndarray, brain: np.ndarray | None = None) -> dict[str, float]:
    """Fraction of voxels of each label (names from :data:`LABEL_NAMES`).

    Over all voxels, or over ``brain`` (a boolean mask) when given.
    """
    seg = np.asarray(seg)
    values = seg[brain] if brain is not None else seg.ravel()
    total = max(values.size, 1)
    return {name: float(np.count_nonzero(values == label)) / total for label, name in LABEL_NAMES.items()}


def markdown_text(header: Sequence[str], rows: Iterable[Sequence], *, numeric: Sequence[bool] | None = None) -> str:
    """A markdown table as text (pipes in cells escaped).

    Args:
        header: column titles.
        rows: one sequence of cells per row; cells are shown with ``str``.
        numeric: which columns to right-align; default: every column but the first.
    """
    numeric = [i > 0 for i in range(len(header))] if numeric is None else list(numeric)
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence], *, numeric: Sequence[bool] | None = None) -> "IPython.display.Markdown":  # noqa: F821
    """:func:`markdown_text` as a notebook output (rendered as a table in the book)."""
    from IPython.display import Markdown

    return Markdown(markdown_text(header, rows, numeric=numeric))


def class_fraction_figure(segs: Mapping[str, np.ndarray], title: str | None = "voxel fraction of each class") -> go.Figure:
    """Bar chart (log scale) of the voxel fraction of each label, one bar group per case."""
    fig = go.Figure()
    fractions = {key: class_fractions(seg) for key, seg in segs.items()}
    colours = {0: "#888888", **LABEL_COLOURS}
    for label, name in LABEL_NAMES.items():
        fig.add_trace(go.Bar(x=list(fractions), y=[fractions[key][name] for key in fractions], name=name,
                             marker_color=colours[label]))
    fig.update_layout(title=title, barmode="group", yaxis=dict(type="log", title="fraction of voxels"),
                      template="plotly_white", height=400)
    return fig


def region_intensity_figure(cases: Mapping[str, tuple[Mapping[str, np.ndarray], np.ndarray]],
                            modalities: Sequence[str] = ("flair", "t1ce"), bins: int = 60,
                            title: str | None = "intensity of each region (normalised per volume)") -> go.Figure:
    """Distributions of the normalised intensity of each region, one panel per modality.

    Args:
        cases: case label -> (modality -> volume, label map); each volume is normalised as the
            networks see it (:func:`bratslib.data.preprocess.normalize_intensity`, per volume).
        modalities: one panel each.

    One line per case and region (normal brain, oedema, necrotic / non-enhancing core,
    enhancing tumour; a region the case lacks is left out): the share of the region's voxels in
    each intensity bin, so regions of any size compare.  Solid lines for the first case, dashed
    and dotted for the next.
    """
    from bratslib.data.preprocess import normalize_intensity

    fig = make_subplots(rows=1, cols=len(modalities), subplot_titles=list(modalities), shared_yaxes=True)
    edges = np.linspace(0, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    regions = {"normal brain": (0,), **{name: (label,) for label, name in LABEL_NAMES.items() if label}}
    colours = {"normal brain": "#888888", **{LABEL_NAMES[k]: v for k, v in LABEL_COLOURS.items()}}
    dashes = ("solid", "dash", "dot", "dashdot")
    for i, (case, (images, seg)) in enumerate(cases.items()):
        for col, modality in enumerate(modalities, start=1):
            volume = np.asarray(images[modality], np.float32)
            brain = volume != 0
            scaled = normalize_intensity(volume)
            for region, labels in regions.items():
                mask = brain & np.isin(seg, labels)
                if mask.sum() < 50:
                    continue
                counts, _ = np.histogram(scaled[mask], edges)
                fig.add_trace(go.Scatter(x=centres, y=counts / counts.sum(), mode="lines", name=f"{case}: {region}",
                                         legendgroup=case, showlegend=col == 1,
                                         line=dict(color=colours[region], dash=dashes[i % len(dashes)], width=1.5)),
                              row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", height=380)
    fig.update_xaxes(title_text="normalised intensity")
    fig.update_yaxes(title_text="share of the region's voxels", col=1)
    return fig


# ----------------------------------------------------------------------------- data note and batches


class _Note:
    """A boxed note: HTML (themed as an admonition in the book), markdown and text."""

    def __init__(self, kind: str, title: str, text: str):
        self.kind, self.title, self.text = kind, title, text

    def _repr_html_(self) -> str:
        return (f'<div class="admonition {self.kind}"><p class="admonition-title">{html.escape(self.title)}</p>'
                f"<p>{html.escape(self.text)}</p></div>")

    def _repr_markdown_(self) -> str:
        return f"**{self.title}.** {self.text}"

    def __repr__(self) -> str:
        return f"{self.title}. {self.text}"


def data_note(provenance: Mapping) -> _Note:
    """The "which data" box at the top of a chapter, from :func:`bratslib.data.source.data_provenance`.

    Synthetic data get a warning box that says the numbers are not BraTS 2020 results.
    """
    description = str(provenance.get("description", "unknown data"))
    if provenance.get("kind") == "synthetic":
        return _Note("warning", "Data: synthetic",
                     f"The numbers on this page come from {description}. They show that the code works; "
                     "they are not BraTS 2020 results and confirm or refute none of the report's claims.")
    return _Note("note", "Data: real BraTS 2020", f"The numbers on this page come from {description}.")


def batch_figure(
    x: np.ndarray,
    y: np.ndarray | None = None,
    channel_names: tuple[str, ...] | None = None,
    title: str | None = None,
    *,
    max_samples: int = 4,
    panel_height: int = 190,
) -> go.Figure:
    """A batch from a generator: one row per sample, one column per channel, plus the labels.

    Args:
        x: images, (B, H, W, C) for the 2-D models or (B, S, S, S, C) for the 3-D model (the
            middle axial slice is shown).
        y: one-hot labels (..., n_classes) or class indices (0 background, 1 necrotic core,
            2 oedema, 3 enhancing tumour), or None.
        channel_names: column titles (default: channel 0, 1, ...).
        title: the figure's title.
        max_samples: at most this many rows.
    """
    x = np.asarray(x)
    if x.ndim == 5:
        x = x[:, :, :, x.shape[3] // 2]
        y = None if y is None else np.asarray(y)[:, :, :, np.asarray(y).shape[3] // 2]
    if x.ndim != 4:
        raise ValueError(f"x must be (B, H, W, C) or (B, S, S, S, C), got shape {x.shape}")
    labels = None
    if y is not None:
        y = np.asarray(y)
        labels = np.argmax(y, axis=-1) if y.ndim == x.ndim else y
        labels = labels.astype(np.uint8)
    n = min(len(x), max_samples)
    channels = x.shape[-1]
    names = list(channel_names or [f"channel {c}" for c in range(channels)])
    cols = channels + (labels is not None)
    titles = [t if r == 0 else "" for r in range(n) for t in (names + (["labels"] if labels is not None else []))]
    fig = make_subplots(rows=n, cols=cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.02)
    lo = x[:n].min(axis=(0, 1, 2))
    hi = np.maximum(x[:n].max(axis=(0, 1, 2)), lo + 1e-6)
    class_colours = ["#000000", LABEL_COLOURS[1], LABEL_COLOURS[2], LABEL_COLOURS[4]]
    class_scale = [[v, c] for i, c in enumerate(class_colours) for v in (i / 4, (i + 1) / 4)]
    for r in range(n):
        for c in range(channels):
            grey = np.rint((x[r, :, :, c] - lo[c]) / (hi[c] - lo[c]) * 255).astype(np.uint8)
            fig.add_trace(go.Heatmap(z=display_image(grey), zmin=0, zmax=255, colorscale="gray", showscale=False,
                                     zsmooth=False, hoverinfo="skip"), row=r + 1, col=c + 1)
        if labels is not None:
            fig.add_trace(go.Heatmap(z=display_image(labels[r]), zmin=-0.5, zmax=3.5, colorscale=class_scale,
                                     showscale=False, zsmooth=False, hoverinfo="skip"), row=r + 1, col=cols)
    if labels is not None:
        for label, colour in LABEL_COLOURS.items():
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{label}: {LABEL_NAMES[label]}",
                                     marker=dict(symbol="square", size=12, color=colour), hoverinfo="skip"),
                          row=1, col=1)
    _equal_aspect_image_axes(fig, n * cols)
    top = 90 if title else 60
    fig.update_layout(title=title, height=panel_height * n + top + 10, template="none",
                      margin=dict(l=10, r=10, t=top, b=10),
                      legend=_LEGEND)
    return fig


# ----------------------------------------------------------------------------- training and results

#: Default panels of :func:`history_figure`: title -> the logged values drawn in it.
HISTORY_PANELS: dict[str, tuple[str, ...]] = {
    "loss": ("loss", "val_loss"),
    "Dice, tumour classes": ("dice_tumour", "val_dice_tumour"),
    "validation Dice per class": ("val_dice_necrotic", "val_dice_oedema", "val_dice_enhancing"),
}


def curve_name(key: str) -> str:
    """The legend's name of a logged value: ``"val_dice_tumour"`` -> ``"Dice tumour (validation)"``,
    ``"loss"`` -> ``"loss (training)"``."""
    what = key.removeprefix("val_").replace("dice_", "Dice ").replace("_", " ")
    return f"{what} ({'validation' if key.startswith('val_') else 'training'})"


def history_figure(
    history: Sequence[Mapping[str, float]],
    panels: Mapping[str, Sequence[str]] = HISTORY_PANELS,
    *,
    best_epoch: int | None = None,
    title: str | None = None,
    height: int = 360,
) -> go.Figure:
    """Training curves from a run's history (``history.csv`` rows), one panel per entry of
    ``panels``; epochs are counted from 1 and ``best_epoch`` (0-based, as in the history) is
    marked with a dotted line.  Values missing from the history are skipped.

    Every curve has its own colour and a legend name that says what it is (:func:`curve_name`);
    training curves are dotted, validation curves solid."""
    history = list(history)
    epochs = [int(row["epoch"]) + 1 for row in history]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.08)
    drawn = 0
    for col, keys in enumerate(panels.values(), start=1):
        for key in keys:
            if not history or key not in history[0]:
                continue
            fig.add_trace(go.Scatter(x=epochs, y=[row[key] for row in history], name=curve_name(key), mode="lines+markers",
                                     line=dict(color=_PALETTE[drawn % len(_PALETTE)], dash="solid" if key.startswith("val_") else "dot"),
                                     marker=dict(size=5), legendgroup=key, showlegend=True), row=1, col=col)
            drawn += 1
        if best_epoch is not None:
            fig.add_vline(x=best_epoch + 1, line=dict(color="grey", dash="dot"), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_annotations(font_size=12)  # the panels' titles: short, so that they do not run into each other
    fig.update_layout(title=title, height=height, template="plotly_white", margin=dict(l=40, r=10, t=80 if title else 50, b=40),
                      legend=dict(orientation="h", y=-0.28, font_size=11))
    return fig


def maps_figure(image: np.ndarray, maps: Mapping[str, np.ndarray], *, outline: np.ndarray | None = None,
                title: str | None = None, height: int = 330, colorbar_title: str = "") -> go.Figure:
    """An image in grey beside maps of values in [0, 1] over it (attention coefficients and the like).

    Args:
        image: (H, W), e.g. a FLAIR slice at the model's input size (axes x, y: shown through
            :func:`display_image`, as are the maps and the outline).
        maps: panel title -> (h, w) map, h and w dividing H and W (a coarser map is shown
            with its pixels repeated, never interpolated: what the network computed).
        outline: (H, W) bool, e.g. the tumour in the truth, drawn as a contour on every panel.
    """
    from plotly.subplots import make_subplots

    titles = ["image", *maps]
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.02)
    fig.add_trace(go.Heatmap(z=display_image(np.asarray(image, np.float32)), colorscale="gray", showscale=False,
                             hoverinfo="skip"), row=1, col=1)
    height_px, width_px = np.shape(image)
    for col, values in enumerate(maps.values(), start=2):
        values = np.asarray(values, np.float32)
        up = np.repeat(np.repeat(values, height_px // values.shape[0], axis=0), width_px // values.shape[1], axis=1)
        fig.add_trace(go.Heatmap(z=display_image(up), zmin=0, zmax=1, colorscale="Viridis", showscale=col == 2,
                                 colorbar=dict(title=colorbar_title, len=0.8)), row=1, col=col)
    if outline is not None:
        for col in range(1, len(titles) + 1):
            fig.add_trace(go.Contour(z=display_image(np.asarray(outline, np.float32)), showscale=False, hoverinfo="skip",
                                     contours=dict(start=0.5, end=0.5, coloring="lines"),
                                     line=dict(color="#ff4136", width=1.5)), row=1, col=col)
    _equal_aspect_image_axes(fig, len(titles))
    fig.update_layout(title=title, height=height, template="plotly_white", margin=dict(l=10, r=10, t=70 if title else 40, b=10))
    return fig


def summary_cell(stats: Mapping[str, float], digits: int = 3) -> str:
    """One table cell from :func:`bratslib.metrics.summarise` statistics: ``mean ± sd``."""
    mean, std = stats.get("mean"), stats.get("std")
    if mean is None or not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def metric_table(
    summaries: Mapping[str, Mapping[str, Mapping[str, float]]],
    rows: Mapping[str, str],
    *,
    digits: int = 3,
) -> "IPython.display.Markdown":  # noqa: F821
    """A markdown table comparing summaries: one column per summary (e.g. per model), one
    row per metric key (``rows``: key -> label), cells ``mean ± sd`` over cases."""
    header = ["", *summaries]
    body = [[label, *(summary_cell(s.get(key, {}), digits) for s in summaries.values())] for key, label in rows.items()]
    return markdown_table(header, body)


def model_stages(model) -> list[tuple[str, str, int]]:
    """A network's shape, stage by stage: ``(stage, output shape, parameters)``.

    Layers are grouped by the prefix of their names before the first ``_`` (``enc0``,
    ``bottleneck``, ``dec1`` in bratslib's builders; ``conv2``, ``conv3`` ... in Keras'
    ResNet50), in the order they first appear; the shape is that of the stage's last layer,
    without the batch axis.
    """
    stages: dict[str, list] = {}
    for layer in model.layers:
        stage = stages.setdefault(layer.name.split("_")[0], ["", 0])
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            shape = None
        if shape is not None:
            stage[0] = " × ".join("?" if d is None else str(d) for d in shape[1:])
        stage[1] += layer.count_params()
    return [(name, shape, params) for name, (shape, params) in stages.items()]


def model_stages_table(model) -> "IPython.display.Markdown":  # noqa: F821
    """:func:`model_stages` as a markdown table, with the total."""
    rows = [(name, shape, f"{params:,}") for name, shape, params in model_stages(model)]
    rows.append(("total", "", f"{model.count_params():,}"))
    return markdown_table(["stage", "output shape", "parameters"], rows, numeric=[False, False, True])


# ----------------------------------------------------------------------------- comparing models



def interval_bars(
    estimates: Mapping[str, Mapping[str, tuple[float, float, float]]],
    metrics: Mapping[str, str],
    *,
    title: str | None = None,
    yaxis: str = "",
    height: int = 420,
) -> go.Figure:
    """Grouped bars with error bars: one group per metric, one bar per model.

    Args:
        estimates: model label -> metric key -> ``(mean, low, high)`` (the interval drawn as
            an error bar; NaN bounds draw none).
        metrics: metric key -> its label on the x axis, in order.
    """
    fig = go.Figure()
    keys = list(metrics)
    for k, (model, values) in enumerate(estimates.items()):
        mean = [values.get(key, (np.nan,) * 3)[0] for key in keys]
        low = [values.get(key, (np.nan,) * 3)[1] for key in keys]
        high = [values.get(key, (np.nan,) * 3)[2] for key in keys]
        fig.add_trace(go.Bar(
            name=model, x=[metrics[key] for key in keys], y=mean, marker_color=_PALETTE[k % len(_PALETTE)],
            error_y=dict(type="data", symmetric=False, array=np.subtract(high, mean), arrayminus=np.subtract(mean, low),
                         thickness=1.2, width=3),
        ))
    # the legend goes below the axis labels, in a margin made for it: neither is cut nor covers the other
    fig.update_layout(barmode="group", title=title, height=height, template="plotly_white", yaxis_title=yaxis,
                      margin=dict(l=50, r=10, t=60 if title else 20, b=90),
                      legend=dict(orientation="h", yanchor="top", y=-0.12, font_size=11))
    fig.update_xaxes(automargin=True)
    return fig


def model_scatter(
    points: Mapping[str, tuple[float, float]],
    *,
    x_title: str,
    y_title: str,
    title: str | None = None,
    log_x: bool = False,
    height: int = 400,
) -> go.Figure:
    """One labelled point per model: ``points[model label] = (x, y)``."""
    fig = go.Figure()
    for k, (model, (x, y)) in enumerate(points.items()):
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers+text", name=model, text=[model], textposition="top center",
                                 marker=dict(size=12, color=_PALETTE[k % len(_PALETTE)]), showlegend=False,
                                 cliponaxis=False))  # a label at the plot's edge is drawn whole
    fig.update_layout(title=title, height=height, template="plotly_white", xaxis_title=x_title, yaxis_title=y_title,
                      margin=dict(l=60, r=60, t=60 if title else 30, b=50))
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def curves_figure(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    key: str,
    *,
    title: str | None = None,
    yaxis: str | None = None,
    height: int = 380,
) -> go.Figure:
    """One logged value (e.g. ``val_dice_tumour``) against the epoch, one line per model."""
    fig = go.Figure()
    for k, (model, history) in enumerate(histories.items()):
        rows = [row for row in history if key in row]
        fig.add_trace(go.Scatter(x=[int(row["epoch"]) + 1 for row in rows], y=[row[key] for row in rows], name=model,
                                 mode="lines+markers", line=dict(color=_PALETTE[k % len(_PALETTE)])))
    fig.update_layout(title=title, height=height, template="plotly_white", xaxis_title="epoch", yaxis_title=yaxis or key,
                      margin=dict(l=50, r=10, t=60 if title else 20, b=40), legend=dict(orientation="h", y=-0.2))
    return fig
