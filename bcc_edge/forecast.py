"""No surprise for a CPU user: a long run on a machine without a GPU says, within its first
minute, how long it will take and what would be faster.

The rate is measured on the run's own first steps (after the first few, which compile), and
the faster choices are scaled from it by each choice's multiply-accumulates
(`models.count_macs`): rough, and printed as such.
"""

from __future__ import annotations

import time
from typing import Callable

from bcc_edge.progress import format_duration

# Forecast once this many steps have run after the compiling ones, or this many seconds.
WARMUP_STEPS = 3
MEASURE_STEPS = 20
MEASURE_SECONDS = 30.0
# Only runs forecast to take longer than this hear about it.
LONG_RUN_SECONDS = 30 * 60
# bfloat16 instructions a CPU reports (/proc/cpuinfo flags): x86 AVX512-BF16 / AMX, Arm BF16.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
BF16_SPEEDUP = 1.7  # measured for the VGG-style seed models (distribute.py)
EDGE_MODEL = "bcc-small"
# Multiply-accumulates overstate how much faster the edge model trains: its depthwise
# convolutions are memory-bound. Measured on 2 x86 cores: seed000-enhanced at 224 px 22 img/s,
# bcc-small at 128 px 340 img/s, where the MAC ratio (48x) predicts 1,070.
EDGE_MODEL_MAC_EFFICIENCY = 0.32


class Forecast:
    def __init__(self, cfg, runtime, steps_per_epoch: int, epochs_left: int, log: Callable[[str], None]):
        self.cfg, self.runtime, self.log = cfg, runtime, log
        self.steps_per_epoch, self.epochs_left = steps_per_epoch, epochs_left
        self.enabled = not runtime.gpus and runtime.is_chief
        self.steps = 0
        self.started: float | None = None

    def step(self) -> None:
        """Call after every training step; speaks once, early in the run."""
        if not self.enabled:
            return
        self.steps += 1
        if self.steps == WARMUP_STEPS:
            self.started = time.perf_counter()
            return
        if self.started is None:
            return
        measured, elapsed = self.steps - WARMUP_STEPS, time.perf_counter() - self.started
        if measured < MEASURE_STEPS and elapsed < MEASURE_SECONDS:
            return
        self.enabled = False
        seconds_per_step = elapsed / measured
        total = seconds_per_step * self.steps_per_epoch * self.epochs_left
        if total >= LONG_RUN_SECONDS:
            self.log(self.message(seconds_per_step, total))

    def message(self, seconds_per_step: float, total: float) -> str:
        cfg = self.cfg
        epoch = seconds_per_step * self.steps_per_epoch
        text = (
            f"estimate on this CPU (no GPU): {format_duration(epoch)} per epoch, about {format_duration(total)} for "
            f"{self.epochs_left} epochs{' (early stopping may end it sooner)' if cfg.patience else ''}."
        )
        faster = [f"{flag} (~{format_duration(total / ratio)})" for flag, ratio in self._faster() if ratio > 1.2]
        if faster:
            text += " Faster (rough): " + "; ".join(faster) + "; or a GPU (`bcc-edge train` uses it when TensorFlow sees one)."
        return text

    def _faster(self) -> list[tuple[str, float]]:
        """(option, how many times faster) for the cheaper choices that change this run."""
        from bcc_edge import models

        cfg = self.cfg
        here = _macs(cfg.model, cfg.image_size, cfg.model_kwargs)
        choices = []
        if cfg.image_size > 128:
            choices.append(("--image-size 128", here / _macs(cfg.model, 128, cfg.model_kwargs)))
        if cfg.model != EDGE_MODEL:
            size = models.get(EDGE_MODEL).input_size
            choices.append((f"--model {EDGE_MODEL} (our edge model, {size} px)", EDGE_MODEL_MAC_EFFICIENCY * here / _macs(EDGE_MODEL, size, {})))
        if self.runtime.policy == "float32" and _cpu_has_bf16() and cfg.model != EDGE_MODEL:
            choices.append(("--mixed-precision bf16", BF16_SPEEDUP))
        return choices


def _macs(name: str, size: int, kwargs: dict) -> int:
    from bcc_edge import models

    return models.count_macs(models.build(name, 8, size, **kwargs))


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith(("flags", "Features"))), [])
    except OSError:
        return False
    return any(flag in flags for flag in BF16_FLAGS)
