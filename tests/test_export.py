"""`export_run` on the tiny synthetic run: five artifacts that load in ai-edge-litert and
onnxruntime, carry metadata that round-trips, and agree with the float model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bcc_edge import metadata
from bcc_edge.data import load_arrays
from bcc_edge.fileio import file_sha256
from bcc_edge.rundir import RunDir
from bcc_edge.runtime import EdgeClassifier

ARTIFACTS = {
    "model_float.tflite": ("tflite", "float32"),
    "model_int8.tflite": ("tflite", "int8"),
    "model_uint8.tflite": ("tflite", "int8"),
    "model_float.onnx": ("onnx", "float32"),
    "model_int8.onnx": ("onnx", "int8"),
}

# Artifacts with the normalisation as their first layer (bcc_edge.export.normalize).
RAW_INPUT = {"model_float.tflite", "model_uint8.tflite"}


def _manifest(export_dir):
    return json.loads((export_dir / "manifest.json").read_text())


def test_writes_the_five_artifacts_and_a_truthful_manifest(tiny_export, tiny_run):
    manifest = _manifest(tiny_export)
    assert sorted(p.name for p in tiny_export.iterdir()) == sorted([*ARTIFACTS, "manifest.json", "calibration.csv"])
    assert {a["file"]: (a["format"], a["precision"]) for a in manifest["artifacts"]} == ARTIFACTS
    for entry in manifest["artifacts"]:
        path = tiny_export / entry["file"]
        assert entry["bytes"] == path.stat().st_size and entry["sha256"] == file_sha256(path)
    assert manifest["quantization"] == "qat" and manifest["model_name"] == "bcc-small"
    assert RunDir(manifest["run_dir"]).path.samefile(tiny_run)
    calib_rows = (tiny_export / "calibration.csv").read_text().splitlines()
    assert calib_rows[0] == "path,label,sha256" and manifest["calibration"]["count"] == len(calib_rows) - 1


def test_calibration_comes_from_the_train_split_only(tiny_export, tiny_run):
    run = RunDir(tiny_run)
    train = {r.sha256 for r in run.records("train")}
    rows = [line.split(",") for line in (tiny_export / "calibration.csv").read_text().splitlines()[1:]]
    assert rows and all(sha in train for _, _, sha in rows)
    assert {label for _, label, _ in rows} == set(run.labels)


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_metadata_round_trips(tiny_export, tiny_run, name):
    run = RunDir(tiny_run)
    fmt, precision = ARTIFACTS[name]
    meta = metadata.read_artifact(tiny_export / name)
    assert meta["labels"] == run.labels
    if name in RAW_INPUT:  # the normalisation is inside: feed the resized grey levels
        assert meta["preprocess"] == run.spec.resized_only().with_output("float32").to_dict()
        assert meta["input"]["normalization_in_model"] == {"mean": list(run.spec.mean), "std": list(run.spec.std)}
    else:
        assert meta["preprocess"] == run.spec.to_dict() and "normalization_in_model" not in meta["input"]
    assert meta["model_name"] == "bcc-small" and meta["toolkit_version"]
    assert meta["data_fingerprint"] == run.fingerprint
    assert meta["float_val_accuracy"] == pytest.approx(run.float_val_accuracy)
    # bcc-edge's own artifacts output logits the device calibrates; those for other clients end
    # in a softmax that took the fitted temperature.
    assert meta["output"]["activation"] == ("softmax" if name in RAW_INPUT else "logits")
    assert meta["probabilities"]["method"] in ("temperature", "vector") and meta["probabilities"].get("in_graph", False) == (name in RAW_INPUT)
    assert set(meta["review"]) >= {"coverage", "accepted_accuracy", "target"} and meta["review"]["target"] == 0.998
    assert meta["guard"]["features"] == "image-stats-2" and meta["guard"]["threshold"] > 0
    assert 1 <= len(meta["golden"]["images"]) <= 3
    assert meta["input"]["shape"] == [1, *run.spec.size, 3]
    if precision == "int8":
        assert meta["quantization"] == "qat"
        assert meta["calibration"]["count"] == _manifest(tiny_export)["calibration"]["count"]
    else:
        assert meta["quantization"] is None and meta["calibration"] is None


def test_int8_tflite_is_full_integer_with_io_quantisation_from_the_interpreter(tiny_export):
    from ai_edge_litert.interpreter import Interpreter

    path = tiny_export / "model_int8.tflite"
    interpreter = Interpreter(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    meta = metadata.read_tflite(path)
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert (meta["input"]["scale"], meta["input"]["zero_point"]) == pytest.approx(inp["quantization"])
    assert (meta["output"]["scale"], meta["output"]["zero_point"]) == pytest.approx(out["quantization"])
    # Full-integer: every op computes on int8/int32 tensors (float32 only for none).
    types = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert types <= {"int8", "int32"}, types


def test_int8_onnx_is_static_per_channel_qdq(tiny_export):
    import onnx

    model = onnx.load(tiny_export / "model_int8.onnx")
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "DynamicQuantizeLinear" not in ops  # static: activation ranges fixed at export
    inits = {t.name: t for t in model.graph.initializer}
    weight_scales = [
        inits[node.input[1]] for node in model.graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and inits[node.input[0]].data_type == onnx.TensorProto.INT8
        and len(inits[node.input[0]].dims) == 4
    ]
    assert weight_scales and any(len(s.dims) == 1 and s.dims[0] > 1 for s in weight_scales)  # per-channel
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 0  # dynamic batch


def test_artifacts_agree_with_the_float_model(tiny_export, tiny_run):
    from bcc_edge.device.scores import Calibration
    from bcc_edge.keras_predictor import KerasPredictor
    from bcc_edge.models import logits_model

    run = RunDir(tiny_run)
    images, _, bad = load_arrays(run.records("val"), run.spec)
    assert not bad
    logits = KerasPredictor(logits_model(run.load_best_model()), run.spec, run.labels).predict_proba(images)
    for name, (_, precision) in ARTIFACTS.items():
        classifier = EdgeClassifier(tiny_export / name)
        assert classifier.precision == precision and classifier.labels == run.labels
        probs = classifier.predict_proba(images)
        # the float model's logits, calibrated the way this artifact is
        reference = Calibration.from_dict(classifier.metadata["probabilities"]).probabilities(logits)
        assert probs.shape == reference.shape and np.all(np.isfinite(probs))
        # Float conversions are exact up to kernel rounding; INT8 within quantisation error.
        assert np.abs(probs - reference).max() < (1e-3 if precision == "float32" else 0.5)


def test_onnxruntime_runs_the_int8_onnx_on_integer_kernels(tiny_export, tmp_path):
    """The reason for the chosen quantisation settings (export/onnx.py): after onnxruntime's
    graph optimisation no convolution or residual Add is left computing in float."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tiny_export / "model_int8.onnx"), options, providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node}
    assert "QLinearConv" in ops and "QLinearAdd" in ops
    assert not ops & {"Conv", "Add", "MatMul", "Gemm"}, ops
