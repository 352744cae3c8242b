"""`bcc-edge bench infer`: the report's structure (timings themselves are never asserted)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bcc_edge import jpeg
from bcc_edge.bench.infer import format_report, run_bench
from bcc_edge.cli import app
from bcc_edge.errors import BccError


def test_run_bench_reports_stages_throughput_and_ratios(tiny_export, tmp_path):
    from bcc_edge.synthetic import write_image_folder

    folder = write_image_folder(tmp_path / "imgs", per_class=2, size=(50, 60))
    (folder / "broken.jpg").write_bytes(b"nope")
    result = run_bench(tiny_export / "model_int8.tflite", folder, threads=2, seconds=0.01)
    assert result["images"] == 8  # the unreadable file is left out
    assert set(result["stages_ms"]) == {"decode", "preprocess", "invoke"}
    for quantiles in result["stages_ms"].values():
        assert 0 < quantiles["p50"] <= quantiles["p95"] <= quantiles["p99"]
    assert set(result["pipeline_images_per_second"]) == {"1", "2"}
    for n, ips in result["pipeline_images_per_second"].items():
        assert result["speedup_vs_naive"][n] == pytest.approx(ips / result["naive_images_per_second"])
    assert result["peak_rss_mib"] > 0
    assert result["jpeg_decoder"] == ("simplejpeg" if jpeg.simplejpeg is not None else "pillow")
    text = format_report(result)
    assert "naive loop" in text and "p99" in text and "2 threads" in text
    assert f"JPEG decoder {result['jpeg_decoder']}" in text


def test_the_report_names_the_pillow_fallback(tiny_export, monkeypatch):
    monkeypatch.setattr(jpeg, "simplejpeg", None)
    assert run_bench(tiny_export / "model_int8.tflite", threads=1, seconds=0.01)["jpeg_decoder"] == "pillow"


def test_cli_json_on_synthetic_images(tiny_export):
    result = CliRunner().invoke(app, ["bench", "infer", "--model", str(tiny_export / "model_int8.onnx"), "--json", "--seconds", "0.1", "-t", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 64 and "360x363" in report["source"]
    assert report["backend"] == "onnxruntime" and list(report["pipeline_images_per_second"]) == ["1"]


def test_images_must_be_a_directory_with_images(tiny_export, tmp_path):
    with pytest.raises(BccError, match="not a directory"):
        run_bench(tiny_export / "model_int8.tflite", tmp_path / "missing")
    (tmp_path / "junk.jpg").write_bytes(b"")
    result = CliRunner().invoke(app, ["bench", "infer", "-m", str(tiny_export / "model_int8.tflite"), "--images", str(tmp_path)])
    assert result.exit_code == 2 and "no readable images" in result.output
