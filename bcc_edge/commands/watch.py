"""`bcc-edge watch`: classify each image that arrives in a folder, once (no TensorFlow)."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Iterator, Optional

import typer

from bcc_edge.commands import _options as o
from bcc_edge.commands._common import user_errors
from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT


@user_errors
def watch_command(
    directory: Path = typer.Argument(..., metavar="DIR", help="The folder the capture software writes images into (subfolders included)."),
    output: Path = typer.Option(Path("results.csv"), "--output", "-o", help="CSV the rows are appended to (infer's columns); its state is kept beside it in OUTPUT.watch-state."),
    count: Optional[Path] = typer.Option(None, "--count", help="Keep the running differential count in this JSON file (count's document, rewritten after each batch)."),
    settle: Optional[float] = typer.Option(None, "--settle", min=0.1, help="Seconds a file's size and time must stay unchanged before it is read (slow writers need more) \\[default: 2.0]."),
    model: o.Model = None,
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="Classes to report per image, best first."),
    threads: o.Threads = None,
    backend: o.Backend = "auto",
    provider: o.Provider = "cpu",
    invoke_timeout: o.InvokeTimeout = DEFAULT_INVOKE_TIMEOUT,
    review_threshold: o.ReviewThreshold = None,
    no_review: o.NoReview = False,
    no_guard: o.NoGuard = False,
    skip_selftest: o.SkipSelftest = False,
) -> None:
    """Classify each new image in DIR once it is completely written, appending its row to
    --output; a restart goes on where the last run stopped, never classifying a file twice.
    Hidden and temporary files are ignored. Ctrl-C or SIGTERM stops it after the current image.

    Exit code: 0 stopped by Ctrl-C / SIGTERM, 2 usage or model error.
    """
    from bcc_edge.device.selftest import open_checked
    from bcc_edge.device.watch import watch
    from bcc_edge.runtime import default_model

    classifier = open_checked(
        model or default_model(), selftest=not skip_selftest, **o.classifier_options(backend, provider, review_threshold, no_review, no_guard)
    )
    stop = threading.Event()
    typer.echo(f"watching {directory}: rows to {output} (Ctrl-C to stop)", err=True)
    with _stop_on_signals(stop):
        given = {"settle": settle} if settle is not None else {}  # unset: the library's default
        summary = watch(classifier, directory, output, count, stop, top_k=top_k, workers=threads, invoke_timeout=invoke_timeout, **given)
    typer.echo(f"stopped: {summary.line(classifier)}", err=True)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop`, so the image in progress gets its row and its state line;
    a second one interrupts at once."""

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
