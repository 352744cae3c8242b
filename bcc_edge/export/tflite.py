"""TFLite artifacts: the float model, and a full-integer model (every op INT8, I/O per --io)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from bcc_edge import metadata, native_log
from bcc_edge.errors import BccError
from bcc_edge.export.context import ExportContext, quant_record
from bcc_edge.fileio import write_bytes


def build_float(ctx: ExportContext, path: Path) -> None:
    from bcc_edge._tf import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(ctx.float_model)
    _write(ctx, path, _convert(converter, "float TFLite"), "float32")


def build_int8(ctx: ExportContext, path: Path) -> None:
    from bcc_edge._tf import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(ctx.int8_keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in ctx.representative_batches())
    # INT8 builtins only: conversion fails (rather than silently keeping float ops) when an
    # op has no integer kernel, so the artifact runs on integer-only accelerators too.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[ctx.options.io]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    _write(ctx, path, _convert(converter, "INT8 TFLite"), "int8")


def _convert(converter, what: str) -> bytes:
    try:
        with warnings.catch_warnings():
            # A QAT model's input ranges live in its QuantizeLayer, which TF does not count as
            # the "statistics" it asks for; the interpreter read-back below is the authority.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            with native_log.dropping(native_log.TENSORFLOW_NOISE):
                return converter.convert()
    except Exception as exc:  # ConverterError and friends; the first lines name the op
        raise BccError(f"cannot convert the model to {what}: {_summary(exc)}") from None


def _write(ctx: ExportContext, path: Path, model: bytes, precision: str) -> None:
    input_q, output_q = io_quantization(model)
    write_bytes(path, metadata.embed_tflite(model, ctx.metadata(precision, input_q, output_q)))


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


def _summary(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3])[:500] or type(exc).__name__
