"""Quantization-aware training: unsupported layers are named up front, fine-tuning trains, and
QAT weights can be carried back into the float architecture."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_edge.errors import BccError

pytest.importorskip("tensorflow_model_optimization")

from bcc_edge import models, qat  # noqa: E402
from bcc_edge._tf import keras, tf  # noqa: E402


def _conv_model(kind: str):
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Rescaling(1 / 255.0, name="rescale")(inputs) if kind == "preprocessing" else inputs
    x = layers.Conv2D(4, 3, use_bias=False, name="conv")(x)
    if kind == "bn_after_relu":
        x = layers.BatchNormalization(name="late_bn")(layers.ReLU(name="relu")(x))
    else:
        x = layers.ReLU(name="relu")(layers.BatchNormalization(name="bn")(x))
    if kind == "nested":
        x = keras.Sequential([layers.Conv2D(4, 1)], name="inner")(x)
    x = layers.Dense(3, activation="softmax", name="head")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, x, name=f"m_{kind}")


def test_flat_conv_bn_relu_models_are_supported():
    assert qat.unsupported_layers(_conv_model("ok")) == []
    assert qat.unsupported_layers(models.build("bcc-small", 3, 32)) == []


@pytest.mark.parametrize(
    "kind, layer, reason",
    [
        ("preprocessing", "rescale (Rescaling)", "preprocessing outside the model"),
        ("bn_after_relu", "late_bn (BatchNormalization)", "follows ReLU"),
        ("nested", "inner (Sequential)", "nested models"),
    ],
)
def test_unsupported_layers_are_named_with_the_reason(kind, layer, reason):
    problems = qat.unsupported_layers(_conv_model(kind))
    assert len(problems) == 1 and problems[0].startswith(layer) and reason in problems[0]
    with pytest.raises(BccError, match=f"cannot quantise model 'm_{kind}': {layer.split()[0]}"):
        qat.quantize_for_training(_conv_model(kind))


def test_sequential_models_are_refused():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)], name="seq")
    assert "only functional models" in qat.unsupported_layers(model)[0]


def test_cosine_schedule_runs_from_base_to_zero():
    lr = qat.cosine_schedule(1e-4, 10)
    assert lr(0) == pytest.approx(1e-4)
    assert lr(5) == pytest.approx(5e-5)
    assert lr(10) == pytest.approx(0.0) and lr(11) == pytest.approx(0.0)


def _toy_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 16, 16, 3)).astype(np.float32) + y[:, None, None, None].astype(np.float32)
    return x, y


def test_finetune_trains_and_refuses_zero_epochs():
    keras.utils.set_random_seed(0)
    model = _conv_model("ok")
    x, y = _toy_data()
    wrapped = qat.quantize_for_training(model)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    with pytest.raises(BccError, match="at least 1"):
        qat.finetune(wrapped, ds, epochs=0, steps_per_epoch=4)
    lines = []
    logs = qat.finetune(wrapped, ds, epochs=2, steps_per_epoch=4, lr=1e-3, label_smoothing=0.1, log=lines.append)
    assert np.isfinite(logs["loss"]) and 0.0 <= logs["accuracy"] <= 1.0
    assert [line.split(":")[0] for line in lines] == ["QAT epoch 1/2", "QAT epoch 2/2"]
    assert float(wrapped.optimizer.learning_rate.numpy()) < 1e-3 * 0.2  # annealed by the last step


def test_transfer_weights_carries_qat_weights_into_the_float_architecture():
    model = models.build("bcc-small", 3, 32)
    wrapped = qat.quantize_for_training(model)
    kernel = next(v for v in wrapped.weights if v.name == "stem_conv/kernel:0")
    kernel.assign(kernel + 0.5)
    clone = qat.transfer_weights(wrapped, model)
    assert not any("quant" in v.name for v in clone.weights)
    np.testing.assert_array_equal(clone.get_layer("stem_conv").get_weights()[0], kernel.numpy())
    np.testing.assert_array_equal(clone.get_layer("stem_bn").get_weights()[0], model.get_layer("stem_bn").get_weights()[0])
    assert not np.array_equal(clone.get_layer("stem_conv").get_weights()[0], model.get_layer("stem_conv").get_weights()[0])
