"""Type stubs for the C extension built from csrc/_kernels.pyx (private to bcc_edge.preprocess)."""

from typing import Protocol

import numpy as np

OUTPUT_KINDS: dict[str, int]
OPENMP: bool  # False when built without OpenMP: batches then run on one thread

class _AxisTable(Protocol):
    start: np.ndarray  # int32 (out,)
    count: np.ndarray  # int32 (out,)
    weight: np.ndarray  # float32 (out, taps)

def preprocess_batch(
    jobs: list[tuple[np.ndarray, _AxisTable, _AxisTable]],
    out: np.ndarray,
    table: np.ndarray,
    output: str,
    threads: int,
) -> None:
    """Fill `out` (C-contiguous (N, h, w, 3) of dtype `output`) from `jobs`: (HxWxC uint8/uint16
    image, vertical table, horizontal table) each, using `table` ((3, 256) of dtype `output`),
    `threads` images at a time without the GIL. Raises ValueError on any inconsistent argument
    and MemoryError when scratch memory cannot be allocated."""
