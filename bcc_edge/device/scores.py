"""From a model's outputs to the scores a haematologist acts on: calibrated probabilities and
the refer-for-review policy, both fitted at export on held-back labelled images
(`bcc_edge.export.trust`) and carried in the artifact's metadata.

- Calibration maps the logits z to softmax(z / T) ("temperature") or softmax(a * z + b) with
  one scale a_c and bias b_c per class ("vector"). An INT8 model therefore outputs its logits
  (int8, with their own quantisation scale) rather than a softmax, whose 8-bit output would
  put every probability on a 1/256 grid.
- The review policy refers a prediction to a person when its calibrated top-1 probability is
  below a threshold: one for all classes, or one per predicted class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

METHODS = ("temperature", "vector")
REASON_LOW_CONFIDENCE = "low_confidence"
REASON_OUT_OF_DISTRIBUTION = "out_of_distribution"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Calibration:
    """A fitted map from logits to probabilities."""

    method: str = "temperature"
    temperature: float = 1.0
    scale: tuple[float, ...] = ()
    bias: tuple[float, ...] = ()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return softmax(self.logits(logits))

    def logits(self, logits: np.ndarray) -> np.ndarray:
        """The calibrated logits (float64)."""
        z = logits.astype(np.float64)
        if self.method == "vector":
            return z * np.asarray(self.scale) + np.asarray(self.bias)
        return z / self.temperature

    def to_dict(self) -> dict[str, Any]:
        if self.method == "vector":
            return {"method": "vector", "scale": list(self.scale), "bias": list(self.bias)}
        return {"method": "temperature", "temperature": self.temperature}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Calibration":
        if doc["method"] == "vector":
            return cls("vector", scale=tuple(doc["scale"]), bias=tuple(doc["bias"]))
        return cls("temperature", temperature=float(doc["temperature"]))


def calibration_problems(doc: Any, classes: int) -> list[str]:
    """Why a `probabilities` metadata entry is unusable (empty when it is fine)."""
    if not isinstance(doc, dict) or doc.get("method") not in METHODS:
        return [f"probabilities.method must be one of {', '.join(METHODS)}"]
    if doc["method"] == "temperature":
        t = doc.get("temperature")
        return [] if _finite(t) and 0.01 <= t <= 100 else [f"probabilities.temperature must be in [0.01, 100]; got {t!r}"]
    problems = []
    for key in ("scale", "bias"):
        values = doc.get(key)
        if not (isinstance(values, list) and len(values) == classes and all(_finite(v) and abs(v) <= 100 for v in values)):
            problems.append(f"probabilities.{key} must be {classes} numbers in [-100, 100]")
    return problems


@dataclass(frozen=True)
class ReviewPolicy:
    """Refer a prediction when its top-1 probability is below `threshold` (or, per predicted
    class, `per_class[c]`)."""

    threshold: float | None = None
    per_class: tuple[float, ...] | None = None

    def refer(self, probs: np.ndarray) -> np.ndarray:
        """One bool per row: refer it for review."""
        if len(probs) == 0:
            return np.zeros(0, bool)
        top = probs.max(axis=1)
        if self.per_class is not None:
            return top < np.asarray(self.per_class)[probs.argmax(axis=1)]
        return top < (self.threshold if self.threshold is not None else 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"per_class": list(self.per_class)} if self.per_class is not None else {"threshold": self.threshold}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "ReviewPolicy":
        if doc.get("per_class") is not None:
            return cls(per_class=tuple(float(t) for t in doc["per_class"]))
        return cls(threshold=float(doc["threshold"]))


def review_problems(doc: Any, classes: int) -> list[str]:
    if not isinstance(doc, dict):
        return ["review must be an object"]
    per_class = doc.get("per_class")
    if per_class is not None:
        ok = isinstance(per_class, list) and len(per_class) == classes and all(_finite(t) and 0 <= t <= 1 for t in per_class)
        return [] if ok else [f"review.per_class must be {classes} thresholds in [0, 1]"]
    t = doc.get("threshold")
    return [] if _finite(t) and 0 <= t <= 1 else [f"review.threshold must be in [0, 1]; got {t!r}"]


def statuses(referred: Sequence[bool], out_of_distribution: Sequence[bool]) -> list[tuple[str, list[str]]]:
    """(status, reasons) per row: "review" with its reasons, or "ok"."""
    rows = []
    for low, ood in zip(referred, out_of_distribution):
        reasons = [r for r, on in ((REASON_LOW_CONFIDENCE, low), (REASON_OUT_OF_DISTRIBUTION, ood)) if on]
        rows.append(("review" if reasons else "ok", reasons))
    return rows


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
