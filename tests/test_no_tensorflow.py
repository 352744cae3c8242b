"""The device path (`bcc_edge.runtime`, `bcc-edge infer`) must run where TensorFlow is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bcc_edge

# Where the bcc_edge under test lives (a source checkout or an installed copy).
PACKAGE_PARENT = str(Path(bcc_edge.__file__).resolve().parents[1])

# Runs `bcc-edge` with TensorFlow and friends made unimportable, then proves none got loaded.
RUN_WITHOUT_TF = textwrap.dedent(
    """
    import atexit, sys

    BLOCKED = {"tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "tf2onnx"}

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: the device install has no TensorFlow")

    sys.meta_path.insert(0, NoTensorFlow())

    def report():
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
        sys.stderr.write("LOADED:" + ",".join(loaded) + "\\n")

    atexit.register(report)
    import bcc_edge.runtime, bcc_edge.infer, bcc_edge.metadata, bcc_edge.bench.infer
    from bcc_edge.cli import app
    sys.argv = ["bcc-edge", *sys.argv[1:]]
    app()
    """
)


def run_python(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT}
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=120)


def test_the_blocker_really_blocks():
    result = run_python(RUN_WITHOUT_TF.replace("app()", "import tensorflow"))
    assert result.returncode != 0 and "is blocked" in result.stderr


@pytest.mark.parametrize("model", ["model_int8.tflite", "model_int8.onnx"])
def test_infer_runs_without_tensorflow(tiny_export, tmp_path, model):
    from PIL import Image

    from bcc_edge.synthetic import make_cell_image

    image = tmp_path / "cell.jpg"
    Image.fromarray(make_cell_image("monocyte", np.random.default_rng(0), 363, 360)).save(image)
    result = run_python(RUN_WITHOUT_TF, "infer", "--model", str(tiny_export / model), str(image), "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["error"] is None and row["label"]
    assert "LOADED:\n" in result.stderr  # nothing from TensorFlow was imported
    assert "XNNPACK" not in result.stderr  # LiteRT's start-up notice is kept off the user's stderr


# The device side, and the commands that run on the board: what they may never load.
DEVICE_MODULES = [
    "bcc_edge.preprocess", "bcc_edge.jpeg", "bcc_edge.decode", "bcc_edge.metadata", "bcc_edge.fileio",
    "bcc_edge.backends", "bcc_edge.runtime", "bcc_edge.infer", "bcc_edge.bench.infer",
    "bcc_edge.commands.infer", "bcc_edge.commands.bench_infer", "bcc_edge.commands.count", "bcc_edge.commands.selftest", "bcc_edge.cli",
    "bcc_edge.commands.serve", "bcc_edge.commands.watch",
    "bcc_edge.device.count", "bcc_edge.device.selftest", "bcc_edge.device.guard", "bcc_edge.device.scores", "bcc_edge.device.watch",
    "bcc_edge.device.serve.app", "bcc_edge.device.serve.server",
]
WORKSTATION_ONLY = ("train", "models", "export", "data", "calib", "qat", "_tf", "distribute", "augment", "rundir", "keras_predictor", "evaluate")


@pytest.mark.parametrize("module", DEVICE_MODULES)
def test_device_modules_never_import_training_code(module):
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    loaded = [m for m in result.stdout.split() if m.split(".")[0] == "bcc_edge" and m.split(".")[1:2] and m.split(".")[1] in WORKSTATION_ONLY]
    assert loaded == [], f"{module} loads {loaded}"
