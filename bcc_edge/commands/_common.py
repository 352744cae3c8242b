"""What every command shares: user errors become one line on stderr and an exit code."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Callable, TypeVar

import typer

from bcc_edge.errors import BccError, ModelTimeout, one_line

F = TypeVar("F", bound=Callable)


def fail(message: str, code: int = 2) -> "typer.Exit":
    typer.echo(f"error: {one_line(message)}", err=True)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn the errors a user can cause into `error: ...` and a non-zero exit; SIGTERM ends the
    command like Ctrl-C (temporary files removed, exit 143)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from bcc_edge.fileio import terminate_as_exit

        # Decoder notes about damaged EXIF blocks and the like are not the user's business:
        # a file that cannot be read gets its own error row.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        try:
            with terminate_as_exit():
                return fn(*args, **kwargs)
        except ModelTimeout as exc:
            fail(str(exc), exc.exit_code)
            # A worker may still be inside the interpreter: leave without tearing it down.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        except BccError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise fail(f"{exc.strerror}: {exc.filename}") from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    wrapper.__doc__ = help_text(fn.__doc__)
    return wrapper  # type: ignore[return-value]


def help_text(doc: str | None) -> str | None:
    """A docstring as `--help` should show it: Typer's rich help keeps every line break of the
    source, so each paragraph becomes one line that the terminal's width wraps."""
    if doc is None:
        return None
    import inspect

    return "\n\n".join(" ".join(paragraph.split()) for paragraph in inspect.cleandoc(doc).split("\n\n"))
