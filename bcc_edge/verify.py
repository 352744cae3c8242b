"""`bcc-edge verify`: run every artifact of an export and the Keras float model on the same
labelled images and check that the INT8 artifacts still agree with the float model.

Which images: `data.evaluation_images` (the rule `report` follows too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bcc_edge import data as _data
from bcc_edge.errors import BccError
from bcc_edge.device.scores import softmax
from bcc_edge.evaluate import Result, calibrated_like, compare, predict_all, trust
from bcc_edge.metrics import recall_per_class
from bcc_edge.models import logits_model
from bcc_edge.export import manifest as _manifest
from bcc_edge.export.selfcheck import float_problems
from bcc_edge.rundir import RunDir

FLOAT_NAME = "keras (float)"


@dataclass(frozen=True)
class Thresholds:
    min_agreement: float = 0.98  # INT8 top-1 agreement with the float model, fraction
    max_accuracy_drop: float = 0.01  # INT8 accuracy may be this much (fraction) below float
    # Global top-1 hides losses on rare classes (basophils): no class's recall may drop more.
    max_class_drop: float = 0.02
    max_ece: float = 0.03  # expected calibration error of the calibrated probabilities

    def check(self) -> None:
        if not 0.0 <= self.min_agreement <= 1.0:
            raise BccError(f"--min-agreement must be between 0 and 100 percent (got {self.min_agreement * 100:g})")
        for name, value in (("--max-accuracy-drop", self.max_accuracy_drop), ("--max-class-drop", self.max_class_drop)):
            if not 0.0 <= value <= 1.0:
                raise BccError(f"{name} must be between 0 and 100 points (got {value * 100:g})")
        if not 0.0 <= self.max_ece <= 1.0:
            raise BccError(f"--max-ece must be between 0 and 1 (got {self.max_ece:g})")


@dataclass
class ArtifactCheck:
    file: str
    format: str
    precision: str
    bytes: int
    result: Result
    trust: dict = field(default_factory=dict)  # evaluate.trust of its probabilities
    failures: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    export_dir: Path
    source: str  # where the images came from, for the header line
    count: int
    bad: list[tuple[str, str]]
    float_result: Result
    artifacts: list[ArtifactCheck]
    thresholds: Thresholds
    labels: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(a.failures for a in self.artifacts)

    def to_dict(self) -> dict:
        return {
            "export_dir": str(self.export_dir),
            "source": self.source,
            "count": self.count,
            "unreadable": len(self.bad),
            "thresholds": vars(self.thresholds),
            "float": self.float_result.summary(),
            "artifacts": [
                {"file": a.file, "format": a.format, "precision": a.precision, "bytes": a.bytes, **a.result.summary(), "trust": a.trust, "failures": a.failures}
                for a in self.artifacts
            ],
            "passed": self.passed,
        }


def verify_export(
    export_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    split: str = "val",
    thresholds: Thresholds = Thresholds(),
    run_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> VerifyReport:
    """Evaluate every artifact in `export_dir` against its run's float model (see module doc)."""
    from bcc_edge.keras_predictor import KerasPredictor
    from bcc_edge.runtime import EdgeClassifier

    thresholds.check()
    export_dir = Path(export_dir)
    manifest = _manifest.read(export_dir)
    run = _run_of(manifest, run_dir)
    chosen = _data.evaluation_images(data, split, [run], run.labels)
    records, source = chosen.records, chosen.selection
    images, y_true, bad = _data.load_arrays(records, run.spec, run.config.get("cache_dir"), use_cache=bool(run.config.get("use_cache", True)))
    if len(images) == 0:
        raise BccError(f"none of the {len(records)} images could be read ({source})")

    entries = manifest["artifacts"]
    labels = run.labels
    artifacts = {a["file"]: EdgeClassifier(export_dir / a["file"], threads=threads, guard=False) for a in entries}
    keras = KerasPredictor(logits_model(run.load_best_model()), run.spec, labels, run.best_model_path)
    outputs = predict_all({FLOAT_NAME: keras, **artifacts}, images)
    float_logits, seconds = outputs.pop(FLOAT_NAME)
    (float_result,) = compare({FLOAT_NAME: (softmax(float_logits), seconds)}, None, y_true, len(labels))
    float_recall = recall_per_class(y_true, float_logits.argmax(axis=1), len(labels))
    checks = []
    for a in entries:
        # An artifact reproduces the float model as calibrated the way it is.
        reference = {"reference": (calibrated_like(artifacts[a["file"]], float_logits), 0.0)}
        result = compare({**reference, a["file"]: outputs[a["file"]]}, "reference", y_true, len(labels))[1]
        check = ArtifactCheck(a["file"], a["format"], a["precision"], int(a["bytes"]), result)
        check.trust = trust(result.probs, y_true, artifacts[a["file"]].review, float_recall, len(labels))
        check.failures = _failures(check, float_result, thresholds, labels)
        checks.append(check)
    return VerifyReport(export_dir, source, len(images), bad, float_result, checks, thresholds, labels)


def _run_of(manifest: dict, run_dir: str | os.PathLike | None) -> RunDir:
    path = run_dir or manifest.get("run_dir")
    if not path:
        raise BccError("manifest.json does not name the run directory; pass --run")
    if not Path(path).is_dir():
        raise BccError(f"the run directory {path} named in manifest.json is gone; pass --run RUN_DIR")
    return RunDir(path)


def _failures(check: ArtifactCheck, reference: Result, t: Thresholds, labels: list[str]) -> list[str]:
    r = check.result
    failures = list(r.problems)
    if check.trust["ece"] > t.max_ece:
        failures.append(f"expected calibration error {check.trust['ece']:.4f} > {t.max_ece:g} (a missing, stale or tampered calibration?)")
    for label, change in zip(labels, check.trust["recall_change"]):
        if change is not None and -change > t.max_class_drop + 1e-12:
            failures.append(f"recall of {label} drops {-change * 100:.2f} points below float's; allowed {t.max_class_drop * 100:g}")
    if check.precision == "int8":
        if r.agreement < t.min_agreement:
            failures.append(f"agreement with float {r.agreement:.2%} < {t.min_agreement:.2%}")
        drop = reference.accuracy - r.accuracy
        if drop > t.max_accuracy_drop + 1e-12:
            failures.append(f"accuracy {r.accuracy:.2%} is {drop * 100:.2f} points below float ({reference.accuracy:.2%}); allowed {t.max_accuracy_drop * 100:g}")
    else:
        failures += float_problems(r)
    return failures


def format_report(report: VerifyReport) -> str:
    """A fixed-width table, one row per artifact, then PASS/FAIL lines."""
    lines = [f"verify {report.export_dir}: {report.count} images, {report.source}"]
    if report.bad:
        lines.append(f"skipped {len(report.bad)} unreadable image(s), e.g. {report.bad[0][0]}: {report.bad[0][1]}")
    header = (
        f"{'artifact':<22} {'precision':<9} {'accuracy':>9} {'agreement':>10} {'max |dp|':>9} {'ECE':>7} "
        f"{'coverage':>9} {'accepted':>9} {'size':>10}"
    )
    lines += [header, "-" * len(header)]
    f = report.float_result
    lines.append(f"{FLOAT_NAME:<22} {'float32':<9} {f.accuracy:>9.2%} {'-':>10} {'-':>9} {'-':>7} {'-':>9} {'-':>9} {'-':>10}")
    for a in report.artifacts:
        r, t = a.result, a.trust
        accepted = "-" if t["accepted_accuracy"] is None else f"{t['accepted_accuracy']:.2%}"
        lines.append(
            f"{a.file:<22} {a.precision:<9} {r.accuracy:>9.2%} {r.agreement:>10.2%} {r.max_abs_diff:>9.4f} {t['ece']:>7.4f} "
            f"{t['coverage']:>9.1%} {accepted:>9} {_size(a.bytes):>10}"
        )
    lines += ["", "recall change against float, points:", f"{'':<22} " + " ".join(f"{label[:10]:>10}" for label in report.labels)]
    for a in report.artifacts:
        lines.append(f"{a.file:<22} " + " ".join(f"{'-' if c is None else f'{c * 100:+.2f}':>10}" for c in a.trust["recall_change"]))
    lines.append("")
    for a in report.artifacts:
        for failure in a.failures:
            lines.append(f"FAIL {a.file}: {failure}")
    t = report.thresholds
    lines.append(
        ("PASS" if report.passed else "FAIL")
        + f": INT8 agreement >= {t.min_agreement:.0%}, accuracy drop <= {t.max_accuracy_drop * 100:g} point(s), "
        + f"no class recall drop > {t.max_class_drop * 100:g} points, ECE <= {t.max_ece:g}"
    )
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"
