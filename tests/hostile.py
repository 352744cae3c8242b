"""The hostile-input regression corpus: every case a probe of the device path found, rebuilt
procedurally (bombs are a few hundred bytes of header, never committed files), plus the
mutators the fuzz tests use. Each builder returns the file's bytes."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def image_bytes(fmt: str, size=(40, 36), seed: int = 0, **save) -> bytes:
    """A small real image in `fmt` (JPEG, PNG, BMP, TIFF, WEBP)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def progressive_scan_bomb(side: int = 2048, repeats: int = 1000) -> bytes:
    """A progressive JPEG whose last scan repeats `repeats` times: tiny, but each scan costs a
    pass over every block (seconds of decoding without a scan limit)."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True, quality=90)
    jpg = buffer.getvalue()
    pos, parts = 2, []
    while pos < len(jpg):
        marker = jpg[pos + 1]
        if marker == 0xD9:
            break
        end = pos + 2 + struct.unpack(">H", jpg[pos + 2 : pos + 4])[0]
        if marker == 0xDA:  # the entropy-coded data runs to the next real marker
            while not (jpg[end] == 0xFF and jpg[end + 1] != 0x00 and not 0xD0 <= jpg[end + 1] <= 0xD7):
                end += 1
        parts.append((marker, jpg[pos:end]))
        pos = end
    last = max(i for i, (marker, _) in enumerate(parts) if marker == 0xDA)
    unit = b"".join(p for m, p in parts[last - 1 : last] if m == 0xC4) + parts[last][1]
    return b"\xff\xd8" + b"".join(p for _, p in parts[:last]) + parts[last][1] + unit * repeats + b"\xff\xd9"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_bomb(width: int = 1, height: int = 64 * 1024 * 1024) -> bytes:
    """A PNG announcing width x height RGB pixels (1 x 67,108,864: 15 s and 1 GB to decode),
    with one compressed row of data: refused from its header alone."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" + b"\x00" * 3 * width)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def large_png(side: int = 8192, seed: int = 0) -> bytes:
    """A legal but huge PNG (side x side RGB, ~200 MB decoded) that compresses to a few hundred KB."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, 3, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), tuple(int(c) for c in colour)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


EPS_AS_JPG = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"
# Formats Pillow opens but the toolkit does not support (each once raised its own exception type).
DDS = b"DDS " + struct.pack("<7I", 124, 0x1007, 4, 4, 0, 0, 0) + b"\x00" * 100
BLP = b"BLP2" + b"\x01\x00\x00\x00" + b"\x08\x00\x00\x00" + b"\x00" * 64
AVIF_HEAD = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64


def unsupported_formats() -> dict[str, bytes]:
    """name -> bytes of images in formats the toolkit refuses (some still valid for Pillow)."""
    cases = {"cell_eps.jpg": EPS_AS_JPG, "texture.dds": DDS, "old.blp": BLP, "photo.avif": AVIF_HEAD}
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="GIF")
    cases["anim.gif"] = buffer.getvalue()
    return cases


def write_corpus(folder: Path) -> dict[str, str]:
    """Every hostile image file in `folder`; returns name -> the reason word its error row must carry."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, data in unsupported_formats().items():
        (folder / name).write_bytes(data)
        expected[name] = "unsupported format"
    (folder / "prog_scans.jpg").write_bytes(progressive_scan_bomb(side=512, repeats=300))
    expected["prog_scans.jpg"] = "too costly"
    (folder / "thin.png").write_bytes(png_header_bomb())
    expected["thin.png"] = "too large"
    (folder / "wide.png").write_bytes(png_header_bomb(width=20000, height=2))
    expected["wide.png"] = "too large"
    (folder / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = "empty"
    (folder / "truncated.jpg").write_bytes(image_bytes("JPEG")[:300])
    expected["truncated.jpg"] = "truncated"
    return expected


# ----------------------------------------------------------------------------- mutations


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random damage: flipped bytes, a truncation, inserted or deleted runs, a copied block."""
    data = bytearray(data)
    kind = rng.integers(6)
    if kind == 0:
        for _ in range(int(rng.integers(1, 12))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
    elif kind == 1:
        data = data[: int(rng.integers(1, len(data)))]
    elif kind == 2:
        at = int(rng.integers(len(data)))
        data[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    elif kind == 3:
        at = int(rng.integers(len(data)))
        del data[at : at + int(rng.integers(1, 64))]
    elif kind == 4:  # header fields are where parsers trust sizes and counts
        for _ in range(int(rng.integers(1, 6))):
            data[int(rng.integers(min(len(data), 64)))] = int(rng.choice([0, 0xFF, 0x7F, 0x80, int(rng.integers(256))]))
    else:
        a, b = sorted(rng.integers(len(data), size=2))
        at = int(rng.integers(len(data)))
        data[at:at] = data[a : b + 1][:4096]
    return bytes(data)
