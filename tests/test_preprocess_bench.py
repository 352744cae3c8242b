"""`bcc-edge bench preprocess` and the function behind it (structure, not timings)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from bcc_edge.bench.preprocess import CONTENDERS, bench_preprocess, format_report
from bcc_edge.cli import app
from bcc_edge.errors import BccError


def test_reports_every_case_with_ratios_to_the_kernel():
    result = bench_preprocess(batch=3, threads=2, rounds=1, min_seconds=1e-4)
    assert result["batch"] == 3 and result["threads"] == 2 and result["kernel"]["simd"]
    cases = {(tuple(c["source"]), tuple(c["target"]), c["output"], c["mode"]) for c in result["cases"]}
    assert cases == {
        (source, target, output, mode)
        for source, target, output in [((363, 360), (224, 224), "float32"), ((1080, 1920), (224, 224), "float32"), ((182, 180), (128, 128), "int8")]
        for mode in ("single", "batch")
    }
    for case in result["cases"]:
        assert case["threads"] == (1 if case["mode"] == "single" else 2)
        ours = case["results"]["bcc_edge"]
        assert ours["ratio"] == 1.0 and ours["us_per_image"] > 0
        assert "us_per_image" in case["results"]["memory_floor"]
        for name in CONTENDERS:
            r = case["results"][name]
            if "skipped" not in r:
                assert r["us_per_image"] > 0
                assert r["ratio"] == pytest.approx(r["us_per_image"] / ours["us_per_image"], rel=0.01, abs=0.006)
    int8 = [c for c in result["cases"] if c["output"] == "int8"]
    assert all("float32 only" in c["results"]["opencv_dnn"]["skipped"] for c in int8)
    text = format_report(result)
    assert all(s in text for s in ("360x363 -> 224x224 float32", "1920x1080", "180x182 -> 128x128 int8", "memory_floor", "opencv_tuned"))


def test_baselines_make_the_kernels_output():
    """Same maths: the tuned OpenCV path within OpenCV's resize tolerance (one grey level)."""
    cv2 = pytest.importorskip("cv2")
    from bcc_edge.bench import preprocess as bench

    image = np.random.default_rng(0).integers(0, 256, (363, 360, 3), dtype=np.uint8)
    for _, spec in bench.CASES:
        ours = spec.apply(image).astype(np.float64)
        theirs = np.asarray(bench._opencv_tuned(cv2, spec)()(image)).view(spec.dtype).astype(np.float64)
        step = 1 / min(spec.std) if spec.output == "float32" else 1 / (min(spec.std) * spec.scale) + 1
        assert np.abs(ours - theirs).max() <= step + 1e-3


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
