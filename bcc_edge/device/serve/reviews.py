"""A reviewer's labels, stored as an ImageFolder that `bcc-edge train --data` reads.

`<review-dir>/<label>/<sha256>.<ext>` holds each reviewed image, named by its content (the
extension from its sniffed format): nothing the client sends reaches a path, and the same
image reviewed twice is one file, under its latest label. `<review-dir>/reviews.csv` logs
every review, with what the model said about the same bytes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Sequence

from bcc_edge.decode import SUFFIX_OF_FORMAT, sniff_format
from bcc_edge.errors import BccError
from bcc_edge.fileio import AppendLog, csv_line, write_bytes
from bcc_edge.infer import csv_cell
from bcc_edge.runtime import Prediction

LOG = "reviews.csv"
COLUMNS = ("time", "sha256", "file", "label", "predicted", "score", "status", "reasons", "name")


class ReviewStore:
    def __init__(self, root: str | Path, labels: Sequence[str]):
        for label in labels:
            if label in (".", "..") or label.startswith(".") or any(c in label for c in "/\\\0"):
                raise BccError(f"the model's label {label!r} cannot name a folder under --review-dir")
        self.root, self.labels = Path(root), list(labels)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def save(self, data: bytes, label: str, prediction: Prediction) -> dict[str, str]:
        """Store `data` (an image the model classified as `prediction`) under `label`."""
        if label not in self.labels:
            raise BccError("the label must be one of the model's labels")
        if prediction.error is not None:
            raise BccError(prediction.error)
        sha = hashlib.sha256(data).hexdigest()
        name = sha + SUFFIX_OF_FORMAT[sniff_format(data)]
        with self._lock:
            for other in self.labels:
                if other != label:
                    (self.root / other / name).unlink(missing_ok=True)
            target = self.root / label / name
            if not target.exists():
                write_bytes(target, data)
            cells = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), sha, f"{label}/{name}", label, prediction.label or "", prediction.score, prediction.status, ";".join(prediction.reasons), prediction.path)
            with AppendLog(self.root / LOG, csv_line(COLUMNS)) as log:
                log.write(csv_line(csv_cell("" if cell is None else str(cell)) for cell in cells))
        return {"sha256": sha, "file": f"{label}/{name}", "label": label}
