/* Fused resize + normalise (+ quantise): see bcc_preprocess.h and bcc_edge/preprocess.py.
 *
 * One output row at a time:
 * 1. vertical pass: blend the source rows into a float32 row `tmp` (a contiguous loop over
 *    width x channels, which the compiler vectorises);
 * 2. horizontal pass, per output pixel: blend 4-float vectors of `tmp` (the pixel's channels,
 *    plus one spare lane) with per-pixel weights, round to grey levels and look the outputs
 *    up in the per-channel table. The fixed 4-lane shape lets the compiler keep a pixel in
 *    one SIMD register (SSE2 or NEON) without intrinsics.
 * Every sum is `acc = w0 * x0; acc += wk * xk` in tap order, as in the numpy reference; a
 * zero-weight padding tap adds +0.0, which changes nothing.
 */
#include "bcc_preprocess.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "float arithmetic must be evaluated in float (SSE or NEON, not x87) for bit-exact results"
#endif

/* 1.5 * 2^23: adding and subtracting it rounds any |v| < 2^22 to an integer, half to even
 * under the default rounding mode, with two vectorisable adds (no libm call). */
#define BCC_ROUND_MAGIC 12582912.0f

/* Lookup tables are extended from 256 to 512 entries per channel (entries 256.. repeat entry
 * 255), so grey levels need no clamp: validated weights keep every sum in [0, 400]. */
#define BCC_LOOKUP_SIZE 512
#define BCC_MAX_LEVEL 400.0

typedef struct {
    float v[4];
} bcc_f4;

typedef struct {
    int32_t v[4];
} bcc_i4;

static int check_axis(const bcc_axis *axis, int32_t in_size, double *max_sum)
{
    if (!axis || !axis->start || !axis->count || !axis->weight || axis->out_size <= 0 || axis->taps <= 0 || in_size <= 0)
        return BCC_ERR_ARGS;
    double largest = 0.0;
    for (int32_t i = 0; i < axis->out_size; i++) {
        const int32_t s = axis->start[i], n = axis->count[i];
        if (n < 1 || n > axis->taps || s < 0 || s > in_size - n)
            return BCC_ERR_ARGS;
        double sum = 0.0;
        for (int32_t k = 0; k < n; k++) {
            const float w = axis->weight[(ptrdiff_t)i * axis->taps + k];
            if (!(w >= 0.0f && w <= 1.0f)) /* also rejects NaN */
                return BCC_ERR_ARGS;
            sum += w;
        }
        largest = sum > largest ? sum : largest;
    }
    *max_sum = largest;
    return BCC_OK;
}

/* tmp[x * lanes + c] = sum_k w[k] * image[start + k][x][c] for the `lanes` leading channels.
 * `flat`: pixels are packed (col_stride == channels, channel_stride == 1), so a row is one
 * run of width * channels samples and lanes == channels. */
#define BCC_DEFINE_VERTICAL(NAME, T)                                                              \
    static void NAME(const bcc_image *im, const bcc_axis *rows, int32_t y, int flat, int32_t lanes, \
                     float *restrict tmp)                                                         \
    {                                                                                             \
        const T *r0 = (const T *)im->pixels + rows->start[y] * im->row_stride;                   \
        const int32_t n = rows->count[y];                                                         \
        const float *w = rows->weight + (ptrdiff_t)y * rows->taps;                                \
        if (flat) {                                                                               \
            const ptrdiff_t len = (ptrdiff_t)im->width * lanes;                                   \
            const float w0 = w[0];                                                                \
            if (n >= 2) {                                                                         \
                const T *r1 = r0 + im->row_stride;                                                \
                const float w1 = w[1];                                                            \
                for (ptrdiff_t i = 0; i < len; i++)                                               \
                    tmp[i] = w0 * (float)r0[i] + w1 * (float)r1[i];                               \
            } else {                                                                              \
                for (ptrdiff_t i = 0; i < len; i++)                                               \
                    tmp[i] = w0 * (float)r0[i];                                                   \
            }                                                                                     \
            for (int32_t k = 2; k < n; k++) {                                                     \
                const T *r = r0 + k * im->row_stride;                                             \
                const float wk = w[k];                                                            \
                for (ptrdiff_t i = 0; i < len; i++)                                               \
                    tmp[i] += wk * (float)r[i];                                                   \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        for (int32_t k = 0; k < n; k++) {                                                         \
            const T *r = r0 + k * im->row_stride;                                                 \
            const float wk = w[k];                                                                \
            for (int32_t x = 0; x < im->width; x++) {                                             \
                const T *px = r + x * im->col_stride;                                             \
                for (int32_t c = 0; c < lanes; c++) {                                             \
                    const float v = wk * (float)px[c * im->channel_stride];                       \
                    tmp[x * lanes + c] = k ? tmp[x * lanes + c] + v : v;                          \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }

BCC_DEFINE_VERTICAL(vertical_u8, uint8_t)
BCC_DEFINE_VERTICAL(vertical_u16, uint16_t)

static inline int32_t grey_level(float v)
{
    /* The mask cannot change a valid level (< 512); it keeps any index inside the table. */
    return (int32_t)((v + BCC_ROUND_MAGIC) - BCC_ROUND_MAGIC) & (BCC_LOOKUP_SIZE - 1);
}

/* Horizontal pass: level[4x + c] = grey level of sum_k weight[k][x] * tmp[offset[k][x] + c].
 * Each tap reads 4 floats (the pixel's channels and a spare lane) with its weight replicated
 * in 4 lanes, so a pixel is one SIMD register. The two-tap case (bilinear) has its own loop. */
static void blend_row(const float *restrict tmp, const int32_t *restrict offset, const float *restrict weight,
                      int32_t taps, int32_t width, int32_t *restrict level)
{
    for (int32_t x = 0; x < width; x++) {
        bcc_f4 a, b;
        bcc_i4 g;
        const float *w = weight + 4 * (ptrdiff_t)x;
        memcpy(&a, tmp + offset[x], sizeof a);
        for (int c = 0; c < 4; c++)
            a.v[c] = w[c] * a.v[c];
        if (taps == 2) {
            const float *w1 = w + 4 * (ptrdiff_t)width;
            memcpy(&b, tmp + offset[width + x], sizeof b);
            for (int c = 0; c < 4; c++)
                a.v[c] += w1[c] * b.v[c];
        } else {
            for (int32_t k = 1; k < taps; k++) {
                const float *wk = w + 4 * (ptrdiff_t)k * width;
                memcpy(&b, tmp + offset[(ptrdiff_t)k * width + x], sizeof b);
                for (int c = 0; c < 4; c++)
                    a.v[c] += wk[c] * b.v[c];
            }
        }
        for (int c = 0; c < 4; c++)
            g.v[c] = grey_level(a.v[c]);
        memcpy(level + 4 * (ptrdiff_t)x, &g, sizeof g);
    }
}

/* out[x][c] = table[c][level[4x + c]]; grey input (colour == 0) has its level in lane 0. */
#define BCC_DEFINE_LOOKUP(NAME, OUT_T)                                                            \
    static void NAME(const int32_t *restrict level, int colour, int32_t width,                   \
                     const OUT_T *restrict table, OUT_T *restrict out)                            \
    {                                                                                             \
        const OUT_T *t0 = table, *t1 = table + BCC_LOOKUP_SIZE, *t2 = table + 2 * BCC_LOOKUP_SIZE; \
        const int d = colour ? 1 : 0;                                                             \
        for (int32_t x = 0; x < width; x++) {                                                     \
            const int32_t *g = level + 4 * (ptrdiff_t)x;                                          \
            out[3 * x] = t0[g[0]];                                                                \
            out[3 * x + 1] = t1[g[d]];                                                            \
            out[3 * x + 2] = t2[g[2 * d]];                                                        \
        }                                                                                         \
    }

BCC_DEFINE_LOOKUP(lookup_f32, float)
BCC_DEFINE_LOOKUP(lookup_i8, int8_t)
BCC_DEFINE_LOOKUP(lookup_u8, uint8_t)

int bcc_preprocess(const bcc_image *image, const bcc_axis *rows, const bcc_axis *cols,
                   bcc_output kind, const void *table, void *out)
{
    if (!image || !image->pixels || !rows || !cols || !table || !out)
        return BCC_ERR_ARGS;
    const int32_t ch = image->channels;
    if ((ch != 1 && ch != 3 && ch != 4) || (image->bytes_per_sample != 1 && image->bytes_per_sample != 2) ||
        (kind != BCC_OUT_FLOAT32 && kind != BCC_OUT_INT8 && kind != BCC_OUT_UINT8))
        return BCC_ERR_ARGS;
    double row_sum, col_sum;
    if (check_axis(rows, image->height, &row_sum) != BCC_OK || check_axis(cols, image->width, &col_sum) != BCC_OK)
        return BCC_ERR_ARGS;
    /* Largest possible blended value, with room for float rounding: must stay below 511.5. */
    const double max_sample = image->bytes_per_sample == 1 ? 255.0 : 65535.0;
    if (max_sample * row_sum * col_sum > BCC_MAX_LEVEL)
        return BCC_ERR_ARGS;

    const int colour = ch != 1;
    const int flat = image->channel_stride == 1 && image->col_stride == ch;
    const int32_t lanes = flat ? ch : (colour ? 3 : 1);
    const int32_t ow = cols->out_size, taps = cols->taps;
    const size_t tmp_len = (size_t)image->width * (size_t)lanes + 4; /* +4: the last pixel's 4-float load */
    const size_t table_bytes = 3 * BCC_LOOKUP_SIZE * (kind == BCC_OUT_FLOAT32 ? sizeof(float) : 1);
    float *tmp = (float *)malloc(sizeof(float) * (tmp_len + 4 * (size_t)taps * ow) + sizeof(int32_t) * (size_t)(taps + 4) * ow + table_bytes);
    if (!tmp)
        return BCC_ERR_NOMEM;
    float *weight = tmp + tmp_len;
    int32_t *offset = (int32_t *)(weight + 4 * (size_t)taps * ow);
    int32_t *level = offset + (size_t)taps * ow;
    unsigned char *xtable = (unsigned char *)(level + 4 * (size_t)ow);

    memset(tmp + tmp_len - 4, 0, 4 * sizeof(float));
    for (int32_t k = 0; k < taps; k++) {
        for (int32_t x = 0; x < ow; x++) {
            const int used = k < cols->count[x];
            const float w = used ? cols->weight[(ptrdiff_t)x * taps + k] : 0.0f;
            /* A padding tap (weight 0) reads the pixel's first tap: any finite value will do. */
            offset[(ptrdiff_t)k * ow + x] = (cols->start[x] + (used ? k : 0)) * lanes;
            for (int c = 0; c < 4; c++)
                weight[4 * ((ptrdiff_t)k * ow + x) + c] = w;
        }
    }
    {
        const size_t size = table_bytes / (3 * BCC_LOOKUP_SIZE);
        const unsigned char *src = (const unsigned char *)table;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < BCC_LOOKUP_SIZE; i++)
                memcpy(xtable + (c * BCC_LOOKUP_SIZE + i) * size, src + (c * 256 + (i < 256 ? i : 255)) * size, size);
    }

    const ptrdiff_t row_values = 3 * (ptrdiff_t)ow;
    for (int32_t y = 0; y < rows->out_size; y++) {
        if (image->bytes_per_sample == 1)
            vertical_u8(image, rows, y, flat, lanes, tmp);
        else
            vertical_u16(image, rows, y, flat, lanes, tmp);
        blend_row(tmp, offset, weight, taps, ow, level);
        switch (kind) {
        case BCC_OUT_FLOAT32:
            lookup_f32(level, colour, ow, (const float *)xtable, (float *)out + y * row_values);
            break;
        case BCC_OUT_INT8:
            lookup_i8(level, colour, ow, (const int8_t *)xtable, (int8_t *)out + y * row_values);
            break;
        case BCC_OUT_UINT8:
            lookup_u8(level, colour, ow, (const uint8_t *)xtable, (uint8_t *)out + y * row_values);
            break;
        }
    }
    free(tmp);
    return BCC_OK;
}
