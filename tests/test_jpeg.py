"""The simplejpeg fast path gives exactly Pillow's pixels, or steps aside for Pillow."""

from __future__ import annotations

import contextlib
import io
import struct

import numpy as np
import pytest
from PIL import Image

from bcc_edge import decode, jpeg
from bcc_edge.decode import ImageDecodeError, load_image
from bcc_edge.preprocess import PreprocessSpec

pytest.importorskip("simplejpeg")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """Texture and edges in every channel, odd sides (partial MCUs at the borders)."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:363, :361]
    smooth = np.stack([xx * 0.6, yy * 0.7, (xx + yy) * 0.35], axis=2)
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


def encode(array_or_image, **kwargs) -> bytes:
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


@pytest.fixture
def pillow_only(monkeypatch):
    """Run load_image as it decodes without the fast path."""

    def load(path, spec=None):
        with monkeypatch.context() as patch:
            patch.setattr(jpeg, "simplejpeg", None)
            return load_image(path, spec)

    return load


@pytest.fixture
def without_pillow(monkeypatch):
    """Fail the test if Pillow opens a file: the fast path must do the whole job."""

    def refuse(*args, **kwargs):
        raise AssertionError("Pillow decoded the file")

    monkeypatch.setattr(Image, "open", refuse)


@pytest.mark.parametrize("subsampling", [0, 1, 2], ids=["444", "422", "420"])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("size", [None, (224, 224), (128, 128), (64, 48), (40, 40)], ids=str)
def test_same_pixels_as_pillow(tmp_path, photo, pillow_only, subsampling, progressive, size):
    path = tmp_path / "a.jpg"
    path.write_bytes(encode(photo, quality=87, subsampling=subsampling, progressive=progressive))
    spec = None if size is None else PreprocessSpec(size=size, jpeg_draft=True)
    expected = pillow_only(path, spec)
    result = load_image(path, spec)
    assert result.dtype == np.uint8 and result.flags.c_contiguous
    assert result.shape == expected.shape and np.array_equal(result, expected)


def test_grey_jpeg_is_replicated_like_pillow(tmp_path, photo, pillow_only, monkeypatch):
    path = tmp_path / "g.jpg"
    path.write_bytes(encode(Image.fromarray(photo).convert("L"), quality=90))
    spec = PreprocessSpec(size=(128, 128), jpeg_draft=True)
    expected = pillow_only(path, spec)
    monkeypatch.setattr(Image, "open", None)  # the fast path must not need it
    result = load_image(path, spec)
    assert np.array_equal(result, expected)
    assert np.array_equal(result[..., 0], result[..., 2])


def test_plain_jpeg_never_touches_pillow(tmp_path, photo, without_pillow):
    path = tmp_path / "a.jpg"
    path.write_bytes(encode(photo, quality=90))
    assert load_image(path, PreprocessSpec(size=(128, 128), jpeg_draft=True)).shape == (182, 181, 3)


def exif_block(orientation: int, order: str = "<", kind: int = 3) -> bytes:
    """An APP1 Exif segment whose IFD0 holds a second tag and then the orientation."""
    mark = b"II" if order == "<" else b"MM"
    entries = [struct.pack(order + "HHI4s", 0x010F, 2, 4, b"bcc\0")]
    value = struct.pack(order + "H", orientation) + b"\0\0" if kind == 3 else struct.pack(order + "I", orientation)
    entries.append(struct.pack(order + "HHI", 0x0112, kind, 1) + value)
    tiff = mark + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", len(entries)) + b"".join(entries) + b"\0" * 4
    payload = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_segment(jpeg_bytes: bytes, segment: bytes) -> bytes:
    return jpeg_bytes[:2] + segment + jpeg_bytes[2:]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("order", ["<", ">"], ids=["II", "MM"])
def test_exif_orientation_matches_pillow(tmp_path, photo, pillow_only, orientation, order):
    path = tmp_path / "o.jpg"
    path.write_bytes(with_segment(encode(photo[:200, :120], quality=90), exif_block(orientation, order)))
    assert jpeg.exif_orientation(path.read_bytes()) == orientation
    for spec in (None, PreprocessSpec(size=(60, 100), jpeg_draft=True)):
        expected = pillow_only(path, spec)
        assert np.array_equal(load_image(path, spec), expected)
    if orientation == 6:  # "rotate 90 clockwise to view", checked without Pillow's transposes
        stored = tmp_path / "stored.jpg"
        stored.write_bytes(encode(photo[:200, :120], quality=90))
        assert np.array_equal(load_image(path), np.rot90(load_image(stored), -1))


def test_orientation_of_files_without_exif_is_one(photo):
    assert jpeg.exif_orientation(encode(photo)) == 1


def NO_GUARD(width, height, decoded_pixels):  # jpeg.decode's size guard, accepting everything
    return contextlib.nullcontext()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:2] + b"\x00\x00" + data[2:],  # not a marker where one must be
        lambda data: data[:2] + b"\xff\xe1\x00\x01" + data[2:],  # impossible segment length
        lambda data: with_segment(data, exif_block(6, kind=4)),  # orientation stored as LONG
        lambda data: with_segment(data, b"\xff\xe1\x00\x0cExif\0\0XX\0\0"),  # no TIFF byte order
    ],
    ids=["no-marker", "bad-length", "long-orientation", "bad-tiff"],
)
def test_headers_it_cannot_walk_go_to_pillow(photo, damage):
    data = damage(encode(photo[:64, :64]))
    assert jpeg.decode(data, None, NO_GUARD) is None


def test_cmyk_goes_to_pillow(tmp_path, photo, pillow_only):
    data = encode(Image.fromarray(photo).convert("CMYK"))
    assert jpeg.decode(data, None, NO_GUARD) is None
    path = tmp_path / "c.jpg"
    path.write_bytes(data)
    assert np.array_equal(load_image(path), pillow_only(path))


def test_truncated_jpeg_is_still_an_error(tmp_path, photo):
    data = encode(photo, quality=90)
    assert jpeg.decode(data[: len(data) // 2], None, NO_GUARD) is None
    path = tmp_path / "t.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_image(path)


def test_pixel_limit_is_checked_before_decoding(tmp_path, photo, monkeypatch, without_pillow):
    path = tmp_path / "a.jpg"
    path.write_bytes(encode(photo))

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(jpeg.simplejpeg, "decode_jpeg", no_decoding)
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 363 * 361 - 1)
    with pytest.raises(ImageDecodeError, match="MAX_IMAGE_PIXELS"):
        load_image(path)


@pytest.mark.parametrize("width, height", [(360, 363), (880, 900), (100, 1000), (129, 129), (50, 50)])
@pytest.mark.parametrize("target", [(128, 128), (224, 224), (64, 32), (45, 45)])
def test_draft_scale_is_pillows(width, height, target):
    im = Image.new("RGB", (width, height))
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG")
    with Image.open(buffer) as reopened:
        reopened.draft("RGB", target)
        expected = -(-width // reopened.size[0])
    assert jpeg.draft_scale(width, height, *target) == expected
