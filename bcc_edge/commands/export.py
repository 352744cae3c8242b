"""`bcc-edge export` (placeholder: being implemented)."""

import typer

from bcc_edge.commands._common import user_errors


@user_errors
def export_command() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
