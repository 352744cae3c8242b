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
        if a.precision == "float32":
            assert a.result.agreement == 1.0 and a.result.max_abs_diff < 1e-3 and not a.failures
    assert report.float_result.accuracy == pytest.approx(run.float_val_accuracy, abs=1e-6)
    text = verify.format_report(report)
    assert all(name in text for name in ARTIFACTS) and text.splitlines()[-1].startswith("PASS" if report.passed else "FAIL")
    json.dumps(report.to_dict())  # JSON-ready


def test_verify_command_exit_code_follows_the_thresholds(tiny_export, synthetic_data, tmp_path):
    lenient = CliRunner().invoke(app, ["verify", str(tiny_export), "--data", str(synthetic_data), "--min-agreement", "0", "--max-accuracy-drop", "100", "--json", str(tmp_path / "v.json")])
    assert lenient.exit_code == 0, lenient.output
    assert "PASS" in lenient.output and json.loads((tmp_path / "v.json").read_text())["passed"] is True


def _result(name, accuracy, agreement=None, max_abs_diff=None, problems=()):
    return Result(name, np.zeros((1, 3)), 0.0, accuracy, agreement, max_abs_diff, problems=list(problems))


def test_verify_command_fails_on_a_threshold(tiny_export, synthetic_data, monkeypatch):
    def fake_evaluate(predictors, images, y_true, reference):
        results = [_result(verify.FLOAT_NAME, 0.9)]
        results += [_result(name, 0.9, 0.5 if "int8" in name else 1.0, 0.0) for name in predictors if name != verify.FLOAT_NAME]
        return results

    monkeypatch.setattr(verify, "evaluate", fake_evaluate)
    result = CliRunner().invoke(app, ["verify", str(tiny_export), "--data", str(synthetic_data)])
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
    check = verify.ArtifactCheck("m", "tflite", precision, 1, result)
    failures = verify._failures(check, _result("float", 0.90), verify.Thresholds())
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
