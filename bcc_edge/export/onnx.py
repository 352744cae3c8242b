"""ONNX artifacts: the float model (tf2onnx, dynamic batch), and a static INT8 QDQ model.

INT8 comes from onnxruntime's `quantize_static` on a float ONNX graph: QDQ format, int8
weights quantised per output channel, uint8 activations with MinMax ranges from the
calibration set. Measured on this workstation (onnxruntime 1.32, x86-64 with AVX-512 VNNI,
1 thread, bcc-small at 128 px, best of 12 interleaved rounds), ms/image:

    float ONNX                                 0.69
    quantize_static QDQ,       uint8 activ.    0.42   <- this
    quantize_static QOperator, uint8 activ.    0.45
    quantize_static QDQ,       int8 activ.     1.23
    quantize_static QOperator, int8 activ.     4.75
    tf2onnx of the INT8 TFLite model           1.55

Why: onnxruntime fuses DequantizeLinear -> op -> QuantizeLinear units into integer kernels,
but its CPU QLinearAdd exists for uint8 only, so with int8 activations every residual Add and
the convolutions next to it stay float between (de)quantise nodes (7 of 19 here), and
tf2onnx's translation of TFLite quantisation is not in the patterns it fuses. QDQ and
QOperator are equally fast once everything fuses; QDQ is the portable format (other
execution providers, e.g. TensorRT on a Jetson, consume QDQ, not QOperator). uint8
activations with int8 weights can saturate 16-bit intermediate sums on x86 CPUs without VNNI
(onnxruntime's `reduce_range` note); the edge targets (ARM) and VNNI CPUs are exact.

With QAT, the float graph carries the QAT-fine-tuned weights, so the ONNX INT8 model still
benefits from QAT; its activation ranges are onnxruntime's, from the same calibration images
as the TFLite model's.

Besides the `bcc_edge` entry, every model carries what generic tools (Netron, onnx.load,
onnxruntime's modelmeta) show: `doc_string` (the description with the data citation),
`model_version`, and `metadata_props` keys `labels` (JSON list, output order),
`preprocessing` (plain words), `license`, `citation`, `author` and `version`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from bcc_edge import __version__, metadata
from bcc_edge.errors import BccError, first_line
from bcc_edge.export.context import ExportContext, quant_record
from bcc_edge.export.standard_metadata import preprocessing_in_words
from bcc_edge.fileio import write_bytes

INPUT_NAME = "image"
# ModelProto.model_version is an integer: the bcc-edge version as MAJOR*10000 + MINOR*100 + PATCH.
MODEL_VERSION = sum(int(part) * 100**i for i, part in enumerate(reversed(__version__.split(".")[:3])))


def build_float(ctx: ExportContext, path: Path) -> None:
    model = to_onnx(ctx.logits_model, ctx)
    _write(ctx, path, model, "float32")


def build_int8(ctx: ExportContext, path: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = ({INPUT_NAME: x} for x in ctx.representative_batches())

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-int8-") as scratch:
        source, prepared, quantized = (Path(scratch) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(to_onnx(ctx.int8_float_weights_model, ctx), source)
        try:
            # Shape inference + graph optimisation first, as onnxruntime recommends, so BN is
            # folded into the convolutions before their weights are quantised per channel.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(quantized),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as exc:  # onnxruntime raises plain Exceptions and its own types
            raise BccError(f"onnxruntime cannot quantise the ONNX model: {first_line(exc)}") from None
        _write(ctx, path, onnx.load(quantized), "int8")


def to_onnx(keras_model, ctx: ExportContext):
    """A tf_keras model as an ONNX ModelProto with a dynamic batch dimension."""
    import tf2onnx

    from bcc_edge._tf import tf

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    h, w = ctx.spec.size
    signature = (tf.TensorSpec((None, h, w, 3), tf.float32, name=INPUT_NAME),)
    try:
        model, _ = tf2onnx.convert.from_keras(keras_model, input_signature=signature, opset=ctx.options.opset)
    except Exception as exc:  # tf2onnx surfaces converter failures as assorted exception types
        raise BccError(f"tf2onnx cannot convert the model: {type(exc).__name__}: {str(exc).strip()[:300]}") from None
    return model


def _write(ctx: ExportContext, path: Path, model, precision: str) -> None:
    # QDQ keeps float32 I/O: quantisation happens inside the graph.
    io = quant_record("float32")
    metadata.embed_onnx(model, ctx.metadata(precision, io, io, logits=True))
    describe(model, ctx)
    write_bytes(path, model.SerializeToString())


def describe(model, ctx: ExportContext) -> None:
    """Set the fields generic ONNX tools show (see the module docstring) on `model`, in place."""
    about, who = ctx.about(), ctx.options.attribution
    h, w = ctx.spec.size
    model.doc_string = about.description
    model.model_version = MODEL_VERSION
    props = {
        "labels": json.dumps(list(ctx.labels), ensure_ascii=False),
        "preprocessing": f"{preprocessing_in_words(ctx.spec)} Input '{INPUT_NAME}': float32 NHWC [N, {h}, {w}, 3]. Output: class logits in the order of 'labels' (softmax them; bcc-edge applies the calibration in the bcc_edge entry first).",
        "license": about.license,
        "citation": who.citation,
        "author": about.author,
        "version": about.version,
    }
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
