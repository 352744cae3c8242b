"""Find what to compare: the runs and their artifacts behind the directories a user names.

An export directory (manifest.json) contributes its TFLite/ONNX artifacts and, through the
manifest's `run_dir`, the run's Keras float model; a run directory (config.json) contributes
its Keras float model. Two paths that lead to the same run are merged into one group.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

from bcc_edge.errors import BccError
from bcc_edge.export.manifest import MANIFEST, artifact_problem, parse as parse_manifest
from bcc_edge.rundir import BEST, CONFIG, RunDir

_FORMATS = {".tflite": "tflite", ".onnx": "onnx"}


@dataclass(frozen=True)
class Artifact:
    """One model file to evaluate. `format` is keras/tflite/onnx, `precision` float32/int8."""

    path: Path
    format: str
    precision: str
    quantization: str | None = None
    problem: str | None = None  # why the file is not the one its manifest lists; reported as failed


@dataclass
class Group:
    """The artifacts of one training run (or of one export whose run is gone), compared
    with each other; `name` labels it in the report."""

    name: str
    run_dir: Path | None
    export_dirs: list[Path] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)

    @cached_property
    def run(self) -> RunDir | None:
        return RunDir(self.run_dir) if self.run_dir else None


def tensorflow_available() -> bool:
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-removed install
        return False


def _manifest_run_dir(export_dir: Path, manifest: dict) -> Path | None:
    """The run the export came from, when it is still on disk (relative paths are relative to
    the export directory, so a copied run+export pair keeps working)."""
    value = manifest.get("run_dir")
    if not value:
        return None
    run_dir = (export_dir / value).resolve()
    return run_dir if (run_dir / CONFIG).is_file() else None


def _keras_artifact(run_dir: Path) -> Artifact | None:
    best = run_dir / BEST
    return Artifact(best, "keras", "float32") if best.is_file() else None


def _export_artifacts(export_dir: Path, manifest: dict) -> list[Artifact]:
    artifacts = []
    for entry in manifest["artifacts"]:
        path = export_dir / entry["file"]
        fmt = entry.get("format") or _FORMATS.get(path.suffix)
        quantization = manifest.get("quantization") if entry.get("precision") == "int8" else None
        artifacts.append(Artifact(path, fmt, entry.get("precision", "float32"), quantization, artifact_problem(export_dir, entry)))
    return artifacts


def _unique_name(path: Path, taken: set[str]) -> str:
    """The directory's name, with parents prepended until it differs from the names taken."""
    parts = path.resolve().parts
    for depth in range(1, len(parts) + 1):
        name = "/".join(parts[-depth:])
        if name not in taken:
            return name
    return str(path)


def collect(paths: Sequence[str | Path], include_keras: bool | None = None) -> tuple[list[Group], list[str]]:
    """Groups of artifacts behind `paths`, and notes for the report (e.g. Keras skipped).

    `include_keras=None` includes a run's best.keras when TensorFlow is installed.
    """
    if include_keras is None:
        include_keras = tensorflow_available()
    notes: list[str] = []
    groups: dict[Path, Group] = {}
    taken: set[str] = set()

    def group_for(key: Path, run_dir: Path | None) -> Group:
        if key not in groups:
            name = _unique_name(run_dir or key, taken)
            taken.add(name)
            groups[key] = Group(name, run_dir)
            keras = _keras_artifact(run_dir) if run_dir else None
            if keras and include_keras:
                groups[key].artifacts.append(keras)
            elif keras:
                notes.append(f"{keras.path} not evaluated: TensorFlow is not installed (pip install 'bcc-edge[train]')")
        return groups[key]

    for raw in paths:
        path = Path(raw).resolve()
        if (path / MANIFEST).is_file():
            manifest = parse_manifest(path)
            run_dir = _manifest_run_dir(path, manifest)
            if run_dir is None:
                notes.append(f"{path}: the run it was exported from is not available; no Keras model or parameter count from it")
            group = group_for(run_dir or path, run_dir)
            if path not in group.export_dirs:
                group.export_dirs.append(path)
                group.artifacts.extend(a for a in _export_artifacts(path, manifest) if a not in group.artifacts)
        elif (path / CONFIG).is_file():
            group_for(path, path)
        elif path.is_dir():
            raise BccError(f"{raw} is neither an export directory ({MANIFEST}) nor a run directory ({CONFIG})")
        else:
            raise BccError(f"no such directory: {raw}")
    empty = [g.name for g in groups.values() if not g.artifacts]
    if empty:
        raise BccError(f"nothing to evaluate in {', '.join(empty)}: no exported artifacts, and no Keras model usable here")
    return list(groups.values()), notes
