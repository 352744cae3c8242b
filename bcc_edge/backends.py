"""The interpreters behind the edge runtime: LiteRT for .tflite (tflite-runtime where it is the
one installed), onnxruntime for .onnx. No TensorFlow.

Each backend is imported only when a model of its format is opened, so a board with only
one of them installed still runs the other format. A backend hands back the raw output
tensor; `runtime.EdgeClassifier` turns it into probabilities. Input/output dtypes and
quantisation come from the interpreter or session itself (QAT and PTQ artifacts differ, and
the tensors are the authority); an ONNX session does not expose them, so there the
artifact's metadata supplies them, range-checked by `bcc_edge.metadata`.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from bcc_edge import native_log
from bcc_edge.errors import BccError, first_line

BACKENDS = ("auto", "litert", "tflite-runtime", "onnxruntime")
FORMAT_OF_BACKEND = {"litert": "tflite", "tflite-runtime": "tflite", "onnxruntime": "onnx"}
# The package to install for a backend; "auto" names the preferred one of the format.
_INSTALL_HINT = {
    "litert": "pip install ai-edge-litert",
    "tflite-runtime": "pip install tflite-runtime",
    "onnxruntime": "pip install onnxruntime",
    "tflite": "pip install ai-edge-litert",
    "onnx": "pip install onnxruntime",
}
# onnxruntime execution providers for --provider; each falls back to the next ones listed.
PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
_PROVIDER_NAMES = {ep: name for name, chain in PROVIDERS.items() for ep in chain[:1]}
_PROVIDER_HINT = (
    "install an onnxruntime built with it: `pip install onnxruntime-gpu` on x86_64 with CUDA, "
    "NVIDIA's JetPack onnxruntime-gpu wheel on a Jetson (TensorRT also needs its libraries)"
)
# Images per interpreter call when the model accepts any batch size: large enough to amortise
# the per-call overhead, small enough to keep the input tensor in cache.
DEFAULT_BATCH = 16
_DTYPES = ("float32", "int8", "uint8")


def missing_backend(backend: str, fmt: str, detail: str) -> BccError:
    hint = _INSTALL_HINT[fmt if backend == "auto" else backend]
    return BccError(f"running a .{fmt} model needs a runtime that cannot be imported here ({first_line(Exception(detail))}): {hint}")


def open_backend(path: Path, fmt: str, content: bytes | None, threads: int | None, backend: str, meta: dict | None, provider: str):
    """The backend running `path` (`content`: its bytes, for TFLite)."""
    if fmt == "tflite":
        if provider != "cpu":
            raise BccError(f"--provider {provider} applies to .onnx models; a .tflite model runs on LiteRT's CPU kernels")
        return TFLiteBackend(path, content, threads, backend)
    return OnnxBackend(path, threads, meta, provider)


def _single_io(path, inputs, outputs):
    if len(inputs) != 1 or len(outputs) != 1:
        raise BccError(f"{path}: expected a classifier with one input and one output; it has {len(inputs)} and {len(outputs)}")
    return inputs, outputs


def _check_dtypes(path, input_dtype: str, output_dtype: str) -> None:
    if input_dtype not in _DTYPES or output_dtype not in _DTYPES:
        raise BccError(f"{path}: unsupported tensor types (input {input_dtype}, output {output_dtype}); expected float32, int8 or uint8")


def _quant_params(scale: Any, zero_point: Any, dtype: str, what: str) -> tuple[float, int]:
    """(scale, zero point) of an integer tensor, refused unless finite, positive and in range."""
    if dtype == "float32":
        return 1.0, 0
    low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
    try:
        scale, zero_point = float(scale), int(zero_point)
    except (TypeError, ValueError):
        raise BccError(f"{what} is {dtype} but has no usable quantisation parameters") from None
    if not (math.isfinite(scale) and scale > 0 and low <= zero_point <= high):
        raise BccError(f"{what} is {dtype} with unusable quantisation parameters (scale {scale}, zero point {zero_point})")
    return scale, zero_point


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
    raise missing_backend(backend, "tflite", "; ".join(errors))


class TFLiteBackend:
    """Interpreters per calling thread (an interpreter is not thread-safe; `invoke` releases
    the GIL, so threads invoking their own interpreters run in parallel), and per batch size
    within a thread (two at most: the full batches and the last one), because resizing one
    interpreter back and forth would re-plan its memory at every alternation."""

    _MAX_INTERPRETERS = 2
    provider = "cpu"

    def __init__(self, path: Path, content: bytes, threads: int | None, backend: str):
        self._interpreter_class, self.backend = _import_tflite_interpreter(backend)
        self._path = path
        self._content = content
        self._threads = threads
        first = self._new_interpreter()
        (inp,), (out,) = _single_io(path, first.get_input_details(), first.get_output_details())
        self._in_index, self._out_index = inp["index"], out["index"]
        self.input_dtype = np.dtype(inp["dtype"]).name
        self.output_dtype = np.dtype(out["dtype"]).name
        _check_dtypes(path, self.input_dtype, self.output_dtype)
        self.input_quant = _quant_params(*inp["quantization"], self.input_dtype, f"{path}: the input tensor")
        self.output_quant = _quant_params(*out["quantization"], self.output_dtype, f"{path}: the output tensor")
        signature = inp.get("shape_signature")
        signature = inp["shape"] if signature is None or len(signature) == 0 else signature
        self.input_shape = tuple(int(d) for d in inp["shape"])
        out_signature = out.get("shape_signature")
        self.num_classes = int(out["shape"][-1]) if out_signature is None or len(out_signature) == 0 or out_signature[-1] > 0 else -1
        # Only a model converted with a free batch dimension can be resized safely; a fixed
        # batch of 1 may hide reshapes that hard-code it.
        self.fixed_batch = int(signature[0]) != -1
        self.max_batch = int(inp["shape"][0]) if self.fixed_batch else DEFAULT_BATCH
        self._local = threading.local()
        self._local.interpreters = OrderedDict({self.input_shape[0]: first})

    def _new_interpreter(self):
        try:
            with native_log.dropping(native_log.XNNPACK_NOTICE):
                interpreter = self._interpreter_class(model_content=self._content, num_threads=self._threads)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BccError(f"{self._path}: the {self.backend} interpreter cannot load the model: {first_line(exc)}") from None
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
                raise BccError(f"{self._path}: cannot run a batch of {n} ({first_line(exc)}); try --batch 1") from None
        cache[n] = interpreter
        if len(cache) > self._MAX_INTERPRETERS:
            cache.popitem(last=False)
        return interpreter

    def run(self, batch: np.ndarray) -> np.ndarray:
        interpreter = self._for_batch(len(batch))
        interpreter.set_tensor(self._in_index, batch)
        try:
            interpreter.invoke()
        except RuntimeError as exc:
            raise BccError(f"{self._path}: the model failed to run: {first_line(exc)}") from None
        return interpreter.get_tensor(self._out_index)

    def cancel(self) -> None:
        """LiteRT's Python interpreter cannot be interrupted: the watchdog gives up on it."""


# ---------------------------------------------------------------------------- ONNX

_ORT_TYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


class OnnxBackend:
    def __init__(self, path: Path, threads: int | None, meta: dict | None, provider: str):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise missing_backend("onnxruntime", "onnx", str(exc)) from None
        self.backend = "onnxruntime"
        self._ort = ort
        chain = _provider_chain(provider, ort.get_available_providers())
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        profile_dir = None
        if provider != "cpu":  # which provider runs the nodes shows only in a profile
            profile_dir = tempfile.TemporaryDirectory(prefix="bcc-edge-ort-")
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(profile_dir.name, "run")
        try:
            # onnxruntime prints its provider fallback to stdout, where `bcc-edge infer` writes
            # its rows; what ran is read from the profile instead (below).
            with contextlib.redirect_stdout(io.StringIO()):
                self._session = ort.InferenceSession(str(path), options, providers=list(chain))
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise BccError(f"onnxruntime cannot load {path}: {first_line(exc)}") from None
        (inp,), (out,) = _single_io(path, self._session.get_inputs(), self._session.get_outputs())
        self._in_name, self._out_name = inp.name, out.name
        self.input_dtype = _ORT_TYPES.get(inp.type, inp.type)
        self.output_dtype = _ORT_TYPES.get(out.type, out.type)
        _check_dtypes(path, self.input_dtype, self.output_dtype)
        # A session does not expose tensor quantisation; integer I/O needs the exporter's record.
        self.input_quant = _onnx_quant(path, meta, "input", self.input_dtype)
        self.output_quant = _onnx_quant(path, meta, "output", self.output_dtype)
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in inp.shape)
        self.num_classes = out.shape[-1] if isinstance(out.shape[-1], int) and out.shape[-1] > 0 else -1
        self.fixed_batch = self.input_shape[0] != -1
        self.max_batch = self.input_shape[0] if self.fixed_batch else DEFAULT_BATCH
        self._active: set = set()
        self._lock = threading.Lock()
        self.provider = "cpu"
        if profile_dir is not None:
            with profile_dir:
                self.provider = self._provider_that_ran(provider)

    def _provider_that_ran(self, requested: str) -> str:
        """Run one inference with profiling on and name the provider that ran its nodes."""
        if -1 in self.input_shape[1:]:
            raise BccError("--provider needs a model with a fixed input size")
        shape = (max(self.input_shape[0], 1), *self.input_shape[1:])
        self.run(np.zeros(shape, self.input_dtype))
        profile = self._session.end_profiling()
        with open(profile, encoding="utf-8") as f:
            events = json.load(f)
        return describe_providers(requested, providers_of_nodes(events))

    def run(self, batch: np.ndarray) -> np.ndarray:
        options = self._ort.RunOptions()
        with self._lock:
            self._active.add(options)
        try:
            (raw,) = self._session.run([self._out_name], {self._in_name: batch}, options)
        except Exception as exc:  # noqa: BLE001 - a graph that fails on its input, or a cancelled run
            raise BccError(f"onnxruntime failed to run the model: {first_line(exc)}") from None
        finally:
            with self._lock:
                self._active.discard(options)
        return raw

    def cancel(self) -> None:
        """Stop every run in progress (onnxruntime checks the flag between nodes and loop
        iterations): the watchdog's way out of a graph that never finishes."""
        with self._lock:
            for options in self._active:
                options.terminate = True


def _provider_chain(provider: str, available: list[str]) -> tuple[str, ...]:
    """The execution providers to ask onnxruntime for; a one-line error naming what to install
    when the requested one is not in this onnxruntime."""
    if provider not in PROVIDERS:
        raise BccError(f"unknown --provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    chain = PROVIDERS[provider]
    if chain[0] not in available:
        have = ", ".join(_PROVIDER_NAMES.get(ep, ep) for ep in available) or "none"
        raise BccError(f"--provider {provider}: this onnxruntime has no {chain[0]} (it has: {have}); {_PROVIDER_HINT}")
    return tuple(ep for ep in chain if ep in available)


def providers_of_nodes(events: list[dict]) -> Counter:
    """How many node executions of an onnxruntime profile each execution provider ran."""
    return Counter(
        event["args"]["provider"]
        for event in events
        if isinstance(event, dict) and event.get("cat") == "Node" and isinstance(event.get("args"), dict) and "provider" in event["args"]
    )


def describe_providers(requested: str, counts: Counter) -> str:
    """"cuda", or what really ran when it was not only the requested provider."""
    if not counts:
        return f"unknown ({requested} requested; the profile names no provider)"
    ran = {_PROVIDER_NAMES.get(ep, ep): n for ep, n in counts.most_common()}
    if list(ran) == [requested]:
        return requested
    return ", ".join(f"{name} ({n} nodes)" for name, n in ran.items()) + f"; {requested} requested"


def _onnx_quant(path, meta: dict | None, which: str, dtype: str) -> tuple[float, int]:
    if dtype == "float32":
        return 1.0, 0
    record = (meta or {}).get(which) or {}
    if "scale" not in record:
        raise BccError(f"{path}: the {which} is {dtype} but the metadata does not record its scale and zero point")
    return _quant_params(record.get("scale"), record.get("zero_point"), dtype, f"{path}: the {which}")
