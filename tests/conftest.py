"""Shared fixtures: a synthetic blood-cell-like ImageFolder, and (session-scoped) a tiny
trained run and its export, so the slow TF steps happen once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PBC_ROOT = PROJECT_ROOT.parent / "shared" / "data" / "pbc"
SYNTH_CLASSES = ("alpha", "beta", "gamma")


def make_cell_image(rng: np.random.Generator, class_index: int, height: int = 96, width: int = 100) -> np.ndarray:
    """A pale background with one stained disc; disc size and hue depend on the class."""
    yy, xx = np.mgrid[:height, :width]
    image = np.full((height, width, 3), 225, np.uint8) + rng.integers(0, 25, (height, width, 3)).astype(np.uint8)
    radius = min(height, width) * (0.12 + 0.1 * class_index) + rng.uniform(-2, 2)
    cy, cx = height / 2 + rng.uniform(-5, 5), width / 2 + rng.uniform(-5, 5)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    colours = np.array([[150, 60, 160], [90, 40, 120], [200, 120, 120], [120, 90, 60]])
    image[disc] = colours[class_index % len(colours)] + rng.integers(0, 15, 3)
    return image


def write_image_folder(root: Path, per_class: int, classes=SYNTH_CLASSES, seed: int = 7, size=(96, 100)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make_cell_image(rng, k, *size)).save(root / name / f"{i:03d}.jpg", quality=92)
    return root


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """3 classes x 16 JPEGs, read-only for tests (copy before altering)."""
    return write_image_folder(tmp_path_factory.mktemp("synth") / "data", per_class=16)


@pytest.fixture(scope="session")
def tiny_run(synthetic_data, tmp_path_factory) -> Path:
    """bcc-small trained for 2 epochs at 32 px on the synthetic set."""
    from bcc_edge.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(TrainConfig(data=str(synthetic_data), out=str(out), model="bcc-small", image_size=32, batch_size=8, epochs=2, seed=1))
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """All four artifacts (float/INT8 TFLite and ONNX) of the tiny run."""
    from bcc_edge.export import ExportOptions, export_run

    out = tmp_path_factory.mktemp("exports") / "tiny"
    export_run(tiny_run, out, ExportOptions(int8=True, qat_epochs=1))
    return out


def pytest_collection_modifyitems(config, items):
    if PBC_ROOT.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data not found at {PBC_ROOT}")
    for item in items:
        if "slow" in item.keywords and "pbc" in item.keywords:
            item.add_marker(skip)
