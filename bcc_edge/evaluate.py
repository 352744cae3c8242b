"""Run several predictors (the Keras float model, exported artifacts) on the same decoded
images and compare them: accuracy, top-1 agreement with a reference, probability differences.

Predictors are anything with `predict_proba(uint8_images) -> (N, C) float32` (EdgeClassifier,
KerasPredictor). Every predictor sees the very same uint8 pixels, so a disagreement is the
model's, never the decoder's. No TensorFlow here; `verify`, export's self-check and the
report all go through `evaluate`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from bcc_edge import metrics

# Images decoded per step: bounds memory for large splits while amortising per-call costs.
CHUNK = 256
# An INT8 softmax output moves in steps of ~1/256: a reference whose outputs vary by less than
# a dozen steps may legitimately quantise to one constant output.
CONSTANT_TOLERANCE = 0.05


class Predictor(Protocol):
    labels: list[str]

    def predict_proba(self, images) -> np.ndarray: ...


@dataclass
class Result:
    """One predictor's outputs on the evaluated images and how they compare."""

    name: str
    probs: np.ndarray
    seconds: float
    accuracy: float | None = None
    agreement: float | None = None  # top-1 agreement with the reference predictor
    max_abs_diff: float | None = None  # largest |p - p_reference| over all images and classes
    mean_abs_diff: float | None = None  # mean over images of max_c |p - p_reference|
    metrics: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no probabilities)."""
        keys = ("name", "seconds", "accuracy", "agreement", "max_abs_diff", "mean_abs_diff", "problems")
        return {k: getattr(self, k) for k in keys}


def predict_all(predictors: Mapping[str, Predictor], images: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """name -> ((N, C) probabilities, seconds) for every predictor on `images` (N, h, w, 3) uint8."""
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in predictors}
    seconds = dict.fromkeys(predictors, 0.0)
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK]
        for name, predictor in predictors.items():
            t0 = time.perf_counter()
            outputs[name].append(np.asarray(predictor.predict_proba(chunk), np.float32))
            seconds[name] += time.perf_counter() - t0
    return {name: (np.concatenate(parts) if parts else np.empty((0, 0), np.float32), seconds[name]) for name, parts in outputs.items()}


def output_problems(probs: np.ndarray, reference: np.ndarray | None = None) -> list[str]:
    """Signs of a broken model that need no labels: non-finite or non-probability outputs, or
    the same output for every image while the reference's outputs vary."""
    problems = []
    if not np.all(np.isfinite(probs)):
        return ["outputs contain NaN or infinity"]
    # int8 softmax outputs carry +-scale/2 rounding per class: 0.1 leaves room for 8+ classes.
    sums = probs.sum(axis=1)
    if probs.min() < -1e-3 or probs.max() > 1 + 1e-3 or np.abs(sums - 1).max() > 0.1:
        problems.append(f"outputs are not probabilities (row sums {sums.min():.3f}..{sums.max():.3f})")
    if len(probs) > 1 and np.ptp(probs, axis=0).max() == 0 and (reference is None or np.ptp(reference, axis=0).max() > CONSTANT_TOLERANCE):
        problems.append("the output is the same for every image")
    return problems


def compare(
    outputs: Mapping[str, tuple[np.ndarray, float]],
    reference: str | None,
    y_true: Sequence[int] | np.ndarray | None,
    num_classes: int,
) -> list[Result]:
    """A Result per predictor, in `outputs` order; agreement/differences are against `reference`."""
    ref = outputs[reference][0] if reference is not None else None
    results = []
    for name, (probs, seconds) in outputs.items():
        result = Result(name, probs, seconds, problems=output_problems(probs, ref))
        if y_true is not None and len(probs):
            result.metrics = metrics.classification_metrics(np.asarray(y_true), probs.argmax(axis=1), num_classes)
            result.accuracy = result.metrics["accuracy"]
        if ref is not None and len(probs):
            result.agreement = metrics.agreement(ref, probs)
            result.max_abs_diff = metrics.max_abs_diff(ref, probs)
            result.mean_abs_diff = float(np.abs(ref.astype(np.float64) - probs).max(axis=1).mean())
        results.append(result)
    return results


def evaluate(
    predictors: Mapping[str, Predictor],
    images: np.ndarray,
    y_true: Sequence[int] | np.ndarray | None = None,
    reference: str | None = None,
) -> list[Result]:
    """Run every predictor on the same images and compare them (see `compare`)."""
    if not predictors:
        raise ValueError("nothing to evaluate")
    num_classes = len(next(iter(predictors.values())).labels)
    return compare(predict_all(predictors, images), reference, y_true, num_classes)


def confident_agreement(reference: np.ndarray, probs: np.ndarray, margin: float) -> tuple[float | None, int]:
    """Top-1 agreement on the images where the reference's top-2 margin is at least `margin`
    (None when there are none), and how many images that is.

    Quantisation moves probabilities by a few hundredths, so it may flip near-ties but not
    confident predictions; disagreement there means a broken artifact, whatever the training.
    """
    top2 = np.sort(reference, axis=1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) >= margin
    n = int(confident.sum())
    if n == 0:
        return None, 0
    return metrics.agreement(reference[confident], probs[confident]), n


# ----------------------------------------------------------------------------- trust


def calibrated_like(artifact: Any, float_logits: np.ndarray) -> np.ndarray:
    """The float model's probabilities calibrated the way `artifact` (an EdgeClassifier) is:
    what a faithful conversion of the float model would output. Artifacts without calibration
    (exported before it) compare with the plain softmax."""
    from bcc_edge.device.scores import Calibration, softmax

    doc = (getattr(artifact, "metadata", None) or {}).get("probabilities")
    return Calibration.from_dict(doc).probabilities(float_logits) if doc else softmax(float_logits)


def trust(probs: np.ndarray, y_true: np.ndarray, review, float_recall: Sequence[float | None], num_classes: int) -> dict[str, Any]:
    """How far an artifact's probabilities can be trusted on labelled images: calibration (ECE,
    NLL, Brier, the reliability bins), the coverage and accepted accuracy of its review policy
    (`review`: a ReviewPolicy or None), and each class's recall against the float model's."""
    reliability = metrics.reliability(probs, y_true)
    referred = review.refer(probs) if review is not None else np.zeros(len(probs), bool)
    correct = probs.argmax(axis=1) == y_true
    recall = metrics.recall_per_class(y_true, probs.argmax(axis=1), num_classes)
    return {
        "ece": reliability["ece"],
        "nll": metrics.nll(probs, y_true),
        "brier": metrics.brier(probs, y_true),
        "reliability": reliability,
        "coverage": float((~referred).mean()),
        "accepted_accuracy": float(correct[~referred].mean()) if (~referred).any() else None,
        "recall": recall,
        "recall_change": [None if r is None or f is None else r - f for r, f in zip(recall, float_recall)],
    }
