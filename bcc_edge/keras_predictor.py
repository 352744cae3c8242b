"""The float Keras model behind the same interface as `runtime.EdgeClassifier`, so one
evaluation loop (`bcc_edge.evaluate`) can run it side by side with exported artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bcc_edge.preprocess import PreprocessSpec

# Images per model call: the Keras call overhead is large, and 64 128-px float32 images are
# only 12 MB.
BATCH = 64


class KerasPredictor:
    """A tf_keras classifier that ends in softmax, fed by `spec` (float32 output)."""

    format = "keras"
    backend = "keras"
    precision = "float32"

    def __init__(self, model: Any, spec: PreprocessSpec, labels: Sequence[str], path: str | Path | None = None):
        self.model = model
        self.spec = spec.with_output("float32")
        self.input_spec = self.spec
        self.labels = list(labels)
        self.path = Path(path) if path is not None else None
        self.metadata = None

    @classmethod
    def from_run(cls, run) -> "KerasPredictor":
        """The best-val float model of a `RunDir` (imports TensorFlow)."""
        return cls(run.load_best_model(), run.spec, run.labels, run.best_model_path)

    def prepare(self, images, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
        return self.input_spec.apply_batch(images, out=out, threads=threads)

    def invoke(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        out = np.empty((n, len(self.labels)), np.float32)
        for i in range(0, n, BATCH):
            # A direct call, not model.predict: no tf.data pipeline or callbacks per batch.
            out[i : i + BATCH] = np.asarray(self.model(batch[i : i + BATCH], training=False), np.float32)
        return out

    def predict_proba(self, images) -> np.ndarray:
        return self.invoke(self.prepare(images))
