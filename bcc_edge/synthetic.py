"""Synthetic blood-smear-like images, for the demo and the tests (no download needed).

Each image is a pale field of red blood cells around one stained white cell whose nucleus
shape and granules depend on the class, loosely after May-Grunwald-Giemsa smears:
lymphocyte (large round nucleus, thin rim), neutrophil (3-4 small lobes, pale cytoplasm),
eosinophil (two lobes, orange granules), monocyte (kidney-shaped nucleus, grey-blue cytoplasm).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("eosinophil", "lymphocyte", "monocyte", "neutrophil")

_BACKGROUND = np.array([232, 222, 226], np.float32)
_RED_CELL = np.array([214, 160, 170], np.float32)
_NUCLEUS = np.array([88, 52, 132], np.float32)
_CYTOPLASM = {
    "eosinophil": np.array([222, 170, 150], np.float32),
    "lymphocyte": np.array([170, 170, 215], np.float32),
    "monocyte": np.array([176, 168, 196], np.float32),
    "neutrophil": np.array([215, 190, 205], np.float32),
}


def _paint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, rng: np.random.Generator, noise: float = 8.0) -> None:
    image[mask] = colour + rng.normal(0.0, noise, (int(mask.sum()), 3))


def _nucleus_lobes(kind: str, rng: np.random.Generator, radius: float) -> list[tuple[float, float, float]]:
    """(dy, dx, r) discs whose union is the nucleus, relative to the cell centre."""
    if kind == "lymphocyte":
        return [(rng.uniform(-2, 2), rng.uniform(-2, 2), radius * 0.8)]
    if kind == "monocyte":  # kidney: a big disc with a bite taken out later
        return [(0.0, 0.0, radius * 0.62)]
    n = 2 if kind == "eosinophil" else int(rng.integers(3, 5))
    angle0 = rng.uniform(0, 2 * np.pi)
    lobes = []
    for i in range(n):
        a = angle0 + 2 * np.pi * i / n + rng.uniform(-0.3, 0.3)
        d = radius * 0.38
        lobes.append((d * np.sin(a), d * np.cos(a), radius * (0.32 if n > 2 else 0.38)))
    return lobes


def make_cell_image(kind: str, rng: np.random.Generator, height: int = 120, width: int = 120) -> np.ndarray:
    """One RGB uint8 image of class `kind` (one of CLASSES)."""
    if kind not in _CYTOPLASM:
        raise ValueError(f"unknown synthetic class {kind!r}; choose from {', '.join(CLASSES)}")
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[:] = _BACKGROUND
    scale = min(height, width) / 120.0
    for _ in range(int(rng.integers(6, 12))):  # red blood cells: pale-centred discs
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(9, 13) * scale
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        _paint(image, d2 < r * r, _RED_CELL, rng, 6.0)
        _paint(image, d2 < (0.45 * r) ** 2, (_RED_CELL + _BACKGROUND) / 2, rng, 6.0)
    cy, cx = height / 2 + rng.uniform(-6, 6) * scale, width / 2 + rng.uniform(-6, 6) * scale
    radius = rng.uniform(26, 32) * scale * (1.15 if kind == "monocyte" else 1.0)
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    _paint(image, d2 < radius**2, _CYTOPLASM[kind], rng)
    nucleus = np.zeros((height, width), bool)
    for dy, dx, r in _nucleus_lobes(kind, rng, radius):
        nucleus |= (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 < r * r
    if kind == "monocyte":
        a = rng.uniform(0, 2 * np.pi)
        by, bx = cy + radius * 0.55 * np.sin(a), cx + radius * 0.55 * np.cos(a)
        nucleus &= (yy - by) ** 2 + (xx - bx) ** 2 > (radius * 0.38) ** 2
    _paint(image, nucleus, _NUCLEUS * rng.uniform(0.9, 1.1), rng, 10.0)
    if kind == "eosinophil":  # coarse orange granules over the cytoplasm
        granules = (rng.random((height, width)) < 0.18) & (d2 < radius**2) & ~nucleus
        _paint(image, granules, np.array([226, 120, 80], np.float32), rng, 12.0)
    stain = rng.uniform(0.9, 1.1, 3).astype(np.float32)  # slide-to-slide stain variation
    return np.clip(image * stain, 0, 255).astype(np.uint8)


def write_image_folder(root: str | Path, per_class: int, classes=CLASSES, seed: int = 0, size=(120, 120)) -> Path:
    """Write `<root>/<class>/<i>.jpg` for each class; returns root."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for kind in classes:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make_cell_image(kind, rng, *size)).save(root / kind / f"{kind[:3]}_{i:04d}.jpg", quality=92)
    return root
