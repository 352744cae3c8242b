/* bcc_target_init (bcc_preprocess.h): the output parameters, and whether the int8/uint8 table
 * has an exact linear form.
 *
 * A quantised table q[p] = saturate(round(((p - mean) / std) / scale) + zero_point) is close to
 * a line in p, and usually exactly saturate((p * slope + intercept) >> shift) for some integers:
 * that form costs SIMD a multiply, an add and a shift per value where the table costs a scalar
 * lookup. It is searched for once per target and only used when it reproduces all 256 entries
 * of every channel, so the output never depends on which of the two a code path uses.
 */
#include <string.h>

#include "bcc_preprocess.h"

#define BCC_MAX_SHIFT 22
#define BCC_INT32_ROOM ((int64_t)1 << 30) /* |p * slope + intercept| stays below this */

/* Floor of a / b for b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Integers (slope, intercept) with lo[p] <= p * slope + intercept <= hi[p] for every p where
 * bounded[p] says which of lo (1), hi (2) apply. A slope works iff it satisfies every pair
 * i < j: (lo[j] - hi[i]) / (j - i) <= slope <= (hi[j] - lo[i]) / (j - i); the extreme
 * fractions are kept as numerator / denominator (compared by cross-multiplication). */
static int fit_line(const int64_t *lo, const int64_t *hi, const int *bounded, int64_t *slope, int64_t *intercept)
{
    int64_t min_num = 0, min_den = 0, max_num = 0, max_den = 0; /* den 0: unbounded */
    for (int i = 0; i < 256; i++)
        for (int j = i + 1; j < 256; j++) {
            const int64_t d = j - i;
            if ((bounded[j] & 1) && (bounded[i] & 2)) {
                const int64_t n = lo[j] - hi[i];
                if (!min_den || n * min_den > min_num * d)
                    min_num = n, min_den = d;
            }
            if ((bounded[j] & 2) && (bounded[i] & 1)) {
                const int64_t n = hi[j] - lo[i];
                if (!max_den || n * max_den < max_num * d)
                    max_num = n, max_den = d;
            }
        }
    const int64_t a_min = min_den ? -floor_div(-min_num, min_den) : INT32_MIN;
    const int64_t a_max = max_den ? floor_div(max_num, max_den) : INT32_MAX;
    if (a_min > a_max)
        return 0;
    *slope = a_min / 2 + a_max / 2;
    int64_t b_lo = INT64_MIN, b_hi = INT64_MAX;
    for (int p = 0; p < 256; p++) {
        if ((bounded[p] & 1) && lo[p] - p * *slope > b_lo)
            b_lo = lo[p] - p * *slope;
        if ((bounded[p] & 2) && hi[p] - p * *slope < b_hi)
            b_hi = hi[p] - p * *slope;
    }
    *intercept = b_lo != INT64_MIN ? b_lo : b_hi != INT64_MAX ? b_hi : 0;
    return 1;
}

static int32_t saturate(int64_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

/* The table entry of channel c and level p as an integer. */
static int32_t entry(const bcc_target *t, int c, int p)
{
    const uint8_t v = t->table[c * 256 + p];
    return t->kind == BCC_OUT_INT8 ? (int8_t)v : v;
}

/* Channel c's exact linear form with this shift, in int32 range: 1 if found. */
static int channel_line(const bcc_target *t, int c, int32_t shift, int32_t *slope, int32_t *intercept)
{
    const int32_t lo_q = t->kind == BCC_OUT_INT8 ? -128 : 0, hi_q = t->kind == BCC_OUT_INT8 ? 127 : 255;
    int64_t lo[256], hi[256], a, b;
    int bounded[256];
    for (int p = 0; p < 256; p++) {
        const int32_t q = entry(t, c, p);
        /* saturated entries bound the line on one side only */
        bounded[p] = (q > lo_q ? 1 : 0) | (q < hi_q ? 2 : 0);
        lo[p] = q * ((int64_t)1 << shift); /* not q << shift: q may be negative */
        hi[p] = (q + 1) * ((int64_t)1 << shift) - 1;
    }
    if (!fit_line(lo, hi, bounded, &a, &b))
        return 0;
    if (b < -BCC_INT32_ROOM || b > BCC_INT32_ROOM || 255 * a + b < -BCC_INT32_ROOM || 255 * a + b > BCC_INT32_ROOM)
        return -1; /* a smaller shift may fit */
    for (int p = 0; p < 256; p++) /* the fit is exact by construction; check it anyway, it is cheap */
        if (saturate(floor_div(p * a + b, (int64_t)1 << shift), lo_q, hi_q) != entry(t, c, p)) /* = srai */
            return 0;
    *slope = (int32_t)a;
    *intercept = (int32_t)b;
    return 1;
}

static int is_identity(const uint8_t *table)
{
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 256; p++)
            if (table[c * 256 + p] != p)
                return 0;
    return 1;
}

int bcc_target_init(bcc_target *target, bcc_output kind, const float mean[3], const float inv_std[3],
                    const uint8_t *table)
{
    memset(target, 0, sizeof *target);
    if ((kind != BCC_OUT_FLOAT32 && kind != BCC_OUT_INT8 && kind != BCC_OUT_UINT8) || (kind != BCC_OUT_FLOAT32 && !table))
        return BCC_ERR_ARGS;
    target->kind = kind;
    for (int i = 0; i < 24; i++) {
        target->mean[i] = mean[i % 3];
        target->inv_std[i] = inv_std[i % 3];
    }
    if (kind == BCC_OUT_FLOAT32)
        return BCC_OK;
    target->table = table;
    target->identity = kind == BCC_OUT_UINT8 && is_identity(table);
    /* Feasible at one shift means feasible at every larger one: go down only while the
     * int32 range is what fails. */
    for (int32_t shift = BCC_MAX_SHIFT; shift >= 0; shift--) {
        int found = 1;
        for (int c = 0; c < 3 && found == 1; c++)
            found = channel_line(target, c, shift, &target->slope[c], &target->intercept[c]);
        if (found == 1) {
            for (int i = 3; i < 24; i++) {
                target->slope[i] = target->slope[i % 3];
                target->intercept[i] = target->intercept[i % 3];
            }
            target->shift = shift;
            target->linear = 1;
            break;
        }
        if (found == 0)
            break;
    }
    return BCC_OK;
}
