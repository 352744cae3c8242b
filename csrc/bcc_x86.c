/* x86-64 row kernels (bcc_kernels.h): SSE2, the x86-64 baseline, and AVX2, chosen at run time
 * (functions compiled for AVX2 with a target attribute, never -march=native), so one binary
 * runs on every x86-64 CPU. Both compute exactly the integers of the scalar kernels.
 */
#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>
#include <string.h>

#include "bcc_kernels.h"

#define AVX2 __attribute__((target("avx2")))

/* The int16 weights (W[k], W[k+1]) as one int32 (x86 is little-endian): pmaddwd's operand. */
static int32_t weight_pair(const int16_t *w, int32_t k)
{
    int32_t pair;
    memcpy(&pair, w + k, sizeof pair);
    return pair;
}

/* ------------------------------------------------------------------------- SSE2 */

static int sse2_available(void)
{
    return 1; /* part of x86-64 */
}

/* 8 uint8 samples of each of the taps, blended: (sum w * s + 64) >> 7 as 8 int16. */
static __m128i sse2_blend8(const uint8_t *s, ptrdiff_t stride, const int16_t *w, int32_t n)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i lo = _mm_set1_epi32(64), hi = lo;
    for (int32_t k = 0; k < n; k += 2) {
        const __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(s + k * stride)), zero);
        const __m128i b = k + 1 < n ? _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(s + (k + 1) * stride)), zero) : zero;
        const __m128i wk = _mm_set1_epi32(weight_pair(w, k));
        lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi16(a, b), wk));
        hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi16(a, b), wk));
    }
    return _mm_packs_epi32(_mm_srai_epi32(lo, 7), _mm_srai_epi32(hi, 7));
}

static void sse2_vertical(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n, const bcc_columns *columns,
                          int16_t *t)
{
    for (int32_t r = 0; r < columns->nwide; r++) {
        const bcc_run run = columns->wide[r];
        for (int32_t i = 0; i < run.len; i += BCC_CHUNK) {
            const int32_t at = i + BCC_CHUNK <= run.len ? i : run.len - BCC_CHUNK; /* the last overlaps */
            _mm_storeu_si128((__m128i *)(t + run.dst + at), sse2_blend8(src + run.src + at, stride, w, n));
        }
    }
    for (int32_t c = 0; c < columns->nchunks; c++)
        _mm_storeu_si128((__m128i *)(t + columns->chunks[c].dst), sse2_blend8(src + columns->chunks[c].src, stride, w, n));
}

static void sse2_horizontal(const int16_t *t, const bcc_plan *plan, uint8_t *level)
{
    const int32_t *offset = plan->offset, pairs = plan->pairs, padded_width = plan->padded_width, width = plan->out_w;
    const int16_t *pair_weight = plan->pair_weight;
    for (int32_t x = 0; x < width; x++) {
        const int16_t *p = t + offset[x];
        __m128i acc = _mm_set1_epi32(1 << 20);
        for (int32_t j = 0; j < pairs; j++) {
            /* taps 2j and 2j+1 of channel c side by side: (c, c) pairs for pmaddwd */
            const __m128i a = _mm_loadl_epi64((const __m128i *)(p + 6 * j));
            const __m128i b = _mm_loadl_epi64((const __m128i *)(p + 6 * j + 3));
            const __m128i wj = _mm_load_si128((const __m128i *)(pair_weight + ((ptrdiff_t)j * padded_width + x) * 8));
            acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_unpacklo_epi16(a, b), wj));
        }
        acc = _mm_srai_epi32(acc, 21);
        const int32_t rgb = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(acc, acc), acc));
        memcpy(level + 3 * (ptrdiff_t)x, &rgb, x + 1 < width ? 4 : 3); /* byte 4: the next pixel's, rewritten */
    }
}

static void sse2_to_float(const uint8_t *level, int32_t n, const bcc_target *target, float *out)
{
    const __m128i zero = _mm_setzero_si128();
    int32_t i = 0;
    for (; i + 12 <= n; i += 12) {
        int32_t quad[3];
        memcpy(quad, level + i, sizeof quad);
        for (int q = 0; q < 3; q++) {
            const __m128i v = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(quad[q]), zero), zero);
            const __m128 f = _mm_sub_ps(_mm_cvtepi32_ps(v), _mm_loadu_ps(target->mean + 4 * q));
            _mm_storeu_ps(out + i + 4 * q, _mm_mul_ps(f, _mm_loadu_ps(target->inv_std + 4 * q)));
        }
    }
    bcc_to_float_scalar(level + i, n - i, target, out + i);
}

/* No SSE2 multiply for int32 lanes (pmulld is SSE4.1): int8/uint8 outputs use the table. */
const bcc_simd bcc_simd_sse2 = {"sse2", sse2_available, sse2_vertical, sse2_horizontal, NULL, sse2_to_float,
                                bcc_to_bytes_scalar};

/* ------------------------------------------------------------------------- AVX2 */

static int avx2_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

#define INLINE inline __attribute__((always_inline))

AVX2 static __m256i load16_u16(const uint8_t *s)
{
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)s));
}

/* 16 samples of a row as int16: 8 from `row + a` and 8 from `row + b` (b == a + 8: one load). */
AVX2 static INLINE __m256i load_group(const uint8_t *row, int32_t a, int32_t b, int contiguous)
{
    if (contiguous)
        return load16_u16(row + a);
    const __m128i lo = _mm_loadl_epi64((const __m128i *)(row + a));
    return _mm256_cvtepu8_epi16(_mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(lo), (const double *)(row + b))));
}

AVX2 static void store2(int16_t *t, const bcc_chunk *c, __m256i v)
{
    _mm_storeu_si128((__m128i *)(t + c[0].dst), _mm256_castsi256_si128(v));
    _mm_storeu_si128((__m128i *)(t + c[1].dst), _mm256_extracti128_si256(v, 1));
}

/* Two taps, W0 + W1 = 16384: with `base` the row of the larger weight and k = 2 * (the other
 * weight) <= 16384, (W0 * a + W1 * b + 64) >> 7 == 128 * base + mulhrs(128 * (other - base), k),
 * because mulhrs(x, y) = (x * y + 2^14) >> 15: one multiply per sample instead of two. */
AVX2 static __m256i avx2_blend2(__m256i base, __m256i other, __m256i k)
{
    const __m256i m = _mm256_mulhrs_epi16(_mm256_slli_epi16(_mm256_sub_epi16(other, base), 7), k);
    return _mm256_add_epi16(_mm256_slli_epi16(base, 7), m);
}

AVX2 static void avx2_vertical2(const uint8_t *src, ptrdiff_t stride, const int16_t *w, const bcc_columns *columns,
                                int16_t *t)
{
    const int first = w[1] <= BCC_WEIGHT_ONE / 2; /* row 0 has the larger weight */
    const uint8_t *base = first ? src : src + stride, *other = first ? src + stride : src;
    const __m256i k = _mm256_set1_epi16((int16_t)(2 * (first ? w[1] : w[0])));
    for (int32_t r = 0; r < columns->nwide; r++) {
        const bcc_run run = columns->wide[r];
        const uint8_t *a = base + run.src, *b = other + run.src;
        int16_t *d = t + run.dst;
        for (int32_t i = 0; i < run.len; i += 32) { /* the last groups overlap the ones before */
            const int32_t at0 = i < run.len - 16 ? i : run.len - 16, at1 = i + 16 < run.len - 16 ? i + 16 : run.len - 16;
            const __m256i v0 = avx2_blend2(load16_u16(a + at0), load16_u16(b + at0), k);
            const __m256i v1 = avx2_blend2(load16_u16(a + at1), load16_u16(b + at1), k);
            _mm256_storeu_si256((__m256i *)(d + at0), v0);
            _mm256_storeu_si256((__m256i *)(d + at1), v1);
        }
    }
    /* local copies: the compiler must otherwise assume that stores to t change *columns */
    const bcc_chunk *ch = columns->chunks, *end = ch + (columns->nchunks & ~1);
    for (; ch < end; ch += 2)
        store2(t, ch, avx2_blend2(load_group(base, ch[0].src, ch[1].src, 0), load_group(other, ch[0].src, ch[1].src, 0), k));
    if (columns->nchunks & 1) {
        const bcc_chunk twice[2] = {ch[0], ch[0]};
        store2(t, twice, avx2_blend2(load_group(base, ch[0].src, ch[0].src, 0), load_group(other, ch[0].src, ch[0].src, 0), k));
    }
}

/* Any number of taps, two groups of 16 samples at once (group g: a[g], b[g] as in load_group):
 * pmaddwd on (row k, row k+1) sample pairs, int32 sums; returns (sum + 64) >> 7 as int16. */
AVX2 static INLINE void blend_n(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n, const int32_t *a,
                                const int32_t *b, int contiguous, __m256i *out)
{
    __m256i lo[2], hi[2];
    lo[0] = hi[0] = lo[1] = hi[1] = _mm256_set1_epi32(64);
    const uint8_t *ra = src;
    for (int32_t k = 0; k < n; k += 2, ra += 2 * stride) {
        const uint8_t *rb = k + 1 < n ? ra + stride : ra; /* an odd last tap pairs with itself at weight 0 */
        const __m256i wk = _mm256_set1_epi32(weight_pair(w, k));
        for (int g = 0; g < 2; g++) {
            const __m256i x = load_group(ra, a[g], b[g], contiguous), y = load_group(rb, a[g], b[g], contiguous);
            lo[g] = _mm256_add_epi32(lo[g], _mm256_madd_epi16(_mm256_unpacklo_epi16(x, y), wk));
            hi[g] = _mm256_add_epi32(hi[g], _mm256_madd_epi16(_mm256_unpackhi_epi16(x, y), wk));
        }
    }
    /* unpack and pack both work within 128-bit lanes, so the order comes back as loaded */
    for (int g = 0; g < 2; g++)
        out[g] = _mm256_packs_epi32(_mm256_srai_epi32(lo[g], 7), _mm256_srai_epi32(hi[g], 7));
}

AVX2 static void avx2_vertical_n(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n,
                                 const bcc_columns *columns, int16_t *t)
{
    for (int32_t r = 0; r < columns->nwide; r++) {
        const bcc_run run = columns->wide[r];
        for (int32_t i = 0; i < run.len; i += 32) { /* the last groups overlap the ones before */
            const int32_t a[2] = {run.src + (i < run.len - 16 ? i : run.len - 16),
                                  run.src + (i + 16 < run.len - 16 ? i + 16 : run.len - 16)};
            const int32_t b[2] = {a[0] + 8, a[1] + 8};
            __m256i v[2];
            blend_n(src, stride, w, n, a, b, 1, v);
            for (int g = 0; g < 2; g++)
                _mm256_storeu_si256((__m256i *)(t + run.dst + (a[g] - run.src)), v[g]);
        }
    }
    const bcc_chunk *ch = columns->chunks;
    for (int32_t c = 0, last = columns->nchunks - 1; c <= last; c += 4) {
        bcc_chunk four[4]; /* past the last chunk: the last one again */
        for (int q = 0; q < 4; q++)
            four[q] = ch[c + q <= last ? c + q : last];
        const int32_t a[2] = {four[0].src, four[2].src}, b[2] = {four[1].src, four[3].src};
        __m256i v[2];
        blend_n(src, stride, w, n, a, b, 0, v);
        store2(t, four, v[0]);
        store2(t, four + 2, v[1]);
    }
}

AVX2 static void avx2_vertical(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n, const bcc_columns *columns,
                               int16_t *t)
{
    if (n == 2)
        avx2_vertical2(src, stride, w, columns, t);
    else
        avx2_vertical_n(src, stride, w, n, columns, t);
}

/* 8 RGB pixels' levels: four int32 vectors of two pixels each ([c0 c1 c2 0] per 128-bit lane,
 * pixels (0|1), (2|3), (4|5), (6|7)) packed to 24 bytes in pixel order. */
AVX2 static __m256i avx2_pack8(__m256i p01, __m256i p23, __m256i p45, __m256i p67)
{
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(p01, p23), _mm256_packs_epi32(p45, p67));
    /* lanes now hold pixels 0 2 4 6 | 1 3 5 7, 4 bytes each */
    const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    const __m256i drop = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6, 8,
                                          9, 10, 12, 13, 14, -1, -1, -1, -1);
    return _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(ordered, drop), _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7));
}

/* The levels of outputs x and x+1, one per 128-bit lane ([c0 c1 c2 0] as int32). */
AVX2 static inline __m256i avx2_two_pixels(const int16_t *t, const int32_t *offset, const int16_t *wx, int32_t pairs,
                                           ptrdiff_t pair_stride)
{
    /* per 128-bit lane: 8 int16 from a tap pair's first element -> (c, c) pairs for pmaddwd */
    const __m256i pairs_of = _mm256_setr_epi8(0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, -1, -1, -1, -1, 0, 1, 6, 7, 2, 3, 8,
                                              9, 4, 5, 10, 11, -1, -1, -1, -1);
    const int16_t *a = t + offset[0], *b = t + offset[1];
    __m256i sum = _mm256_set1_epi32(1 << 20);
    for (int32_t j = 0; j < pairs; j++) {
        const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(a + 6 * j))),
                                                  _mm_loadu_si128((const __m128i *)(b + 6 * j)), 1);
        const __m256i wj = _mm256_load_si256((const __m256i *)(wx + j * pair_stride));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_shuffle_epi8(v, pairs_of), wj));
    }
    return _mm256_srai_epi32(sum, 21);
}

AVX2 static inline __m256i avx2_eight_pixels(const int16_t *t, const int32_t *offset, const int16_t *wx, int32_t pairs,
                                             ptrdiff_t pair_stride)
{
    return avx2_pack8(avx2_two_pixels(t, offset, wx, pairs, pair_stride),
                      avx2_two_pixels(t, offset + 2, wx + 16, pairs, pair_stride),
                      avx2_two_pixels(t, offset + 4, wx + 32, pairs, pair_stride),
                      avx2_two_pixels(t, offset + 6, wx + 48, pairs, pair_stride));
}

/* Levels of outputs x .. x+7 (24 bytes, avx2_pack8) into the row, cut at its end. */
AVX2 static void store_group(uint8_t *level, ptrdiff_t x, int32_t width, __m256i rgb)
{
    if (x + BCC_PIXEL_GROUP <= width) {
        _mm_storeu_si128((__m128i *)(level + 3 * x), _mm256_castsi256_si128(rgb));
        _mm_storel_epi64((__m128i *)(level + 3 * x + 16), _mm256_extracti128_si256(rgb, 1));
    } else {
        uint8_t last[32];
        _mm256_storeu_si256((__m256i *)last, rgb);
        memcpy(level + 3 * x, last, 3 * (size_t)(width - x));
    }
}

AVX2 static void avx2_horizontal(const int16_t *t, const bcc_plan *plan, uint8_t *level)
{
    const int32_t *offset = plan->offset, pairs = plan->pairs, width = plan->out_w;
    const int16_t *pair_weight = plan->pair_weight;
    const ptrdiff_t pair_stride = (ptrdiff_t)plan->padded_width * 8;
    for (ptrdiff_t x = 0; x < width; x += BCC_PIXEL_GROUP) {
        /* 1 pair (bilinear) and 2 (area down to 1/3) spelled out: the compiler unrolls the taps */
        const __m256i rgb = pairs == 1   ? avx2_eight_pixels(t, offset + x, pair_weight + 8 * x, 1, pair_stride)
                            : pairs == 2 ? avx2_eight_pixels(t, offset + x, pair_weight + 8 * x, 2, pair_stride)
                                         : avx2_eight_pixels(t, offset + x, pair_weight + 8 * x, pairs, pair_stride);
        store_group(level, x, width, rgb);
    }
}

/* Outputs x and x+1 of a fused row: each one's 8 samples of both rows blended (avx2_blend2),
 * paired by its mask and weighted; levels as avx2_two_pixels. */
AVX2 static INLINE __m256i fused_two(const uint8_t *base, const uint8_t *other, __m256i k, const bcc_plan *plan, ptrdiff_t x)
{
    const int32_t a = plan->fused_src[x], b = plan->fused_src[x + 1];
    const __m256i t = avx2_blend2(load_group(base, a, b, 0), load_group(other, a, b, 0), k);
    const __m256i mask = _mm256_load_si256((const __m256i *)(plan->fused_mask + 16 * x));
    const __m256i w = _mm256_load_si256((const __m256i *)(plan->pair_weight + 8 * x));
    const __m256i sum = _mm256_add_epi32(_mm256_set1_epi32(1 << 20), _mm256_madd_epi16(_mm256_shuffle_epi8(t, mask), w));
    return _mm256_srai_epi32(sum, 21);
}

AVX2 static void avx2_fused(const uint8_t *base, const uint8_t *other, int16_t k, const bcc_plan *plan, uint8_t *level)
{
    const __m256i k16 = _mm256_set1_epi16(k);
    for (ptrdiff_t x = 0; x < plan->out_w; x += BCC_PIXEL_GROUP) {
        const __m256i rgb = avx2_pack8(fused_two(base, other, k16, plan, x), fused_two(base, other, k16, plan, x + 2),
                                       fused_two(base, other, k16, plan, x + 4), fused_two(base, other, k16, plan, x + 6));
        store_group(level, x, plan->out_w, rgb);
    }
}

AVX2 static void avx2_to_float(const uint8_t *level, int32_t n, const bcc_target *target, float *out)
{
    __m256 mean[3], inv[3];
    for (int q = 0; q < 3; q++) {
        mean[q] = _mm256_loadu_ps(target->mean + 8 * q);
        inv[q] = _mm256_loadu_ps(target->inv_std + 8 * q);
    }
    int32_t i = 0;
    for (; i + 24 <= n; i += 24)
        for (int q = 0; q < 3; q++) {
            const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(level + i + 8 * q)));
            _mm256_storeu_ps(out + i + 8 * q, _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(v), mean[q]), inv[q]));
        }
    bcc_to_float_scalar(level + i, n - i, target, out + i);
}

/* The table's exact linear form (bcc_target.c): (p * slope + intercept) >> shift, saturated by
 * the packs to int8 or uint8. */
AVX2 static void avx2_to_bytes(const uint8_t *level, int32_t n, const bcc_target *target, uint8_t *out)
{
    if (!target->linear) {
        bcc_to_bytes_scalar(level, n, target, out);
        return;
    }
    __m256i slope[3], intercept[3];
    for (int q = 0; q < 3; q++) {
        slope[q] = _mm256_loadu_si256((const __m256i *)(target->slope + 8 * q));
        intercept[q] = _mm256_loadu_si256((const __m256i *)(target->intercept + 8 * q));
    }
    const __m128i shift = _mm_cvtsi32_si128(target->shift);
    const int is_signed = target->kind == BCC_OUT_INT8;
    int32_t i = 0;
    for (; i + 24 <= n; i += 24) {
        __m256i v[3];
        for (int q = 0; q < 3; q++) {
            const __m256i p = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(level + i + 8 * q)));
            v[q] = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(p, slope[q]), intercept[q]), shift);
        }
        const __m256i w01 = _mm256_packs_epi32(v[0], v[1]), w22 = _mm256_packs_epi32(v[2], v[2]);
        /* 4-byte groups now: v0 low, v1 low, v2 low, v2 low | v0 high, v1 high, v2 high, v2 high */
        const __m256i b = is_signed ? _mm256_packs_epi16(w01, w22) : _mm256_packus_epi16(w01, w22);
        const __m256i bytes = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm_storeu_si128((__m128i *)(out + i), _mm256_castsi256_si128(bytes));
        _mm_storel_epi64((__m128i *)(out + i + 16), _mm256_extracti128_si256(bytes, 1));
    }
    bcc_to_bytes_scalar(level + i, n - i, target, out + i);
}

const bcc_simd bcc_simd_avx2 = {"avx2",         avx2_available, avx2_vertical, avx2_horizontal, avx2_fused,
                                avx2_to_float, avx2_to_bytes};

#endif
