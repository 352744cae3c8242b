"""The table of artifacts `bcc-edge export` can write. Adding a format = one row + one builder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bcc_edge.errors import BccError
from bcc_edge.export import onnx as _onnx
from bcc_edge.export import tflite as _tflite


@dataclass(frozen=True)
class ArtifactFormat:
    format: str  # "tflite" | "onnx": the runtime family, and what --format selects
    precision: str  # "float32" | "int8"
    file: str
    # build(ctx, path): write the artifact (metadata embedded) to `path`.
    build: Callable
    # For an artifact whose graph ends in a softmax (the ones for other clients):
    # temperature(ctx, path) -> (T, logits): the temperature the graph applies (fitted on and
    # written into it as needed) and the held-back logits it was fitted on. None: the artifact
    # outputs its logits and the device calibrates them.
    temperature: Callable | None = None
    # Built from the float model with its temperature folded in (the self-check compares it
    # with that model, `ExportContext.calibrated_reference`).
    calibrated_in_graph: bool = False


FORMATS: tuple[ArtifactFormat, ...] = (
    ArtifactFormat("tflite", "float32", "model_float.tflite", _tflite.build_float, _tflite.float_temperature, calibrated_in_graph=True),
    ArtifactFormat("tflite", "int8", "model_int8.tflite", _tflite.build_int8),
    ArtifactFormat("tflite", "int8", "model_uint8.tflite", _tflite.build_uint8, _tflite.uint8_temperature),
    ArtifactFormat("onnx", "float32", "model_float.onnx", _onnx.build_float),
    ArtifactFormat("onnx", "int8", "model_int8.onnx", _onnx.build_int8),
)
FORMAT_NAMES = tuple(dict.fromkeys(f.format for f in FORMATS))


def select(formats: tuple[str, ...] | None, int8: bool) -> list[ArtifactFormat]:
    """The rows to build: all families unless `formats` restricts them; INT8 only with `int8`."""
    wanted = tuple(formats) if formats else FORMAT_NAMES
    unknown = [f for f in wanted if f not in FORMAT_NAMES]
    if unknown:
        raise BccError(f"unknown --format {', '.join(unknown)}; choose from {', '.join(FORMAT_NAMES)}")
    return [f for f in FORMATS if f.format in wanted and (int8 or f.precision == "float32")]
