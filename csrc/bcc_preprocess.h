/* Fused resize + normalise (+ quantise) of one image into a model input.
 *
 * Plain C99 with no dependencies, so it builds for x86-64 and aarch64 alike and can be
 * called from anything. The maths is defined in bcc_edge/preprocess.py (module docstring):
 * the caller supplies the per-axis weight tables and the per-channel output table, so
 * this file holds no policy, only the loops. Results are bit-identical to the numpy
 * reference provided it is compiled with -ffp-contract=off and without -ffast-math.
 */
#ifndef BCC_PREPROCESS_H
#define BCC_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Resampling along one axis: output i = sum_{k < count[i]} weight[i * taps + k] * in[start[i] + k]. */
typedef struct {
    const int32_t *start;
    const int32_t *count;
    const float *weight;
    int32_t out_size;
    int32_t taps;
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

enum { BCC_OK = 0, BCC_ERR_ARGS = 1, BCC_ERR_NOMEM = 2 };

/* Writes rows->out_size x cols->out_size x 3 values of `kind` to `out` (C-contiguous).
 * `table` holds 3 x 256 values of `kind`: the output for each channel and grey level.
 * Returns BCC_ERR_ARGS (and writes nothing) when an axis reads outside the image, has a
 * weight outside [0, 1], or weights whose sums could carry a value far past grey level 255
 * (valid resampling weights sum to 1); BCC_ERR_NOMEM; or BCC_OK.
 * Thread-safe; allocates its own scratch (O(width), never O(image)). */
int bcc_preprocess(const bcc_image *image, const bcc_axis *rows, const bcc_axis *cols,
                   bcc_output kind, const void *table, void *out);

#ifdef __cplusplus
}
#endif

#endif
