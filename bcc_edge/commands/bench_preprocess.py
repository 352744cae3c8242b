"""`bcc-edge bench preprocess`: the C kernel against OpenCV (tuned, dnn, naive), Pillow and the
memory floor, ratios from one run."""

from __future__ import annotations

import json
from typing import Optional

import typer

from bcc_edge.commands._common import user_errors


@user_errors
def bench_preprocess_command(
    batch: int = typer.Option(64, "--batch", "-b", min=1, help="Images per batch in the all-cores run."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="Threads for the batch run \\[default: all usable cores]."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Interleaved rounds per case; each contender keeps its best."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Microseconds per image: fused C resize+normalise vs tuned OpenCV, cv2.dnn.blobFromImage, OpenCV and Pillow + numpy, and the memory floor."""
    from bcc_edge.bench.preprocess import bench_preprocess, format_report

    log = None if as_json else (lambda message: typer.echo(message, err=True))
    result = bench_preprocess(batch=batch, threads=threads, rounds=rounds, log=log)
    typer.echo(json.dumps(result, indent=2) if as_json else format_report(result))
