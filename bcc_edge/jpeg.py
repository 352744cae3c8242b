"""The fast path for baseline JPEGs: libjpeg-turbo through simplejpeg, straight into numpy.

`decode.load_image` is the reference decoder (Pillow); this path must give it the same
bytes or step aside. Both wrap libjpeg-turbo with the same (accurate integer) IDCT and fancy
upsampling, so a YCbCr or grey JPEG decodes to identical pixels, at the same DCT-domain
scale when the spec asks for draft decoding; simplejpeg skips Pillow's per-file overhead
(header parsing, EXIF dictionary, image object, copy into numpy): ~0.26 ms instead of
~0.35 ms for a 360x363 PBC image at 1/2 scale, the largest stage of `bcc-edge infer`.

Anything unusual (CMYK/Adobe colour, a header or EXIF block this module does not parse, a
decoder complaint) returns None and Pillow decides: it either reads the file or reports why.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Callable, ContextManager, Iterator

import numpy as np

try:
    import simplejpeg
except ImportError:  # no wheel for this platform: Pillow decodes everything
    simplejpeg = None

SOI = b"\xff\xd8\xff"

_SOS, _EOI, _APP1 = 0xDA, 0xD9, 0xE1
# Start-of-frame markers carry the image size: 0xC0-0xCF except DHT, JPG and DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
EXIF_ORIENTATION = 0x0112  # the EXIF tag
_COLOURSPACES = ("YCbCr", "Gray")  # what turbojpeg turns into RGB exactly as Pillow does


def stored_target(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """An upright (height, width) target as the pixels are stored: swapped for images stored
    sideways (EXIF orientations 5-8)."""
    height, width = size
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def draft_scale(width: int, height: int, target_width: int, target_height: int) -> int:
    """Pillow's `draft` reduction for a JPEG: the largest of 8, 4, 2, 1 that both sides allow."""
    allowed = min(width // target_width, height // target_height)
    return next(scale for scale in (8, 4, 2, 1) if scale <= max(allowed, 1))


def decode(data: bytes, draft_size: tuple[int, int] | None, guard: Callable[[int, int, int], ContextManager]) -> np.ndarray | None:
    """JPEG bytes -> upright C-contiguous HxWx3 uint8 RGB, identical to Pillow's decode, or
    None when Pillow should decode the file.

    `draft_size`: (height, width) to decode towards with DCT scaling as Pillow's draft does
    (swapped for images stored sideways), or None for full size.
    `guard(width, height, decoded_pixels)` is called before decoding: it may raise to refuse
    the image, and the decode runs inside the context it returns.
    """
    if simplejpeg is None:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colourspace not in _COLOURSPACES:
        return None
    orientation = exif_orientation(data)
    if orientation is None:
        return None
    scale = 1
    if draft_size is not None:
        target_height, target_width = stored_target(draft_size, orientation)
        scale = draft_scale(width, height, target_width, target_height)
    # turbojpeg picks the smallest scaling factor that keeps these minimums: exactly 1/scale.
    out_height, out_width = -(-height // scale), -(-width // scale)
    with guard(width, height, out_height * out_width):
        try:
            rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=out_height, min_width=out_width)
        except ValueError:
            return None
    if rgb.shape != (out_height, out_width, 3):
        return None
    return upright(rgb, orientation)


def upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (2-8; anything else is left alone) as Pillow's transposes do."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: a.transpose(1, 0, 2)[::-1],
    }.get(orientation)
    return rgb if turned is None else np.ascontiguousarray(turned(rgb))


def _segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, position, segment length) of the marker segments before the first scan.
    Raises ValueError where the markers cannot be walked."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise ValueError("not a marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (_SOS, _EOI):
            return
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise ValueError("bad segment length")
        yield marker, pos, length
        pos += 2 + length
    raise ValueError("no scan")


def header_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the frame header, or None where it cannot be found."""
    with contextlib.suppress(ValueError, struct.error):
        for marker, pos, _ in _segments(data):
            if marker in _SOF:
                height, width = struct.unpack_from(">HH", data, pos + 5)
                return height, width
    return None


def exif_orientation(data: bytes) -> int | None:
    """The EXIF orientation of the first Exif APP1 block (1 when there is none), or None when
    the markers before the scan cannot be walked (then Pillow reads the file)."""
    try:
        for marker, pos, length in _segments(data):
            if marker == _APP1 and data[pos + 4 : pos + 10] == b"Exif\0\0":
                return _tiff_orientation(data[pos + 10 : pos + 2 + length])
    except ValueError:
        return None
    return 1


def _tiff_orientation(tiff: bytes) -> int | None:
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", tiff, entry)
            if tag == EXIF_ORIENTATION:
                return struct.unpack_from(order + "H", tiff, entry + 8)[0] if kind == 3 else None
    except (KeyError, struct.error):
        return None
    return 1
