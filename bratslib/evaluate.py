"""Whole-case prediction and evaluation in the original BraTS label space.

A network sees resized, normalised inputs and answers in class indices 0..3.  A reader of
BraTS results expects labels 0/1/2/4 on the 240x240x155 grid, scored case by case.  This
module goes the whole way back:

1. :func:`predict_probabilities`: the model on one cached case: a 2-D model slice by slice,
   a 3-D model on the whole volume, softmax probabilities at the model's resolution; with
   ``mirror``, averaged over the case and its mirror images (:func:`mirror_axes`), if the run
   says so (:func:`run_mirror`);
2. :func:`predict_case`: those probabilities resized back to the case's grid (linear
   interpolation of each class's probability, then the most probable class) and mapped to
   BraTS labels, with the case's affine, ready for :func:`~bratslib.data.cases.save_label_map`;
   then, if the run says so, post-processed (:data:`POSTPROCESSING`: ``"largest"`` keeps the
   largest connected tumour, :func:`keep_largest_tumour`);
3. :func:`evaluate_cases`: the metrics of :func:`bratslib.metrics.case_scores` for each case
   against its ground truth, their summary across cases, and the pooled all-voxel Dice that
   Keras notebooks report (at the model's resolution, as they compute it);
4. :func:`evaluate_run`: all of that for a trained run's test cases, written into the run.

:func:`evaluate_predictions` scores label maps from anywhere else (the threshold baseline) with
the same metrics.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from bratslib.data.cache import CachedCase, PreprocessedCache, as_float32
from bratslib.data.cases import load_case, save_label_map
from bratslib.data.layout import CaseFiles, find_cases
from bratslib.data.preprocess import one_hot, paste_box, resize_back, to_brats_labels
from bratslib.metrics import PooledDice, case_scores, classification_metrics, summarise
from bratslib.profiles import POSTPROCESSING, check_postprocess
from bratslib.registry import BASELINE_NAME
from bratslib.results import Run


@dataclass
class Prediction:
    """One case's prediction on its original grid.

    Attributes:
        case_id: e.g. ``"BraTS20_Training_001"``.
        labels: uint8 (x, y, z), BraTS labels {0, 1, 2, 4}.
        affine: the case's 4x4 affine; spacing: voxel size in mm.
    """

    case_id: str
    labels: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the label map as NIfTI with the case's affine."""
        return save_label_map(path, self.labels, self.affine)


@dataclass
class Evaluation:
    """Metrics of a set of cases.

    Attributes:
        per_case: one dict per case: ``case_id`` and the keys of
            :func:`bratslib.metrics.case_scores`.
        summary: :func:`bratslib.metrics.summarise` of ``per_case`` (mean, median, spread).
        pooled_dice: the all-voxel, background-included Dice over every case (NaN when not
            computed, e.g. for label maps without probabilities).
        info: what was evaluated (model, data, split), for the results file.
    """

    per_case: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    pooled_dice: float = float("nan")
    info: dict[str, Any] = field(default_factory=dict)

    def mean(self, key: str) -> float:
        return self.summary[key]["mean"]

    def to_json(self) -> dict[str, Any]:
        return {**self.info, "n_cases": len(self.per_case), "pooled_dice": self.pooled_dice, "summary": self.summary}

    @classmethod
    def saved(cls, run: Run) -> Evaluation | None:
        """The run's own evaluation as :meth:`to_json` wrote it (``metrics.json``, ``per_case.csv``), or None.

        An evaluation written before runs named a post-processing or mirroring says none
        (``"postprocess": "none"``, ``"mirror": False`` in its ``info``): neither was done then."""
        saved = run.metrics()
        if saved is None:
            return None
        info = {"postprocess": "none", "mirror": False,
                **{k: v for k, v in saved.items() if k not in ("summary", "pooled_dice", "n_cases")}}
        return cls(run.per_case(), saved["summary"], saved.get("pooled_dice", float("nan")), info)


# ----------------------------------------------------------------------------- prediction


#: Axial slices a 2-D model predicts at once.  Larger batches use the CPU better than the
#: training batch of 16 (measured on 12 test cases at 64 x 64 on 2 cores: 1.07x faster for the
#: U-Net, 1.3x for the ResNet50 U-Net); prediction keeps no activations for gradients, so 64
#: slices need about what a training step of 16 does.
PREDICT_BATCH = 64


# ----------------------------------------------------------------------------- post-processing

# What may be done to a predicted label map before it is saved or scored is one of
# bratslib.profiles.POSTPROCESSING (checked by check_postprocess): "none" (the network's most
# probable class, as the report scores it) or "largest" (keep_largest_tumour).  A run names its
# own in config.json ("postprocess", from the profile's setting; a run without it: "none"), and
# prediction and evaluation use it unless told otherwise.


def keep_largest_tumour(labels: np.ndarray) -> np.ndarray:
    """The label map with only its largest connected tumour: every tumour voxel (label > 0)
    outside the largest 26-connected component of the whole tumour set to background.

    Args:
        labels: (x, y, z) BraTS labels {0, 1, 2, 4}, any integer dtype.

    Returns:
        A copy of the same dtype (the map itself when it holds at most one component, e.g. no
        tumour at all).  Of two largest components of equal size, the first in scan order is
        kept.

    Most gliomas are one connected lesion, oedema included; a network trained on synthetic scans
    also marks FLAIR-bright normal tissue (periventricular caps, small-vessel disease) away from
    the tumour, and this removes those islands, and with them any enhancing tumour outside the
    main lesion.  It also removes a second, separate focus of a multifocal glioma.
    """
    components, n = ndimage.label(labels > 0, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return labels
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return np.where(components == int(np.argmax(sizes)), labels, 0).astype(labels.dtype, copy=False)


def postprocess_labels(labels: np.ndarray, postprocess: str = "none") -> np.ndarray:
    """``labels`` after the post-processing ``postprocess`` (a name of :data:`POSTPROCESSING`)."""
    return keep_largest_tumour(labels) if check_postprocess(postprocess) == "largest" else labels


def run_postprocess(run: Run) -> str:
    """The post-processing a run was trained for (``config.json``'s ``"postprocess"``; ``"none"``
    for a run that names none, e.g. one trained before the setting existed)."""
    return str(run.config.get("postprocess", "none"))


def _not_a_predict_retracing_warning(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not ("triggered tf.function retracing" in message and "make_predict_function" in message)


# Each model gets its own predict function, traced once per batch shape (a few: see
# predict_probabilities).  TensorFlow counts tracings across functions and, after five within a few
# calls, warns of "excessive" retracing with a page of advice.  Evaluating several models in turn (an
# ensemble, chapter 11's models) is exactly that, and expected: the warning is dropped from
# TensorFlow's logger (the standard-library logger it writes to; TensorFlow is not imported here).
logging.getLogger("tensorflow").addFilter(_not_a_predict_retracing_warning)


def run_mirror(run: Run) -> bool:
    """Whether a run predicts with test-time mirroring (``config.json``'s ``"mirror"``; False for
    a run that names none, e.g. one trained before the setting existed)."""
    return bool(run.config.get("mirror", False))


def mirror_axes(mode: str) -> tuple[int, ...]:
    """The axes :func:`predict_probabilities` mirrors the model's input along with ``mirror``:
    the two in-plane axes of a stack of axial slices (``"2d"``, (z, x, y, C): left-right and
    front-back) or the three spatial axes of one volume (``"3d"``, (x, y, z, C))."""
    return (1, 2) if mode == "2d" else (0, 1, 2)


def mirrored_mean(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The mean of ``predict`` over ``images`` and its mirror images along every combination of
    ``axes`` (2 ** len(axes) predictions: with ``axes=(1, 2)`` the images as they are, mirrored
    along axis 1, along axis 2 and along both), each prediction mirrored back before it is added.

    ``predict`` maps an array to one of the same spatial shape (class probabilities in a last
    axis of their own); ``axes`` are spatial axes of both."""
    total = None
    combinations = [c for k in range(len(axes) + 1) for c in itertools.combinations(axes, k)]
    for flip in combinations:
        out = predict(np.ascontiguousarray(np.flip(images, flip)) if flip else images)
        out = np.flip(out, flip) if flip else out
        total = out.copy() if total is None else total + out
    return total / len(combinations)


def predict_probabilities(model, cached: CachedCase, batch_size: int = PREDICT_BATCH, *,
                          mirror: bool = False) -> np.ndarray:
    """Softmax probabilities of ``model`` for one cached case, at the model's resolution.

    Args:
        mirror: test-time mirroring (nnU-Net's test-time augmentation): the mean of the
            probabilities over the case and its mirror images along every combination of
            :func:`mirror_axes` (2-D: left-right, front-back and both, four predictions; 3-D:
            eight).  A brain is nearly symmetric left to right, and a tumour may lie on either
            side: the mirror images are scans the model could have been given, and averaging
            over them evens out what the network learnt of one orientation only.

    Returns:
        float32 (z, S, S, n_classes) for a case cached in 2-D mode (every axial slice,
        ``batch_size`` at a time, the last batch padded with empty slices to a multiple of 16 so
        that the model's predict function is traced for a few shapes, not for one per case),
        (S, S, S, n_classes) in 3-D mode.
    """
    if mirror:
        return mirrored_mean(lambda images: _predict(model, images, cached.mode, batch_size), cached.images,
                         mirror_axes(cached.mode))
    return _predict(model, cached.images, cached.mode, batch_size)


def _predict(model, images: np.ndarray, mode: str, batch_size: int) -> np.ndarray:
    """:func:`predict_probabilities` without mirroring, of ``images`` as cached in ``mode``."""
    if mode == "2d":
        out = []
        for k in range(0, len(images), batch_size):
            batch = as_float32(images[k:k + batch_size])
            n = len(batch)
            # the last, short batch padded to a multiple of 16 slices (at most batch_size): a few shapes
            # to trace, not one per case, for at most 15 slices of extra work
            padded = min(batch_size, -(-n // 16) * 16)
            if padded > n:
                batch = np.concatenate([batch, np.zeros((padded - n, *batch.shape[1:]), batch.dtype)])
            out.append(np.asarray(model.predict_on_batch(batch), np.float32)[:n])
        return np.concatenate(out)
    return np.asarray(model.predict_on_batch(as_float32(images)[None]), np.float32)[0]


def _most_probable(probabilities: np.ndarray) -> np.ndarray:
    """``np.argmax(probabilities, axis=-1)`` as uint8 (the first class on ties), one class plane
    at a time: the resized probabilities hold each class contiguously, so this reads memory in
    order where an argmax over the last axis strides across it (several times faster)."""
    best = probabilities[..., 0].copy()
    index = np.zeros(best.shape, np.uint8)
    for c in range(1, probabilities.shape[-1]):
        plane = probabilities[..., c]
        index[plane > best] = c
        np.maximum(best, plane, out=best)
    return index


def _to_original_grid(probabilities: np.ndarray, cached: CachedCase, postprocess: str = "none") -> np.ndarray:
    """BraTS labels on the case's grid from the model's class probabilities: resized back
    (bilinear, before the argmax) onto the box the case was cropped to, or the whole grid, then
    post-processed (:func:`postprocess_labels`)."""
    shape, box = cached.meta["shape"], cached.meta.get("box")
    target = shape if box is None else [b - a for a, b in box]
    classes = resize_back(probabilities, target, order=1, slices_first=cached.mode == "2d")
    labels = postprocess_labels(to_brats_labels(_most_probable(classes)), postprocess)
    return labels if box is None else paste_box(labels, box, shape)


def predict_case(model, case: CaseFiles | str | os.PathLike, preprocessing: Mapping[str, Any], *,
                 cache_dir: str | os.PathLike | None = None, batch_size: int = PREDICT_BATCH,
                 postprocess: str = "none", mirror: bool = False) -> Prediction:
    """Predict one case folder (labeled or not) on its original grid.

    Args:
        model: a trained segmentation model (2-D or 3-D, as ``preprocessing["mode"]`` says).
        case: a :class:`~bratslib.data.layout.CaseFiles` or a case folder.
        preprocessing: the run's ``config["preprocessing"]`` (modalities, size, mode,
            normalize, dtype), so the case is prepared exactly as in training.
        cache_dir: the preprocessed cache (default ``$BRATSLIB_CACHE``).
        postprocess: a name of :data:`POSTPROCESSING`; a run's own is :func:`run_postprocess`.
        mirror: test-time mirroring (:func:`predict_probabilities`); a run's own is :func:`run_mirror`.
    """
    check_postprocess(postprocess)  # an unknown name fails before the work
    cached = _cache(preprocessing, cache_dir).get(case)
    labels = _to_original_grid(predict_probabilities(model, cached, batch_size, mirror=mirror), cached, postprocess)
    return Prediction(cached.case_id, labels, np.asarray(cached.meta["affine"]), tuple(cached.meta["spacing"]))


def _cache(preprocessing: Mapping[str, Any], cache_dir) -> PreprocessedCache:
    p = dict(preprocessing)
    return PreprocessedCache(cache_dir, p["modalities"], p["size"], p["mode"], p["normalize"], p.get("dtype", "float16"),
                             crop=bool(p.get("crop", False)))


# ----------------------------------------------------------------------------- evaluation


def _progress(items: Sequence, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="case", file=sys.stderr)


def evaluate_cases(
    model,
    cases: Sequence[CaseFiles],
    preprocessing: Mapping[str, Any],
    *,
    cache_dir: str | os.PathLike | None = None,
    predictions_dir: str | os.PathLike | None = None,
    batch_size: int = PREDICT_BATCH,
    progress: bool = True,
    postprocess: str = "none",
    mirror: bool = False,
) -> Evaluation:
    """Predict and score labeled cases against their ground truth on the original grid.

    Args:
        model: a trained model, or a list of models that share the preprocessing: an
            ensemble, whose class probabilities are averaged before the most probable class
            is taken.
        cases: labeled cases (a case without segmentation raises ValueError).
        preprocessing: the run's ``config["preprocessing"]``.
        predictions_dir: also write each prediction there as ``<case_id>_pred.nii.gz``.
        postprocess: what is done to each predicted label map before it is scored (a name of
            :data:`POSTPROCESSING`; a run's own is :func:`run_postprocess`).
        mirror: predict with test-time mirroring (:func:`predict_probabilities`; a run's own
            is :func:`run_mirror`); an ensemble mirrors each member.

    Also accumulates the pooled Dice of the softmax outputs against the one-hot labels over
    every voxel of every case at the model's resolution, background included, which is what
    a ``dice_coef`` metric in a Keras notebook reports.
    """
    unlabeled = [c.case_id for c in cases if not c.labeled]
    if unlabeled:
        raise ValueError(f"cannot evaluate cases without a segmentation: {', '.join(unlabeled[:5])}")
    check_postprocess(postprocess)  # an unknown name fails before the work
    cache = _cache(preprocessing, cache_dir)
    pooled = PooledDice()
    per_case = []
    members = model if isinstance(model, (list, tuple)) else [model]
    for files in _progress(cases, "evaluating", progress):
        cached = cache.get(files)
        probabilities = np.mean([predict_probabilities(m, cached, batch_size, mirror=mirror) for m in members], axis=0)
        pooled.update(one_hot(np.asarray(cached.labels), probabilities.shape[-1]), probabilities)
        prediction = _to_original_grid(probabilities, cached, postprocess)
        del probabilities
        truth = load_case(files, ("flair",)).seg
        per_case.append({"case_id": files.case_id, **case_scores(prediction, truth, tuple(cached.meta["spacing"]))})
        if predictions_dir is not None:
            save_label_map(Path(predictions_dir) / f"{files.case_id}_pred.nii.gz", prediction, np.asarray(cached.meta["affine"]))
    return Evaluation(per_case, summarise([_scores(r) for r in per_case]), pooled.result(),
                      info={"postprocess": postprocess, "mirror": bool(mirror)})


def _scores(row: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k != "case_id"}


def evaluate_predictions(predict: Callable[[CaseFiles], np.ndarray], cases: Sequence[CaseFiles], *,
                         progress: bool = True) -> Evaluation:
    """Score any labeler with the same metrics: ``predict(case_files)`` returns BraTS labels
    (x, y, z) on the case's grid (e.g. the threshold baseline)."""
    per_case = []
    for files in _progress(cases, "evaluating", progress):
        case = load_case(files, ("flair",))
        truth, spacing = case.seg, case.spacing
        per_case.append({"case_id": files.case_id, **case_scores(predict(files), truth, spacing)})
    return Evaluation(per_case, summarise([_scores(r) for r in per_case]))


def run_cases(run: Run, data_dir: str | os.PathLike, split: str = "test") -> list[CaseFiles]:
    """The labeled cases of ``data_dir`` in the run's ``split`` (``"all"``: every labeled case).

    Raises:
        ValueError: none of the split's cases is in ``data_dir``, or only some are (naming
            the missing ones), or an unknown split.
    """
    cases = [c for c in find_cases(data_dir) if c.labeled]
    if split == "all":
        return cases
    ids = run.split.get(split)
    if ids is None:
        raise ValueError(f"unknown split {split!r}; the run has {', '.join(run.split)} (or use 'all')")
    by_id = {c.case_id: c for c in cases}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(ids)} {split} cases of {run.name} are not labeled cases in "
                         f"{data_dir}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return [by_id[i] for i in ids]


def evaluate_run(
    run: Run | str | os.PathLike,
    data_dir: str | os.PathLike,
    *,
    split: str = "test",
    model=None,
    name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    predictions_dir: str | os.PathLike | None = None,
    progress: bool = True,
    postprocess: str | None = None,
    mirror: bool | None = None,
) -> Evaluation:
    """Evaluate a trained run on the cases of ``split`` and write the results into the run.

    The run's own evaluation (``name=None``: its test split, written once as
    ``metrics.json`` and ``per_case.csv``) is read back if it exists rather than computed
    again.  With a ``name``, the evaluation goes to ``evaluations/<name>/`` (a numbered
    folder if that exists), e.g. for other data.  A run that has not finished training (a
    time limit stopped it) is scored with its best model so far into
    ``evaluations/unfinished-epoch<N>/``, never as the run's own result.

    Args:
        model: the run's model if already loaded (else ``model.keras`` is loaded).
        postprocess: a name of :data:`POSTPROCESSING`; None: the run's own
            (:func:`run_postprocess`).  Another than the run's own is never its own result:
            without a ``name`` it goes to ``evaluations/<split>-postprocess-<name>/``.
        mirror: test-time mirroring (:func:`predict_probabilities`); None: the run's own
            (:func:`run_mirror`).  Another than the run's own goes, without a ``name``, to
            ``evaluations/<split>-mirrored/`` or ``<split>-unmirrored/`` (after the
            post-processing's part of the name where that differs too).
    """
    run = run if isinstance(run, Run) else Run(run)
    own, own_mirror = run_postprocess(run), run_mirror(run)
    postprocess = own if postprocess is None else postprocess
    mirror = own_mirror if mirror is None else bool(mirror)
    check_postprocess(postprocess)  # an unknown name fails before the work
    if name is None and (postprocess, mirror) != (own, own_mirror):
        name = "-".join([split, *([f"postprocess-{postprocess}"] if postprocess != own else []),
                         *([("mirrored" if mirror else "unmirrored")] if mirror != own_mirror else [])])
    if name is None and not run.finished:
        # a run stopped by a time limit: its best-so-far model is scored, but not as the run's
        # own result, which the finished run writes (the next session continues training)
        name = f"unfinished-epoch{int(run.state.get('epoch', -1)) + 1}"
        print(f"{run.name} has not finished training: this evaluation of the best model so far goes to "
              f"evaluations/{name}/, not to the run's metrics.json")
    saved = Evaluation.saved(run) if name is None else None
    if saved is not None:
        return saved
    if model is None:
        from bratslib.models import load_model

        model = load_model(run.model_path if run.finished else run.checkpoint_dir / run.state["best_checkpoint"])
    cases = run_cases(run, data_dir, split)
    evaluation = evaluate_cases(model, cases, run.config["preprocessing"], cache_dir=cache_dir,
                                predictions_dir=predictions_dir, progress=progress, postprocess=postprocess,
                                mirror=mirror)
    info = run.model_info
    evaluation.info = {"run": run.name, "split": split, "data_folder": str(Path(data_dir).expanduser().resolve()),
                       "model": info.get("name"), "parameters": info.get("parameters"),
                       "encoder_weights": info.get("encoder_weights"), "postprocess": postprocess, "mirror": mirror}
    run.write_evaluation(evaluation.to_json(), evaluation.per_case, name=name)
    return evaluation


def evaluate_ensemble(runs: Sequence[Run], data_dir: str | os.PathLike, *, models: Sequence | None = None,
                      split: str = "test", cache_dir: str | os.PathLike | None = None,
                      progress: bool = True) -> Evaluation:
    """The ensemble of several trained runs: their class probabilities averaged, case by case,
    scored with the same metrics as a single model (nothing is written).

    Args:
        runs: runs trained with the same preprocessing (modalities, size, mode) on the same split.
        models: their models if already loaded (else each ``model.keras`` is loaded).

    The ensemble's label maps are post-processed as the runs say (:func:`run_postprocess`), and
    each member mirrored as they say (:func:`run_mirror`).

    Raises:
        ValueError: fewer than two runs, or runs that differ in preprocessing, post-processing,
            mirroring or split.
    """
    if len(runs) < 2:
        raise ValueError("an ensemble needs at least two runs")
    preprocessing = runs[0].config["preprocessing"]
    for run in runs[1:]:
        if run.config["preprocessing"] != preprocessing:
            raise ValueError(f"{run.name} was preprocessed differently from {runs[0].name}: "
                             f"{run.config['preprocessing']} vs {preprocessing}")
        if run.split != runs[0].split:
            raise ValueError(f"{run.name} has another split of the cases than {runs[0].name}")
        if run_postprocess(run) != run_postprocess(runs[0]):
            raise ValueError(f"{run.name} is post-processed {run_postprocess(run)!r}, {runs[0].name} "
                             f"{run_postprocess(runs[0])!r}")
        if run_mirror(run) != run_mirror(runs[0]):
            raise ValueError(f"{run.name} {'is' if run_mirror(run) else 'is not'} mirrored at test time, "
                             f"{runs[0].name} {'is' if run_mirror(runs[0]) else 'is not'}")
    if models is None:
        from bratslib.models import load_model

        models = [load_model(run.model_path) for run in runs]
    postprocess, mirror = run_postprocess(runs[0]), run_mirror(runs[0])
    evaluation = evaluate_cases(list(models), run_cases(runs[0], data_dir, split), preprocessing, cache_dir=cache_dir,
                                progress=progress, postprocess=postprocess, mirror=mirror)
    evaluation.info = {"ensemble": [run.name for run in runs], "split": split, "postprocess": postprocess,
                       "mirror": mirror}
    return evaluation


# ----------------------------------------------------------------------------- the baseline


def baseline_images(files: CaseFiles, normalize: str = "volume", labels: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """FLAIR and T1ce of a case, normalised on the original grid, (x, y, z, 2), and its labels
    (None for an unlabeled case, or when ``labels`` is False: not read): the input of the
    threshold baseline."""
    from bratslib.data.preprocess import normalize_intensity

    case = load_case(files, ("flair", "t1ce"))
    try:
        return normalize_intensity(case.stack(("flair", "t1ce")), normalize), case.seg if labels else None
    finally:
        case.release()


def evaluate_baseline(train_cases: Sequence[CaseFiles], test_cases: Sequence[CaseFiles], *,
                      normalize: str = "volume", progress: bool = True):
    """Fit the :class:`~bratslib.baseline.ThresholdBaseline` on ``train_cases`` (FLAIR and
    T1ce normalised as for the networks, on the original grid) and score it on ``test_cases``
    with the same metrics as the networks.

    Returns:
        ``(baseline, evaluation)``.
    """
    from bratslib.baseline import ThresholdBaseline

    pairs = [baseline_images(f, normalize) for f in _progress(list(train_cases), "fitting the baseline", progress)]
    baseline = ThresholdBaseline.fit([x for x, _ in pairs], [s for _, s in pairs])
    del pairs
    evaluation = evaluate_predictions(lambda f: baseline.predict(baseline_images(f, normalize, labels=False)[0]), test_cases,
                                      progress=progress)
    evaluation.info = {"model": "threshold baseline", "thresholds": {"flair": baseline.t_flair, "t1ce": baseline.t_t1ce},
                       "fitted_on": [c.case_id for c in train_cases]}
    return baseline, evaluation




def baseline_run(data_dir: str | os.PathLike, split: Mapping[str, Sequence[str]], provenance: Mapping[str, Any], *,
                 profile: str, seed: int, fit_cases: int, normalize: str = "volume",
                 results_dir: str | os.PathLike | None = None, progress: bool = True):
    """The threshold baseline of chapter 2 for this data, split and profile, kept in the results
    folder so that every chapter, and the results chapter's ranking, sets the same baseline
    beside its model.

    The :class:`~bratslib.baseline.ThresholdBaseline` is fitted on the first ``fit_cases``
    training cases of ``split`` and scored on its test cases; the run
    ``threshold_baseline-<profile>-seed<seed>`` records the thresholds (``state.json``) and the
    evaluation (``metrics.json``, ``per_case.csv``), like a model's run without a model.  Later
    calls with the same arguments read it back.

    Returns:
        ``(baseline, evaluation)``.
    """
    from bratslib.baseline import ThresholdBaseline
    from bratslib.results import open_run

    config = {"model": BASELINE_NAME, "profile": profile, "fit_cases": int(fit_cases), "normalize": normalize,
              "task": {}}
    run = open_run(f"{BASELINE_NAME}-{profile}-seed{seed}", config, provenance, split, results_dir)
    saved = Evaluation.saved(run)
    if saved is not None and run.finished:
        state = run.state
        return ThresholdBaseline(t_flair=state["t_flair"], t_t1ce=state["t_t1ce"],
                                 train_scores=state.get("train_scores", {})), saved
    baseline, evaluation = evaluate_baseline(run_cases(run, data_dir, "train")[:fit_cases], run_cases(run, data_dir, "test"),
                                             normalize=normalize, progress=progress)
    run.write_evaluation(evaluation.to_json(), evaluation.per_case)
    run.write_state(status="finished", t_flair=baseline.t_flair, t_t1ce=baseline.t_t1ce,
                    train_scores=baseline.train_scores)
    return baseline, evaluation


# ----------------------------------------------------------------------------- slice classifiers


def evaluate_classifier(run: Run, model, dataset) -> dict[str, Any]:
    """Score a tumour / no-tumour slice classifier on every slice of ``dataset`` and write the
    result into the run (``metrics.json``: :func:`bratslib.metrics.classification_metrics`
    of all slices pooled, and their spread over cases; ``per_case.csv``: the same per case).

    Args:
        run: the classifier's run; its evaluation is read back if it exists.
        model: the trained classifier, (B, S, S, C) -> (B, 2) probabilities.
        dataset: a :class:`~bratslib.data.generators.TumourSliceDataset` over the test cases,
            not shuffled and not subsampled (every slice once, in order).

    Returns:
        The content of ``metrics.json``, with ``scores`` and ``labels`` (every slice's
        probability of tumour and true class, in the dataset's order) added in memory.
    """
    if dataset.shuffle or dataset.samples_per_epoch is not None:
        raise ValueError("evaluate_classifier needs every slice once: a dataset without shuffle or samples_per_epoch")
    labels = dataset.slice_labels()
    cases = np.array([dataset.cases[int(i)].case_id for i in dataset.samples[:, 0]])
    saved = run.metrics()
    if saved is not None:
        scores = np.array(saved["scores"], dtype=np.float64)
    else:
        scores = np.concatenate([np.asarray(model.predict_on_batch(dataset[k][0]), np.float64)[:, 1]
                                 for k in range(len(dataset))])
    pooled = classification_metrics(labels, scores)
    per_case = [{"case_id": case, **{k: v for k, v in classification_metrics(labels[cases == case], scores[cases == case]).items()
                                     if k != "confusion"}}
                for case in dict.fromkeys(cases)]
    result = {"run": run.name, "split": "test", "pooled": pooled,
              "summary": summarise([_scores(row) for row in per_case]),
              "min_tumour_pixels": dataset.min_tumour_pixels, "scores": scores.round(6).tolist()}
    if saved is None:
        run.write_evaluation(result, per_case)
    return {**result, "labels": labels}
