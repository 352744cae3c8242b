"""A training run directory: what `bcc-edge train` writes and every later step reads.

Layout (ARCHITECTURE.md):
    config.json  labels.json  preprocess.json  splits.csv  data.json  bad_files.txt
    history.csv  checkpoints/last.keras  checkpoints/state.json  best.keras  val_metrics.json

No TensorFlow at import: `RunDir` only reads JSON/CSV; `load_best_model` imports it on demand.
Every file is written through `bcc_edge.fileio` (temporary file in the same folder, then
rename), so a run killed at any moment leaves each file either complete or absent.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from bcc_edge.data import Record
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec

CONFIG = "config.json"
LABELS = "labels.json"
PREPROCESS = "preprocess.json"
SPLITS = "splits.csv"
DATA = "data.json"
BAD_FILES = "bad_files.txt"
HISTORY = "history.csv"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINTS}/last.keras"
EMA_CHECKPOINT = f"{CHECKPOINTS}/ema.keras"  # with --ema: the averaged weights
STATE = f"{CHECKPOINTS}/state.json"
BEST = "best.keras"
VAL_METRICS = "val_metrics.json"

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_second")


# ----------------------------------------------------------------------------- reading


class RunDir:
    """Read access to a finished or interrupted training run."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise BccError(f"run directory not found: {self.path}")
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """Path of one of the run's files, which must exist."""
        path = self.path / name
        if not path.is_file():
            raise BccError(f"{self.path} is not a complete bcc-edge run: {name} is missing")
        return path

    def _json(self, name: str) -> Any:
        if name not in self._cache:
            try:
                self._cache[name] = json.loads(self.file(name).read_text("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BccError(f"{self.path / name} is not valid JSON ({exc})") from None
        return self._cache[name]

    @property
    def config(self) -> dict[str, Any]:
        """The resolved TrainConfig as written by `train` (model name, model_kwargs, ...)."""
        return self._json(CONFIG)

    @property
    def labels(self) -> list[str]:
        return list(self._json(LABELS))

    @property
    def spec(self) -> PreprocessSpec:
        """The float32 preprocessing the float model takes."""
        return PreprocessSpec.from_dict(self._json(PREPROCESS))

    @property
    def data_info(self) -> dict[str, Any]:
        return self._json(DATA)

    @property
    def data_root(self) -> Path:
        """Where the images are; a relative data_root is relative to the run directory, so a
        run kept in a repository (models/) finds the data beside the checkout."""
        return self.path / self.data_info["data_root"]

    @property
    def fingerprint(self) -> str:
        return self.data_info["fingerprint"]

    @property
    def state(self) -> dict[str, Any] | None:
        """The resume point (epoch, best, patience ...), or None before the first epoch ends."""
        return self._json(STATE) if (self.path / STATE).is_file() else None

    @property
    def val_metrics(self) -> dict[str, Any]:
        return self._json(VAL_METRICS)

    @property
    def float_val_accuracy(self) -> float:
        return float(self.val_metrics["accuracy"])

    @property
    def best_model_path(self) -> Path:
        return self.file(BEST)

    def records(self, split: str) -> list[Record]:
        """The images of one split ("train" or "val") that training actually used."""
        index = {label: i for i, label in enumerate(self.labels)}
        root = self.data_root
        with self.file(SPLITS).open(newline="", encoding="utf-8") as f:
            rows = [row for row in csv.DictReader(f) if row["split"] == split]
        try:
            return [Record(str(root / row["path"]), row["label"], index[row["label"]], row["sha256"]) for row in rows]
        except KeyError as exc:
            raise BccError(f"{self.path / SPLITS} names a label not in {LABELS}: {exc}") from None

    def history(self) -> list[dict[str, float]]:
        path = self.path / HISTORY
        if not path.is_file():
            return []
        with path.open(newline="", encoding="utf-8") as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        for row in rows:
            row["epoch"] = int(row["epoch"])
        return rows

    def bad_files(self) -> list[tuple[str, str]]:
        path = self.path / BAD_FILES
        if not path.is_file():
            return []
        lines = path.read_text("utf-8").splitlines()
        return [tuple(line.split("\t", 1)) for line in lines if line]  # type: ignore[misc]

    def load_best_model(self):
        """The best-val float tf_keras model (imports TensorFlow)."""
        from bcc_edge._tf import keras

        return keras.models.load_model(self.best_model_path, compile=False)
