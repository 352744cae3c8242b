"""Finding runs and artifacts behind the directories given to `bcc-edge report` (no models run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bcc_edge.fileio import file_sha256
from bcc_edge.errors import BccError
from bcc_edge.report.collect import collect


def _run(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "best.keras").write_bytes(b"k")
    return path


def _export(path: Path, run_dir: str | None, files=("model_float.tflite", "model_int8.onnx")) -> Path:
    path.mkdir(parents=True)
    artifacts = []
    for name in files:
        (path / name).write_bytes(b"m")
        fmt, precision = name.split(".")[1], "int8" if "int8" in name else "float32"
        artifacts.append({"file": name, "format": fmt, "precision": precision, "bytes": 1, "sha256": file_sha256(path / name)})
    (path / "manifest.json").write_text(json.dumps({"run_dir": run_dir, "quantization": "qat", "artifacts": artifacts}))
    return path


def test_export_dir_brings_its_run_keras_model(tmp_path):
    run = _run(tmp_path / "runs" / "small")
    export = _export(tmp_path / "exp", "../runs/small")  # relative to the export directory
    groups, notes = collect([export], include_keras=True)
    assert len(groups) == 1 and notes == []
    group = groups[0]
    assert group.name == "small" and group.run_dir == run.resolve()
    assert [(a.path.name, a.format, a.precision, a.quantization) for a in group.artifacts] == [
        ("best.keras", "keras", "float32", None),
        ("model_float.tflite", "tflite", "float32", None),
        ("model_int8.onnx", "onnx", "int8", "qat"),
    ]


def test_keras_left_out_with_a_note_when_tensorflow_is_not_wanted(tmp_path):
    run = _run(tmp_path / "small")
    export = _export(tmp_path / "exp", str(run))
    groups, notes = collect([export], include_keras=False)
    assert [a.format for a in groups[0].artifacts] == ["tflite", "onnx"]
    assert len(notes) == 1 and "best.keras not evaluated" in notes[0]


def test_run_dir_and_its_export_merge_into_one_group(tmp_path):
    run = _run(tmp_path / "small")
    export = _export(tmp_path / "exp", str(run))
    groups, _ = collect([run, export, export], include_keras=True)
    assert len(groups) == 1
    assert [a.path.name for a in groups[0].artifacts] == ["best.keras", "model_float.tflite", "model_int8.onnx"]


def test_runs_with_the_same_folder_name_get_distinct_names(tmp_path):
    a = _run(tmp_path / "seed1" / "run")
    b = _run(tmp_path / "seed2" / "run")
    groups, _ = collect([a, b], include_keras=True)
    assert [g.name for g in groups] == ["run", "seed2/run"]


def test_export_whose_run_is_gone_is_a_group_of_its_own(tmp_path):
    export = _export(tmp_path / "exp", str(tmp_path / "deleted"))
    groups, notes = collect([export], include_keras=True)
    assert groups[0].name == "exp" and groups[0].run_dir is None
    assert "not available" in notes[0]


@pytest.mark.parametrize("make, match", [
    (lambda p: p, "no such directory"),
    (lambda p: (p.mkdir(), p)[1], "neither an export directory"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{not json"), p)[2], "not a valid export manifest"),
    (lambda p: (p.mkdir(), (p / "config.json").write_text("{}"), p)[2], "nothing to evaluate"),
])
def test_bad_paths_are_user_errors(tmp_path, make, match):
    with pytest.raises(BccError, match=match):
        collect([make(tmp_path / "x")], include_keras=True)


def test_an_artifact_changed_since_export_carries_its_problem(tmp_path):
    export = _export(tmp_path / "exp", None)
    (export / "model_int8.onnx").write_bytes(b"n")  # same size, other bytes
    (export / "model_float.tflite").unlink()
    groups, _ = collect([export], include_keras=True)
    problems = {a.path.name: a.problem for a in groups[0].artifacts}
    assert problems["model_int8.onnx"] == "model_int8.onnx does not match its size/sha256 in manifest.json (modified or truncated)"
    assert problems["model_float.tflite"] == "model_float.tflite listed in manifest.json is missing"
