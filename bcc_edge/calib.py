"""Calibration sets: the few hundred images INT8 quantisation measures activation ranges on.

A calibration set is a CSV manifest (see calibration/README.md)::

    path,label,sha256
    alpha/003.jpg,alpha,9f86d0...

with `path` relative to a data root given when the set is used (the run's data root unless
told otherwise), so the same manifest works wherever the dataset is mounted. The sha256 pins
each file: a manifest that no longer matches its images is refused rather than silently
calibrating on different pixels. No TensorFlow here.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from bcc_edge.data import Record
from bcc_edge.errors import BccError
from bcc_edge.fileio import atomic_path, csv_text, file_sha256

COLUMNS = ("path", "label", "sha256")
# 32 per class (256 images for the 8 PBC classes) is within the 100-500 images the TFLite and
# onnxruntime calibrators need for stable min/max ranges, and keeps export's self-check quick.
DEFAULT_PER_CLASS = 32
# A held-out test split must never influence a model, calibration ranges included.
ALLOWED_SPLITS = ("train", "val")


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration images resolved against a data root, with provenance for the manifest."""

    records: tuple[Record, ...]
    source: str  # the manifest file the set came from, or how it was drawn
    text: str  # the manifest CSV (an export keeps a copy)

    @property
    def sha256(self) -> str:
        """Of the manifest text: identifies the exact set used."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def describe(self) -> dict:
        """The `calibration` entry of manifest.json and of the artifacts' metadata."""
        return {"manifest": self.source, "sha256": self.sha256, "count": len(self.records)}

    def per_class(self) -> dict[str, int]:
        return dict(sorted(Counter(r.label for r in self.records).items()))


def select(records: Iterable[Record], per_class: int, seed: int = 0) -> list[Record]:
    """Up to `per_class` images of every class, drawn reproducibly (stratified random sample).

    Sorting by path before shuffling makes the choice independent of the input order.
    """
    if per_class < 1:
        raise BccError(f"--per-class must be at least 1 (got {per_class})")
    by_label: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_label[record.label].append(record)
    rng = random.Random(seed)
    chosen: list[Record] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda r: r.path)
        rng.shuffle(group)
        chosen.extend(sorted(group[:per_class], key=lambda r: r.path))
    if not chosen:
        raise BccError("no images to build a calibration set from")
    return chosen


def manifest_text(records: Sequence[Record], data_root: str | Path) -> str:
    root = Path(data_root).resolve()
    rows = []
    for r in records:
        try:
            rel = Path(r.path).resolve().relative_to(root)
        except ValueError:
            raise BccError(f"{r.path} is outside the data root {root}") from None
        rows.append((rel.as_posix(), r.label, r.sha256 or file_sha256(r.path)))
    return csv_text(COLUMNS, rows)


def from_records(records: Sequence[Record], data_root: str | Path, source: str) -> CalibrationSet:
    return CalibrationSet(tuple(records), source, manifest_text(records, data_root))


def write_manifest(path: str | Path, cset: CalibrationSet) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(cset.text, encoding="utf-8")


def parse_manifest(text: str, source: str) -> list[tuple[str, str, str]]:
    """(path, label, sha256) rows of a manifest, validated; BccError names the problem."""
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise BccError(f"{source}: not a calibration manifest (the header must be {','.join(COLUMNS)})")
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 3 or not all(cell.strip() for cell in row):
            raise BccError(f"{source}, line {line}: expected path,label,sha256")
        rows.append(tuple(cell.strip() for cell in row))
    if not rows:
        raise BccError(f"{source}: the calibration set is empty")
    return rows  # type: ignore[return-value]


def load(path: str | Path, data_root: str | Path, labels: Sequence[str]) -> CalibrationSet:
    """A manifest resolved against `data_root` and checked against the model's `labels`.

    Refuses labels the model does not know, missing files and files whose sha256 differs:
    each means the set does not belong to this model or this data.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BccError(f"cannot read calibration manifest {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BccError(f"{path}: not a UTF-8 CSV calibration manifest") from None
    rows = parse_manifest(text, str(path))
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({label for _, label, _ in rows} - set(index))
    if unknown:
        raise BccError(f"{path}: calibration labels {unknown} are not classes of this model ({', '.join(labels)})")
    root = Path(data_root)
    records = tuple(Record(str(root / rel), label, index[label], sha) for rel, label, sha in rows)
    _check_files(records, path)
    return CalibrationSet(records, str(path), text)


def _check_files(records: Sequence[Record], source: Path) -> None:
    for r in records:
        if not Path(r.path).is_file():
            raise BccError(f"{source}: calibration image not found: {r.path} (wrong data root?)")
        if file_sha256(r.path) != r.sha256:
            raise BccError(f"{source}: {r.path} does not match its sha256 in the manifest (the data changed?)")


def make(data: str | Path, per_class: int, out: str | Path, split: str = "train", seed: int = 0, force: bool = False) -> CalibrationSet:
    """Build a stratified calibration manifest from the `split` of the dataset at `data`.

    An ImageFolder is split the way `bcc-edge train --seed SEED` splits it, so with the same
    seed a train-split calibration set never contains the run's validation images.
    """
    from bcc_edge.data import discover

    if split not in ALLOWED_SPLITS:
        raise BccError(f"--split must be one of {', '.join(ALLOWED_SPLITS)} (got {split!r}); a held-out test split must not shape the model")
    out = Path(out)
    if out.exists() and not force:
        raise BccError(f"{out} already exists; use --force to replace it")
    index = discover(data, seed=seed)
    cset = from_records(select(getattr(index, split), per_class, seed), index.root, str(out))
    write_manifest(out, cset)
    return cset
