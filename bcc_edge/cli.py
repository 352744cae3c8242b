"""`bcc-edge` command line. Commands live in bcc_edge.commands.*; this file only wires them."""

from __future__ import annotations

import typer

from bcc_edge import __version__
from bcc_edge.commands import bench, calib, count, demo, export, infer, models, report, selftest, serve, train, verify, watch

app = typer.Typer(
    name="bcc-edge",
    help="Blood-cell image classifiers from training to the edge: train, export --int8, infer, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bcc-edge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Blood-cell image classifiers from training to the edge device."""


app.command("train")(train.train_command)
app.command("models")(models.models_command)
app.command("export")(export.export_command)
app.command("verify")(verify.verify_command)
app.command("infer")(infer.infer_command)
app.command("count")(count.count_command)
app.command("selftest")(selftest.selftest_command)
app.command("serve")(serve.serve_command)
app.command("watch")(watch.watch_command)
app.command("report")(report.report_command)
app.command("demo")(demo.demo_command)
app.add_typer(bench.app, name="bench")
app.add_typer(calib.app, name="calib")
