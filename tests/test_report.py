"""`bcc-edge report` end to end on the tiny synthetic run: every number in report.json against an
independent computation, the HTML in a real headless browser, failures and bad input."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bcc_edge.cli import app
from bcc_edge.decode import load_image
from bcc_edge.preprocess import PreprocessSpec, reference_apply
from bcc_edge.report import ReportOptions, make_report
from test_metrics import reference_metrics

TWO = ("model_int8.tflite", "model_float.onnx")


def _export_with(tiny_export: Path, dest: Path, files) -> Path:
    """A copy of the tiny export that lists only `files`."""
    shutil.copytree(tiny_export, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["file"] in files]
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


@pytest.fixture(scope="module")
def two_artifact_report(tiny_export, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    export = _export_with(tiny_export, root / "exp", TWO)
    run_dir = Path(json.loads((export / "manifest.json").read_text())["run_dir"])
    data_root = Path(json.loads((run_dir / "data.json").read_text())["data_root"])
    report = make_report([str(export)], str(data_root), root / "rep", ReportOptions(include_keras=False, latency_images=4))
    return export, run_dir, report, root / "rep"


# ----------------------------------------------------------------------------- the oracle


def _val_records(run_dir: Path) -> list[tuple[str, int]]:
    labels = json.loads((run_dir / "labels.json").read_text())
    root = Path(json.loads((run_dir / "data.json").read_text())["data_root"])
    with (run_dir / "splits.csv").open() as f:
        return [(str(root / row["path"]), labels.index(row["label"])) for row in csv.DictReader(f) if row["split"] == "val"]


def _tflite_probs(path: Path, spec: PreprocessSpec, image_paths) -> np.ndarray:
    """The interpreter called directly, quantisation done here from its tensor details."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    input_spec = spec.with_output(np.dtype(inp["dtype"]).name, in_scale, in_zero) if in_scale else spec
    rows = []
    for image_path in image_paths:
        interpreter.set_tensor(inp["index"], reference_apply(input_spec, load_image(image_path, spec))[None])
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"])[0].astype(np.float64)
        rows.append((raw - out_zero) * out_scale if out_scale else raw)
    return np.array(rows)


def _onnx_probs(path: Path, spec: PreprocessSpec, image_paths) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    assert session.get_inputs()[0].type == "tensor(float)"  # our ONNX INT8 is QDQ with float I/O
    return np.array([session.run(None, {name: reference_apply(spec, load_image(p, spec))[None]})[0][0] for p in image_paths], np.float64)


def _calibrated(path: Path, outputs: np.ndarray) -> np.ndarray:
    """Logits outputs calibrated by hand from the artifact's stored calibration."""
    from bcc_edge import metadata

    meta = metadata.read_artifact(path)
    doc = meta["probabilities"]
    z = outputs.astype(np.float32).astype(np.float64)  # the runtime dequantises to float32
    z = z * np.array(doc["scale"]) + np.array(doc["bias"]) if doc["method"] == "vector" else z / doc["temperature"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)  # and hands back float32


def _expected_pareto(costs, accuracies):
    return [not any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for c2, a2 in zip(costs, accuracies)) for c, a in zip(costs, accuracies)]


def test_every_number_matches_an_independent_computation(two_artifact_report):
    export, run_dir, report, _ = two_artifact_report
    records = _val_records(run_dir)
    image_paths = [p for p, _ in records]
    y_true = [k for _, k in records]
    labels = json.loads((run_dir / "labels.json").read_text())
    spec = PreprocessSpec.from_dict(json.loads((run_dir / "preprocess.json").read_text()))

    data = report["data"]
    assert data["labels"] == labels and data["count"] == len(records) and data["skipped"] == []
    assert data["class_counts"] == [y_true.count(k) for k in range(len(labels))]
    assert "saved split" in data["selection"]
    assert report["latency"] == {"batch": 1, "threads": 1, "images": min(4, len(records)), "passes": 3, "statistic": "p50"}

    probs = {"model_int8.tflite": _calibrated(export / "model_int8.tflite", _tflite_probs(export / "model_int8.tflite", spec, image_paths)),
             "model_float.onnx": _calibrated(export / "model_float.onnx", _onnx_probs(export / "model_float.onnx", spec, image_paths))}
    entries = {e["file"]: e for e in report["artifacts"]}
    assert sorted(entries) == sorted(TWO)
    for file, entry in entries.items():
        assert entry["status"] == "ok" and entry["error"] is None
        size = (export / file).stat().st_size
        assert entry["bytes"] == size and entry["kib"] == pytest.approx(size / 1024)
        assert entry["params"] is None  # no Keras model asked for: no parameter count
        y_pred = probs[file].argmax(axis=1).tolist()
        want = reference_metrics(y_true, y_pred, len(labels))
        got = entry["metrics"]
        assert got["count"] == len(records)
        for key in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert got[key] == pytest.approx(want[key]), (file, key)
        for key in ("precision", "recall", "f1"):
            assert got["per_class"][key] == pytest.approx(want[key]), (file, key)
        assert got["per_class"]["support"] == want["support"]
        assert got["confusion"] == want["confusion"]
        for stage in ("decode", "preprocess", "invoke"):
            p = entry["latency_ms"][stage]
            assert 0 < p["p50"] <= p["p95"] <= p["p99"]
        # the gallery: each class's misclassified images, most confident first
        predicted = probs[file].argmax(axis=1)
        confidence = probs[file].max(axis=1)
        expected_errors = []
        for k in range(len(labels)):
            wrong = [i for i in range(len(records)) if y_true[i] == k and predicted[i] != k]
            wrong.sort(key=lambda i: -confidence[i])
            expected_errors += [(image_paths[i], labels[k], labels[predicted[i]]) for i in wrong[:4]]
        assert [(e["path"], e["true"], e["pred"]) for e in entry["worst_errors"]] == expected_errors

    # agreement with the float model: the float ONNX stands in for the Keras model left out
    float_id = entries["model_float.onnx"]["id"]
    assert entries["model_float.onnx"]["agreement"] is None
    agreement = entries["model_int8.tflite"]["agreement"]
    assert agreement["reference"] == float_id
    a, b = probs["model_int8.tflite"], probs["model_float.onnx"]
    assert agreement["top1"] == pytest.approx(np.mean(a.argmax(1) == b.argmax(1)))
    assert agreement["max_abs_prob_diff"] == pytest.approx(np.abs(a - b).max(), abs=1e-5)
    assert agreement["mean_abs_prob_diff"] == pytest.approx(np.abs(a - b).max(axis=1).mean(), abs=1e-5)

    ordered = [entries[f] for f in TWO]
    accuracies = [e["metrics"]["accuracy"] for e in ordered]
    assert [e["pareto"]["size"] for e in ordered] == _expected_pareto([e["bytes"] for e in ordered], accuracies)
    assert [e["pareto"]["latency"] for e in ordered] == _expected_pareto([e["latency_ms"]["invoke"]["p50"] for e in ordered], accuracies)
    assert any("best.keras not evaluated" in note for note in report["notes"])


def test_files_on_disk_match_the_returned_report(two_artifact_report):
    _, _, report, out = two_artifact_report
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert json.loads((out / "report.json").read_text()) == report
    markdown = (out / "report.md").read_text()
    for entry in report["artifacts"]:
        assert f"## {entry['id']}" in markdown
        assert f"{100 * entry['metrics']['accuracy']:.2f}%" in markdown


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# Appended to a copy of the page: after load, counts the images the browser actually decoded.
_IMAGE_PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const decoded = images.filter((im) => im.complete && im.naturalWidth > 0 && im.naturalHeight > 0);
  const marker = document.createElement("div");
  marker.id = "image-probe";
  marker.textContent = `decoded ${decoded.length} of ${images.length}`;
  document.body.appendChild(marker);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="no headless browser (chromium) installed")
def test_html_renders_its_plots_in_a_headless_browser(two_artifact_report, tmp_path):
    _, _, report, out = two_artifact_report
    page = (out / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", _IMAGE_PROBE + "</body>"))
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    match = re.search(r'<div id="image-probe">decoded (\d+) of (\d+)</div>', result.stdout)
    assert match, result.stderr[-2000:]
    decoded, total = map(int, match.groups())
    gallery = sum(len(e["worst_errors"]) for e in report["artifacts"])
    # accuracy vs size and vs latency, per-class F1, reliability, risk-coverage, a confusion
    # matrix per artifact, thumbnails
    assert total == 5 + 2 + gallery
    assert decoded == total


# ----------------------------------------------------------------------------- the command


def test_acceptance_all_artifacts_through_the_cli(tiny_export, tiny_run, synthetic_data, tmp_path):
    out = tmp_path / "REP"
    result = CliRunner().invoke(app, ["report", str(tiny_export), "--data", str(synthetic_data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64") + page.count("<svg") >= 2
    report = json.loads((out / "report.json").read_text())
    kinds = {(e["format"], e["precision"]) for e in report["artifacts"] if e["status"] == "ok"}
    assert kinds == {("keras", "float32"), ("tflite", "float32"), ("tflite", "int8"), ("onnx", "float32"), ("onnx", "int8")}
    from bcc_edge._tf import keras

    model = keras.models.load_model(tiny_run / "best.keras", compile=False)
    assert {e["params"] for e in report["artifacts"]} == {sum(int(np.prod(w.shape)) for w in model.weights)}
    keras_id = next(e["id"] for e in report["artifacts"] if e["format"] == "keras")
    assert {e["agreement"]["reference"] for e in report["artifacts"] if e["format"] != "keras"} == {keras_id}
    assert "model_int8.tflite: top-1" in result.output


def test_an_artifact_that_fails_to_load_is_listed_and_the_rest_reported(tiny_export, synthetic_data, tmp_path):
    export = _export_with(tiny_export, tmp_path / "exp", TWO)
    (export / "model_int8.tflite").write_bytes(b"this is not a flatbuffer")
    result = CliRunner().invoke(app, ["report", str(export), "--data", str(synthetic_data), "--out", str(tmp_path / "rep"), "--no-keras"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    entries = {e["file"]: e for e in report["artifacts"]}
    assert entries["model_int8.tflite"]["status"] == "failed"
    assert "model_int8.tflite does not match its size/sha256" in entries["model_int8.tflite"]["error"]
    assert entries["model_float.onnx"]["status"] == "ok"
    assert "FAILED" in result.output
    assert "Failed artifacts" in (tmp_path / "rep" / "report.html").read_text()


def test_dataset_with_other_classes_is_a_clear_error(tiny_export, synthetic_data, tmp_path):
    other = shutil.copytree(synthetic_data, tmp_path / "other")
    first = sorted(p for p in other.iterdir() if p.is_dir())[0]
    first.rename(other / "zeta")  # a class the models never saw
    out = tmp_path / "rep"
    result = CliRunner().invoke(app, ["report", str(tiny_export), "--data", str(other), "--out", str(out), "--no-keras"])
    assert result.exit_code == 2
    assert "classes the model does not know: zeta" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("change, message", [
    ({"--split": "test"}, "--split must be one of"),
    ({"--data": "/nonexistent/data"}, "data folder not found"),
])
def test_bad_options_are_one_line_errors(tiny_export, synthetic_data, tmp_path, change, message):
    options = {"--data": str(synthetic_data), "--out": str(tmp_path / "rep"), **change}
    args = ["report", str(tiny_export), "--no-keras", *[part for item in options.items() for part in item]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_two_runs_with_different_splits_are_compared_on_the_images_both_held_out(tiny_export, tiny_run, synthetic_data, tmp_path):
    # a second "run": the same weights in another folder, with one val image moved to train
    other_run = shutil.copytree(tiny_run, tmp_path / "seed2" / tiny_run.name)
    rows = list(csv.DictReader((other_run / "splits.csv").open()))
    moved = next(row for row in rows if row["split"] == "val")
    moved["split"] = "train"
    with (other_run / "splits.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    other_export = _export_with(tiny_export, tmp_path / "exp2", TWO)
    manifest = json.loads((other_export / "manifest.json").read_text())
    (other_export / "manifest.json").write_text(json.dumps({**manifest, "run_dir": str(other_run)}))

    report = make_report([str(_export_with(tiny_export, tmp_path / "exp1", TWO)), str(other_export)], str(synthetic_data),
                         tmp_path / "rep", ReportOptions(include_keras=False, latency_images=2))
    assert report["data"]["count"] == len(_val_records(tiny_run)) - 1
    assert not any(moved["path"] in e["path"] for a in report["artifacts"] for e in a["worst_errors"])
    assert any("splits differ" in note for note in report["notes"])
    runs = sorted({e["run"] for e in report["artifacts"]})
    assert len(runs) == 2
    for run in runs:  # each run's INT8 model is compared with that run's own float model
        int8 = next(e for e in report["artifacts"] if e["run"] == run and e["precision"] == "int8")
        assert int8["agreement"]["reference"] == f"{run}/model_float.onnx"
    page = (tmp_path / "rep" / "report.html").read_text()
    assert all(f"<h2>{run}/model_int8.tflite</h2>" in page for run in runs)


def test_other_image_folder_uses_all_its_images_and_says_so(tiny_export, synthetic_data, tmp_path):
    copy = shutil.copytree(synthetic_data, tmp_path / "copy")  # not the folder the run was trained on
    report = make_report([str(_export_with(tiny_export, tmp_path / "exp", TWO))], str(copy), tmp_path / "rep",
                         ReportOptions(include_keras=False, latency_images=2))
    assert report["data"]["count"] == sum(1 for _ in copy.rglob("*.jpg"))
    assert report["data"]["selection"].startswith("all images")
    assert any("--split val ignored" in note for note in report["notes"])


def test_report_of_exported_artifacts_needs_no_tensorflow(tiny_export, synthetic_data, tmp_path):
    from test_no_tensorflow import RUN_WITHOUT_TF, run_python

    out = tmp_path / "rep"
    result = run_python(RUN_WITHOUT_TF, "report", str(_export_with(tiny_export, tmp_path / "exp", TWO)),
                        "--data", str(synthetic_data), "--out", str(out), "--latency-images", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED:\n" in result.stderr  # no TensorFlow module was imported
    report = json.loads((out / "report.json").read_text())
    assert all(e["status"] == "ok" for e in report["artifacts"])
    assert any("TensorFlow is not installed" in note for note in report["notes"])
