"""Everything the results chapter sets side by side: runs, claims, intervals, paired tests.

The model chapters each leave a run folder in ``results/``.  This module finds the runs that
belong to one data set and profile (:func:`collect_runs`), reads their evaluations back, puts
every claim of ``bratslib/claims.yml`` beside the reproduced number with a verdict
(:func:`claim_table`), and gives the statistics that say whether a difference means anything:
a bootstrap interval of a mean over cases (:func:`bootstrap_ci`, ``scipy.stats.bootstrap``)
and a paired test of two models on the same cases (:func:`paired_comparison`,
``scipy.stats.wilcoxon``).

It reads results and writes nothing; it does not import TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from bratslib.claims import COMPOSITE_DICE, reproduced_values
from bratslib.labels import REGIONS
from bratslib.registry import BASELINE_NAME, MODELS, model_label
from bratslib.results import DATA_KEYS, Run, find_runs

#: A reproduced value within this distance of the report's "agrees" (real data only).
AGREEMENT = 0.05


@dataclass
class ModelResult:
    """One model's finished run and what was measured.

    Attributes:
        model: the builder's name (``"unet2d"``, ``"quantum_classifier"``...).
        run: the run folder.
        metrics: ``metrics.json``; per_case: ``per_case.csv`` rows.
        best: the history row of the best epoch.
    """

    model: str
    run: Run
    metrics: dict[str, Any]
    per_case: list[dict[str, Any]]
    best: dict[str, Any]

    @property
    def label(self) -> str:
        """The model's label in :data:`bratslib.registry.MODELS` (its name when it has none)."""
        return model_label(self.model)

    @property
    def is_classifier(self) -> bool:
        return self.model in MODELS and MODELS[self.model].is_classifier

    def values(self, key: str) -> np.ndarray:
        """``key`` of every test case, in the order of ``per_case.csv``."""
        return np.array([row[key] for row in self.per_case], dtype=np.float64)

    def mean(self, key: str) -> float:
        """The mean over test cases of ``key``, as ``metrics.json`` holds it (segmentation runs)."""
        return self.metrics["summary"][key]["mean"]

    @property
    def pooled_dice(self) -> float:
        return self.metrics.get("pooled_dice", float("nan"))


def _same_data(data: Mapping[str, Any], provenance: Mapping[str, Any]) -> bool:
    return all(data.get(k) == provenance.get(k) for k in DATA_KEYS)


def _evaluated_runs(provenance: Mapping[str, Any], profile: str, results_dir: str | os.PathLike | None):
    """``(run, metrics)`` of every finished, evaluated run of this data and profile, oldest first."""
    for run in find_runs(results_dir=results_dir):
        if run.config.get("profile") != profile or not run.finished or not _same_data(run.data, provenance):
            continue
        metrics = run.metrics()
        if metrics is not None:
            yield run, metrics


def _model_result(run: Run, metrics: Mapping[str, Any], model: str | None = None) -> ModelResult:
    history = run.history()
    return ModelResult(model or run.config.get("model", run.name), run, dict(metrics), run.per_case(),
                       history[int(run.state["best_epoch"])] if history else {})


def collect_runs(provenance: Mapping[str, Any], profile: str, results_dir: str | os.PathLike | None = None, *,
                 include_baseline: bool = False) -> dict[str, ModelResult]:
    """The newest finished and evaluated run of each model on this data and profile: the
    chapters' own runs, not their replicates (another training seed) or variants (another
    setting of the same model, e.g. chapter 4's frozen encoder).

    Args:
        provenance: :func:`bratslib.data.source.data_provenance` of the data set.
        profile: ``"tiny"``, ``"smoke"`` or ``"full"``.
        include_baseline: also chapter 2's threshold baseline (``"threshold_baseline"``, last),
            for rankings; it has no model, history or parameters.

    Returns:
        ``{model name: ModelResult}`` in the order of :data:`bratslib.registry.MODELS`; models without
        such a run are left out (their chapters were not run on this data).
    """
    found: dict[str, ModelResult] = {}
    for run, metrics in _evaluated_runs(provenance, profile, results_dir):  # newer runs replace older ones
        config = run.config
        if config.get("replicate") or config.get("variant") or (config.get("model") == BASELINE_NAME and not include_baseline):
            continue
        found[config.get("model", run.name)] = _model_result(run, metrics)
    others = sorted(set(found) - set(MODELS) - {BASELINE_NAME})
    return {m: found[m] for m in [*MODELS, *others, BASELINE_NAME] if m in found}


def collect_replicates(provenance: Mapping[str, Any], profile: str, model: str,
                       results_dir: str | os.PathLike | None = None) -> dict[int, ModelResult]:
    """Every finished, evaluated run of ``model`` on this data and profile that differs from
    the chapter's run only in its training seed (``ChapterSetup.train(training_seed=...)``),
    the chapter's own run included: ``{training seed: ModelResult}``, sorted by seed (the
    newest run of each seed).  All of them are scored on the same test cases: a replicate
    of another split is left out."""
    chapter_run, replicates = None, []
    for run, metrics in _evaluated_runs(provenance, profile, results_dir):
        if run.config.get("model") != model or run.config.get("variant"):
            continue
        if run.config.get("replicate"):
            replicates.append((run, metrics))
        else:
            chapter_run = (run, metrics)
    if chapter_run is None:
        return {}
    test_cases = chapter_run[0].split.get("test")
    found = {int(run.config["training"]["seed"]): _model_result(run, metrics, model)
             for run, metrics in [*replicates, chapter_run] if run.split.get("test") == test_cases}
    return dict(sorted(found.items()))


#: Fewer cases than this and an interval of a mean says too little to print as a range.
MIN_CASES_FOR_INTERVAL = 5


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``values``, the cases resampled with replacement
    (``scipy.stats.bootstrap``, bias-corrected and accelerated: the plain percentile interval
    is too narrow on a dozen cases); (NaN, NaN) for fewer than :data:`MIN_CASES_FOR_INTERVAL`
    values, where no resampling can say how far the mean may be off."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < MIN_CASES_FOR_INTERVAL:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    with np.errstate(all="ignore"):
        result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method="BCa", rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):  # BCa degenerates when most values are equal
        result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method="percentile", rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return low, high


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p a Wilcoxon signed-rank test can give on ``n`` pairs: 2 / 2**n
    (every difference of one sign); 1 for no pairs."""
    return min(1.0, 2.0 / 2.0 ** n) if n > 0 else 1.0


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` for testing them all at once (family-wise
    error rate): the k-th smallest p times (m - k + 1), made monotone, capped at 1.  NaN stays
    NaN and does not count among the m tests."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted


def pairwise_comparisons(results: Mapping[str, ModelResult], keys: Sequence[str], *, alpha: float = 0.05,
                         seed: int = 0) -> list[dict[str, Any]]:
    """Every pair of ``results`` (label -> result) on every per-case metric of ``keys``, each a
    :func:`paired_comparison` with ``p_holm`` (Holm over all the pairs and keys at once) and a
    ``verdict``: ``"<label> higher"`` / ``"<label> lower"`` when significant at ``alpha`` after
    the correction, ``"no significant difference"``, or ``"too few cases to tell"`` when even
    the smallest p possible on these cases, times the number of comparisons, exceeds ``alpha``.
    """
    labels = list(results)
    rows = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            for key in keys:
                rows.append({"a": a, "b": b, "key": key, **paired_comparison(results[a], results[b], key, seed=seed)})
    adjusted = holm([r["p"] for r in rows])
    m = int(np.isfinite([r["p"] for r in rows]).sum())
    for row, p_holm in zip(rows, adjusted):
        row["p_holm"], row["comparisons"] = float(p_holm), m
        if smallest_wilcoxon_p(row["n"]) * m > alpha:
            row["verdict"] = "too few cases to tell"
        elif np.isfinite(p_holm) and p_holm <= alpha:
            row["verdict"] = f"{row['a']} {'higher' if row['difference'] > 0 else 'lower'}"
        else:
            row["verdict"] = "no significant difference"
    return rows


def metric_name(key: str) -> str:
    """A per-case metric's key as the tables and sentences print it: ``"dice_TC"`` -> ``"Dice TC"``,
    ``"hd95_WT"`` -> ``"HD95 WT"``, ``"mean_iou"`` -> ``"mean iou"``."""
    return key.replace("dice_", "Dice ").replace("hd95_", "HD95 ").replace("_", " ")


def _region_value(scores: Any, key: str) -> float:
    """``scores[key]``, or ``scores.mean(key)`` for an evaluation (:class:`bratslib.evaluate.Evaluation`)."""
    return float(scores[key] if isinstance(scores, Mapping) else scores.mean(key))


def region_triple(scores: Any, metric: str = "dice", digits: int = 2) -> str:
    """``"0.82 / 0.63 / 0.86"``: ``metric`` of WT / TC / ET to ``digits`` decimals, as the book's
    tables print them; ``"-"`` for a value that is not finite (an HD95 of an empty region).

    ``scores``: a mapping with the keys ``<metric>_WT``, ``<metric>_TC``, ``<metric>_ET`` (one
    case of an evaluation's ``per_case``, or means), or an evaluation, whose means are used."""
    values = [_region_value(scores, f"{metric}_{r}") for r in REGIONS]
    return " / ".join(f"{v:.{digits}f}" if np.isfinite(v) else "-" for v in values)


def regions_compared(new: Any, old: Any, metric: str = "dice", digits: int = 2) -> dict[str, list[str]]:
    """Which regions ``new`` is above, below and level with ``old`` in, ``{"above": [...],
    "below": [...], "level": [...]}``, compared as printed: both rounded to ``digits`` decimals
    first, so that a sentence never calls two equal printed numbers different.  ``new``, ``old``:
    as :func:`region_triple` reads them."""
    placed: dict[str, list[str]] = {"above": [], "below": [], "level": []}
    for r in REGIONS:  # WT, TC, ET
        a, b = (round(_region_value(x, f"{metric}_{r}"), digits) for x in (new, old))
        placed["above" if a > b else "below" if a < b else "level"].append(r)
    return placed


def regions_against(new: Any, old: Any, metric: str = "dice", digits: int = 2) -> str:
    """:func:`regions_compared` in words: ``"above in WT, TC, below in ET"``."""
    return ", ".join(f"{where} in {', '.join(regions)}" for where, regions in regions_compared(new, old, metric, digits).items()
                     if regions)


def comparisons_verdict(rows: Sequence[Mapping[str, Any]], alpha: float = 0.05) -> str:
    """One paragraph on :func:`pairwise_comparisons`' rows: how many differ significantly after
    the correction and which, or why none can."""
    if not rows:
        return "There is only one model to compare: no pairwise comparison."
    m = rows[0]["comparisons"]
    n = min(r["n"] for r in rows)
    significant = [r for r in rows if r["verdict"] not in ("no significant difference", "too few cases to tell")]
    if all(r["verdict"] == "too few cases to tell" for r in rows):
        return (f"With {n} test cases no difference can be significant: the smallest p a Wilcoxon test can give "
                f"is {smallest_wilcoxon_p(n):.3g}, and Holm's correction over {m} comparisons multiplies it by up "
                f"to {m}. Too few cases to tell any of these models apart.")
    if not significant:
        return (f"None of the {m} differences is significant at {alpha:g} after Holm's correction over {m} "
                f"comparisons ({n} test cases): on these cases the models cannot be told apart.")
    named = "; ".join(f"{r['a']} vs {r['b']} on {metric_name(r['key'])}: {r['a']} {r['verdict'].rsplit(' ', 1)[-1]} by "
                      f"{abs(r['difference']):.3f} (Holm-adjusted p = {r['p_holm']:.3g})" for r in significant)
    rest = m - len(significant)
    return (f"{len(significant)} of the {m} differences {'is' if len(significant) == 1 else 'are'} significant at "
            f"{alpha:g} after Holm's correction ({n} test cases): {named}."
            + (" The other is not." if rest == 1 else f" The other {rest} are not." if rest else ""))


def comparisons_table(rows: Sequence[Mapping[str, Any]], *, means: bool = False):
    """:func:`pairwise_comparisons`' rows as a table: the pair (``a − b``), the metric, the
    cases in common, the mean difference with its 95 % bootstrap interval, the Wilcoxon p, the
    Holm-adjusted p and the verdict; with ``means``, also each model's mean."""
    from bratslib import viz

    head = ["models", "metric", "cases", *(["mean of the first", "mean of the second"] if means else []),
            "mean difference [95 % interval]", "Wilcoxon p", "Holm p", "verdict"]
    body = [(f"{r['a']} − {r['b']}", metric_name(r["key"]), r["n"],
             *([f"{r['mean_a']:.3f}", f"{r['mean_b']:.3f}"] if means else []),
             f"{r['difference']:+.3f}" + ("" if not np.isfinite(r["ci"][0]) else f" [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]"),
             f"{r['p']:.3g}", f"{r['p_holm']:.3g}", r["verdict"]) for r in rows]
    return viz.markdown_table(head, body, numeric=[False, False, True, *([True, True] if means else []), True, True, True, False])


def paired_comparison(a: ModelResult, b: ModelResult, key: str, seed: int = 0) -> dict[str, Any]:
    """``a`` against ``b`` on the test cases both were scored on, for the per-case ``key``.

    Returns ``n`` (cases in common), ``mean_a``, ``mean_b``, ``difference`` (mean of a - b),
    ``ci`` (its 95 % bootstrap interval) and ``p`` (two-sided Wilcoxon signed-rank test;
    NaN when it cannot be computed, 1.0 when every difference is 0).  With n cases the
    smallest possible p is 2 / 2**n: 0.25 for 3 cases, so no difference on so few cases can
    be called significant.
    """
    rows_a = {r["case_id"]: r[key] for r in a.per_case}
    rows_b = {r["case_id"]: r[key] for r in b.per_case}
    common = [c for c in rows_a if c in rows_b]
    x = np.array([rows_a[c] for c in common], dtype=np.float64)
    y = np.array([rows_b[c] for c in common], dtype=np.float64)
    diff = x - y
    if not common:
        p = float("nan")
    elif np.all(diff == 0):
        p = 1.0
    else:
        try:
            p = float(stats.wilcoxon(x, y).pvalue)
        except ValueError:
            p = float("nan")
    return {"n": len(common), "mean_a": float(x.mean()) if common else float("nan"),
            "mean_b": float(y.mean()) if common else float("nan"),
            "difference": float(diff.mean()) if common else float("nan"), "ci": bootstrap_ci(diff, seed=seed), "p": p}


def _reproduced(result: ModelResult) -> dict[str, tuple[float, str]]:
    if result.is_classifier:
        pooled = result.metrics["pooled"]
        return {k: (pooled[k], "all test slices pooled, threshold 0.5") for k in
                ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc")}
    return reproduced_values(result, result.best)


def _verdict(report: float, ours: float | None, kind: str | None) -> str:
    if ours is None or not np.isfinite(ours):
        return "not reproduced"
    if kind != "real":
        return "not comparable: synthetic data"
    gap = ours - report
    return "agrees (within ±0.05)" if abs(gap) <= AGREEMENT else f"differs by {gap:+.3f}"


def claim_table(claims: Mapping[str, Any], results: Mapping[str, ModelResult], provenance: Mapping[str, Any]) -> list[dict]:
    """Every claim of the claims file beside the reproduced value, with a verdict.

    Rows: ``chapter``, ``model`` (the report's name), ``claim``, ``where``, ``report``,
    ``reproduced`` (None if not), ``measures`` (what the reproduced number is, or why there
    is none), ``data``, ``interval`` (the 95 % bootstrap interval over the test cases when
    the reproduced number is a mean over cases, else None) and ``verdict``.  Each entry of the
    claims file is answered by the model whose ``claims`` it is in :data:`bratslib.registry.MODELS`
    (the quantum chapter's, about the hybrid, by the quantum classifier); the ``report`` entry's
    by all models together.
    """
    by_chapter: dict[str, ModelResult] = {}
    for name, result in results.items():
        claims_key = MODELS[name].claims if name in MODELS else name
        if claims_key is not None:
            by_chapter[claims_key] = result
    overall = _overall_values(results)
    rows = []
    for chapter, entry in claims.items():
        if not isinstance(entry, dict) or "claims" not in entry:
            continue
        result = by_chapter.get(chapter)
        ours = overall if chapter == "report" else (_reproduced(result) if result is not None else {})
        data = provenance.get("description") if (result is not None or chapter == "report") else None
        for claim in entry["claims"]:
            value, measures = ours.get(claim["key"], (None, None))
            cases = _per_case_values(result, claim["key"]) if result is not None and chapter != "report" else None
            if measures is None:
                measures = ("not reproduced: its chapter has no finished run on this data" if result is None and chapter != "report"
                            else "not reproduced: this book has no measurement that matches it")
            rows.append({"chapter": chapter, "model": entry["model"], "claim": claim["label"], "where": claim["where"],
                         "report": claim["value"], "reproduced": value, "measures": measures, "data": data,
                         "interval": bootstrap_ci(cases) if cases is not None else None,
                         "verdict": _verdict(claim["value"], value, provenance.get("kind"))})
    return rows


def _per_case_values(result: ModelResult, key: str) -> np.ndarray | None:
    """The per-case values behind a reproduced mean (for its bootstrap interval), or None
    when the reproduced number is not a mean over cases (pooled values, training logs)."""
    if result.is_classifier or not result.per_case:
        return None
    if key in COMPOSITE_DICE:
        return np.mean([result.values(k) for k in COMPOSITE_DICE[key]], axis=0)
    if key in result.per_case[0] and key != "case_id":
        return result.values(key)
    return None


def _overall_values(results: Mapping[str, ModelResult]) -> dict[str, tuple[float, str]]:
    """The ``report`` entry's claims, from all segmentation runs together."""
    seg = {m: r for m, r in results.items() if not r.is_classifier}
    if not seg:
        return {}
    values = {m: _reproduced(r) for m, r in seg.items()}
    iou = {m: v["mean_iou"][0] for m, v in values.items()}
    best = max(iou, key=iou.get)
    losses = [r.best.get("val_loss", np.nan) for r in seg.values()]
    label = model_label(best)
    return {
        "accuracy_all": (float(np.mean([v["accuracy"][0] for v in values.values()])),
                         f"mean voxel accuracy of the {len(seg)} segmentation models"),
        "val_loss_min": (float(np.nanmin(losses)), "lowest validation loss at the best epoch (Dice + focal loss)"),
        "val_loss_max": (float(np.nanmax(losses)), "highest validation loss at the best epoch (Dice + focal loss)"),
        "best_mean_iou": (iou[best], f"best mean IoU: {label}"),
        "best_class_dice": (values[best]["dice_class_mean"][0], f"mean class Dice of the best-IoU model, {label}"),
    }


__all__ = ["AGREEMENT", "ModelResult", "collect_runs", "collect_replicates", "bootstrap_ci",
           "paired_comparison", "pairwise_comparisons", "comparisons_table", "comparisons_verdict", "claim_table"]
