"""Real data (slow): bcc-small on PBC with configs/pbc-bcc-small.json, 2 CPU cores, <= 60 min.

    PYTHONPATH=. python -m pytest -m slow tests/test_train_pbc.py -s

Set BCC_EDGE_PBC_RUN=DIR to keep the run (e.g. to export it afterwards); by default it lives
in pytest's temporary folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import PBC_ROOT, PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.pbc]


def test_bcc_small_reaches_95_percent_val_within_60_minutes(tmp_path):
    from bcc_edge.train import TrainConfig, train

    settings = json.loads((PROJECT_ROOT / "configs" / "pbc-bcc-small.json").read_text())
    settings["data"] = str(PBC_ROOT)
    out = Path(os.environ.get("BCC_EDGE_PBC_RUN") or tmp_path / "pbc-bcc-small")
    run = train(TrainConfig(out=str(out), **settings))

    history = run.history()
    rates = [row["images_per_second"] for row in history[1:]] or [history[0]["images_per_second"]]
    print(f"\n{len(history)} epochs, {run.state['train_seconds'] / 60:.1f} min, median {sorted(rates)[len(rates) // 2]:.0f} img/s, best val {run.float_val_accuracy:.4f}")
    # The time limit is ours to keep, not a machine-speed assertion: the loop stops before an
    # epoch that would not finish in time.
    assert run.state["train_seconds"] <= 60 * 60
    assert run.float_val_accuracy >= 0.95
