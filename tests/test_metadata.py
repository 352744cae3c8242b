"""bcc_edge.metadata: the JSON document embedded in every TFLite and ONNX artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bcc_edge import metadata
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec

SPEC = PreprocessSpec(size=(16, 16), interpolation="area", mean=(127.5,) * 3, std=(127.5,) * 3, jpeg_draft=True)


def make_meta(**changes):
    meta = {
        "format_version": 1,
        "toolkit_version": "0.1.0",
        "model_name": "tiny",
        "labels": ["alpha", "beta", "gamma"],
        "preprocess": SPEC.to_dict(),
        "input": {"dtype": "float32", "scale": 1.0, "zero_point": 0, "shape": [1, 16, 16, 3]},
        "output": {"dtype": "float32", "scale": 1.0, "zero_point": 0, "activation": "softmax"},
        "quantization": None,
        "data_fingerprint": "abc",
        "float_val_accuracy": 0.9,
        "calibration": None,
    }
    meta.update(changes)
    return meta


@pytest.fixture(scope="module")
def raw_tflite() -> dict[str, bytes]:
    """A tiny float and full-int8 TFLite model straight from the converter (no bcc_edge entry)."""
    from bcc_edge._tf import keras, tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, use_bias=False)(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Softmax()(keras.layers.Dense(3)(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.normal(size=(1, 16, 16, 3)).astype(np.float32)]

    float_bytes = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return {"float": float_bytes, "int8": converter.convert()}


def run_tflite(model_bytes: bytes) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, inp["shape"]) if inp["dtype"] == np.int8 else rng.normal(size=inp["shape"])
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]).copy()


def schema_entries(model_bytes: bytes) -> list[tuple[str, bytes]]:
    """(name, buffer bytes) of every metadata entry, parsed with LiteRT's generated schema."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_bytes, 0)
    entries = []
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        entries.append((entry.Name().decode(), model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()))
    return entries


# ------------------------------------------------------------------ TFLite


@pytest.mark.parametrize("precision", ["float", "int8"])
def test_tflite_embed_keeps_the_model_working_and_reads_back(raw_tflite, precision, tmp_path):
    original = raw_tflite[precision]
    meta = make_meta(labels=["a", "b", "ü"])  # non-ASCII survives the UTF-8 round trip
    embedded = metadata.embed_tflite(original, meta)
    np.testing.assert_array_equal(run_tflite(embedded), run_tflite(original))
    assert metadata.read_tflite(embedded) == meta
    path = tmp_path / "m.tflite"
    path.write_bytes(embedded)
    assert metadata.read_tflite(path) == meta
    assert metadata.read_artifact(path) == meta
    # The converter's own entries are kept.
    names = [name for name, _ in schema_entries(embedded)]
    assert names.count("bcc_edge") == 1 and "min_runtime_version" in names


def test_tflite_embed_keeps_an_appended_archive(raw_tflite):
    with_files = metadata.append_files(raw_tflite["int8"], {"labels.txt": b"a\nb\nc\n"})
    embedded = metadata.embed_tflite(with_files, make_meta())
    assert metadata.appended_files(embedded) == {"labels.txt": b"a\nb\nc\n"}
    assert metadata.read_tflite(embedded) == make_meta()
    np.testing.assert_array_equal(run_tflite(embedded), run_tflite(raw_tflite["int8"]))
    again = metadata.embed_tflite(embedded, make_meta(model_name="again"))
    assert metadata.appended_files(again) == {"labels.txt": b"a\nb\nc\n"} and len(again) == len(embedded)


def test_tflite_reader_agrees_with_the_generated_schema(raw_tflite):
    embedded = metadata.embed_tflite(raw_tflite["int8"], make_meta())
    (payload,) = [data for name, data in schema_entries(embedded) if name == "bcc_edge"]
    assert json.loads(payload) == metadata.read_tflite(embedded)


def test_tflite_re_embed_replaces_the_entry_without_growing_buffers(raw_tflite):
    from ai_edge_litert import schema_py_generated as schema

    once = metadata.embed_tflite(raw_tflite["float"], make_meta(model_name="first"))
    twice = metadata.embed_tflite(once, make_meta(model_name="second"))
    assert metadata.read_tflite(twice)["model_name"] == "second"
    assert [name for name, _ in schema_entries(twice)].count("bcc_edge") == 1
    assert schema.Model.GetRootAs(twice, 0).BuffersLength() == schema.Model.GetRootAs(once, 0).BuffersLength()
    np.testing.assert_array_equal(run_tflite(twice), run_tflite(raw_tflite["float"]))


def test_tflite_without_entry_reads_as_none(raw_tflite):
    assert metadata.read_tflite(raw_tflite["float"]) is None


@pytest.mark.parametrize("damage", ["truncate", "not_tflite", "empty"])
def test_damaged_tflite_is_a_user_error(raw_tflite, damage, tmp_path):
    embedded = metadata.embed_tflite(raw_tflite["float"], make_meta())
    data = {"truncate": embedded[: len(embedded) // 3], "not_tflite": b"\x00" * 64, "empty": b""}[damage]
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    with pytest.raises(BccError, match="bad.tflite"):
        metadata.read_tflite(path)


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"labels": []}, "labels"),
        ({"labels": ["a", "a"]}, "duplicates"),
        ({"preprocess": {"size": [0, 4]}}, "preprocess"),
        ({"format_version": "1"}, "format_version"),
        ({"float_val_accuracy": float("nan")}, "NaN|JSON|nan"),
    ],
)
def test_embed_refuses_documents_a_reader_could_not_use(raw_tflite, changes, problem):
    with pytest.raises(ValueError, match=problem):
        metadata.embed_tflite(raw_tflite["float"], make_meta(**changes))


def test_newer_format_version_asks_for_an_upgrade(raw_tflite, monkeypatch):
    monkeypatch.setattr(metadata, "FORMAT_VERSION", 2)
    embedded = metadata.embed_tflite(raw_tflite["float"], make_meta(format_version=2))
    monkeypatch.setattr(metadata, "FORMAT_VERSION", 1)
    with pytest.raises(BccError, match="upgrade bcc-edge"):
        metadata.read_tflite(embedded)


def test_embedded_garbage_is_a_user_error(raw_tflite, monkeypatch):
    monkeypatch.setattr(metadata, "dumps", lambda meta: b"{not json")
    embedded = metadata.embed_tflite(raw_tflite["float"], make_meta())
    with pytest.raises(BccError, match="not valid JSON"):
        metadata.read_tflite(embedded)


# ------------------------------------------------------------------ ONNX


def tiny_onnx():
    """A hand-built classifier graph: mean over the image, softmax over the 3 channels."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0), helper.make_node("Softmax", ["m"], ["y"], axis=1)],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16, 16, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_onnx_embed_reads_back_with_and_without_onnxruntime(tmp_path):
    import onnx
    import onnxruntime as ort

    model = tiny_onnx()
    model.metadata_props.add(key="other", value="kept")
    meta = make_meta()
    assert metadata.embed_onnx(model, meta) is model
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert metadata.read_onnx(path) == meta
    assert metadata.read_artifact(path) == meta
    custom = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert json.loads(custom["bcc_edge"]) == meta and custom["other"] == "kept"


def test_onnx_re_embed_replaces_the_entry(tmp_path):
    import onnx

    model = tiny_onnx()
    metadata.embed_onnx(model, make_meta(model_name="first"))
    metadata.embed_onnx(model, make_meta(model_name="second"))
    assert [p.key for p in model.metadata_props] == ["bcc_edge"]
    onnx.save(model, tmp_path / "m.onnx")
    assert metadata.read_onnx(tmp_path / "m.onnx")["model_name"] == "second"


def test_onnx_without_entry_reads_as_none(tmp_path):
    import onnx

    onnx.save(tiny_onnx(), tmp_path / "m.onnx")
    assert metadata.read_onnx(tmp_path / "m.onnx") is None


@pytest.mark.parametrize("damage", ["truncate", "junk", "empty"])
def test_damaged_onnx_is_a_user_error(tmp_path, damage):
    model = tiny_onnx()
    metadata.embed_onnx(model, make_meta())
    data = model.SerializeToString()
    data = {"truncate": data[: len(data) - 40], "junk": b"\x08\x07junk" * 10, "empty": b""}[damage]
    (tmp_path / "bad.onnx").write_bytes(data)
    with pytest.raises(BccError, match="bad.onnx"):
        metadata.read_onnx(tmp_path / "bad.onnx")


def test_read_artifact_sniffs_the_format_without_a_suffix(raw_tflite, tmp_path):
    import onnx

    (tmp_path / "a").write_bytes(metadata.embed_tflite(raw_tflite["float"], make_meta(model_name="t")))
    model = tiny_onnx()
    metadata.embed_onnx(model, make_meta(model_name="o"))
    onnx.save(model, tmp_path / "b")
    assert metadata.read_artifact(tmp_path / "a")["model_name"] == "t"
    assert metadata.read_artifact(tmp_path / "b")["model_name"] == "o"
    (tmp_path / "c.bin").write_bytes(b"GIF89a..")
    with pytest.raises(BccError, match="unsupported model format"):
        metadata.read_artifact(tmp_path / "c.bin")
