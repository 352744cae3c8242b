"""What lets clients other than bcc-edge use the exported artifacts: standard TFLite Metadata
in every TFLite file, the uint8 model that takes raw RGB bytes, the float TFLite model with its
normalisation inside, and the ONNX fields generic tools show. MediaPipe itself loading them is
tests/test_mediapipe.py (slow tier: it needs a venv of its own)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bcc_edge import metadata
from bcc_edge.data import load_arrays
from bcc_edge.export import standard_metadata
from bcc_edge.export.attribution import AUTHOR, PBC_CITATION, PBC_LICENCE
from bcc_edge.rundir import RunDir
from bcc_edge.runtime import EdgeClassifier

TFLITE = ("model_float.tflite", "model_int8.tflite", "model_uint8.tflite")
RAW_INPUT = {"model_float.tflite", "model_uint8.tflite"}
ASSETS = Path(__file__).resolve().parents[1] / "bcc_edge" / "assets"


def _input_spec(run: RunDir, name: str):
    """The float spec of what the artifact takes."""
    return run.spec.resized_only().with_output("float32") if name in RAW_INPUT else run.spec.with_output("float32")


@pytest.mark.parametrize("name", TFLITE)
def test_every_tflite_artifact_carries_standard_metadata(tiny_export, tiny_run, name):
    run = RunDir(tiny_run)
    data = (tiny_export / name).read_bytes()
    meta = standard_metadata.read(data)
    spec = _input_spec(run, name)
    h, w = spec.size

    assert meta["name"] == "bcc-small" and run.fingerprint[:12] in meta["version"]
    assert meta["author"] == AUTHOR and meta["license"] == PBC_LICENCE and PBC_CITATION in meta["description"]
    assert meta["min_parser_version"] == standard_metadata.MIN_PARSER_VERSION

    inp = meta["input"]
    assert (inp["content"], inp["color_space"], inp["size"]) == ("image", "RGB", [w, h])
    mean, std = np.array(spec.mean), np.array(spec.std)
    assert inp["normalization"]["mean"] == pytest.approx(mean) and inp["normalization"]["std"] == pytest.approx(std)
    assert inp["stats"]["min"] == pytest.approx(-mean / std) and inp["stats"]["max"] == pytest.approx((255 - mean) / std)

    out = meta["output"]
    assert out["content"] == "feature" and out["stats"] == {"min": [0.0], "max": [1.0]}
    assert [(f["name"], f["type"]) for f in out["associated_files"]] == [("labels.txt", standard_metadata.TENSOR_AXIS_LABELS)]
    assert meta["files"] == {"labels.txt": "".join(f"{label}\n" for label in run.labels).encode()}

    # Written after bcc-edge's own entry, which must survive it; the appended archive must not
    # stop the interpreter from loading the file.
    assert metadata.read_tflite(data)["labels"] == run.labels
    assert EdgeClassifier(tiny_export / name).labels == run.labels


def test_standard_metadata_is_replaced_not_stacked_and_reads_back_as_written(tiny_export, tiny_run):
    """Attaching what `read` returns to an artifact gives the artifact back byte for byte: one
    TFLITE_METADATA entry, one archive, every field read back as it was written."""
    run = RunDir(tiny_run)
    data = (tiny_export / "model_float.tflite").read_bytes()
    meta = standard_metadata.read(data)
    about = standard_metadata.About(**{k: meta[k] for k in ("name", "description", "version", "author", "license")})
    assert standard_metadata.attach(data, about, run.labels, _input_spec(run, "model_float.tflite")) == data


def test_a_model_without_standard_metadata_reads_as_none(tiny_run):
    from bcc_edge._tf import tf

    model = tf.lite.TFLiteConverter.from_keras_model(RunDir(tiny_run).load_best_model()).convert()
    assert standard_metadata.read(model) is None
    assert metadata.appended_files(model) == {}


def test_uint8_model_takes_the_resized_bytes_themselves(tiny_export, tiny_run):
    from ai_edge_litert.interpreter import Interpreter

    run = RunDir(tiny_run)
    path = tiny_export / "model_uint8.tflite"
    interpreter = Interpreter(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    # Scale 1, zero point 0: a client that feeds raw bytes (MediaPipe does) feeds the right values.
    assert inp["dtype"] == np.uint8 and inp["quantization"] == (1.0, 0)
    assert out["dtype"] == np.uint8
    assert {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()} <= {"uint8", "int8", "int32"}

    meta = metadata.read_tflite(path)
    assert meta["quantization"] == "qat" and (meta["input"]["scale"], meta["input"]["zero_point"]) == (1.0, 0)
    images, _, _ = load_arrays(run.records("val"), run.spec)
    classifier = EdgeClassifier(path)
    np.testing.assert_array_equal(classifier.prepare(images), run.spec.resized_only().apply_batch(images))


def test_normalisation_layer_computes_what_the_spec_table_does(tiny_run):
    from bcc_edge.export.normalize import LAYER_NAME, with_input_normalization

    run = RunDir(tiny_run)
    spec = run.spec.with_output("float32")
    model = run.load_best_model()
    wrapped = with_input_normalization(model, spec.mean, spec.std)
    assert wrapped.layers[1].name == LAYER_NAME and not wrapped.layers[1].trainable
    images, _, _ = load_arrays(run.records("val"), spec)
    reference = model.predict(spec.apply_batch(images), verbose=0)
    np.testing.assert_allclose(wrapped.predict(images.astype(np.float32), verbose=0), reference, atol=1e-5)
    assert len(wrapped.weights) == len(model.weights) + 2  # every original weight carried over, plus kernel and bias
    # The stem is a convolution: one divisor for all channels in the layer (one int8 resolution
    # for all of them), each channel's own std folded into the stem's weights.
    kernel = wrapped.get_layer(LAYER_NAME).get_weights()[0].reshape(3, 3)
    assert np.count_nonzero(kernel - np.diag(np.diag(kernel))) == 0 and np.ptp(np.diag(kernel)) == 0
    stem = model.layers[1].name
    assert not np.array_equal(wrapped.get_layer(stem).get_weights()[0], model.get_layer(stem).get_weights()[0])


@pytest.mark.parametrize("name", ["model_float.onnx", "model_int8.onnx"])
def test_onnx_carries_the_fields_generic_tools_show(tiny_export, tiny_run, name):
    import onnx

    from bcc_edge.export.onnx import MODEL_VERSION

    run = RunDir(tiny_run)
    model = onnx.load(str(tiny_export / name))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["labels"]) == run.labels
    h, w = run.spec.size
    assert f"{w}x{h}" in props["preprocessing"] and str(list(run.spec.mean)) in props["preprocessing"]
    assert props["license"] == PBC_LICENCE and props["citation"] == PBC_CITATION and props["author"] == AUTHOR
    assert run.fingerprint[:12] in props["version"]
    assert PBC_CITATION in model.doc_string and model.model_version == MODEL_VERSION > 0
    assert json.loads(props[metadata.KEY])["labels"] == run.labels  # bcc-edge's own entry beside them


def test_the_pbc_citation_has_one_home():
    provenance = json.loads((ASSETS / "provenance.json").read_text("utf-8"))
    assert provenance["dataset_citation"] == PBC_CITATION
