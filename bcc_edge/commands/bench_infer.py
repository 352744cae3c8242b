"""`bcc-edge bench infer`: per-stage latency and end-to-end throughput against a naive loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from bcc_edge.commands._common import user_errors


@user_errors
def bench_infer_command(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A .tflite or .onnx artifact (default: the bundled model)."),
    images: Optional[Path] = typer.Option(None, "--images", help="A directory of images (default: synthetic 360x363 JPEGs in a temp dir)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="Threads for the multi-threaded run (default: all usable cores)."),
    batch: Optional[int] = typer.Option(None, "--batch", "-b", min=1, help="Images per interpreter call in the pipeline."),
    seconds: float = typer.Option(2.0, "--seconds", min=0.1, help="About how long each throughput contender runs, in seconds."),
    backend: str = typer.Option("auto", "--backend", help="auto, litert, tflite-runtime or onnxruntime."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Time decode, preprocess and invoke (p50/p95/p99), images/s end to end, and a naive baseline."""
    from bcc_edge.bench.infer import format_report, run_bench
    from bcc_edge.preprocess import usable_cpus
    from bcc_edge.runtime import default_model

    log = None if as_json else (lambda message: typer.echo(message, err=True))
    result = run_bench(
        model or default_model(), images, threads=threads or usable_cpus(), batch_size=batch, seconds=seconds, backend=backend, log=log
    )
    typer.echo(json.dumps(result, indent=2) if as_json else format_report(result))
