# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Thin wrapper over csrc/bcc_preprocess.c: checks every argument, then runs without the GIL.

Private to bcc_edge.preprocess, which builds the weight and output tables (see its docstring).
"""

from cython.parallel cimport prange
from libc.stdint cimport int32_t, uint8_t, uint16_t
from libc.stdlib cimport free, malloc


cdef extern from "bcc_preprocess.h" nogil:
    ctypedef struct bcc_axis:
        const int32_t *start
        const int32_t *count
        const float *weight
        int32_t out_size
        int32_t taps

    ctypedef struct bcc_image:
        const void *pixels
        int32_t height, width, channels, bytes_per_sample
        Py_ssize_t row_stride, col_stride, channel_stride

    ctypedef enum bcc_output:
        BCC_OUT_FLOAT32, BCC_OUT_INT8, BCC_OUT_UINT8

    enum:
        BCC_OK, BCC_ERR_ARGS, BCC_ERR_NOMEM

    int bcc_preprocess(const bcc_image *image, const bcc_axis *rows, const bcc_axis *cols,
                       bcc_output kind, const void *table, void *out)


OUTPUT_KINDS = {"float32": BCC_OUT_FLOAT32, "int8": BCC_OUT_INT8, "uint8": BCC_OUT_UINT8}


ctypedef struct job_t:
    bcc_image image
    bcc_axis rows
    bcc_axis cols
    uint8_t *out


cdef int _axis(table, int32_t in_size, int32_t out_size, bcc_axis *axis) except -1:
    cdef const int32_t[::1] start = table.start
    cdef const int32_t[::1] count = table.count
    cdef const float[:, ::1] weight = table.weight
    if start.shape[0] != out_size or count.shape[0] != out_size or weight.shape[0] != out_size or weight.shape[1] < 1:
        raise ValueError(f"weight table does not resize {in_size} to {out_size}")
    # The C code checks the contents (indices, weights) itself.
    axis.start = &start[0]
    axis.count = &count[0]
    axis.weight = &weight[0, 0]
    axis.out_size = out_size
    axis.taps = <int32_t>weight.shape[1]
    return 0


cdef int _image(image, bcc_image *im) except -1:
    cdef const uint8_t[:, :, :] u8
    cdef const uint16_t[:, :, :] u16
    cdef Py_ssize_t itemsize = image.dtype.itemsize
    if image.dtype.kind != "u" or itemsize not in (1, 2) or image.ndim != 3:
        raise ValueError(f"image must be an HxWxC uint8 or uint16 array; got {image.dtype} {image.shape}")
    if image.shape[2] not in (1, 3, 4) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be non-empty with 1, 3 or 4 channels; got shape {image.shape}")
    if any(s % itemsize for s in image.strides):
        raise ValueError("image strides must be multiples of its item size")
    if itemsize == 1:
        u8 = image
        im.pixels = &u8[0, 0, 0]
    else:
        u16 = image
        im.pixels = &u16[0, 0, 0]
    im.height = <int32_t>image.shape[0]
    im.width = <int32_t>image.shape[1]
    im.channels = <int32_t>image.shape[2]
    im.bytes_per_sample = <int32_t>itemsize
    im.row_stride = image.strides[0] // itemsize
    im.col_stride = image.strides[1] // itemsize
    im.channel_stride = image.strides[2] // itemsize
    return 0


def preprocess_batch(list jobs, out, table, str output, int threads):
    """Fill `out` from `jobs`, a list of (image HxWxC, vertical AxisTable, horizontal AxisTable).

    `out`: C-contiguous (N, h, w, 3) array of dtype `output`; `table`: C-contiguous (3, 256)
    array of dtype `output`. `threads` images are processed at once, all without the GIL.
    """
    if output not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {sorted(OUTPUT_KINDS)}; got {output!r}")
    cdef bcc_output kind = OUTPUT_KINDS[output]
    cdef Py_ssize_t n = len(jobs)
    if out.ndim != 4 or out.shape[0] != n or out.shape[3] != 3 or str(out.dtype) != output or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous ({n}, h, w, 3) {output} array; got {out.dtype} {out.shape}")
    if table.shape != (3, 256) or str(table.dtype) != output or not table.flags.c_contiguous:
        raise ValueError(f"table must be a C-contiguous (3, 256) {output} array")
    if threads < 1:
        raise ValueError(f"threads must be positive; got {threads}")
    if n == 0:
        return
    cdef int32_t out_h = <int32_t>out.shape[1], out_w = <int32_t>out.shape[2]
    cdef uint8_t[:, ::1] out_bytes = out.reshape(n, -1).view("uint8")
    cdef const uint8_t[::1] table_bytes = table.reshape(-1).view("uint8")
    cdef job_t *js = <job_t *>malloc(n * sizeof(job_t))
    cdef int *status = <int *>malloc(n * sizeof(int))
    cdef Py_ssize_t i
    cdef int failed = BCC_OK
    if js == NULL or status == NULL:
        free(js)
        free(status)
        raise MemoryError()
    try:
        # Each job's arrays stay alive in `jobs`, so the raw pointers outlive the memoryviews.
        for i in range(n):
            image, rows, cols = jobs[i]
            _image(image, &js[i].image)
            _axis(rows, js[i].image.height, out_h, &js[i].rows)
            _axis(cols, js[i].image.width, out_w, &js[i].cols)
            js[i].out = &out_bytes[i, 0]
        with nogil:
            if threads > 1:
                for i in prange(n, num_threads=threads, schedule="dynamic"):
                    status[i] = bcc_preprocess(&js[i].image, &js[i].rows, &js[i].cols, kind, &table_bytes[0], js[i].out)
            else:
                for i in range(n):
                    status[i] = bcc_preprocess(&js[i].image, &js[i].rows, &js[i].cols, kind, &table_bytes[0], js[i].out)
            for i in range(n):
                if status[i] != BCC_OK:
                    failed = status[i]
        if failed == BCC_ERR_NOMEM:
            raise MemoryError("out of memory in the preprocessing kernel")
        if failed != BCC_OK:
            raise ValueError("the preprocessing kernel rejected a weight table (indices outside the image or invalid weights)")
    finally:
        free(js)
        free(status)


cdef extern from *:
    """
    #ifdef _OPENMP
    #define BCC_OPENMP 1
    #else
    #define BCC_OPENMP 0
    #endif
    """
    int BCC_OPENMP


OPENMP = bool(BCC_OPENMP)  # False: built without OpenMP, batches run on one thread
