"""PreprocessSpec validation and serialisation, the maths of `apply`, bad input, and the
numpy fallback when the C kernel is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from bcc_edge import preprocess
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessError, PreprocessSpec, reference_apply

SPEC = PreprocessSpec(size=(24, 20), mean=(120.0, 130.0, 140.0), std=(50.0, 60.0, 70.0))


def rgb(h=31, w=29, seed=0, channels=3, dtype=np.uint8):
    high = 256 if dtype == np.uint8 else 65536
    return np.random.default_rng(seed).integers(0, high, (h, w, channels)).astype(dtype)


# ----------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    "spec",
    [
        SPEC,
        PreprocessSpec(size=(7, 300), interpolation="area", output="int8", scale=0.0123, zero_point=-5, jpeg_draft=True),
        PreprocessSpec(size=(1, 1), output="uint8", scale=0.5, zero_point=255),
    ],
)
def test_dict_and_json_round_trip(spec):
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["color_order"] == "RGB"
    assert PreprocessSpec.from_dict(d) == spec
    assert PreprocessSpec.from_json(spec.to_json()) == spec


def test_fields_are_normalised():
    spec = PreprocessSpec(size=[np.int64(5), 6], mean=np.array([1, 2, 3]), std=[1, 2, 3], output=np.str_("float32"))
    assert spec.size == (5, 6) and type(spec.size[0]) is int
    assert spec.mean == (1.0, 2.0, 3.0) and type(spec.mean[0]) is float
    assert type(spec.output) is str
    hash(spec)  # usable as a cache key


def test_float32_output_ignores_quantisation_fields():
    # TFLite reports scale 0 / zero point 0 for float tensors; such specs equal the plain one.
    assert SPEC.with_output("float32", 0.0, 0) == SPEC


def test_with_output_and_resized_only():
    q = SPEC.with_output("int8", 0.02, -3)
    assert (q.output, q.scale, q.zero_point, q.size, q.mean) == ("int8", 0.02, -3, SPEC.size, SPEC.mean)
    r = q.resized_only()
    assert (r.output, r.mean, r.std, r.scale, r.zero_point) == ("uint8", (0.0,) * 3, (1.0,) * 3, 1.0, 0)
    assert r.size == SPEC.size and r.interpolation == SPEC.interpolation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": (0, 224)}, "size"),
        ({"size": (224, -1)}, "size"),
        ({"size": (224,)}, "size"),
        ({"size": "224"}, "size"),
        ({"size": (224.0, 224)}, "size"),
        ({"size": (True, 224)}, "size"),
        ({"size": (1 << 20, 224)}, "size"),
        ({"interpolation": "nearest"}, "interpolation"),
        ({"mean": (1.0, 2.0)}, "mean"),
        ({"mean": (1.0, 2.0, float("nan"))}, "mean"),
        ({"std": (1.0, 0.0, 1.0)}, "std"),
        ({"std": (1.0, -2.0, 1.0)}, "std"),
        ({"std": (1.0, float("inf"), 1.0)}, "std"),
        ({"std": ("a", 1.0, 1.0)}, "std"),
        ({"output": "float16"}, "output"),
        ({"output": "int8", "scale": 0.0}, "scale"),
        ({"output": "uint8", "scale": -0.1}, "scale"),
        ({"output": "int8", "scale": float("nan")}, "scale"),
        ({"output": "int8", "zero_point": 128}, "zero_point"),
        ({"output": "int8", "zero_point": -129}, "zero_point"),
        ({"output": "uint8", "zero_point": -1}, "zero_point"),
        ({"output": "uint8", "zero_point": 256}, "zero_point"),
        ({"output": "int8", "zero_point": 1.5}, "zero_point"),
        ({"jpeg_draft": "yes"}, "jpeg_draft"),
    ],
)
def test_invalid_spec_fields_raise_with_a_message(kwargs, message):
    args = {"size": (224, 224), **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        PreprocessSpec(**args)
    assert isinstance(info.value, BccError)  # the CLI prints it as one line


@pytest.mark.parametrize(
    "d, message",
    [
        ({"size": [4, 4], "colour": "RGB"}, "unknown"),
        ({"size": [4, 4], "color_order": "BGR"}, "RGB"),
        ({"interpolation": "area"}, "size"),
        ([4, 4], "JSON object"),
    ],
)
def test_from_dict_rejects_bad_documents(d, message):
    with pytest.raises(PreprocessError, match=message):
        PreprocessSpec.from_dict(d)


def test_from_json_rejects_invalid_json():
    with pytest.raises(PreprocessError, match="JSON"):
        PreprocessSpec.from_json("{size: 4")


# ----------------------------------------------------------------------------- the maths


@pytest.mark.parametrize("output", preprocess.OUTPUTS)
def test_apply_returns_hw3_of_the_output_dtype(output):
    spec = SPEC.with_output(output, 0.05, 3)
    result = spec.apply(rgb())
    assert result.shape == (24, 20, 3) and result.dtype == np.dtype(output)
    assert result.flags.c_contiguous


@pytest.mark.parametrize("value", [0, 1, 77, 128, 254, 255])
def test_constant_image_gives_the_normalised_level(value):
    """x = float32(float32(p - m) * r), m = float32(mean), r = float32(1 / std) (1/std in float64)."""
    image = np.full((37, 41, 3), value, np.uint8)
    m, r = np.float32(SPEC.mean), (1 / np.array(SPEC.std)).astype(np.float32)
    expected = (np.float32(value) - m) * r
    for interpolation in preprocess.INTERPOLATIONS:
        spec = PreprocessSpec(size=(24, 20), interpolation=interpolation, mean=SPEC.mean, std=SPEC.std)
        result = spec.apply(image)
        assert np.array_equal(result, np.broadcast_to(expected, result.shape))


@pytest.mark.parametrize(
    "output, scale, zero_point, value, expected",
    [
        ("int8", 2.0, 0, 1, 0),  # 0.5 rounds half to even: 0
        ("int8", 2.0, 0, 3, 2),  # 1.5 -> 2
        ("int8", 2.0, 0, 5, 2),  # 2.5 -> 2
        ("int8", 1.0, 0, 255, 127),  # saturates
        ("int8", 1.0, -128, 0, -128),
        ("uint8", 1.0, 10, 255, 255),  # saturates
        ("uint8", 0.5, 3, 100, 203),
        ("uint8", 4.0, 0, 6, 2),  # 1.5 -> 2
    ],
)
def test_quantised_outputs_round_half_even_and_saturate(output, scale, zero_point, value, expected):
    spec = PreprocessSpec(size=(3, 3), output=output, scale=scale, zero_point=zero_point)
    result = spec.apply(np.full((5, 5, 3), value, np.uint8))
    assert np.all(result == expected)


@pytest.mark.parametrize("interpolation", preprocess.INTERPOLATIONS)
def test_same_size_is_the_identity(interpolation):
    image = rgb(24, 20)
    spec = PreprocessSpec(size=(24, 20), interpolation=interpolation).resized_only()
    assert np.array_equal(spec.apply(image), image)


@pytest.mark.parametrize("output", preprocess.OUTPUTS)
@pytest.mark.parametrize("interpolation", preprocess.INTERPOLATIONS)
def test_cached_resized_image_gives_the_same_bytes(output, interpolation):
    """The contract data caches rely on: apply(resized_only().apply(x)) == apply(x)."""
    spec = PreprocessSpec(size=(24, 20), interpolation=interpolation, mean=SPEC.mean, std=SPEC.std)
    spec = spec.with_output(output, 0.031, 2)
    image = rgb(53, 47)
    cached = spec.resized_only().apply(image)
    assert spec.apply(cached).tobytes() == spec.apply(image).tobytes()


def test_grey_is_replicated_and_alpha_dropped():
    image = rgb(33, 27)
    grey = image[:, :, 0]
    as_rgb = np.repeat(grey[:, :, None], 3, axis=2)
    expected = SPEC.apply(as_rgb)
    assert np.array_equal(SPEC.apply(grey), expected)
    assert np.array_equal(SPEC.apply(grey[:, :, None]), expected)
    rgba = np.concatenate([image, rgb(33, 27, seed=9)[:, :, :1]], axis=2)
    assert np.array_equal(SPEC.apply(rgba), SPEC.apply(image))


@pytest.mark.parametrize("interpolation", preprocess.INTERPOLATIONS)
def test_uint16_is_scaled_by_257(interpolation):
    """(sum W * 257v + 16448) // 32896 == (sum W * v + 64) >> 7: 257 * v gives the bytes of v."""
    image = rgb(24, 20)
    wide = image.astype(np.uint16) * 257
    spec = SPEC.with_output("uint8", 1.0, 0).resized_only()
    assert np.array_equal(spec.apply(wide), image)  # no resampling: exactly v
    for size in [(13, 17), (50, 7)]:
        spec = PreprocessSpec(size=size, interpolation=interpolation, mean=SPEC.mean, std=SPEC.std)
        assert spec.apply(wide).tobytes() == spec.apply(image).tobytes()


def test_byte_swapped_uint16_is_accepted():
    image = (rgb(24, 20).astype(np.uint16) * 257).astype(">u2")
    assert np.array_equal(SPEC.apply(image), SPEC.apply(image.astype(np.uint16)))


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[::2, ::3],
        lambda a: a[::-1, ::-1],
        lambda a: a[5:30, 3:20, ::-1],
        lambda a: a.transpose(1, 0, 2),
        lambda a: np.asfortranarray(a),
        lambda a: a[:, :, 1],
    ],
)
def test_non_contiguous_views_equal_their_copies(view):
    v = view(rgb(40, 36))
    assert not v.flags.c_contiguous
    assert np.array_equal(SPEC.apply(v), SPEC.apply(np.ascontiguousarray(v)))


def test_one_pixel_images_and_outputs():
    pixel = np.array([[[10, 200, 30]]], np.uint8)
    up = PreprocessSpec(size=(5, 4)).resized_only().apply(pixel)
    assert np.array_equal(up, np.broadcast_to(pixel, (5, 4, 3)))
    down = PreprocessSpec(size=(1, 1), interpolation="area").resized_only().apply(np.full((9, 7, 3), 42, np.uint8))
    assert down.tolist() == [[[42, 42, 42]]]


# ----------------------------------------------------------------------------- batches


def test_batch_of_different_sizes_equals_single_images():
    images = [rgb(31, 29, 1), rgb(5, 90, 2)[:, :, 0], rgb(200, 7, 3, channels=4), rgb(24, 20, 4, dtype=np.uint16)]
    batch = SPEC.apply_batch(images, threads=2)
    assert batch.shape == (4, 24, 20, 3)
    for image, result in zip(images, batch):
        assert np.array_equal(result, SPEC.apply(image))


def test_batch_from_an_nhwc_array_and_into_out():
    images = np.stack([rgb(31, 29, s) for s in range(5)])
    out = np.full((5, 24, 20, 3), np.nan, np.float32)
    result = SPEC.apply_batch(images, out=out, threads=3)
    assert result is out
    for image, row in zip(images, out):
        assert np.array_equal(row, SPEC.apply(image))


def test_thread_counts_give_identical_batches():
    images = [rgb(60, 50, s) for s in range(9)]
    one = SPEC.apply_batch(images, threads=1)
    assert np.array_equal(SPEC.apply_batch(images, threads=4), one)
    assert np.array_equal(SPEC.apply_batch(images), one)


def test_empty_batch():
    assert SPEC.apply_batch([]).shape == (0, 24, 20, 3)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((8, 8, 3), np.float32), "dtype"),
        (np.zeros((8, 8, 3), np.int8), "dtype"),
        (np.zeros((8, 8, 3), np.int16), "dtype"),
        (np.zeros((8, 8, 3), bool), "dtype"),
        (np.zeros((8, 8, 3), np.uint32), "dtype"),
        (np.zeros(8, np.uint8), "dimensions"),
        (np.zeros((2, 8, 8, 3), np.uint8), "dimensions"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        (np.zeros((8, 0, 3), np.uint8), "empty"),
        (np.zeros((8, 8, 0), np.uint8), "channels"),
        (np.zeros((8, 8, 2), np.uint8), "channels"),
        (np.zeros((8, 8, 5), np.uint8), "channels"),
        ([[1, 2], [3, 4]], "numpy array"),
        (None, "numpy array"),
    ],
)
def test_bad_images_raise_value_errors(image, message):
    with pytest.raises(ValueError, match=message):
        SPEC.apply(image)
    with pytest.raises(ValueError, match=message):
        reference_apply(SPEC, image)
    with pytest.raises(ValueError, match=message):
        SPEC.apply_batch([rgb(), image])


@pytest.mark.parametrize(
    "out, message",
    [
        (np.zeros((2, 24, 20, 3), np.float64), "dtype"),
        (np.zeros((2, 20, 24, 3), np.float32), "shape"),
        (np.zeros((3, 24, 20, 3), np.float32), "shape"),
        (np.zeros((2, 24, 20, 4), np.float32), "shape"),
        (np.zeros((2, 24, 40, 3), np.float32)[:, :, ::2], "contiguous"),
        ([[0.0]], "numpy array"),
    ],
)
def test_bad_out_raises(out, message):
    with pytest.raises(ValueError, match=message):
        SPEC.apply_batch([rgb(), rgb()], out=out)


def test_read_only_out_raises():
    out = np.zeros((1, 24, 20, 3), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        SPEC.apply_batch([rgb()], out=out)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_counts_raise(threads):
    with pytest.raises(ValueError, match="threads"):
        SPEC.apply_batch([rgb()], threads=threads)


@pytest.mark.skipif(not preprocess.KERNEL_AVAILABLE, reason="bcc_edge._kernels is not built")
def test_threads_are_capped_at_the_usable_cpus_and_the_images(monkeypatch):
    started = []
    kernel = preprocess._kernels.preprocess_batch
    monkeypatch.setattr(preprocess._kernels, "preprocess_batch", lambda jobs, out, target, threads: started.append(threads) or kernel(jobs, out, target, threads))
    images = [rgb(seed=s) for s in range(3)]
    batch = SPEC.apply_batch(images, threads=10**6)
    assert started == [min(3, preprocess.usable_cpus())]
    assert np.array_equal(batch, SPEC.apply_batch(images, threads=1))
    SPEC.apply_batch(images[:1], threads=10**6)
    assert started[-1] == 1


@pytest.mark.parametrize("alias", [lambda out: out[1].view(np.uint8)[:, :, :3], lambda out: out.view(np.uint8).reshape(-1)[:300].reshape(10, 10, 3)])
def test_out_overlapping_an_image_raises(alias):
    """The kernel would read pixels it has already overwritten: refused, not silently wrong."""
    out = np.zeros((2, 24, 20, 3), np.float32)
    with pytest.raises(PreprocessError, match="shares memory with image 1"):
        SPEC.apply_batch([rgb(), alias(out)], out=out)


@pytest.mark.parametrize("images", [np.zeros((8, 8, 3), np.uint8), "image.png", 42])
def test_apply_batch_needs_a_list_or_nhwc_array(images):
    with pytest.raises(ValueError, match="list"):
        SPEC.apply_batch(images)


# ----------------------------------------------------------------------------- fallback


def test_numpy_fallback_warns_once_and_matches(monkeypatch):
    image = rgb(50, 45)
    expected = SPEC.apply_batch([image, image[:, :, 0]])
    monkeypatch.setattr(preprocess, "_kernels", None)
    monkeypatch.setattr(preprocess, "_warned_no_kernel", False)
    with pytest.warns(RuntimeWarning, match="_kernels is not built") as record:
        first = SPEC.apply_batch([image, image[:, :, 0]])
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = SPEC.apply(image)
    assert np.array_equal(first, expected)
    assert np.array_equal(second, expected[0])


def test_missing_extension_is_not_a_crash():
    code = (
        "import sys, warnings, numpy as np\n"
        "sys.modules['bcc_edge._kernels'] = None\n"  # makes `from bcc_edge import _kernels` fail
        "from bcc_edge import preprocess as p\n"
        "assert not p.KERNEL_AVAILABLE\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    r = p.PreprocessSpec(size=(4, 4)).apply(np.zeros((9, 9, 3), np.uint8))\n"
        "assert r.shape == (4, 4, 3) and len(w) == 1, w\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
