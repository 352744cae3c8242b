"""The input guard: does an image look like the images the model was trained on?

A classifier trained on one lab's scanner and stain labels anything: a blurred field, another
stain, a photo of the bench. The guard summarises each model input in a few statistics (per
channel: mean, spread and 5/50/95% quantiles; the channels' correlations; the texture at two
scales, whose ratio drops when an image is out of focus) and measures the Mahalanobis distance
of that summary from the training images' (mean and covariance stored at export). A distance
above the threshold (chosen at export on held-back images, e.g. their 99th percentile) flags
the image `out_of_distribution`. Measured on PBC (benchmarks/ood.py, README): stain and colour
shifts, blur, other magnifications and non-cell images are separated from clean images.

The statistics are computed on the batch the model receives, in its input units (each
artifact stores its own reference), on every second pixel (texture: every fourth row or
column at full resolution): a few hundredths of a millisecond per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURES = "image-stats-1"
NAMES = (
    *(f"{stat}_{c}" for stat in ("mean", "std", "q05", "q50", "q95") for c in "rgb"),
    "corr_rg", "corr_gb", "corr_rb", "log_texture_x", "log_texture_y", "log_fine_to_coarse",
)
# Warn about a sample (a run, a folder) when more than this share of its images is flagged.
DEFAULT_WARN_SHARE = 0.1
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_EPS = 1e-6


def features(batch: np.ndarray, scale: float = 1.0, zero_point: int = 0) -> np.ndarray:
    """(N, len(NAMES)) statistics of a model input batch (N, h, w, 3); an integer batch is
    dequantised with `scale` and `zero_point` first."""
    n = len(batch)

    def real(a):
        a = a.astype(np.float32)
        return a if batch.dtype == np.float32 else (a - np.float32(zero_point)) * np.float32(scale)

    flat = real(batch[:, ::2, ::2, :]).reshape(n, -1, 3)
    mean = flat.mean(axis=1)
    std = flat.std(axis=1)
    quantiles = np.quantile(flat, (0.05, 0.5, 0.95), axis=1).transpose(1, 0, 2).reshape(n, 9)
    unit = (flat - mean[:, None]) / (std[:, None] + _EPS)
    corr = np.stack([(unit[..., a] * unit[..., b]).mean(axis=1) for a, b in ((0, 1), (1, 2), (0, 2))], axis=1)
    rows = real(batch[:, ::4, :, :]) @ _LUMA
    cols = real(batch[:, :, ::4, :]) @ _LUMA
    fine = np.abs(np.diff(rows, axis=2)).mean(axis=(1, 2))
    coarse = np.abs(np.diff(rows[:, :, ::2], axis=2)).mean(axis=(1, 2))
    vertical = np.abs(np.diff(cols, axis=1)).mean(axis=(1, 2))
    texture = np.stack([np.log(fine + _EPS), np.log(vertical + _EPS), np.log((fine + _EPS) / (coarse + _EPS))], axis=1)
    return np.concatenate([mean, std, quantiles, corr, texture], axis=1).astype(np.float64)


@dataclass(frozen=True)
class Guard:
    """Reference statistics and the distance threshold of one artifact."""

    mean: np.ndarray
    precision: np.ndarray  # inverse covariance
    threshold: float
    warn_share: float = DEFAULT_WARN_SHARE

    def distances(self, feats: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances of feature rows from the reference."""
        d = feats - self.mean
        return np.einsum("ij,jk,ik->i", d, self.precision, d)

    def flags(self, feats: np.ndarray) -> np.ndarray:
        return self.distances(feats) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": FEATURES,
            "mean": self.mean.tolist(),
            "precision": self.precision.tolist(),
            "threshold": float(self.threshold),
            "warn_share": self.warn_share,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Guard":
        return cls(np.asarray(doc["mean"], np.float64), np.asarray(doc["precision"], np.float64), float(doc["threshold"]), float(doc.get("warn_share", DEFAULT_WARN_SHARE)))


def guard_problems(doc: Any) -> list[str]:
    """Why a `guard` metadata entry is unusable (empty when it is fine)."""
    if not isinstance(doc, dict) or doc.get("features") != FEATURES:
        return [f"guard.features must be {FEATURES!r} (this bcc-edge computes no other statistics)"]
    k = len(NAMES)
    mean, precision = doc.get("mean"), doc.get("precision")
    problems = []
    if not (isinstance(mean, list) and len(mean) == k and all(_finite(v) for v in mean)):
        problems.append(f"guard.mean must be {k} numbers")
    if not (isinstance(precision, list) and len(precision) == k and all(isinstance(r, list) and len(r) == k and all(_finite(v) for v in r) for r in precision)):
        problems.append(f"guard.precision must be a {k}x{k} matrix of numbers")
    if not (_finite(doc.get("threshold")) and doc["threshold"] > 0):
        problems.append("guard.threshold must be a positive number")
    share = doc.get("warn_share", DEFAULT_WARN_SHARE)
    if not (_finite(share) and 0 < share <= 1):
        problems.append("guard.warn_share must be in (0, 1]")
    return problems


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
