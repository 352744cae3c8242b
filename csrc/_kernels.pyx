# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Thin wrapper over the C kernel in csrc/ (bcc_preprocess.h): checks what guards memory, then runs without the GIL.

Private to bcc_edge.preprocess, which builds the weight and output tables (see its docstring)
and validates every user input first; the checks here only keep a wrong call from reading or
writing outside its arrays.
"""

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_RECORDS_RO, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cython.parallel cimport prange, threadid
from libc.stdint cimport int16_t, int32_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport strcmp


cdef extern from "bcc_preprocess.h" nogil:
    ctypedef struct bcc_axis:
        const int32_t *start
        const int32_t *count
        const int16_t *weight
        int32_t in_size, out_size, taps

    ctypedef struct bcc_image:
        const void *pixels
        int32_t height, width, channels, bytes_per_sample
        Py_ssize_t row_stride, col_stride, channel_stride

    ctypedef enum bcc_output:
        BCC_OUT_FLOAT32, BCC_OUT_INT8, BCC_OUT_UINT8

    ctypedef struct bcc_target:
        int linear


    enum:
        BCC_OK, BCC_ERR_ARGS

    int bcc_target_init(bcc_target *target, bcc_output kind, const float mean[3], const float inv_std[3],
                        const uint8_t *table)
    ctypedef struct bcc_plan:
        pass

    size_t bcc_plan_size(const bcc_axis *rows, const bcc_axis *cols, int32_t channels)
    const bcc_plan *bcc_plan_init(void *memory, const bcc_axis *rows, const bcc_axis *cols, int32_t channels)
    size_t bcc_scratch_size(const bcc_plan *plan)
    int bcc_preprocess(const bcc_image *image, const bcc_plan *plan, const bcc_target *target, void *scratch, void *out)
    int bcc_simd_count()
    const char *bcc_simd_name(int index)
    const char *bcc_simd_current()
    int bcc_simd_select(const char *name)


OUTPUT_KINDS = {"float32": BCC_OUT_FLOAT32, "int8": BCC_OUT_INT8, "uint8": BCC_OUT_UINT8}
# Buffer-protocol format of each output dtype and of the accepted image samples.
_OUT_FORMAT = {"float32": b"f", "int8": b"b", "uint8": b"B"}


cdef int _axis(table, int32_t in_size, bcc_axis *axis, list keep) except -1:
    """Points *axis at the arrays of `table` (start, count int32; weight int16 (out, taps))."""
    cdef const int32_t[::1] start = table.start
    cdef const int32_t[::1] count = table.count
    cdef const int16_t[:, ::1] weight = table.weight
    if start.shape[0] < 1 or count.shape[0] != start.shape[0] or weight.shape[0] != start.shape[0] or weight.shape[1] < 1:
        raise ValueError("a weight table needs matching start, count and weight rows")
    keep += [start, count, weight]
    axis.start = &start[0]
    axis.count = &count[0]
    axis.weight = &weight[0, 0]
    axis.in_size = in_size
    axis.out_size = <int32_t>start.shape[0]
    axis.taps = <int32_t>weight.shape[1]
    return 0


cdef class Plan:
    """A resize's tables in the kernel's layout (bcc_plan_init): checked copies of the vertical
    and horizontal weight tables (AxisTable-like: start, count, weight) for images of
    in_h x in_w x channels. Immutable; build one per geometry and reuse it."""

    cdef void *memory
    cdef const bcc_plan *c
    cdef readonly int in_h, in_w, out_h, out_w, channels

    def __cinit__(self, rows, cols, int in_h, int in_w, int channels):
        cdef bcc_axis r, k
        cdef list keep = []
        _axis(rows, in_h, &r, keep)
        _axis(cols, in_w, &k, keep)
        cdef size_t size = bcc_plan_size(&r, &k, channels)
        if size == 0:
            raise ValueError("invalid weight tables (indices outside the input, weights not summing to 16384) "
                             f"or channels ({channels})")
        self.memory = malloc(size)
        if self.memory == NULL:
            raise MemoryError()
        self.c = bcc_plan_init(self.memory, &r, &k, channels)
        self.in_h, self.in_w, self.out_h, self.out_w, self.channels = in_h, in_w, r.out_size, k.out_size, channels

    def __dealloc__(self):
        free(self.memory)


cdef class Target:
    """The output dtype and what each grey level becomes: float32 mean and 1/std per channel,
    or a C-contiguous (3, 256) int8/uint8 table (read in place, kept alive here)."""

    cdef bcc_target c
    cdef readonly str output
    cdef const uint8_t[::1] _table

    def __cinit__(self, str output, mean, inv_std, table=None):
        cdef float m[3]
        cdef float r[3]
        if output not in OUTPUT_KINDS:
            raise ValueError(f"output must be one of {sorted(OUTPUT_KINDS)}; got {output!r}")
        self.output = output
        for c in range(3):
            m[c] = mean[c]
            r[c] = inv_std[c]
        if output != "float32":
            if table is None or table.shape != (3, 256) or str(table.dtype) != output or not table.flags.c_contiguous:
                raise ValueError(f"table must be a C-contiguous (3, 256) {output} array")
            self._table = table.reshape(-1).view("uint8")
        if bcc_target_init(&self.c, OUTPUT_KINDS[output], m, r, &self._table[0] if output != "float32" else NULL) != BCC_OK:
            raise ValueError("invalid output target")

    @property
    def linear(self):
        """Whether the int8/uint8 table has the exact linear form SIMD computes without lookups."""
        return bool(self.c.linear)


ctypedef struct job_t:
    bcc_image image
    const bcc_plan *plan


cdef int _image(Py_buffer *buf, bcc_image *im) except -1:
    cdef Py_ssize_t itemsize = buf.itemsize
    if buf.ndim != 3 or not (strcmp(buf.format, b"B") == 0 or strcmp(buf.format, b"H") == 0):
        raise ValueError("image must be an HxWxC uint8 or uint16 array in native byte order")
    if buf.strides[0] % itemsize or buf.strides[1] % itemsize or buf.strides[2] % itemsize:
        raise ValueError("image strides must be multiples of its item size")
    im.pixels = buf.buf
    im.height = <int32_t>buf.shape[0]
    im.width = <int32_t>buf.shape[1]
    im.channels = <int32_t>buf.shape[2]
    im.bytes_per_sample = <int32_t>itemsize
    im.row_stride = buf.strides[0] // itemsize
    im.col_stride = buf.strides[1] // itemsize
    im.channel_stride = buf.strides[2] // itemsize
    return 0


def preprocess_batch(list jobs, out, Target target, int threads):
    """Fill `out` from `jobs`, a list of (image HxWxC, Plan for its size and channels).

    `out`: C-contiguous (N, h, w, 3) array of the target's dtype. Up to `threads` images are
    processed at once, all without the GIL, each thread with its own scratch memory.
    """
    cdef Py_ssize_t n = len(jobs), i, done = 0
    cdef Py_buffer ob
    cdef Py_buffer *bufs = NULL
    cdef job_t *js = NULL
    cdef int *status = NULL
    cdef unsigned char *scratch = NULL
    cdef size_t size = 0
    cdef Py_ssize_t per_image
    cdef Plan plan
    cdef int failed = BCC_OK
    if threads < 1:
        raise ValueError(f"threads must be positive; got {threads}")
    threads = min(threads, max(n, 1))  # guards the scratch size; preprocess caps it as policy
    PyObject_GetBuffer(out, &ob, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)
    try:
        if ob.ndim != 4 or ob.shape[0] != n or ob.shape[3] != 3 or strcmp(ob.format, _OUT_FORMAT[target.output]) != 0:
            raise ValueError(f"out must be a C-contiguous ({n}, h, w, 3) {target.output} array")
        if n == 0:
            return
        per_image = ob.len // n
        bufs = <Py_buffer *>malloc(n * sizeof(Py_buffer))
        js = <job_t *>malloc(n * sizeof(job_t))
        status = <int *>malloc(n * sizeof(int))
        if bufs == NULL or js == NULL or status == NULL:
            raise MemoryError()
        # Each job's objects stay alive in `jobs`, so the raw pointers outlive this loop.
        for i in range(n):
            image, plan = jobs[i]
            PyObject_GetBuffer(image, &bufs[i], PyBUF_RECORDS_RO)
            done = i + 1
            _image(&bufs[i], &js[i].image)
            if (plan.in_h, plan.in_w, plan.channels, plan.out_h, plan.out_w) != \
                    (js[i].image.height, js[i].image.width, js[i].image.channels, ob.shape[1], ob.shape[2]):
                raise ValueError("the plan does not match the image or the output size")
            js[i].plan = plan.c
            size = max(size, bcc_scratch_size(plan.c))
        size = (size + 63) // 64 * 64  # threads' scratch on separate cache lines
        scratch = <unsigned char *>malloc(threads * size)
        if scratch == NULL:
            raise MemoryError()
        with nogil:
            if threads > 1:
                for i in prange(n, num_threads=threads, schedule="dynamic"):
                    status[i] = bcc_preprocess(&js[i].image, js[i].plan, &target.c, scratch + threadid() * size,
                                               <char *>ob.buf + i * per_image)
            else:
                for i in range(n):
                    status[i] = bcc_preprocess(&js[i].image, js[i].plan, &target.c, scratch, <char *>ob.buf + i * per_image)
            for i in range(n):
                if status[i] != BCC_OK:
                    failed = status[i]
        if failed != BCC_OK:
            raise ValueError("the preprocessing kernel rejected its arguments")
    finally:
        for i in range(done):
            PyBuffer_Release(&bufs[i])
        PyBuffer_Release(&ob)
        free(bufs)
        free(js)
        free(status)
        free(scratch)


def simd_levels():
    """The instruction sets the kernel can use on this CPU, best first (the last is "scalar")."""
    return [bcc_simd_name(i).decode() for i in range(bcc_simd_count())]


def simd():
    """The instruction set the kernel uses now."""
    return bcc_simd_current().decode()


def use_simd(str name):
    """Run the kernel with `name` (one of simd_levels()); for tests that compare every path."""
    if bcc_simd_select(name.encode()) != BCC_OK:
        raise ValueError(f"instruction set {name!r} is not available here; choose from {simd_levels()}")


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
