"""The misclassified-examples gallery: pick each class's worst errors, embed small thumbnails."""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np


def worst_errors(probs: np.ndarray, y_true: np.ndarray, paths: Sequence[str], labels: Sequence[str], per_class: int) -> list[dict]:
    """Up to `per_class` misclassified images per true class, most confidently wrong first.

    "Worst" means the highest probability given to the wrong class: those are the images a
    person should look at (mislabelled data, or a confusion the model is sure about).
    """
    probs = np.asarray(probs)
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    confidence = probs[np.arange(len(y_pred)), y_pred]
    chosen = []
    for k in range(len(labels)):
        wrong = np.flatnonzero((y_true == k) & (y_pred != k))
        # stable sort keeps dataset order between equal confidences, so reports are reproducible
        for i in wrong[np.argsort(-confidence[wrong], kind="stable")][:per_class]:
            chosen.append({
                "path": str(paths[i]),
                "true": labels[k],
                "pred": labels[int(y_pred[i])],
                "confidence": float(confidence[i]),
                "true_class_prob": float(probs[i, k]),
            })
    return chosen


def thumbnail_uri(path: str, size: int = 96) -> str | None:
    """A JPEG data URI at most `size` px on its longer side, or None when the file can't be read
    any more (the gallery then shows the path only: the numbers stay valid)."""
    from PIL import Image

    from bcc_edge.errors import BccError
    from bcc_edge.decode import load_image

    try:
        image = Image.fromarray(load_image(path))
    except BccError:
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
