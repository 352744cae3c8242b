"""The report writers on a fabricated report dict (no models needed): tables, plots, escaping."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from bcc_edge.evaluate import trust
from bcc_edge.metrics import classification_metrics
from bcc_edge.report import plots
from bcc_edge.report.gallery import thumbnail_uri, worst_errors
from bcc_edge.report.html import render_html
from bcc_edge.report.markdown import render_markdown

LABELS = ["alpha", "beta", "<gamma>"]  # markup in a class name must come out escaped


def _entry(run, file, fmt, precision, nbytes, latency, accuracy, rng, y_true):
    y_pred = np.where(rng.random(len(y_true)) < accuracy, y_true, rng.integers(0, 3, len(y_true)))
    return {
        "id": f"{run}/{file}", "run": run, "file": file, "path": f"/x/{run}/{file}", "format": fmt, "precision": precision,
        "quantization": "qat" if precision == "int8" else None, "status": "ok", "error": None,
        "bytes": nbytes, "kib": nbytes / 1024, "params": 1234,
        "latency_ms": None if latency is None else {stage: {"p50": latency, "p95": latency * 1.2, "p99": latency * 1.5} for stage in ("decode", "preprocess", "invoke")},
        "metrics": classification_metrics(y_true, y_pred, 3), "agreement": None,
        "pareto": {"size": False, "latency": False}, "worst_errors": [],
        "trust": trust(probs_for(y_pred, rng), y_true, None, [0.9, 0.9, None], 3),
        "risk_coverage": {"coverage": [0.5, 0.8, 1.0], "accuracy": [1.0, 0.97, accuracy]},
    }


def probs_for(y_pred, rng):
    p = rng.random((len(y_pred), 3)) * 0.3
    p[np.arange(len(y_pred)), y_pred] += 0.7
    return p / p.sum(axis=1, keepdims=True)


def fake_report() -> dict:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 60)
    entries = [
        _entry("seed1", "best.keras", "keras", "float32", 900_000, None, 0.95, rng, y_true),
        _entry("seed1", "model_int8.tflite", "tflite", "int8", 300_000, 0.26, 0.93, rng, y_true),
        _entry("seed1", "model_float.onnx", "onnx", "float32", 950_000, 0.8, 0.95, rng, y_true),
        _entry("seed2", "model_int8.onnx", "onnx", "int8", 320_000, 0.4, 0.9, rng, y_true),
    ]
    entries[1]["agreement"] = {"reference": "seed1/best.keras", "top1": 0.97, "max_abs_prob_diff": 0.05}
    entries[1]["pareto"] = {"size": True, "latency": True}
    entries[1]["worst_errors"] = [{"path": "/nowhere/a.jpg", "true": "alpha", "pred": "beta", "confidence": 0.9, "true_class_prob": 0.05}]
    failed = {"id": "seed2/model_float.tflite", "run": "seed2", "file": "model_float.tflite", "path": "/x", "format": "tflite",
              "precision": "float32", "status": "failed", "error": "not a TFLite model | broken"}
    return {
        "format_version": 1, "toolkit_version": "0.1.0", "created": "2025-01-01T00:00:00Z",
        "data": {"path": "/data/<d>", "split": "val", "selection": "split 'val' of the run", "count": 60, "labels": LABELS,
                 "class_counts": [20, 20, 20], "skipped": []},
        "latency": {"batch": 1, "threads": 1, "images": 32, "passes": 3, "statistic": "p50"},
        "artifacts": [*entries, failed],
        "notes": ["a note with <markup>"],
    }


def _decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    image.load()
    return image


def test_plots_are_decodable_pngs():
    report = fake_report()
    ok = [e for e in report["artifacts"] if e["status"] == "ok"]
    for uri in (
        plots.tradeoff(ok, "bytes", [e["pareto"]["size"] for e in ok], "size", "Accuracy vs size"),
        plots.confusion(ok[0]["metrics"]["confusion"], LABELS, "cm"),
        plots.per_class_f1(ok, LABELS),
    ):
        image = _decode(uri)
        assert image.width > 200 and image.height > 200


def test_markdown_has_every_artifact_and_the_failure():
    report = fake_report()
    text = render_markdown(report)
    for entry in report["artifacts"]:
        assert entry["file"] in text
    assert "## Failed artifacts" in text and "not a TFLite model \\| broken" in text  # pipe escaped inside a cell
    assert "97.00% vs seed1/best.keras" in text and "(reference)" in text
    assert "a note with \\<markup\\>" in text and "<markup>" not in text  # no raw HTML from notes
    assert "## Trusting a prediction" in text and "review coverage" in text and "Recall change against the float model" in text
    assert "<gamma>" not in text and "\\<gamma\\>" in text  # nor from labels
    # per-class table row of the first artifact
    m = report["artifacts"][0]["metrics"]
    assert f"| alpha | {100 * m['per_class']['precision'][0]:.2f}% |" in text


@pytest.mark.parametrize("label", ["$\\foo$", "$x$ and $", "50$ \\alpha"])
def test_plots_take_any_label_text(label):
    report = fake_report()
    ok = [e for e in report["artifacts"] if e["status"] == "ok"]
    labels = [label, "beta", "gamma"]
    _decode(plots.confusion(ok[0]["metrics"]["confusion"], labels, f"run {label}"))
    _decode(plots.per_class_f1(ok, labels))


def test_html_is_self_contained_with_plots_and_escaped_text():
    report = fake_report()
    page = render_html(report, {"/nowhere/a.jpg": None})
    images = re.findall(r'<img src="(data:image/png;base64,[^"]+)"', page)
    # 2 trade-off plots + per-class F1 + reliability + risk-coverage + one confusion matrix per successful artifact
    assert len(images) == 5 + 4
    for uri in images:
        _decode(uri)
    assert "<gamma>" not in page and "&lt;gamma&gt;" in page
    assert "<markup>" not in page and "&lt;markup&gt;" in page
    assert "(unreadable)" in page  # gallery entry whose file is gone
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_html_without_any_latency_skips_that_plot():
    report = fake_report()
    for entry in report["artifacts"]:
        if entry["status"] == "ok":
            entry["latency_ms"] = None
    page = render_html(report, {})
    assert "Accuracy vs size" in page and "Accuracy vs latency" not in page


def test_worst_errors_are_most_confident_first_per_class():
    probs = np.array([
        [0.6, 0.4, 0.0],  # true 0, right
        [0.2, 0.7, 0.1],  # true 0, wrong (0.7)
        [0.1, 0.0, 0.9],  # true 0, wrong (0.9) -> worst
        [0.5, 0.45, 0.05],  # true 1, wrong (0.5)
        [0.0, 1.0, 0.0],  # true 1, right
    ])
    errors = worst_errors(probs, np.array([0, 0, 0, 1, 1]), [f"p{i}" for i in range(5)], ["a", "b", "c"], per_class=5)
    assert [(e["path"], e["true"], e["pred"]) for e in errors] == [("p2", "a", "c"), ("p1", "a", "b"), ("p3", "b", "a")]
    assert errors[0]["confidence"] == pytest.approx(0.9) and errors[0]["true_class_prob"] == pytest.approx(0.1)
    assert len(worst_errors(probs, np.array([0, 0, 0, 1, 1]), list("abcde"), ["a", "b", "c"], per_class=1)) == 2


def test_thumbnail_is_small_jpeg_and_none_for_unreadable(tmp_path):
    Image.fromarray(np.full((300, 200, 3), 128, np.uint8)).save(tmp_path / "a.png")
    uri = thumbnail_uri(str(tmp_path / "a.png"), size=64)
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.format == "JPEG" and max(image.size) == 64
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert thumbnail_uri(str(tmp_path / "bad.jpg")) is None
