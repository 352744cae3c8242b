#!/usr/bin/env python
"""Edge inference across models and thread counts, one table (ratios measured in the same run).

    python benchmarks/bench_infer.py MODEL [MODEL ...] [--images DIR] [--threads 1,2,4] [--seconds 3] [--json OUT]

For each model: invoke latency on one thread (batch of one), the naive loop (Pillow resize +
numpy normalise + one interpreter call per image) and the `bcc-edge infer` pipeline on each
thread count, with the speed-up over the naive loop. Without --images: synthetic 360x363
JPEGs. Run it on an otherwise idle machine; `bcc-edge bench infer` gives the per-stage detail.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from bcc_edge.bench.infer import run_bench  # noqa: E402
from bcc_edge.errors import BccError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--images", type=Path, help="directory of images (default: synthetic 360x363 JPEGs)")
    parser.add_argument("--threads", default="1,2,4", help="comma-separated thread counts (default: 1,2,4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per contender (default: 3)")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    args = parser.parse_args()
    try:
        threads = [int(t) for t in args.threads.split(",")]
        results = [run_bench(model, args.images, threads=threads, seconds=args.seconds, log=lambda m: print(m, file=sys.stderr)) for model in args.models]
    except (BccError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = results[0]["pipeline_images_per_second"].keys()
    header = f"{'model':<44}{'invoke p50 ms':>14}{'naive img/s':>13}" + "".join(f"{f'{n} thr img/s (x)':>20}" for n in counts)
    print(header)
    for r in results:
        cells = "".join(f"{r['pipeline_images_per_second'][n]:>12.0f} ({r['speedup_vs_naive'][n]:4.2f}x)" for n in counts)
        print(f"{r['description'][:43]:<44}{r['stages_ms']['invoke']['p50']:>14.3f}{r['naive_images_per_second']:>13.0f}{cells}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
