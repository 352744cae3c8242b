"""`bcc-edge infer` around the pipeline (`runtime.iter_predictions`): input expansion, the
result writers and the run. No TensorFlow.

Everything written is safe to open: CSV quotes every field that needs it and neutralises
cells a spreadsheet would run as a formula (OWASP: a leading = + - @ tab or carriage return
gets a ' in front; `raw_csv` turns that off), and the table shows control characters in
file names and labels escaped, so a crafted name cannot rewrite the terminal.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT, BccError, printable, utf8_safe
from bcc_edge.fileio import atomic_path, csv_line, writable_target
from bcc_edge.preprocess import PreprocessSpec
from bcc_edge.progress import ProgressBar
from bcc_edge.device.scores import REASON_OUT_OF_DISTRIBUTION
from bcc_edge.runtime import EdgeClassifier, Prediction, iter_predictions

FORMATS = ("table", "json", "jsonl", "csv")
_GLOB_CHARS = frozenset("*?[")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def gather_inputs(inputs: Sequence[str], stdin: IO[str] | None = None) -> tuple[Iterator[str], int | None]:
    """(paths, how many or None when streamed from stdin) for a run; a BccError when nothing
    is found. A list of files and folders is expanded up front so a progress bar knows the
    total; `-` streams, only checking that a first path arrives."""
    paths = expand_inputs(inputs, stdin)
    if "-" in inputs:
        first = next(paths, None)
        if first is None:
            raise BccError("no input files found in " + " ".join(inputs))
        return itertools.chain([first], paths), None
    found = list(paths)
    if not found:
        raise BccError("no input files found in " + " ".join(inputs))
    return iter(found), len(found)


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


# ---------------------------------------------------------------------------- writers


class ResultWriter:
    """Writes Prediction rows in one of FORMATS as they arrive (the JSON array included).
    `raw_csv`: CSV cells exactly as they are, formulas included (module docstring)."""

    def __init__(self, stream: IO[str], fmt: str, top_k: int, label_width: int = 12, raw_csv: bool = False):
        if fmt not in FORMATS:
            raise BccError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.stream, self.fmt, self.top_k = stream, fmt, top_k
        self._label_width = min(label_width, 24)
        self._rows = 0
        self._cell = utf8_safe if raw_csv else csv_cell

    def begin(self) -> None:
        if self.fmt == "json":
            self.stream.write("[")
        elif self.fmt == "csv":
            header = ["path", "label", "score"]
            for i in range(2, self.top_k + 1):
                header += [f"label_{i}", f"score_{i}"]
            self.stream.write(csv_line(header + ["status", "reasons", "error"]))

    def write(self, prediction: Prediction) -> None:
        row = prediction.to_dict()
        # JSON is written as ASCII: a file name that is not valid UTF-8 (Python holds its bytes
        # as lone surrogates) then round-trips exactly instead of breaking the encoder.
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(row) + "\n")
        elif self.fmt == "json":
            self.stream.write(("," if self._rows else "") + "\n  " + json.dumps(row))
        elif self.fmt == "csv":
            cells = [prediction.path, prediction.label or "", _fmt_score(prediction.score)]
            for i in range(1, self.top_k):
                label, score = prediction.top_k[i] if i < len(prediction.top_k) else ("", None)
                cells += [label, _fmt_score(score)]
            cells += [prediction.status, ";".join(prediction.reasons), prediction.error or ""]
            self.stream.write(csv_line(self._cell(cell) for cell in cells))
        else:
            self.stream.write(self._table_line(prediction) + "\n")
        self._rows += 1

    def _table_line(self, p: Prediction) -> str:
        # Path last: it is the one column whose width is unknown while streaming. A referred
        # row says REVIEW and why, before the path.
        path = printable(p.path)
        if p.error is not None:
            return f"{'ERROR':<{self._label_width}}  {'':>6}  {'':<6}  {path}  ({printable(p.error)})"
        others = ", ".join(f"{printable(label)} {score:.3f}" for label, score in p.top_k[1:])
        mark = "REVIEW" if p.status == "review" else ""
        why = f"  ({', '.join(p.reasons)})" if p.reasons else ""
        return f"{printable(p.label):<{self._label_width}}  {p.score:6.3f}  {mark:<6}  {path}{why}" + (f"  [{others}]" if others else "")

    def end(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self._rows else "]\n")

    def flush(self) -> None:
        self.stream.flush()


def csv_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ tab or carriage return gets a
    ' in front (OWASP's CSV-injection advice), numbers are left alone."""
    text = utf8_safe(text)
    if text.startswith(_FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fmt_score(score: float | None) -> str:
    return "" if score is None else f"{score:.6f}"


@contextmanager
def open_output(path: str | None, stdout: IO[str]) -> Iterator[IO[str]]:
    """stdout, or a temp file beside `path` renamed over it only when the run completes, so
    an interrupted run never leaves a half-written result file. Only a regular file or a new
    path is written; a symbolic link is followed and stays a link (`fileio.writable_target`)."""
    if path is None or path == "-":
        yield stdout
        return
    try:
        writable_target(path)
    except BccError as exc:
        raise BccError(f"--output: {exc}") from None
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        yield f


# ---------------------------------------------------------------------------- the run


@dataclass
class RunSummary:
    """What a run did: rows written, failed, referred for review, flagged by the input guard."""

    done: int = 0
    failed: int = 0
    review: int = 0
    unfamiliar: int = 0

    def add(self, p: Prediction) -> None:
        self.done += 1
        self.failed += p.error is not None
        self.review += p.status == "review"
        self.unfamiliar += REASON_OUT_OF_DISTRIBUTION in p.reasons

    def line(self, classifier: EdgeClassifier) -> str:
        """The stderr summary: referrals, and a drift warning past the guard's share."""
        classified = self.done - self.failed
        text = f"{classified} of {self.done} inputs classified, {self.review} of them referred for review"
        if self.failed:
            text = f"{self.failed} of {self.done} inputs could not be classified; " + text
        if classifier.guard is not None and classified:
            share = self.unfamiliar / classified
            text += f"; {self.unfamiliar} ({share:.1%}) unlike the training images"
            if share > classifier.guard.warn_share:
                text += f" -- WARNING: more than {classifier.guard.warn_share:.0%}: another stain, scanner or focus? Check before trusting the counts"
        return text


def run_inference(
    classifier: EdgeClassifier,
    paths: Iterable[str],
    writer: ResultWriter,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: ProgressBar | None = None,
    invoke_timeout: float | None = DEFAULT_INVOKE_TIMEOUT,
) -> RunSummary:
    """Classify `paths` and write each row as it is ready."""
    summary = RunSummary()
    writer.begin()
    streaming = writer.fmt != "json"
    try:
        last_flush = time.monotonic()
        for prediction in iter_predictions(classifier, paths, writer.top_k, batch_size, workers, invoke_timeout):
            writer.write(prediction)
            summary.add(prediction)
            if progress is not None:
                progress.update(1, postfix=f"{summary.failed} failed" if summary.failed else None)
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
    return summary


def describe(classifier: EdgeClassifier) -> str:
    """One line about the model, for logs and the bench."""
    spec = classifier.input_spec
    meta = classifier.metadata or {}
    name = printable(str(meta.get("model_name", Path(classifier.path).stem)))
    return (
        f"{name} ({classifier.format}, {classifier.precision}, {classifier.backend}) "
        f"{spec.size[0]}x{spec.size[1]} {spec.output} input, {len(classifier.labels)} classes"
    )

