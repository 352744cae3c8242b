"""`bcc-edge report`: accuracy vs size vs latency of every artifact of one or more runs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from bcc_edge.commands._common import user_errors
from bcc_edge.errors import BccError


@user_errors
def report_command(
    sources: List[Path] = typer.Argument(..., metavar="EXPORT_DIR_OR_RUN_DIR...", help="Export directories (manifest.json) and/or training run directories."),
    data: Path = typer.Option(..., "--data", "-d", help="Labelled images: an ImageFolder (<root>/<class>/<image>) or a folder with splits.csv."),
    out: Path = typer.Option(..., "--out", "-o", help="Report directory; report.json, report.md and report.html are written into it."),
    split: str = typer.Option("val", "--split", help="val, train or all. A run's own split is used when --data is the folder it was trained on."),
    keras: Optional[bool] = typer.Option(None, "--keras/--no-keras", help="Include each run's Keras float model, best.keras (default: when TensorFlow is installed)."),
    latency_images: int = typer.Option(32, "--latency-images", min=1, help="Images timed (3 passes each, batch 1, 1 thread) for each artifact's invoke latency."),
    gallery: int = typer.Option(4, "--gallery", min=0, help="Misclassified examples shown per class and artifact in report.html."),
) -> None:
    """Evaluate every artifact found (Keras float, TFLite and ONNX float/INT8) on the same images.

    A failing artifact is listed as failed; the others are still reported. Exit code 0 when the
    report was written, 2 on a usage or data error.
    """
    from bcc_edge.report import ReportOptions, make_report
    from bcc_edge.report.tables import pct

    if out.exists() and not out.is_dir():
        raise BccError(f"--out must be a directory: {out} is a file")
    options = ReportOptions(split=split, include_keras=keras, latency_images=latency_images, gallery_per_class=gallery)
    report = make_report([str(s) for s in sources], str(data), out, options, log=lambda m: typer.echo(m, err=True))
    for entry in report["artifacts"]:
        if entry["status"] == "ok":
            latency = f"{entry['latency_ms']['invoke']['p50']:.3f} ms" if entry["latency_ms"] else "-"
            typer.echo(f"{entry['id']}: top-1 {pct(entry['metrics']['accuracy'])}, {entry['kib']:,.1f} KiB, {latency}")
        else:
            typer.echo(f"{entry['id']}: FAILED ({entry['error']})")
    typer.echo(f"report: {out / 'report.html'} ({report['data']['count']} images; {report['data']['selection']})")
