/* Fused resize + normalise (+ quantise): see bcc_preprocess.h and bcc_edge/preprocess.py.
 *
 * One output row at a time, after the plan (bcc_plan.c) has fixed every table:
 * 1. vertical pass: the source rows of that output row, blended into Q7 grey levels `t` (int16),
 *    only for the source columns some horizontal tap reads;
 * 2. horizontal pass: blend `t` into grey levels 0..255 (`level`, 3 per pixel);
 * 3. output: float32 from the formula, int8/uint8 from the table (uint8 identity: step 2 writes
 *    straight into the output).
 * Packed uint8 images go through the SIMD kernels (bcc_kernels.h); uint16 and other layouts
 * (strided views, negative strides) take the generic scalar vertical pass, then the same rest.
 * Where outputs are sparse (bilinear downscales by 2 or more, as a camera frame to 224), AVX2
 * does steps 1 and 2 together per output, reading only the bytes its taps need.
 */
#include "bcc_preprocess.h"

#include <float.h>
#include <string.h>

#include "bcc_kernels.h"

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "float arithmetic must be evaluated in float (SSE or NEON, not x87) for bit-exact results"
#endif

#define BCC_UINT16_DIVISOR 32896 /* 257 * 128: uint16 sample -> Q7 grey level */

/* ------------------------------------------------------------------------- scalar kernels */

/* `len` elements from src[at] on to t[to] on. */
static void vertical_piece(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n, int32_t at, int32_t to,
                           int32_t len, int16_t *t)
{
    for (int32_t i = 0; i < len; i++) {
        int32_t acc = 64;
        for (int32_t k = 0; k < n; k++)
            acc += w[k] * src[k * stride + at + i];
        t[to + i] = (int16_t)(acc >> 7);
    }
}

void bcc_vertical_scalar(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n, const bcc_columns *columns,
                         int16_t *t)
{
    for (int32_t r = 0; r < columns->nwide; r++)
        vertical_piece(src, stride, w, n, columns->wide[r].src, columns->wide[r].dst, columns->wide[r].len, t);
    for (int32_t c = 0; c < columns->nchunks; c++)
        vertical_piece(src, stride, w, n, columns->chunks[c].src, columns->chunks[c].dst, BCC_CHUNK, t);
}

/* Any number of lanes (1: grey, replicated; 3: RGB; 4: RGBA, alpha skipped): 3 levels per pixel. */
static void horizontal_lanes(const int16_t *t, const bcc_plan *plan, int32_t lanes, uint8_t *level)
{
    for (int32_t x = 0; x < plan->out_w; x++) {
        int32_t acc[3] = {1 << 20, 1 << 20, 1 << 20};
        for (int32_t k = 0; k < 2 * plan->pairs; k++) {
            const int32_t wk = plan->pair_weight[((ptrdiff_t)(k / 2) * plan->padded_width + x) * 8 + (k & 1)];
            const int16_t *px = t + plan->offset[x] + k * lanes;
            for (int c = 0; c < 3; c++)
                acc[c] += wk * px[lanes == 1 ? 0 : c];
        }
        for (int c = 0; c < 3; c++)
            level[3 * x + c] = (uint8_t)(acc[c] >> 21);
    }
}

void bcc_horizontal_scalar(const int16_t *t, const bcc_plan *plan, uint8_t *level)
{
    horizontal_lanes(t, plan, 3, level);
}

void bcc_to_float_scalar(const uint8_t *level, int32_t n, const bcc_target *target, float *out)
{
    for (int32_t i = 0; i < n; i++)
        out[i] = ((float)level[i] - target->mean[i % 3]) * target->inv_std[i % 3];
}

void bcc_to_bytes_scalar(const uint8_t *level, int32_t n, const bcc_target *target, uint8_t *out)
{
    const uint8_t *table = target->table;
    for (int32_t i = 0; i < n; i += 3) {
        out[i] = table[level[i]];
        out[i + 1] = table[256 + level[i + 1]];
        out[i + 2] = table[512 + level[i + 2]];
    }
}

static int always(void)
{
    return 1;
}

static const bcc_simd simd_scalar = {"scalar", always, bcc_vertical_scalar, bcc_horizontal_scalar, NULL,
                                     bcc_to_float_scalar, bcc_to_bytes_scalar};

/* Best first; those this CPU lacks are skipped at run time. */
static const bcc_simd *const simd_sets[] = {
#if defined(__x86_64__) || defined(_M_X64)
    &bcc_simd_avx2,
    &bcc_simd_sse2,
#endif
#if defined(__aarch64__)
    &bcc_simd_neon,
#endif
    &simd_scalar,
};
#define BCC_SIMD_SETS ((int)(sizeof simd_sets / sizeof simd_sets[0]))

static const bcc_simd *simd_chosen; /* NULL until the first call: the best available */

static const bcc_simd *simd_available(int index)
{
    int seen = 0;
    for (int i = 0; i < BCC_SIMD_SETS; i++)
        if (simd_sets[i]->available() && seen++ == index)
            return simd_sets[i];
    return NULL;
}

int bcc_simd_count(void)
{
    int n = 0;
    while (simd_available(n))
        n++;
    return n;
}

const char *bcc_simd_name(int index)
{
    const bcc_simd *s = simd_available(index);
    return s ? s->name : NULL;
}

static const bcc_simd *simd(void)
{
    return simd_chosen ? simd_chosen : simd_available(0);
}

const char *bcc_simd_current(void)
{
    return simd()->name;
}

int bcc_simd_select(const char *name)
{
    for (int i = 0; simd_available(i); i++)
        if (strcmp(simd_available(i)->name, name) == 0) {
            simd_chosen = simd_available(i);
            return BCC_OK;
        }
    return BCC_ERR_ARGS;
}

/* ------------------------------------------------------------------------- generic vertical */

/* Any strides, uint8 or uint16 samples: t over `runs` of elements (column * lanes + channel). */
static void vertical_strided(const bcc_image *im, const bcc_plan *plan, int32_t y, int16_t *t)
{
    const bcc_axis *rows = &plan->rows;
    const bcc_run *runs = plan->runs;
    const int32_t lanes = plan->channels;
    const int32_t n = rows->count[y];
    const int16_t *w = rows->weight + (ptrdiff_t)y * rows->taps;
    const ptrdiff_t first = (ptrdiff_t)rows->start[y] * im->row_stride;
    for (int32_t r = 0; r < plan->nruns; r++) {
        for (int32_t i = 0; i < runs[r].len; i++) {
            const int32_t e = runs[r].src + i;
            const ptrdiff_t at = first + (ptrdiff_t)(e / lanes) * im->col_stride + (ptrdiff_t)(e % lanes) * im->channel_stride;
            int32_t acc = 0;
            if (im->bytes_per_sample == 1) {
                const uint8_t *s = (const uint8_t *)im->pixels + at;
                for (int32_t k = 0; k < n; k++)
                    acc += w[k] * s[k * im->row_stride];
                t[runs[r].dst + i] = (int16_t)((acc + 64) >> 7);
            } else {
                const uint16_t *s = (const uint16_t *)im->pixels + at;
                for (int32_t k = 0; k < n; k++)
                    acc += w[k] * s[k * im->row_stride]; /* <= 16384 * 65535 < 2^31 */
                t[runs[r].dst + i] = (int16_t)((acc + BCC_UINT16_DIVISOR / 2) / BCC_UINT16_DIVISOR);
            }
        }
    }
}

/* ------------------------------------------------------------------------- the driver */

/* Elements past t's runs that horizontal taps past a pixel's count read (with weight 0):
 * up to 8 * pairs with 4 lanes, 6 * pairs + 8 for a whole register with 3. */
static size_t t_padding(const bcc_plan *plan)
{
    return 8 * (size_t)plan->pairs + 16;
}

size_t bcc_scratch_size(const bcc_plan *plan)
{
    return sizeof(int16_t) * ((size_t)plan->t_len + t_padding(plan)) + 3 * (size_t)plan->out_w + 64;
}

int bcc_preprocess(const bcc_image *image, const bcc_plan *plan, const bcc_target *target, void *scratch, void *out)
{
    if (!image || !image->pixels || !plan || !target || !scratch || !out || image->height != plan->in_h ||
        image->width != plan->in_w || image->channels != plan->channels ||
        (image->bytes_per_sample != 1 && image->bytes_per_sample != 2) ||
        (target->kind != BCC_OUT_FLOAT32 && target->kind != BCC_OUT_INT8 && target->kind != BCC_OUT_UINT8) ||
        (target->kind != BCC_OUT_FLOAT32 && !target->table) || (target->linear && (target->shift < 0 || target->shift > 30)))
        return BCC_ERR_ARGS;

    const bcc_simd *ops = simd();
    int16_t *t = (int16_t *)scratch;
    uint8_t *level = (uint8_t *)(t + plan->t_len + t_padding(plan));
    memset(t + plan->t_len, 0, sizeof(int16_t) * t_padding(plan)); /* read with weight 0 */
    const int packed = plan->packed_ok && image->bytes_per_sample == 1 && image->channel_stride == 1 &&
                       image->col_stride == image->channels;
    const int direct = target->kind == BCC_OUT_UINT8 && target->identity;
    const ptrdiff_t row_values = 3 * (ptrdiff_t)plan->out_w;
    const int fuse = packed && ops->fused && plan->fused_src;
    for (int32_t y = 0; y < plan->out_h; y++) {
        const uint8_t *src = (const uint8_t *)image->pixels + (ptrdiff_t)plan->rows.start[y] * image->row_stride;
        const int16_t *w = plan->rows.weight + (ptrdiff_t)y * plan->rows.taps;
        const int32_t n = plan->rows.count[y];
        uint8_t *lv = direct ? (uint8_t *)out + y * row_values : level;
        if (fuse && n <= 2) {
            const int first = w[1] <= BCC_WEIGHT_ONE / 2; /* row 0 has the larger weight (w[1] == 0 if n == 1) */
            const uint8_t *base = first ? src : src + image->row_stride;
            const uint8_t *other = n == 1 ? src : first ? src + image->row_stride : src;
            ops->fused(base, other, (int16_t)(2 * (first ? w[1] : w[0])), plan, lv);
        } else {
            if (packed)
                ops->vertical(src, image->row_stride, w, n, &plan->columns, t);
            else
                vertical_strided(image, plan, y, t);
            if (plan->channels == 3)
                ops->horizontal(t, plan, lv);
            else
                horizontal_lanes(t, plan, plan->channels, lv);
        }
        if (target->kind == BCC_OUT_FLOAT32)
            ops->to_float(lv, (int32_t)row_values, target, (float *)out + y * row_values);
        else if (!direct)
            ops->to_bytes(lv, (int32_t)row_values, target, (uint8_t *)out + y * row_values);
    }
    return BCC_OK;
}
