/* bcc_axis_check and the plan (bcc_preprocess.h, layout in bcc_kernels.h): built once per
 * geometry, so no call of bcc_preprocess spends time on tables.
 */
#include <string.h>

#include "bcc_kernels.h"

#define BCC_ALIGN 64

int bcc_axis_check(const bcc_axis *axis)
{
    if (!axis || !axis->start || !axis->count || !axis->weight || axis->in_size <= 0 || axis->out_size <= 0 || axis->taps <= 0)
        return BCC_ERR_ARGS;
    for (int32_t i = 0; i < axis->out_size; i++) {
        const int32_t s = axis->start[i], n = axis->count[i];
        if (n < 1 || n > axis->taps || s < 0 || s > axis->in_size - n)
            return BCC_ERR_ARGS;
        int32_t sum = 0;
        for (int32_t k = 0; k < n; k++) {
            const int16_t w = axis->weight[(ptrdiff_t)i * axis->taps + k];
            if (w < 0)
                return BCC_ERR_ARGS;
            sum += w;
        }
        if (sum != BCC_WEIGHT_ONE)
            return BCC_ERR_ARGS;
    }
    return BCC_OK;
}

/* Ends run *r at element `end`: a run shorter than a chunk grows to one (backwards at the row
 * end, moving the offsets of its outputs x0 .. x1-1 with it). Returns the run's length. */
static int32_t close_run(bcc_run *r, int32_t end, int32_t row_len, int32_t *offset, int32_t x0, int32_t x1)
{
    r->len = end - r->src;
    if (r->len < BCC_CHUNK && row_len >= BCC_CHUNK) {
        const int32_t src = r->src + BCC_CHUNK <= row_len ? r->src : row_len - BCC_CHUNK;
        for (int32_t x = x0; offset && x < x1; x++)
            offset[x] += r->src - src;
        r->src = src;
        r->len = BCC_CHUNK;
    }
    return r->len;
}

/* The runs of source elements (lanes per column) that the taps of `cols` read, in output
 * order; returns their count and, through *t_len, *nwide and *nchunks, the elements they fill
 * in t and how bcc_columns splits them. Writes `runs` and `offset` (where each output's first
 * tap lands in t) unless they are NULL. A run grows while the next output's taps start at
 * most a chunk past its end: cheaper to compute the gap than to start a run. */
static int32_t plan_runs(const bcc_axis *cols, int32_t lanes, bcc_run *runs, int32_t *offset, int32_t *t_len,
                         int32_t *nwide, int32_t *nchunks)
{
    const int32_t row_len = cols->in_size * lanes;
    int32_t nruns = 0, end = 0, x0 = 0;
    bcc_run r = {0, 0, 0};
    *t_len = *nwide = *nchunks = 0;
    for (int32_t x = 0; x <= cols->out_size; x++) {
        const int32_t last = x == cols->out_size;
        const int32_t a = last ? 0 : cols->start[x] * lanes, b = last ? 0 : (cols->start[x] + cols->count[x]) * lanes;
        const int32_t new_run = x == 0 || last || a < r.src || a > end + BCC_CHUNK;
        if (x > 0 && new_run) {
            const int32_t len = close_run(&r, end, row_len, offset, x0, x);
            if (runs)
                runs[nruns] = r;
            nruns++;
            *t_len += len;
            if (len >= 2 * BCC_CHUNK)
                ++*nwide;
            else
                *nchunks += len > BCC_CHUNK ? 2 : 1;
            if (last)
                break;
        }
        if (new_run) {
            r = (bcc_run){a, *t_len, 0};
            end = b;
            x0 = x;
        }
        end = b > end ? b : end;
        if (offset)
            offset[x] = r.dst + (a - r.src);
    }
    return nruns;
}

static void plan_columns(const bcc_run *runs, int32_t nruns, bcc_run *wide, bcc_chunk *chunks)
{
    for (int32_t r = 0; r < nruns; r++) {
        const bcc_run run = runs[r];
        if (run.len >= 2 * BCC_CHUNK) {
            *wide++ = run;
        } else {
            *chunks++ = (bcc_chunk){run.src, run.dst};
            if (run.len > BCC_CHUNK)
                *chunks++ = (bcc_chunk){run.src + run.len - BCC_CHUNK, run.dst + run.len - BCC_CHUNK};
        }
    }
}

static void plan_weights(const bcc_axis *cols, int32_t pairs, int32_t padded_width, int32_t *offset, int16_t *pw)
{
    const int32_t ow = cols->out_size;
    for (int32_t x = ow; x < padded_width; x++)
        offset[x] = offset[ow - 1];
    memset(pw, 0, sizeof(int16_t) * 8 * (size_t)pairs * (size_t)padded_width);
    for (int32_t x = 0; x < ow; x++)
        for (int32_t k = 0; k < cols->count[x]; k++) {
            int16_t *p = pw + ((ptrdiff_t)(k / 2) * padded_width + x) * 8 + (k & 1);
            p[0] = p[2] = p[4] = cols->weight[(ptrdiff_t)x * cols->taps + k];
        }
}

/* Whether rows fuse (bcc_kernels.h): each output blends 8 samples of each source row instead
 * of its share of the columns, which pays when outputs are at least 2 source columns apart
 * (measured: 1920 -> 224 fused 15% faster, 360 -> 224 fused 20% slower). */
static int fuses(const bcc_axis *cols, int32_t channels)
{
    return channels == 3 && cols->taps <= 2 && cols->in_size * channels >= 8 && 2 * cols->out_size <= cols->in_size;
}

static void plan_fused(const bcc_axis *cols, int32_t padded_width, int32_t *src, uint8_t *mask)
{
    const int32_t row_len = 3 * cols->in_size;
    for (int32_t x = 0; x < padded_width; x++) {
        const int32_t at = x < cols->out_size ? x : cols->out_size - 1, first = 3 * cols->start[at];
        src[x] = first + 8 <= row_len ? first : row_len - 8;
        const int32_t d = first - src[x]; /* <= 2 with 2 taps, <= 5 with 1: the taps lie in the 8 */
        uint8_t *m = mask + 16 * (ptrdiff_t)x;
        memset(m, 0x80, 16); /* pshufb: a set high bit reads 0 */
        for (int c = 0; c < 3; c++) {
            m[4 * c] = (uint8_t)(2 * (d + c));
            m[4 * c + 1] = (uint8_t)(2 * (d + c) + 1);
            if (cols->count[at] == 2) {
                m[4 * c + 2] = (uint8_t)(2 * (d + 3 + c));
                m[4 * c + 3] = (uint8_t)(2 * (d + 3 + c) + 1);
            }
        }
    }
}

/* Byte offsets of the plan's arrays after its header, each aligned to BCC_ALIGN. */
typedef struct {
    int32_t nruns, nwide, nchunks, t_len, pairs, padded_width;
    size_t row_start, row_count, row_weight, runs, wide, chunks, offset, pair_weight, fused_src, fused_mask, total;
} layout;

/* The rows' taps rounded up to even: the copy pads each row with zero weights, so SIMD reads
 * any tap pair (2j, 2j+1) of it as one int32. */
static int32_t even_taps(const bcc_axis *rows)
{
    return (rows->taps + 1) / 2 * 2;
}

static size_t align_up(size_t n)
{
    return (n + BCC_ALIGN - 1) / BCC_ALIGN * BCC_ALIGN;
}

static int plan_layout(const bcc_axis *rows, const bcc_axis *cols, int32_t channels, layout *l)
{
    if ((channels != 1 && channels != 3 && channels != 4) || bcc_axis_check(rows) != BCC_OK || bcc_axis_check(cols) != BCC_OK)
        return BCC_ERR_ARGS;
    l->nruns = plan_runs(cols, channels, NULL, NULL, &l->t_len, &l->nwide, &l->nchunks);
    l->pairs = (cols->taps + 1) / 2;
    l->padded_width = (cols->out_size + BCC_PIXEL_GROUP - 1) / BCC_PIXEL_GROUP * BCC_PIXEL_GROUP;
    const size_t rows_out = (size_t)rows->out_size;
    size_t at = align_up(sizeof(bcc_plan));
    l->row_start = at, at = align_up(at + sizeof(int32_t) * rows_out);
    l->row_count = at, at = align_up(at + sizeof(int32_t) * rows_out);
    l->row_weight = at, at = align_up(at + sizeof(int16_t) * rows_out * (size_t)even_taps(rows));
    l->runs = at, at = align_up(at + sizeof(bcc_run) * (size_t)l->nruns);
    l->wide = at, at = align_up(at + sizeof(bcc_run) * (size_t)l->nwide);
    l->chunks = at, at = align_up(at + sizeof(bcc_chunk) * (size_t)l->nchunks);
    l->offset = at, at = align_up(at + sizeof(int32_t) * (size_t)l->padded_width);
    l->pair_weight = at, at = align_up(at + sizeof(int16_t) * 8 * (size_t)l->pairs * (size_t)l->padded_width);
    const size_t fused_width = fuses(cols, channels) ? (size_t)l->padded_width : 0;
    l->fused_src = at, at = align_up(at + sizeof(int32_t) * fused_width);
    l->fused_mask = at, at = align_up(at + 16 * fused_width);
    l->total = at + BCC_ALIGN; /* room to align the memory itself */
    return BCC_OK;
}

size_t bcc_plan_size(const bcc_axis *rows, const bcc_axis *cols, int32_t channels)
{
    layout l;
    return plan_layout(rows, cols, channels, &l) == BCC_OK ? l.total : 0;
}

const bcc_plan *bcc_plan_init(void *memory, const bcc_axis *rows, const bcc_axis *cols, int32_t channels)
{
    layout l;
    if (!memory || plan_layout(rows, cols, channels, &l) != BCC_OK)
        return NULL;
    unsigned char *base = (unsigned char *)memory;
    base += (BCC_ALIGN - (uintptr_t)base % BCC_ALIGN) % BCC_ALIGN;
    bcc_plan *plan = (bcc_plan *)base;
    int32_t *row_start = (int32_t *)(base + l.row_start), *row_count = (int32_t *)(base + l.row_count);
    int16_t *row_weight = (int16_t *)(base + l.row_weight);
    bcc_run *runs = (bcc_run *)(base + l.runs), *wide = (bcc_run *)(base + l.wide);
    bcc_chunk *chunks = (bcc_chunk *)(base + l.chunks);
    int32_t *offset = (int32_t *)(base + l.offset);
    int16_t *pair_weight = (int16_t *)(base + l.pair_weight);

    memcpy(row_start, rows->start, sizeof(int32_t) * (size_t)rows->out_size);
    memcpy(row_count, rows->count, sizeof(int32_t) * (size_t)rows->out_size);
    const int32_t taps = even_taps(rows);
    memset(row_weight, 0, sizeof(int16_t) * (size_t)rows->out_size * (size_t)taps);
    for (int32_t y = 0; y < rows->out_size; y++)
        memcpy(row_weight + (ptrdiff_t)y * taps, rows->weight + (ptrdiff_t)y * rows->taps, sizeof(int16_t) * (size_t)row_count[y]);
    plan->in_h = rows->in_size;
    plan->in_w = cols->in_size;
    plan->out_h = rows->out_size;
    plan->out_w = cols->out_size;
    plan->channels = channels;
    plan->rows = (bcc_axis){row_start, row_count, row_weight, rows->in_size, rows->out_size, taps};
    int32_t nwide, nchunks;
    plan->nruns = plan_runs(cols, channels, runs, offset, &plan->t_len, &nwide, &nchunks);
    plan->runs = runs;
    plan_columns(runs, plan->nruns, wide, chunks);
    plan->columns = (bcc_columns){wide, nwide, chunks, nchunks};
    plan->packed_ok = cols->in_size * channels >= BCC_CHUNK;
    plan->pairs = l.pairs;
    plan->padded_width = l.padded_width;
    plan_weights(cols, l.pairs, l.padded_width, offset, pair_weight);
    plan->offset = offset;
    plan->pair_weight = pair_weight;
    plan->fused_src = NULL;
    plan->fused_mask = NULL;
    if (fuses(cols, channels)) {
        int32_t *fused_src = (int32_t *)(base + l.fused_src);
        uint8_t *fused_mask = base + l.fused_mask;
        plan_fused(cols, l.padded_width, fused_src, fused_mask);
        plan->fused_src = fused_src;
        plan->fused_mask = fused_mask;
    }
    return plan;
}
