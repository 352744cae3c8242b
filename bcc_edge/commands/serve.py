"""`bcc-edge serve`: the microscope station's page and HTTP API (the [serve] extra; no TensorFlow).
FastAPI is imported only when the command runs, so the other commands never load it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bcc_edge.commands import _options as o
from bcc_edge.commands._common import user_errors
from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT, BccError


@user_errors
def serve_command(
    model: o.Model = None,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but loopback needs --token."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="BCC_EDGE_TOKEN", help="Require 'Authorization: Bearer TOKEN' on every API call (or set BCC_EDGE_TOKEN, which ps does not show)."),
    max_upload_mb: Optional[float] = typer.Option(None, "--max-upload-mb", min=0.01, help="Largest request body, in MiB (413 above it) \\[default: 20]."),
    threads: o.Threads = None,
    queue: Optional[int] = typer.Option(None, "--queue", min=1, help="Requests in the server at once (being read, waiting or classified); more get 503 with Retry-After \\[default: 16]."),
    review_dir: Optional[Path] = typer.Option(None, "--review-dir", help="Store the reviewers' labels here as <label>/<sha256>.<ext> plus reviews.csv (a folder bcc-edge train --data reads)."),
    backend: o.Backend = "auto",
    provider: o.Provider = "cpu",
    invoke_timeout: o.InvokeTimeout = DEFAULT_INVOKE_TIMEOUT,
    review_threshold: o.ReviewThreshold = None,
    no_review: o.NoReview = False,
    no_guard: o.NoGuard = False,
    skip_selftest: o.SkipSelftest = False,
) -> None:
    """Serve a page (drop images, see each cell's label, score and status, review the referred
    ones, the running differential count) and an HTTP API (/docs) on this machine. Listens on
    127.0.0.1 unless --host (with --token) says otherwise. Stop it with Ctrl-C or SIGTERM.

    Exit code: 143 stopped by SIGTERM, 130 by Ctrl-C; 2 usage or model error (a failed
    selftest, a busy port, a non-loopback --host without --token).
    """
    try:
        from bcc_edge.device.serve.server import check_bind, serve
    except ImportError as exc:
        raise BccError(f"bcc-edge serve needs the [serve] extra: pip install 'bcc-edge[serve]' ({exc})") from None
    from bcc_edge.runtime import EdgeClassifier, default_model

    check_bind(host, token)  # before the model loads: a refusal is immediate
    classifier = EdgeClassifier(model or default_model(), **o.classifier_options(backend, provider, review_threshold, no_review, no_guard))
    given = {"max_upload_bytes": int(max_upload_mb * 1024 * 1024) if max_upload_mb is not None else None, "queue": queue}
    serve(
        classifier, host, port, token, selftest=not skip_selftest, review_dir=review_dir, workers=threads, invoke_timeout=invoke_timeout,
        **{k: v for k, v in given.items() if v is not None},  # unset: the library's defaults
    )
