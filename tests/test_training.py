"""train(): the run folder it writes, reuse of a finished run, and resuming after a kill."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bratslib.data.generators import make_datasets
from bratslib.models.unet2d import build_unet2d
from bratslib.results import read_json
from bratslib.training import cosine_schedule, train

ROOT = Path(__file__).resolve().parents[1]
DATA = {"kind": "synthetic", "n_cases": 6, "seed": 0, "folder": "tiny", "description": "tiny test cases"}
MODEL = dict(input_shape=(32, 32, 2), n_classes=4, base_filters=4, depth=2, dropout=0.0)


def tiny_datasets(data_dir, cache_dir):
    return make_datasets(data_dir, size=32, cache_dir=cache_dir, batch_size=4, samples_per_epoch=12,
                         foreground_fraction=0.5, seed=0, progress=False)


def test_a_book_build_prints_one_short_line_per_epoch(tiny_dataset, tmp_path, monkeypatch, capsys):
    """In a book build Keras is silent and each epoch is one line of the page: the losses, the
    monitored value, whether it is the best so far, the seconds."""
    monkeypatch.setenv("BRATSLIB_BOOK_BUILD", "1")
    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    train(lambda: build_unet2d(**MODEL), data, name="unet2d-lines", config={"model": "unet2d", "model_kwargs": MODEL},
          data=DATA, epochs=2, results_dir=tmp_path / "results")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2, lines
    assert re.fullmatch(r"epoch 1 of 2: loss \d\.\d{3}, val loss \d\.\d{3}, val dice tumour \d\.\d{3} \(best so far\), \d+ s",
                        lines[0]), lines[0]
    assert lines[1].startswith("epoch 2 of 2: ") and "dice_background" not in capsys.readouterr().out


def test_train_writes_a_complete_run_and_reuses_it(tiny_dataset, tmp_path):
    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    kwargs = dict(name="unet2d-test", config={"model": "unet2d", "model_kwargs": MODEL}, data=DATA, epochs=2,
                  results_dir=tmp_path / "results", verbose=0)
    result = train(lambda: build_unet2d(**MODEL), data, **kwargs)
    run = result.run
    assert result.trained_epochs == 2 and result.resumed_at == 0
    assert sorted(p.name for p in run.path.iterdir()) == [
        "config.json", "data.json", "environment.json", "history.csv", "model.json", "model.keras", "split.json",
        "state.json"]
    info = run.model_info
    assert info["parameters"] == result.model.count_params() and info["encoder_weights"] is None
    assert info["input_shape"] == [None, 32, 32, 2] and info["output_shape"] == [None, 32, 32, 4]
    config = run.config
    assert config["preprocessing"]["size"] == 32 and config["preprocessing"]["mode"] == "2d"
    assert config["training"]["epochs"] == 2 and config["training"]["loss"]["class_name"] == "DiceFocalLoss"
    assert config["model_kwargs"]["base_filters"] == 4
    assert run.split == data.split and run.data == DATA
    history = run.history()
    assert [row["epoch"] for row in history] == [0, 1]
    for key in ("loss", "val_loss", "val_dice_tumour", "val_dice_enhancing", "learning_rate", "seconds", "peak_memory_mb"):
        assert all(np.isfinite(row[key]) for row in history), key
    state = run.state
    assert state["status"] == "finished" and state["best_epoch"] in (0, 1)
    assert state["best"] == pytest.approx(max(r["val_dice_tumour"] for r in history))

    again = train(lambda: pytest.fail("a finished run must not build a new model"), data, **kwargs)
    assert again.trained_epochs == 0 and again.run.path == run.path
    x = np.random.default_rng(0).random((2, 32, 32, 2), dtype=np.float32)
    np.testing.assert_array_equal(again.model.predict_on_batch(x), result.model.predict_on_batch(x))

    longer = train(lambda: build_unet2d(**MODEL), data, **{**kwargs, "epochs": 1})
    assert longer.run.path.name == "unet2d-test-2" and len(longer.history) == 1
    assert run.history() == history  # the first run is untouched


def test_unknown_monitor_is_an_error_naming_the_logged_values(tiny_dataset, tmp_path):
    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    with pytest.raises(KeyError, match="val_dice_tumour"):
        train(lambda: build_unet2d(**MODEL), data, name="bad", config={}, data=DATA, epochs=1,
              monitor="val_nonsense", results_dir=tmp_path / "results", verbose=0)


_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import keras
    import numpy as np
    sys.path.insert(0, {root!r})
    from tests.test_training import MODEL, DATA, tiny_datasets
    from bratslib.models.unet2d import build_unet2d
    from bratslib.training import train

    data_dir, cache_dir, results_dir, name, kill_epoch = sys.argv[1:6]
    kill_epoch = int(kill_epoch)

    class KillMidEpoch(keras.callbacks.Callback):
        # SIGKILL in the middle of an epoch: no clean-up code runs, as when a Colab runtime dies
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_epoch and batch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    result = train(lambda: build_unet2d(**MODEL), tiny_datasets(data_dir, cache_dir), name=name,
                   config={{"model": "unet2d"}}, data=DATA, epochs=4, results_dir=results_dir,
                   callbacks=[KillMidEpoch()], verbose=0)
    x = np.random.default_rng(0).random((2, 32, 32, 2), dtype=np.float32)
    np.save(os.path.join(results_dir, name + "-prediction.npy"), result.model.predict_on_batch(x))
    print("RESUMED_AT", result.resumed_at, "TRAINED", result.trained_epochs)
""")


def _run(script: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_one_does(tiny_dataset, tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(_SCRIPT.format(root=str(ROOT)))
    cache, results = tmp_path / "cache", tmp_path / "results"
    common = (tiny_dataset, cache, results)

    killed = _run(script, *common, "interrupted", 2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run_dir = results / "interrupted"
    state = read_json(run_dir / "state.json")
    assert state["status"] == "training" and state["epoch"] == 1
    assert (run_dir / "checkpoints" / state["checkpoint"]).is_file()
    assert (run_dir / "history.csv").read_text().count("\n") == 3  # header + epochs 0 and 1
    assert not (run_dir / "model.keras").exists()

    resumed = _run(script, *common, "interrupted", -1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "RESUMED_AT 2 TRAINED 2" in resumed.stdout
    assert "resuming interrupted at epoch 3 of 4" in resumed.stdout
    state = read_json(run_dir / "state.json")
    assert state["status"] == "finished" and not (run_dir / "checkpoints").exists()
    epochs = [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2", "3"]

    straight = _run(script, *common, "uninterrupted", -1)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "RESUMED_AT 0 TRAINED 4" in straight.stdout
    # same seed, same data order, optimizer state restored: the same model as without the kill
    np.testing.assert_allclose(np.load(results / "interrupted-prediction.npy"),
                               np.load(results / "uninterrupted-prediction.npy"), atol=1e-5)
    a = [r.split(",")[1:] for r in (run_dir / "history.csv").read_text().splitlines()]
    b = [r.split(",")[1:] for r in (results / "uninterrupted" / "history.csv").read_text().splitlines()]
    assert a[0] == b[0]  # same columns


def test_a_saved_run_model_loads_in_a_fresh_process(tiny_dataset, tmp_path):
    # a fresh Python knows none of bratslib's registered losses and metrics until their
    # modules are imported: bratslib.models.load_model imports them
    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    result = train(lambda: build_unet2d(**MODEL), data, name="fresh", config={"model": "unet2d"}, data=DATA, epochs=1,
                   results_dir=tmp_path / "results", verbose=0)
    script = ("import sys; from bratslib.models import load_model; "
              "m = load_model(sys.argv[1]); print('LOADED', m.name, type(m.loss).__name__)")
    done = subprocess.run([sys.executable, "-c", script, str(result.run.model_path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0 and "LOADED unet2d DiceFocalLoss" in done.stdout, done.stderr[-2000:]


def test_a_time_limit_leaves_the_run_unfinished_and_a_later_session_continues_it(tiny_dataset, tmp_path, capsys):
    """Kaggle's 12-hour sessions in small: session 1 stops at its time limit, its results folder
    becomes read-only input, session 2 copies it (restore_runs) and finishes the run; the
    history equals that of one uninterrupted run of the same epochs."""
    from bratslib.evaluate import evaluate_run
    from bratslib.results import restore_runs

    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    kwargs = dict(name="unet2d-limit", config={"model": "unet2d", "model_kwargs": MODEL}, data=DATA, epochs=3,
                  verbose=0)
    first = train(lambda: build_unet2d(**MODEL), data, results_dir=tmp_path / "session1", time_limit=1e-3, **kwargs)
    assert not first.complete and first.trained_epochs == 1 and len(first.history) == 1
    assert first.run.status == "training" and not first.run.model_path.exists()
    assert "time limit" in capsys.readouterr().out
    # the best model so far is scored, but not as the run's own result
    evaluation = evaluate_run(first.run, tiny_dataset, model=first.model, progress=False)
    assert evaluation.per_case and first.run.metrics() is None
    assert (first.run.path / "evaluations" / "unfinished-epoch1" / "metrics.json").is_file()

    # the next session: the earlier output is read-only input
    for path in sorted((tmp_path / "session1").rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    assert restore_runs(tmp_path / "session1", tmp_path / "session2") == ["unet2d-limit"]
    assert restore_runs(tmp_path / "session1", tmp_path / "session2") == []  # nothing newer to copy
    second = train(lambda: pytest.fail("a resumed run must not build a new model"), data,
                   results_dir=tmp_path / "session2", time_limit=3600, **kwargs)
    assert second.complete and second.resumed_at == 1 and second.trained_epochs == 2
    assert second.run.finished and second.run.path.parent == tmp_path / "session2"

    whole = train(lambda: build_unet2d(**MODEL), data, results_dir=tmp_path / "whole", **kwargs)
    for a, b in zip(second.history, whole.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    # a copy further along is never replaced by an older one
    assert restore_runs(tmp_path / "session1", tmp_path / "session2") == []
    assert restore_runs(tmp_path / "session2", tmp_path / "session1-copy") == ["unet2d-limit"]
    with pytest.raises(FileNotFoundError, match="resume_from"):
        restore_runs(tmp_path / "nowhere", tmp_path / "session3")


def test_the_cosine_schedule_warms_up_over_one_epoch_then_falls_to_min_lr():
    schedule = cosine_schedule(2e-3, epochs=4, steps_per_epoch=10, min_lr=1e-5)
    rates = [float(schedule(step)) for step in range(45)]
    assert rates[0] == pytest.approx(2e-4) and rates[10] == pytest.approx(2e-3)
    assert all(a < b for a, b in zip(rates[:10], rates[1:11]))  # the warm-up climbs
    assert all(a > b for a, b in zip(rates[10:40], rates[11:41]))  # then the rate only falls
    assert rates[25] == pytest.approx((2e-3 + 1e-5) / 2, rel=1e-3)  # half-way through the decay
    assert rates[40] == pytest.approx(1e-5) and rates[44] == pytest.approx(1e-5)  # and stays at min_lr


def test_a_cosine_run_records_its_schedule_and_resumes_on_it(tiny_dataset, tmp_path):
    """Under ``lr_schedule="cosine"`` the rate falls every epoch without a plateau callback, the
    run says so in config.json, and a run stopped by its time limit continues on the schedule
    where it was (the optimizer's step count travels in the checkpoint)."""
    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    kwargs = dict(name="unet2d-cosine", config={"model": "unet2d", "model_kwargs": MODEL}, data=DATA, epochs=3,
                  learning_rate=2e-3, lr_schedule="cosine", min_lr=1e-5, verbose=0)
    first = train(lambda: build_unet2d(**MODEL), data, results_dir=tmp_path / "r", time_limit=1e-3, **kwargs)
    assert not first.complete and "reduce_lr" not in first.run.state["callbacks"]
    second = train(lambda: pytest.fail("a resumed run must not build a new model"), data, results_dir=tmp_path / "r",
                   **kwargs)
    assert second.complete and second.resumed_at == 1
    whole = train(lambda: build_unet2d(**MODEL), data, results_dir=tmp_path / "whole", **kwargs)
    assert whole.run.config["training"]["lr_schedule"] == "cosine"
    rates = [row["learning_rate"] for row in whole.history]
    steps = len(data.train)
    schedule = cosine_schedule(2e-3, 3, steps, 1e-5)
    expected = [float(schedule((epoch + 1) * steps)) for epoch in range(3)]
    assert rates == pytest.approx(expected, rel=1e-4) and rates[0] > rates[1] > rates[2] == pytest.approx(1e-5)
    assert [row["learning_rate"] for row in second.history] == pytest.approx(rates, rel=1e-4)
    with pytest.raises(ValueError, match="lr_schedule='step'.*plateau, cosine"):
        train(lambda: build_unet2d(**MODEL), data, results_dir=tmp_path / "bad", **{**kwargs, "lr_schedule": "step"})
