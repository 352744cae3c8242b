"""bcc_edge.metrics against hand-computed cases and a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_edge.metrics import agreement, classification_metrics, confusion_matrix, max_abs_diff


def test_hand_computed_three_class_case():
    # true:  0 0 0 1 1 2
    # pred:  0 0 1 1 2 2
    m = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["count"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    pc = m["per_class"]
    assert pc["support"] == [3, 2, 1]
    assert pc["precision"] == pytest.approx([1.0, 0.5, 0.5])
    assert pc["recall"] == pytest.approx([2 / 3, 0.5, 1.0])
    f1 = [0.8, 0.5, 2 / 3]  # 2PR/(P+R): 2*(2/3)/(5/3), 0.5, 2*0.5/1.5
    assert pc["f1"] == pytest.approx(f1)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)


def test_perfect_predictions():
    m = classification_metrics([2, 0, 1, 1], [2, 0, 1, 1], 3)
    assert m["accuracy"] == m["balanced_accuracy"] == m["macro_f1"] == 1.0
    assert m["confusion"] == [[1, 0, 0], [0, 2, 0], [0, 0, 1]]


def test_class_never_predicted_has_zero_precision_not_nan():
    m = classification_metrics([0, 1, 1], [0, 0, 0], 2)
    assert m["per_class"]["precision"] == pytest.approx([1 / 3, 0.0])
    assert m["per_class"]["recall"] == pytest.approx([1.0, 0.0])
    assert m["per_class"]["f1"] == pytest.approx([0.5, 0.0])
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(0.25)


def test_absent_class_is_left_out_of_balanced_accuracy_and_macro_f1():
    # class 2 neither occurs nor is predicted; class 1 is predicted once but never occurs
    m = classification_metrics([0, 0, 0], [0, 0, 1], 3)
    assert m["per_class"]["support"] == [3, 0, 0]
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)  # class 0 only
    assert m["macro_f1"] == pytest.approx((0.8 + 0.0) / 2)  # classes 0 and 1


def reference_metrics(y_true, y_pred, num_classes):
    """Per-class counts by explicit loops, independent of the vectorised code."""
    rows = []
    for k in range(num_classes):
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == k and p == k)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != k and p == k)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == k and p != k)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((precision, recall, f1, tp + fn, tp + fp))
    present = [r for r in rows if r[3]]
    seen = [r for r in rows if r[3] or r[4]]
    return {
        "accuracy": sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true),
        "balanced_accuracy": sum(r[1] for r in present) / len(present),
        "macro_f1": sum(r[2] for r in seen) / len(seen),
        "precision": [r[0] for r in rows],
        "recall": [r[1] for r in rows],
        "f1": [r[2] for r in rows],
        "support": [r[3] for r in rows],
        "confusion": [[sum(1 for t, p in zip(y_true, y_pred) if t == i and p == j) for j in range(num_classes)] for i in range(num_classes)],
    }


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_match_loop_reference(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 9))
    n = int(rng.integers(1, 200))
    y_true = rng.integers(0, num_classes, n)
    # mostly right, some noise, so every regime (perfect, zero precision) shows up across seeds
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, num_classes, n))
    got = classification_metrics(y_true, y_pred, num_classes)
    want = reference_metrics(y_true.tolist(), y_pred.tolist(), num_classes)
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert got[key] == pytest.approx(want[key]), key
    for key in ("precision", "recall", "f1"):
        assert got["per_class"][key] == pytest.approx(want[key]), key
    assert got["per_class"]["support"] == want["support"]
    assert got["confusion"] == want["confusion"]


def test_result_is_plain_python_for_json():
    import json

    m = classification_metrics(np.array([0, 1], np.int32), np.array([1, 1], np.uint8), 2)
    assert json.loads(json.dumps(m)) == m
    assert type(m["confusion"][0][0]) is int and type(m["per_class"]["support"][0]) is int


@pytest.mark.parametrize(
    "y_true, y_pred, num_classes, match",
    [
        ([0, 1], [0], 2, "differ in length"),
        ([0, 3], [0, 1], 3, "outside"),
        ([0, -1], [0, 1], 3, "outside"),
        ([0.0, 1.0], [0, 1], 2, "integer"),
        ([[0, 1]], [[0, 1]], 2, "one-dimensional"),
        ([], [], 2, "zero predictions"),
        ([0], [0], 0, "num_classes"),
    ],
)
def test_bad_inputs_are_rejected(y_true, y_pred, num_classes, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred, num_classes)


def test_confusion_matrix_rows_are_true_class():
    assert confusion_matrix([1, 1, 1], [0, 0, 1], 2).tolist() == [[0, 0], [2, 1]]


def test_agreement_on_labels_and_probabilities():
    assert agreement([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.75)
    probs_a = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    probs_b = np.array([[0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
    assert agreement(probs_a, probs_b) == pytest.approx(2 / 3)
    assert agreement(probs_a, [0, 1, 0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="equal-length"):
        agreement([0, 1], [0])
    with pytest.raises(ValueError, match="zero"):
        agreement([], [])


def test_max_abs_diff():
    a = np.array([[0.5, 0.5], [0.1, 0.9]], np.float32)
    b = np.array([[0.5, 0.5], [0.35, 0.65]], np.float32)
    assert max_abs_diff(a, b) == pytest.approx(0.25)
    assert max_abs_diff(a, a) == 0.0
    with pytest.raises(ValueError, match="shape"):
        max_abs_diff(a, b[:1])
