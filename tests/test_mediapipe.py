"""MediaPipe Tasks' ImageClassifier, a client we did not write, loads the exported float and
uint8 TFLite models from their standard metadata alone and classifies like bcc-edge.

Slow tier, and in a venv of its own: mediapipe 1.2 cannot join the project's, because it needs
absl-py~=2.3 where tensorflow-model-optimization 0.8.1 needs absl-py~=1.2, and its
opencv-contrib-python would overwrite the cv2 of [dev]'s opencv-python-headless. The venv is
made once under ~/.cache/bcc-edge/ and MediaPipe runs there in a subprocess.

MediaPipe resizes its own way (measured: cv2.warpAffine, bilinear, corner-aligned, so half a
source pixel per unit of scale off cv2.resize, no antialiasing, JPEGs decoded at full size), so:
- on images already at the model's input size its resize is the identity, and its scores must
  equal bcc-edge's: the labels, normalisation and quantisation are read as we meant them;
- on the synthetic set itself (the images the model was trained and validated on), top-1
  agreement must reach 98%. The model is trained here at 64 px: the shared tiny run predicts
  one class for every image (agreement would prove nothing), and at 32 px MediaPipe's
  resampling alone flipped 6-17% of a small model's answers. On unseen synthetic images this
  64 px model agreed on 98.3% (float) and 95.8% (uint8) of 120: MediaPipe's resize costs a
  model trained on ours some accuracy near its decision boundaries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bcc_edge.runtime import EdgeClassifier
from bcc_edge.synthetic import write_image_folder

from conftest import SYNTH_CLASSES

pytestmark = pytest.mark.slow

VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bcc-edge" / "mediapipe-venv"
MODELS = ("model_float.tflite", "model_uint8.tflite")
MIN_AGREEMENT = 0.98

CLASSIFY = """
import json, sys
import mediapipe as mp
from mediapipe.tasks import python as mpt
from mediapipe.tasks.python import vision

options = vision.ImageClassifierOptions(base_options=mpt.BaseOptions(model_asset_path=sys.argv[1]), max_results=-1)
classifier = vision.ImageClassifier.create_from_options(options)
rows = {}
for path in sys.stdin.read().split("\\n"):
    if path:
        categories = classifier.classify(mp.Image.create_from_file(path)).classifications[0].categories
        rows[path] = {c.category_name: c.score for c in categories}
classifier.close()
print(json.dumps(rows))
"""


@pytest.fixture(scope="session")
def mediapipe_python() -> Path:
    python = VENV / "bin" / "python"
    if subprocess.run([str(python), "-c", "import mediapipe"], capture_output=True).returncode if python.exists() else True:
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "mediapipe"], capture_output=True, text=True, timeout=1200)
        if pip.returncode:
            shutil.rmtree(VENV, ignore_errors=True)
            pytest.fail(f"pip install mediapipe failed:\n{pip.stdout[-2000:]}{pip.stderr[-2000:]}")
    return python


@pytest.fixture(scope="module")
def export_64px(synthetic_data, tmp_path_factory) -> Path:
    from bcc_edge.export import ExportOptions, export_run
    from bcc_edge.train import TrainConfig, train

    root = tmp_path_factory.mktemp("mediapipe")
    train(TrainConfig(data=str(synthetic_data), out=str(root / "run"), model="bcc-small", model_kwargs={"width": 0.5},
                      image_size=64, batch_size=4, epochs=30, patience=0, seed=1))
    return export_run(root / "run", root / "export", ExportOptions(int8=True, qat_epochs=1, formats=("tflite",))).out


def mediapipe_scores(python: Path, model: Path, paths: list[str]) -> dict[str, dict[str, float]]:
    proc = subprocess.run([str(python), "-c", CLASSIFY, str(model)], input="\n".join(paths), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", MODELS)
def test_mediapipe_reads_the_model_as_bcc_edge_does(mediapipe_python, export_64px, tmp_path, name):
    from PIL import Image

    classifier = EdgeClassifier(export_64px / name)
    sources = write_image_folder(tmp_path / "src", per_class=4, classes=SYNTH_CLASSES, seed=5, size=(96, 100))
    paths = []
    for source in sorted(sources.rglob("*.jpg")):
        resized = classifier.spec.resized_only().apply(classifier.load(source))
        paths.append(str(tmp_path / f"{source.stem}.png"))
        Image.fromarray(resized).save(paths[-1])  # lossless, at the input size: MediaPipe's resize is the identity
    ours = classifier.predict_proba([classifier.load(p) for p in paths])
    assert len(set(ours.argmax(axis=1))) > 1  # scores that depend on the image, or equal scores prove nothing
    theirs = mediapipe_scores(mediapipe_python, export_64px / name, paths)
    for path, probs in zip(paths, ours):
        assert set(theirs[path]) == set(classifier.labels)
        got = np.array([theirs[path][label] for label in classifier.labels])
        # float: the same arithmetic; uint8: the same integer model, scores a step of 1/256 apart at most
        np.testing.assert_allclose(got, probs, atol=1e-4 if name == "model_float.tflite" else 1 / 256 + 1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_mediapipe_agrees_with_bcc_edge_on_the_synthetic_set(mediapipe_python, export_64px, synthetic_data, name):
    paths = sorted(map(str, synthetic_data.rglob("*.jpg")))
    ours = {p.path: p.label for p in EdgeClassifier(export_64px / name).predict_paths(paths)}
    assert len(set(ours.values())) == len(SYNTH_CLASSES)  # the model tells the classes apart
    theirs = mediapipe_scores(mediapipe_python, export_64px / name, paths)
    agreement = np.mean([max(theirs[p], key=theirs[p].get) == ours[p] for p in paths])
    print(f"{name}: MediaPipe and bcc-edge agree on {agreement:.1%} of {len(paths)} synthetic images")
    assert agreement >= MIN_AGREEMENT


# PBC: MediaPipe resizes 360x363 JPEGs to 128 px its own way (bilinear, no antialiasing, full-size
# decode) where bcc-edge decodes DCT-scaled and resizes by area: measured 97.7% agreement on every
# 8th val image with the shipped model, the floor below leaves room for one more image in 200.
PBC_MIN_AGREEMENT = 0.97


@pytest.mark.pbc
def test_mediapipe_agrees_with_bcc_edge_on_pbc_val_with_the_shipped_uint8_model(mediapipe_python):
    import csv

    from conftest import PBC_ROOT

    from bcc_edge.runtime import BUNDLED_MODEL

    model = BUNDLED_MODEL.with_name("model_uint8.tflite")
    with (PBC_ROOT / "splits.csv").open() as f:
        paths = [str(PBC_ROOT / "images" / row["path"]) for row in csv.DictReader(f) if row["split"] == "val"][::8]
    ours = {p.path: p.label for p in EdgeClassifier(model).predict_paths(paths)}
    theirs = mediapipe_scores(mediapipe_python, model, paths)
    agreement = np.mean([max(theirs[p], key=theirs[p].get) == ours[p] for p in paths])
    print(f"shipped model_uint8.tflite: MediaPipe and bcc-edge agree on {agreement:.1%} of {len(paths)} PBC val images")
    assert agreement >= PBC_MIN_AGREEMENT
