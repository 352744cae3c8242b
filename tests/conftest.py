"""Shared fixtures: a synthetic blood-cell-like ImageFolder, and (session-scoped) a tiny
trained run and its export, so the slow TF steps happen once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bcc_edge.synthetic import CLASSES, make_cell_image, write_image_folder  # noqa: F401 (re-exported for tests)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PBC_ROOT = PROJECT_ROOT.parent / "shared" / "data" / "pbc"
SYNTH_CLASSES = CLASSES[:3]


@pytest.fixture(scope="session", autouse=True)
def private_image_cache(tmp_path_factory):
    """Keep the decoded-image cache of test runs out of the user's ~/.cache/bcc-edge."""
    previous = os.environ.get("BCC_EDGE_CACHE")
    os.environ["BCC_EDGE_CACHE"] = str(tmp_path_factory.mktemp("image-cache"))
    yield
    if previous is None:
        os.environ.pop("BCC_EDGE_CACHE", None)
    else:
        os.environ["BCC_EDGE_CACHE"] = previous


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """3 classes (eosinophil, lymphocyte, monocyte) x 16 JPEGs; read-only (copy before altering)."""
    return write_image_folder(tmp_path_factory.mktemp("synth") / "data", per_class=16, classes=SYNTH_CLASSES, size=(96, 100))


@pytest.fixture(scope="session")
def tiny_run(synthetic_data, tmp_path_factory) -> Path:
    """bcc-small trained for 6 epochs at 32 px on the synthetic set (enough steps for
    BatchNorm moving statistics to settle, so outputs differ between images)."""
    from bcc_edge.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(TrainConfig(data=str(synthetic_data), out=str(out), model="bcc-small", image_size=32, batch_size=8, epochs=6, seed=1))
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
