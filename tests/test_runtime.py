"""bcc_edge.runtime.EdgeClassifier on the four exported artifacts of the tiny run."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bcc_edge import metadata
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec
from bcc_edge.runtime import EdgeClassifier, Prediction

ARTIFACTS = ["model_float.tflite", "model_int8.tflite", "model_float.onnx", "model_int8.onnx"]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Decoded RGB images of assorted sizes (the runtime resizes each)."""
    from bcc_edge.synthetic import CLASSES, make_cell_image

    rng = np.random.default_rng(3)
    return [make_cell_image(CLASSES[i % len(CLASSES)], rng, 90 + 7 * i, 100 - 3 * i) for i in range(21)]


@pytest.mark.parametrize("name", ARTIFACTS)
def test_artifact_loads_with_its_metadata(tiny_export, name):
    path = tiny_export / name
    meta = metadata.read_artifact(path)
    classifier = EdgeClassifier(path, threads=1)
    assert classifier.labels == meta["labels"]
    assert classifier.spec.size == tuple(meta["preprocess"]["size"])
    assert classifier.spec.output == "float32"
    assert classifier.backend == ("litert" if name.endswith(".tflite") else "onnxruntime")
    assert classifier.precision == ("int8" if "int8" in name else "float32")
    # ONNX QDQ models take float input; the INT8 TFLite model takes int8.
    assert classifier.input_spec.output == ("int8" if name == "model_int8.tflite" else "float32")


@pytest.mark.parametrize("name", ARTIFACTS)
def test_probabilities_are_valid_and_batching_changes_nothing(tiny_export, images, name):
    classifier = EdgeClassifier(tiny_export / name, threads=1)
    probs = classifier.predict_proba(images)
    assert probs.shape == (len(images), len(classifier.labels)) and probs.dtype == np.float32
    assert np.all(probs >= 0)
    # An INT8 softmax output is quantised in steps of 1/256.
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    one_by_one = np.concatenate([classifier.predict_proba(images[i : i + 1]) for i in range(len(images))])
    np.testing.assert_array_equal(one_by_one, probs)
    np.testing.assert_array_equal(classifier.invoke(classifier.prepare(images)), probs)


def test_int8_input_quantisation_comes_from_the_interpreter(tiny_export, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    source = tiny_export / "model_int8.tflite"
    meta = metadata.read_tflite(source)
    meta["input"] = {**meta.get("input", {}), "scale": 123.0, "zero_point": 7}  # a wrong informational copy
    path = tmp_path / "m.tflite"
    path.write_bytes(metadata.embed_tflite(source.read_bytes(), meta))
    interpreter = Interpreter(model_path=str(source))
    scale, zero_point = interpreter.get_input_details()[0]["quantization"]
    spec = EdgeClassifier(path).input_spec
    assert (spec.scale, spec.zero_point) == (pytest.approx(scale), zero_point)


def test_int8_and_float_tflite_mostly_agree(tiny_export, images):
    float_probs = EdgeClassifier(tiny_export / "model_float.tflite").predict_proba(images)
    int8_probs = EdgeClassifier(tiny_export / "model_int8.tflite").predict_proba(images)
    assert np.abs(float_probs - int8_probs).max() < 0.25


def test_predict_reports_top_k_best_first(tiny_export, images):
    classifier = EdgeClassifier(tiny_export / "model_float.tflite")
    probs = classifier.predict_proba(images[:4])
    predictions = classifier.predict(images[:4], top_k=99)  # clamped to the number of classes
    for row, prediction in zip(probs, predictions):
        assert prediction.ok and prediction.path is None
        assert len(prediction.top_k) == len(classifier.labels)
        scores = [s for _, s in prediction.top_k]
        assert scores == sorted(scores, reverse=True)
        assert prediction.label == classifier.labels[int(np.argmax(row))]
        assert prediction.score == pytest.approx(float(row.max()), abs=1e-6)
    with pytest.raises(BccError, match="top-k"):
        classifier.predict(images[:1], top_k=0)


def test_predict_paths_keeps_order_and_reports_bad_files(tiny_export, images, tmp_path):
    from PIL import Image

    paths = []
    for i, image in enumerate(images[:5]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    paths.insert(2, tmp_path / "bad.jpg")
    classifier = EdgeClassifier(tiny_export / "model_int8.onnx")
    predictions = classifier.predict_paths(paths, batch_size=2, workers=2)
    assert [p.path for p in predictions] == [str(p) for p in paths]
    assert [p.ok for p in predictions] == [True, True, False, True, True, True]
    assert "bad.jpg" in predictions[2].error and predictions[2].label is None
    expected = classifier.predict([images[i] for i in range(5)])
    assert [p.label for p in predictions if p.ok] == [p.label for p in expected]


def test_prediction_to_dict_has_the_row_schema():
    row = Prediction("a.jpg", "x", 0.75, (("x", 0.75), ("y", 0.25))).to_dict()
    assert row == {
        "path": "a.jpg", "label": "x", "score": 0.75, "top_k": [{"label": "x", "score": 0.75}, {"label": "y", "score": 0.25}],
        "status": "ok", "reasons": [], "error": None,
    }
    failed = Prediction("b.jpg", error="broken").to_dict()
    assert failed["error"] == "broken" and failed["status"] == "error"
    referred = Prediction("c.jpg", "x", 0.5, (("x", 0.5),), status="review", reasons=("low_confidence",)).to_dict()
    assert referred["status"] == "review" and referred["reasons"] == ["low_confidence"]


def test_label_count_must_match_the_model(tiny_export):
    with pytest.raises(BccError, match="labels for a model with"):
        EdgeClassifier(tiny_export / "model_float.tflite", labels=["only", "two"])


def test_spec_size_must_match_the_model(tiny_export):
    classifier = EdgeClassifier(tiny_export / "model_float.tflite")
    h, w = classifier.spec.size
    with pytest.raises(BccError, match="does not match the model input"):
        EdgeClassifier(tiny_export / "model_float.tflite", spec=PreprocessSpec(size=(h + 1, w)))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"threads": 0}, "threads"), ({"backend": "tensorflow"}, "unknown backend"), ({"backend": "onnxruntime"}, "cannot run a .tflite")],
)
def test_bad_arguments_are_user_errors(tiny_export, kwargs, message):
    with pytest.raises(BccError, match=message):
        EdgeClassifier(tiny_export / "model_float.tflite", **kwargs)


def test_missing_or_broken_model_files_are_user_errors(tmp_path):
    with pytest.raises(BccError, match="model not found"):
        EdgeClassifier(tmp_path / "nope.tflite")
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07" + b"\x00" * 30)
    with pytest.raises(BccError, match="broken.onnx"):
        EdgeClassifier(tmp_path / "broken.onnx")


def test_missing_tflite_runtime_names_the_package_and_onnx_still_works(tiny_export, monkeypatch):
    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)  # None makes `import` raise ImportError
    with pytest.raises(BccError, match="pip install ai-edge-litert"):
        EdgeClassifier(tiny_export / "model_int8.tflite")
    assert EdgeClassifier(tiny_export / "model_int8.onnx").backend == "onnxruntime"


def test_missing_onnxruntime_names_the_package_and_tflite_still_works(tiny_export, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BccError, match="pip install onnxruntime"):
        EdgeClassifier(tiny_export / "model_int8.onnx")
    assert EdgeClassifier(tiny_export / "model_int8.tflite").backend == "litert"


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_int8.onnx"])
def test_concurrent_callers_get_the_same_answers(tiny_export, images, name):
    from concurrent.futures import ThreadPoolExecutor

    classifier = EdgeClassifier(tiny_export / name, threads=1)
    expected = classifier.predict_proba(images)
    starts = list(range(0, len(images), 3)) * 4  # every chunk several times, interleaved
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: classifier.predict_proba(images[i : i + 3]), starts))
    for start, result in zip(starts, results):
        np.testing.assert_array_equal(result, expected[start : start + 3])
