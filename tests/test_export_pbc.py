"""Real data (-m slow, needs ../shared/data/pbc): the INT8 bcc-small keeps its float val accuracy
within 1 point and its TFLite model stays under 1 MB.

Uses the run named by BCC_EDGE_PBC_RUN when set (a finished `bcc-edge train --model bcc-small`
on PBC); otherwise trains one here under a 60-minute limit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import PBC_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.pbc]


@pytest.fixture(scope="module")
def pbc_run(tmp_path_factory) -> Path:
    given = os.environ.get("BCC_EDGE_PBC_RUN")
    if given:
        return Path(given)
    from bcc_edge.train import TrainConfig, train

    out = tmp_path_factory.mktemp("pbc") / "run"
    train(TrainConfig(data=str(PBC_ROOT), out=str(out), model="bcc-small", time_limit=60))
    return out


@pytest.fixture(scope="module")
def pbc_export(pbc_run, tmp_path_factory) -> Path:
    from bcc_edge.export import ExportOptions, export_run

    out = tmp_path_factory.mktemp("pbc-export") / "exp"
    export_run(pbc_run, out, ExportOptions(int8=True, qat_epochs=2), log=print)
    return out


def test_int8_bcc_small_keeps_float_accuracy_and_fits_in_1mb(pbc_export):
    from bcc_edge.verify import format_report, verify_export

    report = verify_export(pbc_export, split="val")
    print(format_report(report))
    int8 = {a.file: a for a in report.artifacts if a.precision == "int8"}
    assert set(int8) == {"model_int8.tflite", "model_uint8.tflite", "model_int8.onnx"}
    for artifact in int8.values():
        assert report.float_result.accuracy - artifact.result.accuracy <= 0.01, artifact.file
    assert (pbc_export / "model_int8.tflite").stat().st_size < 1_000_000
    # Not asserted: verify's 98% agreement. QAT fine-tunes with a cosine-annealed LR, so on a
    # run stopped before its own LR annealed, INT8 legitimately disagrees where it improved
    # (measured on an epoch-10 snapshot: float 95.6%, INT8 97.9%, agreement 96.7%).
