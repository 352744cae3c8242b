"""Errors a user can cause. The CLI prints them as one line and exits non-zero; no traceback."""


class BccError(Exception):
    """A problem with the user's input (paths, options, data, artifacts)."""

    exit_code = 2
