"""--provider for ONNX models: refused clearly where the provider is absent, and what really
ran is read from a profile (JetPack's onnxruntime lists CUDA, then falls back to the CPU)."""

from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from bcc_edge import backends
from bcc_edge.cli import app
from bcc_edge.errors import BccError
from bcc_edge.runtime import EdgeClassifier


def test_an_absent_provider_is_one_line_naming_what_to_install(tiny_export, synthetic_data):
    with pytest.raises(BccError, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        EdgeClassifier(tiny_export / "model_int8.onnx", provider="cuda")
    image = next((synthetic_data / "monocyte").iterdir())
    result = CliRunner().invoke(app, ["infer", str(image), "--model", str(tiny_export / "model_int8.onnx"), "--provider", "tensorrt"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "TensorrtExecutionProvider" in result.output
    with pytest.raises(BccError, match="applies to .onnx models"):
        EdgeClassifier(tiny_export / "model_int8.tflite", provider="cuda")
    with pytest.raises(BccError, match="unknown --provider"):
        EdgeClassifier(tiny_export / "model_int8.onnx", provider="gpu")


def test_the_chain_asks_for_the_fallbacks_that_exist():
    assert backends._provider_chain("tensorrt", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) == (
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider",
    )
    assert backends._provider_chain("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert backends._provider_chain("cpu", ["CPUExecutionProvider"]) == ("CPUExecutionProvider",)


def test_the_provider_that_ran_is_read_from_the_profile():
    events = [
        {"cat": "Session", "name": "model_run"},
        *[{"cat": "Node", "args": {"provider": "CUDAExecutionProvider", "op_name": "Conv"}}] * 40,
        *[{"cat": "Node", "args": {"provider": "CPUExecutionProvider", "op_name": "Softmax"}}] * 2,
    ]
    counts = backends.providers_of_nodes(events)
    assert counts == Counter({"CUDAExecutionProvider": 40, "CPUExecutionProvider": 2})
    assert backends.describe_providers("cuda", counts) == "cuda (40 nodes), cpu (2 nodes); cuda requested"
    assert backends.describe_providers("cuda", Counter({"CUDAExecutionProvider": 9})) == "cuda"
    # listed, then fallen back: everything ran on the CPU
    assert backends.describe_providers("cuda", Counter({"CPUExecutionProvider": 42})) == "cpu (42 nodes); cuda requested"
    assert backends.describe_providers("cuda", Counter()).startswith("unknown")


def test_the_cpu_provider_reports_itself(tiny_export):
    assert EdgeClassifier(tiny_export / "model_int8.onnx", provider="cpu").provider == "cpu"


def test_a_listed_provider_that_falls_back_is_reported_as_what_ran(tiny_export, monkeypatch):
    """As JetPack builds do: CUDA is listed, the session falls back to the CPU."""
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    classifier = EdgeClassifier(tiny_export / "model_int8.onnx", provider="cuda")
    assert classifier.provider.startswith("cpu (") and classifier.provider.endswith("cuda requested")
    assert classifier.describe()["provider"] == classifier.provider
