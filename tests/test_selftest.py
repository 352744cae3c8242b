"""Golden vectors: every exported artifact passes its selftest on this machine, and planted
faults are caught at the stage where they are (issue 17)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bcc_edge import decode, metadata
from bcc_edge.cli import app
from bcc_edge.device import selftest
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec
from bcc_edge.runtime import EdgeClassifier

ARTIFACTS = ["model_float.tflite", "model_int8.tflite", "model_uint8.tflite", "model_float.onnx", "model_int8.onnx"]


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("name", ARTIFACTS)
def test_every_artifact_passes_its_selftest(tiny_export, name):
    report = EdgeClassifier(tiny_export / name, threads=1).selftest()
    assert report.available and report.passed, report.summary()
    stages = {(c.stage, c.status) for c in report.checks}
    assert ("decode", "exact") in stages and ("preprocess", "exact") in stages
    assert {c.stage for c in report.checks} == set(selftest.STAGES)


def test_selftest_command_prints_a_table_and_json(tiny_export):
    table = cli("selftest", "--model", tiny_export / "model_int8.tflite")
    assert table.exit_code == 0 and "selftest passed" in table.output and "decode" in table.output
    doc = json.loads(cli("selftest", "--model", tiny_export / "model_int8.tflite", "--json").stdout)
    assert doc["passed"] and doc["checks"]


def with_metadata(source, out, change):
    meta = metadata.read_tflite(source)
    change(meta)
    out.write_bytes(metadata.embed_tflite(source.read_bytes(), meta))
    return out


def failing_stage(classifier) -> str:
    report = classifier.selftest()
    assert not report.passed
    return report.first_failure.stage


def test_a_spec_with_other_mean_and_std_fails_at_preprocess(tiny_export, tmp_path):
    def shift(meta):
        meta["preprocess"]["mean"] = [m + 20 for m in meta["preprocess"]["mean"]]

    path = with_metadata(tiny_export / "model_int8.tflite", tmp_path / "m.tflite", shift)
    assert failing_stage(EdgeClassifier(path)) == "preprocess"
    spec = EdgeClassifier(tiny_export / "model_float.onnx").spec
    overridden = EdgeClassifier(tiny_export / "model_float.onnx", spec=PreprocessSpec(spec.size, spec.interpolation, (0, 0, 0), (1, 1, 1), jpeg_draft=spec.jpeg_draft))
    assert failing_stage(overridden) == "preprocess"


def test_another_resize_fails_at_preprocess(tiny_export):
    spec = EdgeClassifier(tiny_export / "model_int8.tflite").spec
    other = "bilinear" if spec.interpolation == "area" else "area"
    classifier = EdgeClassifier(tiny_export / "model_int8.tflite", spec=PreprocessSpec(spec.size, other, spec.mean, spec.std, jpeg_draft=spec.jpeg_draft))
    assert failing_stage(classifier) == "preprocess"


def test_a_decoder_giving_bgr_fails_at_decode(tiny_export, monkeypatch):
    real = decode.decode_bytes
    monkeypatch.setattr(decode, "decode_bytes", lambda *a, **k: np.ascontiguousarray(real(*a, **k)[..., ::-1]))
    report = EdgeClassifier(tiny_export / "model_int8.tflite").selftest()
    assert report.first_failure.stage == "decode" and "rows differ" in report.first_failure.detail


def test_a_tampered_golden_expectation_fails_at_invoke(tiny_export, tmp_path):
    def tamper(meta):
        meta["golden"]["images"][0]["output"][0] += 1

    path = with_metadata(tiny_export / "model_int8.tflite", tmp_path / "m.tflite", tamper)
    report = EdgeClassifier(path).selftest()
    assert report.first_failure.stage == "invoke" and "output 0 is" in report.first_failure.detail


def test_a_model_swapped_under_its_metadata_fails_at_invoke(tiny_export, tmp_path):
    """Same graph, same metadata, other weights: the largest constant buffer perturbed."""
    def perturb(model, schema):
        buffer = max((b for b in model.buffers if b.data is not None), key=lambda b: len(b.data))
        buffer.data = np.roll(np.asarray(buffer.data), 7)

    path = tmp_path / "swapped.tflite"
    path.write_bytes(metadata.repack_tflite((tiny_export / "model_int8.tflite").read_bytes(), perturb))
    assert metadata.read_tflite(path) == metadata.read_tflite(tiny_export / "model_int8.tflite")
    assert failing_stage(EdgeClassifier(path)) == "invoke"


def test_infer_refuses_a_failing_model_and_skip_selftest_overrides(tiny_export, synthetic_data, tmp_path):
    def shift(meta):
        meta["preprocess"]["std"] = [s * 2 for s in meta["preprocess"]["std"]]

    path = with_metadata(tiny_export / "model_int8.tflite", tmp_path / "m.tflite", shift)
    image = next((synthetic_data / "monocyte").iterdir())
    refused = cli("infer", image, "--model", path)
    assert refused.exit_code == 2 and "selftest failed at preprocess" in refused.output and "Traceback" not in refused.output
    assert cli("selftest", "--model", path).exit_code == 1
    assert cli("infer", image, "--model", path, "--skip-selftest").exit_code == 0
    assert cli("count", image, "--model", path).exit_code == 2


def test_an_artifact_without_golden_vectors_still_classifies(tiny_export, synthetic_data, tmp_path):
    path = with_metadata(tiny_export / "model_int8.tflite", tmp_path / "old.tflite", lambda meta: meta.pop("golden"))
    assert not EdgeClassifier(path).selftest().available
    image = next((synthetic_data / "monocyte").iterdir())
    assert cli("infer", image, "--model", path).exit_code == 0
    assert cli("selftest", "--model", path).exit_code == 2


def test_hostile_golden_entries_are_refused(tiny_export, tmp_path):
    def oversize(meta):
        meta["golden"]["images"][0]["jpeg"] = base64.b64encode(b"\xff" * 70000).decode()

    with pytest.raises(ValueError, match="golden"):
        with_metadata(tiny_export / "model_int8.tflite", tmp_path / "m.tflite", oversize)
    assert selftest.golden_problems({"images": [{"jpeg": "!!", "name": "x"}]}, 3)
