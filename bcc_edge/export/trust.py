"""What export adds to every artifact so that its predictions can be trusted, each fitted on
labelled images held back from training (the run's val split) and carried in the artifact's
metadata for the device (`bcc_edge.device`):

- calibrated probabilities: temperature scaling, or vector scaling (a scale and a bias per
  class) when it predicts held-out images better (5-fold cross-validated negative
  log-likelihood); an artifact whose graph ends in a softmax (the ecosystem TFLite models) gets
  its temperature written into that softmax instead;
- the refer-for-review policy: the lowest top-1 threshold (one, or one per predicted class when
  that keeps more images in cross-validation, `choose_form`) at which the accepted images are
  at least `review_target` accurate;
- the input guard: the training images' statistics and the held-back images' 99.5th-percentile
  distance;
- golden vectors: a few real held-back images and what each stage made of them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bcc_edge import metrics
from bcc_edge.device import guard as _guard
from bcc_edge.device.count import wilson
from bcc_edge.device.scores import Calibration, ReviewPolicy
from bcc_edge.device.selftest import MAX_GOLDEN_BYTES, row_checksums

FOLDS = 5
DEFAULT_REVIEW_TARGET = 0.998
# 99.5: at 99 the flags on clean val images came out at 1.1%, above the 1% a lab tolerates.
GUARD_PERCENTILE = 99.5
GUARD_TRAIN_IMAGES = 3000
# Largest difference of a float output between CPUs (summation order): float artifacts' golden
# outputs are compared within it; integer outputs exactly.
FLOAT_GOLDEN_TOLERANCE = 1e-3


# ----------------------------------------------------------------------------- calibration


# Temperatures outside this range mean a model whose logits carry no information (a barely
# trained one): the fit stops at its edge.
TEMPERATURE_RANGE = (0.01, 100.0)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the NLL of softmax(logits / T) within TEMPERATURE_RANGE: Newton's method
    on b = 1/T, where the NLL is convex."""
    lowest_b, highest_b = 1 / TEMPERATURE_RANGE[1], 1 / TEMPERATURE_RANGE[0]
    z = logits.astype(np.float64)
    onehot = np.eye(z.shape[1])[y]
    b = 1.0
    for _ in range(100):
        p = _softmax(b * z)
        mean = (p * z).sum(axis=1)
        gradient = (mean - (onehot * z).sum(axis=1)).mean()
        curvature = ((p * z * z).sum(axis=1) - mean**2).mean()
        step = gradient / max(curvature, 1e-12)
        b_next = min(max(b - step, b / 4, lowest_b), b * 4, highest_b)  # damped, and in range
        if abs(b_next - b) < 1e-10 * b:
            break
        b = b_next
    return float(1.0 / b)


def fit_vector(logits: np.ndarray, y: np.ndarray, regularisation: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """(scale, bias) per class minimising the NLL of softmax(scale * logits + bias) plus a small
    penalty towards temperature scaling's solution (which keeps a rare class's bias sane):
    Newton's method with backtracking, the objective being convex."""
    z = logits.astype(np.float64)
    n, c = z.shape
    onehot = np.eye(c)[y]
    a0 = np.full(c, 1.0 / fit_temperature(z, y))
    theta = np.concatenate([a0, np.zeros(c)])
    prior = theta.copy()

    def objective(t):
        s = z * t[:c] + t[c:]
        s = s - s.max(axis=1, keepdims=True)
        return (np.log(np.exp(s).sum(axis=1)) - (onehot * s).sum(axis=1)).mean() + regularisation * ((t - prior) ** 2).sum()

    value = objective(theta)
    for _ in range(50):
        p = _softmax(z * theta[:c] + theta[c:])
        r = p - onehot
        gradient = np.concatenate([(r * z).mean(axis=0), r.mean(axis=0)]) + 2 * regularisation * (theta - prior)
        # Hessian of the mean NLL: J^T (diag p - p p^T) J per image, J = [diag(z), I].
        w = p[:, :, None] * (np.eye(c)[None] - p[:, None, :])  # (n, c, c)
        zz = z[:, :, None] * z[:, None, :]
        hessian = np.block([
            [(w * zz).mean(axis=0), (w * z[:, :, None]).mean(axis=0)],
            [(w * z[:, None, :]).mean(axis=0), w.mean(axis=0)],
        ]) + 2 * regularisation * np.eye(2 * c)
        step = np.linalg.solve(hessian, gradient)
        t = 1.0
        while t > 1e-6:
            candidate = theta - t * step
            new = objective(candidate)
            if new <= value - 1e-4 * t * gradient @ step:
                break
            t /= 2
        if t <= 1e-6 or value - new < 1e-12:
            break
        theta, value = candidate, new
    return theta[:c], theta[c:]


def fit_calibration(logits: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[Calibration, dict[str, Any]]:
    """Temperature or vector scaling, whichever has the lower cross-validated NLL, fitted on
    all the images; and how each method did."""
    folds = _folds(len(y), seed)
    cv = {}
    for method, fit in (("temperature", _temperature), ("vector", _vector)):
        held_out = np.empty(logits.shape, np.float64)
        for test in folds:
            train = np.setdiff1d(np.arange(len(y)), test)
            held_out[test] = fit(logits[train], y[train]).probabilities(logits[test])
        cv[method] = metrics.nll(held_out, y)
    method = min(cv, key=cv.get)
    chosen = (_temperature if method == "temperature" else _vector)(logits, y)
    return chosen, {"cv_nll": {k: round(v, 6) for k, v in cv.items()}}


def _temperature(logits, y) -> Calibration:
    return Calibration("temperature", temperature=fit_temperature(logits, y))


def _vector(logits, y) -> Calibration:
    scale, bias = fit_vector(logits, y)
    return Calibration("vector", scale=tuple(float(v) for v in scale), bias=tuple(float(v) for v in bias))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _folds(n: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, FOLDS)]


def quality(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The calibration figures of a set of probabilities."""
    return {
        "accuracy": round(float((probs.argmax(axis=1) == y).mean()), 6),
        "ece": round(metrics.reliability(probs, y)["ece"], 6),
        "nll": round(metrics.nll(probs, y), 6),
        "brier": round(metrics.brier(probs, y), 6),
    }


# ----------------------------------------------------------------------------- review


def global_threshold(probs: np.ndarray, y: np.ndarray, target: float) -> float:
    """The lowest top-1 threshold at which the images at or above it are at least `target`
    accurate (1.0 when no threshold reaches it: every prediction is referred)."""
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    correct = (probs.argmax(axis=1) == y)[order]
    accuracy = np.cumsum(correct) / np.arange(1, len(y) + 1)
    ok = np.nonzero(accuracy >= target)[0]
    if not len(ok):
        return 1.0
    # keep the largest prefix that meets the target; images tied with its last are kept too
    return float(confidence[order][ok[-1]])


def per_class_thresholds(probs: np.ndarray, y: np.ndarray, target: float) -> tuple[float, ...]:
    """One global_threshold per predicted class, over the images predicted as that class
    (a class predicted for no image refers everything predicted as it)."""
    predicted = probs.argmax(axis=1)
    return tuple(global_threshold(probs[predicted == c], y[predicted == c], target) if (predicted == c).any() else 1.0 for c in range(probs.shape[1]))


def fit_review(probs: np.ndarray, y: np.ndarray, target: float, seed: int = 0) -> tuple[ReviewPolicy, dict[str, Any]]:
    """The policy and the coverage and accepted accuracy it reaches on `probs`.

    Its form, one global threshold or one per predicted class, is chosen in cross-validation:
    the form that keeps more held-out images among those whose held-out accepted accuracy is
    consistent with the target (its 95% Wilson interval reaches it), the global one on a tie.
    A few hundred held-out images per fold carry only a handful of errors, so an accuracy
    0.1 point under the target there is noise, while per-class thresholds fitted to two or
    three errors each can refer a sixth of the images to gain that point. The thresholds are
    then fitted on all of `probs`, where they meet the target by construction."""
    folds = _folds(len(y), seed)
    fitters = {
        "global": lambda p, t: ReviewPolicy(threshold=global_threshold(p, t, target)),
        "per_class": lambda p, t: ReviewPolicy(per_class=per_class_thresholds(p, t, target)),
    }
    cv = {}
    for name, fit in fitters.items():
        referred = np.zeros(len(y), bool)
        for test in folds:
            train = np.setdiff1d(np.arange(len(y)), test)
            referred[test] = fit(probs[train], y[train]).refer(probs[test])
        cv[name] = _coverage(probs, y, referred)
    policy = fitters[choose_form(cv, target)](probs, y)
    return policy, {"target": target, **_coverage(probs, y, policy.refer(probs)), "cross_validated": cv}


def choose_form(cv: dict[str, dict[str, float]], target: float) -> str:
    """The rule `fit_review` states, on the cross-validated figures of each form."""
    meets = [name for name in cv if cv[name]["accepted_upper95"] >= target]
    if meets:
        return max(meets, key=lambda name: (cv[name]["coverage"], name == "global"))
    return max(cv, key=lambda name: (cv[name]["accepted_accuracy"], cv[name]["coverage"]))


def _coverage(probs: np.ndarray, y: np.ndarray, referred: np.ndarray) -> dict[str, float]:
    accepted = ~referred
    correct = probs.argmax(axis=1) == y
    return {
        "coverage": round(float(accepted.mean()), 6),
        "accepted_accuracy": round(float(correct[accepted].mean()), 6) if accepted.any() else 1.0,
        "accepted_upper95": round(wilson(int(correct[accepted].sum()), int(accepted.sum()))[1], 6),
    }


# ----------------------------------------------------------------------------- guard


def fit_guard(train_features: np.ndarray, heldout_features: np.ndarray, percentile: float = GUARD_PERCENTILE) -> tuple[_guard.Guard, dict[str, Any]]:
    """Reference statistics of the training images; the threshold at `percentile` of the
    held-back images' distances (so about 100 - percentile % of clean images are flagged)."""
    mean = train_features.mean(axis=0)
    covariance = np.cov(train_features, rowvar=False)
    covariance += np.eye(len(mean)) * 1e-6 * np.trace(covariance) / len(mean)  # a constant statistic must not make it singular
    fitted = _guard.Guard(mean, np.linalg.inv(covariance), 1.0)
    distances = fitted.distances(heldout_features)
    threshold = float(np.percentile(distances, percentile))
    guard = _guard.Guard(mean, fitted.precision, threshold)
    return guard, {"percentile": percentile, "flagged_heldout": round(float((distances > threshold).mean()), 6), "train_images": len(train_features)}


# ----------------------------------------------------------------------------- golden vectors


@dataclass(frozen=True)
class GoldenImage:
    name: str
    label: str
    data: bytes


def golden_entry(classifier, image: GoldenImage) -> dict[str, Any]:
    """What each stage of `classifier` makes of one golden image (see device.selftest)."""
    from bcc_edge.decode import decode_bytes

    decoded = decode_bytes(image.data, classifier.spec, image.name)
    batch = classifier.prepare([decoded], threads=1)
    output = classifier.raw_output(batch)[0].reshape(-1)
    return {
        "name": image.name,
        "label": image.label,
        "jpeg": base64.b64encode(image.data).decode("ascii"),
        "decoded_shape": list(decoded.shape),
        "decoded_rows": row_checksums(decoded),
        "input_shape": list(batch.shape[1:]),
        "input_rows": row_checksums(batch[0]),
        "output": [int(v) for v in output] if np.issubdtype(output.dtype, np.integer) else [float(v) for v in output],
    }


def pick_golden(records, correct: np.ndarray, budget: int = MAX_GOLDEN_BYTES) -> list[GoldenImage]:
    """One image per class while they fit in `budget` bytes: for each class its smallest file
    the float model gets right, classes taken smallest first (the JPEG bytes as stored)."""
    best: dict[str, Any] = {}
    for record, ok in zip(records, correct):
        size = Path(record.path).stat().st_size
        if ok and (record.label not in best or size < best[record.label][0]):
            best[record.label] = (size, record)
    chosen, total = [], 0
    for size, record in sorted(best.values(), key=lambda item: item[0]):
        if total + size > budget:
            break
        chosen.append(GoldenImage(f"{record.label}/{Path(record.path).name}", record.label, Path(record.path).read_bytes()))
        total += size
    return chosen


# ----------------------------------------------------------------------------- one artifact

_CHUNK = 256


def complete(ctx, fmt, path: Path) -> str:
    """Fit everything above for the artifact `fmt` built at `path` and write it into its
    metadata; returns one line for the export log."""
    from bcc_edge.runtime import EdgeClassifier

    records, images, y = ctx.heldout
    classifier = EdgeClassifier(path, threads=1, review=False, guard=False)
    outputs = _chunked(lambda part: classifier.outputs(classifier.prepare(part)), images)
    if fmt.temperature is None:  # bcc-edge's own artifact: the device calibrates its logits
        calibration, cv = fit_calibration(outputs, y, ctx.options.seed)
        probs = calibration.probabilities(outputs)
        scores = {**calibration.to_dict(), **cv, "before": quality(_softmax(outputs.astype(np.float64)), y), "after": quality(probs, y)}
    else:  # a softmax in the graph, for other clients: it applies the temperature itself
        temperature, logits = fmt.temperature(ctx, path)
        classifier = EdgeClassifier(path, threads=1, review=False, guard=False)
        probs = _chunked(lambda part: classifier.outputs(classifier.prepare(part)), images)
        scores = {"method": "temperature", "temperature": temperature, "in_graph": True, "before": quality(_softmax(logits.astype(np.float64)), y), "after": quality(probs, y)}
    policy, review = fit_review(probs, y, ctx.options.review_target, ctx.options.seed)
    quant = classifier.input_spec.scale, classifier.input_spec.zero_point
    guard_of = lambda batch: _chunked(lambda part: _guard.features(classifier.prepare(part), *quant), batch)  # noqa: E731
    guard, guard_report = fit_guard(guard_of(ctx.guard_train_images), guard_of(images), ctx.options.guard_percentile)
    integer_output = classifier.raw_output(classifier.prepare(images[:1])).dtype.kind in "iu"
    meta = {
        **classifier.metadata,
        "probabilities": {**scores, "fitted_on": f"{len(y)} images of the run's val split"},
        "review": {**policy.to_dict(), **review},
        "guard": {**guard.to_dict(), **guard_report},
        "golden": {"tolerance": 0.0 if integer_output else FLOAT_GOLDEN_TOLERANCE, "images": [golden_entry(classifier, g) for g in ctx.golden_images]},
    }
    _embed(path, meta)
    after = scores["after"]
    how = f"temperature {scores['temperature']:.3f}" if scores["method"] == "temperature" else "vector scaling"
    return (
        f"{path.name}: {how}{' (in the graph)' if fmt.temperature else ''}, ECE {scores['before']['ece']:.4f} -> {after['ece']:.4f}, "
        f"NLL {after['nll']:.4f}, Brier {after['brier']:.4f}; review {'per class' if policy.per_class else f'below {policy.threshold:.4f}'}: "
        f"coverage {review['coverage']:.2%} at {review['accepted_accuracy']:.2%} accepted "
        f"(cross-validated {review['cross_validated']['per_class' if policy.per_class else 'global']['coverage']:.2%} / "
        f"{review['cross_validated']['per_class' if policy.per_class else 'global']['accepted_accuracy']:.2%}); "
        f"guard flags {guard_report['flagged_heldout']:.1%} of held-back images; {len(meta['golden']['images'])} golden images"
    )


def _chunked(fn, images: np.ndarray) -> np.ndarray:
    return np.concatenate([fn(images[i : i + _CHUNK]) for i in range(0, len(images), _CHUNK)])


def _embed(path: Path, meta: dict[str, Any]) -> None:
    from bcc_edge import metadata
    from bcc_edge.fileio import write_bytes

    if path.suffix == ".tflite":
        write_bytes(path, metadata.embed_tflite(path.read_bytes(), meta))
    else:
        import onnx

        model = onnx.load(str(path))
        metadata.embed_onnx(model, meta)
        write_bytes(path, model.SerializeToString())
