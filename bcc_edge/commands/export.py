"""`bcc-edge export`: a training run -> TFLite/ONNX artifacts (float, and INT8 with --int8)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from bcc_edge.commands._common import user_errors


def _log(message: str) -> None:
    typer.echo(message, err=True)


@user_errors
def export_command(
    run_dir: Path = typer.Argument(..., help="Training run directory (from `bcc-edge train`)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Export directory to create (default: RUN_DIR/export)."),
    int8: bool = typer.Option(False, "--int8", help="Also write INT8 models (QAT by default; see --ptq)."),
    io: Optional[str] = typer.Option(None, "--io", help="Input/output type of model_int8.tflite: int8 or float32 \\[default: int8] (model_uint8.tflite always takes raw RGB bytes)."),
    formats: Optional[List[str]] = typer.Option(None, "--format", "-f", help="Only these formats, repeated or comma-separated: tflite, onnx (default: both)."),
    qat_epochs: Optional[int] = typer.Option(None, "--qat-epochs", help="Quantization-aware fine-tuning epochs on the run's train split \\[default: 2]."),
    qat_lr: Optional[float] = typer.Option(None, "--qat-lr", help="Peak QAT learning rate, cosine decay to 0 \\[default: 0.0001]."),
    ptq: bool = typer.Option(False, "--ptq", help="Post-training quantisation instead of QAT (faster, usually slightly less accurate)."),
    calib: Optional[Path] = typer.Option(None, "--calib", help="Calibration manifest (bcc-edge calib make) (default: drawn from the run's train split)."),
    calib_root: Optional[Path] = typer.Option(None, "--calib-root", help="Data root the --calib paths are relative to (default: the run's data root)."),
    calib_per_class: Optional[int] = typer.Option(None, "--calib-per-class", help="Images per class in the default calibration set \\[default: 32]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for QAT and the default calibration sample \\[default: 0]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing export directory."),
    review_target: Optional[float] = typer.Option(None, "--review-target", help="Accuracy the review policy keeps on the accepted images, fitted on the run's val split \\[default: 0.998]."),
    guard_percentile: Optional[float] = typer.Option(None, "--guard-percentile", help="Percentile of the val images' distances above which the input guard flags an image \\[default: 99.5]."),
) -> None:
    """Write model_float.tflite, model_float.onnx (+ model_int8.*, model_uint8.tflite with --int8),
    calibration.csv and manifest.json; every artifact embeds its labels and preprocessing. The export is
    built beside --out and moved into place only after a self-check against the float model."""
    from bcc_edge.export import ExportOptions, export_run

    given = {
        "int8": int8,
        "io": io,
        "formats": tuple(f.strip() for value in formats for f in value.split(",") if f.strip()) if formats else None,
        "qat_epochs": qat_epochs,
        "ptq": ptq,
        "qat_lr": qat_lr,
        "calib": str(calib) if calib else None,
        "calib_root": str(calib_root) if calib_root else None,
        "calib_per_class": calib_per_class,
        "force": force,
        "seed": seed,
        "review_target": review_target,
        "guard_percentile": guard_percentile,
    }
    options = ExportOptions(**{k: v for k, v in given.items() if v is not None})
    result = export_run(run_dir, out if out is not None else run_dir / "export", options, log=_log)
    for entry in result.manifest["artifacts"]:
        typer.echo(f"{result.out / entry['file']}  {entry['precision']:<7}  {entry['bytes'] / 1024:8.1f} KiB")
    typer.echo(f"{result.out / 'manifest.json'}")
