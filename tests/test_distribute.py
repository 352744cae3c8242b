"""The multi-replica training paths on CPU: MirroredStrategy over logical CPU devices, mixed
precision + XLA, and MultiWorkerMirroredStrategy with two local worker processes.

Each case runs in a fresh interpreter: logical devices and TF_CONFIG must be in place before
TensorFlow initialises, which has long happened in the test process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from bcc_edge.distribute import _cluster_tasks
from bcc_edge.errors import BccError
from bcc_edge.rundir import RunDir

SCRIPT = """
import sys
from bcc_edge import distribute
if int(sys.argv[3]) > 1:
    distribute.split_cpu(int(sys.argv[3]))
from bcc_edge.train import TrainConfig, train
train(TrainConfig(data=sys.argv[1], out=sys.argv[2], model="bcc-small", image_size=32, batch_size=8, epochs=2, seed=1,
                  strategy=sys.argv[4], mixed_precision=sys.argv[5], xla=sys.argv[5]), log=lambda m: None)
"""


def _env(tmp_path, **extra):
    return {**os.environ, "BCC_EDGE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path), **extra}


def _run(tmp_path, synthetic_data, out, cpus, strategy, fast, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(synthetic_data), str(out), str(cpus), strategy, fast],
        env=env or _env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )


def _check(proc):
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def _finished(out):
    run = RunDir(out)
    assert [row["epoch"] for row in run.history()] == [1, 2]
    assert all(row["loss"] == row["loss"] for row in run.history())  # no NaN
    best = run.load_best_model()
    assert all(layer.compute_dtype == "float32" for layer in best.layers)
    return run


def test_mirrored_strategy_over_two_logical_cpus(synthetic_data, tmp_path):
    out = tmp_path / "run"
    _check(_run(tmp_path, synthetic_data, out, 2, "mirrored", "off"))
    runtime = _finished(out).config["runtime"]
    assert (runtime["strategy"], runtime["replicas"], runtime["mixed_precision"]) == ("mirrored", 2, False)


def test_mixed_precision_and_xla_train_and_save_a_float32_best_model(synthetic_data, tmp_path):
    # One device: XLA's CPU backend cannot reach variables on another logical CPU device (on
    # GPUs each replica compiles for its own device).
    out = tmp_path / "run"
    _check(_run(tmp_path, synthetic_data, out, 1, "default", "on"))
    run = _finished(out)
    assert run.config["runtime"]["mixed_precision"] and run.config["runtime"]["xla"]
    from bcc_edge._tf import keras

    last = keras.models.load_model(out / "checkpoints" / "last.keras")
    assert isinstance(last.optimizer, keras.mixed_precision.LossScaleOptimizer)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multi_worker_strategy_from_tf_config(synthetic_data, tmp_path):
    out = tmp_path / "run"
    workers = [f"localhost:{_free_port()}" for _ in range(2)]
    procs = [
        _run(tmp_path, synthetic_data, out, 1, "auto", "off", env=_env(tmp_path, TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})))
        for i in range(2)
    ]
    try:
        for proc in procs:
            _check(proc)
    finally:
        for proc in procs:
            proc.kill()
    runtime = _finished(out).config["runtime"]
    assert (runtime["strategy"], runtime["workers"], runtime["replicas"]) == ("multi-worker", 2, 2)


def test_tf_config_parsing(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}))
    assert _cluster_tasks() == (3, False)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}))
    assert _cluster_tasks() == (2, True)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(BccError, match="TF_CONFIG"):
        _cluster_tasks()
    monkeypatch.delenv("TF_CONFIG")
    assert _cluster_tasks() == (0, True)


def test_bfloat16_trains_without_loss_scaling_and_keeps_a_float32_best_model(synthetic_data, tmp_path):
    from bcc_edge._tf import keras
    from bcc_edge.train import TrainConfig, train

    cfg = TrainConfig(data=str(synthetic_data), out=str(tmp_path / "run"), model="seed004-m1", image_size=32, batch_size=8, epochs=1, mixed_precision="bf16")
    run = train(cfg, log=lambda m: None)
    assert run.config["runtime"]["policy"] == "mixed_bfloat16"
    last = keras.models.load_model(run.path / "checkpoints" / "last.keras")
    assert not isinstance(last.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert all(w.dtype == "float32" for w in run.load_best_model().weights)
