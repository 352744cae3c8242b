"""Preprocessing benchmark: `bcc-edge bench preprocess`, plus a comparison of C compiler flags.

    python benchmarks/bench_preprocess.py            # the kernel vs OpenCV / Pillow (as the CLI)
    python benchmarks/bench_preprocess.py --json
    python benchmarks/bench_preprocess.py --flags    # csrc/bcc_preprocess.c under several flag sets

--flags compiles csrc/bcc_preprocess.c into a shared library once per flag set (with `cc`),
calls it through ctypes with the real weight tables, and reports microseconds per image
(best of interleaved rounds, thread CPU time so other processes disturb it less). Every
variant's output is checked byte for byte against the numpy reference first: a flag that
changes results (FMA contraction, -ffast-math) is reported as such, not timed.
The release set lives in csrc/cflags.py.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "csrc")]

import cflags  # noqa: E402

from bcc_edge.bench.preprocess import bench_preprocess, format_report  # noqa: E402
from bcc_edge.preprocess import PreprocessSpec, _output_table, _tables_for, reference_apply  # noqa: E402

FLAG_SETS = {
    "-O2": ["-O2", "-ffp-contract=off"],
    "-O2 -ftree-vectorize": ["-O2", "-ftree-vectorize", "-ffp-contract=off"],
    "-O3": ["-O3", "-ffp-contract=off"],
    "-O3 -funroll-loops": ["-O3", "-funroll-loops", "-ffp-contract=off"],
    "release (csrc/cflags.py)": cflags.COMPILE_ARGS,
    "-O3 -ffast-math (forbidden)": ["-O3", "-ffast-math"],
}
CASES = {
    "363x360 -> 224x224 float32 bilinear": ((363, 360), PreprocessSpec(size=(224, 224), mean=(124, 116, 104), std=(58, 57, 57))),
    "363x360 -> 224x224 int8 bilinear": ((363, 360), PreprocessSpec(size=(224, 224), output="int8", scale=0.02, zero_point=-1)),
    "1080x1920 -> 224x224 float32 area": ((1080, 1920), PreprocessSpec(size=(224, 224), interpolation="area")),
}
OUTPUT_KIND = {"float32": 0, "int8": 1, "uint8": 2}


class Axis(ctypes.Structure):
    _fields_ = [
        ("start", ctypes.c_void_p),
        ("count", ctypes.c_void_p),
        ("weight", ctypes.c_void_p),
        ("out_size", ctypes.c_int32),
        ("taps", ctypes.c_int32),
    ]


class Image(ctypes.Structure):
    _fields_ = [
        ("pixels", ctypes.c_void_p),
        ("height", ctypes.c_int32),
        ("width", ctypes.c_int32),
        ("channels", ctypes.c_int32),
        ("bytes_per_sample", ctypes.c_int32),
        ("row_stride", ctypes.c_ssize_t),
        ("col_stride", ctypes.c_ssize_t),
        ("channel_stride", ctypes.c_ssize_t),
    ]


def build(flags: list[str], out_dir: Path) -> ctypes.CDLL:
    name = out_dir / f"libbcc{abs(hash(tuple(flags)))}.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", *flags, f"-I{ROOT / 'csrc'}", str(ROOT / "csrc" / "bcc_preprocess.c"), "-o", str(name)], check=True
    )
    lib = ctypes.CDLL(str(name))
    lib.bcc_preprocess.restype = ctypes.c_int
    lib.bcc_preprocess.argtypes = [
        ctypes.POINTER(Image),
        ctypes.POINTER(Axis),
        ctypes.POINTER(Axis),
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    return lib


def prepare(shape, spec):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    rows, cols = _tables_for(spec, image)
    axes = [
        Axis(t.start.ctypes.data, t.count.ctypes.data, t.weight.ctypes.data, t.weight.shape[0], t.weight.shape[1]) for t in (rows, cols)
    ]
    im = Image(image.ctypes.data, *shape, 3, 1, image.strides[0], 3, 1)
    table = np.ascontiguousarray(_output_table(spec))
    out = np.empty((*spec.size, 3), spec.dtype)
    keep = (image, rows, cols, table)  # the raw pointers above point into these

    def call(lib):
        status = lib.bcc_preprocess(
            ctypes.byref(im), ctypes.byref(axes[0]), ctypes.byref(axes[1]), OUTPUT_KIND[spec.output], table.ctypes.data, out.ctypes.data
        )
        assert status == 0, status
        return out

    return call, reference_apply(spec, image), keep


def compare_flags(rounds: int = 7, repeats: int = 30) -> dict[str, dict[str, float | str]]:
    results: dict[str, dict[str, float | str]] = {label: {} for label in FLAG_SETS}
    with tempfile.TemporaryDirectory() as tmp:
        libs = {label: build(flags, Path(tmp)) for label, flags in FLAG_SETS.items()}
        for case, (shape, spec) in CASES.items():
            call, expected, _keep = prepare(shape, spec)
            timed = {}
            for label, lib in libs.items():
                if call(lib).tobytes() != expected.tobytes():
                    results[label][case] = "differs from the reference"
                else:
                    timed[label] = float("inf")
            for _ in range(rounds):
                for label in timed:
                    start = time.thread_time()
                    for _ in range(repeats):
                        call(libs[label])
                    timed[label] = min(timed[label], (time.thread_time() - start) / repeats * 1e6)
            for label, us in timed.items():
                results[label][case] = round(us, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flags", action="store_true", help="compare compiler flag sets instead")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.flags:
        results = compare_flags()
        if args.json:
            print(json.dumps(results, indent=2))
            return
        print("microseconds per image, one thread (thread CPU time, best of rounds)")
        for label, cases in results.items():
            print(f"{label}:")
            for case, value in cases.items():
                print(f"    {case:<40} {value if isinstance(value, str) else f'{value:8.1f} us'}")
        return
    result = bench_preprocess(batch=args.batch, threads=args.threads, log=None if args.json else lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2) if args.json else format_report(result))


if __name__ == "__main__":
    main()
