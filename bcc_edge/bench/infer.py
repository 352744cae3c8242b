"""`bcc-edge bench infer`: where the time goes per image, and the pipeline against a naive loop.

Everything is measured in one run on the same images, so the ratios hold on any machine:
- per-stage latency on one thread (decode, preprocess, invoke with a batch of one);
- end-to-end images/second of the `bcc-edge infer` pipeline on 1 thread and on `threads`
  (best of interleaved rounds, so a busy machine disturbs every contender alike);
- a naive baseline, one image at a time: Pillow decode + resize, numpy normalise (and
  quantise for an integer model), one interpreter call per image;
- the process's peak resident memory.
No TensorFlow.
"""

from __future__ import annotations

import functools
import resource
import sys
import tempfile
import time
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bcc_edge import jpeg
from bcc_edge.errors import BccError, positive_int
from bcc_edge.infer import describe, expand_inputs
from bcc_edge.runtime import EdgeClassifier, iter_predictions

SYNTHETIC_SIZE = (363, 360)  # (height, width) of most PBC images
SYNTHETIC_COUNT = 64
MAX_IMAGES = 256  # from --images: enough for stable percentiles, quick to decode


def run_bench(
    model: str | Path,
    images: str | Path | None = None,
    threads: int | Sequence[int] = 1,
    batch_size: int | None = None,
    seconds: float = 2.0,
    backend: str = "auto",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure `model` on the images under `images` (default: synthetic 360x363 JPEGs).

    `threads`: the pipeline runs on 1 thread and on each count given.
    `seconds`: about how long each throughput contender runs.
    """
    log = log or (lambda message: None)
    thread_counts = sorted({1, *(positive_int("threads", n) for n in ([threads] if isinstance(threads, int) else threads))})
    with ExitStack() as stack:
        if images is None:
            from bcc_edge.synthetic import write_image_folder

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bcc-bench-")))
            write_image_folder(folder, per_class=SYNTHETIC_COUNT // 4, size=SYNTHETIC_SIZE, seed=0)
            source = f"synthetic {SYNTHETIC_SIZE[1]}x{SYNTHETIC_SIZE[0]} JPEGs"
        else:
            folder = Path(images)
            if not folder.is_dir():
                raise BccError(f"--images is not a directory: {folder}")
            source = str(folder)
        single = EdgeClassifier(model, threads=1, backend=backend)
        log(f"model: {describe(single)}")
        paths, skipped = _readable(single, list(islice(expand_inputs([str(folder)]), MAX_IMAGES)))
        if not paths:
            raise BccError(f"no readable images under {folder}")
        log(f"images: {len(paths)} from {source}" + (f" ({skipped} unreadable skipped)" if skipped else ""))

        stages = stage_latencies(single, paths)
        runs: dict[str, Callable[[list[str]], None]] = {"naive": lambda batch: _naive_loop(single, batch)}
        for n in thread_counts:
            runs[str(n)] = functools.partial(_pipeline, single, batch_size=batch_size, workers=n)
        log(f"throughput: naive loop and pipeline on {', '.join(list(runs)[1:])} thread(s), {seconds:g} s each ...")
        rates = _best_throughputs(runs, paths, seconds)
    naive = rates.pop("naive")
    return {
        "model": str(model),
        "description": describe(single),
        "backend": single.backend,
        "images": len(paths),
        "source": source,
        "threads": thread_counts,
        "batch": batch_size or single.max_batch,
        "jpeg_decoder": "simplejpeg" if jpeg.simplejpeg is not None else "pillow",
        "stages_ms": stages,
        "naive_images_per_second": naive,
        "pipeline_images_per_second": rates,
        "speedup_vs_naive": {n: ips / naive for n, ips in rates.items()},
        "peak_rss_mib": _peak_rss_mib(),
    }


def _readable(classifier: EdgeClassifier, paths: list[str]) -> tuple[list[str], int]:
    good = []
    for path in paths:
        try:
            classifier.load(path)
            good.append(path)
        except BccError:
            pass
    return good, len(paths) - len(good)


def stage_latencies(classifier: EdgeClassifier, paths: list[str], passes: int = 3) -> dict[str, dict[str, float]]:
    """p50/p95/p99 milliseconds per image of each stage, one image at a time on one thread."""
    timings: dict[str, list[float]] = {"decode": [], "preprocess": [], "invoke": []}
    classifier.invoke(classifier.prepare([classifier.load(paths[0])], threads=1))  # warm-up
    clock = time.perf_counter
    for _ in range(passes):
        for path in paths:
            t0 = clock()
            image = classifier.load(path)
            t1 = clock()
            batch = classifier.prepare([image], threads=1)
            t2 = clock()
            classifier.invoke(batch)
            t3 = clock()
            timings["decode"].append(t1 - t0)
            timings["preprocess"].append(t2 - t1)
            timings["invoke"].append(t3 - t2)
    return {
        stage: {f"p{q}": float(np.percentile(values, q)) * 1e3 for q in (50, 95, 99)}
        for stage, values in timings.items()
    }




def _pipeline(classifier: EdgeClassifier, paths: list[str], batch_size: int | None, workers: int) -> None:
    for prediction in iter_predictions(classifier, paths, batch_size=batch_size, workers=workers):
        if prediction.error is not None:
            raise BccError(prediction.error)


def _naive_loop(classifier: EdgeClassifier, paths: list[str]) -> None:
    """What one writes without bcc-edge: Pillow resize, numpy maths, one image per call."""
    from PIL import Image

    spec = classifier.input_spec
    h, w = spec.size
    mean, std = np.array(spec.mean, np.float32), np.array(spec.std, np.float32)
    for path in paths:
        with Image.open(path) as im:
            resized = im.convert("RGB").resize((w, h), Image.BILINEAR)
        x = (np.asarray(resized, np.float32) - mean) / std
        if spec.output != "float32":
            info = np.iinfo(spec.output)
            x = np.clip(np.round(x / spec.scale) + spec.zero_point, info.min, info.max).astype(spec.output)
        classifier.invoke(x[None])


def _best_throughputs(runs: dict[str, Callable[[list[str]], None]], paths: list[str], seconds: float) -> dict[str, float]:
    """Best images/second of each run over `paths`, in interleaved rounds for about `seconds`
    per run: load from other processes then hits every contender alike, and the best round
    is the least disturbed one."""
    for run in runs.values():
        run(paths[:8])  # warm-up: thread pools, interpreter allocation, file cache
    best = dict.fromkeys(runs, 0.0)
    spent = dict.fromkeys(runs, 0.0)
    rounds = 0
    while rounds < 3 or min(spent.values()) < seconds:
        for name, run in runs.items():
            start = time.perf_counter()
            run(paths)
            elapsed = time.perf_counter() - start
            spent[name] += elapsed
            best[name] = max(best[name], len(paths) / elapsed)
        rounds += 1
    return best


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of a `run_bench` result."""
    lines = [
        f"model    {result['description']}",
        f"images   {result['images']} from {result['source']}; batch {result['batch']}; JPEG decoder {result['jpeg_decoder']}",
        "",
        f"{'stage (1 thread)':<18}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}",
    ]
    for stage, q in result["stages_ms"].items():
        lines.append(f"{stage:<18}{q['p50']:>9.3f}{q['p95']:>9.3f}{q['p99']:>9.3f}")
    naive = result["naive_images_per_second"]
    lines += ["", f"{'end to end':<26}{'img/s':>9}{'vs naive':>10}", f"{'naive loop, 1 thread':<26}{naive:>9.0f}{1.0:>9.2f}x"]
    for n, ips in result["pipeline_images_per_second"].items():
        label = f"bcc-edge infer, {n} thread{'s' if n != '1' else ''}"
        lines.append(f"{label:<26}{ips:>9.0f}{result['speedup_vs_naive'][n]:>9.2f}x")
    lines += ["", f"peak RSS {result['peak_rss_mib']:.0f} MiB"]
    return "\n".join(lines)
