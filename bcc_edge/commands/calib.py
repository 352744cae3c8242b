"""`bcc-edge calib make` (placeholder: being implemented)."""

import typer

app = typer.Typer(help="Calibration sets for INT8 quantisation.", no_args_is_help=True)


@app.command("make")
def calib_make_command() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
