"""The JSON document every exported artifact carries, so a model file is self-describing.

One document under the key ``bcc_edge`` (see ARCHITECTURE.md for its fields):

* TFLite: a ``Model.metadata`` entry named ``bcc_edge`` whose buffer holds the UTF-8 JSON.
* ONNX: ``ModelProto.metadata_props`` key ``bcc_edge``.

Reading needs nothing but the standard library: the device may run tflite-runtime (which
ships no schema module) or onnxruntime without the ``onnx`` package, and must still find
the labels and preprocessing spec. So the readers walk the two wire formats directly:
a few fixed field numbers from the TFLite flatbuffer schema and the ONNX protobuf, and they
skip everything else without loading it (an ONNX graph is never read into memory).
Writing happens on the workstation and uses ``ai_edge_litert``'s generated schema plus
``flatbuffers`` (TFLite) or the ``onnx`` package (ONNX).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
from pathlib import Path
from typing import IO, Any, Union

from bcc_edge.device.guard import guard_problems
from bcc_edge.device.scores import calibration_problems, review_problems
from bcc_edge.device.selftest import golden_problems
from bcc_edge.errors import BccError, one_line
from bcc_edge.preprocess import PreprocessSpec

KEY = "bcc_edge"
# 2: logits outputs, calibrated probabilities, the review policy, golden vectors, the input
# guard, and the integer preprocessing maths (v2 of the preprocess module). Version 1 artifacts
# still load and behave as before (their outputs are probabilities, nothing is referred).
FORMAT_VERSION = 2
TFLITE_IDENTIFIER = b"TFL3"

# An artifact is untrusted input: these bound what reading its document may cost and what a
# document may ask of the device (a 32768 x 32768 input would allocate gigabytes per batch).
MAX_METADATA_BYTES = 1024 * 1024
MAX_MODEL_BYTES = 512 * 1024 * 1024
MAX_DEPTH = 16
MAX_LABELS = 1000
MAX_LABEL_CHARS = 100
MAX_INPUT_SIDE = 4096
MEAN_RANGE = (-1024.0, 1024.0)  # pixel units (0..255 input)
STD_RANGE = (1e-2, 1e4)  # a smaller std blows one grey level up past any model's input range
SCALE_RANGE = (1e-9, 1e9)
DTYPE_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "float32": (0, 0)}
ACTIVATIONS = ("softmax", "logits")
QUANTIZATIONS = ("qat", "ptq", None)

PathOrBytes = Union[str, os.PathLike, bytes, bytearray, memoryview]


def dumps(meta: dict[str, Any]) -> bytes:
    """Canonical UTF-8 JSON for embedding; refuses documents a reader could not load back."""
    problems = problems_in(meta)
    if problems:
        raise ValueError(f"invalid {KEY} metadata: " + "; ".join(problems))
    # allow_nan=False: NaN/Infinity are not JSON and strict parsers reject them.
    return json.dumps(meta, sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")


def problems_in(meta: Any) -> list[str]:
    """What is wrong with a metadata document (empty when the runtime can use it): the schema
    of ARCHITECTURE.md with types and ranges."""
    if not isinstance(meta, dict):
        return ["not a JSON object"]
    if _depth(meta) > MAX_DEPTH:
        return [f"nested deeper than {MAX_DEPTH} levels"]
    problems = []
    version = meta.get("format_version")
    if not _is_int(version):
        problems.append("format_version missing or not an integer")
    elif version > FORMAT_VERSION:
        problems.append(f"format_version {version} is newer than this bcc-edge understands ({FORMAT_VERSION}); upgrade bcc-edge")
    elif version < 1:
        problems.append(f"format_version {version} is not a bcc-edge format")
    problems += label_problems(meta.get("labels"))
    try:
        problems += spec_problems(PreprocessSpec.from_dict(meta.get("preprocess")))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        problems.append(f"preprocess is not a valid PreprocessSpec ({exc})")
    for which in ("input", "output"):
        if meta.get(which) is not None:
            problems += [f"{which}: {p}" for p in _tensor_problems(meta[which], which)]
    if meta.get("quantization") not in QUANTIZATIONS:
        problems.append(f"quantization must be one of {QUANTIZATIONS}")
    for name in ("model_name", "toolkit_version", "data_fingerprint"):
        if meta.get(name) is not None and not (isinstance(meta[name], str) and len(meta[name]) <= 200):
            problems.append(f"{name} must be a string of at most 200 characters")
    accuracy = meta.get("float_val_accuracy")
    if accuracy is not None and not (_is_number(accuracy) and 0.0 <= accuracy <= 1.0):
        problems.append(f"float_val_accuracy must be a finite number in [0, 1]; got {accuracy!r}")
    return problems + _device_problems(meta)


def _device_problems(meta: dict) -> list[str]:
    """The entries the device acts on beside the model: calibration, review, golden, guard."""
    labels = meta.get("labels")
    classes = len(labels) if isinstance(labels, list) else 0
    checks = {
        "probabilities": lambda doc: calibration_problems(doc, classes),
        "review": lambda doc: review_problems(doc, classes),
        "golden": lambda doc: golden_problems(doc, classes),
        "guard": guard_problems,
    }
    return [problem for key, check in checks.items() if meta.get(key) is not None for problem in check(meta[key])]


def label_problems(labels: Any) -> list[str]:
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        return ["labels must be a non-empty list of non-empty strings"]
    if len(labels) > MAX_LABELS:
        return [f"{len(labels)} labels, more than {MAX_LABELS}"]
    long = [x for x in labels if len(x) > MAX_LABEL_CHARS]
    if long:
        return [f"a label is longer than {MAX_LABEL_CHARS} characters ({long[0][:20]!r}...)"]
    if len(set(labels)) != len(labels):
        return ["labels contain duplicates"]
    return []


def spec_problems(spec: PreprocessSpec) -> list[str]:
    """Ranges a device accepts from an untrusted spec (the spec's own checks are types and signs)."""
    problems = []
    if max(spec.size) > MAX_INPUT_SIDE:
        problems.append(f"preprocess size {list(spec.size)} is over {MAX_INPUT_SIDE} pixels per side")
    if not all(MEAN_RANGE[0] <= m <= MEAN_RANGE[1] for m in spec.mean):
        problems.append(f"preprocess mean {list(spec.mean)} is outside {list(MEAN_RANGE)}")
    if not all(STD_RANGE[0] <= s <= STD_RANGE[1] for s in spec.std):
        problems.append(f"preprocess std {list(spec.std)} is outside {list(STD_RANGE)}")
    return problems


def _tensor_problems(record: Any, which: str) -> list[str]:
    if not isinstance(record, dict):
        return ["not an object"]
    dtype = record.get("dtype")
    if dtype not in DTYPE_RANGES:
        return [f"dtype must be one of {', '.join(DTYPE_RANGES)}"]
    problems = []
    scale, zero_point = record.get("scale"), record.get("zero_point")
    if not (_is_number(scale) and SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]):
        problems.append(f"scale must be a finite positive number; got {scale!r}")
    low, high = DTYPE_RANGES[dtype]
    if not (_is_int(zero_point) and low <= zero_point <= high):
        problems.append(f"zero_point must be an integer in [{low}, {high}] for {dtype}; got {zero_point!r}")
    if which == "output" and record.get("activation", "softmax") not in ACTIVATIONS:
        problems.append(f"activation must be one of {', '.join(ACTIVATIONS)}")
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def loads(raw: bytes, source: str) -> dict[str, Any]:
    """Parse and validate an embedded document; a damaged or hostile one is the user's
    problem (one bounded line), never a crash."""
    _check_metadata_size(len(raw), source)
    try:
        meta = json.loads(bytes(raw).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise BccError(f"{source}: the embedded {KEY} metadata is not valid JSON ({one_line(str(exc))})") from None
    except RecursionError:
        raise BccError(f"{source}: the embedded {KEY} metadata is nested too deeply") from None
    problems = problems_in(meta)
    if problems:
        raise BccError(one_line(f"{source}: the embedded {KEY} metadata is unusable: " + "; ".join(problems)))
    return meta


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


# --------------------------------------------------------------------------- TFLite


def embed_tflite(model_bytes: bytes, meta: dict[str, Any]) -> bytes:
    """Return the model with `meta` stored as its ``bcc_edge`` metadata entry (see
    `set_tflite_entry`)."""
    return set_tflite_entry(model_bytes, KEY, dumps(meta))


def set_tflite_entry(model_bytes: bytes, name: str, payload: bytes, files: dict[str, bytes] | None = None) -> bytes:
    """The model with metadata entry `name` holding `payload`. An existing entry is overwritten
    in place (its buffer reused), so re-embedding never grows the model with orphaned buffers.
    The archive of associated files some clients read after the flatbuffer is kept, or
    replaced by `files` when given."""
    import numpy as np

    def edit(model, schema) -> None:
        data = np.frombuffer(payload, dtype=np.uint8)
        model.buffers = model.buffers or []
        model.metadata = model.metadata or []
        existing = [m for m in model.metadata if _as_str(m.name) == name]
        if existing:
            model.buffers[existing[0].buffer].data = data
        else:
            buffer = schema.BufferT()
            buffer.data = data
            model.buffers.append(buffer)
            entry = schema.MetadataT()
            entry.name = name
            entry.buffer = len(model.buffers) - 1
            model.metadata.append(entry)

    return repack_tflite(model_bytes, edit, files, extra=len(payload))


def repack_tflite(model_bytes: bytes, edit, files: dict[str, bytes] | None = None, extra: int = 0) -> bytes:
    """The model after `edit(model, schema)` changed its object tree (LiteRT's generated
    schema), packed again; the archive appended to it is kept, or replaced by `files`."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model_bytes = bytes(model_bytes)
    _check_tflite_identifier(model_bytes, "model")
    files = appended_files(model_bytes) if files is None else files
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model_bytes, 0))
    edit(model, schema)
    builder = flatbuffers.Builder(len(model_bytes) + extra + 4096)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    packed = bytes(builder.Output())
    return append_files(packed, files) if files else packed


def appended_files(data: bytes) -> dict[str, bytes]:
    """The files of the zip archive appended to a TFLite model (empty when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def append_files(model: bytes, files: dict[str, bytes]) -> bytes:
    """`model` (a bare flatbuffer) followed by a zip archive of `files`, stored uncompressed, its
    recorded offsets counted from the start of the model file, as readers of the whole file
    expect. Re-packing moves those offsets, so the archive is rebuilt, never copied. (Written
    after zeros rather than the model, so that bytes inside the model that look like a zip end
    record cannot mislead the zip writer.)"""
    out = io.BytesIO()
    out.write(b"\0" * len(model))
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: same model, same bytes
            archive.writestr(info, data)
    return bytes(model) + out.getvalue()[len(model):]


def read_tflite(source: PathOrBytes) -> dict[str, Any] | None:
    """The ``bcc_edge`` document of a .tflite file or its bytes; None when it has none."""
    name, buf = _load(source)
    raw = _tflite_metadata_bytes(buf, name)
    return None if raw is None else loads(raw, name)


def _tflite_metadata_bytes(buf: bytes, name: str) -> bytes | None:
    # Field numbers from tensorflow/lite/schema/schema.fbs (stable since metadata was added):
    # Model.buffers = 4, Model.metadata = 6; Metadata.name = 0, .buffer = 1;
    # Buffer.data = 0, .offset = 1, .size = 2 (offset/size: data stored after the flatbuffer).
    _check_tflite_identifier(buf, name)
    try:
        fb = _FlatBuffer(buf)
        model = fb.root()
        for entry in fb.tables(model, 6):
            if fb.string(entry, 0) != KEY:
                continue
            index = fb.scalar(entry, 1, "<I")
            buffers = fb.tables(model, 4)
            if index >= len(buffers):
                raise BccError(f"{name}: corrupt TFLite model (metadata points at buffer {index} of {len(buffers)})")
            buffer = buffers[index]
            offset, size = fb.scalar(buffer, 1, "<Q"), fb.scalar(buffer, 2, "<Q")
            if offset <= 1:  # 1 is the converter's placeholder for "no external data"
                offset, size = fb.vector(buffer, 0)
            _check_metadata_size(size, name)
            return buf[offset : offset + size]
        return None
    except (struct.error, IndexError, ValueError):
        raise BccError(f"{name}: corrupt or truncated TFLite model") from None


class _FlatBuffer:
    """Just enough of the flatbuffers wire format to read tables, strings and vectors."""

    def __init__(self, buf: bytes):
        self.buf = buf

    def _u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.buf, pos)[0]

    def root(self) -> int:
        return self._u32(0)

    def _field(self, table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", self.buf, table)[0]
        vtable_size = struct.unpack_from("<H", self.buf, vtable)[0]
        slot = 4 + 2 * index
        if slot >= vtable_size:
            return None
        rel = struct.unpack_from("<H", self.buf, vtable + slot)[0]
        return table + rel if rel else None

    def scalar(self, table: int, index: int, fmt: str) -> int:
        pos = self._field(table, index)
        return 0 if pos is None else struct.unpack_from(fmt, self.buf, pos)[0]

    def vector(self, table: int, index: int, item_size: int = 1) -> tuple[int, int]:
        """(start, length) of a vector field of `item_size`-byte items; (0, 0) when absent."""
        pos = self._field(table, index)
        if pos is None:
            return 0, 0
        start = pos + self._u32(pos)
        length = self._u32(start)
        if start + 4 + length * item_size > len(self.buf):
            raise ValueError("vector past the end of the buffer")
        return start + 4, length

    def tables(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index, item_size=4)
        return [start + 4 * i + self._u32(start + 4 * i) for i in range(length)]

    def blob(self, table: int, index: int) -> bytes:
        start, length = self.vector(table, index)
        return bytes(self.buf[start : start + length])

    def string(self, table: int, index: int) -> str:
        return self.blob(table, index).decode("utf-8", "replace")


def _check_tflite_identifier(buf: bytes, name: str) -> None:
    if len(buf) < 8 or bytes(buf[4:8]) != TFLITE_IDENTIFIER:
        raise BccError(f"{name}: not a TFLite model (no TFL3 file identifier)")


def _as_str(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- ONNX


def embed_onnx(model: Any, meta: dict[str, Any]) -> Any:
    """Store `meta` under ``metadata_props["bcc_edge"]`` of an ``onnx.ModelProto`` (in place; returned too)."""
    text = dumps(meta).decode("utf-8")
    props = [p for p in model.metadata_props if p.key == KEY]
    if props:
        props[0].value = text
        for extra in props[1:]:
            model.metadata_props.remove(extra)
    else:
        entry = model.metadata_props.add()
        entry.key = KEY
        entry.value = text
    return model


def read_onnx(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``bcc_edge`` document of an .onnx file; None when it has none.

    Reads the top-level protobuf fields and seeks past the graph, so it neither needs the
    ``onnx`` package nor an onnxruntime session, and costs the same for a 1 GB model.
    """
    name = str(path)
    with open(path, "rb") as f:
        try:
            props = _onnx_metadata_props(f)
        except (EOFError, ValueError):
            raise BccError(f"{name}: not an ONNX model, or a truncated one") from None
    raw = props.get(KEY)
    return None if raw is None else loads(raw, name)


# ModelProto.metadata_props is field 14; StringStringEntryProto is {1: key, 2: value}.
_ONNX_METADATA_PROPS = 14
_ONNX_KEY_ROOM = 256  # bytes of an entry that hold its key (written first)
_ONNX_GRAPH = 7


def _onnx_metadata_props(f: IO[bytes]) -> dict[str, bytes]:
    size = os.fstat(f.fileno()).st_size
    props: dict[str, bytes] = {}
    seen_graph = False
    while f.tell() < size:
        field, wire_type = _split_tag(_read_varint(f))
        if wire_type == 0:
            _read_varint(f)
        elif wire_type in (1, 5):
            _read_exact(f, 8 if wire_type == 1 else 4)
        elif wire_type == 2:
            length = _read_varint(f)
            if f.tell() + length > size:
                raise EOFError
            if field == _ONNX_METADATA_PROPS and length <= MAX_METADATA_BYTES + _ONNX_KEY_ROOM:
                entry = _parse_fields(_read_exact(f, length))
                props[entry.get(1, b"").decode("utf-8", "replace")] = entry.get(2, b"")
            elif field == _ONNX_METADATA_PROPS:  # too large to be ours: refuse it only if it is
                end = f.tell() + length
                if _parse_fields(_read_exact(f, _ONNX_KEY_ROOM), partial=True).get(1) == KEY.encode():
                    _check_metadata_size(length, str(getattr(f, "name", "model")))
                f.seek(end)
            else:
                seen_graph |= field == _ONNX_GRAPH
                f.seek(length, os.SEEK_CUR)
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type}")
    if not seen_graph:  # every ONNX model has a graph; random bytes rarely parse this far
        raise ValueError("no graph")
    return props


def _parse_fields(data: bytes, partial: bool = False) -> dict[int, bytes]:
    """Length-delimited fields of a small message (later occurrences win, as in protobuf);
    `partial`: `data` is the start of a message, so stop at the first field it cuts."""
    stream, fields = io.BytesIO(data), {}
    while stream.tell() < len(data):
        field, wire_type = _split_tag(_read_varint(stream))
        if wire_type == 2:
            length = _read_varint(stream)
            if partial and stream.tell() + length > len(data):
                break
            fields[field] = _read_exact(stream, length)
        elif wire_type == 0:
            _read_varint(stream)
        else:
            raise ValueError(f"unexpected wire type {wire_type} in metadata entry")
    return fields


def _split_tag(tag: int) -> tuple[int, int]:
    if tag >> 3 == 0:
        raise ValueError("field number 0")
    return tag >> 3, tag & 7


def _read_varint(f: IO[bytes]) -> int:
    value = shift = 0
    while True:
        byte = f.read(1)
        if not byte:
            raise EOFError
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


# --------------------------------------------------------------------------- any artifact


def artifact_format(path: str | os.PathLike) -> str:
    """"tflite" or "onnx", from the suffix, else from the file's first bytes."""
    suffix = Path(path).suffix.lower()
    if suffix in (".tflite", ".onnx"):
        return suffix[1:]
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    # An ONNX file starts with ir_version (field 1, varint): tag byte 0x08.
    if head[:1] == b"\x08":
        return "onnx"
    raise BccError(f"{path}: unsupported model format (expected a .tflite or .onnx file)")


def read_artifact(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``bcc_edge`` document of a .tflite or .onnx artifact; None when it has none."""
    return read_tflite(path) if artifact_format(path) == "tflite" else read_onnx(path)


def _load(source: PathOrBytes) -> tuple[str, bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "model", bytes(source)
    return str(source), read_model_bytes(source)


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """A model file's bytes, refused past MAX_MODEL_BYTES before reading."""
    size = os.stat(path).st_size
    if size > MAX_MODEL_BYTES:
        raise BccError(f"{path}: {size} bytes is over the limit of {MAX_MODEL_BYTES} for a model file (MAX_MODEL_BYTES)")
    return Path(path).read_bytes()


def _check_metadata_size(size: int, name: str) -> None:
    if size > MAX_METADATA_BYTES:
        raise BccError(f"{name}: the embedded {KEY} metadata is {size} bytes, over the limit of {MAX_METADATA_BYTES}")
