"""Batch inference over image files: input expansion, the decode/preprocess/invoke pipeline,
and the result writers behind `bcc-edge infer`. No TensorFlow.

The pipeline keeps every core busy: each worker thread takes a whole batch through decode
(Pillow releases the GIL), preprocessing (the C kernel releases it) and a single-threaded
invoke on its own interpreter (which releases it too). Independent batches in parallel
scale with the cores without the stalls of one multi-threaded interpreter competing with
decoders for the same cores. Batches are consumed in submission order, so results come
out in input order, and only a bounded number are in flight, so memory stays flat however
many paths stream in.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec, usable_cpus
from bcc_edge.progress import ProgressBar
from bcc_edge.rundir import atomic_path
from bcc_edge.runtime import EdgeClassifier, Prediction, check_top_k

FORMATS = ("table", "json", "jsonl", "csv")
_GLOB_CHARS = frozenset("*?[")


# ---------------------------------------------------------------------------- inputs


def expand_inputs(inputs: Sequence[str], stdin: IO[str] | None = None) -> Iterator[str]:
    """Paths to classify, in a stable order.

    Files as given; directories walked recursively (sorted; hidden directories such as
    .git are skipped, hidden files such as .DS_Store are kept so the user sees them
    reported); glob patterns expanded (``**`` recurses); ``-`` reads one path per line from
    `stdin`, lazily, so a long list streams. A path that does not exist is passed on as is:
    it gets its own error row instead of stopping the run.
    """
    for item in inputs:
        if item == "-":
            stream = stdin if stdin is not None else sys.stdin
            for line in stream:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line
        elif os.path.isdir(item):
            yield from _walk(item)
        elif not os.path.exists(item) and _GLOB_CHARS & set(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                yield item  # reported as "no such file": the user sees the pattern matched nothing
            for match in matches:
                if os.path.isdir(match):
                    yield from _walk(match)
                else:
                    yield match
        else:
            yield item


def _walk(root: str) -> Iterator[str]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            yield os.path.join(directory, name)


def read_labels(value: str) -> list[str]:
    """--labels: a file (one label per line, or a JSON list) or a comma-separated list."""
    if os.path.isfile(value):
        text = Path(value).read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            try:
                labels = json.loads(text)
            except json.JSONDecodeError as exc:
                raise BccError(f"{value}: not a valid JSON list of labels ({exc})") from None
            if not isinstance(labels, list):
                raise BccError(f"{value}: expected a JSON list of labels")
            return [str(x) for x in labels]
        return [line.strip() for line in text.splitlines() if line.strip()]
    if "," not in value and (os.sep in value or value.endswith((".txt", ".json"))):
        raise BccError(f"labels file not found: {value}")
    return [x.strip() for x in value.split(",")]


def read_spec(path: str) -> PreprocessSpec:
    """--spec: a JSON file holding PreprocessSpec.to_dict() (e.g. a run's preprocess.json)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BccError(f"spec file not found: {path}") from None
    try:
        return PreprocessSpec.from_json(text)
    except BccError as exc:
        raise BccError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------- pipeline


def iter_predictions(
    classifier: EdgeClassifier,
    paths: Iterable[str | os.PathLike],
    top_k: int = 1,
    batch_size: int | None = None,
    workers: int | None = None,
) -> Iterator[Prediction]:
    """Classify image files, yielding one Prediction per path in input order, as soon as ready.

    `batch_size`: images per interpreter call (default: what the model allows, up to 16).
    `workers`: threads, each taking whole batches from file to probabilities (default: the
    usable CPUs; 1 runs everything on the calling thread). Create `classifier` with
    `threads=1` for this: the parallelism is across batches. An unreadable file yields a
    Prediction with `.error`.
    """
    k = check_top_k(top_k, len(classifier.labels))
    batch_size = _positive("batch size", batch_size if batch_size is not None else classifier.max_batch)
    workers = _positive("workers", workers if workers is not None else usable_cpus())
    chunks = _chunks((os.fspath(p) for p in paths), batch_size)
    if workers == 1:
        for chunk in chunks:
            yield from _classify_chunk(classifier, chunk, k)
        return
    # Two batches in flight per worker: the next one is queued before a worker finishes,
    # and memory stays bounded.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcc-infer") as pool:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_classify_chunk, classifier, chunk, k))
                if len(pending) >= 2 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:  # the consumer stopped early (error, Ctrl-C, break)
                future.cancel()


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BccError(f"{name} must be a positive integer; got {value!r}")
    return value


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _classify_chunk(classifier: EdgeClassifier, chunk: list[str], k: int) -> list[Prediction]:
    """Decode, preprocess and classify one batch of files; a file that cannot be read gets a
    Prediction with its error and leaves the rest of the batch alone."""
    images, errors = [], []
    for path in chunk:
        try:
            images.append(classifier.load(path))
            errors.append(None)
        except BccError as exc:  # ImageDecodeError: corrupt, truncated, empty, not an image...
            errors.append(str(exc))
    probs = classifier.invoke(classifier.prepare(images, threads=1))
    good = iter(classifier.to_predictions(probs, [p for p, e in zip(chunk, errors) if e is None], k))
    return [next(good) if error is None else Prediction(path, error=error) for path, error in zip(chunk, errors)]


# ---------------------------------------------------------------------------- writers


class ResultWriter:
    """Writes Prediction rows in one of FORMATS as they arrive (the JSON array included)."""

    def __init__(self, stream: IO[str], fmt: str, top_k: int, label_width: int = 12):
        if fmt not in FORMATS:
            raise BccError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.stream, self.fmt, self.top_k = stream, fmt, top_k
        self._label_width = label_width
        self._rows = 0
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None

    def begin(self) -> None:
        if self.fmt == "json":
            self.stream.write("[")
        elif self.fmt == "csv":
            header = ["path", "label", "score"]
            for i in range(2, self.top_k + 1):
                header += [f"label_{i}", f"score_{i}"]
            self._csv.writerow(header + ["error"])

    def write(self, prediction: Prediction) -> None:
        row = prediction.to_dict()
        # JSON is written as ASCII: a file name that is not valid UTF-8 (Python holds its bytes
        # as lone surrogates) then round-trips exactly instead of breaking the encoder.
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(row) + "\n")
        elif self.fmt == "json":
            self.stream.write(("," if self._rows else "") + "\n  " + json.dumps(row))
        elif self.fmt == "csv":
            cells = [_printable(prediction.path), prediction.label or "", _fmt_score(prediction.score)]
            for i in range(1, self.top_k):
                label, score = prediction.top_k[i] if i < len(prediction.top_k) else ("", None)
                cells += [label, _fmt_score(score)]
            self._csv.writerow(cells + [_printable(prediction.error or "")])
        else:
            self.stream.write(self._table_line(prediction) + "\n")
        self._rows += 1

    def _table_line(self, p: Prediction) -> str:
        # Path last: it is the one column whose width is unknown while streaming.
        path = _printable(p.path)
        if p.error is not None:
            return f"{'ERROR':<{self._label_width}}  {'':>6}  {path}  ({_printable(p.error)})"
        others = ", ".join(f"{label} {score:.3f}" for label, score in p.top_k[1:])
        return f"{p.label:<{self._label_width}}  {p.score:6.3f}  {path}" + (f"  [{others}]" if others else "")

    def end(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self._rows else "]\n")

    def flush(self) -> None:
        self.stream.flush()


def _printable(text: str) -> str:
    """`text` with the bytes of a non-UTF-8 file name shown as \\xNN escapes, so that writing
    it to a strict UTF-8 stream cannot fail."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _fmt_score(score: float | None) -> str:
    return "" if score is None else f"{score:.6f}"


@contextmanager
def open_output(path: str | None, stdout: IO[str]) -> Iterator[IO[str]]:
    """stdout, or a temp file beside `path` renamed over it only when the run completes,
    so an interrupted run never leaves a half-written result file."""
    if path is None or path == "-":
        yield stdout
        return
    target = Path(path)
    if target.is_dir():
        raise BccError(f"--output is a directory: {target}")
    if not target.parent.is_dir():
        raise BccError(f"--output directory does not exist: {target.parent}")
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        yield f


# ---------------------------------------------------------------------------- the run


def run_inference(
    classifier: EdgeClassifier,
    paths: Iterable[str],
    writer: ResultWriter,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: ProgressBar | None = None,
) -> tuple[int, int]:
    """Classify `paths` and write each row as it is ready: (rows written, rows that failed)."""
    done = failed = 0
    writer.begin()
    streaming = writer.fmt != "json"
    try:
        last_flush = time.monotonic()
        for prediction in iter_predictions(classifier, paths, writer.top_k, batch_size, workers):
            writer.write(prediction)
            done += 1
            failed += prediction.error is not None
            if progress is not None:
                progress.update(1, postfix=f"{failed} failed" if failed else None)
            # Flush a streaming format often enough that a reader downstream sees rows arrive,
            # but not per row: a flush is a system call.
            if streaming and time.monotonic() - last_flush > 0.1:
                writer.flush()
                last_flush = time.monotonic()
        writer.end()
        writer.flush()
    finally:
        if progress is not None:
            progress.close()
    return done, failed


def describe(classifier: EdgeClassifier) -> str:
    """One line about the model, for logs and the bench."""
    spec = classifier.input_spec
    meta = classifier.metadata or {}
    name = meta.get("model_name", Path(classifier.path).stem)
    return (
        f"{name} ({classifier.format}, {classifier.precision}, {classifier.backend}) "
        f"{spec.size[0]}x{spec.size[1]} {spec.output} input, {len(classifier.labels)} classes"
    )

