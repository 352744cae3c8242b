"""Release compiler/linker flags for bcc_edge._kernels (GCC and Clang).

Imported by setup.py and by the aarch64 cross-compile script, so both builds use the same
flags. Rules:
- -ffp-contract=off: no fused multiply-add contraction. The kernel's arithmetic is integer but
  for the float32 output's (p - m) * r; GCC contracts float expressions by default wherever
  the target has FMA (every aarch64 CPU), so the flag keeps any float expression here equal
  to numpy's and to x86-64 results.
- Never -ffast-math: it licenses rewriting (p - m) * r as p * r - m * r. GCC 12 happens not to
  (measured: same bytes, same speed), which is luck, not a guarantee.
- Never -march=native: wheels must run on every CPU of their architecture. The AVX2 kernels
  are compiled with a target attribute and chosen at run time (csrc/bcc_x86.c); SSE2 and
  NEON are the x86-64 and aarch64 baselines.

Measured with `python benchmarks/bench_preprocess.py --flags` (csrc/*.c through ctypes, one
thread, thread CPU time, best of 7 rounds; GCC 12.2, AMD EPYC under KVM, 2 cores, training
paused, other jobs running), microseconds per image; float32 outputs are 224x224 from
363x360 (PBC) or 1080x1920, int8 128x128 from 182x180 (a DCT-downscaled PBC decode):
                               f32 363x360  int8 bilinear  int8 area  f32 1080p bilinear  f32 1080p area
    -O2, AVX2                        52           19           27              56               459
    -O3, AVX2                        34           13           18              51               264
    -O3 -funroll-loops, AVX2         34           13           17              51               241
    release, AVX2                    34           13           18              51               259
    release, SSE2 (no AVX2)         119           42           51             134               693
    release, scalar C               537          148          193             721              3918
-O3 over -O2 is worth 30% (inlining and unrolling of the intrinsic kernels); -funroll-loops
is within noise but for the 1080p area case (7%, one measurement), so it is left out.
-g0: the debug information that Python's default CFLAGS ask for would triple the size of the
wheel's shared object.
"""

COMPILE_ARGS = ["-O3", "-ffp-contract=off", "-g0"]
LINK_ARGS: list[str] = ["-g0"]

# Added by setup.py when a test program builds and links with them; without OpenMP the
# kernel still works, batches just run on one thread.
OPENMP_COMPILE_ARGS = ["-fopenmp"]
OPENMP_LINK_ARGS = ["-fopenmp"]
