"""TransUNet: a CNN encoder, a transformer on its deepest map, a cascaded upsampling decoder (what
every builder does is tested once for all in ``test_registry.py``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bratslib.losses import DiceFocalLoss
from bratslib.models.transunet import PositionEmbedding, attention_maps, build_transunet

# Keras 3.15 converts TF tensors with np.array(x), which numpy 2 warns about on every predict.
#: The docstring's settings: report-like (with 4 and 12 transformer layers) and CPU smoke;
#: and a smaller one still for training and saving.
REPORT = dict(base_filters=32, depth=4, embed_dim=256, num_heads=8, num_layers=4, mlp_dim=1024)
SMOKE = dict(base_filters=8, depth=3, embed_dim=64, num_heads=2, num_layers=2, mlp_dim=128)
TINY = dict(input_shape=(32, 32, 2), n_classes=2, base_filters=4, depth=2, embed_dim=16, num_heads=2,
            num_layers=1, mlp_dim=32)


@pytest.mark.parametrize(
    "config, total, trainable",
    [
        (REPORT, 12_523_332, 12_514_436),
        (dict(REPORT, num_layers=12), 18_841_412, 18_832_516),
        (SMOKE, 251_156, 250_084),
    ],
)
def test_parameter_counts_match_the_docstring(config, total, trainable):
    model = build_transunet((128, 128, 2), 4, **config)
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert f"{total:,}" in build_transunet.__doc__ and f"{trainable:,}" in build_transunet.__doc__


def test_the_transformer_sees_one_token_per_pixel_of_the_deepest_map():
    model = build_transunet(**dict(TINY, input_shape=(32, 48, 2)))  # deepest map 8 x 12
    tokens = (32 // 2**2) * (48 // 2**2)
    assert model.get_layer("position_embedding").output.shape == (None, tokens, 16)
    # The recipe of the docstring pulls out the attention scores of a block.
    x = np.random.default_rng(0).random((1, 32, 48, 2), dtype=np.float32)
    norm = keras.Model(model.input, model.get_layer("transformer0_norm1").output)
    tokens_in = norm.predict(x, verbose=0)
    _, scores = model.get_layer("transformer0_attention")(tokens_in, tokens_in, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)
    assert scores.shape == (1, 2, tokens, tokens)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    # attention_maps does the same for every block
    maps = attention_maps(model, x)
    assert len(maps) == TINY.get("num_layers", 1) and maps[0].shape == (1, 2, tokens, tokens)
    np.testing.assert_allclose(maps[0], scores, atol=1e-5)
    with pytest.raises(ValueError, match="no transformer blocks"):
        attention_maps(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]), np.zeros((1, 4)))


def test_bad_sizes_raise_naming_the_constraint():
    with pytest.raises(ValueError, match=r"120x120 must be divisible by 2\*\*depth = 16"):
        build_transunet((120, 120, 2), **dict(SMOKE, depth=4))
    with pytest.raises(ValueError, match="embed_dim = 64 must be divisible by num_heads = 3"):
        build_transunet((128, 128, 2), **dict(SMOKE, num_heads=3))


def test_a_tiny_transunet_learns_a_threshold():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((8, 32, 32, 2), dtype=np.float32)
    y = keras.ops.one_hot((x[..., 0] > 0.5).astype("int32"), 2)
    model = build_transunet(**TINY)
    model.compile(keras.optimizers.Adam(3e-2), DiceFocalLoss(), jit_compile=False)
    losses = model.fit(x, y, batch_size=8, epochs=12, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses


def test_the_position_embedding_loads_without_custom_objects(tmp_path):
    model = build_transunet(**TINY)
    model.save(tmp_path / "transunet.keras")
    loaded = keras.models.load_model(tmp_path / "transunet.keras")  # no custom_objects
    assert isinstance(loaded.get_layer("position_embedding"), PositionEmbedding)
    np.testing.assert_array_equal(loaded.get_layer("position_embedding").get_weights()[0],
                                  model.get_layer("position_embedding").get_weights()[0])


_GRAPH_MODE_TRAINING = """
import numpy as np, keras
from bratslib.models.transunet import build_transunet
model = build_transunet((128, 128, 2), 4, base_filters=4, depth=2, embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
model.compile("adam", "categorical_crossentropy", jit_compile=False)
x = np.random.default_rng(0).random((8, 128, 128, 2), dtype=np.float32)
y = np.eye(4, dtype="float32")[np.random.default_rng(1).integers(0, 4, (8, 128, 128))]
model.fit(x, y, epochs=2, verbose=0)
print("trained")
"""


def test_trains_in_graph_mode_without_xla_on_the_cpu():
    # How Keras trains on a CPU-only machine (jit_compile="auto" turns XLA off there).  A strided
    # 1x1 convolution with few channels crashes TensorFlow 2.21's oneDNN kernels in this mode
    # (heap corruption, the process dies), so the encoder's shortcut subsamples first; a
    # subprocess keeps a crash from taking pytest down with it.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _GRAPH_MODE_TRAINING], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-2000:]
