"""`bcc-edge train` (placeholder: being implemented)."""

import typer

from bcc_edge.commands._common import user_errors


@user_errors
def train_command() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
