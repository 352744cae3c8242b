"""`bcc-edge infer`: classify image files with a .tflite or .onnx artifact (no TensorFlow)."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from bcc_edge.commands._common import user_errors
from bcc_edge.progress import is_terminal
from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT, BccError


@user_errors
def infer_command(
    inputs: List[str] = typer.Argument(..., metavar="INPUT", help="Image files, directories (recursive), glob patterns, or - to read paths from stdin."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A .tflite or .onnx artifact from `bcc-edge export` (default: the bundled model)."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output format: table, json, jsonl or csv."),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="Classes to report per image, best first."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write results to FILE (complete or not at all) instead of stdout."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads to use (default: all usable cores)."),
    batch: Optional[int] = typer.Option(None, "--batch", "-b", min=1, help="Images per interpreter call (default: 16, or 1 for a fixed-batch model)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Labels for a model without bcc-edge metadata: a file (one per line or a JSON list) or a comma list."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Preprocessing spec JSON (e.g. a run's preprocess.json) for a model without bcc-edge metadata."),
    backend: str = typer.Option("auto", "--backend", help="auto, litert, tflite-runtime or onnxruntime."),
    provider: str = typer.Option("cpu", "--provider", help="onnxruntime execution provider for .onnx models: cpu, cuda or tensorrt (a Jetson's GPU)."),
    invoke_timeout: float = typer.Option(DEFAULT_INVOKE_TIMEOUT, "--invoke-timeout", min=0.1, help="Seconds a batch may take before the run is stopped with exit 2 (a model that never finishes)."),
    raw_csv: bool = typer.Option(False, "--raw-csv", help="CSV cells exactly as they are: no ' before cells a spreadsheet would run as a formula (= + - @)."),
) -> None:
    """Classify images; one row per input. A file that cannot be read gets an error row and is skipped.

    Exit code: 0 all inputs classified, 1 some inputs failed, 2 usage or model error
    (including a batch that exceeds --invoke-timeout).
    """
    from bcc_edge.infer import FORMATS, ResultWriter, expand_inputs, open_output, read_labels, read_spec, run_inference
    from bcc_edge.preprocess import usable_cpus
    from bcc_edge.progress import ProgressBar
    from bcc_edge.runtime import EdgeClassifier, default_model

    if fmt not in FORMATS:
        raise BccError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    classifier = EdgeClassifier(
        model or default_model(),
        threads=1,  # parallel across batches: one single-threaded interpreter per worker
        backend=backend,
        labels=read_labels(labels) if labels is not None else None,
        spec=read_spec(str(spec)) if spec is not None else None,
        provider=provider,
    )
    paths = expand_inputs(inputs)
    total = None
    if "-" in inputs:  # streamed: only check that something arrives
        first = next(paths, None)
        paths = itertools.chain([first], paths) if first is not None else None
    else:  # a known total lets the progress bar show how far along the run is
        paths = list(paths) or None
        total = len(paths or ())
    if paths is None:
        raise BccError("no input files found in " + " ".join(inputs))

    # A bar redrawn between rows printed to the same terminal would garble both.
    show_progress = total is not None and is_terminal(sys.stderr) and not (output is None and is_terminal(sys.stdout))
    progress = ProgressBar(total, desc="infer", enabled=True) if show_progress else None
    try:
        with open_output(str(output) if output else None, sys.stdout) as stream:
            writer = ResultWriter(stream, fmt, min(top_k, len(classifier.labels)), max(len(x) for x in classifier.labels), raw_csv)
            done, failed = run_inference(classifier, paths, writer, batch, threads or usable_cpus(), progress, invoke_timeout)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly with the shell's SIGPIPE status, and keep
        # Python from complaining while it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(128 + 13) from None
    if failed:
        typer.echo(f"{failed} of {done} inputs could not be classified", err=True)
        raise typer.Exit(1)
