"""`bcc-edge export` from the command line, and every way an export can be refused: one clear
error, a non-zero exit, and nothing written (no --out, no temporary leftovers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bcc_edge.cli import app
from bcc_edge.errors import BccError
from bcc_edge.export import ExportOptions, export_run


def _export(*args):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def _assert_nothing_written(out: Path):
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def test_float_only_export_then_refuses_to_overwrite_without_force(tiny_run, tmp_path):
    out = tmp_path / "exp"
    result = _export(tiny_run, "--format", "tflite", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["calibration.csv", "manifest.json", "model_float.tflite"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantization"] is None and [a["file"] for a in manifest["artifacts"]] == ["model_float.tflite"]

    (out / "marker").write_text("old export")
    again = _export(tiny_run, "--format", "tflite", "--out", out)
    assert again.exit_code == 2 and "already exists; use --force" in again.output
    assert (out / "marker").read_text() == "old export"
    forced = _export(tiny_run, "--format", "onnx", "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in out.iterdir()) == ["calibration.csv", "manifest.json", "model_float.onnx"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exp.")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ptq"], "--ptq chooses how INT8 models are made; it needs --int8"),
        (["--int8", "--io", "uint8"], "--io must be one of int8, float32"),
        (["--format", "tflite,coreml"], "unknown --format coreml"),
        (["--int8", "--qat-epochs", "0"], "--qat-epochs must be at least 1"),
    ],
)
def test_bad_options_are_one_line_errors(tiny_run, tmp_path, args, message):
    out = tmp_path / "exp"
    result = _export(tiny_run, "--out", out, *args)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}" or message in result.output.strip().splitlines()[-1]
    assert "Traceback" not in result.output
    _assert_nothing_written(out)


@pytest.mark.parametrize("missing", ["labels.json", "best.keras", "data.json", "preprocess.json", "val_metrics.json"])
def test_incomplete_run_is_refused(run_copy, tmp_path, missing):
    (run_copy / missing).unlink()
    out = tmp_path / "exp"
    result = _export(run_copy, "--out", out)
    assert result.exit_code == 2 and f"{missing} is missing" in result.output
    _assert_nothing_written(out)


def test_unquantisable_model_names_the_layer(run_copy, tmp_path):
    from bcc_edge._tf import keras
    from bcc_edge.rundir import RunDir

    run = RunDir(run_copy)
    float_model = run.load_best_model()
    inputs = keras.Input(float_model.input_shape[1:])
    outputs = float_model(keras.layers.Rescaling(1.0, name="in_model_scaling")(inputs))
    keras.Model(inputs, outputs).save(run_copy / "best.keras")
    out = tmp_path / "exp"
    with pytest.raises(BccError, match=r"in_model_scaling \(Rescaling\).*preprocessing outside the model"):
        export_run(run_copy, out, ExportOptions(int8=True, formats=("tflite",)))
    _assert_nothing_written(out)


@pytest.mark.parametrize(
    "manifest, message",
    [
        ("path,label,sha256\n", "calibration set is empty"),
        ("path,label,sha256\nx/y.jpg,platelet,00\n", "not classes of this model"),
        ("filename,class\n", "not a calibration manifest"),
    ],
)
def test_bad_calibration_sets_are_refused(tiny_run, tmp_path, manifest, message):
    calib = tmp_path / "calib.csv"
    calib.write_text(manifest)
    out = tmp_path / "exp"
    result = _export(tiny_run, "--int8", "--calib", calib, "--out", out)
    assert result.exit_code == 2 and message in result.output
    _assert_nothing_written(out)


def test_explicit_calibration_set_is_recorded(tiny_run, tmp_path):
    from bcc_edge import calib
    from bcc_edge.rundir import RunDir

    run = RunDir(tiny_run)
    manifest = tmp_path / "calib.csv"
    calib.write_manifest(manifest, calib.from_records(calib.select(run.records("train"), 2), run.data_root, "test"))
    out = tmp_path / "exp"
    result = export_run(tiny_run, out, ExportOptions(formats=("tflite",), calib=str(manifest)))
    assert result.manifest["calibration"]["manifest"] == str(manifest)
    assert result.manifest["calibration"]["count"] == 2 * len(run.labels)
    assert (out / "calibration.csv").read_text() == manifest.read_text()


def test_a_broken_artifact_is_refused(tiny_run, tmp_path, monkeypatch):
    from bcc_edge.export import formats, tflite
    from bcc_edge.rundir import RunDir

    run = RunDir(tiny_run)

    def build_wrong_model(ctx, path):  # a float TFLite that always answers the first class
        from bcc_edge._tf import keras, tf

        inputs = keras.Input((*run.spec.size, 3))
        bias = keras.initializers.Constant([8.0] + [0.0] * (len(run.labels) - 1))
        head = keras.layers.Dense(len(run.labels), kernel_initializer="zeros", bias_initializer=bias, activation="softmax")
        other = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D()(inputs)))
        data = tf.lite.TFLiteConverter.from_keras_model(other).convert()
        tflite._write(ctx, path, data, "float32", ctx.spec)

    row = formats.ArtifactFormat("tflite", "float32", "model_float.tflite", build_wrong_model)
    monkeypatch.setattr(formats, "FORMATS", (row,))
    out = tmp_path / "exp"
    with pytest.raises(BccError, match="export refused, broken artifact.*model_float.tflite.*differ from Keras"):
        export_run(tiny_run, out, ExportOptions())
    _assert_nothing_written(out)


def test_a_damaged_float_model_is_one_error(run_copy, tmp_path):
    (run_copy / "best.keras").write_bytes(b"not a keras file")
    out = tmp_path / "exp"
    result = _export(run_copy, "--out", out)
    assert result.exit_code == 2 and "cannot load the float model" in result.output
    _assert_nothing_written(out)


@pytest.mark.parametrize("io", ["float32"])  # uint8 I/O is model_uint8.tflite's (the raw-bytes model), not an --io
def test_ptq_with_other_io_types(tiny_run, tmp_path, io):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from bcc_edge import metadata
    from bcc_edge.runtime import EdgeClassifier

    out = tmp_path / "exp"
    result = export_run(tiny_run, out, ExportOptions(int8=True, ptq=True, io=io, formats=("tflite",)))
    assert result.manifest["quantization"] == "ptq" and result.manifest["io"] == io
    path = out / "model_int8.tflite"
    (inp,), (outp,) = Interpreter(model_path=str(path)).get_input_details(), Interpreter(model_path=str(path)).get_output_details()
    assert np.dtype(inp["dtype"]).name == io and np.dtype(outp["dtype"]).name == io
    meta = metadata.read_tflite(path)
    assert meta["quantization"] == "ptq" and meta["input"]["dtype"] == io and meta["output"]["dtype"] == io
    assert EdgeClassifier(path).input_spec.output == io


def test_a_run_kept_with_a_relative_data_root_finds_its_images_from_anywhere(run_copy, tmp_path, monkeypatch):
    # models/pbc-bcc-small in the repository: data_root relative to the run, not to the caller.
    import json
    import os

    from bcc_edge.rundir import DATA, RunDir

    info = json.loads((run_copy / DATA).read_text())
    info["data_root"] = os.path.relpath(info["data_root"], run_copy)
    (run_copy / DATA).write_text(json.dumps(info))
    monkeypatch.chdir(tmp_path)
    run = RunDir(run_copy)
    record = run.records("val")[0]
    assert (run.data_root / record.path).is_file()
