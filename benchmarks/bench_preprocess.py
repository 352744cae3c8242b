"""Preprocessing benchmark: `bcc-edge bench preprocess`, plus a comparison of C compiler flags.

    python benchmarks/bench_preprocess.py            # the kernel vs OpenCV / Pillow (as the CLI)
    python benchmarks/bench_preprocess.py --json
    python benchmarks/bench_preprocess.py --flags    # csrc/*.c under several flag sets

--flags compiles the C kernel (csrc/*.c, without the Cython wrapper) into a shared library
once per flag set (with `cc`), calls it through ctypes with the real plans and targets, and
reports microseconds per image (best of interleaved rounds, thread CPU time so other
processes disturb it less), for the best instruction set of each build and, for the release
flags, for every instruction set this CPU has. Every variant's output is checked byte for
byte against the numpy reference first: a flag that changes results (-ffast-math) is
reported as such, not timed. The release set lives in csrc/cflags.py.
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
from bcc_edge.preprocess import PreprocessSpec, axis_tables, channel_affine, output_table, reference_apply  # noqa: E402

FLAG_SETS = {
    "-O2": ["-O2", "-ffp-contract=off"],
    "-O3": ["-O3", "-ffp-contract=off"],
    "-O3 -funroll-loops": ["-O3", "-funroll-loops", "-ffp-contract=off"],
    "release (csrc/cflags.py)": cflags.COMPILE_ARGS,
    "-O3 -ffast-math (forbidden)": ["-O3", "-ffast-math"],
}
RELEASE = "release (csrc/cflags.py)"
MEAN, STD = (123.7, 116.3, 103.5), (58.4, 57.1, 57.4)
CASES = {
    "363x360 -> 224x224 float32 bilinear": ((363, 360), PreprocessSpec(size=(224, 224), mean=MEAN, std=STD)),
    "182x180 -> 128x128 int8 bilinear": (
        (182, 180),
        PreprocessSpec(size=(128, 128), mean=MEAN, std=STD, output="int8", scale=0.0185, zero_point=-3),
    ),
    "182x180 -> 128x128 int8 area": (
        (182, 180),
        PreprocessSpec(size=(128, 128), interpolation="area", mean=MEAN, std=STD, output="int8", scale=0.0185, zero_point=-3),
    ),
    "1080x1920 -> 224x224 float32 bilinear": ((1080, 1920), PreprocessSpec(size=(224, 224), mean=MEAN, std=STD)),
    "1080x1920 -> 224x224 float32 area": ((1080, 1920), PreprocessSpec(size=(224, 224), interpolation="area", mean=MEAN, std=STD)),
}
OUTPUT_KIND = {"float32": 0, "int8": 1, "uint8": 2}
TARGET_BYTES = 4096  # more than sizeof(bcc_target): ctypes need not mirror its fields


class Axis(ctypes.Structure):
    _fields_ = [
        ("start", ctypes.c_void_p),
        ("count", ctypes.c_void_p),
        ("weight", ctypes.c_void_p),
        ("in_size", ctypes.c_int32),
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
    sources = [str(p) for p in sorted((ROOT / "csrc").glob("*.c"))]
    subprocess.run(["cc", "-shared", "-fPIC", *flags, f"-I{ROOT / 'csrc'}", *sources, "-o", str(name)], check=True)
    lib = ctypes.CDLL(str(name))
    p = ctypes.c_void_p
    for fn, restype, argtypes in [
        ("bcc_plan_size", ctypes.c_size_t, [ctypes.POINTER(Axis), ctypes.POINTER(Axis), ctypes.c_int32]),
        ("bcc_plan_init", p, [p, ctypes.POINTER(Axis), ctypes.POINTER(Axis), ctypes.c_int32]),
        ("bcc_scratch_size", ctypes.c_size_t, [p]),
        ("bcc_target_init", ctypes.c_int, [p, ctypes.c_int, p, p, p]),
        ("bcc_preprocess", ctypes.c_int, [ctypes.POINTER(Image), p, p, p, p]),
        ("bcc_simd_count", ctypes.c_int, []),
        ("bcc_simd_name", ctypes.c_char_p, [ctypes.c_int]),
        ("bcc_simd_select", ctypes.c_int, [ctypes.c_char_p]),
    ]:
        getattr(lib, fn).restype, getattr(lib, fn).argtypes = restype, argtypes
    return lib


def simd_levels(lib: ctypes.CDLL) -> list[str]:
    return [lib.bcc_simd_name(i).decode() for i in range(lib.bcc_simd_count())]


def prepare(shape, spec):
    """call(lib) -> output, the reference output, and the arrays the raw pointers point into."""
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    tables = axis_tables(spec.size, spec.interpolation, *shape)
    axes = [Axis(t.start.ctypes.data, t.count.ctypes.data, t.weight.ctypes.data, n, *t.weight.shape) for t, n in zip(tables, shape)]
    im = Image(image.ctypes.data, *shape, 3, 1, image.strides[0], 3, 1)
    m, r = channel_affine(spec)
    table = None if spec.output == "float32" else np.ascontiguousarray(output_table(spec))
    out = np.empty((*spec.size, 3), spec.dtype)
    keep = (image, tables, m, r, table)
    built = {}

    def call(lib):
        if lib not in built:  # a plan, target and scratch per library: their layouts are its own
            plan = ctypes.create_string_buffer(lib.bcc_plan_size(axes[0], axes[1], 3))
            handle = lib.bcc_plan_init(plan, axes[0], axes[1], 3)
            target = ctypes.create_string_buffer(TARGET_BYTES)
            assert lib.bcc_target_init(target, OUTPUT_KIND[spec.output], m.ctypes.data, r.ctypes.data, None if table is None else table.ctypes.data) == 0
            built[lib] = (plan, handle, target, ctypes.create_string_buffer(lib.bcc_scratch_size(handle)))
        _, handle, target, scratch = built[lib]
        assert lib.bcc_preprocess(ctypes.byref(im), handle, target, scratch, out.ctypes.data) == 0
        return out

    return call, reference_apply(spec, image), keep


def compare_flags(rounds: int = 7, repeats: int = 30) -> dict[str, dict[str, float | str]]:
    """{flag set (and instruction set): {case: microseconds or why not timed}}."""
    with tempfile.TemporaryDirectory() as tmp:
        libs = {label: build(flags, Path(tmp)) for label, flags in FLAG_SETS.items()}
        variants = {f"{label}, {simd_levels(lib)[0]}": (lib, simd_levels(lib)[0]) for label, lib in libs.items()}
        variants |= {f"{RELEASE}, {level}": (libs[RELEASE], level) for level in simd_levels(libs[RELEASE])[1:]}
        results: dict[str, dict[str, float | str]] = {label: {} for label in variants}
        for case, (shape, spec) in CASES.items():
            call, expected, _keep = prepare(shape, spec)
            timed = {}
            for label, (lib, level) in variants.items():
                lib.bcc_simd_select(level.encode())
                if call(lib).tobytes() != expected.tobytes():
                    results[label][case] = "differs from the reference"
                else:
                    timed[label] = float("inf")
            for _ in range(rounds):
                for label in timed:
                    lib, level = variants[label]
                    lib.bcc_simd_select(level.encode())
                    start = time.thread_time()
                    for _ in range(repeats):
                        call(lib)
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
                print(f"    {case:<42} {value if isinstance(value, str) else f'{value:8.1f} us'}")
        return
    result = bench_preprocess(batch=args.batch, threads=args.threads, log=None if args.json else lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2) if args.json else format_report(result))


if __name__ == "__main__":
    main()
