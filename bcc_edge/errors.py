"""Errors a user can cause. The CLI prints them as one line and exits non-zero; no traceback."""

from __future__ import annotations

from typing import Any

# An error line quotes untrusted text (file names, model metadata, backend messages): a crafted
# file can make that text megabytes long or full of terminal escapes, so every line is bounded.
MAX_MESSAGE_CHARS = 400


class BccError(Exception):
    """A problem with the user's input (paths, options, data, artifacts)."""

    exit_code = 2


# Seconds a batch may take from its first decode to its last output before a run is stopped
# with ModelTimeout: generous for a slow board, short of hanging a service forever.
DEFAULT_INVOKE_TIMEOUT = 120.0


class ModelTimeout(BccError):
    """A model did not finish within its invoke timeout (a graph that loops forever, or a
    device far slower than the timeout allows). The thread running it may still be busy."""


def utf8_safe(text: str) -> str:
    """`text` with the bytes of a non-UTF-8 file name (which Python holds as lone surrogates)
    shown as \\xNN escapes, so that writing it to a strict UTF-8 stream cannot fail."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """`text` safe to print on one terminal line: `utf8_safe`, and control characters
    (newlines, escape sequences) shown as backslash escapes."""
    text = utf8_safe(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS, lines: int = 1) -> str:
    """The first `lines` non-blank lines of `text` joined into one, printable, cut to `limit`
    characters."""
    kept = [line.strip() for line in text.splitlines() if line.strip()][:lines]
    line = printable(" ".join(kept))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def first_line(exc: BaseException, lines: int = 1) -> str:
    """What a foreign exception (a backend, a converter) says, in one bounded line (its first
    `lines` lines: a converter names the failing op on the second); its type name when it
    says nothing."""
    return one_line(str(exc), lines=lines) or type(exc).__name__


def positive_int(name: str, value: Any, error: type[Exception] = BccError) -> int:
    """`value` when it is a positive integer (bool excluded), else `error` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{name} must be a positive integer; got {value!r}")
    return value
