"""Quantization-aware fine-tuning of a trained float model (tfmot, default 8-bit scheme).

tfmot's `quantize_model` handles flat functional models built from layers its registry knows,
plus BatchNormalization folded into the Conv2D/DepthwiseConv2D right before it. Anything else
(preprocessing layers inside the model, BN after an activation, nested models) fails deep in
tfmot with a message about one layer; `unsupported_layers` finds all of them up front so the
user hears about every offending layer, with the reason, before any time is spent.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from bcc_edge._tf import keras, meet_onednn_uint8_note, tf
from bcc_edge.errors import BccError

# QAT starts from converged float weights: a large LR undoes them (a freshly wrapped model
# evaluates at chance until the quantiser ranges settle, and high-LR BN updates swing val
# accuracy wildly), so fine-tune gently and anneal to zero.
DEFAULT_QAT_LR = 1e-4

_BN_HOSTS = ("Conv2D", "DepthwiseConv2D")


def _registry():
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    return default_8bit_quantize_registry.Default8BitQuantizeRegistry()


def _inbound_layers(layer) -> list:
    inbound = []
    for node in layer.inbound_nodes:
        layers = node.inbound_layers
        inbound.extend(layers if isinstance(layers, (list, tuple)) else [layers])
    return inbound


def unsupported_layers(model) -> list[str]:
    """'name (Class): reason' for every layer tfmot's default 8-bit QAT cannot quantise."""
    if isinstance(model, keras.Sequential) or not getattr(model, "_is_graph_network", False):
        return [f"{model.name} ({type(model).__name__}): only functional models can be quantised; rebuild it with keras.Model(inputs, outputs)"]
    registry = _registry()
    problems = []
    for layer in model.layers:
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            problems.append(f"{layer.name} ({kind}): nested models cannot be quantised; flatten it into the outer model")
        elif isinstance(layer, keras.layers.BatchNormalization):
            hosts = [type(x).__name__ for x in _inbound_layers(layer)]
            if len(hosts) != 1 or hosts[0] not in _BN_HOSTS:
                problems.append(
                    f"{layer.name} ({kind}): BatchNormalization can only be quantised right after "
                    f"Conv2D/DepthwiseConv2D (it follows {', '.join(hosts) or 'nothing'})"
                )
        elif not registry.supports(layer):
            hint = "; do preprocessing outside the model" if "preprocessing" in type(layer).__module__ else ""
            problems.append(f"{layer.name} ({kind}): not supported by tfmot's default 8-bit scheme{hint}")
    return problems


def quantize_for_training(model):
    """The model wrapped with fake-quant nodes (tfmot `quantize_model`), or a BccError naming the layers."""
    import tensorflow_model_optimization as tfmot

    problems = unsupported_layers(model)
    if problems:
        raise BccError(f"cannot quantise model {model.name!r}: " + "; ".join(problems))
    try:
        return tfmot.quantization.keras.quantize_model(model)
    except (RuntimeError, ValueError) as exc:  # tfmot's own message names the layer
        raise BccError(f"cannot quantise model {model.name!r}: {exc}") from None


def cosine_schedule(base_lr: float, total_steps: int) -> Callable[[int], float]:
    def lr(step: int) -> float:
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))

    return lr


class _CosineLR(keras.callbacks.Callback):
    """Per-step cosine decay to exactly 0 at the last step."""

    def __init__(self, schedule: Callable[[int], float]):
        super().__init__()
        self.schedule = schedule
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.schedule(self.step))
        self.step += 1


def finetune(
    qat_model,
    train_ds: "tf.data.Dataset",
    epochs: int,
    steps_per_epoch: int,
    lr: float = DEFAULT_QAT_LR,
    label_smoothing: float = 0.0,
    log: Callable[[str], None] | None = None,
    from_logits: bool = False,
) -> dict[str, Any]:
    """Fine-tune a `quantize_for_training` model in float32; returns the last epoch's logs.
    `from_logits`: the model outputs logits (an export's INT8 models do), not probabilities.

    `train_ds` yields (float32 images, int labels) batches and repeats (steps_per_epoch bounds
    each epoch), so one iterator serves every epoch.
    """
    if epochs < 1:
        raise BccError(f"--qat-epochs must be at least 1 (got {epochs}); use --ptq for quantisation without training")
    num_classes = int(qat_model.output_shape[-1])
    qat_model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=_sparse_smoothed_loss(num_classes, label_smoothing, from_logits),
        metrics=["accuracy"],
    )
    callbacks: list = [_CosineLR(cosine_schedule(lr, epochs * steps_per_epoch)), keras.callbacks.TerminateOnNaN()]
    if log is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: log(f"QAT epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}, accuracy {logs['accuracy']:.4f}")
        ))
    meet_onednn_uint8_note()
    history = qat_model.fit(train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=0)
    last = {k: float(v[-1]) for k, v in history.history.items()}
    if not math.isfinite(last.get("loss", math.nan)):
        raise BccError("QAT fine-tuning diverged (loss is not finite); try a lower --qat-lr")
    return last


def _sparse_smoothed_loss(num_classes: int, label_smoothing: float, from_logits: bool = False):
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, from_logits=from_logits)

    def smoothed(y_true, y_pred):
        return loss(tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), num_classes), y_pred)

    return smoothed


def transfer_weights(qat_model, float_model):
    """A copy of `float_model` carrying the QAT-fine-tuned weights (quantiser state dropped).

    Lets a converter that does its own quantisation (onnxruntime) start from weights that were
    trained to tolerate 8-bit rounding, rather than from the original float weights.
    """
    clone = keras.models.clone_model(float_model)
    # A QuantizeWrapper owns its inner layer's variables (named "<layer>/<weight>:0") next to
    # its quantiser state ("quant_<layer>/..."), so match variables by layer and weight name.
    source = {v.name: v for v in qat_model.weights}
    for layer in clone.layers:
        values = []
        for weight in layer.weights:
            name = f"{layer.name}/{weight.name.split('/')[-1]}"
            if name not in source:
                raise BccError(f"QAT model has no weight {name!r} to take over")
            values.append(source[name].numpy())
        if values:
            layer.set_weights(values)
    return clone
