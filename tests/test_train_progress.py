"""The progress bar: drawn on terminals only, summary lines always."""

from __future__ import annotations

import io

from bcc_edge.progress import ProgressBar, format_duration


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_silent_when_not_a_terminal_except_for_the_summary():
    stream = io.StringIO()
    bar = ProgressBar(10, "epoch 1/3", stream=stream)
    for _ in range(10):
        assert not bar.due()
        bar.update(postfix="loss 1.0")
    bar.close("epoch 1/3  loss 1.0")
    assert stream.getvalue() == "epoch 1/3  loss 1.0\n"


def test_draws_rate_eta_and_postfix_on_a_terminal():
    stream = _Terminal()
    bar = ProgressBar(4, "epoch 2/3", unit="img", items_per_step=64, stream=stream)
    assert bar.enabled and bar.due()
    bar.update(postfix="loss 0.5")
    text = stream.getvalue()
    assert text.startswith("\r") and "epoch 2/3 [" in text and "1/4" in text
    assert "img/s" in text and "ETA" in text and "loss 0.5" in text
    bar.update(3)  # the last step always redraws
    assert "4/4" in stream.getvalue()
    bar.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_format_duration():
    assert format_duration(59.6) == "1:00"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(-3) == "0:00"


def test_a_long_cpu_run_forecasts_its_time_and_faster_choices(monkeypatch):
    from types import SimpleNamespace

    from bcc_edge import forecast
    from bcc_edge.train import TrainConfig

    cfg = TrainConfig(data="d", out="o").resolved()  # the default: seed000-enhanced at 224 px
    runtime = SimpleNamespace(gpus=0, is_chief=True, policy="float32")
    lines = []
    ticks = iter(range(10**6))
    monkeypatch.setattr(forecast.time, "perf_counter", lambda: 0.6 * next(ticks))  # 0.6 s a step
    monkeypatch.setattr(forecast, "_cpu_has_bf16", lambda: True)
    f = forecast.Forecast(cfg, runtime, steps_per_epoch=747, epochs_left=50, log=lines.append)
    for _ in range(forecast.WARMUP_STEPS + forecast.MEASURE_STEPS):
        f.step()
    (line,) = lines
    assert line.startswith("estimate on this CPU (no GPU):") and "50 epochs" in line
    assert "--image-size 128" in line and "--model bcc-small" in line and "--mixed-precision bf16" in line
    f.step()
    assert len(lines) == 1  # once
    on_gpu = forecast.Forecast(cfg, SimpleNamespace(gpus=1, is_chief=True, policy="mixed_float16"), 747, 50, lines.append)
    for _ in range(40):
        on_gpu.step()
    assert len(lines) == 1
