"""The device proves it reproduces the export: golden vectors.

At export a few real held-back images (their JPEG bytes as stored) are run through the
artifact, and what each stage produced is recorded in its metadata: checksums of every row of
the decoded pixels and of the model input, and the raw model output (integers for an integer
output tensor, floats otherwise). `run` repeats that here through the very path `bcc-edge
infer` takes (`decode.decode_bytes`, `EdgeClassifier.prepare`, the backend) and compares
stage by stage, so a mismatch names where the device differs: another JPEG decoder build, a
hand-written or tampered preprocessing spec, a different kernel build, a quantised kernel with
a CPU-specific bug, a model file swapped under unchanged metadata.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bcc_edge.runtime import EdgeClassifier

STAGES = ("decode", "preprocess", "invoke")
MAX_GOLDEN_IMAGES = 16
MAX_GOLDEN_BYTES = 64 * 1024
# What to check when a stage differs.
ADVICE = {
    "decode": "the JPEG decoder gives other pixels here (check the Pillow / simplejpeg / libjpeg-turbo versions)",
    "preprocess": "the preprocessing differs from the export's (a changed or hand-written spec, or another build of bcc_edge._kernels)",
    "invoke": "the model gives other outputs than at export (a model file swapped under its metadata, or an interpreter / CPU kernel bug: try --backend, update ai-edge-litert or onnxruntime)",
}


def row_checksums(array: np.ndarray) -> list[int]:
    """crc32 of every row of an image or model input (first axis after the batch), so a
    mismatch can name the first row that differs."""
    rows = np.ascontiguousarray(array).reshape(array.shape[0], -1)
    return [zlib.crc32(row.tobytes()) for row in rows]


@dataclass
class Check:
    image: str
    stage: str
    status: str  # "exact", "within tolerance", "mismatch"
    detail: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    available: bool = True

    @property
    def passed(self) -> bool:
        return self.available and all(c.status != "mismatch" for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.status == "mismatch"), None)

    def summary(self) -> str:
        """One line for logs and error messages."""
        if not self.available:
            return "no golden vectors in this artifact (metadata format 1, from an older bcc-edge): nothing to check"
        failure = self.first_failure
        if failure is None:
            images = len({c.image for c in self.checks})
            return f"selftest passed: {images} golden images reproduced exactly through decode, preprocess and invoke"
        return f"selftest failed at {failure.stage} ({failure.image}: {failure.detail}); {ADVICE[failure.stage]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "passed": self.passed,
            "checks": [vars(c) for c in self.checks],
            "summary": self.summary(),
        }


def run(classifier: "EdgeClassifier") -> Report:
    """Check every golden image of the classifier's artifact, stage by stage."""
    from bcc_edge.decode import ImageDecodeError, decode_bytes

    golden = (classifier.metadata or {}).get("golden")
    if not golden:
        return Report(available=False)
    report = Report()
    for entry in golden["images"]:
        name = entry["name"]
        try:
            image = decode_bytes(base64.b64decode(entry["jpeg"]), classifier.spec, name)
        except ImageDecodeError as exc:
            report.checks.append(Check(name, "decode", "mismatch", exc.reason))
            continue
        report.checks.append(_compare(name, "decode", row_checksums(image), entry["decoded_rows"], image.shape, entry["decoded_shape"]))
        batch = classifier.prepare([image], threads=1)
        report.checks.append(_compare(name, "preprocess", row_checksums(batch[0]), entry["input_rows"], batch.shape[1:], entry["input_shape"]))
        raw = classifier.raw_output(batch)[0]
        report.checks.append(_compare_outputs(name, raw, np.asarray(entry["output"]), float(golden.get("tolerance", 0.0))))
    return report


def _compare(name: str, stage: str, rows: list[int], expected: list[int], shape, expected_shape) -> Check:
    if list(shape) != list(expected_shape):
        return Check(name, stage, "mismatch", f"shape {list(shape)}, expected {list(expected_shape)}")
    differing = [i for i, (a, b) in enumerate(zip(rows, expected)) if a != b]
    if differing:
        return Check(name, stage, "mismatch", f"{len(differing)} of {len(rows)} rows differ, the first is row {differing[0]}")
    return Check(name, stage, "exact")


def _compare_outputs(name: str, raw: np.ndarray, expected: np.ndarray, tolerance: float) -> Check:
    raw = raw.reshape(-1)
    if raw.shape != expected.shape:
        return Check(name, "invoke", "mismatch", f"{raw.size} outputs, expected {expected.size}")
    diff = np.abs(raw.astype(np.float64) - expected)
    if not np.all(np.isfinite(diff)):
        return Check(name, "invoke", "mismatch", "the output is not finite")
    if diff.max() == 0:
        return Check(name, "invoke", "exact")
    exact_required = np.issubdtype(raw.dtype, np.integer)
    if exact_required or diff.max() > tolerance:
        i = int(np.argmax(diff > (0 if exact_required else tolerance)))
        return Check(name, "invoke", "mismatch", f"output {i} is {raw[i]}, expected {expected[i]} (tolerance {0 if exact_required else tolerance})")
    return Check(name, "invoke", "within tolerance", f"largest difference {diff.max():.3g} <= {tolerance}")


def golden_problems(doc: Any, classes: int) -> list[str]:
    """Why a `golden` metadata entry is unusable (empty when it is fine)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not 0 < len(doc["images"]) <= MAX_GOLDEN_IMAGES:
        return [f"golden.images must be a list of 1 to {MAX_GOLDEN_IMAGES} images"]
    tolerance = doc.get("tolerance", 0.0)
    if not (isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and math.isfinite(tolerance) and tolerance >= 0):
        return ["golden.tolerance must be a finite number >= 0"]
    total = 0
    for entry in doc["images"]:
        if not isinstance(entry, dict):
            return ["a golden image must be an object"]
        try:
            total += len(base64.b64decode(entry["jpeg"], validate=True))
            ints = [*entry["decoded_rows"], *entry["input_rows"], *entry["decoded_shape"], *entry["input_shape"]]
            numbers = entry["output"]
            str(entry["name"])
        except (KeyError, TypeError, ValueError):
            return ["a golden image lacks one of name, jpeg (base64), decoded_rows, input_rows, decoded_shape, input_shape, output"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            return ["golden checksums and shapes must be non-negative integers"]
        if not (isinstance(numbers, list) and len(numbers) == classes and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers)):
            return [f"a golden output must be {classes} finite numbers"]
    if total > MAX_GOLDEN_BYTES:
        return [f"golden images take {total} bytes, over {MAX_GOLDEN_BYTES}"]
    return []


def open_checked(path, selftest: bool = True, **kwargs) -> "EdgeClassifier":
    """An EdgeClassifier for `path` (kwargs as EdgeClassifier's) that has passed its selftest:
    a BccError naming the stage and what to check otherwise. An artifact without golden
    vectors (exported before them) is used as it is. `selftest=False` skips the check."""
    from bcc_edge.runtime import EdgeClassifier

    classifier = EdgeClassifier(path, **kwargs)
    if selftest:
        require_pass(classifier)
    return classifier


def require_pass(classifier: "EdgeClassifier") -> Report:
    """The selftest's report, or a BccError naming the failing stage and what to check."""
    from bcc_edge.errors import BccError

    report = run(classifier)
    if report.available and not report.passed:
        raise BccError(f"{classifier.path}: {report.summary()} (--skip-selftest to classify anyway)")
    return report
