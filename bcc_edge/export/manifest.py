"""manifest.json: what an export directory holds and where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bcc_edge.fileio import file_sha256
from bcc_edge.errors import BccError

MANIFEST = "manifest.json"


def artifact_entry(path: Path, fmt: str, precision: str) -> dict[str, Any]:
    return {"file": path.name, "format": fmt, "precision": precision, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def parse(export_dir: str | Path) -> dict[str, Any]:
    """The manifest of an export directory, its artifact table checked for shape only."""
    export_dir = Path(export_dir)
    path = export_dir / MANIFEST
    if not export_dir.is_dir():
        raise BccError(f"export directory not found: {export_dir}")
    if not path.is_file():
        raise BccError(f"{export_dir} is not a bcc-edge export: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text("utf-8"))
        for entry in manifest["artifacts"]:
            entry["file"], entry["bytes"], entry["sha256"]  # noqa: B018 - each must be there
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise BccError(f"{path} is not a valid export manifest ({type(exc).__name__}: {exc})") from None
    return manifest


def artifact_problem(export_dir: str | Path, entry: dict[str, Any]) -> str | None:
    """Why the file a manifest entry names is not the one exported (missing, modified,
    truncated), or None when its size and sha256 match."""
    file = Path(export_dir) / entry["file"]
    if not file.is_file():
        return f"{entry['file']} listed in {MANIFEST} is missing"
    if file.stat().st_size != entry["bytes"] or file_sha256(file) != entry["sha256"]:
        return f"{entry['file']} does not match its size/sha256 in {MANIFEST} (modified or truncated)"
    return None


def read(export_dir: str | Path) -> dict[str, Any]:
    """The manifest of an export directory, with every artifact file checked against it."""
    manifest = parse(export_dir)
    for entry in manifest["artifacts"]:
        problem = artifact_problem(export_dir, entry)
        if problem:
            raise BccError(f"{export_dir}: {problem}")
    return manifest
