"""`bcc-edge bench preprocess` and the function behind it (structure, not timings)."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from bcc_edge.bench.preprocess import CONTENDERS, bench_preprocess, format_report
from bcc_edge.cli import app
from bcc_edge.errors import BccError


def test_reports_every_case_with_ratios_to_the_kernel():
    result = bench_preprocess(batch=3, threads=2, rounds=1, min_seconds=1e-4)
    assert result["target"] == [224, 224] and result["batch"] == 3 and result["threads"] == 2
    cases = {(tuple(c["source"]), c["mode"]): c for c in result["cases"]}
    assert set(cases) == {(s, m) for s in [(363, 360), (1080, 1920)] for m in ("single", "batch")}
    for case in result["cases"]:
        assert case["threads"] == (1 if case["mode"] == "single" else 2)
        ours = case["results"]["bcc_edge"]
        assert ours["ratio"] == 1.0 and ours["us_per_image"] > 0
        for name in CONTENDERS:
            r = case["results"][name]
            if "skipped" not in r:
                assert r["us_per_image"] > 0
                assert r["ratio"] == pytest.approx(r["us_per_image"] / ours["us_per_image"], rel=0.01, abs=0.006)
    text = format_report(result)
    assert "360x363" in text and "1920x1080" in text and "bcc_edge" in text


def test_a_missing_baseline_library_is_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    result = bench_preprocess(batch=2, threads=1, rounds=1, min_seconds=1e-4)
    for case in result["cases"]:
        assert "not installed" in case["results"]["opencv"]["skipped"]
        assert "us_per_image" in case["results"]["pillow"]
    assert "opencv: skipped" in format_report(result)


@pytest.mark.parametrize("kwargs", [{"batch": 0}, {"threads": 0}, {"rounds": 0}, {"min_seconds": 0}])
def test_bad_arguments_are_user_errors(kwargs):
    with pytest.raises(BccError):
        bench_preprocess(**kwargs)


def test_cli_json():
    result = CliRunner().invoke(app, ["bench", "preprocess", "--json", "--batch", "2", "--threads", "1", "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["benchmark"] == "preprocess"


def test_cli_rejects_a_zero_batch():
    result = CliRunner().invoke(app, ["bench", "preprocess", "--batch", "0"])
    assert result.exit_code == 2
