/* Fused resize + normalise (+ quantise) of one image into a model input ("preprocessing v2").
 *
 * Plain C99 with no dependencies (SIMD through compiler intrinsics), so it builds for x86-64
 * and aarch64 alike and can be called from anything. The maths is defined in
 * bcc_edge/preprocess.py (module docstring): integer weights and integer grey levels, so every
 * code path (scalar, SSE2, AVX2, NEON) writes the same bytes; the float32 output is one float
 * subtraction and one float multiplication per value (compile with -ffp-contract=off).
 * The caller supplies the weight tables and the output parameters: this file holds no policy.
 */
#ifndef BCC_PREPROCESS_H
#define BCC_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Weights of a whole resampling step (Q14): every output's weights sum to exactly this. */
#define BCC_WEIGHT_ONE 16384

/* Resampling along one axis: output i = sum_{k < count[i]} weight[i * taps + k] * in[start[i] + k],
 * weights in Q14 (non-negative, each output's first count[i] summing to BCC_WEIGHT_ONE). */
typedef struct {
    const int32_t *start;
    const int32_t *count;
    const int16_t *weight;
    int32_t in_size, out_size, taps;
} bcc_axis;

/* A strided HxWxC image of uint8 or uint16 samples (strides in samples; may be negative). */
typedef struct {
    const void *pixels; /* sample (row 0, column 0, channel 0) */
    int32_t height, width;
    int32_t channels;         /* 1 (grey, replicated), 3 (RGB) or 4 (RGBA, alpha ignored) */
    int32_t bytes_per_sample; /* 1 or 2 */
    ptrdiff_t row_stride, col_stride, channel_stride;
} bcc_image;

typedef enum { BCC_OUT_FLOAT32 = 0, BCC_OUT_INT8 = 1, BCC_OUT_UINT8 = 2 } bcc_output;

/* What each grey level p (0..255) of channel c becomes; filled by bcc_target_init.
 * float32: (float)((float)(p - mean) * inv_std), float arithmetic;
 * int8 / uint8: table[c * 256 + p] (the bytes of the output type). */
typedef struct {
    bcc_output kind;
    const uint8_t *table; /* 3 x 256, read in place; int8 and uint8 only */
    /* Derived: whether the table is the identity (uint8), and whether it equals
     * saturate((p * slope + intercept) >> shift) for every p, which SIMD computes without a
     * lookup. Per-channel values repeat over 24 entries (3 channels x 8 SIMD lanes). */
    int identity, linear;
    int32_t shift;
    float mean[24], inv_std[24];
    int32_t slope[24], intercept[24];
} bcc_target;

enum { BCC_OK = 0, BCC_ERR_ARGS = 1 };

/* Fills *target; BCC_ERR_ARGS for an unknown kind or a missing table. Searches the linear
 * form (about a millisecond): once per target, not per image. */
int bcc_target_init(bcc_target *target, bcc_output kind, const float mean[3], const float inv_std[3],
                    const uint8_t *table);

/* BCC_OK when `axis` resamples in_size samples to out_size: indices inside the input, counts
 * within taps, weights non-negative and summing to BCC_WEIGHT_ONE per output. */
int bcc_axis_check(const bcc_axis *axis);

/* Everything about a resize that does not depend on the pixels: checked copies of both axes,
 * and which source columns the vertical pass needs, where the horizontal taps find them, and
 * the horizontal weights in SIMD layout. Built once per geometry, read-only afterwards (share
 * it between threads and calls). */
typedef struct bcc_plan bcc_plan;

/* Bytes bcc_plan_init needs for images of `channels` channels (0: an axis fails bcc_axis_check,
 * or channels is not 1, 3 or 4). */
size_t bcc_plan_size(const bcc_axis *rows, const bcc_axis *cols, int32_t channels);

/* Builds the plan in `memory` (bcc_plan_size bytes, any alignment) and returns it; NULL when
 * bcc_plan_size would return 0. The axes' arrays are copied: the caller may free them. */
const bcc_plan *bcc_plan_init(void *memory, const bcc_axis *rows, const bcc_axis *cols, int32_t channels);

/* Bytes of scratch memory bcc_preprocess needs with this plan (any alignment will do). */
size_t bcc_scratch_size(const bcc_plan *plan);

/* Writes out_h x out_w x 3 values of target->kind to `out` (C-contiguous), using `scratch`
 * (bcc_scratch_size bytes, not shared with a concurrent call). Returns BCC_ERR_ARGS (and
 * writes nothing) when the image does not match the plan (size, channels) or an argument is
 * invalid; otherwise BCC_OK. Thread-safe; allocates nothing. */
int bcc_preprocess(const bcc_image *image, const bcc_plan *plan, const bcc_target *target, void *scratch, void *out);

/* The instruction sets this build can use on this CPU, best first ("avx2", "sse2", "neon",
 * "scalar": always last), and the one bcc_preprocess uses (the best, unless changed). */
int bcc_simd_count(void);
const char *bcc_simd_name(int index);
const char *bcc_simd_current(void);
/* Makes bcc_preprocess use the named instruction set (tests compare every path); not
 * thread-safe against running calls. Returns BCC_ERR_ARGS for a name this CPU lacks. */
int bcc_simd_select(const char *name);

#ifdef __cplusplus
}
#endif

#endif
