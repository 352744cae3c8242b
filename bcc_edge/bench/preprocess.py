"""`bcc-edge bench preprocess`: the fused C kernel against OpenCV and Pillow baselines.

Every contender turns the same uint8 RGB images into 224x224x3 float32 `(x - mean) / std`:
- bcc_edge: `PreprocessSpec.apply` (one thread) / `apply_batch` (all cores, no GIL);
- opencv:   cv2.resize(INTER_LINEAR) + numpy normalise;
- pillow:   Image.resize(BILINEAR) + numpy normalise;
for the PBC image size (363x360) and a 1080p frame, one image at a time on one thread and
batches on all cores (baselines: one thread per core over the batch). Contenders run in
interleaved rounds and each keeps its best round, so a busy machine disturbs all alike;
ratios (contender time / bcc_edge time) are from the same run. A baseline whose library is
not installed (OpenCV is not part of the device install) is reported as skipped.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Callable

import numpy as np

from bcc_edge import preprocess
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec

SOURCES = ((363, 360), (1080, 1920))  # (height, width): PBC images, a camera frame
TARGET = (224, 224)
MEAN = (123.675, 116.28, 103.53)  # ImageNet statistics: any realistic values will do
STD = (58.395, 57.12, 57.375)
CONTENDERS = ("bcc_edge", "opencv", "pillow")


def bench_preprocess(
    batch: int = 64,
    threads: int | None = None,
    rounds: int = 5,
    min_seconds: float = 0.05,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Microseconds per image for each contender, case and thread setting, with ratios.

    `rounds` interleaved rounds per case, each contender running at least `min_seconds`
    per round.
    """
    if batch < 1 or rounds < 1 or min_seconds <= 0:
        raise BccError("batch and rounds must be positive integers and min_seconds positive")
    threads = preprocess.usable_cpus() if threads is None else threads
    if threads < 1:
        raise BccError(f"threads must be a positive integer; got {threads}")
    log = log or (lambda message: None)
    with ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(threads))
        baselines = {"opencv": _opencv(stack), "pillow": _pillow()}
        cases = _run_cases(baselines, batch, threads, rounds, min_seconds, pool, log)
    return {
        "benchmark": "preprocess",
        "target": list(TARGET),
        "output": "float32",
        "interpolation": "bilinear",
        "batch": batch,
        "threads": threads,
        "kernel": {"available": preprocess.KERNEL_AVAILABLE, "openmp": _openmp()},
        "cases": cases,
    }


def _run_cases(baselines, batch, threads, rounds, min_seconds, pool, log) -> list[dict[str, Any]]:
    spec = PreprocessSpec(size=TARGET, interpolation="bilinear", mean=MEAN, std=STD)
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)
    rng = np.random.default_rng(0)
    cases = []
    for source in SOURCES:
        images = [rng.integers(0, 256, (*source, 3), dtype=np.uint8) for _ in range(batch)]
        for mode, n_threads in (("single", 1), ("batch", threads)):
            log(f"{source[1]}x{source[0]} -> {TARGET[1]}x{TARGET[0]}, {mode} ({n_threads} thread(s)) ...")
            runs: dict[str, Callable[[], Any]] = {}
            skipped: dict[str, str] = {}
            if mode == "single":
                runs["bcc_edge"] = lambda image=images[0]: spec.apply(image)
            else:
                out = np.empty((batch, *TARGET, 3), np.float32)
                runs["bcc_edge"] = lambda images=images, out=out, n=n_threads: spec.apply_batch(images, out=out, threads=n)
            for name, baseline in baselines.items():
                if isinstance(baseline, str):
                    skipped[name] = baseline
                elif mode == "single":
                    runs[name] = lambda image=images[0], f=baseline: f(image, mean, std)
                else:
                    runs[name] = _over_threads(pool, baseline, images, mean, std, n_threads)
            per_call = 1 if mode == "single" else batch
            seconds = _best_times(runs, rounds, min_seconds)
            results: dict[str, Any] = {}
            for name in CONTENDERS:
                if name in skipped:
                    results[name] = {"skipped": skipped[name]}
                else:
                    us = seconds[name] / per_call * 1e6
                    results[name] = {"us_per_image": round(us, 1), "ratio": round(seconds[name] / seconds["bcc_edge"], 2)}
            cases.append({"source": list(source), "mode": mode, "threads": n_threads, "results": results})
    return cases


def format_report(result: dict[str, Any]) -> str:
    """A table: one row per case, microseconds per image and the ratio to bcc_edge."""
    kernel = result["kernel"]
    lines = [
        f"preprocess -> {result['target'][1]}x{result['target'][0]}x3 {result['output']}, {result['interpolation']}"
        f" (kernel {'built' if kernel['available'] else 'NOT built: numpy reference'}"
        f"{', OpenMP' if kernel['openmp'] else ''})",
        "microseconds per image; (x) = time relative to bcc_edge, higher means bcc_edge is faster",
        f"{'source':<11}{'run':<20}" + "".join(f"{name:>20}" for name in CONTENDERS),
    ]
    for case in result["cases"]:
        run = "1 image, 1 thread" if case["mode"] == "single" else f"batch {result['batch']}, {case['threads']} thr"
        cells = []
        for name in CONTENDERS:
            r = case["results"][name]
            cells.append("skipped" if "skipped" in r else f"{r['us_per_image']:.0f} us ({r['ratio']:.2f}x)")
        source = f"{case['source'][1]}x{case['source'][0]}"
        lines.append(f"{source:<11}{run:<20}" + "".join(f"{c:>20}" for c in cells))
    skipped = {name: r["skipped"] for case in result["cases"] for name, r in case["results"].items() if "skipped" in r}
    lines += [f"{name}: skipped ({reason})" for name, reason in skipped.items()]
    return "\n".join(lines)


def _opencv(stack: ExitStack):
    try:
        import cv2
    except ImportError:
        return "OpenCV (cv2) is not installed"
    # One OpenCV thread per image, as for the other contenders; the batch spreads over cores.
    stack.callback(cv2.setNumThreads, cv2.getNumThreads())
    cv2.setNumThreads(1)

    def run(image, mean, std):
        resized = cv2.resize(image, TARGET[::-1], interpolation=cv2.INTER_LINEAR)
        return (resized.astype(np.float32) - mean) / std

    return run


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        return "Pillow is not installed"

    def run(image, mean, std):
        resized = np.asarray(Image.fromarray(image).resize(TARGET[::-1], Image.Resampling.BILINEAR))
        return (resized.astype(np.float32) - mean) / std

    return run


def _over_threads(pool, baseline, images, mean, std, threads: int) -> Callable[[], Any]:
    """The batch split over `threads` Python threads (OpenCV and Pillow release the GIL)."""
    chunks = [images[i::threads] for i in range(threads)]
    return lambda: list(pool.map(lambda chunk: [baseline(image, mean, std) for image in chunk], chunks))


def _best_times(runs: dict[str, Callable[[], Any]], rounds: int, min_seconds: float) -> dict[str, float]:
    """Seconds per call of each run: the best of `rounds` interleaved rounds."""
    repeats = {}
    for name, run in runs.items():  # warm up (tables, caches, thread pools) and size the rounds
        start = time.perf_counter()
        run()
        repeats[name] = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-9)))
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(repeats[name]):
                run()
            best[name] = min(best[name], (time.perf_counter() - start) / repeats[name])
    return best


def _openmp() -> bool:
    return bool(preprocess._kernels is not None and preprocess._kernels.OPENMP)
