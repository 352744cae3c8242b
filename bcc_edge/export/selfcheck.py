"""Export's refusal to ship a broken artifact: every artifact and the Keras model it was
converted from (the float model, or for the float TFLite model the float model with its
temperature folded in) run on the calibration images (no labels needed), and each artifact must
behave like it.

"Broken" has to mean broken, not "barely trained": a model after two epochs has many near-tie
predictions that 8-bit rounding legitimately flips, so overall agreement is reported but not
judged here (`bcc-edge verify` judges it on labelled data). An artifact is refused when
- its outputs are NaN/inf, not probabilities, or the same for every image;
- a float artifact differs from Keras by more than FLOAT_TOLERANCE in any probability
  (conversion is exact up to kernel rounding, ~1e-6 measured);
- an INT8 artifact disagrees on images the float model is confident about (top-2 margin of
  at least CONFIDENT_MARGIN), where quantisation error (a few hundredths) cannot flip the
  answer: agreement there must reach MIN_CONFIDENT_AGREEMENT.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from bcc_edge.evaluate import Result, confident_agreement, evaluate
from bcc_edge.keras_predictor import KerasPredictor

FLOAT_TOLERANCE = 1e-2
CONFIDENT_MARGIN = 0.5
MIN_CONFIDENT_AGREEMENT = 0.9
REFERENCE = "keras"


@dataclass
class CheckedArtifact:
    file: str
    precision: str
    result: Result
    confident_agreement: float | None
    confident_count: int
    problems: list[str]

    def line(self) -> str:
        r = self.result
        text = f"{self.file}: agreement with float {r.agreement:.1%}, max |dp| {r.max_abs_diff:.4f}"
        if self.confident_agreement is not None:
            text += f", {self.confident_agreement:.1%} on {self.confident_count} confident images"
        return text + ("" if not self.problems else "  BROKEN: " + "; ".join(self.problems))


def self_check(artifacts: Sequence[tuple[Path, str, KerasPredictor]], images) -> list[CheckedArtifact]:
    """Compare each (path, precision, Keras model it was converted from) artifact with that
    model on `images` (uint8)."""
    from bcc_edge.runtime import EdgeClassifier

    groups: dict[int, tuple[KerasPredictor, list[tuple[Path, str]]]] = {}
    for path, precision, reference in artifacts:
        groups.setdefault(id(reference), (reference, []))[1].append((path, precision))
    checked = {}
    for reference, members in groups.values():
        predictors = {REFERENCE: reference, **{path.name: EdgeClassifier(path, threads=1) for path, _ in members}}
        results = {r.name: r for r in evaluate(predictors, images, reference=REFERENCE)}
        for path, precision in members:
            result = results[path.name]
            conf, n = confident_agreement(results[REFERENCE].probs, result.probs, CONFIDENT_MARGIN)
            checked[path] = CheckedArtifact(path.name, precision, result, conf, n, judge(precision, result, conf, n))
    return [checked[path] for path, _, _ in artifacts]


def float_problems(result: Result) -> list[str]:
    """A float artifact is its Keras model converted: any probability further than
    FLOAT_TOLERANCE from Keras means a broken conversion (verify applies the same rule)."""
    if result.max_abs_diff > FLOAT_TOLERANCE:
        return [f"float outputs differ from Keras by up to {result.max_abs_diff:.4f} (> {FLOAT_TOLERANCE})"]
    return []


def judge(precision: str, result: Result, confident: float | None, confident_count: int) -> list[str]:
    """Why an artifact counts as broken (empty when it is fine); see the module docstring."""
    problems = list(result.problems)
    if problems:
        return problems
    if precision == "float32":
        problems += float_problems(result)
    if precision == "int8" and confident is not None and confident < MIN_CONFIDENT_AGREEMENT:
        problems.append(
            f"agrees with float on only {confident:.1%} of the {confident_count} images the float model is "
            f"confident about (< {MIN_CONFIDENT_AGREEMENT:.0%}); quantisation error does not explain that"
        )
    return problems
