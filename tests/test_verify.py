"""`bcc-edge verify`: every artifact vs the float model on the same images, thresholds, and
which images a given --data means."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bcc_edge import verify
from bcc_edge.cli import app
from bcc_edge.errors import BccError
from bcc_edge.evaluate import Result
from bcc_edge.data import evaluation_images
from bcc_edge.rundir import RunDir
from bcc_edge.synthetic import write_image_folder

ARTIFACTS = ["model_float.tflite", "model_int8.tflite", "model_uint8.tflite", "model_float.onnx", "model_int8.onnx"]


def test_verify_runs_every_artifact_on_the_runs_val_split(tiny_export, tiny_run, synthetic_data):
    report = verify.verify_export(tiny_export, synthetic_data)
    run = RunDir(tiny_run)
    assert report.count == len(run.records("val")) and "'val' images of the run's saved split" in report.source
    assert [a.file for a in report.artifacts] == ARTIFACTS
    for a in report.artifacts:
        assert 0.0 <= a.result.accuracy <= 1.0 and a.bytes == (tiny_export / a.file).stat().st_size
        assert 0.0 <= a.trust["ece"] <= 1.0 and 0.0 <= a.trust["coverage"] <= 1.0 and len(a.trust["recall_change"]) == len(run.labels)
        if a.precision == "float32":  # a conversion of the float model, calibrated as it is
            assert a.result.agreement == 1.0 and a.result.max_abs_diff < 1e-3 and not any("float outputs" in f for f in a.failures)
    assert report.float_result.accuracy == pytest.approx(run.float_val_accuracy, abs=1e-6)
    text = verify.format_report(report)
    assert all(name in text for name in ARTIFACTS) and text.splitlines()[-1].startswith("PASS" if report.passed else "FAIL")
    json.dumps(report.to_dict())  # JSON-ready


def test_verify_command_exit_code_follows_the_thresholds(tiny_export, synthetic_data, tmp_path):
    lenient = CliRunner().invoke(app, [
        "verify", str(tiny_export), "--data", str(synthetic_data), "--min-agreement", "0", "--max-accuracy-drop", "100",
        "--max-class-drop", "100", "--max-ece", "1", "--json", str(tmp_path / "v.json"),
    ])
    assert lenient.exit_code == 0, lenient.output
    assert "PASS" in lenient.output and json.loads((tmp_path / "v.json").read_text())["passed"] is True


def _result(name, accuracy, agreement=None, max_abs_diff=None, problems=()):
    return Result(name, np.zeros((1, 3)), 0.0, accuracy, agreement, max_abs_diff, problems=list(problems))


def test_verify_command_fails_on_a_threshold(tiny_export, synthetic_data, monkeypatch):
    def fake_compare(outputs, reference, y_true, num_classes):
        return [
            Result(name, probs, 0.0, 0.9, None if name in (reference, verify.FLOAT_NAME) else 0.5 if "int8" in name else 1.0, 0.0)
            for name, (probs, _) in outputs.items()
        ]

    monkeypatch.setattr(verify, "compare", fake_compare)
    result = CliRunner().invoke(app, ["verify", str(tiny_export), "--data", str(synthetic_data), "--max-ece", "1", "--max-class-drop", "100"])
    assert result.exit_code == 1
    assert "FAIL model_int8.tflite: agreement with float 50.00% < 98.00%" in result.output
    assert "FAIL model_float.tflite" not in result.output


@pytest.mark.parametrize(
    "precision, result, expected",
    [
        ("int8", _result("x", 0.90, 0.99, 0.1), []),
        ("int8", _result("x", 0.90, 0.97, 0.1), ["agreement with float 97.00% < 98.00%"]),
        ("int8", _result("x", 0.885, 0.99, 0.1), ["accuracy 88.50% is 1.50 points below float"]),
        ("int8", _result("x", 0.90, 0.99, 0.1, ["outputs contain NaN or infinity"]), ["outputs contain NaN"]),
        ("float32", _result("x", 0.50, 0.50, 1e-6), []),  # float artifacts: judged on their outputs
        ("float32", _result("x", 0.90, 1.00, 0.2), ["float outputs differ from Keras by up to 0.2000"]),
    ],
)
def test_failures(precision, result, expected):
    check = verify.ArtifactCheck("m", "tflite", precision, 1, result, {"ece": 0.01, "recall_change": [0.0, -0.01, None]})
    failures = verify._failures(check, _result("float", 0.90), verify.Thresholds(), ["a", "b", "c"])
    assert len(failures) == len(expected) and all(f.startswith(e) for f, e in zip(failures, expected))


@pytest.mark.parametrize(
    "trust, expected",
    [
        ({"ece": 0.031, "recall_change": [0.0, 0.0, 0.0]}, ["expected calibration error 0.0310 > 0.03"]),
        ({"ece": 0.01, "recall_change": [0.05, -0.021, None]}, ["recall of b drops 2.10 points"]),  # a rare class hidden by the global figure
        ({"ece": 0.01, "recall_change": [0.0, -0.02, None]}, []),
    ],
)
def test_calibration_and_class_recall_failures(trust, expected):
    check = verify.ArtifactCheck("m", "tflite", "int8", 1, _result("x", 0.90, 0.99, 0.1), trust)
    failures = verify._failures(check, _result("float", 0.90), verify.Thresholds(), ["a", "b", "c"])
    assert len(failures) == len(expected) and all(f.startswith(e) for f, e in zip(failures, expected))


def test_thresholds_are_checked():
    with pytest.raises(BccError, match="--min-agreement"):
        verify.Thresholds(min_agreement=1.5).check()
    with pytest.raises(BccError, match="--max-accuracy-drop"):
        verify.Thresholds(max_accuracy_drop=-0.01).check()


# ----------------------------------------------------------------------------- which images


def test_records_default_and_same_root_use_the_runs_split(tiny_run, synthetic_data):
    run = RunDir(tiny_run)
    assert evaluation_images(None, "val", [run], run.labels).records == run.records("val")
    assert evaluation_images(synthetic_data, "train", [run], run.labels).records == run.records("train")
    assert evaluation_images(synthetic_data, "all", [run], run.labels).records == run.records("train") + run.records("val")


def test_records_of_another_image_folder_are_all_its_images(tiny_run, synthetic_data, tmp_path):
    other = Path(shutil.copytree(synthetic_data, tmp_path / "other"))
    run = RunDir(tiny_run)
    chosen = evaluation_images(other, "val", [run], run.labels)
    records = chosen.records
    assert len(records) == len(list(other.glob("*/*.jpg"))) and chosen.selection.startswith("all images")
    assert all(run.labels[r.index] == r.label for r in records)


def test_records_of_a_splits_csv_dataset_follow_its_split(tiny_run, synthetic_data, tmp_path):
    data = Path(shutil.copytree(synthetic_data, tmp_path / "ds"))
    files = sorted(data.glob("*/*.jpg"))
    rows = [f"{f.relative_to(data).as_posix()},{f.parent.name},{'val' if i % 4 == 0 else 'train'}" for i, f in enumerate(files)]
    (data / "splits.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    records = evaluation_images(data, "val", [RunDir(tiny_run)], RunDir(tiny_run).labels).records
    assert sorted(Path(r.path).name for r in records) == sorted(f.name for i, f in enumerate(files) if i % 4 == 0)


def test_records_refuse_unknown_classes_and_splits(tiny_run, synthetic_data, tmp_path):
    data = Path(shutil.copytree(synthetic_data, tmp_path / "ds"))
    write_image_folder(data, 3, classes=("neutrophil",), seed=5)  # not one of the run's classes
    run = RunDir(tiny_run)
    with pytest.raises(BccError, match="classes the model does not know: neutrophil"):
        evaluation_images(data, "val", [run], run.labels)
    with pytest.raises(BccError, match="--split must be one of val, train, all"):
        evaluation_images(None, "test", [run], run.labels)


# ----------------------------------------------------------------------------- bad exports


@pytest.fixture
def export_copy(tiny_export, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_export, tmp_path / "exp"))


def test_a_modified_artifact_is_refused(export_copy):
    path = export_copy / "model_int8.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    result = CliRunner().invoke(app, ["verify", str(export_copy)])
    assert result.exit_code == 2 and "model_int8.onnx does not match its size/sha256" in result.output


def test_missing_manifest_and_missing_run(export_copy, tiny_run, tmp_path):
    manifest = json.loads((export_copy / "manifest.json").read_text())
    manifest["run_dir"] = str(tmp_path / "gone")
    (export_copy / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(app, ["verify", str(export_copy)])
    assert result.exit_code == 2 and "pass --run" in result.output
    assert verify.verify_export(export_copy, run_dir=tiny_run, thresholds=verify.Thresholds(0.0, 1.0)).passed
    (export_copy / "manifest.json").unlink()
    result = CliRunner().invoke(app, ["verify", str(export_copy)])
    assert result.exit_code == 2 and "manifest.json is missing" in result.output


def test_a_tampered_calibration_fails_verify(tiny_export, synthetic_data, tmp_path):
    from bcc_edge import metadata
    from bcc_edge.fileio import file_sha256

    export = Path(shutil.copytree(tiny_export, tmp_path / "exp"))
    path = export / "model_int8.tflite"
    meta = metadata.read_tflite(path)
    meta["probabilities"] = {"method": "temperature", "temperature": 0.02}  # wildly over-confident
    path.write_bytes(metadata.embed_tflite(path.read_bytes(), meta))
    manifest = json.loads((export / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"] == path.name)
    entry["bytes"], entry["sha256"] = path.stat().st_size, file_sha256(path)  # as if exported like this
    (export / "manifest.json").write_text(json.dumps(manifest))
    report = verify.verify_export(export, synthetic_data, thresholds=verify.Thresholds(min_agreement=0, max_accuracy_drop=1, max_class_drop=1, max_ece=0.2))
    failures = {a.file: a.failures for a in report.artifacts}
    assert any("calibration error" in f for f in failures["model_int8.tflite"]) and not report.passed
