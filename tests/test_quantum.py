"""The quantum layer (PennyLane in Keras) and the Quantum ResNet classifier (what every builder does
is tested once for all in ``test_registry.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bratslib.models.quantum import QuantumLayer, build_quantum_classifier, draw_circuit
from bratslib.models.resnet_classifier import ENCODER_WEIGHTS
from tests.test_resnet_classifier import tiny_batch

pytestmark = [
    # PennyLane 0.45 still supports its TensorFlow interface, but warns at every new trace.
    pytest.mark.filterwarnings("ignore:Support for the TensorFlow interface is deprecated"),
]

TINY = dict(input_shape=(32, 32, 3), n_classes=2, width=4, n_qubits=2, n_layers=2)


def features(n: int = 5, n_qubits: int = 3, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, n_qubits)) * 3).astype(np.float32)


def test_output_is_one_expectation_per_qubit_in_minus_one_to_one():
    layer = QuantumLayer(n_qubits=3, n_layers=2)
    x = features()
    y = np.asarray(layer(x))  # eager: PennyLane broadcasts over the batch
    assert y.shape == (5, 3) and y.dtype == np.float32
    assert np.all(np.abs(y) <= 1) and np.ptp(y, axis=0).min() > 0.1
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(2, 3)]
    # a graph traced for any batch size vectorises one sample instead; same numbers
    graph = tf.function(layer, input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    np.testing.assert_allclose(np.asarray(graph(x)), y, atol=1e-6)
    # ... and so does a graph traced for this batch size (broadcasting again)
    np.testing.assert_allclose(np.asarray(tf.function(layer)(x)), y, atol=1e-6)


def test_wrong_number_of_features_is_refused():
    with pytest.raises(ValueError, match="expects 4 features"):
        QuantumLayer(n_qubits=4, n_layers=1)(features(2, 3))


def test_gradients_reach_the_circuit_weights():
    keras.utils.set_random_seed(0)
    layer = QuantumLayer(n_qubits=3, n_layers=2)
    x = tf.constant(features())
    target = tf.constant([[1.0, -1.0, 0.5]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((layer(x) - target) ** 2)
    (grad,) = tape.gradient(loss, layer.trainable_weights)
    assert grad.shape == (2, 3) and np.all(np.abs(np.asarray(grad)) > 0)

    before = layer.get_weights()[0]
    optimizer = keras.optimizers.SGD(0.1)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((layer(x) - target) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_weights), layer.trainable_weights))
    assert np.all(layer.get_weights()[0] != before)


def test_config_round_trip():
    layer = QuantumLayer(n_qubits=2, n_layers=3, name="q")
    config = layer.get_config()
    assert {k: config[k] for k in ("n_qubits", "n_layers", "device", "diff_method")} == dict(
        n_qubits=2, n_layers=3, device="default.qubit", diff_method="backprop"
    )
    copy = QuantumLayer.from_config(config)
    assert copy.name == "q" and (copy.n_qubits, copy.n_layers) == (2, 3)
    assert keras.saving.get_registered_name(QuantumLayer) == "bratslib>QuantumLayer"


def test_draw_circuit():
    text = draw_circuit(n_qubits=3, n_layers=2)
    lines = text.splitlines()
    assert len(lines) == 3 and all(line.endswith("<Z>") for line in lines)
    # per qubit: a Hadamard, the embedding RY, and one RY per layer
    assert all(line.count("H") == 1 and line.count("RY") == 3 for line in lines)
    assert text.count("●") == text.count("X") == 4  # 2 CNOTs per layer


@pytest.mark.parametrize(
    "width, n_qubits, n_layers, total, trainable",
    [(64, 4, 6, 11_188_198, 11_178_598), (16, 4, 6, 705_046, 702_646), (8, 2, 2, 178_052, 176_852)],
)
def test_parameter_counts_match_the_docstring(width, n_qubits, n_layers, total, trainable):
    model = build_quantum_classifier((128, 128, 3), 2, width, n_qubits, n_layers)
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    doc = build_quantum_classifier.__doc__
    assert f"{total:,}" in doc and f"{trainable:,}" in doc


def test_the_circuit_sits_between_two_dense_layers_after_the_backbone():
    model = build_quantum_classifier(**TINY)
    assert [layer.name for layer in model.layers[2:]] == ["pre_net", "quantum", "post_net", "probabilities"]
    assert model.get_layer("pre_net").output.shape == (None, 2) and model.encoder_weights == ENCODER_WEIGHTS


def fit_tiny(epochs: int = 6):
    """Seed, build and fit the tiny hybrid model on one fixed batch; returns (model, losses)."""
    keras.utils.set_random_seed(0)
    x, y = tiny_batch()
    model = build_quantum_classifier(**TINY)
    model.compile(keras.optimizers.Adam(3e-2), "sparse_categorical_crossentropy")
    return model, model.fit(x, y, batch_size=8, epochs=epochs, verbose=0).history["loss"]


def test_a_few_steps_lower_the_loss_and_a_seed_repeats_them():
    model, losses = fit_tiny()
    assert losses[-1] < 0.8 * losses[0], losses
    again, losses_again = fit_tiny()
    assert losses_again == losses
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x, _ = tiny_batch(4, seed=1)
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_the_quantum_layer_loads_without_custom_objects(tmp_path):
    model = build_quantum_classifier(**TINY)
    model.save(tmp_path / "quantum.keras")
    loaded = keras.models.load_model(tmp_path / "quantum.keras")  # no custom_objects
    assert isinstance(loaded.get_layer("quantum"), QuantumLayer) and loaded.get_layer("quantum").n_layers == 2
    np.testing.assert_array_equal(loaded.get_layer("quantum").get_weights()[0], model.get_layer("quantum").get_weights()[0])


@pytest.mark.parametrize("device, diff_method", [("default.qubit", "adjoint"), ("lightning.qubit", "adjoint")])
def test_other_simulators_agree_in_eager_mode(device, diff_method):
    if device == "lightning.qubit":
        pytest.importorskip("pennylane_lightning")
    x = tf.constant(features(4))
    results = []
    for config in (dict(), dict(device=device, diff_method=diff_method)):
        keras.utils.set_random_seed(0)
        layer = QuantumLayer(n_qubits=3, n_layers=2, **config)
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * tf.constant([1.0, -2.0, 3.0]))
        results.append((np.asarray(y), np.asarray(tape.gradient(loss, layer.trainable_weights)[0])))
    (y, grad), (y_other, grad_other) = results
    np.testing.assert_allclose(y_other, y, atol=1e-6)
    np.testing.assert_allclose(grad_other, grad, atol=1e-5)


def test_the_classifier_trains_in_eager_mode_too():
    keras.utils.set_random_seed(0)
    x, y = tiny_batch(4)
    model = build_quantum_classifier(**TINY)
    model.compile(keras.optimizers.Adam(3e-2), "sparse_categorical_crossentropy", run_eagerly=True)
    before = model.get_layer("quantum").get_weights()[0]
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(model.get_layer("quantum").get_weights()[0] != before)
    # eager calls (broadcasting) and predict (a graph, vectorised) agree
    np.testing.assert_allclose(np.asarray(model(x, training=False)), model.predict(x, verbose=0), atol=1e-6)


def test_more_than_seven_qubits_run_one_sample_at_a_time():
    # A batch of 8-qubit states has 9 dimensions: too many to broadcast or vectorise.
    layer = QuantumLayer(n_qubits=8, n_layers=1)
    x = features(2, 8)
    y = np.asarray(layer(x))
    assert y.shape == (2, 8) and np.all(np.abs(y) <= 1)
    graph = tf.function(layer, input_signature=[tf.TensorSpec([None, 8], tf.float32)])
    np.testing.assert_allclose(np.asarray(graph(x)), y, atol=1e-6)
    angles = np.tanh(x[1].astype(np.float64)) * np.pi / 2
    alone = layer.qnode(tf.constant(angles), tf.cast(tf.convert_to_tensor(layer.q_weights), tf.float64))
    np.testing.assert_allclose(np.real(np.stack(alone)), y[1], atol=1e-6)


def test_xla_compiles_the_layer_and_its_gradient():
    layer = QuantumLayer(n_qubits=2, n_layers=1)
    x = tf.constant(features(3, 2))
    expected = np.asarray(layer(x))  # eager; builds the layer

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def forward_backward(x):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * tf.constant([1.0, -1.0]))
        return y, tape.gradient(loss, layer.trainable_weights)[0]

    y, grad = forward_backward(x)
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-6)
    assert np.all(np.abs(np.asarray(grad)) > 0)


def test_the_tf_interface_deprecation_shows_once_per_process():
    """PennyLane warns at every new trace; a notebook changes the warning filters between cells,
    which makes Python forget what it has shown: the warning would repeat in every cell that trains."""
    script = (
        "import warnings\n"
        "from bratslib.models.quantum import QuantumLayer\n"
        "import numpy as np, tensorflow as tf\n"
        "x = np.ones((2, 2), np.float32)\n"
        "for size in (2, 3):\n"
        "    warnings.simplefilter('default', ResourceWarning)  # a filter change, as between cells\n"
        "    tf.function(QuantumLayer(n_qubits=size, n_layers=1))(np.ones((2, size), np.float32))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("Support for the TensorFlow interface is deprecated") == 1, done.stderr[-2000:]
