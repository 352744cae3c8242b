"""Teacher targets for `bcc-edge train --teacher RUN [--teacher RUN ...]` (knowledge distillation).

A teacher's prediction on a training image says more than its label: how much a neutrophil
looks like an immature granulocyte. The targets are each teacher's probabilities averaged over
the 8 flips and quarter turns of the image (a blood smear has no orientation, so the average is
a better prediction than any one view), then over the teachers. They are computed once per run,
before the first epoch, on the images as every teacher's own preprocessing sees them, and kept
in the run directory, so distillation costs training no teacher forward pass and `--resume`
no recomputation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bcc_edge import data
from bcc_edge.errors import BccError
from bcc_edge.fileio import write_bytes

TEACHER_TARGETS = "teacher_targets.npy"
_BATCH = 128


def teacher_targets(
    teachers: Sequence[str], records: Sequence[data.Record], labels: Sequence[str], path: Path, is_chief: bool, log: Callable[[str], None], progress: bool | None = None
) -> np.ndarray:
    """(len(records), classes) float32 targets, read from `path` when an earlier start of the
    run wrote them, else computed (and written there by the chief)."""
    if path.is_file():
        targets = np.load(path)
        if targets.shape == (len(records), len(labels)):
            return targets
        log(f"{path.name} does not match the run's training images; computing the teacher targets again")
    total = np.zeros((len(records), len(labels)), np.float64)
    for teacher in teachers:
        log(f"teacher {teacher}: predicting the {len(records)} training images in 8 orientations")
        total += _orientation_mean(teacher, records, labels, progress)
    targets = (total / len(teachers)).astype(np.float32)
    agreement = float((targets.argmax(axis=1) == np.array([r.index for r in records])).mean())
    log(f"teacher targets: top-1 agrees with the labels on {agreement:.2%} of the training images")
    if is_chief:
        buffer = _npy_bytes(targets)
        write_bytes(path, buffer)
    return targets


def _orientation_mean(teacher: str, records, labels, progress) -> np.ndarray:
    from bcc_edge.rundir import RunDir

    run = RunDir(teacher)
    if run.labels != list(labels):
        raise BccError(f"teacher {teacher} classifies {run.labels}, not this run's classes {list(labels)}")
    spec = run.spec
    if spec.size[0] != spec.size[1]:
        raise BccError(f"teacher {teacher}: quarter turns need a square input, its input is {spec.size}")
    images, _, bad = data.load_arrays(records, spec, run.config.get("cache_dir"), use_cache=bool(run.config.get("use_cache", True)), progress=progress)
    if bad:
        raise BccError(f"teacher {teacher} cannot read {len(bad)} training image(s), e.g. {bad[0][0]}")
    model = run.load_best_model()
    out = np.zeros((len(images), len(labels)), np.float64)
    for start in range(0, len(images), _BATCH):
        batch = images[start : start + _BATCH]
        for k in range(8):
            view = np.rot90(batch, k % 4, axes=(1, 2))
            view = view[:, :, ::-1] if k >= 4 else view
            x = spec.apply_batch(np.ascontiguousarray(view))
            out[start : start + len(batch)] += np.asarray(model(x, training=False), np.float64)
    return out / 8


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
