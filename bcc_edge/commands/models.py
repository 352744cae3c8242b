"""`bcc-edge models`: the model zoo with sizes and FLOPs."""

from __future__ import annotations

import json
from typing import Optional

import typer

from bcc_edge.commands._common import user_errors
from bcc_edge.errors import BccError


@user_errors
def models_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    num_classes: int = typer.Option(8, "--num-classes", help="Output classes to size the head for."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input side for every model \\[default: each model's own]."),
) -> None:
    """List the architectures `bcc-edge train --model` accepts: source (seed project or ours),
    default input size, parameters and FLOPs (2 x multiply-accumulates of conv/dense layers)."""
    from bcc_edge import models

    if num_classes < 2:
        raise BccError(f"--num-classes must be at least 2; got {num_classes}")
    rows = [models.describe(name, num_classes, image_size) for name in models.REGISTRY]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    header = f"{'name':<18} {'source':<8} {'input':>7} {'params':>10} {'MFLOPs':>9}  {'augment':<15} summary"
    typer.echo(header)
    for row in rows:
        size = "x".join(str(s) for s in row["input_size"])
        default = " (default)" if row["name"] == models.DEFAULT_MODEL else ""
        typer.echo(
            f"{row['name']:<18} {row['source']:<8} {size:>7} {row['params']:>10,} {row['flops'] / 1e6:>9.1f}  "
            f"{row['augment']:<15} {row['summary']}{default}"
        )
