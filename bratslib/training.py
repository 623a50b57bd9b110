"""One ``train()`` for every chapter: Adam, learning-rate schedule, early stopping, best
checkpoint, history, and resuming a run that was interrupted.

:func:`train` opens the run folder (:func:`bratslib.results.open_run`), builds and compiles the
model, and fits it with

* ``keras.optimizers.Adam`` at ``learning_rate``;
* a learning-rate schedule, ``lr_schedule``: ``"plateau"`` (the default),
  ``keras.callbacks.ReduceLROnPlateau``: halve the rate after ``lr_patience`` epochs without
  progress on ``monitor``; or ``"cosine"``, ``keras.optimizers.schedules.CosineDecay``: the rate
  climbs linearly from a tenth of ``learning_rate`` to ``learning_rate`` over the first epoch,
  then falls along a half cosine to ``min_lr`` at the last step of ``epochs``, whatever the
  validation does (a fixed budget of steps spent with large steps first and small ones last);
* ``keras.callbacks.EarlyStopping`` (stop after ``stop_patience`` epochs without progress);
* a checkpoint after every epoch (:meth:`bratslib.results.Run.save_checkpoint`): the model
  with its optimizer state, the best model so far by ``monitor`` (the job of Keras'
  ``ModelCheckpoint(save_best_only=True)``, but written atomically), ``history.csv`` and the
  state of the two callbacks above.

Started again with the same arguments, ``train`` finds the run folder, loads the last
checkpoint and continues at the next epoch with the same learning rate, the same
early-stopping patience left and the data order of that epoch.  A run that finished is not
trained again: its best model is loaded and returned.

``time_limit`` (seconds) ends a call before a session would end it: after each epoch,
training stops when one more epoch (as long as the longest so far) would not fit.  The run
then stays unfinished (``TrainedRun.complete`` is False, the best model so far is returned)
and the next call with the same arguments continues it; on Kaggle, whose sessions last 12
hours, this is how a ``full`` run spans several sessions (``book/real_data.md``).

Devices: with several GPUs visible (Kaggle's two T4s), :func:`distribution_strategy` gives a
``tf.distribute.MirroredStrategy`` over them: the model is built, compiled and trained in its
scope, each batch of the datasets (the *global* batch) is split between the replicas, and
:class:`~bratslib.chapter.ChapterSetup` scales the batch by the number of replicas.  On GPUs
with tensor cores (compute capability 7.0 or more) the model is built under Keras'
``mixed_float16`` policy, on a CPU with native bfloat16 under ``mixed_bfloat16``
(:func:`precision_default`); every builder ends in a float32 softmax and, for float16, Keras
scales the loss.  ``config.json`` records the replicas, the devices and the
precision of the run.

Importing this module imports Keras (and so TensorFlow).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from bratslib.losses import DiceFocalLoss
from bratslib.metrics import training_metrics
from bratslib.models import load_model
from bratslib.profiles import LR_SCHEDULES
from bratslib.results import Run, open_run

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """What :func:`train` returns.

    Attributes:
        run: the run folder.
        model: the model of the best validation epoch.
        history: one dict per epoch (``history.csv``).
        trained_epochs: epochs trained by this call (0 when a finished run was reused).
        resumed_at: the epoch this call started at (0 for a fresh run).
        complete: False when ``time_limit`` stopped training before the run finished: the
            model is the best so far, and calling :func:`train` again continues the run.
    """

    run: Run
    model: keras.Model
    history: list[dict[str, Any]]
    trained_epochs: int
    resumed_at: int
    complete: bool = True

    @property
    def best_epoch(self) -> int:
        return int(self.run.state["best_epoch"])

    @property
    def best(self) -> dict[str, Any]:
        """The history row of the best epoch."""
        return self.history[self.best_epoch]

    def describe(self) -> str:
        """Where the run is, its best epoch, size, median seconds per epoch and peak memory, as text."""
        median = statistics.median(row["seconds"] for row in self.history)
        return (f"run folder: {self.run.path}\nbest epoch: {self.best_epoch + 1} of {len(self.history)}; "
                f"{self.run.model_info['parameters']:,} parameters, {median:.0f} s per epoch (median), "
                f"peak memory {max(row['peak_memory_mb'] for row in self.history):,.0f} MiB")


def default_verbose() -> int:
    """Keras' progress bar (1) interactively; nothing from Keras (0) when building the book,
    where :func:`train` prints one short line per epoch instead (:class:`_RunRecorder`):
    Keras' own line lists every metric, twice, and reads as a wall of numbers on the page."""
    return 0 if os.environ.get("BRATSLIB_BOOK_BUILD") == "1" else 1


def distribution_strategy(devices: Sequence[str] | None = None):
    """The ``tf.distribute`` strategy :func:`train` uses by default.

    ``tf.distribute.MirroredStrategy`` over ``devices``, or over every visible GPU when there
    are two or more; otherwise TensorFlow's default strategy (one device, no replicas).
    """
    import tensorflow as tf

    if devices is None:
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        if len(gpus) < 2:
            return tf.distribute.get_strategy()
        devices = gpus
    return tf.distribute.MirroredStrategy(list(devices))


#: Keras' dtype policies :func:`train` may build a model under.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86 ``avx512_bf16`` or ``amx_bf16``
    flags in ``/proc/cpuinfo``); False where that cannot be read."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def precision_default() -> str:
    """The dtype policy :func:`train` uses when not told.

    ``"mixed_float16"`` when every visible GPU has tensor cores (compute capability 7.0 or
    more: V100, T4, A100, H100); on a machine without GPU ``"mixed_bfloat16"`` when the CPU
    has native bfloat16 (a U-Net step measured 1.35x faster than float32 on such a CPU;
    ``benchmarks/bench_train.py`` has the rows), else ``"float32"``: float16 on a CPU, or
    bfloat16 emulated in software, is slower, not faster.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability") or (0, 0) for g in gpus]
        return "mixed_float16" if all(tuple(c) >= (7, 0) for c in capabilities) else "float32"
    return "mixed_bfloat16" if cpu_has_native_bf16() else "float32"


def mixed_precision_default() -> bool:
    """Whether :func:`precision_default` is a mixed policy (float16 or bfloat16)."""
    return precision_default() != "float32"


def _precision(mixed_precision: bool | str | None) -> str:
    """The policy name of :func:`train`'s ``mixed_precision`` argument."""
    if mixed_precision is None:
        return precision_default()
    if isinstance(mixed_precision, str):
        if mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision={mixed_precision!r}: use one of {', '.join(PRECISIONS)}, True or False")
        return mixed_precision
    return "mixed_float16" if mixed_precision else "float32"


def _devices(strategy) -> list[str]:
    """The devices ``strategy`` trains on: its replicas', or the one device TensorFlow places on."""
    import tensorflow as tf

    if strategy.num_replicas_in_sync > 1:
        return list(strategy.extended.worker_devices)
    return [d.name for d in (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[:1]]


def peak_memory_mb() -> float:
    """Peak memory so far, in MiB: of the first GPU when TensorFlow sees one
    (``tf.config.experimental.get_memory_info``), else the peak resident memory of this whole
    process (``resource.getrusage``: model, optimizer, data cache and all)."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and tf.config.list_logical_devices("GPU"):
        return round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


_CALLBACK_STATE = {
    "reduce_lr": ("wait", "best", "cooldown_counter"),
    "early_stopping": ("wait", "best", "best_epoch"),
}


class _RunRecorder(keras.callbacks.Callback):
    """Writes history, checkpoints and state to the run after each epoch; on resume, puts
    the saved state back into the learning-rate and early-stopping callbacks.  With
    ``epoch_lines`` (the number of epochs), also prints one short line per epoch: the
    losses, the monitored value and the seconds."""

    def __init__(self, run: Run, monitor: str, mode: str, history: list[dict], best: float | None,
                 best_epoch: int | None, others: Mapping[str, keras.callbacks.Callback], saved: Mapping | None,
                 epoch_lines: int | None = None):
        super().__init__()
        self.run, self.monitor, self.mode, self.epoch_lines = run, monitor, mode, epoch_lines
        self.history = history
        self.best, self.best_epoch = best, best_epoch
        self.others, self.saved = others, saved
        self._started = 0.0

    def on_train_begin(self, logs=None):
        # runs after the other callbacks' on_train_begin (which reset them)
        for key, callback in self.others.items():
            for attr, value in (self.saved or {}).get(key, {}).items():
                setattr(callback, attr, math.inf if value == "inf" else -math.inf if value == "-inf" else value)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.monitor not in logs:
            raise KeyError(f"train(monitor={self.monitor!r}): not among the logged values {sorted(logs)}")
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items()},
               "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "seconds": round(time.perf_counter() - self._started, 2), "peak_memory_mb": peak_memory_mb()}
        self.history.append(row)
        value = row[self.monitor]
        improved = self._improved(value)
        if improved:
            self.best, self.best_epoch = value, epoch
        self.run.write_history(self.history)
        callbacks = {key: {attr: _jsonable(getattr(cb, attr)) for attr in _CALLBACK_STATE[key]}
                     for key, cb in self.others.items()}
        self.run.save_checkpoint(self.model, epoch, improved=improved, monitor=self.monitor, best=self.best,
                                 best_epoch=self.best_epoch, callbacks=callbacks)
        if self.epoch_lines:
            losses = ", ".join(f"{k.replace('_', ' ')} {row[k]:.3f}" for k in ("loss", "val_loss") if k in row)
            lowered = ("reduce_lr" in self.others and len(self.history) > 1
                       and row["learning_rate"] < self.history[-2]["learning_rate"])
            print(f"epoch {epoch + 1} of {self.epoch_lines}: {losses}, {self.monitor.replace('_', ' ')} {value:.3f}"
                  f"{' (best so far)' if improved else ''}, {row['seconds']:.0f} s"
                  + (f"; learning rate lowered to {row['learning_rate']:.2g}" if lowered else ""))


class _TimeLimit(keras.callbacks.Callback):
    """Stops training after the epoch at which one more epoch, as long as the longest so far,
    would end after ``deadline`` (``time.monotonic()`` seconds; None: never).  After the second
    epoch (the first also compiles) it says how long the remaining epochs take at that pace,
    when that is over 10 minutes."""

    def __init__(self, deadline: float | None, epochs: int):
        super().__init__()
        self.deadline, self.epochs, self.longest, self.stopped = deadline, epochs, 0.0, False
        self._started, self._calls = 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        took = now - self._started
        self.longest = max(self.longest, took)
        remaining = self.epochs - epoch - 1
        # projected from the second epoch of this call: the first one also traces and compiles the graph
        if self._calls == 1 and remaining * took > 600:
            fits = "" if self.deadline is None else \
                f"; this session's time limit leaves room for about {int((self.deadline - now) // took)} more"
            print(f"epoch {epoch + 1} took {took / 60:.1f} min: the {remaining} remaining epoch(s) take about "
                  f"{remaining * took / 3600:.1f} h at this pace (early stopping may end sooner){fits}")
        self._calls += 1
        if self.deadline is not None and now + self.longest > self.deadline:
            self.stopped = True
            self.model.stop_training = True


def _jsonable(value: Any) -> Any:
    value = float(value) if hasattr(value, "__float__") else value
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def train(
    make_model: Callable[[], keras.Model],
    datasets,
    *,
    name: str,
    config: Mapping[str, Any],
    data: Mapping[str, Any],
    epochs: int,
    learning_rate: float = 1e-3,
    loss: keras.losses.Loss | None = None,
    metrics: Sequence[keras.metrics.Metric] | None = None,
    monitor: str = "val_dice_tumour",
    mode: str = "max",
    lr_schedule: str = "plateau",
    lr_patience: int = 3,
    lr_factor: float = 0.5,
    min_lr: float = 1e-6,
    stop_patience: int = 8,
    seed: int = 0,
    results_dir: str | os.PathLike | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | None = None,
    strategy=None,
    mixed_precision: bool | str | None = None,
    time_limit: float | None = None,
) -> TrainedRun:
    """Train (or resume, or reuse) one run and return its best model.

    Args:
        make_model: a function of no arguments returning the uncompiled model (only called
            for a new run), e.g. ``lambda: build_unet2d(**kwargs)``.
        datasets: a :class:`~bratslib.data.generators.Datasets` (``train``, ``val``,
            ``split``, ``cache``), as :func:`~bratslib.data.generators.make_datasets` makes it.
        name: the run's name, e.g. ``"unet2d-smoke-seed0"``; the folder is
            ``<results_dir>/<name>`` (or ``name-2``... for another configuration).
        config: what defines the model and the chapter's settings (recorded in
            ``config.json`` together with the preprocessing and the arguments below).
        data: the data's provenance, :func:`bratslib.data.data_provenance`.
        epochs: the number of epochs (the last one unless early stopping ends sooner).
        learning_rate: Adam's initial learning rate.
        loss: default :class:`~bratslib.losses.DiceFocalLoss` ().
        metrics: default :func:`~bratslib.metrics.training_metrics` () (segmentation).
        monitor, mode: the validation value that picks the best epoch and drives the
            schedule and early stopping (default the mean Dice of the three tumour classes).
        lr_schedule: ``"plateau"`` or ``"cosine"`` (:data:`bratslib.profiles.LR_SCHEDULES`, module docstring).
        lr_patience, lr_factor, min_lr: ``ReduceLROnPlateau`` (``"plateau"``); ``min_lr`` is also
            where ``"cosine"`` ends.
        stop_patience: ``EarlyStopping`` patience.
        seed: ``keras.utils.set_random_seed`` (weights, dropout); the data order is seeded
            by the datasets.
        results_dir: default :func:`bratslib.results.default_results_dir`.
        callbacks: further Keras callbacks.
        verbose: Keras' verbosity; default :func:`default_verbose` (0 in a book build, which
            prints one short line per epoch instead).
        strategy: a ``tf.distribute`` strategy; default :func:`distribution_strategy` (mirrored
            over several GPUs, else one device).  The datasets' batch is the global batch.
        mixed_precision: the dtype policy to build the model under: a name of
            :data:`PRECISIONS`, True (``mixed_float16``) or False (``float32``); default
            :func:`precision_default` (float16 on GPUs with tensor cores, bfloat16 on CPUs
            with native bfloat16, else float32).  ``config.json`` records it as ``precision``.
        time_limit: seconds this call may train (None: no limit); see the module docstring.
            A run stopped by it is left unfinished and continues on the next call.
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r}: use one of {', '.join(LR_SCHEDULES)}")
    started = time.monotonic()
    loss = loss if loss is not None else DiceFocalLoss()
    batch_size = getattr(datasets.train, "batch_size", None)
    strategy = strategy if strategy is not None else distribution_strategy()
    precision = _precision(mixed_precision)
    replicas = int(strategy.num_replicas_in_sync)
    run_config = {
        **config,
        "preprocessing": dict(datasets.cache.settings) if getattr(datasets, "cache", None) else None,
        "training": {
            "epochs": epochs, "batch_size": batch_size, "optimizer": "adam", "learning_rate": learning_rate,
            "lr_schedule": lr_schedule,
            "loss": keras.saving.serialize_keras_object(loss), "monitor": monitor, "mode": mode,
            "lr_patience": lr_patience, "lr_factor": lr_factor, "min_lr": min_lr, "stop_patience": stop_patience,
            "seed": seed, "samples_per_epoch": getattr(datasets.train, "samples_per_epoch", None),
            "augment": _describe(getattr(datasets.train, "augment", None)),
            "replicas": replicas, "devices": _devices(strategy),
            "batch_size_per_replica": batch_size // replicas if batch_size else None,
            "precision": precision,
        },
    }
    run = open_run(name, run_config, data, datasets.split, results_dir)

    def load(path):
        with precision_policy(precision):
            return load_model(path)

    if run.finished:
        print(f"{run.path} holds a finished run with these settings: loading it, not training again "
              "(delete the folder or change the name to train anew)")
        return TrainedRun(run, load(run.model_path), run.history(), 0, 0)

    keras.utils.set_random_seed(seed)
    if replicas > 1:
        print(f"training on {replicas} replicas ({', '.join(run_config['training']['devices'])}): "
              f"global batch {batch_size}")
    checkpoint = run.last_checkpoint()
    with strategy.scope():
        if checkpoint is not None:
            state = run.state
            model = load(checkpoint)
            start = int(state["epoch"]) + 1
            history = run.history()[:start]
            best, best_epoch, saved = state.get("best"), state.get("best_epoch"), state.get("callbacks")
            print(f"resuming {run.path.name} at epoch {start + 1} of {epochs} from {checkpoint.name}")
        else:
            with precision_policy(precision):
                model = make_model()
            info = model_info(model)
            run.write_model_info(info)
            if str(info["encoder_weights"] or "").startswith("random"):
                print(f"note: {run.name}: the encoder is NOT pre-trained ({info['encoder_weights']}); recorded in model.json")
            rate = (learning_rate if lr_schedule == "plateau"
                    else cosine_schedule(learning_rate, epochs, len(datasets.train), min_lr))
            model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss,
                          metrics=list(metrics) if metrics is not None else training_metrics())
            start, history, best, best_epoch, saved = 0, [], None, None, None

    lines = verbose is None and default_verbose() == 0  # a book build: Keras silent, a line per epoch
    verbose = default_verbose() if verbose is None else verbose
    # the schedule's messages follow Keras' verbosity (in the book, the epoch lines say when the rate fell)
    others = {}
    if lr_schedule == "plateau":  # otherwise the optimizer's schedule sets the rate
        others["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(monitor, factor=lr_factor, patience=lr_patience,
                                                                min_lr=min_lr, mode=mode, verbose=int(verbose > 0))
    others["early_stopping"] = keras.callbacks.EarlyStopping(monitor, patience=stop_patience, mode=mode,
                                                             verbose=int(verbose > 0))
    recorder = _RunRecorder(run, monitor, mode, history, best, best_epoch, others, saved,
                            epoch_lines=epochs if lines else None)
    limit = _TimeLimit(None if time_limit is None else started + time_limit, epochs)
    trained = 0
    if start < epochs and not _stopped_early(saved, stop_patience):
        datasets.train.set_epoch(start)
        model.fit(datasets.train, validation_data=datasets.val, epochs=epochs, initial_epoch=start, shuffle=False,
                  callbacks=[*others.values(), recorder, *callbacks, limit], verbose=verbose)
        trained = len(history) - start
        if lines and len(history) < epochs and not limit.stopped:
            print(f"early stopping after epoch {len(history)}: {monitor.replace('_', ' ')} has not improved for "
                  f"{stop_patience} epochs")
    if limit.stopped and len(history) < epochs and not _stopped_early(
            run.state.get("callbacks"), stop_patience):
        print(f"time limit: {run.name} stopped after epoch {len(history)} of {epochs} "
              f"({time_limit / 3600:.2f} h for this session); run again with the same results folder to "
              f"continue at epoch {len(history) + 1}. The model returned is the best so far (epoch "
              f"{int(run.state['best_epoch']) + 1}).")
        best_model = load(run.checkpoint_dir / run.state["best_checkpoint"])
        return TrainedRun(run, best_model, run.history(), trained, start, complete=False)
    model_path = run.finish()
    return TrainedRun(run, load(model_path), run.history(), trained, start)


def cosine_schedule(learning_rate: float, epochs: int, steps_per_epoch: int,
                    min_lr: float = 1e-6) -> keras.optimizers.schedules.CosineDecay:
    """The ``"cosine"`` schedule of :func:`train`: over the first epoch's ``steps_per_epoch``
    optimizer steps the rate climbs linearly from ``learning_rate / 10`` to ``learning_rate``, then
    falls along a half cosine to ``min_lr`` at step ``epochs * steps_per_epoch`` (and stays there).
    A function of the optimizer's step count, which a checkpoint keeps: a resumed run goes on
    where it stopped.  No profile uses it: at the book's ``smoke`` budget it was no better than
    the plateau (``benchmarks/results/bench_sim2real.md``, rows ``sched=cosine``)."""
    warmup = max(int(steps_per_epoch), 1)
    decay = max(int(epochs) * warmup - warmup, 1)
    return keras.optimizers.schedules.CosineDecay(learning_rate / 10, decay, alpha=min(min_lr / learning_rate, 1.0),
                                                  warmup_target=learning_rate, warmup_steps=warmup)


@contextlib.contextmanager
def precision_policy(policy: bool | str):
    """Within this block, new and loaded models get Keras' dtype ``policy`` (a name of
    :data:`PRECISIONS`; True means ``mixed_float16``, False ``float32``, which changes
    nothing); the global policy is put back afterwards and the layers keep theirs.  A
    checkpoint of a mixed-precision run is loaded inside it too, so that a float16 run's
    optimizer is again a ``LossScaleOptimizer`` and its saved state (loss scale included) is
    restored."""
    policy = _precision(policy)
    if policy == "float32":
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def model_info(model: keras.Model) -> dict[str, Any]:
    """What ``model.json`` records of a freshly built network.

    ``encoder_weights`` is the builder's record of the pre-trained weights it actually loaded
    (a plain attribute set by the builders with an ImageNet encoder: ``"imagenet"``, or
    ``"random (...)"`` when the download failed), so that no table passes a randomly
    initialised encoder off as a pre-trained one.
    """
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {
        "name": model.name,
        "parameters": int(model.count_params()),
        "trainable_parameters": trainable,
        "input_shape": list(model.input_shape),
        "output_shape": list(model.output_shape),
        "encoder_weights": getattr(model, "encoder_weights", None),
    }


def _stopped_early(saved: Mapping | None, patience: int) -> bool:
    wait = (saved or {}).get("early_stopping", {}).get("wait", 0)
    return wait >= patience


def _describe(augment: Any) -> Any:
    if augment is None:
        return None
    from dataclasses import asdict, is_dataclass

    return asdict(augment) if is_dataclass(augment) else repr(augment)
