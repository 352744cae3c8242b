/* Internal to csrc/: the plan's layout and the row kernels that bcc_preprocess.c drives, one
 * set per instruction set.
 *
 * Every set computes the same integers (see bcc_preprocess.h), so the bytes never depend on
 * the set; the scalar set in bcc_preprocess.c is the plain-C statement of each kernel.
 */
#ifndef BCC_KERNELS_H
#define BCC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "bcc_preprocess.h"

/* Elements src .. src+len-1 of a source row (lanes per column) go to t[dst .. dst+len-1]:
 * only the columns that horizontal taps read are resampled vertically, packed one run after
 * another (a 1920-wide frame resized to 224 bilinearly needs 448 of its 1920 columns). */
typedef struct {
    int32_t src, dst, len;
} bcc_run;

/* The same runs as the SIMD vertical pass takes them: runs of at least 2 * BCC_CHUNK elements
 * in whole register steps (the last step overlapping the one before instead of reading past
 * the run), shorter runs as chunks of BCC_CHUNK elements (one 128-bit register of int16; a
 * run between 8 and 16 long is two overlapping chunks, one shorter than 8 was grown to 8). */
#define BCC_CHUNK 8
typedef struct {
    int32_t src, dst;
} bcc_chunk;

typedef struct {
    const bcc_run *wide;
    int32_t nwide;
    const bcc_chunk *chunks;
    int32_t nchunks;
} bcc_columns;

/* Horizontal outputs are computed in groups of 8; the plan pads the output width to a whole
 * group with outputs of weight 0 that read where the last real one reads. */
#define BCC_PIXEL_GROUP 8

struct bcc_plan {
    int32_t in_h, in_w, out_h, out_w, channels;
    bcc_axis rows; /* checked copy; taps even, the weights past a row's count 0 */
    const bcc_run *runs;
    int32_t nruns, t_len;
    bcc_columns columns;
    int packed_ok; /* rows at least a chunk long: the SIMD vertical pass applies */
    /* Horizontal: output x's first tap is t[offset[x]]; the weights of its taps 2j and 2j+1 are
     * pair_weight[(j * padded_width + x) * 8 + e] = (W[2j], W[2j+1], W[2j], W[2j+1], W[2j], W[2j+1], 0, 0)[e]
     * (a tap past the output's count has weight 0): pmaddwd's layout for 3 channels. */
    const int32_t *offset;
    const int16_t *pair_weight;
    int32_t pairs, padded_width;
    /* Fused rows, for the sets that have them: RGB with at most 2 taps per output on each axis,
     * and outputs sparse enough that blending 8 source samples per output beats blending every
     * column once. Output x reads the 8 samples at fused_src[x] (its 3 or 6, kept inside the
     * row), paired for pmaddwd by the pshufb mask fused_mask[16 x ..] (a missing second tap
     * reads 0). NULL when not fused. */
    const int32_t *fused_src;
    const uint8_t *fused_mask;
};

typedef struct {
    const char *name;
    int (*available)(void);
    /* t[dst + i] = (sum_{k < n} w[k] * src[k * stride + src + i] + 64) >> 7 over every wide run and
     * chunk of `columns`: uint8 rows, Q14 weights summing to 16384, w[n] readable (0 if n is odd). */
    void (*vertical)(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n, const bcc_columns *columns,
                     int16_t *t);
    /* RGB: level[3x + c] = (sum_{k < 2 * pairs} W[x][k] * t[offset[x] + 3k + c] + 2^20) >> 21 for
     * x < out_w. Reads t up to 6 * pairs + 8 elements past an offset. */
    void (*horizontal)(const int16_t *t, const bcc_plan *plan, uint8_t *level);
    /* Both passes of one row at once where plan->fused_src is set (NULL: not in this set): the
     * vertical blend of two rows as `vertical` with w = (W0, W1), passed as base = the row of the
     * larger weight, other = the other row and k = 2 * its weight (one row: other = base, k = 0),
     * then `horizontal`. */
    void (*fused)(const uint8_t *base, const uint8_t *other, int16_t k, const bcc_plan *plan, uint8_t *level);
    /* out[i] = (float)((float)level[i] - mean[i % 3]) * inv_std[i % 3], float arithmetic (n % 3 == 0). */
    void (*to_float)(const uint8_t *level, int32_t n, const bcc_target *target, float *out);
    /* out[i] = target->table[(i % 3) * 256 + level[i]] (int8 / uint8; n % 3 == 0). */
    void (*to_bytes)(const uint8_t *level, int32_t n, const bcc_target *target, uint8_t *out);
} bcc_simd;

/* Scalar kernels: the reference each instruction set reproduces, and the tails they leave. */
void bcc_vertical_scalar(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n, const bcc_columns *columns,
                         int16_t *t);
void bcc_horizontal_scalar(const int16_t *t, const bcc_plan *plan, uint8_t *level);
void bcc_to_float_scalar(const uint8_t *level, int32_t n, const bcc_target *target, float *out);
void bcc_to_bytes_scalar(const uint8_t *level, int32_t n, const bcc_target *target, uint8_t *out);

extern const bcc_simd bcc_simd_avx2, bcc_simd_sse2, bcc_simd_neon;

#endif
