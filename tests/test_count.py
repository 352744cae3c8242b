"""`bcc-edge count`: the differential count with Wilson intervals, per sample."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from typer.testing import CliRunner

from bcc_edge.cli import app
from bcc_edge.device import count as counting
from bcc_edge.runtime import Prediction


@pytest.mark.parametrize(
    "k, n, interval",
    [(5, 10, (0.2366, 0.7634)), (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)), (1, 1, (0.2065, 1.0)), (27, 300, (0.0626, 0.1278))],
)
def test_wilson_intervals_match_published_values(k, n, interval):
    lo, hi = counting.wilson(k, n)
    assert (round(lo, 4), round(hi, 4)) == interval


def test_wilson_of_nothing_is_everything():
    assert counting.wilson(0, 0) == (0.0, 1.0)


class Model:
    labels = ["a", "b", "c"]
    guard = None

    def describe(self):
        return {"labels": self.labels}


def p(path, label, status="ok", reasons=()):
    return Prediction(path, label, 0.9, ((label, 0.9),), status=status, reasons=tuple(reasons))


def test_samples_count_accepted_referred_and_errors():
    rows = [
        p("s1/x.jpg", "a"), p("s1/y.jpg", "a"), p("s1/z.jpg", "b", "review", ["low_confidence"]),
        Prediction("s1/bad.jpg", error="broken"), p("s2/u.jpg", "c"),
    ]
    doc = counting.count(rows, Model(), by_folder=True)
    s1, s2 = doc["samples"]
    assert (s1["sample"], s1["n"], s1["accepted"], s1["review"], s1["errors"]) == ("s1", 4, 2, 1, 1)
    assert s1["classes"]["a"]["count"] == 2 and s1["classes"]["a"]["percent"] == 100.0 and s1["classes"]["b"]["count"] == 0
    assert s1["with_referred"]["b"]["count"] == 1 and s1["with_referred"]["a"]["percent"] == pytest.approx(200 / 3, abs=1e-3)
    lo, hi = s1["classes"]["a"]["ci95"]
    assert (round(lo, 2), hi) == (34.24, 100.0)
    assert s2["classes"]["c"]["count"] == 1
    assert s1["drift"] == {"checked": False, "flagged": 0, "share": 0.0, "warn_share": None, "warning": False}
    assert [s["n"] for s in counting.count(rows, Model())["samples"]] == [5]


def test_every_output_format():
    doc = counting.count([p("s/x.jpg", "a"), p("s/y.jpg", "b")], Model())
    out = io.StringIO()
    counting.write(doc, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["label"] for r in rows] == ["a", "b", "c"] and rows[0]["percent"] == "50.0" and rows[0]["ci95_low"]
    out = io.StringIO()
    counting.write(doc, "json", out)
    assert json.loads(out.getvalue())["samples"][0]["n"] == 2
    out = io.StringIO()
    counting.write(doc, "table", out)
    assert "2 cells, 2 accepted" in out.getvalue()


def test_cli_counts_each_folder(tiny_export, synthetic_data, tmp_path):
    for name in ("s1", "s2"):
        shutil.copytree(synthetic_data / "monocyte", tmp_path / name)
    (tmp_path / "s2" / "broken.jpg").write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["count", str(tmp_path / "s1"), str(tmp_path / "s2"), "--by-folder", "--format", "json", "--model", str(tiny_export / "model_int8.tflite")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    samples = sorted(doc["samples"], key=lambda s: s["n"])
    assert [s["n"] for s in samples] == [16, 17] and samples[1]["errors"] == 1
    for s in samples:
        assert s["accepted"] + s["review"] + s["errors"] == s["n"]
        assert sum(c["count"] for c in s["classes"].values()) == s["accepted"]
        assert "drift" in s and s["drift"]["checked"]
    assert doc["model"]["labels"] and doc["model"]["review"] is not None
