"""Options every command that classifies on the device takes (infer, count, serve, watch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Model = Annotated[Optional[Path], typer.Option("--model", "-m", help="A .tflite or .onnx artifact from `bcc-edge export` (default: the bundled model).")]
Threads = Annotated[Optional[int], typer.Option("--threads", "-t", min=1, help="CPU threads to use (default: all usable cores).")]
Batch = Annotated[Optional[int], typer.Option("--batch", "-b", min=1, help="Images per interpreter call (default: 16, or 1 for a fixed-batch model).")]
Backend = Annotated[str, typer.Option("--backend", help="auto, litert, tflite-runtime or onnxruntime.")]
Provider = Annotated[str, typer.Option("--provider", help="onnxruntime execution provider for .onnx models: cpu, cuda or tensorrt (a Jetson's GPU).")]
InvokeTimeout = Annotated[float, typer.Option("--invoke-timeout", min=0.1, help="Seconds a batch may take before the run is stopped with exit 2 (a model that never finishes).")]
ReviewThreshold = Annotated[Optional[float], typer.Option("--review-threshold", help="Refer predictions whose calibrated top-1 probability is below P, instead of the model's policy.")]
NoReview = Annotated[bool, typer.Option("--no-review", help="Refer nothing for low confidence.")]
NoGuard = Annotated[bool, typer.Option("--no-guard", help="Do not check whether images look like the training images.")]
SkipSelftest = Annotated[bool, typer.Option("--skip-selftest", help="Classify even if the model fails its golden-vector selftest.")]


def classifier_options(backend: str, provider: str, review_threshold: Optional[float], no_review: bool, no_guard: bool) -> dict:
    """EdgeClassifier's keyword arguments for the options above (the one place flags meet the library).
    One thread per interpreter: the commands run in parallel across batches, one worker each."""
    return dict(threads=1, backend=backend, provider=provider, review_threshold=review_threshold, review=not no_review, guard=not no_guard)
