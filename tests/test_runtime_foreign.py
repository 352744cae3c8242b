"""Models that bcc-edge did not export: refused without labels and a spec, usable with them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bcc_edge.cli import app
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec
from bcc_edge.runtime import EdgeClassifier

SPEC = PreprocessSpec(size=(8, 8), mean=(0.0,) * 3, std=(255.0,) * 3)


def build_foreign_onnx(path, batch: int):
    """A hand-built classifier with a fixed batch size and no bcc_edge metadata: the class is
    the image's dominant colour channel (mean over pixels, then softmax)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
            helper.make_node("Mul", ["m", "k"], ["z"]),
            helper.make_node("Softmax", ["z"], ["y"], axis=1),
        ],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        initializer=[helper.make_tensor("k", TensorProto.FLOAT, [], [20.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def foreign_onnx(tmp_path_factory):
    return build_foreign_onnx(tmp_path_factory.mktemp("foreign") / "foreign.onnx", batch=1)


def colour_images():
    """A red, a green and a blue image (dominant channel 0, 1, 2)."""
    images = []
    for channel in range(3):
        image = np.full((20, 30, 3), 40, np.uint8)
        image[:, :, channel] = 220
        images.append(image)
    return images


def test_model_without_metadata_is_refused(foreign_onnx):
    with pytest.raises(BccError, match="not a bcc-edge artifact.*--labels.*--spec"):
        EdgeClassifier(foreign_onnx)
    with pytest.raises(BccError, match="not a bcc-edge artifact"):
        EdgeClassifier(foreign_onnx, labels=["r", "g", "b"])


def test_labels_and_spec_make_it_usable_and_a_fixed_batch_is_looped(foreign_onnx):
    classifier = EdgeClassifier(foreign_onnx, labels=["red", "green", "blue"], spec=SPEC)
    assert classifier.max_batch == 1 and classifier.metadata is None
    predictions = classifier.predict(colour_images() * 3)
    assert [p.label for p in predictions] == ["red", "green", "blue"] * 3


def test_a_fixed_batch_larger_than_one_is_padded(tmp_path):
    classifier = EdgeClassifier(build_foreign_onnx(tmp_path / "b2.onnx", batch=2), labels=["red", "green", "blue"], spec=SPEC)
    assert classifier.max_batch == 2
    assert [p.label for p in classifier.predict(colour_images())] == ["red", "green", "blue"]


def test_cli_refuses_a_foreign_model_with_exit_2(foreign_onnx, tmp_path):
    from PIL import Image

    Image.fromarray(colour_images()[0]).save(tmp_path / "red.png")
    result = CliRunner().invoke(app, ["infer", "--model", str(foreign_onnx), str(tmp_path / "red.png")])
    assert result.exit_code == 2
    assert "not a bcc-edge artifact" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("labels_as", ["comma", "lines", "json"])
def test_cli_accepts_labels_and_spec(foreign_onnx, tmp_path, labels_as):
    from PIL import Image

    for name, image in zip(("r", "g", "b"), colour_images()):
        Image.fromarray(image).save(tmp_path / f"{name}.png")
    labels = {
        "comma": "red,green,blue",
        "lines": tmp_path / "labels.txt",
        "json": tmp_path / "labels.json",
    }[labels_as]
    (tmp_path / "labels.txt").write_text("red\ngreen\nblue\n")
    (tmp_path / "labels.json").write_text(json.dumps(["red", "green", "blue"]))
    (tmp_path / "spec.json").write_text(SPEC.to_json())
    args = ["infer", "--model", str(foreign_onnx), "--labels", str(labels), "--spec", str(tmp_path / "spec.json"), "--format", "jsonl"]
    result = CliRunner().invoke(app, args + [str(tmp_path / f"{c}.png") for c in "rgb"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["label"] for row in rows] == ["red", "green", "blue"]


def test_cli_reports_a_bad_spec_file(foreign_onnx, tmp_path):
    (tmp_path / "spec.json").write_text('{"size": [8, 8], "interpolation": "cubic"}')
    result = CliRunner().invoke(app, ["infer", "-m", str(foreign_onnx), "--labels", "a,b,c", "--spec", str(tmp_path / "spec.json"), "x.png"])
    assert result.exit_code == 2 and "interpolation" in result.output
