"""`bcc-edge demo`."""

from pathlib import Path

import typer

from bcc_edge.commands._common import user_errors


@user_errors
def demo_command(
    out: Path = typer.Option(Path("bcc-edge-demo"), "--out", "-o", help="Folder for the demo's data, run, export and report."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo in --out."),
    epochs: int = typer.Option(12, "--epochs", min=1, help="Training epochs."),
    per_class: int = typer.Option(60, "--per-class", min=4, help="Synthetic images per class."),
) -> None:
    """Generate a synthetic blood-cell set, train bcc-small, export INT8, verify, infer and
    write a report: the whole toolkit in a few minutes, no download needed."""
    from bcc_edge.demo import DemoSettings, run_demo

    result = run_demo(out, DemoSettings(per_class=per_class, epochs=epochs), force=force, echo=typer.echo)
    if not result.verify_passed:
        raise typer.Exit(1)
