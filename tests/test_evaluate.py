"""The shared evaluation loop and the self-check's notion of a broken artifact."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_edge import evaluate
from bcc_edge.export.selfcheck import judge


class FakePredictor:
    """Probabilities from a fixed function of the mean pixel, recording what it was given."""

    def __init__(self, fn, labels=("a", "b", "c")):
        self.fn = fn
        self.labels = list(labels)
        self.seen = []

    def predict_proba(self, images):
        self.seen.append(np.array(images))
        return self.fn(np.asarray(images, np.float64).mean(axis=(1, 2, 3)))


def _onehot_by_brightness(mean):
    probs = np.full((len(mean), 3), 0.05)
    probs[np.arange(len(mean)), (mean // 100).astype(int)] = 0.9
    return probs


def _images(levels):
    return np.stack([np.full((4, 4, 3), v, np.uint8) for v in levels])


def test_every_predictor_sees_the_same_images_in_chunks(monkeypatch):
    monkeypatch.setattr(evaluate, "CHUNK", 2)
    images = _images([10, 120, 250, 30, 140])
    a, b = FakePredictor(_onehot_by_brightness), FakePredictor(_onehot_by_brightness)
    outputs = evaluate.predict_all({"a": a, "b": b}, images)
    assert [len(x) for x in a.seen] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(a.seen), images)
    np.testing.assert_array_equal(np.concatenate(b.seen), images)
    assert outputs["a"][0].shape == (5, 3) and outputs["a"][0].dtype == np.float32


def test_compare_accuracy_agreement_and_differences():
    images = _images([10, 120, 250, 30])
    y_true = np.array([0, 1, 2, 1])
    flipped = FakePredictor(lambda m: _onehot_by_brightness(m)[:, [1, 0, 2]])
    results = evaluate.evaluate({"ref": FakePredictor(_onehot_by_brightness), "flip": flipped}, images, y_true, reference="ref")
    ref, flip = results
    assert ref.accuracy == 0.75 and ref.agreement == 1.0 and ref.max_abs_diff == 0.0
    assert flip.agreement == 0.25  # classes 0 and 1 swapped: only the class-2 image still agrees
    assert flip.max_abs_diff == pytest.approx(0.85)
    assert ref.metrics["confusion"][1] == [1, 1, 0]
    assert not ref.problems and not flip.problems


def test_compare_agreement_counts_matching_images():
    images = _images([10, 120, 250])
    other = FakePredictor(lambda m: _onehot_by_brightness(np.array([10.0, 10.0, 250.0])))
    ref, oth = evaluate.evaluate({"ref": FakePredictor(_onehot_by_brightness), "other": other}, images, reference="ref")
    assert oth.agreement == pytest.approx(2 / 3)
    assert oth.accuracy is None  # no labels given


@pytest.mark.parametrize(
    "probs, message",
    [
        (np.array([[np.nan, 0.5, 0.5], [0.2, 0.3, 0.5]]), "NaN"),
        (np.array([[0.9, 0.9, 0.9], [0.2, 0.3, 0.5]]), "not probabilities"),
        (np.array([[1.5, -0.5, 0.0], [0.2, 0.3, 0.5]]), "not probabilities"),
        (np.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]]), "same for every image"),
    ],
)
def test_output_problems(probs, message):
    reference = np.array([[0.9, 0.05, 0.05], [0.05, 0.05, 0.9]])
    assert any(message in p for p in evaluate.output_problems(probs, reference))


def test_constant_output_is_fine_when_the_reference_barely_varies():
    reference = np.array([[0.34, 0.33, 0.33], [0.33, 0.34, 0.33]])
    assert evaluate.output_problems(np.array([[0.33, 0.33, 0.34]] * 2), reference) == []


def test_confident_agreement_ignores_near_ties():
    reference = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.1, 0.8, 0.1]])
    probs = np.array([[0.1, 0.8, 0.1], [0.3, 0.45, 0.25], [0.1, 0.8, 0.1]])
    assert evaluate.confident_agreement(reference, probs, margin=0.5) == (0.5, 2)
    assert evaluate.confident_agreement(reference, probs, margin=0.95) == (None, 0)


def _result(probs, reference):
    (result,) = evaluate.compare({"x": (probs, 0.0)}, None, None, probs.shape[1])
    result.agreement = float(np.mean(probs.argmax(1) == reference.argmax(1)))
    result.max_abs_diff = float(np.abs(probs - reference).max())
    return result


def test_judge_refuses_int8_that_flips_confident_predictions_only():
    rng = np.random.default_rng(0)
    reference = np.eye(3)[rng.integers(0, 3, 40)] * 0.9 + 0.1 / 3
    noisy = reference + rng.normal(0, 0.01, reference.shape)
    noisy = np.clip(noisy, 0, 1) / np.clip(noisy, 0, 1).sum(1, keepdims=True)
    conf, n = evaluate.confident_agreement(reference, noisy, 0.5)
    assert judge("int8", _result(noisy, reference), conf, n) == []
    wrong = np.roll(reference, 1, axis=1)
    conf, n = evaluate.confident_agreement(reference, wrong, 0.5)
    assert any("confident" in p for p in judge("int8", _result(wrong, reference), conf, n))


def test_judge_accepts_an_unsure_int8_model_that_disagrees():
    # A barely trained model: near-uniform outputs, so rounding may flip every argmax.
    reference = np.array([[0.34, 0.33, 0.33]] * 5 + [[0.33, 0.34, 0.33]] * 5)
    flipped = reference[:, [1, 0, 2]]
    conf, n = evaluate.confident_agreement(reference, flipped, 0.5)
    assert (conf, n) == (None, 0)
    assert judge("int8", _result(flipped, reference), conf, n) == []


def test_judge_holds_float_artifacts_to_float_precision():
    reference = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    off = reference + np.array([[0.05, -0.05, 0.0], [0.0, 0.0, 0.0]])
    assert judge("float32", _result(reference + 1e-6, reference), None, 0) == []
    assert any("differ from Keras" in p for p in judge("float32", _result(off, reference), None, 0))
