"""The differential count: what a haematologist reads off a smear, per sample.

Per sample (all inputs, or each folder with --by-folder): cells, accepted, referred for
review, errors; per class the count and percentage over the accepted cells with a 95% Wilson
score interval, and the same over accepted plus referred cells (their provisional labels);
and the input guard's drift summary. Tallies only, so memory stays flat however many images
stream through `runtime.iter_predictions`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Sequence

from bcc_edge.errors import printable
from bcc_edge.fileio import csv_line
from bcc_edge.runtime import EdgeClassifier, Prediction

FORMATS = ("table", "json", "csv")
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (0..1); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


@dataclass
class Sample:
    name: str
    labels: Sequence[str]
    n: int = 0
    accepted: int = 0
    review: int = 0
    errors: int = 0
    flagged: int = 0
    accepted_counts: dict[str, int] = field(default_factory=dict)
    referred_counts: dict[str, int] = field(default_factory=dict)

    def add(self, p: Prediction) -> None:
        self.n += 1
        if p.status == "error":
            self.errors += 1
            return
        counts = self.accepted_counts if p.status == "ok" else self.referred_counts
        counts[p.label] = counts.get(p.label, 0) + 1
        self.accepted += p.status == "ok"
        self.review += p.status == "review"
        self.flagged += "out_of_distribution" in p.reasons

    def to_dict(self, guarded: bool, warn_share: float) -> dict[str, Any]:
        classified = self.accepted + self.review
        both = {label: self.accepted_counts.get(label, 0) + self.referred_counts.get(label, 0) for label in self.labels}
        share = self.flagged / classified if classified else 0.0
        return {
            "sample": self.name,
            "n": self.n,
            "accepted": self.accepted,
            "review": self.review,
            "errors": self.errors,
            "classes": _classes({label: self.accepted_counts.get(label, 0) for label in self.labels}, self.accepted),
            "with_referred": _classes(both, classified),
            "drift": {"checked": guarded, "flagged": self.flagged, "share": round(share, 6), "warn_share": warn_share, "warning": guarded and share > warn_share},
        }


def _classes(counts: dict[str, int], total: int) -> dict[str, dict[str, Any]]:
    out = {}
    for label, k in counts.items():
        lo, hi = wilson(k, total)
        out[label] = {"count": k, "percent": round(100 * k / total, 4) if total else 0.0, "ci95": [round(100 * lo, 4), round(100 * hi, 4)]}
    return out


class Tally:
    """A count that grows one prediction at a time (`bcc-edge watch`, the page of `serve`)."""

    def __init__(self, classifier: EdgeClassifier, by_folder: bool = False):
        self.classifier, self.by_folder = classifier, by_folder
        self.samples: dict[str, Sample] = {}

    def add(self, p: Prediction) -> None:
        name = (os.path.dirname(p.path) or ".") if self.by_folder else "all"
        if name not in self.samples:
            self.samples[name] = Sample(name, self.classifier.labels)
        self.samples[name].add(p)

    def document(self) -> dict[str, Any]:
        """The document `bcc-edge count --format json` writes."""
        guard = self.classifier.guard
        warn = guard.warn_share if guard is not None else None
        return {"model": self.classifier.describe(), "samples": [s.to_dict(guard is not None, warn) for s in self.samples.values()]}


def count(predictions: Iterable[Prediction], classifier: EdgeClassifier, by_folder: bool = False) -> dict[str, Any]:
    """Tally `predictions` into samples: the document `bcc-edge count --format json` writes."""
    tally = Tally(classifier, by_folder)
    for p in predictions:
        tally.add(p)
    return tally.document()


def write(doc: dict[str, Any], fmt: str, stream: IO[str]) -> None:
    import json

    if fmt == "json":
        stream.write(json.dumps(doc, indent=2) + "\n")
    elif fmt == "csv":
        stream.write(csv_line(("sample", "n", "accepted", "review", "errors", "label", "count", "percent", "ci95_low", "ci95_high", "count_with_referred", "percent_with_referred", "flagged")))
        for s in doc["samples"]:
            for label, c in s["classes"].items():
                w = s["with_referred"][label]
                stream.write(csv_line((s["sample"], s["n"], s["accepted"], s["review"], s["errors"], label, c["count"], c["percent"], *c["ci95"], w["count"], w["percent"], s["drift"]["flagged"])))
    else:
        stream.write(_table(doc))


def _table(doc: dict[str, Any]) -> str:
    lines = []
    for s in doc["samples"]:
        lines.append(f"{printable(s['sample'])}: {s['n']} cells, {s['accepted']} accepted, {s['review']} referred for review, {s['errors']} errors")
        width = max(len(label) for label in s["classes"])
        lines.append(f"  {'class':<{width}}  {'count':>6}  {'%':>6}  {'95% CI':>15}  {'with referred':>13}")
        for label, c in s["classes"].items():
            lo, hi = c["ci95"]
            lines.append(f"  {printable(label):<{width}}  {c['count']:>6}  {c['percent']:>6.1f}  {lo:>6.1f} - {hi:>5.1f}  {s['with_referred'][label]['percent']:>12.1f}%")
        drift = s["drift"]
        if drift["warning"]:
            lines.append(f"  WARNING: {drift['flagged']} of {s['accepted'] + s['review']} images ({100 * drift['share']:.0f}%) do not look like the training images (stain, scanner, focus?)")
        lines.append("")
    return "\n".join(lines)
