"""Files written safely, on the workstation and on the device alike: complete or not at all,
only where a regular file belongs, with CSV that every reader splits the same way.

Every writer goes through `atomic_path`: the bytes go to a hidden temporary file beside the
target, which replaces the target only when the block finishes without an exception, so a
run killed at any moment leaves each file either complete or as it was. An interrupted run
(Ctrl-C, or SIGTERM once `terminate_as_exit` is installed) removes its temporary file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import stat
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

from bcc_edge.errors import BccError

_CSV_SPECIAL = frozenset(',"\r\n')
# Exit status of a process ended by SIGTERM, as the shell reports it.
TERMINATED_EXIT = 128 + signal.SIGTERM


def writable_target(path: str | os.PathLike) -> Path:
    """Where writing `path` will really land: `path` itself, or the file a symbolic link at
    `path` points to (followed deliberately, so the link stays a link). Refuses what is not a
    regular file or a new path: a directory, a FIFO, a device, a socket, a dangling link."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise BccError(f"{path} is a symbolic link to {target}, which does not exist") from None
        if not target.parent.is_dir():
            raise BccError(f"directory does not exist: {target.parent}")
        return target
    except OSError as exc:
        raise BccError(f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise BccError(f"{path} is a directory")
    if not stat.S_ISREG(mode):
        raise BccError(f"{path} is not a regular file (a FIFO, device or socket); refusing to replace it")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an unused temporary path beside the file `path` will write (see `writable_target`;
    same suffix, so writers that check it accept it); it replaces that file only when the
    block finishes without an exception. A replaced file keeps its permission bits; a new one
    gets the usual umask permissions (mkstemp would make it private)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    target = writable_target(path)
    tmp_path = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield tmp_path
        if target.exists():
            os.chmod(tmp_path, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


class AppendLog:
    """A file that only grows, one whole record per `write` (results of `bcc-edge watch`, its
    state, the review log of `serve`).

    Each record is a single write(2) on an O_APPEND descriptor, so a reader, or another writer,
    never sees half of one. `header` is written when the file is new or empty. A record torn by
    a power cut (no final newline) was never complete: it is cut off when the log is opened
    again, so the next record starts on a line of its own.
    """

    def __init__(self, path: str | os.PathLike, header: str = ""):
        target = writable_target(path)
        self._fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            self._cut_torn_record()
            if header and os.fstat(self._fd).st_size == 0:
                self.write(header)
        except BaseException:
            os.close(self._fd)
            raise

    def _cut_torn_record(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        tail = os.pread(self._fd, min(size, 1 << 20), max(0, size - (1 << 20)))  # records are short
        os.ftruncate(self._fd, size - len(tail) + tail.rfind(b"\n") + 1)

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        while data:  # a regular file takes it all at once unless the disk is full
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "AppendLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def csv_line(cells: Iterable[Any]) -> str:
    """One CSV record (RFC 4180 quoting, "\\n" ending). Python's csv module leaves a lone "\\r"
    unquoted when the line ends in "\\n", and readers then split the record in two."""
    out = []
    for cell in cells:
        text = "" if cell is None else str(cell)
        if _CSV_SPECIAL.intersection(text):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out) + "\n"


def csv_text(columns: tuple[str, ...], rows: Iterable[Iterable[Any]]) -> str:
    return csv_line(columns) + "".join(csv_line(row) for row in rows)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM (a service manager stopping us, `kill`) raises SystemExit on
    the main thread like Ctrl-C raises KeyboardInterrupt, so `finally` blocks (temporary
    files, checkpoints) run instead of the process vanishing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(TERMINATED_EXIT)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
