"""`bcc-edge calib make`: build a calibration manifest for INT8 export."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bcc_edge.commands._common import user_errors

app = typer.Typer(help="Calibration sets for INT8 quantisation.", no_args_is_help=True)


@app.command("make")
@user_errors
def calib_make_command(
    data: Path = typer.Option(..., "--data", help="Dataset: an ImageFolder (<root>/<class>/<image>) or a folder with splits.csv."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest to write (CSV: path,label,sha256, paths relative to the data root)."),
    per_class: Optional[int] = typer.Option(None, "--per-class", "-n", help="Images per class, fewer when a class has fewer \\[default: 32]."),
    split: str = typer.Option("train", "--split", help="train or val; never a held-out test split."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed; also the ImageFolder train/val split seed (use the run's --seed)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing manifest."),
) -> None:
    """Pick a stratified, reproducible calibration set from a dataset's train (or val) split."""
    from bcc_edge.calib import DEFAULT_PER_CLASS, make

    cset = make(data, DEFAULT_PER_CLASS if per_class is None else per_class, out, split=split, seed=seed, force=force)
    counts = ", ".join(f"{label} {n}" for label, n in cset.per_class().items())
    typer.echo(f"wrote {out}: {len(cset.records)} images from the {split} split ({counts})")
