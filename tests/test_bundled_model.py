"""The model shipped inside the package: present, intact, described, and the default of infer."""

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from bcc_edge.cli import app
from bcc_edge.runtime import BUNDLED_MODEL, EdgeClassifier

ASSETS = BUNDLED_MODEL.parent
PBC_CLASSES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]


def test_provenance_matches_the_shipped_files():
    provenance = json.loads((ASSETS / "provenance.json").read_text())
    for name, entry in provenance["files"].items():
        blob = (ASSETS / name).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], name
        assert len(blob) == entry["bytes"] < 1024 * 1024
        assert entry["val_accuracy"] >= 0.98
    assert "CC BY 4.0" in provenance["dataset_citation"]


def test_both_shipped_artifacts_carry_labels_and_agree(tmp_path):
    image = np.asarray(Image.new("RGB", (360, 363), (220, 200, 210)))
    probs = []
    for name in ("model_int8.tflite", "model_int8.onnx"):
        classifier = EdgeClassifier(ASSETS / name, threads=1)
        assert classifier.labels == PBC_CLASSES and classifier.precision == "int8"
        p = classifier.predict_proba([image])
        assert p.shape == (1, 8) and abs(float(p.sum()) - 1) < 0.05
        probs.append(p)
    assert probs[0].argmax() == probs[1].argmax()


def test_infer_defaults_to_the_shipped_model(tmp_path):
    path = tmp_path / "cell.png"
    Image.new("RGB", (360, 363), (220, 200, 210)).save(path)
    result = CliRunner().invoke(app, ["infer", str(path), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])  # stderr holds the summary line
    assert row["error"] is None and row["label"] in PBC_CLASSES and Path(row["path"]).name == "cell.png"
