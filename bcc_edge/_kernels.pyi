"""Type stubs for the C extension built from csrc/_kernels.pyx (private to bcc_edge.preprocess)."""

from typing import Protocol, Sequence

import numpy as np

OUTPUT_KINDS: dict[str, int]
OPENMP: bool  # False when built without OpenMP: batches then run on one thread

class _AxisTable(Protocol):
    start: np.ndarray  # int32 (out,)
    count: np.ndarray  # int32 (out,)
    weight: np.ndarray  # int16 (out, taps), Q14: each row sums to 16384

class Plan:
    """Both weight tables in the kernel's layout, for in_h x in_w images with `channels` channels;
    ValueError when a table is invalid."""

    in_h: int
    in_w: int
    out_h: int
    out_w: int
    channels: int
    def __init__(self, rows: _AxisTable, cols: _AxisTable, in_h: int, in_w: int, channels: int) -> None: ...

class Target:
    """The output dtype and what each grey level becomes (float32: mean and 1/std per channel;
    int8/uint8: a C-contiguous (3, 256) table of that dtype)."""

    output: str
    linear: bool  # the int8/uint8 table has the exact linear form SIMD computes without lookups
    def __init__(self, output: str, mean: Sequence[float], inv_std: Sequence[float], table: np.ndarray | None = None) -> None: ...

def preprocess_batch(jobs: list[tuple[np.ndarray, Plan]], out: np.ndarray, target: Target, threads: int) -> None:
    """Fill `out` (C-contiguous (N, h, w, 3) of the target's dtype) from `jobs`: (HxWxC uint8/uint16
    image, its Plan) each, up to `threads` images at a time without the GIL. Raises ValueError on
    any inconsistent argument and MemoryError when scratch memory cannot be allocated."""

def simd_levels() -> list[str]:
    """The instruction sets the kernel can use on this CPU, best first (the last is "scalar")."""

def simd() -> str:
    """The instruction set the kernel uses now."""

def use_simd(name: str) -> None:
    """Run the kernel with `name` (one of simd_levels()); for tests that compare every path."""
