"""Image files to upright RGB arrays: the decoders behind `bcc-edge infer`, training and export.

Pillow is the reference decoder: its wheels bundle libjpeg-turbo for x86-64 and aarch64
alike, it offers DCT-domain downscaling (draft), and it reads PNG, BMP, TIFF and WebP too.
Plain YCbCr/grey JPEGs (every PBC image) take `bcc_edge.jpeg`, the same libjpeg-turbo through
simplejpeg without Pillow's per-file overhead, and come out byte-identical.

Every file is untrusted (a lab network, an upload, a shared folder), so before any pixel is
decoded:
- only a regular file is read, opened without blocking (a FIFO or a device never hangs the
  run) and only up to MAX_FILE_BYTES;
- the format is recognised from the content, never the name, and only the formats above are
  handed to Pillow, each to its own plugin alone (an EPS file named .jpg never reaches
  Ghostscript, nor does any other external program run);
- the header's size is bounded (MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE), and so is the work of a
  progressive JPEG (MAX_JPEG_SCANS, and scans x pixels <= MAX_JPEG_SCAN_PIXELS), the one
  format whose decoding cost is not proportional to its pixels;
- images larger than LARGE_IMAGE_PIXELS decode one at a time across threads, so a run's
  memory stays bounded by one largest decode plus small ones, whatever the inputs.
Every failure is one ImageDecodeError with a reason a user can act on.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
from typing import TYPE_CHECKING

import numpy as np

from bcc_edge import jpeg
from bcc_edge.errors import BccError
from bcc_edge.preprocess import UINT16_TO_GREY

if TYPE_CHECKING:
    from bcc_edge.preprocess import PreprocessSpec

# Images with more pixels are refused before their pixels are decoded (decompression bombs).
# 64 Mpx = 8192 x 8192, far above any microscope field image, ~200 MB once decoded as RGB.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024
# A long thin image costs per row far more than its pixels suggest (a 1 x 67M PNG: 15 s).
MAX_IMAGE_SIDE = 16384
# Larger files are not images of cells: 64 Mpx uncompressed RGB is 192 MiB.
MAX_FILE_BYTES = 256 * 1024 * 1024
# A progressive JPEG re-reads its coefficients once per scan: libjpeg's own scripts use 10 at
# most, a crafted 55 KB file thousands (seconds of decoding each 100).
MAX_JPEG_SCANS = 64
MAX_JPEG_SCAN_PIXELS = 16 * MAX_IMAGE_PIXELS
# Decodes above this size take a process-wide lock (see the module docstring).
LARGE_IMAGE_PIXELS = 8 * 1024 * 1024

_LARGE_DECODE = threading.Lock()
_SOS = b"\xff\xda"  # start of scan; entropy-coded data cannot contain it (0xFF is stuffed)
# Recognised by content: (format name, test on the first bytes). Pillow opens each with its
# own plugin only.
_SIGNATURES = (
    ("JPEG", lambda head: head.startswith(jpeg.SOI)),
    ("PNG", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n")),
    ("BMP", lambda head: head.startswith(b"BM")),
    ("TIFF", lambda head: head[:4] in (b"II*\x00", b"MM\x00*")),
    ("WEBP", lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP"),
)
SUPPORTED_FORMATS = tuple(name for name, _ in _SIGNATURES)
# The suffix a file of each format is stored under when bcc-edge names it (review copies).
SUFFIX_OF_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
# File names that announce an image: how folders of images are scanned (ImageFolder, watch).
# Only a selection: the decoder trusts the content, never the name.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


class TooManyPixels(Exception):
    """An image header announces more pixels than allowed; raised before anything is decoded."""


class ImageDecodeError(BccError):
    """A file that cannot be read as an image: missing, not a regular file, unreadable, empty,
    an unsupported format, corrupt or truncated, too large or too costly to decode."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


def load_image(path: str | os.PathLike, spec: PreprocessSpec | None = None) -> np.ndarray:
    """Decode an image file to a C-contiguous HxWx3 uint8 RGB array.

    - Formats: JPEG, PNG, BMP, TIFF, WebP (SUPPORTED_FORMATS), recognised by content.
    - EXIF orientation is applied (the array is upright as a viewer shows it).
    - Grey, palette and CMYK images become RGB; alpha is dropped (the stored colours are used),
      as `apply` does for RGBA arrays.
    - 16-bit grey images are mapped to 8 bits as round_half_even(v / 257), so 0..65535 covers
      0..255 exactly as `apply` treats uint16 arrays. 16-bit RGB(A) images get Pillow's 8-bit
      conversion (the high byte, v >> 8: at most one grey level from v / 257).
      32-bit float images are refused (their range is unknowable).
    - With `spec.jpeg_draft`, JPEGs are decoded at the smallest power-of-two reduction
      (1/2, 1/4, 1/8) that keeps both sides >= spec.size (DCT-domain scaling, ~2x faster).
    - The limits of the module docstring are checked before any pixel is decoded.
    Any unreadable file raises ImageDecodeError, whose `reason` says why.
    """
    return decode_bytes(_read_regular_file(path), spec, path)


def decode_bytes(data: bytes, spec: PreprocessSpec | None = None, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """`load_image` for an image file's bytes already in memory (an upload, a golden vector);
    `path` names it in errors."""
    if not data:
        raise ImageDecodeError(path, "empty file")
    if len(data) > MAX_FILE_BYTES:  # a file that grew while it was read, or an upload
        raise ImageDecodeError(path, f"too large: {len(data)} bytes is over the limit of {MAX_FILE_BYTES} (MAX_FILE_BYTES)")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageDecodeError(path, f"not an image file, or an unsupported format (supported: {', '.join(SUPPORTED_FORMATS)})")
    draft_size = spec.size if spec is not None and spec.jpeg_draft else None
    try:
        if fmt == "JPEG":
            _check_scans(path, data)
            fast = jpeg.decode(data, draft_size, _decode_guard)
            if fast is not None:
                return fast
        return _pillow_decode(path, data, fmt, draft_size)
    except TooManyPixels as exc:
        raise ImageDecodeError(path, f"too large: {exc}") from None


def sniff_format(data: bytes) -> str | None:
    """The format of an image file's bytes, one of SUPPORTED_FORMATS, or None."""
    return next((name for name, matches in _SIGNATURES if matches(data[:12])), None)


def _read_regular_file(path: str | os.PathLike) -> bytes:
    """The whole file, if it is a regular file of at most MAX_FILE_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageDecodeError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError(path, "is a directory") from None
    except PermissionError:
        raise ImageDecodeError(path, "permission denied") from None
    except OSError as exc:  # a symbolic link loop, a name too long, an I/O error ...
        raise ImageDecodeError(path, f"cannot open ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ImageDecodeError(path, "is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, device or socket)")
    with os.fdopen(fd, "rb") as file:
        if info.st_size > MAX_FILE_BYTES:
            raise ImageDecodeError(path, f"too large: {info.st_size} bytes is over the limit of {MAX_FILE_BYTES} (MAX_FILE_BYTES)")
        try:
            data = file.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ImageDecodeError(path, f"read error ({exc.strerror or exc})") from None
    return data


def _check_scans(path, data: bytes) -> None:
    """Refuse a JPEG whose scans would cost far more than its pixels (module docstring). An
    embedded thumbnail's scan counts too: the limits leave room for it."""
    scans = data.count(_SOS)
    if scans > MAX_JPEG_SCANS:
        raise ImageDecodeError(path, f"too costly to decode: {scans} JPEG scans, over the limit of {MAX_JPEG_SCANS} (MAX_JPEG_SCANS)")
    size = jpeg.header_size(data) if scans > 1 else None
    if size is not None and scans * size[0] * size[1] > MAX_JPEG_SCAN_PIXELS:
        raise ImageDecodeError(
            path, f"too costly to decode: {scans} progressive scans of {size[1]}x{size[0]} pixels (MAX_JPEG_SCAN_PIXELS)"
        )


def _decode_guard(width: int, height: int, decoded_pixels: int):
    """Checks a header's size (TooManyPixels) and returns what to hold while decoding
    `decoded_pixels` pixels (fewer than width x height with DCT scaling)."""
    check_size(width, height)
    return _LARGE_DECODE if decoded_pixels > LARGE_IMAGE_PIXELS else contextlib.nullcontext()


def _pillow_decode(path, data: bytes, fmt: str, draft_size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            width, height = im.size
            check_size(width, height)
            orientation = _orientation(im)
            if draft_size is not None and im.format == "JPEG":
                h, w = jpeg.stored_target(draft_size, orientation)
                im.draft("RGB", (w, h))
            with _decode_guard(width, height, im.size[0] * im.size[1]):
                im.load()  # decode now: a truncated file fails here, inside the try
                method = _exif_transposes().get(orientation)
                upright = im if method is None else im.transpose(method)
                return _to_rgb(path, upright)
    except ImageDecodeError:
        raise
    except TooManyPixels:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(path, f"not a valid {fmt} image (corrupt header)") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(path, f"too large: {exc}") from None
    except MemoryError:
        raise ImageDecodeError(path, "too large: out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - a plugin's failure on hostile bytes is this file's error row
        # Pillow reports corrupt and truncated data as OSError, ValueError, SyntaxError,
        # EOFError, IndexError, struct.error and, in some plugins, other types.
        raise ImageDecodeError(path, f"corrupt or truncated ({type(exc).__name__}: {exc})") from None


def check_size(width: int, height: int) -> None:
    """TooManyPixels for a header announcing more than MAX_IMAGE_PIXELS pixels or a side over
    MAX_IMAGE_SIDE; both decoders call it before decoding."""
    if width * height > MAX_IMAGE_PIXELS:
        raise TooManyPixels(f"{width}x{height} = {width * height} pixels is over the limit of {MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS)")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise TooManyPixels(f"{width}x{height} has a side over the limit of {MAX_IMAGE_SIDE} pixels (MAX_IMAGE_SIDE)")


def _exif_transposes() -> dict[int, int]:
    from PIL import Image

    t = Image.Transpose
    return {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE, 6: t.ROTATE_270, 7: t.TRANSVERSE, 8: t.ROTATE_90}


def _orientation(im) -> int:
    try:
        value = im.getexif().get(jpeg.EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block does not make the pixels unreadable
        return 1
    return value if isinstance(value, int) else 1


def _to_rgb(path, im) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.array(im)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(im)
        if mode == "I" and (grey.min() < 0 or grey.max() > 65535):
            raise ImageDecodeError(path, "32-bit integer pixels outside the 16-bit range are not supported")
        grey = np.rint(grey.astype(np.float64) / UINT16_TO_GREY).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == "F":
        raise ImageDecodeError(path, "32-bit floating-point images are not supported")
    return np.array(im.convert("RGB"))
