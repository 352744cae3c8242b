"""Release compiler/linker flags for bcc_edge._kernels (GCC and Clang).

Imported by setup.py and by the aarch64 cross-compile script, so both builds use the same
flags. Rules:
- -ffp-contract=off: no fused multiply-add contraction. GCC contracts by default wherever the
  target has FMA (every aarch64 CPU), which changes float32 sums: results would no longer
  equal the numpy reference bit for bit, nor x86-64 results.
- Never -ffast-math: it reorders sums and breaks the magic-number rounding (measured: every
  case then differs from the reference). Never -march=native: wheels must run on every CPU of
  their architecture; the code is written to auto-vectorise at the baseline (SSE2 / NEON).

Measured with `python benchmarks/bench_preprocess.py --flags` (csrc/bcc_preprocess.c through
ctypes, one thread, thread CPU time, best of 7 rounds; GCC 12.2, x86-64 baseline, AMD EPYC
under KVM, other jobs running), microseconds per image:
                          363x360->224 f32  363x360->224 int8  1080x1920->224 f32 area
    -O2                         252               244                2703
    -O2 -ftree-vectorize        148               147                1185
    -O3                         140               136                1116
    -O3 -funroll-loops          137               134                1087
    -O3 -ffast-math         differs from the reference (all three)
Vectorisation is what matters (-O2 alone leaves the row loops scalar: 1.8x slower);
-funroll-loops is within noise (2-3%), so it is left out. -g0: the debug information that
Python's default CFLAGS ask for would triple the size of the wheel's shared object.
"""

COMPILE_ARGS = ["-O3", "-ffp-contract=off", "-g0"]
LINK_ARGS: list[str] = ["-g0"]

# Added by setup.py when a test program builds and links with them; without OpenMP the
# kernel still works, batches just run on one thread.
OPENMP_COMPILE_ARGS = ["-fopenmp"]
OPENMP_LINK_ARGS = ["-fopenmp"]
