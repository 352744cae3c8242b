"""manifest.json: what an export directory holds and where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bcc_edge.data import file_sha256
from bcc_edge.errors import BccError

MANIFEST = "manifest.json"


def artifact_entry(path: Path, fmt: str, precision: str) -> dict[str, Any]:
    return {"file": path.name, "format": fmt, "precision": precision, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def read(export_dir: str | Path) -> dict[str, Any]:
    """The manifest of an export directory, with its artifact files checked against it."""
    export_dir = Path(export_dir)
    path = export_dir / MANIFEST
    if not export_dir.is_dir():
        raise BccError(f"export directory not found: {export_dir}")
    if not path.is_file():
        raise BccError(f"{export_dir} is not a bcc-edge export: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text("utf-8"))
        artifacts = manifest["artifacts"]
        entries = [(a["file"], a["bytes"], a["sha256"]) for a in artifacts]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise BccError(f"{path} is not a valid export manifest ({type(exc).__name__}: {exc})") from None
    for name, size, sha in entries:
        file = export_dir / name
        if not file.is_file():
            raise BccError(f"{export_dir}: {name} listed in {MANIFEST} is missing")
        if file.stat().st_size != size or file_sha256(file) != sha:
            raise BccError(f"{export_dir}: {name} does not match its size/sha256 in {MANIFEST} (modified or truncated)")
    return manifest
