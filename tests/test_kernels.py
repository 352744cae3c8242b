"""The C kernel (bcc_edge._kernels): bit-exact against the numpy reference on every instruction
set this CPU has, within one grey level of OpenCV, and robust to whatever it is handed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bcc_edge import preprocess
from bcc_edge.preprocess import WEIGHT_ONE, AxisTable, PreprocessSpec, axis_table, output_table, reference_apply

needs_kernel = pytest.mark.skipif(not preprocess.KERNEL_AVAILABLE, reason="bcc_edge._kernels is not built")
SIMD = preprocess._kernels.simd_levels() if preprocess.KERNEL_AVAILABLE else []


@pytest.fixture(params=SIMD)
def simd(request):
    """Runs the test once per instruction set (AVX2, SSE2, scalar here; NEON under tools/arm_check.py)."""
    kernels = preprocess._kernels
    best = kernels.simd()
    kernels.use_simd(request.param)
    yield request.param
    kernels.use_simd(best)


SIZES = [
    ((363, 360), (224, 224)),  # the PBC image size
    ((37, 41), (80, 96)),  # upscale, odd sizes
    ((80, 33), (31, 70)),  # mixed: rows down, columns up
    ((30, 90), (61, 29)),  # mixed the other way
    ((1, 1), (5, 7)),
    ((1, 40), (9, 3)),
    ((64, 48), (32, 24)),  # exact 2x (OpenCV's fast area path)
    ((60, 60), (20, 20)),  # exact 3x
    ((9, 9), (1, 1)),
]


def image_of(shape, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    high = 256 if dtype == np.uint8 else 65536
    return rng.integers(0, high, (*shape, channels)).astype(dtype)


def spec_for(size, interpolation, output):
    return PreprocessSpec(
        size=size,
        interpolation=interpolation,
        mean=(123.7, 116.3, 103.5),
        std=(58.4, 57.1, 57.4),
        output=output,
        scale=0.0173,
        zero_point={"int8": -7, "uint8": 131}.get(output, 0),
    )


def test_kernel_is_built():
    """A missing build must not pass unnoticed as a run of skips."""
    assert preprocess.KERNEL_AVAILABLE, "build it: python setup.py build_ext --inplace (or pip install .)"


def test_every_instruction_set_is_reachable():
    assert SIMD[-1] == "scalar" and preprocess._kernels.simd() == SIMD[0]


@needs_kernel
@pytest.mark.parametrize("output", preprocess.OUTPUTS)
@pytest.mark.parametrize("interpolation", preprocess.INTERPOLATIONS)
@pytest.mark.parametrize("channels, dtype", [(3, np.uint8), (1, np.uint8), (4, np.uint8), (3, np.uint16)])
@pytest.mark.parametrize("in_size, out_size", SIZES)
def test_kernel_equals_reference_exactly(in_size, out_size, channels, dtype, interpolation, output, simd):
    image = image_of(in_size, channels, dtype, seed=hash((in_size, out_size)) % 1000)
    spec = spec_for(out_size, interpolation, output)
    result = spec.apply(image)
    expected = reference_apply(spec, image)
    assert result.dtype == expected.dtype == np.dtype(output)
    assert result.tobytes() == expected.tobytes()


@needs_kernel
def test_randomised_shapes_sizes_and_views_equal_reference(simd):
    """Thousands of odd cases: every combination of sizes, channels, dtype, strides, outputs."""
    rng = np.random.default_rng(2024)
    for case in range(1500):
        in_h, in_w, out_h, out_w = (int(v) for v in rng.integers(1, 40, 4))
        channels = int(rng.choice([1, 3, 4]))
        dtype = np.uint16 if rng.random() < 0.2 else np.uint8
        image = image_of((in_h * 2, in_w * 2), channels, dtype, seed=case)
        views = {0: image[:in_h, :in_w], 1: image[::2, ::2], 2: image[in_h - 1 :: -1, ::-1], 3: image[:in_h, :in_w, 0]}
        image = views[case % 4]
        output = preprocess.OUTPUTS[case % 3]
        spec = spec_for((out_h, out_w), preprocess.INTERPOLATIONS[case % 2], output)
        got, want = spec.apply(image), reference_apply(spec, image)
        assert got.tobytes() == want.tobytes(), (case, image.shape, image.strides, spec)


@needs_kernel
@pytest.mark.parametrize("interpolation", preprocess.INTERPOLATIONS)
def test_camera_frame_equals_reference(interpolation, simd):
    """1080p: wide rows, sparse columns (bilinear reads 448 of 1920), many taps (area)."""
    image = image_of((1080, 1920), 3, np.uint8, seed=3)
    spec = spec_for((224, 224), interpolation, "float32")
    assert spec.apply(image).tobytes() == reference_apply(spec, image).tobytes()


@needs_kernel
@pytest.mark.parametrize("output", ["int8", "uint8"])
def test_tables_without_a_linear_form_equal_reference(output, simd):
    """Round half to even on exact ties is no line: SIMD falls back to the table lookup."""
    spec = PreprocessSpec(size=(20, 30), output=output, scale=2.0, zero_point=3)
    assert not preprocess._kernel_target(spec).linear
    assert preprocess._kernel_target(spec_for((20, 30), "bilinear", output)).linear
    image = image_of((41, 43), 3, np.uint8, seed=5)
    assert spec.apply(image).tobytes() == reference_apply(spec, image).tobytes()


@needs_kernel
@pytest.mark.parametrize("value", [0, 1, 128, 254, 255])
@pytest.mark.parametrize("interpolation", preprocess.INTERPOLATIONS)
@pytest.mark.parametrize("in_size, out_size", SIZES + [((1080, 1920), (224, 224)), ((182, 180), (128, 128))])
def test_flat_images_stay_exactly_flat(in_size, out_size, interpolation, value):
    """Q14 weights sum to exactly 16384: every output of a constant image is that level."""
    spec = PreprocessSpec(size=out_size, interpolation=interpolation).resized_only()
    assert np.all(spec.apply(np.full((*in_size, 3), value, np.uint8)) == value)


@pytest.mark.parametrize("interpolation", preprocess.INTERPOLATIONS)
@pytest.mark.parametrize("in_size, out_size", SIZES + [((1080, 1920), (224, 224)), ((224, 224), (363, 360)), ((7, 500), (300, 3))])
def test_within_one_grey_level_of_opencv(in_size, out_size, interpolation):
    cv2 = pytest.importorskip("cv2")
    flag = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}[interpolation]
    image = image_of(in_size, 3, np.uint8, seed=11)
    ours = PreprocessSpec(size=out_size, interpolation=interpolation).resized_only().apply(image)
    theirs = cv2.resize(image, out_size[::-1], interpolation=flag).reshape(ours.shape)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_smooth_image_matches_opencv_where_area_is_not_true_area():
    """INTER_AREA with one axis upscaled switches both axes to OpenCV's linear-like weights;
    a smooth ramp makes any other choice of weights visible."""
    cv2 = pytest.importorskip("cv2")
    ramp = np.add.outer(np.arange(58) * 4, np.arange(47) * 1).astype(np.uint8)
    image = np.repeat(ramp[:, :, None], 3, axis=2)
    ours = PreprocessSpec(size=(30, 57), interpolation="area").resized_only().apply(image)
    theirs = cv2.resize(image, (57, 30), interpolation=cv2.INTER_AREA)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_weight_tables_are_cached_and_read_only():
    a = axis_table(360, 224, "bilinear", False)
    assert axis_table(360, 224, "bilinear", False) is a
    assert not a.weight.flags.writeable
    area = axis_table(1920, 224, "area", False)
    assert area.weight.dtype == np.int16 and area.start.dtype == np.int32 and area.count.dtype == np.int32


@pytest.mark.parametrize(
    "in_size, out_size, mode, up",
    [(360, 224, "bilinear", False), (1920, 224, "area", False), (7, 300, "area", True), (37, 80, "bilinear", True),
     (60000, 200, "area", False), (100003, 7, "area", False), (1080, 224, "area", False)],
)
def test_weights_are_q14_summing_to_one_exactly(in_size, out_size, mode, up):
    """Also where hundreds of equal taps round up together (the residue spread over taps)."""
    t = axis_table(in_size, out_size, mode, up)
    used = np.arange(t.weight.shape[1])[None, :] < t.count[:, None]
    assert np.all(t.weight >= 0) and np.all(t.weight[~used] == 0)
    assert np.all(t.weight.sum(axis=1, dtype=np.int64) == WEIGHT_ONE)


def test_weights_round_the_float_weights_and_give_the_residue_to_the_first_largest():
    t = axis_table(363, 224, "bilinear", False)  # OpenCV's taps 0.58705, 0.41295: no residue
    assert t.start[5] == 8 and t.weight[5].tolist() == [9618, 6766]
    area = axis_table(5, 2, "area", False)  # 0.4 0.4 0.2 round to 6554 6554 3277: one too many
    assert area.weight.tolist() == [[6553, 6554, 3277], [3277, 6553, 6554]]


# ----------------------------------------------------------------------------- robustness


def _good_tables(image, size=(4, 4)):
    return axis_table(image.shape[0], size[0], "bilinear", False), axis_table(image.shape[1], size[1], "bilinear", False)


def _broken(table: AxisTable, **changes) -> AxisTable:
    fields = {"start": table.start.copy(), "count": table.count.copy(), "weight": table.weight.copy()}
    for name, (index, value) in changes.items():
        fields[name][index] = value
    return AxisTable(**fields)


def _float_target():
    return preprocess._kernels.Target("float32", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@needs_kernel
@pytest.mark.parametrize(
    "change",
    [
        {"start": (0, -1)},
        {"start": (3, 9)},  # start + count past the image
        {"count": (1, 0)},
        {"count": (1, 5)},  # more than the table's taps
        {"weight": ((2, 0), -5)},
        {"weight": ((2, 0), 16000)},  # no longer sums to 16384
        {"weight": ((2, 1), 30000)},
    ],
)
def test_plans_refuse_invalid_tables_instead_of_crashing(change):
    image = image_of((10, 10), 3, np.uint8, seed=0)
    rows, cols = _good_tables(image)
    plan = preprocess._kernels.Plan(rows, cols, 10, 10, 3)
    preprocess._kernels.preprocess_batch([(image, plan)], np.zeros((1, 4, 4, 3), np.float32), _float_target(), 1)
    with pytest.raises(ValueError):
        preprocess._kernels.Plan(_broken(rows, **change), cols, 10, 10, 3)
    with pytest.raises(ValueError):
        preprocess._kernels.Plan(rows, _broken(cols, **change), 10, 10, 3)


@needs_kernel
@pytest.mark.parametrize(
    "out, target, plan_for, threads",
    [
        (np.zeros((1, 4, 4, 3), np.float64), "float32", (10, 10, 3), 1),
        (np.zeros((2, 4, 4, 3), np.float32), "float32", (10, 10, 3), 1),
        (np.zeros((1, 4, 5, 3), np.float32), "float32", (10, 10, 3), 1),
        (np.zeros((1, 4, 4, 3), np.float32)[:, ::-1], "float32", (10, 10, 3), 1),
        (np.zeros((1, 4, 4, 3), np.int8), "uint8", (10, 10, 3), 1),
        (np.zeros((1, 4, 4, 3), np.float32), "float32", (10, 10, 1), 1),  # the plan is for grey images
        (np.zeros((1, 4, 4, 3), np.float32), "float32", (10, 10, 3), 0),
    ],
)
def test_kernel_checks_its_arguments(out, target, plan_for, threads):
    image = image_of((10, 10), 3, np.uint8, seed=0)
    plan = preprocess._kernels.Plan(*_good_tables(image), *plan_for)
    table = np.zeros((3, 256), np.uint8)
    t = _float_target() if target == "float32" else preprocess._kernels.Target(target, (0, 0, 0), (1, 1, 1), table)
    with pytest.raises(ValueError):
        preprocess._kernels.preprocess_batch([(image, plan)], out, t, threads)


@needs_kernel
@pytest.mark.parametrize("output, table", [("float16", None), ("int8", None), ("int8", np.zeros((3, 255), np.int8)), ("int8", np.zeros((3, 256), np.uint8))])
def test_targets_check_their_tables(output, table):
    with pytest.raises(ValueError):
        preprocess._kernels.Target(output, (0, 0, 0), (1, 1, 1), table)


@needs_kernel
def test_batches_release_the_gil_without_races():
    """Many threads at once (prange) into one output: each image lands in its own slot."""
    images = [image_of((50 + i, 70 - i), 3, np.uint8, seed=i) for i in range(32)]
    spec = spec_for((24, 20), "area", "int8")
    batch = spec.apply_batch(images, threads=8)
    for image, row in itertools.zip_longest(images, batch):
        assert row.tobytes() == reference_apply(spec, image).tobytes()
