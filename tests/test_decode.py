"""load_image: formats, modes, EXIF orientation, JPEG draft decoding, and one clear error for
every unreadable file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from bcc_edge import decode
from bcc_edge.errors import BccError
from bcc_edge.decode import ImageDecodeError, load_image
from bcc_edge.preprocess import PreprocessSpec


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """A smooth image with some texture (JPEG keeps it close)."""
    yy, xx = np.mgrid[:60, :80]
    rng = np.random.default_rng(5)
    image = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=2) + rng.integers(0, 8, (60, 80, 3))
    return image.astype(np.uint8)


def save(tmp_path, array_or_image, name, **kwargs):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def check(result, shape):
    assert result.shape == shape and result.dtype == np.uint8 and result.flags.c_contiguous


@pytest.mark.parametrize("name", ["a.png", "a.bmp", "a.tif", "a.tiff"])
def test_lossless_formats_round_trip(tmp_path, pixels, name):
    result = load_image(save(tmp_path, pixels, name))
    check(result, pixels.shape)
    assert np.array_equal(result, pixels)


def test_jpeg(tmp_path, pixels):
    result = load_image(save(tmp_path, pixels, "a.jpg", quality=95))
    check(result, pixels.shape)
    assert np.abs(result.astype(int) - pixels).mean() < 3


def test_path_may_be_a_string(tmp_path, pixels):
    assert np.array_equal(load_image(str(save(tmp_path, pixels, "a.png"))), pixels)


def test_grey_and_one_bit_become_rgb(tmp_path, pixels):
    grey = pixels[:, :, 0]
    result = load_image(save(tmp_path, grey, "g.png"))
    check(result, pixels.shape)
    assert np.array_equal(result, np.repeat(grey[:, :, None], 3, axis=2))
    bits = load_image(save(tmp_path, Image.fromarray(grey).convert("1"), "b.png"))
    assert set(np.unique(bits)) <= {0, 255} and bits.shape == pixels.shape


def test_palette_becomes_its_colours(tmp_path, pixels):
    palette = Image.fromarray(pixels).quantize(32)
    expected = np.asarray(palette.convert("RGB"))
    assert np.array_equal(load_image(save(tmp_path, palette, "p.png")), expected)
    assert np.array_equal(load_image(save(tmp_path, palette, "p.bmp")), expected)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_alpha_is_dropped(tmp_path, pixels, mode):
    alpha = np.linspace(0, 255, pixels.size // 3).reshape(pixels.shape[:2]).astype(np.uint8)
    rgba = Image.fromarray(np.concatenate([pixels, alpha[:, :, None]], axis=2))
    if mode == "LA":
        rgba = rgba.convert("LA")
    elif mode == "P":  # a palette with a transparent entry
        rgba = rgba.convert("RGB").quantize(32)
        rgba.info["transparency"] = 0
    expected = np.asarray(rgba.convert("RGB"))  # the stored colours, whatever the alpha
    result = load_image(save(tmp_path, rgba, "a.png"))
    check(result, pixels.shape)
    assert np.array_equal(result, expected)


@pytest.mark.parametrize("name", ["g16.png", "g16.tif"])
def test_sixteen_bit_grey_is_divided_by_257(tmp_path, name):
    wide = np.random.default_rng(1).integers(0, 65536, (30, 40)).astype(np.uint16)
    wide[0, :4] = [0, 128, 129, 65535]  # 128/257 rounds down, 129/257 up, the ends are exact
    result = load_image(save(tmp_path, wide, name))
    check(result, (30, 40, 3))
    expected = np.rint(wide / 257.0).astype(np.uint8)
    assert np.array_equal(result[:, :, 1], expected)
    assert result[0, :4, 0].tolist() == [0, 0, 1, 255]


def test_sixteen_bit_rgb_is_within_one_level(tmp_path):
    cv2 = pytest.importorskip("cv2")  # Pillow cannot write 16-bit RGB
    wide = np.random.default_rng(2).integers(0, 65536, (30, 40, 3)).astype(np.uint16)
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), wide[:, :, ::-1])
    result = load_image(path)
    check(result, wide.shape)
    assert np.abs(result.astype(int) - np.rint(wide / 257.0)).max() <= 1


def test_cmyk_jpeg_becomes_rgb(tmp_path, pixels):
    path = save(tmp_path, Image.fromarray(pixels).convert("CMYK"), "c.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    result = load_image(path)
    check(result, pixels.shape)
    assert np.abs(result.astype(int) - pixels).mean() < 4


def test_float_tiff_is_refused(tmp_path):
    path = save(tmp_path, np.ones((5, 5), np.float32), "f.tif")
    with pytest.raises(ImageDecodeError, match="floating-point"):
        load_image(path)


# ----------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, pixels, orientation):
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = save(tmp_path, image, "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    result = load_image(path)
    assert np.array_equal(result, expected)
    if orientation == 6:  # "rotate 90 clockwise to view": checked without Pillow's help
        assert np.array_equal(result, np.rot90(pixels, -1))
    if orientation in (5, 6, 7, 8):
        assert result.shape == (80, 60, 3)


# ----------------------------------------------------------------------------- JPEG draft


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    rng = np.random.default_rng(3)
    array = np.kron(rng.integers(0, 255, (90, 88, 3)), np.ones((10, 10, 1))).astype(np.uint8)  # 900 x 880
    return save(tmp_path_factory.mktemp("draft"), array, "big.jpg", quality=90), array


@pytest.mark.parametrize(
    "size, expected",
    [
        ((224, 224), (450, 440)),  # 880 // 224 = 3: the largest power of two up to it is 2
        ((120, 120), (225, 220)),  # 880 // 120 = 7: 1/4
        ((110, 110), (113, 110)),  # 880 // 110 = 8: 1/8 (sides round up)
        ((500, 400), (900, 880)),  # 900 // 500 = 1: no reduction
    ],
)
def test_jpeg_draft_picks_the_smallest_power_of_two_reduction_still_covering_size(big_jpeg, size, expected):
    path, _ = big_jpeg
    result = load_image(path, PreprocessSpec(size=size, jpeg_draft=True))
    check(result, (*expected, 3))
    assert result.shape[0] >= size[0] and result.shape[1] >= size[1]


def test_no_draft_unless_asked(big_jpeg):
    path, array = big_jpeg
    check(load_image(path, PreprocessSpec(size=(112, 110))), array.shape)


def test_draft_ignores_non_jpeg(tmp_path, pixels):
    assert load_image(save(tmp_path, pixels, "a.png"), PreprocessSpec(size=(8, 8), jpeg_draft=True)).shape == pixels.shape


def test_draft_target_follows_exif_rotation(tmp_path):
    image = Image.fromarray(np.zeros((400, 800, 3), np.uint8))  # stored 400 x 800, shown 800 x 400
    exif = image.getexif()
    exif[0x0112] = 6
    path = save(tmp_path, image, "r.jpg", exif=exif)
    # Targets are given upright; unswapped they would pick 1/1 and 1/2 instead of 1/2 and 1/4.
    assert load_image(path, PreprocessSpec(size=(400, 200), jpeg_draft=True)).shape == (400, 200, 3)
    assert load_image(path, PreprocessSpec(size=(200, 100), jpeg_draft=True)).shape == (200, 100, 3)


# ----------------------------------------------------------------------------- errors


def jpeg_bytes(pixels) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.jpg", lambda p: b"", "empty"),
        ("text.jpg", lambda p: b"this is not an image\n" * 10, "not an image"),
        ("truncated.jpg", lambda p: jpeg_bytes(p)[: len(jpeg_bytes(p)) // 2], "truncated"),
        ("header-only.jpg", lambda p: jpeg_bytes(p)[:200], "truncated"),
        ("bad-marker.jpg", lambda p: jpeg_bytes(p)[:2] + b"\xff\xc0\x00\x02" + jpeg_bytes(p)[6:], "corrupt"),
        ("bad-huffman.jpg", lambda p: corrupt_huffman_table(jpeg_bytes(p)), "corrupt"),
        ("truncated.png", lambda p: save_bytes(p, "PNG")[:-100], "truncated"),
        ("truncated.bmp", lambda p: save_bytes(p, "BMP")[:-500], "truncated"),
        ("truncated.tif", lambda p: save_bytes(p, "TIFF")[:-500], "truncated"),
    ],
)
def test_unreadable_files_raise_image_decode_error(tmp_path, pixels, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content(pixels))
    with pytest.raises(ImageDecodeError, match=reason) as info:
        load_image(path)
    error = info.value
    assert isinstance(error, BccError)
    assert error.path == str(path) and str(path) in str(error)
    assert "\n" not in str(error)


def corrupt_huffman_table(jpeg: bytes) -> bytes:
    at = jpeg.index(b"\xff\xc4") + 5  # the code counts of the first Huffman table
    return jpeg[:at] + b"\xff" * 16 + jpeg[at + 16 :]


def save_bytes(pixels, fmt) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageDecodeError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageDecodeError, match="directory"):
        load_image(tmp_path)


def test_truncated_images_are_not_silently_loaded():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing in bcc_edge flips it


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, pixels, monkeypatch):
    path = save(tmp_path, pixels, "a.png")
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 60 * 80 - 1)

    class Decoded(BaseException):  # not an Exception: decode turns those into error rows
        pass

    def no_decoding(self):
        raise Decoded

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageDecodeError, match="MAX_IMAGE_PIXELS"):
        load_image(path)
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 60 * 80)
    with pytest.raises(Decoded):  # at the limit it gets as far as decoding
        load_image(path)
