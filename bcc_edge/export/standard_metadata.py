"""Standard TFLite Metadata, the description LiteRT clients other than bcc-edge read
(MediaPipe Tasks, the TFLite Task Library, Android Studio's model binding):

* a `Model.metadata` entry named ``TFLITE_METADATA`` whose buffer is a ``ModelMetadata``
  flatbuffer (tflite-support's metadata_schema.fbs, file identifier ``M001``): name,
  description (with the data citation), version, author, licence; the input as an RGB image
  with its size, NormalizationOptions and value range; the output as class scores with
  ``labels.txt`` as its TENSOR_AXIS_LABELS file;
* ``labels.txt`` (one class a line, output order) in a zip archive appended to the model,
  stored uncompressed, as tflite-support's MetadataPopulator packs it (readers use the
  file contents in place).

bcc-edge itself reads only its own ``bcc_edge`` entry (`bcc_edge.metadata`), the source of
truth; this module writes a second, standard description of the same model after it.

No ScoreCalibrationOptions are written: the schema's calibration is an independent sigmoid
per class, f(x) = scale / (1 + exp(-(slope * g(x) + offset))), while our calibration is one
temperature for the logits followed by a softmax over all classes, which couples the classes
and has no per-class sigmoid form.

The flatbuffer is built with the `flatbuffers` Builder from the schema's field order (the
*_FIELDS tables below) rather than generated code, so neither tflite-support nor TensorFlow
is needed to write or to read it; `read` is the reader the tests check every field with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import flatbuffers
import numpy as np
from flatbuffers.number_types import Uint8Flags, Uint32Flags
from flatbuffers.table import Table

from bcc_edge.errors import BccError
from bcc_edge import metadata
from bcc_edge.preprocess import PreprocessSpec

ENTRY_NAME = "TFLITE_METADATA"
IDENTIFIER = b"M001"
LABELS_FILE = "labels.txt"
# The fields written here all exist in schema 1.0.0; a parser of that version reads them all.
MIN_PARSER_VERSION = "1.0.0"


def _slots(*names: str) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


# Field order of each table in metadata_schema.fbs (a union field takes two slots: type, value).
MODEL_FIELDS = _slots("name", "description", "version", "subgraph_metadata", "author", "license", "associated_files", "min_parser_version")
SUBGRAPH_FIELDS = _slots("name", "description", "input_tensor_metadata", "output_tensor_metadata", "associated_files")
TENSOR_FIELDS = _slots("name", "description", "dimension_names", "content", "process_units", "stats", "associated_files")
CONTENT_FIELDS = _slots("content_properties_type", "content_properties", "range")
IMAGE_FIELDS = _slots("color_space", "default_size")
SIZE_FIELDS = _slots("width", "height")
PROCESS_UNIT_FIELDS = _slots("options_type", "options")
NORMALIZATION_FIELDS = _slots("mean", "std")
STATS_FIELDS = _slots("max", "min")
FILE_FIELDS = _slots("name", "description", "type", "locale")

# Enum and union values from the schema.
FEATURE_PROPERTIES, IMAGE_PROPERTIES = 1, 2  # ContentProperties
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
RGB = 1  # ColorSpaceType
TENSOR_AXIS_LABELS = 2  # AssociatedFileType


@dataclass(frozen=True)
class About:
    """The model-level fields."""

    name: str
    description: str
    version: str
    author: str
    license: str


def attach(model: bytes, about: About, labels: Sequence[str], spec: PreprocessSpec) -> bytes:
    """The TFLite `model` with standard metadata for an image classifier whose input is
    described by `spec` (float32 spec in the model's input units) and whose output is the
    probabilities of `labels`. An earlier standard entry and labels file are replaced."""
    meta = build(about, labels, spec)
    labels_file = "".join(f"{label}\n" for label in labels).encode("utf-8")
    files = {**metadata.appended_files(model), LABELS_FILE: labels_file}
    return metadata.set_tflite_entry(model, ENTRY_NAME, meta, files)


def build(about: About, labels: Sequence[str], spec: PreprocessSpec) -> bytes:
    """The ModelMetadata flatbuffer."""
    b = flatbuffers.Builder(1024)
    h, w = spec.size
    mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)

    size = _table(b, SIZE_FIELDS, uint32={"width": w, "height": h})
    image = _table(b, IMAGE_FIELDS, uint8={"color_space": RGB}, offsets={"default_size": size})
    input_content = _table(b, CONTENT_FIELDS, uint8={"content_properties_type": IMAGE_PROPERTIES}, offsets={"content_properties": image})
    normalization = _table(b, NORMALIZATION_FIELDS, offsets={"mean": _floats(b, mean), "std": _floats(b, std)})
    unit = _table(b, PROCESS_UNIT_FIELDS, uint8={"options_type": NORMALIZATION_OPTIONS}, offsets={"options": normalization})
    # The values the model accepts, in its input units: grey levels 0..255 normalised.
    input_stats = _table(b, STATS_FIELDS, offsets={"max": _floats(b, (255.0 - mean) / std), "min": _floats(b, (0.0 - mean) / std)})
    input_tensor = _table(b, TENSOR_FIELDS, offsets={
        "name": b.CreateString("image"),
        "description": b.CreateString(preprocessing_in_words(spec)),
        "content": input_content,
        "process_units": _vector(b, [unit]),
        "stats": input_stats,
    })

    labels_file = _table(b, FILE_FIELDS, uint8={"type": TENSOR_AXIS_LABELS}, offsets={
        "name": b.CreateString(LABELS_FILE),
        "description": b.CreateString("Class names, one a line, in the order of the output scores."),
    })
    feature = _table(b, {})
    output_content = _table(b, CONTENT_FIELDS, uint8={"content_properties_type": FEATURE_PROPERTIES}, offsets={"content_properties": feature})
    output_stats = _table(b, STATS_FIELDS, offsets={"max": _floats(b, [1.0]), "min": _floats(b, [0.0])})
    output_tensor = _table(b, TENSOR_FIELDS, offsets={
        "name": b.CreateString("probabilities"),
        "description": b.CreateString(f"Probability of each of the {len(labels)} classes (softmax), in the order of {LABELS_FILE}."),
        "content": output_content,
        "stats": output_stats,
        "associated_files": _vector(b, [labels_file]),
    })

    subgraph = _table(b, SUBGRAPH_FIELDS, offsets={
        "name": b.CreateString(about.name),
        "input_tensor_metadata": _vector(b, [input_tensor]),
        "output_tensor_metadata": _vector(b, [output_tensor]),
    })
    root = _table(b, MODEL_FIELDS, offsets={
        "name": b.CreateString(about.name),
        "description": b.CreateString(about.description),
        "version": b.CreateString(about.version),
        "subgraph_metadata": _vector(b, [subgraph]),
        "author": b.CreateString(about.author),
        "license": b.CreateString(about.license),
        "min_parser_version": b.CreateString(MIN_PARSER_VERSION),
    })
    b.Finish(root, file_identifier=IDENTIFIER)
    return bytes(b.Output())


def preprocessing_in_words(spec: PreprocessSpec) -> str:
    """What a client does to an image before the model, in plain words (float32 `spec` of the
    model's input)."""
    h, w = spec.size
    opencv = {"bilinear": "INTER_LINEAR", "area": "INTER_AREA"}[spec.interpolation]
    text = f"RGB image resized to {w}x{h} pixels ({spec.interpolation} interpolation, as OpenCV's {opencv}), values 0..255"
    if spec.mean == (0.0, 0.0, 0.0) and spec.std == (1.0, 1.0, 1.0):
        return text + " as they are: the model normalises inside."
    return text + f", each channel then normalised as (value - mean) / std with mean {list(spec.mean)} and std {list(spec.std)} (R, G, B)."


def _table(b, fields: dict[str, int], offsets=None, uint8=None, uint32=None) -> int:
    """One table; every offset it refers to must already be built (flatbuffers builds inside out)."""
    b.StartObject(len(fields))
    for name, value in (offsets or {}).items():
        b.PrependUOffsetTRelativeSlot(fields[name], value, 0)
    for name, value in (uint32 or {}).items():
        b.PrependUint32Slot(fields[name], value, 0)
    for name, value in (uint8 or {}).items():
        b.PrependUint8Slot(fields[name], value, 0)
    return b.EndObject()


def _vector(b, tables: Sequence[int]) -> int:
    b.StartVector(4, len(tables), 4)
    for table in reversed(tables):
        b.PrependUOffsetTRelative(table)
    return b.EndVector()


def _floats(b, values) -> int:
    return b.CreateNumpyVector(np.asarray(values, np.float32))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- reading

PathOrBytes = Union[str, os.PathLike, bytes, bytearray, memoryview]


def read(source: PathOrBytes) -> dict[str, Any] | None:
    """The standard metadata of a .tflite file or its bytes as plain data, None without one:
    the model-level fields, "input" and "output" (tensor fields), and "files" (the appended
    archive: name -> bytes)."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    raw = None
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _text(entry.Name()) == ENTRY_NAME:
            raw = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    if raw is None:
        return None
    if raw[4:8] != IDENTIFIER:
        raise BccError(f"the {ENTRY_NAME} entry is not a metadata flatbuffer (no {IDENTIFIER.decode()} identifier)")
    root = _Reader(bytearray(raw), int.from_bytes(raw[:4], "little"))
    (subgraph,) = root.tables(MODEL_FIELDS["subgraph_metadata"])
    (inp,) = subgraph.tables(SUBGRAPH_FIELDS["input_tensor_metadata"])
    (out,) = subgraph.tables(SUBGRAPH_FIELDS["output_tensor_metadata"])
    return {
        **{key: root.string(MODEL_FIELDS[key]) for key in ("name", "description", "version", "author", "license", "min_parser_version")},
        "input": _read_tensor(inp),
        "output": _read_tensor(out),
        "files": metadata.appended_files(data),
    }


def _read_tensor(t: "_Reader") -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": t.string(TENSOR_FIELDS["name"]), "description": t.string(TENSOR_FIELDS["description"])}
    content = t.table(TENSOR_FIELDS["content"])
    kind = content.uint8(CONTENT_FIELDS["content_properties_type"])
    tensor["content"] = {FEATURE_PROPERTIES: "feature", IMAGE_PROPERTIES: "image"}.get(kind, kind)
    if kind == IMAGE_PROPERTIES:
        image = content.table(CONTENT_FIELDS["content_properties"])
        size = image.table(IMAGE_FIELDS["default_size"])
        tensor["color_space"] = {RGB: "RGB"}.get(image.uint8(IMAGE_FIELDS["color_space"]), "other")
        tensor["size"] = [size.uint32(SIZE_FIELDS["width"]), size.uint32(SIZE_FIELDS["height"])]
    for unit in t.tables(TENSOR_FIELDS["process_units"]):
        if unit.uint8(PROCESS_UNIT_FIELDS["options_type"]) == NORMALIZATION_OPTIONS:
            options = unit.table(PROCESS_UNIT_FIELDS["options"])
            tensor["normalization"] = {key: options.floats(NORMALIZATION_FIELDS[key]) for key in ("mean", "std")}
    stats = t.table(TENSOR_FIELDS["stats"])
    if stats is not None:
        tensor["stats"] = {key: stats.floats(STATS_FIELDS[key]) for key in ("min", "max")}
    tensor["associated_files"] = [
        {"name": f.string(FILE_FIELDS["name"]), "description": f.string(FILE_FIELDS["description"]), "type": f.uint8(FILE_FIELDS["type"])}
        for f in t.tables(TENSOR_FIELDS["associated_files"])
    ]
    return tensor


class _Reader:
    """One table of a flatbuffer, its fields read by slot with the flatbuffers runtime."""

    def __init__(self, buf: bytearray, pos: int):
        self.t = Table(buf, pos)

    def _field(self, slot: int) -> int:
        """The field's position in the buffer, 0 when it is absent."""
        o = self.t.Offset(4 + 2 * slot)
        return o and o + self.t.Pos

    def string(self, slot: int) -> str | None:
        pos = self._field(slot)
        return self.t.String(pos).decode("utf-8") if pos else None

    def uint8(self, slot: int) -> int:
        pos = self._field(slot)
        return self.t.Get(Uint8Flags, pos) if pos else 0

    def uint32(self, slot: int) -> int:
        pos = self._field(slot)
        return self.t.Get(Uint32Flags, pos) if pos else 0

    def table(self, slot: int) -> "_Reader | None":
        pos = self._field(slot)
        return _Reader(self.t.Bytes, self.t.Indirect(pos)) if pos else None

    def _vector(self, slot: int) -> tuple[int, int]:
        o = self.t.Offset(4 + 2 * slot)
        return (self.t.Vector(o), self.t.VectorLen(o)) if o else (0, 0)

    def tables(self, slot: int) -> list["_Reader"]:
        start, n = self._vector(slot)
        return [_Reader(self.t.Bytes, self.t.Indirect(start + 4 * i)) for i in range(n)]

    def floats(self, slot: int) -> list[float]:
        start, n = self._vector(slot)
        return [float(x) for x in np.frombuffer(self.t.Bytes, np.float32, n, start)]
