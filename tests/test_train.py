"""Training runs on the synthetic data: run-directory layout, resume, interruption, CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from bcc_edge import models, rundir
from bcc_edge.cli import app
from bcc_edge.errors import BccError
from bcc_edge.rundir import RunDir
from bcc_edge.train import TrainConfig, learning_rate, resume, train

RUN_FILES = (
    rundir.CONFIG,
    rundir.LABELS,
    rundir.PREPROCESS,
    rundir.SPLITS,
    rundir.DATA,
    rundir.BAD_FILES,
    rundir.HISTORY,
    rundir.LAST_CHECKPOINT,
    rundir.STATE,
    rundir.BEST,
    rundir.VAL_METRICS,
)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BCC_EDGE_CACHE", str(tmp_path / "cache"))


def _tiny(data, out, **kw):
    settings = dict(data=str(data), out=str(out), model="bcc-small", image_size=32, batch_size=8, epochs=2, seed=1)
    settings.update(kw)
    return TrainConfig(**settings)


def test_tiny_run_has_the_documented_layout(tiny_run):
    for name in RUN_FILES:
        assert (tiny_run / name).is_file(), name
    run = RunDir(tiny_run)
    assert run.labels == ["eosinophil", "lymphocyte", "monocyte"]
    assert run.spec.size == (32, 32) and run.spec.output == "float32"
    assert run.config["model"] == "bcc-small" and run.config["model_kwargs"]["num_classes"] == 3
    assert len(run.records("train")) + len(run.records("val")) == 48
    assert run.fingerprint == json.loads((tiny_run / rundir.DATA).read_text())["fingerprint"]
    history = run.history()
    epochs = run.config["epochs"]
    assert epochs >= 2 and [row["epoch"] for row in history] == list(range(1, epochs + 1))
    assert run.float_val_accuracy == max(row["val_accuracy"] for row in history)
    assert run.state["epoch"] == epochs and not run.state["interrupted"]


def test_config_rebuilds_the_best_model(tiny_run):
    run = RunDir(tiny_run)
    best = run.load_best_model()
    rebuilt = models.build(run.config["model"], **run.config["model_kwargs"])
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for w in best.get_weights()]
    assert all(layer.compute_dtype == "float32" for layer in best.layers)
    x = run.spec.apply_batch([np.full((40, 40, 3), 200, np.uint8)])
    assert best.predict(x, verbose=0).shape == (1, 3)


def test_learning_rate_schedule():
    cfg = TrainConfig(data="d", out="o", lr=1.0, schedule="cosine", warmup_epochs=1.0)
    assert learning_rate(cfg, 0, 100, 10) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 100, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 55, 100, 10) == pytest.approx(0.5)
    assert learning_rate(cfg, 99, 100, 10) < 1e-3
    assert learning_rate(cfg, 20, 100, 10, time_fraction=0.999) < 1e-4  # the clock is ahead
    constant = TrainConfig(data="d", out="o", lr=0.3, schedule="constant", warmup_epochs=0.0)
    assert learning_rate(constant, 77, 100, 10) == 0.3


def test_recipe_defaults_and_validation():
    seed = TrainConfig(data="d", out="o", model="seed004-m2").resolved()
    assert (seed.batch_size, seed.optimizer, seed.image_size, seed.augment) == (16, "adam", 128, "none")
    ours = TrainConfig(data="d", out="o", model="bcc-small", batch_size=32).resolved()
    assert (ours.batch_size, ours.optimizer, ours.schedule, ours.label_smoothing) == (32, "adamw", "cosine", 0.1)
    assert TrainConfig(data="d", out="o").resolved().model == "seed000-enhanced"
    for bad in ({"epochs": 0}, {"lr": -1.0}, {"augment": "mixup"}, {"class_weight": "auto"}, {"label_smoothing": 1.0}, {"epochs": "3"}, {"lr": True}):
        with pytest.raises(BccError):
            TrainConfig(data="d", out="o", **bad).resolved()
    with pytest.raises(BccError, match="unknown model"):
        TrainConfig(data="d", out="o", model="nope").resolved()


def test_resume_trains_further_than_first_asked(tiny_run, tmp_path, cache):
    run_dir = shutil.copytree(tiny_run, tmp_path / "run")
    more = RunDir(run_dir).config["epochs"] + 1
    run = resume(run_dir, epochs=more, log=lambda m: None)
    assert [row["epoch"] for row in run.history()] == list(range(1, more + 1))
    assert run.state["epoch"] == more and run.state["epochs"] == more
    lines = []
    resume(run_dir, epochs=more, log=lines.append)  # nothing left to do
    assert "nothing to do" in lines[0]
    with pytest.raises(BccError, match="cannot change"):
        resume(run_dir, batch_size=4)


def test_interrupt_saves_a_mid_epoch_checkpoint_and_resume_finishes(synthetic_data, tmp_path, cache, monkeypatch):
    from bcc_edge import progress

    out = tmp_path / "run"
    calls = {"n": 0}
    original = progress.ProgressBar.update

    def interrupt_on_third_batch_of_epoch_two(self, *args, **kwargs):
        calls["n"] += self.desc.startswith("epoch")  # not the decoding bar
        if calls["n"] == 4 + 3:  # 4 steps per epoch (39 train images // 8)
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(progress.ProgressBar, "update", interrupt_on_third_batch_of_epoch_two)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(_tiny(synthetic_data, out, epochs=3), log=lines.append)
    assert "interrupted: checkpoint saved at epoch 1 + 3 steps" in lines[-1]  # 3 batches done
    state = RunDir(out).state
    assert (state["epoch"], state["step_in_epoch"], state["interrupted"]) == (1, 3, True)

    monkeypatch.setattr(progress.ProgressBar, "update", original)
    run = resume(out, log=lambda m: None)
    assert [row["epoch"] for row in run.history()] == [1, 2, 3]
    assert run.state["interrupted"] is False
    from bcc_edge._tf import keras

    optimizer = keras.models.load_model(out / rundir.LAST_CHECKPOINT).optimizer
    assert int(optimizer.iterations.numpy()) == 3 * 4  # every step ran exactly once


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_training_at_the_next_step_boundary(synthetic_data, tmp_path, cache, monkeypatch, signum):
    from bcc_edge import progress

    out = tmp_path / "run"
    calls = {"n": 0, "finished_step": False}
    original = progress.ProgressBar.update

    def signal_during_third_batch_of_epoch_two(self, *args, **kwargs):
        calls["n"] += self.desc.startswith("epoch")
        if calls["n"] == 4 + 3:
            os.kill(os.getpid(), signum)
            calls["finished_step"] = True  # not reached if the signal raised right here
        return original(self, *args, **kwargs)

    monkeypatch.setattr(progress.ProgressBar, "update", signal_during_third_batch_of_epoch_two)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(_tiny(synthetic_data, out, epochs=3), log=lines.append)
    assert calls["finished_step"]
    assert "interrupted: checkpoint saved at epoch 1 + 3 steps" in lines[-1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_second_signal_stops_at_once(synthetic_data, tmp_path, cache, monkeypatch):
    from bcc_edge import progress

    out = tmp_path / "run"
    calls = {"n": 0, "after_second": False}
    original = progress.ProgressBar.update

    def two_signals(self, *args, **kwargs):
        calls["n"] += self.desc.startswith("epoch")
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            calls["after_second"] = True
        return original(self, *args, **kwargs)

    monkeypatch.setattr(progress.ProgressBar, "update", two_signals)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(_tiny(synthetic_data, out, epochs=3), log=lines.append)
    assert not calls["after_second"]
    assert "interrupted: checkpoint saved at epoch 0 + 2 steps" in lines[-1]


def test_early_stopping_keeps_the_best(synthetic_data, tmp_path, cache):
    run = train(_tiny(synthetic_data, tmp_path / "run", epochs=6, patience=1, lr=0.05, schedule="constant", warmup_epochs=0.0), log=lambda m: None)
    history = run.history()
    best = run.val_metrics
    assert len(history) < 6 and run.state["stopped_early"]
    assert best["accuracy"] == max(row["val_accuracy"] for row in history)
    assert history[-1]["epoch"] == best["epoch"] + 1


def test_training_learns_the_synthetic_classes(synthetic_data, tmp_path, cache):
    run = train(_tiny(synthetic_data, tmp_path / "run", epochs=6, class_weight="balanced", augment="full"), log=lambda m: None)
    history = run.history()
    assert history[-1]["loss"] < history[0]["loss"]
    assert run.config["class_weight"] == "balanced"


def test_ema_teacher_and_resize_jitter_train_and_resume(tiny_run, synthetic_data, tmp_path, cache):
    from bcc_edge._tf import keras
    from bcc_edge.distill import TEACHER_TARGETS

    lines = []
    cfg = _tiny(synthetic_data, tmp_path / "run", epochs=2, ema=0.9, teacher=[str(tiny_run)], distill=0.7, resize_jitter=0.5)
    run = train(cfg, log=lines.append)
    targets = np.load(run.path / TEACHER_TARGETS)
    assert targets.shape == (len(run.records("train")), len(run.labels))
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-4)
    assert any("teacher targets" in line for line in lines)
    last = keras.models.load_model(run.path / "checkpoints" / "last.keras", compile=False)
    ema = keras.models.load_model(run.path / "checkpoints" / "ema.keras", compile=False)
    best = run.load_best_model()
    assert not all(np.array_equal(a, b) for a, b in zip(last.get_weights(), ema.get_weights()))  # the average lags
    if run.state["best"]["epoch"] == 2:
        assert all(np.array_equal(a, b) for a, b in zip(best.get_weights(), ema.get_weights()))  # the average is kept
    lines.clear()
    resumed = resume(run.path, epochs=3, log=lines.append)
    assert not any("predicting" in line for line in lines)  # the targets are reused
    assert resumed.state["epoch"] == 3


def test_refuses_to_overwrite_a_run(tiny_run):
    with pytest.raises(BccError, match="already holds a run"):
        train(_tiny("unused", tiny_run))


# ----------------------------------------------------------------------------- CLI


def _broken_folder(synthetic_data, tmp_path):
    data = shutil.copytree(synthetic_data, tmp_path / "data")
    (data / "eosinophil" / "broken.jpg").write_bytes(b"not a jpeg")
    return data


def test_cli_train_skips_a_corrupt_image_then_resumes(synthetic_data, tmp_path, cache):
    data = _broken_folder(synthetic_data, tmp_path)
    out = tmp_path / "RUN"
    runner = CliRunner()
    args = ["train", "--data", str(data), "--model", "bcc-small", "--epochs", "2", "--image-size", "32", "--batch-size", "8", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len([p for p in out.rglob("*") if p.is_file()]) >= 4
    assert "broken.jpg" in (out / rundir.BAD_FILES).read_text()
    assert "broken.jpg" not in (out / rundir.SPLITS).read_text()
    assert "skipped unreadable file" in result.output

    result = runner.invoke(app, ["train", "--resume", str(out), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert [row["epoch"] for row in RunDir(out).history()] == [1, 2, 3]


def test_cli_config_file_and_flag_override(synthetic_data, tmp_path, cache):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"data": str(synthetic_data), "model": "seed004-m1", "image_size": 24, "epochs": 5, "batch_size": 8}))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--epochs", "1", "--out", str(out), "--classes", "eosinophil,monocyte"])
    assert result.exit_code == 0, result.output
    run = RunDir(out)
    assert (run.config["model"], run.config["epochs"], run.config["image_size"]) == ("seed004-m1", 1, 24)
    assert run.labels == ["eosinophil", "monocyte"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "nowhere", "--out", "x"], "data folder not found"),
        (["--out", "x"], "missing --data"),
        (["--data", ".", "--out", "x", "--model", "resnet"], "unknown model"),
        (["--resume", "x", "--data", "."], "leave out --data"),
        (["--resume", "no-such-run"], "run directory not found"),
        (["--data", ".", "--out", "x", "--model-arg", "width"], "KEY=VALUE"),
    ],
)
def test_cli_user_errors_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


# Slow tier: once in three CI runs on a loaded 2-core machine the child died with SIGSEGV
# (exit -11, no output) instead of saving; not reproduced in 10 isolated and 6 concurrent runs.
# The suspected cause, a KeyboardInterrupt raised inside TensorFlow code, is gone (the signal now
# only sets a flag checked between steps: train._StopRequest); this stays in the slow tier until
# CI has shown the crash is too.
@pytest.mark.slow
def test_ctrl_c_in_the_cli_saves_a_checkpoint(synthetic_data, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "BCC_EDGE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path)}
    args = ["--data", str(synthetic_data), "--out", str(out), "--model", "bcc-small", "--image-size", "32", "--batch-size", "8", "--epochs", "500"]
    proc = subprocess.Popen([sys.executable, "-m", "bcc_edge", "train", *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stderr:
            if line.startswith("epoch 1/500"):
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    assert code == 130, rest
    assert "interrupted: checkpoint saved" in rest
    state = RunDir(out).state
    assert state["interrupted"] and state["epoch"] >= 1
    assert not math.isnan(RunDir(out).float_val_accuracy)


def test_shipped_configs_are_valid():
    from conftest import PROJECT_ROOT

    files = sorted((PROJECT_ROOT / "configs").glob("*.json"))
    assert files
    for path in files:
        cfg = TrainConfig(out="o", **json.loads(path.read_text())).resolved()
        assert cfg.model in models.REGISTRY, path.name
