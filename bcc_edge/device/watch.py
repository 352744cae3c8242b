"""`bcc-edge watch`: classify each image that arrives in a folder, once, as the capture
software writes it.

- Polling (os.scandir every POLL_SECONDS), not inotify: no dependency, and it works the same on
  network shares and every OS, where inotify misses writes made by another machine. A scan
  stats each file, so a folder of 10 000 images costs a few milliseconds per poll.
- A file is classified once its size and modification time have stayed the same for `settle`
  seconds, as this process saw them (never by comparing the file's mtime with our clock: a
  network share's clock may differ). A file renamed into the folder is taken the same way; one
  deleted before it settled is forgotten.
- Only image names count (`decode.IMAGE_EXTENSIONS`; the decoder then trusts the content, not
  the name), so partial downloads and temporary files (*.tmp, *.part, *.jpg~) are ignored, and
  so are hidden files and folders (dotfiles, the results' own temporary files). Subfolders are
  watched too.
- Results are infer's CSV rows, appended one whole line per write (`fileio.AppendLog`); the
  running count (`device.count.Tally`, rebuilt from the results after a restart) is rewritten
  atomically after each batch.
- The state file (`<output>.watch-state`, JSON lines) records each classified file by its path
  in the folder, size and mtime, written right after its row. Why not a checksum: a restart
  over a folder of 100 000 images then costs a stat per file, not a read of every byte; a file
  replaced under the same name is a new capture and is classified again. The state's first
  line names the model (sha256): results from two models are never mixed in one file. A
  SIGKILL or power cut between a row and its state line repeats that one row after a restart;
  no row is ever lost.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Iterator

from bcc_edge.decode import IMAGE_EXTENSIONS
from bcc_edge.device.count import Tally
from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT, BccError
from bcc_edge.fileio import AppendLog, file_sha256, write_json
from bcc_edge.infer import ResultWriter, RunSummary
from bcc_edge.runtime import EdgeClassifier, Prediction, check_top_k, iter_predictions

POLL_SECONDS = 0.5
DEFAULT_SETTLE = 2.0
STATE_SUFFIX = ".watch-state"

Key = tuple[str, int, int]  # path relative to the folder, size, mtime_ns


def watch(
    classifier: EdgeClassifier,
    directory: str | os.PathLike,
    output: str | os.PathLike,
    count: str | os.PathLike | None = None,
    stop: threading.Event | None = None,
    settle: float = DEFAULT_SETTLE,
    poll: float = POLL_SECONDS,
    top_k: int = 1,
    workers: int | None = None,
    invoke_timeout: float | None = DEFAULT_INVOKE_TIMEOUT,
) -> RunSummary:
    """Classify the images arriving under `directory` until `stop` is set (module docstring);
    returns what this session classified."""
    if not os.path.isdir(directory):
        raise BccError(f"not a directory: {directory}")
    k = check_top_k(top_k, len(classifier.labels))
    header = _csv(k)
    state_path = f"{output}{STATE_SUFFIX}"
    model_line = json.dumps({"model_sha256": file_sha256(classifier.path)}) + "\n"
    _check_first_line(output, header, "has other columns (another --top-k?)")
    _check_first_line(state_path, model_line, "records another model's results")
    done, tally = _resume(classifier, output, state_path)
    stop = stop or threading.Event()
    summary = RunSummary()
    pending: dict[str, tuple[tuple[int, int], float]] = {}
    with AppendLog(output, header) as results, AppendLog(state_path, model_line) as state:
        if count is not None:
            write_json(count, tally.document())
        while not stop.is_set():
            ready = _settled(dict(_scan(directory)), done, pending, settle)
            paths = [os.path.join(directory, key[0]) for key in ready]
            for key, prediction in zip(ready, iter_predictions(classifier, paths, k, workers=workers, timeout=invoke_timeout)):
                if prediction.error is not None and not os.path.exists(os.path.join(directory, key[0])):
                    continue  # deleted while it was read: nothing to record
                results.write(_csv(k, prediction))
                state.write(json.dumps({"path": key[0], "size": key[1], "mtime_ns": key[2]}) + "\n")
                done.add(key)
                pending.pop(key[0], None)
                tally.add(prediction)
                summary.add(prediction)
                if stop.is_set():
                    break
            if ready and count is not None:
                write_json(count, tally.document())
            stop.wait(poll)
    return summary


def _settled(found: dict[str, tuple[int, int]], done: set[Key], pending: dict[str, tuple[tuple[int, int], float]], settle: float) -> list[Key]:
    """The files of `found` not yet classified whose (size, mtime) has not changed for `settle`
    seconds, in name order. `pending` holds each other file's signature and since when it has
    been seen unchanged; a file gone before it settled is dropped from it."""
    now = time.monotonic()
    ready = []
    for rel, signature in sorted(found.items()):
        if (rel, *signature) in done:
            continue
        seen = pending.get(rel)
        if seen is None or seen[0] != signature:
            pending[rel] = (signature, now)
        elif now - seen[1] >= settle:
            ready.append((rel, *signature))
    for rel in pending.keys() - found.keys():
        del pending[rel]
    return ready


def _scan(directory: str | os.PathLike, prefix: str = "") -> Iterator[tuple[str, tuple[int, int]]]:
    """(path relative to the folder, (size, mtime_ns)) of every image file; hidden names skipped."""
    try:
        entries = list(os.scandir(directory))
    except OSError:  # a subfolder removed or unreadable while it was scanned
        return
    for entry in entries:
        name = entry.name
        if name.startswith((".", "~")):
            continue
        try:
            if entry.is_dir():
                yield from _scan(entry.path, f"{prefix}{name}/")
                continue
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            info = entry.stat()
        except OSError:  # gone between the listing and the stat
            continue
        if stat.S_ISREG(info.st_mode):
            yield f"{prefix}{name}", (info.st_size, info.st_mtime_ns)


def _csv(k: int, prediction: Prediction | None = None) -> str:
    """infer's CSV header, or one row: one home for the columns (`infer.ResultWriter`)."""
    text = io.StringIO()
    writer = ResultWriter(text, "csv", k)
    if prediction is None:
        writer.begin()
    else:
        writer.write(prediction)
    return text.getvalue()


def _check_first_line(path: str | os.PathLike, expected: str, problem: str) -> None:
    """A file this watch appends to must have been started by the same kind of run."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            first = f.readline()
    except FileNotFoundError:
        return
    except (IsADirectoryError, UnicodeDecodeError):
        raise BccError(f"{path} is not a file bcc-edge watch wrote; choose another --output") from None
    if first and first != expected:
        raise BccError(f"{path} {problem}; choose another --output")


def _resume(classifier: EdgeClassifier, output: str | os.PathLike, state_path: str) -> tuple[set[Key], Tally]:
    """The files already classified (from the state file) and the count of the rows already
    written, so a restart goes on where the last run stopped."""
    done: set[Key] = set()
    try:
        with open(state_path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    done.add((entry["path"], entry["size"], entry["mtime_ns"]))
                except (ValueError, KeyError, TypeError):
                    continue  # the model line, or a line torn by a power cut
    except FileNotFoundError:
        pass
    tally = Tally(classifier)
    if os.path.isfile(output):
        with open(output, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                reasons = tuple(r for r in (row.get("reasons") or "").split(";") if r)
                error = row.get("error") or None
                tally.add(Prediction(row.get("path") or "", row.get("label") or None, status=row.get("status") or "ok", reasons=reasons, error=error))
    return done, tally

