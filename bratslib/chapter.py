"""The steps every segmentation chapter takes, in one place.

Each architecture chapter of the book does the same five things around its own model: read
its profile and data, make the datasets, train, evaluate whole cases, and set the numbers
beside the report's.  The notebook keeps the narrative and the lines particular to its
model; this module keeps the rest, so that every chapter trains and scores its model in
exactly the same way::

    setup = ChapterSetup.create("unet2d", profile, data_dir=data_dir, seed=seed, epochs=epochs)
    datasets = setup.datasets(cache_dir)
    result = setup.train(build_unet2d, datasets, results_dir=results_dir)
    evaluation = evaluate_run(result.run, setup.data_root, model=result.model, cache_dir=cache_dir)

Chapter 2 takes these steps one at a time and shows each; the chapters after it take them in
one call, :meth:`ChapterSetup.train_and_evaluate`, and spend their pages on what only their
architecture shows.

Importing this module imports Keras (and so TensorFlow).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bratslib.claims import (
    CLASS_ROWS, EVALUATION_ROWS, HD95_ROWS, OVERALL_ROWS, REGION_ROWS, claims_rows, load_claims, reproduced_values,
)
from bratslib.data.augment import augment_config
from bratslib.data.generators import Datasets, TumourSliceDataset, make_datasets
from bratslib.data.source import SYNTHETIC_CASES, data_provenance, resolve_data_dir
from bratslib.metrics import region_split
from bratslib.profiles import profile_settings
from bratslib.registry import ModelSpec
from bratslib.training import TrainedRun, distribution_strategy, train

@dataclass
class ChapterSetup:
    """A chapter's settings and data, resolved from its ``parameters`` cell.

    Attributes:
        chapter: the profile table's key and the run names' prefix (``"unet2d"``).
        profile: ``"tiny"``, ``"smoke"`` or ``"full"`` (:mod:`bratslib.profiles`).
        seed: seeds the split, the weights and the data order.
        settings: :func:`bratslib.profiles.profile_settings` with the chapter's overrides.
        data_root: the folder of cases (:func:`bratslib.data.source.resolve_data_dir`).
        provenance: :func:`bratslib.data.source.data_provenance` of it; once
            :meth:`datasets` has left bad cases out, also ``skipped_cases`` (id -> error),
            which every run's ``data.json`` then records.
        skip_bad_cases: leave out (and log) cases that cannot be read instead of stopping at
            the first (:func:`~bratslib.data.generators.make_datasets`).
        strategy: the ``tf.distribute`` strategy to train under; None:
            :func:`bratslib.training.distribution_strategy` (mirrored over several GPUs).  The
            profile's ``batch_size`` is per replica: the datasets serve it times the replicas.
        time_limit_hours: hours each :meth:`train` call may train in this session (None: no
            limit); a run stopped by it continues when the chapter runs again.
    """

    chapter: str
    profile: str
    seed: int
    settings: dict[str, Any]
    data_root: Path
    provenance: dict[str, Any]
    skip_bad_cases: bool = False
    strategy: Any = None
    time_limit_hours: float | None = None

    def __post_init__(self):
        if self.strategy is None:
            self.strategy = distribution_strategy()

    @property
    def replicas(self) -> int:
        """Number of model replicas trained in step (1 without several GPUs)."""
        return int(self.strategy.num_replicas_in_sync)

    @classmethod
    def create(cls, chapter: str, profile: str, *, data_dir: str | os.PathLike | None = None, n_cases: int = SYNTHETIC_CASES,
               seed: int = 0, skip_bad_cases: bool = False, strategy: Any = None,
               time_limit_hours: float | None = None, resume_from: str | os.PathLike | None = None,
               results_dir: str | os.PathLike | None = None, **overrides: Any) -> ChapterSetup:
        """Settings of ``chapter`` under ``profile`` (``overrides`` that are None are ignored),
        and the data: ``data_dir``, or the synthetic data set of ``n_cases`` cases and ``seed``.

        ``resume_from``: a results folder of an earlier session (e.g. a Kaggle notebook's
        earlier output, ``/kaggle/input/<notebook>/results``) whose runs are first copied into
        ``results_dir`` (:func:`bratslib.results.restore_runs`), so that training continues
        them.  ``time_limit_hours``: see the class attributes."""
        settings = profile_settings(chapter, profile, **overrides)
        if resume_from is not None:
            from bratslib.results import restore_runs

            copied = restore_runs(resume_from, results_dir)
            print(f"resume_from: {len(copied)} run(s) copied from {resume_from}" + (f": {', '.join(copied)}" if copied else
                  " (none newer than those already in the results folder)"))
        root = resolve_data_dir(data_dir, synthetic_cases=n_cases, seed=seed)
        return cls(chapter, profile, seed, settings, root, data_provenance(root), bool(skip_bad_cases), strategy,
                   time_limit_hours)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(S, S, C) for a 2-D model, (S, S, S, C) for a 3-D one; C = number of modalities."""
        s = self.settings
        spatial = (s["size"],) * (2 if s["mode"] == "2d" else 3)
        return (*spatial, len(s["modalities"]))

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """The builder's arguments: input shape, four classes and the profile's ``model`` settings."""
        return {"input_shape": self.input_shape, "n_classes": self.settings.get("n_classes", 4), **self.settings["model"]}

    def builder_kwargs(self, spec: ModelSpec) -> dict[str, Any]:
        """What this chapter builds ``spec`` (an entry of :data:`bratslib.registry.MODELS`)
        with: :attr:`model_kwargs` and, for a model with a ``head`` (chapter 8's classifiers),
        that head's settings."""
        if spec.profile != self.chapter:
            raise ValueError(f"{spec.name} is trained by the chapter {spec.profile!r}, not {self.chapter!r}")
        return {**self.model_kwargs, **(self.settings[spec.head] if spec.head else {})}

    def run_name(self, builder: Callable[..., Any] | None = None) -> str:
        """``<chapter>-<profile>-seed<seed>``, or with ``builder`` ``<model>-<profile>-seed<seed>``
        (a chapter that trains several models)."""
        prefix = self.chapter if builder is None else builder.__name__.removeprefix("build_")
        return f"{prefix}-{self.profile}-seed{self.seed}"

    def settings_table(self, exclude: tuple[str, ...] = ("baseline_cases",)):
        """The profile's settings as a table, the model's arguments as ``model: <name>`` rows."""
        from bratslib import viz

        s = self.settings
        return viz.markdown_table(["setting", f"profile {self.profile!r}"],
                                  [(k, v) for k, v in s.items() if k not in ("model", *exclude)] +
                                  [(f"model: {k}", v) for k, v in s["model"].items()])

    def datasets(self, cache_dir: str | os.PathLike | None = None, progress: bool = True, workers: int = 1) -> Datasets:
        """Train / val / test datasets by case, as the profile says (size, modalities,
        slices per epoch, foreground share, augmentation).

        ``workers`` > 1 prepares batches in that many worker processes (Keras'
        ``use_multiprocessing``): worth it on a GPU machine with spare cores, where one core
        augmenting (about 400 slices per second at 128 x 128, ``benchmarks/bench_data.py``) may
        not keep up with the GPU; on a 2-core CPU the model is the bottleneck and one is best.
        """
        s = self.settings
        task = {} if workers <= 1 else {"workers": int(workers), "use_multiprocessing": True}
        if "min_tumour_pixels" in s:  # slice classification: tumour / no tumour
            task.update(dataset_class=TumourSliceDataset, min_tumour_pixels=s["min_tumour_pixels"])
        made = make_datasets(self.data_root, mode=s["mode"], modalities=s["modalities"], size=s["size"],
                             normalize=s["normalize"], seed=self.seed, cache_dir=cache_dir,
                             batch_size=s["batch_size"] * self.replicas,
                             samples_per_epoch=s["samples_per_epoch"], val_samples=s["val_samples"],
                             foreground_fraction=s["foreground_fraction"], skip_bad_cases=self.skip_bad_cases,
                             crop=bool(s.get("crop", False)), fractions=tuple(s.get("split", (0.7, 0.15, 0.15))),
                             augment=augment_config(s["augment"]), progress=progress, **task)
        if made.skipped:
            print(f"{len(made.skipped)} case(s) left out because they cannot be read (skip_bad_cases=True); "
                  "recorded in every run's data.json:")
            for error in made.skipped.values():
                print(f"  {error}")
            self.provenance = {**self.provenance, "skipped_cases": dict(made.skipped)}
        return made

    def train(self, builder: Callable[..., Any], datasets: Datasets, *,
              results_dir: str | os.PathLike | None = None, extra_model_kwargs: Mapping[str, Any] | None = None,
              training_seed: int | None = None, variant: str | None = None, **train_kwargs: Any) -> TrainedRun:
        """:func:`bratslib.training.train` of ``builder(**model_kwargs, **extra_model_kwargs)``
        with the profile's schedule, into the run ``<chapter>-<profile>-seed<seed>`` (or
        ``<model>-<profile>-seed<seed>`` when the builder is not the chapter's namesake);
        ``train_kwargs`` go to :func:`~bratslib.training.train` (``loss``, ``metrics``, ``monitor``...).

        ``training_seed``: another seed for the weights, dropout and the order of the training
        slices, the split (hence the test cases) staying the chapter's: a *replicate* run,
        named ``...-seed<seed>-train<training_seed>`` and marked ``"replicate": true`` in its
        ``config.json``, which shows how far the numbers move with the seed alone
        (:func:`bratslib.comparison.collect_replicates`); the results chapter's comparison
        uses the chapter's own run.

        ``variant``: a short name for a run of the same model with other settings (say
        ``extra_model_kwargs={"freeze_encoder": True}``, ``variant="frozen"``): named
        ``...-seed<seed>-<variant>`` and marked ``"variant"`` in its ``config.json``, so that
        it never stands in for the chapter's run in :func:`bratslib.comparison.collect_runs`."""
        s, kwargs = self.settings, {**self.model_kwargs, **dict(extra_model_kwargs or {})}
        config = {"chapter": self.chapter, "model": builder.__name__.removeprefix("build_"), "profile": self.profile,
                  "model_kwargs": kwargs, "task": {k: s[k] for k in ("n_classes", "min_tumour_pixels") if k in s},
                  **{k: s[k] for k in ("postprocess", "mirror") if k in s}}
        name = self.run_name(builder if builder.__name__.removeprefix("build_") != self.chapter else None)
        seed = self.seed
        if training_seed is not None and int(training_seed) != self.seed:
            seed = int(training_seed)
            name, config["replicate"] = f"{name}-train{seed}", True
        if variant is not None:
            name, config["variant"] = f"{name}-{variant}", str(variant)
        order_seed = datasets.train.seed
        datasets.train.seed = seed  # the training slices' order (the split is fixed already)
        try:
            return train(lambda: builder(**kwargs), datasets, name=name, config=config, data=self.provenance,
                         epochs=s["epochs"], learning_rate=s["learning_rate"],
                         lr_schedule=s.get("lr_schedule", "plateau"), lr_patience=s["lr_patience"],
                         stop_patience=s["stop_patience"], seed=seed, results_dir=results_dir,
                         **{"strategy": self.strategy, "time_limit": self.time_limit_seconds, **train_kwargs})
        finally:
            datasets.train.seed = order_seed
            datasets.train.set_epoch(0)

    def baseline(self, datasets: Datasets, *, results_dir: str | os.PathLike | None = None, progress: bool = True):
        """Chapter 2's threshold baseline on this chapter's split (the same test cases as its
        model), fitted on the profile's ``baseline_cases`` training cases; computed once per
        data, split and profile and kept in the results folder
        (:func:`bratslib.evaluate.baseline_run`).  Returns ``(baseline, evaluation)``."""
        from bratslib.evaluate import baseline_run

        return baseline_run(self.data_root, datasets.split, self.provenance, profile=self.profile, seed=self.seed,
                            fit_cases=self.settings.get("baseline_cases", 6),
                            normalize=datasets.cache.settings.get("normalize", "volume"), results_dir=results_dir,
                            progress=progress)

    @property
    def time_limit_seconds(self) -> float | None:
        return None if self.time_limit_hours is None else float(self.time_limit_hours) * 3600

    def train_and_evaluate(self, builder: Callable[..., Any], *, cache_dir: str | os.PathLike | None = None,
                           results_dir: str | os.PathLike | None = None, show: bool = True) -> ChapterOutcome:
        """Chapter 2's steps, one after the other, for a chapter whose own material is
        elsewhere: the datasets (:meth:`datasets`), training (:meth:`train`), the whole-case
        evaluation of the test cases (:func:`bratslib.evaluate.evaluate_run`) and chapter 2's
        threshold baseline on the same cases (:meth:`baseline`).

        With ``show``, it displays what chapter 2 shows step by step, in that order: the
        settings, one line per epoch and the run's summary, the training history, the
        evaluation table beside the baseline with its verdict (:func:`evaluation_table`), the
        test case of median whole-tumour Dice (:func:`median_case_viewer`), and the report's
        numbers for this model beside this run's (:func:`report_table`) under the note on the
        data they come from."""
        from IPython.display import Markdown, display

        from bratslib import viz
        from bratslib.evaluate import evaluate_run
        from bratslib.registry import MODELS

        model = builder.__name__.removeprefix("build_")
        label = MODELS[model].label
        show_ = display if show else (lambda *_: None)
        show_(Markdown(f"**Settings** of the profile `{self.profile}` (`bratslib.profiles`):"), self.settings_table())
        datasets = self.datasets(cache_dir, progress=show)
        result = self.train(builder, datasets, results_dir=results_dir, **({} if show else {"verbose": 0}))
        if show:
            print(result.describe())
        show_(viz.history_figure(result.history, best_epoch=result.best_epoch, title=f"{label}: training history"))
        evaluation = evaluate_run(result.run, self.data_root, model=result.model, cache_dir=cache_dir, progress=show)
        baseline = self.baseline(datasets, results_dir=results_dir, progress=show)[1]
        show_(Markdown(f"**The {len(evaluation.per_case)} test cases**, scored whole at their original size:"),
              evaluation_table(evaluation, label, baseline=baseline))
        if show:
            figure, _ = median_case_viewer(result, evaluation, self.data_root, label=label, cache_dir=cache_dir)
            display(figure)
        show_(Markdown(f"**Beside the report**: its numbers for the {label}, and what in this run measures the same:"),
              viz.data_note(self.provenance), report_table(model, evaluation, result))
        return ChapterOutcome(datasets, result, evaluation, baseline, label)


@dataclass
class ChapterOutcome:
    """What :meth:`ChapterSetup.train_and_evaluate` returns.

    Attributes:
        datasets: the chapter's train / val / test datasets (``datasets.test.cases``: the test
            cases at the network's input size).
        result: the trained run (:class:`bratslib.training.TrainedRun`): ``result.model`` is
            the model of the best validation epoch.
        evaluation: its whole-case evaluation on the test cases (``per_case``, ``summary``).
        baseline: chapter 2's threshold baseline evaluated on the same cases.
        label: the model's name in the book's tables (:data:`bratslib.registry.MODELS`).
    """

    datasets: Datasets
    result: TrainedRun
    evaluation: Any
    baseline: Any
    label: str

    @property
    def run(self):
        """The run folder (:class:`bratslib.results.Run`)."""
        return self.result.run

    @property
    def model(self):
        """The model of the best validation epoch."""
        return self.result.model


def evaluation_table(evaluation, label: str, baseline=None):
    """The mean ± sd over the test cases of every metric (:data:`~bratslib.claims.EVALUATION_ROWS`),
    beside chapter 2's threshold baseline on the same cases when ``baseline`` (its evaluation,
    :meth:`ChapterSetup.baseline`) is given.

    After the ET Dice come two rows that split it (:func:`bratslib.metrics.region_split`): its
    mean over the cases that have enhancing tumour, and how many of the cases without it the
    model left without it; by the BraTS rule the latter score 1 or 0, which the mean over all
    cases mixes in."""
    from IPython.display import Markdown

    from bratslib import viz

    columns = {f"{label}, mean ± sd over test cases": evaluation}
    if baseline is not None:
        columns["threshold baseline (chapter 2), same cases"] = baseline
    body = []
    for key, row in EVALUATION_ROWS.items():
        body.append([row, *(viz.summary_cell(e.summary.get(key, {}), 3) for e in columns.values())])
        if key == "dice_ET":
            splits = [region_split(e.per_case, "ET") for e in columns.values()]
            body.append(["Dice ET, only the cases with ET", *(
                "n/a (no case has ET)" if not x["n_present"] else f"{x['dice_present']:.3f} ({x['n_present']} cases)"
                for x in splits)])
            body.append(["cases without ET left without ET", *(f"{x['absent_found']} of {x['n_absent']}" for x in splits)])
    note = ("\n\nA case without enhancing tumour (ET) scores ET Dice 1 when the model predicts none and 0 for a "
            "single false voxel (the BraTS rule), so the mean ET Dice over all cases mixes outlining ET where it "
            "is with recognising that it is absent; the two rows after it answer those apart.")
    if baseline is not None:
        note += "\n\n" + baseline_verdict(evaluation, baseline, label)
    return Markdown(viz.markdown_text(["", *columns], body) + note)


def baseline_verdict(evaluation, baseline, label: str) -> str:
    """One sentence, computed: on which regions the mean Dice of ``evaluation`` is above the
    threshold baseline's on the same cases, and on which it is not (a comparison of means; the
    paired tests are chapter 9's).  When the ET mean and the ET Dice on the cases that have ET
    order the two the other way round, a second sentence says so: the mean then follows the
    cases without ET, scored 1 or 0 by the BraTS rule (:func:`bratslib.metrics.region_split`)."""
    above = [r for r in ("WT", "TC", "ET") if evaluation.mean(f"dice_{r}") > baseline.mean(f"dice_{r}")]
    below = [r for r in ("WT", "TC", "ET") if r not in above]
    parts = ([f"above the threshold baseline on {', '.join(above)}"] if above else []) + \
            ([f"not above it on {', '.join(below)}"] if below else [])
    text = f"Mean Dice of the {label} over these {len(evaluation.per_case)} test cases: " + "; ".join(parts) + "."
    # the ET mean mixes outlining ET with leaving it out where there is none: say so when the two disagree
    mine, theirs = region_split(evaluation.per_case, "ET"), region_split(baseline.per_case, "ET")
    if mine["n_present"] and mine["n_absent"]:
        outlines_better = mine["dice_present"] > theirs["dice_present"]
        if outlines_better != ("ET" in above):
            text += (f" On ET the order is the other way round on the {mine['n_present']} cases that have it: "
                     f"{mine['dice_present']:.3f} against the baseline's {theirs['dice_present']:.3f}; the mean "
                     f"follows the {mine['n_absent']} cases without ET, of which the {label} left "
                     f"{mine['absent_found']} and the baseline {theirs['absent_found']} without ET.")
    return text


def report_table(chapter: str, evaluation, result: TrainedRun):
    """The report's numbers of ``chapter`` (``bratslib/claims.yml``) beside this run's, with what
    each of ours measures and where the report gives its number."""
    from bratslib import viz

    return viz.markdown_table(["", "report", "this run", "what this run measures", "report's source"],
                              claims_rows(load_claims(chapter), reproduced_values(evaluation, result.best)),
                              numeric=[False, True, True, False, False])


def classification_training() -> dict[str, Any]:
    """The :func:`bratslib.training.train` arguments of a tumour / no-tumour slice classifier:
    cross-entropy, accuracy and ROC AUC (fresh metric objects on each call), the best epoch
    by validation ROC AUC."""
    import keras

    return {"loss": keras.losses.CategoricalCrossentropy(name="cross_entropy"),
            "metrics": [keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
            "monitor": "val_auc", "mode": "max"}


def median_case_viewer(result: TrainedRun, evaluation, data_root: str | os.PathLike, *, label: str,
                       cache_dir: str | os.PathLike | None = None, extra: Mapping[str, np.ndarray] | None = None):
    """A slice viewer of the test case with the median whole-tumour Dice: its FLAIR under the
    expert labels and under this run's prediction (and under any ``extra`` label maps, e.g. a
    baseline's), on the case's original grid.

    Args:
        result: the trained run (its model and preprocessing are used).
        evaluation: the run's evaluation (picks the case).
        label: the title of the prediction's panel, e.g. ``"U-Net"``.
        extra: panel title -> a further label map of the same case.

    Returns:
        ``(figure, case_files)``.
    """
    from bratslib import viz
    from bratslib.data.cases import load_case
    from bratslib.evaluate import predict_case, run_cases, run_mirror, run_postprocess

    order = np.argsort([row["dice_WT"] for row in evaluation.per_case])
    case_id = evaluation.per_case[int(order[len(order) // 2])]["case_id"]
    files = next(c for c in run_cases(result.run, data_root, "all") if c.case_id == case_id)
    prediction = predict_case(result.model, files, result.run.config["preprocessing"], cache_dir=cache_dir,
                              postprocess=run_postprocess(result.run), mirror=run_mirror(result.run))
    case = load_case(files, ("flair",))
    maps = {"ground truth": case.seg, label: prediction.labels, **dict(extra or {})}
    figure = viz.case_viewer({name: case.flair for name in maps}, overlays=maps,
                             title=f"{case_id} (median WT Dice of the test cases): FLAIR with labels")
    return figure, files


__all__ = ["ChapterOutcome", "ChapterSetup", "baseline_verdict", "classification_training", "evaluation_table", "median_case_viewer", "report_table", "CLASS_ROWS", "REGION_ROWS", "HD95_ROWS", "OVERALL_ROWS", "reproduced_values",
           "claims_rows"]
