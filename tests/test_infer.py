"""`bcc-edge infer` and bcc_edge.infer: inputs, the pipeline, writers, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bcc_edge import infer, runtime
from bcc_edge.cli import app
from bcc_edge.errors import BccError
from bcc_edge.runtime import EdgeClassifier, Prediction

runner = CliRunner()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """5 good JPEGs (PBC-sized) and the usual junk: empty, truncated, not an image."""
    from PIL import Image

    from bcc_edge.synthetic import CLASSES, make_cell_image

    root = tmp_path_factory.mktemp("infer") / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(make_cell_image(CLASSES[i % 4], rng, 363, 360)).save(root / f"cell{i}.jpg", quality=90)
    (root / "empty.jpg").write_bytes(b"")
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "trunc.jpg").write_bytes((root / "cell0.jpg").read_bytes()[:3000])
    return root


GOOD = [f"cell{i}.jpg" for i in range(5)]
BAD = [".DS_Store", "empty.jpg", "trunc.jpg"]


def rows_of(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


# ------------------------------------------------------------------ the acceptance scenario


def test_jsonl_reports_every_file_and_exits_1_when_some_fail(tiny_export, image_dir):
    result = runner.invoke(app, ["infer", "--model", str(tiny_export / "model_int8.tflite"), str(image_dir), "--format", "jsonl"])
    assert result.exit_code == 1, result.output
    rows = rows_of(result.stdout)
    assert sorted(Path(r["path"]).name for r in rows) == sorted(GOOD + BAD)
    good = [r for r in rows if not r["error"]]
    bad = [r for r in rows if r["error"]]
    assert sorted(Path(r["path"]).name for r in good) == GOOD
    for row in bad:
        assert Path(row["path"]).name in row["error"] and row["label"] is None and row["top_k"] == []
    labels = EdgeClassifier(tiny_export / "model_int8.tflite").labels
    for row in good:
        assert row["label"] in labels and 0 <= row["score"] <= 1 and row["top_k"][0]["label"] == row["label"]
    assert "3 of 8 inputs could not be classified" in result.stderr


def test_onnx_json_exits_0_on_good_images(tiny_export, image_dir):
    args = ["infer", "--model", str(tiny_export / "model_int8.onnx"), str(image_dir / "cell1.jpg"), str(image_dir / "cell2.jpg")]
    result = runner.invoke(app, args + ["--format", "json", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [Path(r["path"]).name for r in rows] == ["cell1.jpg", "cell2.jpg"]
    assert all(len(r["top_k"]) == 2 and r["error"] is None for r in rows)


@pytest.mark.parametrize("name", ["model_float.tflite", "model_float.onnx", "model_int8.onnx"])
def test_every_artifact_agrees_with_the_library(tiny_export, image_dir, name):
    model = tiny_export / name
    paths = [str(image_dir / g) for g in GOOD]
    result = runner.invoke(app, ["infer", "-m", str(model), *paths, "-f", "jsonl", "-k", "3", "-t", "2", "-b", "2"])
    assert result.exit_code == 0, result.output
    classifier = EdgeClassifier(model)
    expected = classifier.predict([classifier.load(p) for p in paths], top_k=3)
    assert [r["top_k"] for r in rows_of(result.stdout)] == [p.to_dict()["top_k"] for p in expected]


# ------------------------------------------------------------------ formats and output file


def test_csv_has_one_column_pair_per_extra_class(tiny_export, image_dir):
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_float.tflite"), str(image_dir), "-f", "csv", "-k", "2"])
    assert result.exit_code == 1
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(table[0]) == ["path", "label", "score", "label_2", "score_2", "status", "reasons", "error"]
    assert len(table) == 8
    for row in table:
        assert bool(row["error"]) == (Path(row["path"]).name in BAD)
        assert bool(row["label"]) != bool(row["error"])


def test_table_names_each_file(tiny_export, image_dir):
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_float.tflite"), str(image_dir)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 8
    assert sum(line.startswith("ERROR") for line in lines) == 3
    assert all(any(name in line for name in GOOD + BAD) for line in lines)


def test_output_file_is_written_whole(tiny_export, image_dir, tmp_path):
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_int8.tflite"), str(image_dir), "-f", "json", "-o", str(out)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(json.loads(out.read_text())) == 8
    assert os.listdir(tmp_path) == ["results.json"]  # no temp file left behind


def test_failed_run_leaves_no_output_file(tiny_export, image_dir, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        yield Prediction("x.jpg", "a", 1.0, (("a", 1.0),))
        raise KeyboardInterrupt

    monkeypatch.setattr(infer, "iter_predictions", explode)
    out = tmp_path / "results.jsonl"
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_int8.tflite"), str(image_dir), "-f", "jsonl", "-o", str(out)])
    assert result.exit_code == 130
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_file_names_that_are_not_utf8_are_written_safely(tiny_export, image_dir, tmp_path, fmt):
    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsdecode(b"cell\xff.jpg")  # Linux allows any bytes; Python holds them as surrogates
    (folder / name).write_bytes((image_dir / "cell0.jpg").read_bytes())
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_int8.tflite"), str(folder), "-f", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    if fmt in ("json", "jsonl"):
        (row,) = json.loads(text) if fmt == "json" else rows_of(text)
        assert row["path"] == str(folder / name)  # lossless: os.fsencode gives the original bytes
    else:
        assert "cell\\xff.jpg" in text


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_writers_handle_no_rows_and_rows(fmt):
    for predictions in ([], [Prediction("a.jpg", "x", 0.5, (("x", 0.5), ("y", 0.5))), Prediction("b.jpg", error="bad")]):
        stream = io.StringIO()
        writer = infer.ResultWriter(stream, fmt, top_k=2, label_width=1)
        writer.begin()
        for p in predictions:
            writer.write(p)
        writer.end()
        text = stream.getvalue()
        if fmt == "json":
            assert json.loads(text) == [p.to_dict() for p in predictions]
        elif fmt == "jsonl":
            assert rows_of(text) == [p.to_dict() for p in predictions]
        elif fmt == "csv":
            assert len(list(csv.reader(io.StringIO(text)))) == 1 + len(predictions)
        else:
            assert len(text.splitlines()) == len(predictions)


# ------------------------------------------------------------------ inputs


def test_expand_inputs_walks_globs_and_reads_stdin(tmp_path):
    for rel in ["b/2.jpg", "b/1.jpg", "a.jpg", ".hidden/x.jpg", "b/.DS_Store", "c/d/3.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    rel = lambda paths: [os.path.relpath(p, tmp_path) for p in paths]  # noqa: E731
    assert rel(infer.expand_inputs([str(tmp_path / "b")])) == ["b/.DS_Store", "b/1.jpg", "b/2.jpg"]
    assert rel(infer.expand_inputs([str(tmp_path)])) == ["a.jpg", "b/.DS_Store", "b/1.jpg", "b/2.jpg", "c/d/3.png"]
    assert rel(infer.expand_inputs([str(tmp_path / "**" / "*.jpg")])) == ["a.jpg", "b/1.jpg", "b/2.jpg"]
    stdin = io.StringIO(f"{tmp_path / 'a.jpg'}\n\n{tmp_path / 'c/d/3.png'}\r\n")
    assert rel(infer.expand_inputs(["-", str(tmp_path / "b/1.jpg")], stdin)) == ["a.jpg", "c/d/3.png", "b/1.jpg"]
    # Missing paths and empty globs pass through to get their own error row.
    assert list(infer.expand_inputs(["missing.jpg", str(tmp_path / "*.gif")])) == ["missing.jpg", str(tmp_path / "*.gif")]


def test_paths_from_stdin(tiny_export, image_dir):
    paths = "\n".join(str(image_dir / name) for name in ["cell3.jpg", "nope.jpg", "cell0.jpg"])
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_int8.tflite"), "-", "-f", "jsonl"], input=paths + "\n")
    assert result.exit_code == 1
    rows = rows_of(result.stdout)
    assert [Path(r["path"]).name for r in rows] == ["cell3.jpg", "nope.jpg", "cell0.jpg"]
    assert "no such file" in rows[1]["error"]


def test_read_labels_forms(tmp_path):
    assert infer.read_labels("a, b,c") == ["a", "b", "c"]
    (tmp_path / "l.txt").write_text("x\n\ny\n")
    assert infer.read_labels(str(tmp_path / "l.txt")) == ["x", "y"]
    (tmp_path / "l.json").write_text('["p", "q"]')
    assert infer.read_labels(str(tmp_path / "l.json")) == ["p", "q"]
    with pytest.raises(BccError, match="labels file not found"):
        infer.read_labels(str(tmp_path / "missing.txt"))


# ------------------------------------------------------------------ the pipeline


@pytest.mark.parametrize("workers, batch_size", [(1, 1), (1, 4), (3, 2), (2, 16)])
def test_pipeline_keeps_input_order_whatever_the_threading(tiny_export, image_dir, workers, batch_size):
    classifier = EdgeClassifier(tiny_export / "model_int8.tflite")
    paths = [str(image_dir / n) for n in GOOD + BAD + GOOD[::-1]]
    predictions = list(runtime.iter_predictions(classifier, paths, top_k=2, batch_size=batch_size, workers=workers))
    reference = list(runtime.iter_predictions(classifier, paths, top_k=2, batch_size=1, workers=1))
    assert predictions == reference
    assert [p.path for p in predictions] == paths
    assert [p.ok for p in predictions] == [Path(p).name in GOOD for p in paths]


def test_pipeline_streams_without_reading_all_inputs_first(tiny_export, image_dir):
    classifier = EdgeClassifier(tiny_export / "model_int8.tflite")
    consumed = []

    def endless():
        while True:
            consumed.append(1)
            yield str(image_dir / "cell0.jpg")

    stream = runtime.iter_predictions(classifier, endless(), batch_size=2, workers=2)
    first = next(stream)
    assert first.ok
    stream.close()
    assert len(consumed) <= 2 * 2 * 2 + 2  # bounded by the batches in flight


# ------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "xml"], "unknown --format"),
        (["--top-k", "0"], "top-k"),
        (["--threads", "0"], "threads"),
        (["--model", "missing.tflite"], "model not found"),
        (["--backend", "onnxruntime"], "cannot run a .tflite"),
    ],
)
def test_usage_errors_exit_2_without_traceback(tiny_export, image_dir, args, message):
    base = ["infer", str(image_dir / "cell0.jpg")]
    if "--model" not in args:
        base += ["--model", str(tiny_export / "model_int8.tflite")]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_no_inputs_found_is_a_usage_error(tiny_export, tmp_path):
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_int8.tflite"), str(tmp_path)])
    assert result.exit_code == 2 and "no input files" in result.output


def test_without_model_uses_the_bundled_one_or_says_so(tiny_export, image_dir, monkeypatch, tmp_path):
    from bcc_edge import runtime

    monkeypatch.setattr(runtime, "BUNDLED_MODEL", tmp_path / "absent.tflite")
    result = runner.invoke(app, ["infer", str(image_dir / "cell0.jpg")])
    assert result.exit_code == 2 and "no --model given" in result.output
    monkeypatch.setattr(runtime, "BUNDLED_MODEL", tiny_export / "model_int8.tflite")
    result = runner.invoke(app, ["infer", str(image_dir / "cell0.jpg"), "-f", "jsonl"])
    assert result.exit_code == 0 and rows_of(result.stdout)[0]["error"] is None


def test_missing_backend_names_the_package(tiny_export, image_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_int8.onnx"), str(image_dir / "cell0.jpg")])
    assert result.exit_code == 2 and "pip install onnxruntime" in result.output
    result = runner.invoke(app, ["infer", "-m", str(tiny_export / "model_int8.tflite"), str(image_dir / "cell0.jpg")])
    assert result.exit_code == 0
