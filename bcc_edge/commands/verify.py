"""`bcc-edge verify`: every artifact of an export vs the float model on the same images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bcc_edge.commands._common import user_errors


@user_errors
def verify_command(
    export_dir: Path = typer.Argument(..., help="Export directory (from `bcc-edge export`)."),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageFolder or splits.csv dataset (default: the run's own data)."),
    split: str = typer.Option("val", "--split", help="val, train or all. A run's own split is used when --data is the folder it was trained on (or is left out)."),
    min_agreement: float = typer.Option(98.0, "--min-agreement", help="Fail when an INT8 artifact agrees with float on fewer than this percent of images."),
    max_accuracy_drop: float = typer.Option(1.0, "--max-accuracy-drop", help="Fail when an INT8 artifact loses more than this many accuracy points."),
    max_class_drop: float = typer.Option(2.0, "--max-class-drop", help="Fail when an artifact's recall of any class is more than this many points below the float model's."),
    max_ece: float = typer.Option(0.03, "--max-ece", help="Fail when an artifact's expected calibration error (15 bins) exceeds this."),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="The training run (default: the one named in manifest.json)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="Interpreter threads per artifact (default: the backend's)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the numbers as JSON to this file."),
) -> None:
    """Print per artifact: top-1 accuracy, agreement with the float model (calibrated as the artifact
    is), the largest probability difference, calibration error, the review policy's coverage and
    accepted accuracy, each class's recall change against float, and the size.

    Exit code: 0 all artifacts pass, 1 an artifact fails a threshold, 2 usage or input error.
    """
    from bcc_edge.fileio import write_json
    from bcc_edge.verify import Thresholds, format_report, verify_export

    thresholds = Thresholds(min_agreement / 100.0, max_accuracy_drop / 100.0, max_class_drop / 100.0, max_ece)
    report = verify_export(export_dir, data, split, thresholds, run_dir=run_dir, threads=threads)
    typer.echo(format_report(report))
    if json_out is not None:
        write_json(json_out, report.to_dict())
    if not report.passed:
        raise typer.Exit(1)
