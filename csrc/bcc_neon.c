/* aarch64 row kernels (bcc_kernels.h) with Advanced SIMD (NEON), part of every aarch64 CPU.
 * They compute exactly the integers of the scalar kernels; tools/arm_check.py compares them
 * with the numpy reference and the x86-64 results under qemu.
 */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#include "bcc_kernels.h"

static int neon_available(void)
{
    return 1;
}

/* Two taps: as avx2_blend2 in bcc_x86.c; vqrdmulh(x, k) = (2xk + 2^15) >> 16 = (xk + 2^14) >> 15. */
static int16x8_t blend2(const uint8_t *base, const uint8_t *other, int16_t k)
{
    const int16x8_t a = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(base)));
    const int16x8_t b = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(other)));
    return vaddq_s16(vshlq_n_s16(a, 7), vqrdmulhq_n_s16(vshlq_n_s16(vsubq_s16(b, a), 7), k));
}

static int16x8_t blend_n(const uint8_t *s, ptrdiff_t stride, const int16_t *w, int32_t n)
{
    int32x4_t lo = vdupq_n_s32(64), hi = lo;
    for (int32_t k = 0; k < n; k++) {
        const int16x8_t a = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(s + k * stride)));
        lo = vmlal_n_s16(lo, vget_low_s16(a), w[k]);
        hi = vmlal_high_n_s16(hi, a, w[k]);
    }
    return vcombine_s16(vshrn_n_s32(lo, 7), vshrn_n_s32(hi, 7));
}

static void neon_vertical(const uint8_t *src, ptrdiff_t stride, const int16_t *w, int32_t n, const bcc_columns *columns,
                          int16_t *t)
{
    const int first = n == 2 && w[1] <= BCC_WEIGHT_ONE / 2; /* two taps: row 0 has the larger weight */
    const uint8_t *base = first ? src : src + stride, *other = first ? src + stride : src;
    const int16_t k = (int16_t)(2 * (first ? w[1] : w[0]));
    for (int32_t r = 0; r < columns->nwide; r++) {
        const bcc_run run = columns->wide[r];
        for (int32_t i = 0; i < run.len; i += BCC_CHUNK) {
            const int32_t at = run.src + (i + BCC_CHUNK <= run.len ? i : run.len - BCC_CHUNK); /* the last overlaps */
            const int16x8_t v = n == 2 ? blend2(base + at, other + at, k) : blend_n(src + at, stride, w, n);
            vst1q_s16(t + run.dst + (at - run.src), v);
        }
    }
    for (int32_t c = 0; c < columns->nchunks; c++) {
        const int32_t at = columns->chunks[c].src;
        vst1q_s16(t + columns->chunks[c].dst, n == 2 ? blend2(base + at, other + at, k) : blend_n(src + at, stride, w, n));
    }
}

/* One RGB pixel: [c0 c1 c2 junk] levels as int32. */
static int32x4_t pixel(const int16_t *p, const int16_t *wx, int32_t pairs, ptrdiff_t pair_stride)
{
    int32x4_t acc = vdupq_n_s32(1 << 20);
    for (int32_t j = 0; j < pairs; j++) {
        const int16_t *wj = wx + j * pair_stride;
        acc = vmlal_n_s16(acc, vld1_s16(p + 6 * j), wj[0]);
        acc = vmlal_n_s16(acc, vld1_s16(p + 6 * j + 3), wj[1]);
    }
    return vshrq_n_s32(acc, 21);
}

static void neon_horizontal(const int16_t *t, const bcc_plan *plan, uint8_t *level)
{
    const int32_t *offset = plan->offset, pairs = plan->pairs, padded_width = plan->padded_width, width = plan->out_w;
    const int16_t *pair_weight = plan->pair_weight;
    static const uint8_t drop[16] = {0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0, 0, 0, 0};
    const uint8x16_t keep_rgb = vld1q_u8(drop);
    const ptrdiff_t pair_stride = (ptrdiff_t)padded_width * 8;
    for (int32_t x0 = 0; x0 < width; x0 += 4) {
        int16x4_t p[4];
        for (int q = 0; q < 4; q++) {
            const int32_t x = x0 + q;
            p[q] = vmovn_s32(pixel(t + offset[x], pair_weight + (ptrdiff_t)x * 8, pairs, pair_stride));
        }
        const uint8x16_t bytes = vcombine_u8(vqmovun_s16(vcombine_s16(p[0], p[1])), vqmovun_s16(vcombine_s16(p[2], p[3])));
        uint8_t rgb[16];
        vst1q_u8(rgb, vqtbl1q_u8(bytes, keep_rgb));
        memcpy(level + 3 * (ptrdiff_t)x0, rgb, 3 * (size_t)(x0 + 4 <= width ? 4 : width - x0));
    }
}

static void neon_to_float(const uint8_t *level, int32_t n, const bcc_target *target, float *out)
{
    float32x4_t mean[6], inv[6];
    for (int q = 0; q < 6; q++) {
        mean[q] = vld1q_f32(target->mean + 4 * q);
        inv[q] = vld1q_f32(target->inv_std + 4 * q);
    }
    int32_t i = 0;
    for (; i + 24 <= n; i += 24) {
        const uint8x16_t a = vld1q_u8(level + i);
        const uint16x8_t h[3] = {vmovl_u8(vget_low_u8(a)), vmovl_high_u8(a), vmovl_u8(vld1_u8(level + i + 16))};
        for (int q = 0; q < 6; q++) {
            const uint32x4_t v = q % 2 ? vmovl_high_u16(h[q / 2]) : vmovl_u16(vget_low_u16(h[q / 2]));
            const float32x4_t f = vsubq_f32(vcvtq_f32_u32(v), mean[q]);
            vst1q_f32(out + i + 4 * q, vmulq_f32(f, inv[q]));
        }
    }
    bcc_to_float_scalar(level + i, n - i, target, out + i);
}

/* 256-entry lookups of 16 levels: four 64-byte table quarters (tbx leaves lanes whose index
 * is out of its quarter unchanged). */
static uint8x16_t lookup16(const uint8_t *table, uint8x16_t index)
{
    uint8x16_t q = vqtbl4q_u8(vld1q_u8_x4(table), index);
    q = vqtbx4q_u8(q, vld1q_u8_x4(table + 64), vsubq_u8(index, vdupq_n_u8(64)));
    q = vqtbx4q_u8(q, vld1q_u8_x4(table + 128), vsubq_u8(index, vdupq_n_u8(128)));
    return vqtbx4q_u8(q, vld1q_u8_x4(table + 192), vsubq_u8(index, vdupq_n_u8(192)));
}

static void neon_to_bytes(const uint8_t *level, int32_t n, const bcc_target *target, uint8_t *out)
{
    int32_t i = 0;
    for (; i + 48 <= n; i += 48) { /* 16 pixels, de-interleaved into their 3 channels and back */
        uint8x16x3_t rgb = vld3q_u8(level + i);
        for (int c = 0; c < 3; c++)
            rgb.val[c] = lookup16(target->table + 256 * c, rgb.val[c]);
        vst3q_u8(out + i, rgb);
    }
    bcc_to_bytes_scalar(level + i, n - i, target, out + i);
}

const bcc_simd bcc_simd_neon = {"neon", neon_available, neon_vertical, neon_horizontal, NULL, neon_to_float, neon_to_bytes};

#endif
