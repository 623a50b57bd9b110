"""What does the quantum head cost?  The dressed circuit against the classical head.

    .venv/bin/python benchmarks/bench_quantum.py [--batch-size 16] [--qubits 2 4 6 8] [--layers 2 6]

Both heads of the tumour classifier take the ResNet-18 features (512 of them at width 64)
of a batch of slices to two class probabilities:

* classical: Dense(256, ReLU), Dropout, Dense(2), softmax
  (:func:`~bratslib.models.resnet_classifier.build_resnet_classifier`'s head);
* quantum: Dense(n_qubits), :class:`~bratslib.models.quantum.QuantumLayer` (n_layers),
  Dense(2), softmax (:func:`~bratslib.models.quantum.build_quantum_classifier`'s head).

For each, the time (ms) of a forward pass (inference) and of a forward and backward pass
(``tf.GradientTape``, the gradients of the cross-entropy for every trainable weight: a
training step less the optimizer) on one batch, in the ways the quantum layer can run:

* ``default.qubit`` + backprop, graph: ``tf.function`` traced for any batch size, as
  ``model.fit`` and ``model.predict`` run it; the layer vectorises one sample's circuit
  (``tf.vectorized_map``);
* ``default.qubit`` + backprop, graph, fixed batch: traced for this batch size; PennyLane
  broadcasts the circuit over the batch;
* ``default.qubit`` + backprop, eager (``run_eagerly=True``; broadcasting);
* ``default.qubit`` + adjoint, eager; ``lightning.qubit`` + adjoint, eager (if
  ``pennylane-lightning`` is installed): the adjoint method needs eager mode.

Beyond ``MAX_BATCHED_QUBITS`` (7) qubits the layer loops over the samples in every mode, so
there is no "fixed batch" row for 8 qubits.  The classical head runs in a graph; so does a row
for scale: the ResNet-18 backbone itself (--backbone-width 64, --image-size 128).  Each time
is the median over at least --min-calls calls and --min-seconds seconds, after two warm-up
calls (which trace the graphs); the median, as the machine may be shared.  Eager rows are
slow (PennyLane's Python overhead per call), so they run for the qubit counts of
--eager-qubits only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bratslib.models.quantum import MAX_BATCHED_QUBITS, QuantumLayer  # noqa: E402
from bratslib.models.resnet_classifier import build_resnet18_backbone  # noqa: E402

# The TensorFlow interface is deprecated in PennyLane 0.45 but works; one warning is enough.
warnings.filterwarnings("ignore", message="Support for the TensorFlow interface is deprecated")


def classical_head(n_features: int, hidden: int = 256) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(2),
            keras.layers.Activation("softmax"),
        ]
    )


def quantum_head(n_features: int, n_qubits: int, n_layers: int, device: str, diff_method: str) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(n_qubits),
            QuantumLayer(n_qubits, n_layers, device, diff_method),
            keras.layers.Dense(2),
            keras.layers.Activation("softmax"),
        ]
    )


def passes(model: keras.Model, mode: str, batch_size: int, in_shape: tuple[int, ...], probabilities: bool = True):
    """(forward, forward + backward) functions of (x, y) for ``mode`` "eager", "graph" (any
    batch size) or "fixed" (a graph for ``batch_size`` only).  The backward pass takes the
    gradients of the cross-entropy (of the mean output if not ``probabilities``) for every
    trainable weight."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def forward(x, y):
        return model(x, training=False)

    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = loss_fn(y, out) if probabilities else tf.reduce_mean(out)
        return tape.gradient(loss, model.trainable_weights)

    if mode == "eager":
        return forward, forward_backward
    batch = None if mode == "graph" else batch_size
    signature = [tf.TensorSpec([batch, *in_shape], tf.float32), tf.TensorSpec([batch], tf.int32)]
    return tf.function(forward, input_signature=signature), tf.function(forward_backward, input_signature=signature)


def milliseconds(fn, args, min_calls: int, min_seconds: float) -> float:
    """Median time of one call (ms) over at least ``min_calls`` calls and ``min_seconds``,
    after two warm-up calls."""
    fn(*args)
    fn(*args)
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def time_passes(model: keras.Model, mode: str, data, timing: dict, probabilities: bool = True) -> list[float]:
    """[forward ms, forward + backward ms] of ``model`` on ``data`` = (x, y), in ``mode``."""
    x, _ = data
    forward, forward_backward = passes(model, mode, x.shape[0], x.shape[1:], probabilities)
    grads = forward_backward(*data)
    assert len(grads) == len(model.trainable_weights) and all(g is not None for g in grads), "no gradient"
    return [milliseconds(forward, data, **timing), milliseconds(forward_backward, data, **timing)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--features", type=int, default=512, help="backbone features (512: ResNet-18 at width 64)")
    parser.add_argument("--qubits", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 6])
    parser.add_argument("--eager-qubits", type=int, nargs="*", default=[4], help="qubit counts of the eager rows")
    parser.add_argument("--min-calls", type=int, default=5, help="least timed calls per cell (default 5)")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="least timed seconds per cell (default 0.3)")
    parser.add_argument("--backbone-width", type=int, default=64, help="width of the backbone row; 0: no row")
    parser.add_argument("--image-size", type=int, default=128, help="image size of the backbone row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        import pennylane_lightning  # noqa: F401

        lightning = True
    except ImportError:
        lightning = False
    methods = [
        ("default.qubit", "backprop", "graph"),
        ("default.qubit", "backprop", "fixed"),
        ("default.qubit", "backprop", "eager"),
        ("default.qubit", "adjoint", "eager"),
    ] + ([("lightning.qubit", "adjoint", "eager")] if lightning else [])
    mode_names = {"graph": "graph", "fixed": "graph, fixed batch", "eager": "eager"}

    keras.utils.set_random_seed(args.seed)
    bs, nf = args.batch_size, args.features
    rng = np.random.default_rng(args.seed)
    data = (tf.constant(rng.normal(size=(bs, nf)), tf.float32), tf.constant(rng.integers(0, 2, bs), tf.int32))
    timing = dict(min_calls=args.min_calls, min_seconds=args.min_seconds)

    t0 = time.perf_counter()
    classical = time_passes(classical_head(nf), "graph", data, timing)
    rows = [("classical: Dense(256)-Dropout-Dense(2), graph", "", "", *classical)]
    if args.backbone_width:
        size, width = args.image_size, args.backbone_width
        images = (tf.constant(rng.random((bs, size, size, 3)), tf.float32), data[1])
        model = build_resnet18_backbone((size, size, 3), width)
        backbone = time_passes(model, "graph", images, timing, probabilities=False)
        rows.append((f"for scale: ResNet-18 backbone, width {width}, {size}x{size}x3, graph", "", "", *backbone))
    cells = {}
    for device, diff_method, mode in methods:
        label = f"{device} + {diff_method}, {mode_names[mode]}"
        for n_qubits in args.qubits:
            if mode == "eager" and n_qubits not in args.eager_qubits:
                continue
            if mode == "fixed" and n_qubits > MAX_BATCHED_QUBITS:
                continue  # the layer loops over samples anyway: the "graph" row
            for n_layers in args.layers:
                head = quantum_head(nf, n_qubits, n_layers, device, diff_method)
                ms = time_passes(head, mode, data, timing)
                cells[label, n_qubits, n_layers] = ms
                rows.append((label, n_qubits, n_layers, *ms))
                print(f"  {label}, {n_qubits} qubits, {n_layers} layers: {ms[0]:.1f} / {ms[1]:.1f} ms", flush=True)

    print(f"\n{os.cpu_count()} CPUs, batch size {bs}, {nf} features in; TensorFlow {tf.__version__}, "
          f"{time.perf_counter() - t0:.0f} s\n")
    width = max(len(r[0]) for r in rows)
    head = f"{'head':<{width}}  {'qubits':>6}  {'layers':>6}  {'fwd ms':>8}  {'fwd+bwd ms':>10}  {'x classical':>15}"
    print(head)
    print(f"{'-' * width}  {'-' * 6}  {'-' * 6}  {'-' * 8}  {'-' * 10}  {'-' * 15}")
    for name, q, layers, fwd, both in rows:
        ratio = f"{fwd / classical[0]:.1f} / {both / classical[1]:.1f}"
        print(f"{name:<{width}}  {q:>6}  {layers:>6}  {fwd:>8.2f}  {both:>10.2f}  {ratio:>15}")
    print("\nx classical: forward / forward+backward time over the classical head's")

    graph = "default.qubit + backprop, graph"
    for q in args.eager_qubits:
        for layers in args.layers:
            if (graph, q, layers) not in cells:
                continue
            base = cells[graph, q, layers][1]
            others = [(label, ms[1] / base) for (label, q2, l2), ms in cells.items() if (q2, l2) == (q, layers)]
            text = ", ".join(f"{label} {r:.1f}x" for label, r in others if label != graph)
            print(f"{q} qubits, {layers} layers, fwd+bwd over {graph}: {text}")
            if args.backbone_width:
                extra = (base - classical[1]) / backbone[1]
                print(f"  quantum head in place of the classical one, graph: {extra:+.1%} on the backbone's fwd+bwd")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
