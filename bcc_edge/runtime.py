"""The edge runtime: load a .tflite or .onnx artifact and classify images. No TensorFlow.

`EdgeClassifier` reads the labels and preprocessing spec embedded by the exporter
(`bcc_edge.metadata`), runs the model through a backend (`bcc_edge.backends`) and always
hands back float32 probabilities. `iter_predictions` is the pipeline from image files (or
uploads held in memory, `Upload`) to predictions that `bcc-edge infer`, `count`, `watch`,
`serve` and the benchmarks run.

An artifact is untrusted input: its file size, its metadata (bounded, schema-checked) and
its tensors (dtypes, quantisation, shapes against the labels and the spec) are checked
before anything runs, a batch never takes more than MAX_BATCH_BYTES, every score written is
finite and in [0, 1], and a model that does not finish a batch within the invoke timeout
stops the run (`ModelTimeout`) instead of hanging it.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from bcc_edge import metadata as _metadata
from bcc_edge.backends import BACKENDS, FORMAT_OF_BACKEND, open_backend
from bcc_edge.decode import decode_bytes, load_image
from bcc_edge.device.guard import Guard, features
from bcc_edge.device.scores import Calibration, ReviewPolicy, softmax, statuses
from bcc_edge.device.selftest import Report as SelftestReport
from bcc_edge.device.selftest import run as run_selftest
from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT, BccError, ModelTimeout, positive_int
from bcc_edge.preprocess import PreprocessError, PreprocessSpec, usable_cpus

# The model `bcc-edge infer` uses without --model (package data, see assets/provenance.json).
BUNDLED_MODEL = Path(__file__).resolve().parent / "assets" / "model_int8.tflite"
# Largest input batch in bytes: a model whose metadata asks for a huge input shrinks its batch.
MAX_BATCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """An image file's bytes received over the network: decoded with the same limits and checks
    as a file (`decode.decode_bytes`); `name` is only shown (its row's path, its errors)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Prediction:
    """One classified image, or the reason it could not be classified (`error`).

    `status`: "ok", "review" (referred to a person; `reasons` says why: low_confidence,
    out_of_distribution) or "error"."""

    path: str | None
    label: str | None = None
    score: float | None = None
    top_k: tuple[tuple[str, float], ...] = ()
    error: str | None = None
    status: str = "ok"
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.error is not None:
            object.__setattr__(self, "status", "error")

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": self.label,
            "score": self.score,
            "top_k": [{"label": label, "score": score} for label, score in self.top_k],
            "status": self.status,
            "reasons": list(self.reasons),
            "error": self.error,
        }


class EdgeClassifier:
    """A bcc-edge artifact (.tflite or .onnx) ready to classify images.

    `threads`: interpreter/session threads (None: the backend's default).
    `backend`: "auto" (by file format), "litert", "tflite-runtime" or "onnxruntime".
    `provider`: onnxruntime execution provider for .onnx models: "cpu", "cuda" or "tensorrt";
    `.provider` then says which one really ran the first inference.
    `labels` / `spec`: override the embedded metadata; both are required for a model that
    was not exported by bcc-edge.
    `review_threshold`: refer predictions whose top-1 probability is below it, instead of the
    artifact's policy; `review=False`: refer nothing for low confidence.
    `guard=False`: no input guard (no `out_of_distribution` referrals).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        backend: str = "auto",
        labels: Sequence[str] | None = None,
        spec: PreprocessSpec | None = None,
        provider: str = "cpu",
        review_threshold: float | None = None,
        review: bool = True,
        guard: bool = True,
    ):
        self.path = Path(path)
        if threads is not None:
            positive_int("threads", threads)
        if backend not in BACKENDS:
            raise BccError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if not self.path.is_file():
            raise BccError(f"model not found: {self.path}" if not self.path.exists() else f"model is not a file: {self.path}")
        fmt = _metadata.artifact_format(self.path)
        if backend != "auto" and FORMAT_OF_BACKEND[backend] != fmt:
            raise BccError(f"backend {backend} cannot run a .{fmt} model")
        self.format = fmt
        self.threads = threads
        content = _metadata.read_model_bytes(self.path) if fmt == "tflite" else None
        self.metadata = _metadata.read_tflite(content) if fmt == "tflite" else _metadata.read_onnx(self.path)
        self.labels, self.spec = self._labels_and_spec(labels, spec)
        self._model = open_backend(self.path, fmt, content, threads, backend, self.metadata, provider)
        self.backend = self._model.backend
        self.provider = self._model.provider
        self.input_spec = self.spec.with_output(self._model.input_dtype, *self._model.input_quant)
        self._check_against_model()
        self._pools: dict[int, _Workers] = {}
        meta = self.metadata or {}
        self.outputs_logits = (meta.get("output") or {}).get("activation") == "logits"
        self.calibration = Calibration.from_dict(meta["probabilities"]) if self.outputs_logits and meta.get("probabilities") else None
        if review_threshold is not None:
            if not 0.0 <= review_threshold <= 1.0:
                raise BccError(f"--review-threshold must be a probability in [0, 1]; got {review_threshold}")
            self.review = ReviewPolicy(threshold=review_threshold)
        else:
            self.review = ReviewPolicy.from_dict(meta["review"]) if review and meta.get("review") else None
        self.guard = Guard.from_dict(meta["guard"]) if guard and meta.get("guard") else None

    # ------------------------------------------------------------------ setup

    def _labels_and_spec(self, labels, spec) -> tuple[list[str], PreprocessSpec]:
        meta = self.metadata
        if meta is None and (labels is None or spec is None):
            raise BccError(
                f"{self.path} is not a bcc-edge artifact (it has no embedded {_metadata.KEY} metadata); "
                "give its labels and preprocessing spec (bcc-edge infer --labels ... --spec spec.json)"
            )
        labels = [str(x) for x in (meta["labels"] if labels is None else labels)]
        problems = _metadata.label_problems(labels)
        if problems:
            raise BccError(f"unusable labels: {problems[0]}")
        spec = PreprocessSpec.from_dict(meta["preprocess"]) if spec is None else spec
        problems = _metadata.spec_problems(spec)
        if problems:
            raise BccError(f"unusable preprocessing spec: {'; '.join(problems)}")
        # The float spec is the reference; the model's own dtype is applied in input_spec.
        return labels, spec.with_output("float32")

    def _check_against_model(self) -> None:
        shape = self._model.input_shape
        if len(shape) != 4 or shape[3] != 3:
            raise BccError(f"{self.path}: expected an NHWC RGB image input, the model takes shape {list(shape)}")
        model_hw = tuple(shape[1:3])
        if all(d > 0 for d in model_hw) and model_hw != self.spec.size:
            raise BccError(f"{self.path}: the preprocessing size {self.spec.size} does not match the model input {model_hw}")
        classes = self._model.num_classes
        if classes > 0 and classes != len(self.labels):
            raise BccError(f"{self.path}: {len(self.labels)} labels for a model with {classes} outputs")
        recorded = ((self.metadata or {}).get("input") or {}).get("dtype")
        if recorded is not None and recorded != self._model.input_dtype:
            raise BccError(
                f"{self.path}: the metadata describes a {recorded} input but the model takes {self._model.input_dtype} "
                "(a model file swapped under another's metadata?)"
            )

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
        """Images per interpreter call: 1 for a model with a fixed batch dimension of 1, and
        never more than `batch_limit`."""
        return self._model.max_batch if self._model.fixed_batch else min(self._model.max_batch, self.batch_limit)

    @property
    def batch_limit(self) -> int:
        """The most images a batch may hold: MAX_BATCH_BYTES of model input."""
        h, w = self.input_spec.size
        return max(1, MAX_BATCH_BYTES // (h * w * 3 * self.input_spec.dtype.itemsize))

    def __repr__(self) -> str:
        return f"EdgeClassifier({str(self.path)!r}, backend={self.backend!r}, precision={self.precision!r}, classes={len(self.labels)})"

    # ------------------------------------------------------------------ inference

    def prepare(self, images, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
        """Decoded uint8 RGB images (list of HxWx3 of any size, or an NHWC array) -> model input batch."""
        return self.input_spec.apply_batch(images, out=out, threads=threads)

    def invoke(self, batch: np.ndarray) -> np.ndarray:
        """A prepared batch (N, h, w, 3) in the model's input dtype -> (N, classes) float32 probabilities."""
        return self._probabilities(self.outputs(batch))

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """The model's outputs for a prepared batch, dequantised: (N, classes) float32 logits
        for an artifact that outputs logits, probabilities for one that ends in a softmax."""
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
            parts.append(self._dequantised(self._model.run(np.ascontiguousarray(part)))[:n])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _dequantised(self, raw: np.ndarray) -> np.ndarray:
        if raw.ndim < 2 or raw.shape[-1] != len(self.labels) or raw.size != len(raw) * len(self.labels):
            raise BccError(f"{self.path}: the model output has shape {list(raw.shape)}, not one score per label ({len(self.labels)})")
        scale, zero_point = self._model.output_quant
        values = raw.reshape(len(raw), -1).astype(np.float32)
        if raw.dtype != np.float32:
            values = (values - zero_point) * np.float32(scale)
        return values

    def _probabilities(self, values: np.ndarray) -> np.ndarray:
        """Dequantised outputs -> probabilities: for a logits output the calibrated softmax (a
        plain softmax without calibration)."""
        if not self.outputs_logits:
            return values
        with np.errstate(invalid="ignore", over="ignore"):  # a non-finite row becomes an error row later
            return self.calibration.probabilities(values) if self.calibration is not None else softmax(values)

    def raw_output(self, batch: np.ndarray) -> np.ndarray:
        """The model's output tensor for a prepared batch, as the backend returns it (the
        selftest compares these with the export's)."""
        return self._model.run(np.ascontiguousarray(batch))

    def predict_proba(self, images) -> np.ndarray:
        """Decoded uint8 RGB images -> (N, classes) float32 probabilities."""
        n = len(images)
        out = np.empty((n, len(self.labels)), np.float32)
        step = max(self.max_batch, 16)
        for i in range(0, n, step):
            out[i : i + step] = self.invoke(self.prepare(images[i : i + step], threads=None))
        return out

    def predict(self, images, top_k: int = 1) -> list[Prediction]:
        """Decoded uint8 RGB images -> one Prediction each (path None)."""
        return self.to_predictions(self.predict_proba(images), [None] * len(images), top_k)

    def predict_paths(self, paths: Iterable[str | os.PathLike], top_k: int = 1, batch_size: int | None = None, workers: int | None = None) -> list[Prediction]:
        """Image files -> one Prediction each, in order; an unreadable file gets one with `.error`."""
        return list(iter_predictions(self, paths, top_k=top_k, batch_size=batch_size, workers=workers))

    def to_predictions(self, probs: np.ndarray, paths: Sequence[str | None], top_k: int = 1, unfamiliar: np.ndarray | None = None) -> list[Prediction]:
        """(N, classes) probabilities and their N paths -> Predictions with the top_k classes and
        their review status (`unfamiliar`: the input guard's flags, one per row). A row that is
        not finite (a broken or hostile model) becomes an error, never a score."""
        k = check_top_k(top_k, len(self.labels))
        finite = np.isfinite(probs).all(axis=1)
        probs = np.clip(np.where(finite[:, None], probs, 0.0), 0.0, 1.0)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        referred = self.review.refer(probs) if self.review is not None else np.zeros(len(probs), bool)
        flags = unfamiliar if unfamiliar is not None else np.zeros(len(probs), bool)
        predictions = []
        for path, row, idx, ok, (status, reasons) in zip(paths, probs, order, finite, statuses(referred, flags)):
            if not ok:
                predictions.append(Prediction(path, error="the model's output is not a finite number (a broken model?)"))
                continue
            top = tuple((self.labels[j], round(float(row[j]), 6)) for j in idx)
            predictions.append(Prediction(path, top[0][0], top[0][1], top, status=status, reasons=tuple(reasons)))
        return predictions

    def unfamiliar(self, batch: np.ndarray) -> np.ndarray | None:
        """The input guard's flags for a prepared batch; None without a guard."""
        if self.guard is None or len(batch) == 0:
            return None
        return self.guard.flags(features(batch, *self._model.input_quant))

    def selftest(self) -> SelftestReport:
        """Run the artifact's golden vectors through this device's decode, preprocess and invoke."""
        return run_selftest(self)

    def describe(self) -> dict[str, Any]:
        """What a report says about the model: file, backend, labels, policies."""
        meta = self.metadata or {}
        return {
            "path": str(self.path),
            "name": meta.get("model_name", self.path.stem),
            "format": self.format,
            "precision": self.precision,
            "backend": self.backend,
            "provider": self.provider,
            "labels": list(self.labels),
            "probabilities": self.calibration.to_dict() if self.calibration else ("softmax" if self.outputs_logits else "as output by the model"),
            "review": self.review.to_dict() if self.review else None,
            "guard": self.guard is not None,
        }

    def load(self, source: str | os.PathLike | Upload) -> np.ndarray:
        """Decode one file or upload the way this model's spec asks (JPEG draft decoding included)."""
        if isinstance(source, Upload):
            return decode_bytes(source.data, self.spec, source.name)
        return load_image(source, self.spec)

    def cancel(self) -> None:
        """Ask the backend to abandon the runs in progress (used by the invoke watchdog)."""
        self._model.cancel()

    def workers(self, count: int) -> "_Workers":
        """`count` threads of this classifier for the pipeline, kept between runs so that each
        keeps its interpreters (one pool per count: a run never uses more threads than asked)."""
        if count not in self._pools:
            self._pools[count] = _Workers(count)
        return self._pools[count]

    def __del__(self) -> None:
        for pool in getattr(self, "_pools", {}).values():
            pool.close()


def default_model() -> Path:
    """The bundled model, or a BccError saying to pass --model."""
    if BUNDLED_MODEL.is_file():
        return BUNDLED_MODEL
    raise BccError("no --model given and this bcc-edge install has no bundled model; pass --model MODEL.tflite|MODEL.onnx")


def check_top_k(top_k: int, classes: int) -> int:
    """top_k clamped to the number of classes; a non-positive value is a user error."""
    return min(positive_int("top-k", top_k), classes)


# ---------------------------------------------------------------------------- the pipeline


def iter_predictions(
    classifier: EdgeClassifier,
    paths: Iterable[str | os.PathLike | Upload],
    top_k: int = 1,
    batch_size: int | None = None,
    workers: int | None = None,
    timeout: float | None = DEFAULT_INVOKE_TIMEOUT,
) -> Iterator[Prediction]:
    """Classify image files (or `Upload`s), yielding one Prediction per path in input order, as
    soon as ready.

    Each worker thread takes a whole batch through decode (the decoders release the GIL),
    preprocessing (the C kernel releases it) and a single-threaded invoke on its own
    interpreter (which releases it too), so independent batches run in parallel on all
    cores. Two batches per worker are in flight at most, each image is resized into its
    batch as soon as it is decoded, and a path is read from `paths` only when its batch is
    due: memory stays flat however many paths stream in, whatever their sizes.

    `batch_size`: images per batch (default: `classifier.max_batch`; at most
    `classifier.batch_limit`). `workers`: threads (default and maximum: the usable CPUs). Create `classifier` with `threads=1` for this: the parallelism is across batches.
    `timeout`: seconds a batch may take (None: no limit); past it, ModelTimeout.
    An unreadable file yields a Prediction with `.error`.
    """
    k = check_top_k(top_k, len(classifier.labels))
    batch_size = min(positive_int("batch size", batch_size if batch_size is not None else classifier.max_batch), classifier.batch_limit)
    workers = min(positive_int("workers", workers if workers is not None else usable_cpus()), usable_cpus())
    chunks = _chunks((p if isinstance(p, Upload) else os.fspath(p) for p in paths), batch_size)
    pool = classifier.workers(workers)
    pending: list[_Job] = []
    try:
        for chunk in chunks:
            pending.append(pool.submit(classify_chunk, classifier, chunk, k))
            if len(pending) >= 2 * workers:
                yield from pending.pop(0).result(timeout, classifier)
        while pending:
            yield from pending.pop(0).result(timeout, classifier)
    finally:
        for job in pending:  # the consumer stopped early (error, Ctrl-C, break)
            job.cancelled = True


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(islice(items, size)):
        yield chunk


def classify_chunk(classifier: EdgeClassifier, chunk: list[str | Upload], k: int) -> list[Prediction]:
    """Decode, preprocess and classify one batch of files or uploads; one that cannot be read
    gets a Prediction with its error and leaves the rest of the batch alone."""
    batch = np.empty((len(chunk), *classifier.input_spec.size, 3), classifier.input_spec.dtype)
    errors: list[str | None] = []
    n = 0
    for source in chunk:
        try:
            classifier.prepare([classifier.load(source)], out=batch[n : n + 1], threads=1)
        except BccError as exc:  # ImageDecodeError: unreadable, unsupported, corrupt, too large...
            errors.append(str(exc))
            continue
        errors.append(None)
        n += 1
    probs = classifier.invoke(batch[:n])
    names = [source.name if isinstance(source, Upload) else source for source in chunk]
    good = iter(classifier.to_predictions(probs, [p for p, e in zip(names, errors) if e is None], k, classifier.unfamiliar(batch[:n])))
    return [next(good) if error is None else Prediction(path, error=error) for path, error in zip(names, errors)]


class _Job:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.cancelled = False
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self, timeout: float | None, classifier: EdgeClassifier):
        if not self.done.wait(timeout):
            classifier.cancel()
            raise ModelTimeout(
                f"a batch took longer than {timeout:g} s (--invoke-timeout); the model may never finish "
                f"(e.g. an endless loop in its graph), or this device needs a longer timeout"
            )
        if self.error is not None:
            raise self.error
        return self.value


class _Workers:
    """Daemon threads that run jobs in submission order: a hung model cannot keep the process
    from exiting, and they live as long as their classifier."""

    def __init__(self, count: int):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._count = count
        for i in range(count):
            threading.Thread(target=self._work, args=(self._queue,), name=f"bcc-infer-{i}", daemon=True).start()

    def submit(self, fn, *args) -> _Job:
        job = _Job(fn, args)
        self._queue.put(job)
        return job

    def close(self) -> None:
        for _ in range(self._count):
            self._queue.put(None)

    @staticmethod
    def _work(jobs: queue.SimpleQueue) -> None:  # static: a thread must not keep its pool alive
        while (job := jobs.get()) is not None:
            if not job.cancelled:
                try:
                    job.value = job.fn(*job.args)
                except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                    job.error = exc
            job.done.set()
