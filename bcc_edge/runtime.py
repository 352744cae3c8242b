"""The edge runtime: load a .tflite or .onnx artifact and classify images. No TensorFlow.

`EdgeClassifier` reads the labels and preprocessing spec embedded by the exporter
(`bcc_edge.metadata`), takes the input/output dtypes and quantisation from the interpreter
or session itself (QAT and PTQ artifacts differ, and the tensors are the authority), and
always hands back float32 probabilities.

Backends: ai-edge-litert for .tflite (tflite-runtime when it is the one installed),
onnxruntime for .onnx. Each is imported only when a model of its format is opened, so a
board with only one of them installed still runs the other format.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from bcc_edge import metadata as _metadata
from bcc_edge import native_log
from bcc_edge.errors import BccError
from bcc_edge.decode import load_image
from bcc_edge.preprocess import PreprocessError, PreprocessSpec

BACKENDS = ("auto", "litert", "tflite-runtime", "onnxruntime")
_FORMAT_OF_BACKEND = {"litert": "tflite", "tflite-runtime": "tflite", "onnxruntime": "onnx"}
# The package to install for a backend; "auto" names the preferred one of the format.
_INSTALL_HINT = {
    "litert": "pip install ai-edge-litert",
    "tflite-runtime": "pip install tflite-runtime",
    "onnxruntime": "pip install onnxruntime",
    "tflite": "pip install ai-edge-litert",
    "onnx": "pip install onnxruntime",
}
# The model a release ships for `bcc-edge infer` without --model (absent in a source checkout).
BUNDLED_MODEL = Path(__file__).resolve().parent / "assets" / "model_int8.tflite"
# Images per interpreter call when the model accepts any batch size: large enough to amortise
# the per-call overhead, small enough to keep the input tensor in cache.
DEFAULT_BATCH = 16


@dataclass(frozen=True)
class Prediction:
    """One classified image, or the reason it could not be classified (`error`)."""

    path: str | None
    label: str | None = None
    score: float | None = None
    top_k: tuple[tuple[str, float], ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": self.label,
            "score": self.score,
            "top_k": [{"label": label, "score": score} for label, score in self.top_k],
            "error": self.error,
        }


class EdgeClassifier:
    """A bcc-edge artifact (.tflite or .onnx) ready to classify images.

    `threads`: interpreter/session threads (None: the backend's default).
    `backend`: "auto" (by file format), "litert", "tflite-runtime" or "onnxruntime".
    `labels` / `spec`: override the embedded metadata; both are required for a model that
    was not exported by bcc-edge.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        backend: str = "auto",
        labels: Sequence[str] | None = None,
        spec: PreprocessSpec | None = None,
    ):
        self.path = Path(path)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise BccError(f"threads must be a positive integer; got {threads!r}")
        if backend not in BACKENDS:
            raise BccError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if not self.path.is_file():
            raise BccError(f"model not found: {self.path}" if not self.path.exists() else f"model is not a file: {self.path}")
        fmt = _metadata.artifact_format(self.path)
        if backend != "auto" and _FORMAT_OF_BACKEND[backend] != fmt:
            raise BccError(f"backend {backend} cannot run a .{fmt} model")
        self.format = fmt
        self.threads = threads
        self.metadata = _metadata.read_artifact(self.path)
        self.labels, self.spec = self._labels_and_spec(labels, spec)
        model_class = _TFLiteModel if fmt == "tflite" else _OnnxModel
        self._model = model_class(self.path, threads, backend, self.metadata)
        self.backend = self._model.backend
        self.input_spec = self.spec.with_output(self._model.input_dtype, *self._model.input_quant)
        self._check_against_model()

    # ------------------------------------------------------------------ setup

    def _labels_and_spec(self, labels, spec) -> tuple[list[str], PreprocessSpec]:
        meta = self.metadata
        if meta is None and (labels is None or spec is None):
            raise BccError(
                f"{self.path} is not a bcc-edge artifact (it has no embedded {_metadata.KEY} metadata); "
                "give its labels and preprocessing spec (bcc-edge infer --labels ... --spec spec.json)"
            )
        if labels is None:
            labels = meta["labels"]
        labels = [str(x) for x in labels]
        if not labels or len(set(labels)) != len(labels) or not all(labels):
            raise BccError(f"labels must be distinct non-empty names; got {labels}")
        if spec is None:
            spec = PreprocessSpec.from_dict(meta["preprocess"])
        # The float spec is the reference; the model's own dtype is applied in input_spec.
        return labels, spec.with_output("float32")

    def _check_against_model(self) -> None:
        shape = self._model.input_shape
        if len(shape) != 4 or shape[3] != 3:
            raise BccError(f"{self.path}: expected an NHWC RGB image input, the model takes shape {list(shape)}")
        model_hw = tuple(shape[1:3])
        if all(d > 0 for d in model_hw) and model_hw != self.spec.size:
            raise BccError(
                f"{self.path}: the preprocessing size {self.spec.size} does not match the model input {model_hw}"
            )
        classes = self._model.num_classes
        if classes > 0 and classes != len(self.labels):
            raise BccError(f"{self.path}: {len(self.labels)} labels for a model with {classes} outputs")

    # ------------------------------------------------------------------ properties

    @property
    def precision(self) -> str:
        """"int8" for a quantised artifact, else "float32".

        Integer input/output tensors say so directly; an ONNX QDQ model, or an INT8 TFLite
        exported with `--io float32`, has float32 I/O, so there the exporter's `quantization`
        entry decides.
        """
        if self._model.input_dtype != "float32" or self._model.output_dtype != "float32":
            return "int8"
        if self.metadata and self.metadata.get("quantization"):
            return "int8"
        return "float32"

    @property
    def max_batch(self) -> int:
        """Images per interpreter call: 1 for a model with a fixed batch dimension of 1."""
        return self._model.max_batch

    def __repr__(self) -> str:
        return f"EdgeClassifier({str(self.path)!r}, backend={self.backend!r}, precision={self.precision!r}, classes={len(self.labels)})"

    # ------------------------------------------------------------------ inference

    def prepare(self, images, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
        """Decoded uint8 RGB images (list of HxWx3 of any size, or an NHWC array) -> model input batch."""
        return self.input_spec.apply_batch(images, out=out, threads=threads)

    def invoke(self, batch: np.ndarray) -> np.ndarray:
        """A prepared batch (N, h, w, 3) in the model's input dtype -> (N, classes) float32 probabilities."""
        expected = (*self.input_spec.size, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected or batch.dtype != self.input_spec.dtype:
            raise PreprocessError(
                f"batch must be (N, {', '.join(map(str, expected))}) {self.input_spec.dtype}; got {batch.shape} {batch.dtype}"
            )
        if len(batch) == 0:
            return np.empty((0, len(self.labels)), np.float32)
        step = self.max_batch
        parts = []
        for i in range(0, len(batch), step):
            part = batch[i : i + step]
            n = len(part)
            if self._model.fixed_batch and n < step:  # a fixed batch dimension cannot shrink: pad
                part = np.concatenate([part, np.repeat(part[-1:], step - n, axis=0)])
            parts.append(self._model.run(np.ascontiguousarray(part))[:n])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def predict_proba(self, images) -> np.ndarray:
        """Decoded uint8 RGB images -> (N, classes) float32 probabilities."""
        n = len(images)
        out = np.empty((n, len(self.labels)), np.float32)
        step = max(self.max_batch, DEFAULT_BATCH)
        for i in range(0, n, step):
            out[i : i + step] = self.invoke(self.prepare(images[i : i + step], threads=None))
        return out

    def predict(self, images, top_k: int = 1) -> list[Prediction]:
        """Decoded uint8 RGB images -> one Prediction each (path None)."""
        return self.to_predictions(self.predict_proba(images), [None] * len(images), top_k)

    def predict_paths(self, paths: Iterable[str | os.PathLike], top_k: int = 1, batch_size: int | None = None, workers: int | None = None) -> list[Prediction]:
        """Image files -> one Prediction each, in order; an unreadable file gets one with `.error`."""
        from bcc_edge.infer import iter_predictions

        return list(iter_predictions(self, paths, top_k=top_k, batch_size=batch_size, workers=workers))

    def to_predictions(self, probs: np.ndarray, paths: Sequence[str | None], top_k: int = 1) -> list[Prediction]:
        """(N, classes) probabilities and their N paths -> Predictions with the top_k classes."""
        k = check_top_k(top_k, len(self.labels))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        predictions = []
        for path, row, idx in zip(paths, probs, order):
            top = tuple((self.labels[j], round(float(row[j]), 6)) for j in idx)
            predictions.append(Prediction(path, top[0][0], top[0][1], top))
        return predictions

    def load(self, path: str | os.PathLike) -> np.ndarray:
        """Decode one file the way this model's spec asks (JPEG draft decoding included)."""
        return load_image(path, self.spec)


def default_model() -> Path:
    """The bundled model, or a BccError saying to pass --model."""
    if BUNDLED_MODEL.is_file():
        return BUNDLED_MODEL
    raise BccError("no --model given and this bcc-edge install has no bundled model; pass --model MODEL.tflite|MODEL.onnx")


def check_top_k(top_k: int, classes: int) -> int:
    """top_k clamped to the number of classes; a non-positive value is a user error."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise BccError(f"top-k must be a positive integer; got {top_k!r}")
    return min(top_k, classes)


def _softmax_output(meta: dict | None) -> bool:
    """Whether the model output is already probabilities (the exporter's models end in softmax)."""
    activation = ((meta or {}).get("output") or {}).get("activation", "softmax")
    return activation == "softmax"


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _missing_backend(backend: str, fmt: str, detail: str) -> BccError:
    hint = _INSTALL_HINT[fmt if backend == "auto" else backend]
    return BccError(f"running a .{fmt} model needs a runtime that cannot be imported here ({detail}): {hint}")


# ---------------------------------------------------------------------------- TFLite


def _import_tflite_interpreter(backend: str):
    """(Interpreter class, backend name): ai-edge-litert first, tflite-runtime as fallback."""
    errors = []
    candidates = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}
    for name, module in candidates.items():
        if backend not in ("auto", name):
            continue
        try:
            return __import__(module, fromlist=["Interpreter"]).Interpreter, name
        except ImportError as exc:
            errors.append(str(exc))
    raise _missing_backend(backend, "tflite", "; ".join(errors))


class _TFLiteModel:
    """Interpreters per calling thread (an interpreter is not thread-safe; `invoke` releases
    the GIL, so threads invoking their own interpreters run in parallel), and per batch size
    within a thread (two at most: the full batches and the last one), because resizing one
    interpreter back and forth would re-plan its memory at every alternation."""

    _MAX_INTERPRETERS = 2

    def __init__(self, path: Path, threads: int | None, backend: str, meta: dict | None):
        self._interpreter_class, self.backend = _import_tflite_interpreter(backend)
        self._path = path
        self._content = path.read_bytes()
        self._threads = threads
        first = self._new_interpreter()
        (inp,), (out,) = _single_io(path, first.get_input_details(), first.get_output_details())
        self._in_index, self._out_index = inp["index"], out["index"]
        self.input_dtype = np.dtype(inp["dtype"]).name
        self.output_dtype = np.dtype(out["dtype"]).name
        _check_dtypes(path, self.input_dtype, self.output_dtype)
        self.input_quant = _quant_params(inp, self.input_dtype)
        self._output_quant = _quant_params(out, self.output_dtype)
        signature = inp.get("shape_signature")
        signature = inp["shape"] if signature is None or len(signature) == 0 else signature
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.num_classes = int(out["shape"][-1])
        # Only a model converted with a free batch dimension can be resized safely; a fixed
        # batch of 1 may hide reshapes that hard-code it.
        self.fixed_batch = int(signature[0]) != -1
        self.max_batch = int(inp["shape"][0]) if self.fixed_batch else DEFAULT_BATCH
        self._softmax = _softmax_output(meta)
        self._local = threading.local()
        self._local.interpreters = OrderedDict({self.input_shape[0]: first})

    def _new_interpreter(self):
        try:
            with native_log.dropping(native_log.XNNPACK_NOTICE):
                interpreter = self._interpreter_class(model_content=self._content, num_threads=self._threads)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BccError(f"{self._path}: the {self.backend} interpreter cannot load the model: {_first_line(exc)}") from None
        return interpreter

    def _for_batch(self, n: int):
        cache = getattr(self._local, "interpreters", None)
        if cache is None:
            cache = self._local.interpreters = OrderedDict()
        interpreter = cache.get(n)
        if interpreter is not None:
            cache.move_to_end(n)
            return interpreter
        interpreter = self._new_interpreter()
        if n != self.input_shape[0]:
            try:
                interpreter.resize_tensor_input(self._in_index, [n, *self.input_shape[1:]], strict=True)
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:  # a graph that hard-codes its batch size
                raise BccError(f"{self._path}: cannot run a batch of {n} ({_first_line(exc)}); try --batch 1") from None
        cache[n] = interpreter
        if len(cache) > self._MAX_INTERPRETERS:
            cache.popitem(last=False)
        return interpreter

    def run(self, batch: np.ndarray) -> np.ndarray:
        interpreter = self._for_batch(len(batch))
        interpreter.set_tensor(self._in_index, batch)
        interpreter.invoke()
        raw = interpreter.get_tensor(self._out_index)
        return _to_probabilities(raw, self._output_quant, self._softmax)



def _single_io(path, inputs, outputs):
    if len(inputs) != 1 or len(outputs) != 1:
        raise BccError(f"{path}: expected a classifier with one input and one output; it has {len(inputs)} and {len(outputs)}")
    return inputs, outputs


def _check_dtypes(path, input_dtype: str, output_dtype: str) -> None:
    supported = ("float32", "int8", "uint8")
    if input_dtype not in supported or output_dtype not in supported:
        raise BccError(f"{path}: unsupported tensor types (input {input_dtype}, output {output_dtype}); expected float32, int8 or uint8")


def _quant_params(detail: dict, dtype: str) -> tuple[float, int]:
    if dtype == "float32":
        return 1.0, 0
    scale, zero_point = detail["quantization"]
    if not scale > 0:
        raise BccError(f"the {dtype} tensor {detail.get('name')!r} has no quantisation parameters")
    return float(scale), int(zero_point)


def _to_probabilities(raw: np.ndarray, quant: tuple[float, int], softmax: bool) -> np.ndarray:
    scale, zero_point = quant
    values = raw.astype(np.float32) if raw.dtype == np.float32 else (raw.astype(np.float32) - zero_point) * np.float32(scale)
    values = values.reshape(len(raw), -1)
    return _softmax(values) if not softmax else values


# ---------------------------------------------------------------------------- ONNX

_ORT_TYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


class _OnnxModel:
    def __init__(self, path: Path, threads: int | None, backend: str, meta: dict | None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise _missing_backend("onnxruntime", "onnx", str(exc)) from None
        self.backend = "onnxruntime"
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise BccError(f"onnxruntime cannot load {path}: {_first_line(exc)}") from None
        (inp,), (out,) = _single_io(path, self._session.get_inputs(), self._session.get_outputs())
        self._in_name, self._out_name = inp.name, out.name
        self.input_dtype = _ORT_TYPES.get(inp.type, inp.type)
        self.output_dtype = _ORT_TYPES.get(out.type, out.type)
        _check_dtypes(path, self.input_dtype, self.output_dtype)
        # A session does not expose tensor quantisation; integer I/O needs the exporter's record.
        self.input_quant = _onnx_quant(path, meta, "input", self.input_dtype)
        self._output_quant = _onnx_quant(path, meta, "output", self.output_dtype)
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in inp.shape)
        self.num_classes = out.shape[-1] if isinstance(out.shape[-1], int) else -1
        self.fixed_batch = self.input_shape[0] != -1
        self.max_batch = self.input_shape[0] if self.fixed_batch else DEFAULT_BATCH
        self._softmax = _softmax_output(meta)

    def run(self, batch: np.ndarray) -> np.ndarray:
        (raw,) = self._session.run([self._out_name], {self._in_name: batch})
        return _to_probabilities(raw, self._output_quant, self._softmax)


def _onnx_quant(path, meta: dict | None, which: str, dtype: str) -> tuple[float, int]:
    if dtype == "float32":
        return 1.0, 0
    record = (meta or {}).get(which) or {}
    try:
        return float(record["scale"]), int(record["zero_point"])
    except (KeyError, TypeError, ValueError):
        raise BccError(f"{path}: the {which} is {dtype} but the metadata does not record its scale and zero point") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
