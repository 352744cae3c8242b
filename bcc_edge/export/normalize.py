"""The run's per-channel normalisation as the first layer of the model, so an artifact takes
the resized RGB grey levels 0..255 themselves.

Why in the graph: clients other than bcc-edge feed raw pixels. MediaPipe Tasks gives a uint8
model the bytes as they are and a float model `(p - mean) / std` with ONE mean and std for
all channels ("Per-channel image normalization is not available"), while our runs normalise
each channel with its own train-set statistics.

The layer is a 1x1 Conv2D with bias whose kernel is diagonal, frozen. A Conv2D rather than a
DepthwiseConv2D because tfmot quantises Conv2D weights per output channel, so each channel's
single weight is its own largest code and exact in int8; tfmot's DepthwiseConv2D shares one
scale across channels. The 9 multiply-adds per pixel are nothing beside the network's.

What the layer divides by: in an INT8 model its output is one int8 tensor with one scale for
all three channels, and with each channel's own std the channel of the smallest spread sets
that scale (PBC: blue, std 20), so red and green (std 40, 47) kept one code per two grey levels
and the uint8 model lost 0.5 points against the normalised-input one. So when every layer
reading the input is a convolution, the layer divides all channels by one common std and the
ratio std_common / std[c] moves into those convolutions' weights for input channel c: the
same function (a per-channel scale commutes with a convolution, and zero padding stays zero),
and every channel keeps the same resolution, about one code per grey level. The mean stays in
the layer: folded into the convolution's bias it would be exact except where "same" padding
adds zeros, which after normalisation are the mean colour, not black.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

LAYER_NAME = "normalize"


def with_input_normalization(model, mean: Sequence[float], std: Sequence[float]):
    """A copy of the flat functional `model` (weights included) that takes grey levels 0..255
    and computes what `model` computes on (p - mean[c]) / std[c] (see the module docstring for
    how the division is split between the first layer and the convolutions after it)."""
    from bcc_edge._tf import keras

    config = model.get_config()
    ((input_name, _, _),) = config["input_layers"]
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            for ref in node:
                if ref[0] == input_name:
                    ref[0] = LAYER_NAME
    normalize = keras.layers.Conv2D(3, 1, use_bias=True, trainable=False, name=LAYER_NAME, dtype="float32")
    entry = {**keras.layers.serialize(normalize), "name": LAYER_NAME, "inbound_nodes": [[[input_name, 0, 0, {}]]]}
    position = next(i for i, layer in enumerate(config["layers"]) if layer["name"] == input_name) + 1
    config["layers"].insert(position, entry)
    wrapped = keras.Model.from_config(config)
    for layer in model.layers:
        if layer.weights:
            wrapped.get_layer(layer.name).set_weights(layer.get_weights())
    std64 = np.asarray(std, np.float64)
    readers = [wrapped.get_layer(layer["name"]) for layer in config["layers"] if any(ref[0] == LAYER_NAME for node in layer["inbound_nodes"] for ref in node)]
    if all(type(reader) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D) for reader in readers):
        divisor = np.full(3, std64.mean())
        for reader in readers:
            kernel, *rest = reader.get_weights()  # (kh, kw, input channels, ...)
            reader.set_weights([(kernel * (divisor / std64)[None, None, :, None]).astype(kernel.dtype), *rest])
    else:
        divisor = std64
    kernel = np.diag(1.0 / divisor).reshape(1, 1, 3, 3)
    bias = -np.asarray(mean, np.float64) / divisor
    wrapped.get_layer(LAYER_NAME).set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return wrapped


def prepare_qat(qat_model) -> None:
    """Make a quantisation-wrapped `with_input_normalization` model keep what its input means:
    the input quantiser's range pinned to exactly [0, 255] (as uint8: scale 1, zero point 0,
    the bytes MediaPipe and other clients feed), and the normalisation weights frozen."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import QuantizeLayer

    (input_quantizer,) = [layer for layer in qat_model.layers if isinstance(layer, QuantizeLayer)]
    # tfmot's input quantiser only widens its range to the data's min/max (and 0), so a range
    # that starts as [0, 255] stays exactly that for data inside it.
    input_quantizer.quantizer_vars["min_var"].assign(0.0)
    input_quantizer.quantizer_vars["max_var"].assign(255.0)
    (wrapper,) = [layer for layer in qat_model.layers if getattr(layer, "layer", None) is not None and layer.layer.name == LAYER_NAME]
    wrapper.trainable = False


def to_grey_levels(spec):
    """A tf.data map (normalised images, labels) -> (grey levels 0..255, labels): feeds a
    `with_input_normalization` model the batches `data.make_dataset` makes, augmentation
    included. Clipped, because float rounding must not widen the pinned input range."""
    from bcc_edge._tf import tf

    mean, std = tf.constant(spec.mean, tf.float32), tf.constant(spec.std, tf.float32)
    return lambda x, y: (tf.clip_by_value(x * std + mean, 0.0, 255.0), y)


def calibration_batches(images: np.ndarray):
    """Single-image float32 batches of grey levels for the TFLite calibrator. The last image
    gets one pixel 0 and one 255, so that the input range it measures is exactly [0, 255]
    whatever the images' extremes (one pixel moves no inner activation range noticeably)."""
    last = len(images) - 1
    for i, image in enumerate(images):
        x = image.astype(np.float32)
        if i == last:
            x[0, 0], x[0, 1] = 0.0, 255.0
        yield x[None]
