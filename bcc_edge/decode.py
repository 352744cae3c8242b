"""Image files to upright RGB arrays: the decoders behind `bcc-edge infer`, training and export.

Pillow is the reference decoder: its wheels bundle libjpeg-turbo for x86-64 and aarch64
alike, it offers DCT-domain downscaling (draft), and it reads PNG, BMP and TIFF too. Plain
YCbCr/grey JPEGs (every PBC image) take `bcc_edge.jpeg`, the same libjpeg-turbo through
simplejpeg without Pillow's per-file overhead, and come out byte-identical.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

import numpy as np

from bcc_edge import jpeg
from bcc_edge.errors import BccError, TooManyPixels
from bcc_edge.preprocess import UINT16_TO_GREY

if TYPE_CHECKING:
    from bcc_edge.preprocess import PreprocessSpec

# Images with more pixels are refused before their pixels are decoded (decompression bombs).
# 64 Mpx = 8192 x 8192, far above any microscope field image, ~200 MB once decoded as RGB.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024


class ImageDecodeError(BccError):
    """A file that cannot be read as an image: missing, empty, truncated, corrupt or too large."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


def load_image(path: str | os.PathLike, spec: PreprocessSpec | None = None) -> np.ndarray:
    """Decode an image file to a C-contiguous HxWx3 uint8 RGB array.

    - EXIF orientation is applied (the array is upright as a viewer shows it).
    - Grey, palette and CMYK images become RGB; alpha is dropped (the stored colours are used),
      as `apply` does for RGBA arrays.
    - 16-bit grey images are mapped to 8 bits as round_half_even(v / 257), so 0..65535 covers
      0..255 exactly as `apply` treats uint16 arrays. 16-bit RGB(A) images get Pillow's 8-bit
      conversion (the high byte, v >> 8: at most one grey level from v / 257).
      32-bit float images are refused (their range is unknowable).
    - With `spec.jpeg_draft`, JPEGs are decoded at the smallest power-of-two reduction
      (1/2, 1/4, 1/8) that keeps both sides >= spec.size (DCT-domain scaling, ~2x faster).
    - Images with more than MAX_IMAGE_PIXELS pixels are refused before their pixels are decoded.
    Any unreadable file (missing, empty, not an image, corrupt, truncated) raises ImageDecodeError.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as file:
            head = file.read(len(jpeg.SOI))
            if not head:
                raise ImageDecodeError(path, "empty file")
            if head == jpeg.SOI:
                draft_size = spec.size if spec is not None and spec.jpeg_draft else None
                fast = jpeg.decode(head + file.read(), draft_size, MAX_IMAGE_PIXELS)
                if fast is not None:
                    return fast
        with Image.open(path) as im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise TooManyPixels(width, height, MAX_IMAGE_PIXELS)
            orientation = _orientation(im)
            if spec is not None and spec.jpeg_draft and im.format == "JPEG":
                h, w = jpeg.stored_target(spec.size, orientation)
                im.draft("RGB", (w, h))
            im.load()  # decode now: a truncated file fails here, inside the try
            method = _exif_transposes().get(orientation)
            upright = im if method is None else im.transpose(method)
            rgb = _to_rgb(path, upright)
    except ImageDecodeError:
        raise
    except TooManyPixels as exc:
        raise ImageDecodeError(path, str(exc)) from None
    except FileNotFoundError:
        raise ImageDecodeError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError(path, "is a directory") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image file, or an unsupported format") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(path, str(exc)) from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, MemoryError) as exc:
        # Pillow reports corrupt and truncated data through all of these.
        raise ImageDecodeError(path, f"corrupt or truncated ({exc})") from None
    return rgb


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
