"""A small progress bar: redraws in place on a terminal, stays silent otherwise.

Callers that want a record in logs print their own one-line summary when a phase ends
(`ProgressBar.close(summary)` prints it in both modes), so CI logs get one line per epoch
instead of thousands of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_REDRAW_SECONDS = 0.1
_BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """`total` steps of `items_per_step` items each (e.g. batches of images).

    `enabled=None` draws only when `stream` is a terminal.
    """

    def __init__(
        self,
        total: int,
        desc: str = "",
        unit: str = "img",
        items_per_step: int = 1,
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ):
        self.total = max(0, int(total))
        self.desc = desc
        self.unit = unit
        self.items_per_step = items_per_step
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self.stream) if enabled is None else enabled
        self.done = 0
        self.postfix = ""
        self.start = time.perf_counter()
        self._last_draw = 0.0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        """Items per second so far."""
        elapsed = self.elapsed
        return self.done * self.items_per_step / elapsed if elapsed > 0 else 0.0

    def due(self, steps: int = 1) -> bool:
        """Whether `update(steps)` will redraw: compute an expensive postfix only then."""
        if not self.enabled:
            return False
        return time.perf_counter() - self._last_draw >= _REDRAW_SECONDS or self.done + steps >= self.total

    def update(self, steps: int = 1, postfix: str | None = None) -> None:
        self.done += steps
        if postfix is not None:
            self.postfix = postfix
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw >= _REDRAW_SECONDS or self.done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self.render() + "\x1b[K")
            self.stream.flush()

    def render(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(round(_BAR_WIDTH * min(1.0, fraction)))
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        rate = self.rate
        remaining = (self.total - self.done) * self.items_per_step / rate if rate > 0 else 0.0
        parts = [f"{self.desc} [{bar}] {self.done}/{self.total}", f"{rate:,.0f} {self.unit}/s", f"ETA {format_duration(remaining)}"]
        if self.postfix:
            parts.append(self.postfix)
        return "  ".join(part for part in parts if part)

    def close(self, summary: str | None = None) -> None:
        """Erase the bar and print `summary` (in both modes) when given."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
        if summary:
            self.stream.write(summary + "\n")
        self.stream.flush()


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
