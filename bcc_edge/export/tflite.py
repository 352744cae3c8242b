"""TFLite artifacts: the float model, a full-integer model (every op INT8, I/O per --io) that
takes the run's normalised input, and a full-integer model that takes raw RGB bytes.

The float and the uint8 model carry the normalisation as their first layer
(`export.normalize`): any LiteRT client can feed them pixels 0..255, MediaPipe Tasks
included (it refuses int8 inputs and per-channel normalisation). Every artifact carries the
`bcc_edge` entry and, written after it, the standard TFLite Metadata (`standard_metadata`).

Why two INT8 files rather than one: bcc-edge's preprocessing kernel normalises and quantises
in the same table lookup as resizing, so for bcc-edge the int8 input costs nothing, while the
uint8 model runs three more ops (uint8 -> int8 QUANTIZE, the normalisation convolution, the
output QUANTIZE). Measured on PBC val (1,707 images; a bcc-small run at epoch 17, QAT 1 epoch
each; 2-core x86-64 with a training job beside it, 1 thread, single-image invokes, best of 15
interleaved rounds):

                                              val accuracy   invoke ms/image
    model_int8.tflite   normalised int8 input      97.77%        0.368
    model_uint8.tflite  raw bytes, own QAT         97.66%        0.427  (x1.16)
    raw bytes, QAT weights + TFLite PTQ            96.95%

Same accuracy (2 images apart; with PTQ, 99.88% and 99.94% agreement with float), 16% more
invoke time (19% in a PTQ pair, 32% for a 64 px half-width model). The uint8 model needs its
own QAT: quantising the QAT-fine-tuned weights after the fact, as the ONNX path does, lost
0.8 points, so `--int8` fine-tunes twice.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from bcc_edge import metadata, native_log
from bcc_edge.errors import BccError, first_line
from bcc_edge.export import normalize, standard_metadata
from bcc_edge.export.context import ExportContext, quant_record
from bcc_edge.fileio import write_bytes
from bcc_edge.preprocess import PreprocessSpec

# The uint8 model's input as clients feed it: the bytes themselves.
RAW_BYTES = quant_record("uint8", 1.0, 0)


def build_float(ctx: ExportContext, path: Path) -> None:
    from bcc_edge._tf import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(ctx.calibrated_raw_float_model)
    _write(ctx, path, _convert(converter, "float TFLite"), "float32", ctx.raw_spec)


def build_int8(ctx: ExportContext, path: Path) -> None:
    converter = _full_integer(ctx.int8_keras_model, ctx.representative_batches, ctx.options.io)
    _write(ctx, path, _convert(converter, "INT8 TFLite"), "int8", ctx.spec, logits=True)


def build_uint8(ctx: ExportContext, path: Path) -> None:
    converter = _full_integer(ctx.raw_int8_keras_model, lambda: normalize.calibration_batches(ctx.calib_images), "uint8")
    model = _convert(converter, "uint8-input TFLite")
    input_q, _ = io_quantization(model)
    if input_q != RAW_BYTES:
        raise BccError(f"the uint8-input TFLite model does not take raw bytes: its input is quantised as {input_q}, not {RAW_BYTES}")
    _write(ctx, path, model, "int8", ctx.raw_spec)


def _full_integer(keras_model, batches, io: str):
    from bcc_edge._tf import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in batches())
    # INT8 builtins only: conversion fails (rather than silently keeping float ops) when an
    # op has no integer kernel, so the artifact runs on integer-only accelerators too.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    return converter


def _convert(converter, what: str) -> bytes:
    try:
        with warnings.catch_warnings():
            # A QAT model's input ranges live in its QuantizeLayer, which TF does not count as
            # the "statistics" it asks for; the interpreter read-back below is the authority.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            with native_log.dropping(native_log.TENSORFLOW_NOISE):
                return converter.convert()
    except Exception as exc:  # ConverterError and friends; the first lines name the op
        raise BccError(f"cannot convert the model to {what}: {first_line(exc, lines=3)}") from None


def float_temperature(ctx: ExportContext, path: Path) -> tuple[float, np.ndarray]:
    """The temperature folded into the float TFLite model at build, and the logits it was
    fitted on (the float Keras model's on the held-back images)."""
    return ctx.float_temperature, ctx.float_logits


def uint8_temperature(ctx: ExportContext, path: Path) -> tuple[float, np.ndarray]:
    """Fit the uint8 model's temperature on its own logits and write it into its softmax;
    returns it with those logits."""
    from bcc_edge.export.trust import fit_temperature

    logits = _uint8_logits(ctx)
    temperature = fit_temperature(logits, ctx.heldout[2])
    _set_softmax_beta(path, 1.0 / temperature)
    return temperature, logits


def _uint8_logits(ctx: ExportContext) -> np.ndarray:
    """The uint8 model's logits on the held-back images, from the same quantised graph
    converted up to its logits layer (the softmax's 8-bit output is too coarse to fit on)."""
    from ai_edge_litert.interpreter import Interpreter

    from bcc_edge._tf import keras

    model = ctx.raw_int8_keras_model
    logits_layer = next(layer for layer in model.layers if layer.name in ("logits", "quant_logits"))
    twin = keras.Model(model.input, logits_layer.output)
    converted = _convert(_full_integer(twin, lambda: normalize.calibration_batches(ctx.calib_images), "uint8"), "uint8-input TFLite logits")
    interpreter = Interpreter(model_content=converted, num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero_point = out["quantization"]
    logits = []
    for image in ctx.heldout[1]:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        logits.append((interpreter.get_tensor(out["index"])[0].astype(np.float32) - zero_point) * scale)
    return np.array(logits)


def _set_softmax_beta(path: Path, beta: float) -> None:
    """softmax(beta * logits) in the model: the beta of its SOFTMAX operators (LiteRT's int8
    kernel folds it into its lookup table)."""
    from ai_edge_litert import schema_py_generated as schema

    def edit(model, _schema) -> None:
        softmax = {i for i, code in enumerate(model.operatorCodes) if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.SOFTMAX}
        operators = [op for graph in model.subgraphs for op in graph.operators if op.opcodeIndex in softmax]
        if not operators:
            raise BccError(f"{path.name} has no softmax to take the temperature")
        for op in operators:
            op.builtinOptions.beta = beta

    write_bytes(path, metadata.repack_tflite(path.read_bytes(), edit))


def _write(ctx: ExportContext, path: Path, model: bytes, precision: str, spec: PreprocessSpec, logits: bool = False) -> None:
    input_q, output_q = io_quantization(model)
    model = metadata.embed_tflite(model, ctx.metadata(precision, input_q, output_q, spec, logits))
    # Last: it appends labels.txt after the flatbuffer, which re-packing would drop.
    write_bytes(path, standard_metadata.attach(model, ctx.about(), ctx.labels, spec))


def io_quantization(model: bytes) -> tuple[dict, dict]:
    """Input and output dtype/scale/zero point as the interpreter sees them (QAT and PTQ
    models differ, so they are read back, never assumed)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def record(detail) -> dict:
        scale, zero_point = detail["quantization"]
        return quant_record(np.dtype(detail["dtype"]).name, scale, zero_point)

    return record(inp), record(out)

