"""The Quantum ResNet: ResNet-18 features into a variational quantum circuit (section 2.3.7).

The report's quantum classifier replaces the classical head of
:mod:`bratslib.models.resnet_classifier` by a *dressed* quantum circuit, as in PennyLane's
quantum transfer learning demo (Mari et al., 2020):

    images -> ResNet-18 -> features (8w,)
      | Dense(n_qubits) .................... "pre_net", linear
      | QuantumLayer: tanh * pi/2, H, RY(angle) on each qubit,
      |               n_layers x (CNOT chain, RY(weights)), <Z> of each qubit
      | Dense(n_classes), softmax .......... "post_net", "probabilities"

Every PennyLane-to-Keras detail of the book lives in this module.

**The circuit** (:func:`circuit`, drawn by :func:`draw_circuit`) is the demo's:

1. A Hadamard on every qubit puts it in (|0> + |1>)/sqrt 2, on the equator of the Bloch
   sphere.
2. ``qml.AngleEmbedding(rotation="Y")`` rotates qubit ``i`` by ``RY(angle_i)``.  After the
   Hadamard, <Z> of a lone qubit is ``-sin(angle)``: linear around 0, where a freshly
   initialised dense layer puts most features (without the Hadamard it would be
   ``cos(angle)``, flat around 0).  The angles are ``tanh(feature) * pi/2``, as in the demo:
   ``tanh`` bounds them to (-pi/2, pi/2), the half turn on which ``sin`` is one-to-one, so
   large features saturate instead of wrapping around the circle.
3. ``n_layers`` entangling layers, each a chain of CNOTs (qubit pairs (0, 1), (2, 3), ...
   then (1, 2), (3, 4), ...) followed by a trainable ``RY(w[layer, i])`` on every qubit.  We
   keep the demo's layer rather than ``qml.BasicEntanglerLayers`` (RX rotations first, then
   a CNOT *ring*, closing back from the last qubit to the first; ``rotation=qml.RY`` is
   possible too): the two are alike, and this is the circuit of the demo the study
   follows.  The weights, shape ``(n_layers, n_qubits)``, start near 0 (normal,
   standard deviation :data:`Q_DELTA` = 0.01, the demo's ``q_delta``): the circuit starts as
   little more than the embedding and the CNOTs, not at a random point of its landscape.
4. The expectation of Pauli Z on each qubit: ``n_qubits`` outputs in [-1, 1].

**Keras and PennyLane.**  ``qml.qnn.KerasLayer`` was removed in PennyLane 0.42, so
:class:`QuantumLayer` is our own ``keras.layers.Layer``.  It calls a
QNode with PennyLane's TensorFlow interface (Keras' TensorFlow backend is assumed): the
circuit's weights are a Keras variable, passed to the QNode as a plain tensor
(``tf.convert_to_tensor``), and the circuit's expectations come back as float64 tensors,
stacked, ``tf.math.real`` taken and cast to the layer's dtype.  Inputs and weights are cast to
float64 first, as PennyLane simulates in complex128 (the adjoint method fails on float32).

**Batches.**  Where the batch size is known (eager calls, and graphs traced for a fixed
batch) the whole batch goes through the circuit at once, by PennyLane's parameter
broadcasting: ``AngleEmbedding`` gets the (B, n_qubits) angles and the simulator carries B
states.  ``model.fit`` and ``model.predict`` trace their step for a batch of unknown size
(None), and PennyLane cannot broadcast over an unknown size (it takes the angles for one
sample and the simulation fails on shapes); there the layer uses ``tf.vectorized_map``: the
circuit is traced for one sample and TensorFlow vectorises that graph over the batch, about
as fast as broadcasting.  Both ways give the same numbers (a test checks).  Neither works
beyond :data:`MAX_BATCHED_QUBITS` (7) qubits under TensorFlow; larger circuits run one sample
at a time (``tf.map_fn``, a loop: 7 times slower than vectorised at 4 qubits).

**Simulator and gradients.**  ``device="default.qubit"`` with ``diff_method="backprop"`` (the
defaults) simulates with TensorFlow operations, so it runs inside ``tf.function`` graphs
(``model.fit`` as usual) and TensorFlow differentiates it.  ``"adjoint"`` and the
``lightning.qubit`` device work in eager mode only (``model.compile(..., run_eagerly=True)``)
and, measured by ``benchmarks/bench_quantum.py``, are 15 to 100 times slower at 4 qubits
(batch of 16, forward and backward): in eager mode every batch pays PennyLane's Python
overhead, which a graph pays once, when it is traced.  At the few qubits of this study,
backprop in a graph wins.  XLA compiles the backprop graph too (``jit_compile=True``, tested
on CPU; Keras' ``"auto"`` turns XLA on where there is a GPU, as for the classical model).

**Warnings.**  PennyLane 0.45 warns that its TensorFlow interface is deprecated (its message
still says it "will be removed in v0.44"); it works, and we leave the warning visible, since it
is true, but once per process (:data:`_TF_INTERFACE_DEPRECATION`; a notebook otherwise shows it
again in every cell that trains: any change to the warning filters, as between cells, makes
Python forget which warnings it has shown).  TensorFlow's
log line about casting complex128 to float64, a dozen times per traced step, is dropped
(see :data:`_COMPLEX_CAST_WARNING`).  pyproject.toml pins ``pennylane==0.45.1``.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings

import keras
import numpy as np
import pennylane as qml
import tensorflow as tf
from keras import layers

from bratslib.models.resnet_classifier import ENCODER_WEIGHTS, build_resnet18_backbone

#: Standard deviation of the initial circuit weights (the demo's ``q_delta``).
Q_DELTA = 0.01

#: Most qubits whose states :class:`QuantumLayer` simulates as a batch (broadcast or
#: vectorised).  A batch of n-qubit states is a tensor of n + 1 dimensions; TensorFlow slices
#: at most 8, and for more PennyLane 0.45 switches to a ``tensordot`` that fails on broadcast
#: angles.  Above this, the layer loops over the samples (``tf.map_fn``).
MAX_BATCHED_QUBITS = 7


def _not_the_complex_cast_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_COMPLEX_CAST_WARNING)


# PennyLane's simulator casts the (float64) gate angles to complex128.  The gradient of such a
# cast casts complex128 back to float64, and TensorFlow logs "You are casting an input of type
# complex128 to an incompatible dtype float64. This will discard the imaginary part ..." for
# each: a dozen lines per traced training step (every step in eager mode), for a cast that is
# exactly right (the angles are real).  We drop that one message from TensorFlow's logger.
_COMPLEX_CAST_WARNING = "You are casting an input of type complex128 to an incompatible dtype float64"
tf.get_logger().addFilter(_not_the_complex_cast_warning)

#: The start of PennyLane's deprecation warning for its TensorFlow interface: shown by the
#: first circuit a process runs, then ignored (:func:`_after_the_first_circuit`).
_TF_INTERFACE_DEPRECATION = "Support for the TensorFlow interface is deprecated"


@functools.cache
def _after_the_first_circuit() -> None:
    # Python's "once" is not enough: it forgets what it showed whenever the filters change
    warnings.filterwarnings("ignore", message=_TF_INTERFACE_DEPRECATION)


def circuit(inputs, weights, n_qubits: int, n_layers: int):
    """The quantum function: embed ``inputs`` (angles), entangle, measure.

    ``inputs`` has shape (n_qubits,), or (B, n_qubits) for a broadcast batch; ``weights``
    (n_layers, n_qubits).  Returns the list of ``n_qubits`` Pauli-Z expectations.
    """
    wires = range(n_qubits)
    for i in wires:
        qml.Hadamard(wires=i)
    qml.AngleEmbedding(inputs, wires=wires, rotation="Y")
    for layer in range(n_layers):
        for i in (*range(0, n_qubits - 1, 2), *range(1, n_qubits - 1, 2)):
            qml.CNOT(wires=[i, i + 1])
        for i in wires:
            qml.RY(weights[layer, i], wires=i)
    return [qml.expval(qml.PauliZ(i)) for i in wires]


def make_qnode(
    n_qubits: int, n_layers: int, device: str = "default.qubit", diff_method: str = "backprop", interface: str = "tf"
) -> qml.QNode:
    """A QNode running :func:`circuit` on a fresh ``device`` of ``n_qubits`` wires."""

    def qfunc(inputs, weights):
        return circuit(inputs, weights, n_qubits, n_layers)

    return qml.QNode(qfunc, qml.device(device, wires=n_qubits), interface=interface, diff_method=diff_method)


def draw_circuit(n_qubits: int = 4, n_layers: int = 6, max_length: int = 100) -> str:
    """The circuit as text (``qml.draw``, templates expanded), gate parameters left out.

    The RY angles of the first column are the embedded features, the later ones the weights.
    """
    qnode = make_qnode(n_qubits, n_layers, interface="numpy")
    drawer = qml.draw(qnode, level="device", decimals=None, max_length=max_length)
    return drawer(np.zeros(n_qubits), np.zeros((n_layers, n_qubits)))


@keras.saving.register_keras_serializable(package="bratslib")
class QuantumLayer(layers.Layer):
    """A variational quantum circuit as a Keras layer: (B, n_qubits) -> (B, n_qubits) in [-1, 1].

    Input feature ``i`` becomes the angle ``tanh(x_i) * pi/2`` of qubit ``i``; the output is
    <Z> of each qubit after ``n_layers`` trainable entangling layers (see the module
    docstring).  ``device`` and ``diff_method`` choose PennyLane's simulator and its
    differentiation method; the defaults work in ``tf.function`` graphs, other choices need
    eager mode.  The layer has ``n_layers * n_qubits`` weights.
    """

    def __init__(
        self,
        n_qubits: int = 4,
        n_layers: int = 6,
        device: str = "default.qubit",
        diff_method: str = "backprop",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_qubits, self.n_layers = int(n_qubits), int(n_layers)
        self.device, self.diff_method = device, diff_method
        self.qnode = make_qnode(self.n_qubits, self.n_layers, device, diff_method)

    def build(self, input_shape):
        if input_shape[-1] != self.n_qubits:
            raise ValueError(f"QuantumLayer expects {self.n_qubits} features (one per qubit), got {input_shape[-1]}")
        self.q_weights = self.add_weight(
            shape=(self.n_layers, self.n_qubits),
            initializer=keras.initializers.RandomNormal(stddev=Q_DELTA),
            name="q_weights",
        )

    def call(self, inputs):
        angles = tf.tanh(tf.cast(inputs, tf.float64)) * (math.pi / 2)
        weights = tf.cast(tf.convert_to_tensor(self.q_weights), tf.float64)
        one_sample = lambda angles_1: self._expectations(angles_1, weights)  # noqa: E731
        if self.n_qubits > MAX_BATCHED_QUBITS:  # one circuit per sample, in a loop
            z = tf.map_fn(one_sample, angles, fn_output_signature=tf.float64)
        elif angles.shape[0] is None:  # a graph traced for any batch size: vectorise one sample
            z = tf.vectorized_map(one_sample, angles)
        else:  # the batch size is known: PennyLane broadcasts over it
            z = self._expectations(angles, weights)
        return tf.cast(z, self.compute_dtype)

    # AutoGraph (which Keras' tf.function applies) cannot convert PennyLane's code, and says
    # so at length; the QNode is plain Python that builds TensorFlow operations anyway.
    @tf.autograph.experimental.do_not_convert
    def _expectations(self, angles, weights):
        expectations = tf.math.real(tf.stack(self.qnode(angles, weights), axis=-1))
        _after_the_first_circuit()
        return expectations

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.n_qubits)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_qubits=self.n_qubits, n_layers=self.n_layers, device=self.device, diff_method=self.diff_method
        )
        return config


def build_quantum_classifier(
    input_shape: tuple[int, int, int] = (128, 128, 3),
    n_classes: int = 2,
    width: int = 64,
    n_qubits: int = 4,
    n_layers: int = 6,
    device: str = "default.qubit",
    diff_method: str = "backprop",
    name: str = "quantum_classifier",
) -> keras.Model:
    """The Quantum ResNet: images (B, H, W, C) -> class probabilities (B, n_classes).

    The backbone of :func:`~bratslib.models.resnet_classifier.build_resnet_classifier` (a
    nested ``resnet18``, random weights: ``model.encoder_weights``), then the dressed circuit:
    ``Dense(n_qubits)`` ("pre_net"), :class:`QuantumLayer` ("quantum"),
    ``Dense(n_classes)`` ("post_net") and a float32 softmax ("probabilities").

    Parameter counts for 3 input channels and ``n_classes=2`` (total, and trainable); the
    circuit itself holds ``n_layers * n_qubits`` of them:

    =====  ========  ========  ==========  ==========
    width  n_qubits  n_layers       total   trainable
    =====  ========  ========  ==========  ==========
    64     4         6         11,188,198  11,178,598
    16     4         6            705,046     702,646
    8      2         2            178,052     176,852
    =====  ========  ========  ==========  ==========
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = build_resnet18_backbone(input_shape, width)(inputs)
    x = layers.Dense(n_qubits, name="pre_net")(x)
    x = QuantumLayer(n_qubits, n_layers, device, diff_method, name="quantum")(x)
    x = layers.Dense(n_classes, name="post_net")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)

    model = keras.Model(inputs, outputs, name=name)
    model.encoder_weights = ENCODER_WEIGHTS
    return model
