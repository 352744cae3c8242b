"""The input guard: does an image look like the images the model was trained on?

A classifier trained on one lab's scanner and stain labels anything: a blurred field, another
stain, another magnification, a photo of the bench. The guard summarises each model input in a
few statistics and measures the Mahalanobis distance of that summary from the training
images' (mean and covariance stored at export). A distance above the threshold (chosen at
export on held-back images, their 99.5th percentile) flags the image `out_of_distribution`.

The statistics ("image-stats-2"):
- colour: per channel mean, spread and 5/50/95% quantiles, and the channels' correlations
  (stain, white balance, channel order);
- texture: the mean absolute difference of the grey level at lags 1, 2, 4, 8 and 16 pixels,
  across and down: its profile over the lags is the image's scale, so it shifts with focus
  (fine lags fall) and with magnification (the whole profile slides);
- layout: the share of dark (stained) pixels in five rings around the centre, where the
  analyser puts the cell: a cell imaged larger or smaller fills other rings.
Measured on PBC (benchmarks/ood.py, README), with where it fails.

The statistics are computed on the batch the model receives (each artifact stores its own
reference), on every fourth row or column.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURES = "image-stats-2"
LAGS = (1, 2, 4, 8, 16)
RINGS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # radii, as a share of half the input's side
QUANTILES = (0.05, 0.5, 0.95)
NAMES = (
    *(f"{stat}_{c}" for stat in ("mean", "std", "q05", "q50", "q95") for c in "rgb"),
    "corr_rg", "corr_gb", "corr_rb",
    *(f"log_texture_{axis}{lag}" for lag in LAGS for axis in "xy"),
    *(f"dark_ring{i}" for i in range(len(RINGS) - 1)),
)
# Warn about a sample (a run, a folder) when more than this share of its images is flagged.
DEFAULT_WARN_SHARE = 0.1
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_EPS = 1e-6


def features(batch: np.ndarray, scale: float = 1.0, zero_point: int = 0) -> np.ndarray:
    """(N, len(NAMES)) statistics of a model input batch (N, h, w, 3), in real units: an
    integer batch's statistics are dequantised with `scale` and `zero_point`.

    Every statistic is computed on the integers and dequantised after (means, spreads,
    quantiles and differences are affine, correlations and the dark share invariant), on
    planes rather than interleaved channels, on a sample of the pixels: 0.07 ms per 128 x 128
    image in batches of 16 on one x86 core, a quarter of the shipped model's invoke."""
    n = len(batch)
    integer = batch.dtype != np.float32
    s, z = (np.float32(scale), np.float32(zero_point)) if integer else (np.float32(1), np.float32(0))
    sample = batch[:, ::4, ::4, :]
    colour = sample.transpose(0, 3, 1, 2).astype(np.float32, order="C").reshape(n, 3, -1)
    mean = colour.mean(axis=2)
    centred = colour - mean[:, :, None]
    std = np.sqrt((centred * centred).mean(axis=2))
    unit = centred / (std[:, :, None] + _EPS)
    corr = np.stack([(unit[:, a] * unit[:, b]).mean(axis=1) for a, b in ((0, 1), (1, 2), (0, 2))], axis=1)
    quantiles = _quantiles(sample.reshape(n, -1, 3), QUANTILES)  # (N, 3, q)
    rows = _luma(batch[:, ::4, :, :])  # every fourth row, every column
    cols = _luma(batch[:, :, ::4, :])
    texture = []
    for lag in LAGS:
        texture.append(np.abs(rows[:, :, lag:] - rows[:, :, :-lag]).mean(axis=(1, 2)))
        texture.append(np.abs(cols[:, lag:, :] - cols[:, :-lag, :]).mean(axis=(1, 2)))
    grey = np.ascontiguousarray(rows[:, :, ::4])
    flat = grey.reshape(n, -1)
    dark = (flat < (flat.mean(axis=1) - flat.std(axis=1))[:, None]).astype(np.float32)
    layout = dark @ _ring_weights(*grey.shape[1:])
    return np.concatenate([
        (mean - z) * s,
        std * abs(s),
        ((quantiles - z) * s).transpose(0, 2, 1).reshape(n, -1),
        corr,
        np.log(np.stack(texture, axis=1) * abs(s) + _EPS),
        layout,
    ], axis=1).astype(np.float64)


def _luma(pixels: np.ndarray) -> np.ndarray:
    """(N, h, w) grey level of (N, h, w, 3) pixels, in their own units."""
    return pixels.astype(np.float32, order="C") @ _LUMA


def _quantiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """(N, C, len(qs)) quantiles over axis 1 of (N, P, C), each one of the values ("inverted
    CDF"); integer input through a histogram: the same numbers as sorting, several times faster."""
    n, p, c = values.shape
    if values.dtype == np.float32:
        return np.quantile(values, qs, axis=1, method="inverted_cdf").transpose(1, 2, 0)
    # int8 as uint8 with the sign bit flipped keeps the order: -128..127 -> 0..255
    levels = values.view(np.uint8) ^ np.uint8(0x80) if values.dtype == np.int8 else values
    codes = levels.astype(np.int32) + (256 * np.arange(n * c, dtype=np.int32)).reshape(n, 1, c)
    cdf = np.cumsum(np.bincount(codes.ravel(), minlength=256 * n * c).reshape(n * c, 256), axis=1)
    found = np.stack([np.argmax(cdf >= max(math.ceil(q * p), 1), axis=1) for q in qs], axis=1)
    offset = 128 if values.dtype == np.int8 else 0
    return (found - offset).reshape(n, c, len(qs)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _ring_weights(h: int, w: int) -> np.ndarray:
    """(h * w, rings) weights that average a flattened h x w map over each ring (RINGS)."""
    y, x = np.mgrid[:h, :w]
    radius = (np.hypot((y + 0.5) / h - 0.5, (x + 0.5) / w - 0.5) * 2).ravel()
    ring = np.searchsorted(RINGS, radius, side="right") - 1
    weights = np.zeros((h * w, len(RINGS) - 1), np.float32)
    inside = radius < RINGS[-1]
    weights[np.nonzero(inside)[0], ring[inside]] = 1
    return weights / np.maximum(weights.sum(axis=0), 1)


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
