"""`bcc-edge infer`: classify image files with a .tflite or .onnx artifact (no TensorFlow)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from bcc_edge.commands import _options as o
from bcc_edge.commands._common import user_errors
from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT, BccError
from bcc_edge.progress import is_terminal


@user_errors
def infer_command(
    inputs: List[str] = typer.Argument(..., metavar="INPUT", help="Image files, directories (recursive), glob patterns, or - to read paths from stdin."),
    model: o.Model = None,
    fmt: str = typer.Option("table", "--format", "-f", help="Output format: table, json, jsonl or csv."),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="Classes to report per image, best first."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write results to FILE (complete or not at all) instead of stdout."),
    threads: o.Threads = None,
    batch: o.Batch = None,
    labels: Optional[str] = typer.Option(None, "--labels", help="Labels for a model without bcc-edge metadata: a file (one per line or a JSON list) or a comma list."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Preprocessing spec JSON (e.g. a run's preprocess.json) for a model without bcc-edge metadata."),
    backend: o.Backend = "auto",
    provider: o.Provider = "cpu",
    invoke_timeout: o.InvokeTimeout = DEFAULT_INVOKE_TIMEOUT,
    review_threshold: o.ReviewThreshold = None,
    no_review: o.NoReview = False,
    no_guard: o.NoGuard = False,
    skip_selftest: o.SkipSelftest = False,
    raw_csv: bool = typer.Option(False, "--raw-csv", help="CSV cells exactly as they are: no ' before cells a spreadsheet would run as a formula (= + - @)."),
) -> None:
    """Classify images; one row per input, with its status: ok, review (referred to a person:
    low confidence or unlike the training images) or error. A file that cannot be read gets an
    error row and the run goes on. The model first proves it reproduces its export (selftest).

    Exit code: 0 all inputs classified (referred ones included), 1 some inputs failed, 2 usage
    or model error (a failed selftest, a batch that exceeds --invoke-timeout).
    """
    from bcc_edge.device.selftest import open_checked
    from bcc_edge.infer import FORMATS, ResultWriter, gather_inputs, open_output, read_labels, read_spec, run_inference
    from bcc_edge.preprocess import usable_cpus
    from bcc_edge.progress import ProgressBar
    from bcc_edge.runtime import default_model

    if fmt not in FORMATS:
        raise BccError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    classifier = open_checked(
        model or default_model(),
        selftest=not skip_selftest,
        labels=read_labels(labels) if labels is not None else None,
        spec=read_spec(str(spec)) if spec is not None else None,
        **o.classifier_options(backend, provider, review_threshold, no_review, no_guard),
    )
    if provider != "cpu":  # what really runs the nodes, which a GPU build may not be
        typer.echo(f"onnxruntime provider: {classifier.provider}", err=True)
    paths, total = gather_inputs(inputs)
    # A bar redrawn between rows printed to the same terminal would garble both.
    show_progress = total is not None and is_terminal(sys.stderr) and not (output is None and is_terminal(sys.stdout))
    progress = ProgressBar(total, desc="infer", enabled=True) if show_progress else None
    try:
        with open_output(str(output) if output else None, sys.stdout) as stream:
            writer = ResultWriter(stream, fmt, min(top_k, len(classifier.labels)), max(len(x) for x in classifier.labels), raw_csv)
            summary = run_inference(classifier, paths, writer, batch, threads or usable_cpus(), progress, invoke_timeout)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly with the shell's SIGPIPE status, and keep
        # Python from complaining while it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(128 + 13) from None
    typer.echo(summary.line(classifier), err=True)
    if summary.failed:
        raise typer.Exit(1)
