"""train() under tf.distribute and mixed precision, exercised on the CPU.

Several GPUs are rarely at hand in CI; TensorFlow can split one CPU into logical devices, and
``MirroredStrategy`` over two of them runs the same code path as over Kaggle's two T4s:
replicated variables, the global batch split in two, gradients summed across replicas.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from bratslib.models.unet2d import build_unet2d
from bratslib.results import read_json
from bratslib.training import (
    cpu_has_native_bf16, distribution_strategy, mixed_precision_default, precision_default, precision_policy, train,
)
from tests.test_training import DATA, MODEL, tiny_datasets

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = """
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from bratslib.chapter import ChapterSetup
from bratslib.models import load_model
from bratslib.models.unet2d import build_unet2d
from bratslib.training import distribution_strategy

data_dir, cache, results = sys.argv[1:4]
strategy = distribution_strategy(["/cpu:0", "/cpu:1"])
setup = ChapterSetup.create("unet2d", "tiny", data_dir=data_dir, epochs=2, strategy=strategy)
datasets = setup.datasets(cache, progress=False)
result = setup.train(build_unet2d, datasets, results_dir=results, verbose=0)
again = setup.train(build_unet2d, datasets, results_dir=results, verbose=0)  # finished: reused
print("RESULT", json.dumps({"replicas": setup.replicas, "batch": datasets.train.batch_size,
      "run": str(result.run.path), "epochs": len(result.history), "reused": again.trained_epochs == 0,
      "loads": load_model(result.run.model_path).name}))
"""


def test_mirrored_strategy_over_two_logical_cpus_trains_scales_the_batch_and_records_it(tiny_dataset, tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tiny_dataset), str(tmp_path / "cache"),
                           str(tmp_path / "results")], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["replicas"] == 2 and out["batch"] == 16  # the tiny profile's 8 per replica
    assert out["epochs"] == 2 and out["reused"] and out["loads"] == "unet2d"
    assert "training on 2 replicas" in done.stdout
    training = read_json(Path(out["run"]) / "config.json")["training"]
    assert training["replicas"] == 2 and training["batch_size"] == 16 and training["batch_size_per_replica"] == 8
    assert [d.rsplit("/", 1)[-1] for d in training["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert training["precision"] == precision_default()  # no GPU: float32, or bfloat16 where the CPU has it


def test_one_device_is_the_default_strategy_and_the_cpu_policy_follows_its_bf16_units():
    strategy = distribution_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert precision_default() == ("mixed_bfloat16" if cpu_has_native_bf16() else "float32")
    assert mixed_precision_default() == cpu_has_native_bf16()


def test_cpu_bf16_is_read_from_the_cpu_flags(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    for flags, expected in (("fpu avx512f avx512_bf16 sse", True), ("fpu amx_bf16 amx_tile", True),
                            ("fpu avx512f avx2", False)):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path, *a, **k))
        assert cpu_has_native_bf16() is expected, flags


def test_bfloat16_policy_builds_bfloat16_layers_with_a_float32_output(tiny_dataset, tmp_path):
    with precision_policy("mixed_bfloat16"):
        model = build_unet2d(**MODEL)
    assert keras.config.dtype_policy().name == "float32"
    assert model.layers[1].dtype_policy.name == "mixed_bfloat16" and model.output.dtype == "float32"
    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    result = train(lambda: build_unet2d(**MODEL), data, name="bf16", config={"model": "unet2d"}, data=DATA,
                   epochs=1, results_dir=tmp_path / "results", verbose=0, mixed_precision="mixed_bfloat16")
    assert read_json(result.run.path / "config.json")["training"]["precision"] == "mixed_bfloat16"
    assert result.model.layers[1].dtype_policy.name == "mixed_bfloat16"
    assert math.isfinite(result.history[0]["loss"])
    with pytest.raises(ValueError, match="mixed_float16"):
        precision_policy("float16").__enter__()


def test_mixed_precision_builds_float16_layers_with_a_float32_output_and_trains(tiny_dataset, tmp_path):
    with precision_policy(True):
        model = build_unet2d(**MODEL)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back
    assert model.layers[1].dtype_policy.name == "mixed_float16" and model.output.dtype == "float32"

    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    result = train(lambda: build_unet2d(**MODEL), data, name="mixed", config={"model": "unet2d"}, data=DATA,
                   epochs=1, results_dir=tmp_path / "results", verbose=0, mixed_precision=True)
    assert read_json(result.run.path / "config.json")["training"]["precision"] == "mixed_float16"
    assert result.model.layers[1].dtype_policy.name == "mixed_float16"  # reloaded with its policy
    assert math.isfinite(result.history[0]["loss"])


class _Interrupt(keras.callbacks.Callback):
    """Stops training by an exception after the first epoch's checkpoint is written."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("interrupted after epoch 0")


def test_a_mixed_precision_checkpoint_resumes_with_its_optimizer_state(tiny_dataset, tmp_path):
    import warnings

    import pytest

    data = tiny_datasets(tiny_dataset, tmp_path / "cache")
    kwargs = dict(name="mixed", config={"model": "unet2d"}, data=DATA, results_dir=tmp_path / "results", verbose=0,
                  mixed_precision=True, epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train(lambda: build_unet2d(**MODEL), data, callbacks=[_Interrupt()], **kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Skipping variable loading")  # optimizer state not restored
        resumed = train(lambda: build_unet2d(**MODEL), data, **kwargs)
    assert resumed.resumed_at == 1 and resumed.trained_epochs == 1
    assert type(resumed.model.optimizer).__name__ == "LossScaleOptimizer"
