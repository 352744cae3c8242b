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
