"""`bcc-edge bench preprocess`: the fused C kernel against OpenCV and Pillow baselines.

Every contender turns the same uint8 RGB images into the same model input (resize, then
(x - mean) / std, quantised for int8) for three cases: PBC images (363x360) and a 1080p frame
to 224x224 float32, and a DCT-downscaled PBC decode (182x180) to 128x128 int8 (the shipped
model's input):
- bcc_edge:      `PreprocessSpec.apply` (one thread) / `apply_batch` (all cores, no GIL);
- opencv_tuned:  cv2.resize, then cv2.subtract / cv2.multiply into a preallocated float32
                 array (float32), or cv2.LUT with the output table (int8): what a user who
                 knows OpenCV writes;
- opencv_dnn:    cv2.dnn.blobFromImage (float32 only; NCHW and one scale factor for all
                 channels, as it takes no per-channel std: not quite the same output);
- opencv:        cv2.resize + numpy normalise (naive);
- pillow:        Image.resize + numpy normalise (naive);
- memory_floor:  writing the output array once (a fill of the same bytes): no preprocessing
                 can be faster, so its ratio shows how close the kernel is to it.
One image at a time on one thread, and batches on all cores (baselines: one thread per core
over the batch). Contenders run in interleaved rounds and each keeps its best round, so a
busy machine disturbs all alike; ratios (contender time / bcc_edge time) are from the same
run. A baseline whose library is not installed (OpenCV is not part of the device install)
is reported as skipped.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Callable

import numpy as np

from bcc_edge import preprocess
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec, channel_affine, output_table

MEAN = (123.675, 116.28, 103.53)  # ImageNet statistics: any realistic values will do
STD = (58.395, 57.12, 57.375)
CASES = (  # (source (height, width), spec)
    ((363, 360), PreprocessSpec(size=(224, 224), mean=MEAN, std=STD)),
    ((1080, 1920), PreprocessSpec(size=(224, 224), mean=MEAN, std=STD)),
    ((182, 180), PreprocessSpec(size=(128, 128), mean=MEAN, std=STD, output="int8", scale=0.0185, zero_point=-3)),
)
CONTENDERS = ("bcc_edge", "opencv_tuned", "opencv_dnn", "opencv", "pillow", "memory_floor")


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
        cv2 = _opencv(stack)
        # name -> (spec -> a maker of image -> model input callables, one per thread as they may
        # own buffers; or the reason the baseline is skipped)
        baselines: dict[str, Callable[[PreprocessSpec], Any]] = {
            "opencv_tuned": lambda spec: _opencv_tuned(cv2, spec),
            "opencv_dnn": lambda spec: _opencv_dnn(cv2, spec),
            "opencv": lambda spec: _opencv_naive(cv2, spec),
            "pillow": _pillow,
        }
        cases = [
            _run_case(source, spec, mode, n_threads, baselines, batch, rounds, min_seconds, pool, log)
            for source, spec in CASES
            for mode, n_threads in (("single", 1), ("batch", threads))
        ]
    return {
        "benchmark": "preprocess",
        "batch": batch,
        "threads": threads,
        "kernel": {"available": preprocess.KERNEL_AVAILABLE, "openmp": _openmp(), "simd": _simd()},
        "cases": cases,
    }


def _run_case(source, spec, mode, n_threads, baselines, batch, rounds, min_seconds, pool, log) -> dict[str, Any]:
    log(f"{source[1]}x{source[0]} -> {spec.size[1]}x{spec.size[0]} {spec.output}, {mode} ({n_threads} thread(s)) ...")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*source, 3), dtype=np.uint8) for _ in range(batch if mode == "batch" else 1)]
    out = np.empty((len(images), *spec.size, 3), spec.dtype)
    runs: dict[str, Callable[[], Any]] = {}
    skipped: dict[str, str] = {}
    if mode == "single":
        runs["bcc_edge"] = lambda: spec.apply(images[0])
    else:
        runs["bcc_edge"] = lambda: spec.apply_batch(images, out=out, threads=n_threads)
    for name, baseline in baselines.items():
        make = baseline(spec)
        if isinstance(make, str):
            skipped[name] = make
        elif mode == "single":
            runs[name] = lambda f=make(): f(images[0])
        else:
            runs[name] = _over_threads(pool, make, images, n_threads)
    runs["memory_floor"] = lambda: out.fill(0)
    seconds = _best_times(runs, rounds, min_seconds)
    results: dict[str, Any] = {}
    for name in CONTENDERS:
        if name in skipped:
            results[name] = {"skipped": skipped[name]}
        else:
            us = seconds[name] / len(images) * 1e6
            results[name] = {"us_per_image": round(us, 1), "ratio": round(seconds[name] / seconds["bcc_edge"], 2)}
    return {
        "source": list(source),
        "target": list(spec.size),
        "output": spec.output,
        "interpolation": spec.interpolation,
        "mode": mode,
        "threads": n_threads,
        "results": results,
    }


def format_report(result: dict[str, Any]) -> str:
    """A table: one row per case, microseconds per image and the ratio to bcc_edge."""
    kernel = result["kernel"]
    lines = [
        f"preprocess (kernel {'built, ' + kernel['simd'] if kernel['available'] else 'NOT built: numpy reference'}"
        f"{', OpenMP' if kernel['openmp'] else ''})",
        "microseconds per image; (x) = time relative to bcc_edge, higher means bcc_edge is faster",
        f"{'case':<30}{'run':<18}" + "".join(f"{name:>17}" for name in CONTENDERS),
    ]
    for case in result["cases"]:
        run = "1 image, 1 thread" if case["mode"] == "single" else f"batch {result['batch']}, {case['threads']} thr"
        cells = []
        for name in CONTENDERS:
            r = case["results"][name]
            cells.append("skipped" if "skipped" in r else f"{r['us_per_image']:.0f} us ({r['ratio']:.2f}x)")
        (h, w), (th, tw) = case["source"], case["target"]
        label = f"{w}x{h} -> {tw}x{th} {case['output']}"
        lines.append(f"{label:<30}{run:<18}" + "".join(f"{c:>17}" for c in cells))
    skipped = {name: r["skipped"] for case in result["cases"] for name, r in case["results"].items() if "skipped" in r}
    lines += [f"{name}: skipped ({reason})" for name, reason in skipped.items()]
    return "\n".join(lines)


def _opencv(stack: ExitStack):
    try:
        import cv2
    except ImportError:
        return None
    # One OpenCV thread per image, as for the other contenders; the batch spreads over cores.
    stack.callback(cv2.setNumThreads, cv2.getNumThreads())
    cv2.setNumThreads(1)
    return cv2


_NO_OPENCV = "OpenCV (cv2) is not installed"


def _opencv_tuned(cv2, spec: PreprocessSpec):
    if cv2 is None:
        return _NO_OPENCV
    size = spec.size[::-1]
    if spec.output != "float32":
        lut = np.ascontiguousarray(output_table(spec).T.view(np.uint8)[None])  # (1, 256, 3): one column per channel
        return lambda: lambda image: cv2.LUT(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), lut)
    m, r = channel_affine(spec)
    mean, inv = (*m.tolist(), 0.0), (*r.tolist(), 0.0)

    def make():
        buf = np.empty((*spec.size, 3), np.float32)

        def run(image):
            np.copyto(buf, cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), casting="unsafe")
            cv2.subtract(buf, mean, dst=buf)
            return cv2.multiply(buf, inv, dst=buf)

        return run

    return make


def _opencv_dnn(cv2, spec: PreprocessSpec):
    if cv2 is None:
        return _NO_OPENCV
    if spec.output != "float32":
        return "blobFromImage makes float32 only"
    scale = float(1.0 / np.mean(spec.std))
    return lambda: lambda image: cv2.dnn.blobFromImage(image, scale, spec.size[::-1], spec.mean, swapRB=False, crop=False)


def _naive_normalise(spec: PreprocessSpec) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 HxWx3 grey levels -> model input, the straightforward numpy way."""
    if spec.output != "float32":
        table = output_table(spec)
        return lambda resized: table[np.arange(3), resized]
    m, r = channel_affine(spec)
    return lambda resized: (resized.astype(np.float32) - m) * r


def _opencv_naive(cv2, spec: PreprocessSpec):
    if cv2 is None:
        return _NO_OPENCV
    normalise = _naive_normalise(spec)
    return lambda: lambda image: normalise(cv2.resize(image, spec.size[::-1], interpolation=cv2.INTER_LINEAR))


def _pillow(spec: PreprocessSpec):
    try:
        from PIL import Image
    except ImportError:
        return "Pillow is not installed"
    normalise = _naive_normalise(spec)
    size = spec.size[::-1]
    return lambda: lambda image: normalise(np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)))


def _over_threads(pool, make, images, threads: int) -> Callable[[], Any]:
    """The batch split over `threads` Python threads (OpenCV and Pillow release the GIL), each
    with its own instance of the baseline."""
    chunks = [(images[i::threads], make()) for i in range(threads)]
    return lambda: list(pool.map(lambda chunk: [chunk[1](image) for image in chunk[0]], chunks))


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


def _simd() -> str | None:
    return preprocess._kernels.simd() if preprocess._kernels is not None else None
