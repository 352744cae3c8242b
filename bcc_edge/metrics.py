"""Classification metrics from predicted labels (numpy only, no TF, no sklearn).

Conventions (the same as scikit-learn's with ``zero_division=0``, so numbers can be checked
against it elsewhere):
- confusion[i][j] counts images of true class i predicted as class j (rows = true).
- A class nobody predicted has precision 0; a class absent from ``y_true`` has recall 0.
- ``balanced_accuracy`` is the mean recall over the classes present in ``y_true``: a class with
  no images says nothing about the model, so it must not pull the mean down.
- ``macro_f1`` is the mean F1 over the classes present in ``y_true`` or ``y_pred``; a class in
  neither has an undefined F1 and is left out for the same reason.
"""

from __future__ import annotations

import numpy as np


def _labels(values, name: str, num_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"{name} holds class indices outside [0, {num_classes})")
    return array


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = true class, columns = predicted class."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    true = _labels(y_true, "y_true", num_classes)
    pred = _labels(y_pred, "y_pred", num_classes)
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {true.size} vs {pred.size}")
    flat = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(numerator.shape, np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_metrics(y_true, y_pred, num_classes: int) -> dict:
    """Accuracy, balanced accuracy, macro F1, per-class precision/recall/F1/support, confusion.

    Returns plain Python types (JSON-ready): floats, ints, and lists indexed by class.
    """
    confusion = confusion_matrix(y_true, y_pred, num_classes)
    total = int(confusion.sum())
    if total == 0:
        raise ValueError("cannot compute metrics on zero predictions")
    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = support > 0
    seen = present | (predicted > 0)
    return {
        "count": total,
        "num_classes": int(num_classes),
        "accuracy": float(hits.sum() / total),
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[seen].mean()),
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": support.tolist(),
        },
        "confusion": confusion.tolist(),
    }


def _as_labels(values) -> np.ndarray:
    array = np.asarray(values)
    return array.argmax(axis=-1) if array.ndim == 2 else array


def agreement(pred_a, pred_b) -> float:
    """Fraction of images on which two models predict the same class.

    Takes predicted labels (N,) or probabilities (N, C), which are reduced to their top-1 class.
    """
    a, b = _as_labels(pred_a), _as_labels(pred_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"agreement needs two equal-length predictions, got shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("cannot compute agreement on zero predictions")
    return float(np.mean(a == b))


def max_abs_diff(probs_a, probs_b) -> float:
    """Largest absolute difference between two (N, C) probability arrays (0.0 when identical)."""
    a = np.asarray(probs_a, np.float64)
    b = np.asarray(probs_b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"probability arrays differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("cannot compare empty probability arrays")
    return float(np.max(np.abs(a - b)))


# ----------------------------------------------------------------------------- probabilities

ECE_BINS = 15


def reliability(probs: np.ndarray, y_true, bins: int = ECE_BINS) -> dict:
    """Top-1 confidence against accuracy in `bins` equal-width bins of (0, 1]: per bin the
    image count, mean confidence and accuracy (None where empty), and the expected calibration
    error: the count-weighted mean |accuracy - confidence|."""
    probs = np.asarray(probs, np.float64)
    y = _as_labels(y_true)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    # (lo, hi] bins: the same as np.digitize(right=True), with a confidence of 0 in the first
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts, mean_conf, accuracy, ece = [], [], [], 0.0
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        counts.append(n)
        mean_conf.append(float(confidence[inside].mean()) if n else None)
        accuracy.append(float(correct[inside].mean()) if n else None)
        if n:
            ece += n / len(y) * abs(accuracy[-1] - mean_conf[-1])
    return {"bins": bins, "counts": counts, "confidence": mean_conf, "accuracy": accuracy, "ece": ece}


def nll(probs: np.ndarray, y_true) -> float:
    """Mean negative log-likelihood of the true class (probabilities floored at 1e-12)."""
    probs = np.asarray(probs, np.float64)
    y = _as_labels(y_true)
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def brier(probs: np.ndarray, y_true) -> float:
    """Mean over images of the squared distance between the probabilities and the one-hot truth."""
    probs = np.asarray(probs, np.float64)
    y = _as_labels(y_true)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(y)), y] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def risk_coverage(probs: np.ndarray, y_true) -> dict:
    """Accuracy on the images kept when the least confident are referred, for every coverage:
    images sorted by top-1 confidence, most confident first; `coverage[i]` and `accuracy[i]`
    for the first i + 1 of them (what a referral threshold at that confidence keeps)."""
    probs = np.asarray(probs, np.float64)
    y = _as_labels(y_true)
    order = np.argsort(-probs.max(axis=1), kind="stable")
    correct = (probs.argmax(axis=1) == y)[order]
    kept = np.arange(1, len(y) + 1)
    return {"coverage": (kept / len(y)).tolist(), "accuracy": (np.cumsum(correct) / kept).tolist()}


def recall_per_class(y_true, y_pred, num_classes: int) -> list[float | None]:
    """Recall of each class (None for a class with no images)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    return [float(cm[i, i] / support[i]) if support[i] else None for i in range(num_classes)]
