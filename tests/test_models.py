"""The model zoo: every registry model builds, trains a step, saves, reloads and is QAT-ready."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bcc_edge import models
from bcc_edge.cli import app
from bcc_edge.errors import BccError

EXPECTED = {
    "seed000-basic",
    "seed000-aug",
    "seed000-complex",
    "seed000-enhanced",
    "seed004-m1",
    "seed004-m2",
    "seed004-m3",
    "seed004-m4",
    "bcc-small",
}


def test_registry_holds_every_seed_model_and_ours():
    assert set(models.REGISTRY) == EXPECTED
    assert models.DEFAULT_MODEL == "seed000-enhanced"
    assert {m.source for m in models.REGISTRY.values()} == {"seed000", "seed004", "ours"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_builds_trains_a_step_saves_and_reloads(name, tmp_path):
    from bcc_edge._tf import keras

    model = models.build(name, num_classes=3, input_size=48)
    assert model.input_shape == (None, 48, 48, 3)
    assert model.output_shape == (None, 3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(4, 48, 48, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, np.array([0, 1, 2, 0]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), probs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_is_qat_compatible(name):
    import tensorflow_model_optimization as tfmot

    quantized = tfmot.quantization.keras.quantize_model(models.build(name, num_classes=4, input_size=32))
    assert quantized.output_shape == (None, 4)


def test_models_follow_conv_bn_relu_without_biases():
    from bcc_edge._tf import keras

    for name in EXPECTED:
        model = models.build(name, num_classes=3, input_size=32)
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert convs and all(not layer.use_bias for layer in convs), name
        for layer in convs:  # the next layer reading a conv's output is its BatchNormalization
            consumers = [n.outbound_layer for n in layer.outbound_nodes]
            assert [type(c).__name__ for c in consumers] == ["BatchNormalization"], (name, layer.name)
        assert not any(isinstance(layer, keras.Model) for layer in model.layers), name  # flat


def test_non_square_and_default_sizes():
    assert models.build("bcc-small", 5).input_shape == (None, 128, 128, 3)
    assert models.build("seed000-enhanced", 8, input_size=(64, 96)).input_shape == (None, 64, 96, 3)


def test_softmax_stays_float32_under_mixed_precision():
    from bcc_edge._tf import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = models.build("bcc-small", 3, 32)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[1].compute_dtype == "float16"
    assert model.output.dtype == "float32"


def test_builder_options_change_the_model():
    narrow = models.build("bcc-small", 3, 32, width=0.5)
    wide = models.build("bcc-small", 3, 32)
    assert narrow.count_params() < wide.count_params() / 2


def test_count_macs_matches_hand_count():
    from bcc_edge._tf import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)  # 8*8 * 3*3*3 * 4
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)  # 4*4 * 3*3 * 4
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)  # 4 * 5
    assert models.count_macs(keras.Model(inputs, outputs)) == 8 * 8 * 27 * 4 + 4 * 4 * 9 * 4 + 4 * 5


def test_describe_and_bcc_small_budget():
    d = models.describe("bcc-small")
    assert d["flops"] == 2 * d["macs"] > 0
    assert d["input_size"] == [128, 128]
    assert d["params"] < 1_000_000  # under 1 MB once INT8
    assert d["source"] == "ours"


def test_build_rejects_bad_requests():
    with pytest.raises(BccError, match="unknown model"):
        models.build("resnet9000", 3)
    with pytest.raises(BccError, match="at least 2 classes"):
        models.build("bcc-small", 1)
    with pytest.raises(BccError, match="bcc-small"):
        models.build("bcc-small", 3, 32, depth=3)


def test_models_command_json_lists_all_nine():
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["name"] for r in rows} == EXPECTED
    for row in rows:
        assert set(row) >= {"name", "input_size", "params", "flops", "macs", "source"}
        assert row["params"] > 0 and row["flops"] > 0


def test_models_command_table():
    result = CliRunner().invoke(app, ["models", "--num-classes", "4"])
    assert result.exit_code == 0, result.output
    assert "seed004-m4" in result.stdout and "(default)" in result.stdout


def test_models_command_rejects_one_class():
    result = CliRunner().invoke(app, ["models", "--num-classes", "1"])
    assert result.exit_code == 2
    assert "error:" in result.output
