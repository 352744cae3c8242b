"""How well the input guard notices unfamiliar images: AUROC per family of shifts, and the share
it flags at the model's own threshold, against clean PBC val images.

    python benchmarks/ood.py [--model MODEL] [--data ../shared/data/pbc] [--images 600] [--json OUT]

Families, each applied to the same decoded val images (a = strong shift, b = mild):
- stain / colour: hue rotation, saturation, channel gains, gamma, BGR channel order;
- blur / defocus: Gaussian blur;
- magnification: zoom in (crop and enlarge), zoom out (shrink, pad by reflection);
- not blood cells: random shapes, text, noise, the synthetic demo set.
AUROC ranks the guard's distances of the clean images against the family's (1.0: every
shifted image is further than every clean one). Beside it, the model's top-1 accuracy on the
shifted cells (for the families that are still blood cells), the share of images the device
refers for either reason (low confidence or the guard) and the accuracy of those it accepts: a
shift the guard misses matters only where it costs accuracy that the review policy does not
catch. Figures for the README come from this script.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bcc_edge.decode import load_image  # noqa: E402
from bcc_edge.device.guard import features  # noqa: E402
from bcc_edge.runtime import EdgeClassifier, default_model  # noqa: E402
from bcc_edge.synthetic import CLASSES, make_cell_image  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pbc"


def _hue(image: np.ndarray, degrees: float) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(degrees / 360 * 255)) % 256
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


def _saturation(image: np.ndarray, factor: float) -> np.ndarray:
    grey = image.mean(axis=2, keepdims=True)
    return np.clip((image - grey) * factor + grey, 0, 255).astype(np.uint8)


def _pil(fn):
    return lambda image, rng: np.asarray(fn(Image.fromarray(image)))


def _zoom_out(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    small = np.asarray(Image.fromarray(image).resize((int(w * factor), int(h * factor)), Image.Resampling.BILINEAR))
    top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    return np.pad(small, ((top, h - small.shape[0] - top), (left, w - small.shape[1] - left), (0, 0)), mode="reflect")


def _zoom_in(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = int(h / factor), int(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.asarray(Image.fromarray(image[top : top + ch, left : left + cw]).resize((w, h), Image.Resampling.BILINEAR))


def _shapes(image: np.ndarray, rng) -> np.ndarray:
    h, w = image.shape[:2]
    canvas = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(150, 256, 3)))
    draw = ImageDraw.Draw(canvas)
    for _ in range(6):
        x0, x1 = sorted(rng.integers(0, w, 2).tolist())
        y0, y1 = sorted(rng.integers(0, h, 2).tolist())
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return np.asarray(canvas)


def _text(image: np.ndarray, rng) -> np.ndarray:
    h, w = image.shape[:2]
    canvas = Image.new("RGB", (w, h), (250, 250, 245))
    draw = ImageDraw.Draw(canvas)
    for row in range(0, h, 14):
        draw.text((4, row), "Patient 0042  WBC 7.1  RBC 4.6  HGB 13.9 " * 2, fill=(20, 20, 20))
    return np.asarray(canvas)


FAMILIES = {
    "stain / colour": {
        "hue +20 deg": lambda im, rng: _hue(im, 20),
        "hue +60 deg": lambda im, rng: _hue(im, 60),
        "saturation x0.6": lambda im, rng: _saturation(im, 0.6),
        "saturation x1.5": lambda im, rng: _saturation(im, 1.5),
        "red gain x1.2": lambda im, rng: np.clip(im * np.array([1.2, 1.0, 1.0]), 0, 255).astype(np.uint8),
        "blue gain x0.8": lambda im, rng: np.clip(im * np.array([1.0, 1.0, 0.8]), 0, 255).astype(np.uint8),
        "gamma 0.7": lambda im, rng: (255 * (im / 255.0) ** 0.7).astype(np.uint8),
        "gamma 1.5": lambda im, rng: (255 * (im / 255.0) ** 1.5).astype(np.uint8),
        "BGR channel order": lambda im, rng: np.ascontiguousarray(im[..., ::-1]),
    },
    "blur / defocus": {
        "Gaussian blur sigma 1": _pil(lambda im: im.filter(ImageFilter.GaussianBlur(1))),
        "Gaussian blur sigma 2": _pil(lambda im: im.filter(ImageFilter.GaussianBlur(2))),
        "Gaussian blur sigma 4": _pil(lambda im: im.filter(ImageFilter.GaussianBlur(4))),
    },
    "magnification": {
        "zoom in x1.5": lambda im, rng: _zoom_in(im, 1.5),
        "zoom in x1.25": lambda im, rng: _zoom_in(im, 1.25),
        "zoom out x0.6": lambda im, rng: _zoom_out(im, 0.6),
        "zoom out x0.8": lambda im, rng: _zoom_out(im, 0.8),
    },
    "not blood cells": {
        "random shapes": _shapes,
        "text": _text,
        "noise": lambda im, rng: rng.integers(0, 256, im.shape, dtype=np.uint8),
        "synthetic demo cells": lambda im, rng: make_cell_image(CLASSES[int(rng.integers(len(CLASSES)))], rng, im.shape[0], im.shape[1]),
    },
}


def auroc(clean: np.ndarray, shifted: np.ndarray) -> float:
    """Probability that a shifted image lies further than a clean one (ties count half)."""
    scores = np.concatenate([clean, shifted])
    ranks = scores.argsort(kind="stable").argsort() + 1.0
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[len(clean):].sum() - len(shifted) * (len(shifted) + 1) / 2) / (len(clean) * len(shifted)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="an artifact with an input guard (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=600, help="val images to shift (every k-th, spread over the split)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    classifier = EdgeClassifier(args.model or default_model(), threads=1)
    if classifier.guard is None:
        raise SystemExit(f"{classifier.path} has no input guard (export it with this bcc-edge)")
    with (args.data / "splits.csv").open() as f:
        val = [row for row in csv.DictReader(f) if row["split"] == "val"]
    val = val[:: max(1, len(val) // args.images)][: args.images]
    images = [load_image(args.data / "images" / row["path"]) for row in val]
    truth = np.array([classifier.labels.index(row["label"]) for row in val])
    scale, zero_point = classifier.input_spec.scale, classifier.input_spec.zero_point

    def measure(images: list[np.ndarray]) -> dict:
        """The guard's distances, and what the device makes of the images: accuracy, the share
        it refers for either reason, the accuracy of the rest."""
        distances, probs = [], []
        for i in range(0, len(images), 64):
            batch = classifier.prepare(images[i : i + 64])
            distances.append(classifier.guard.distances(features(batch, scale, zero_point)))
            probs.append(classifier.invoke(batch))
        d, p = np.concatenate(distances), np.concatenate(probs)
        rows = classifier.to_predictions(p, [None] * len(p), unfamiliar=d > classifier.guard.threshold)
        correct = p.argmax(axis=1) == truth
        accepted = np.array([r.status == "ok" for r in rows])
        return {
            "distances": d,
            "flagged": float((d > classifier.guard.threshold).mean()),
            "accuracy": float(correct.mean()),
            "referred": float(1 - accepted.mean()),
            "accepted_accuracy": float(correct[accepted].mean()) if accepted.any() else None,
        }

    clean = measure(images)
    result = {"model": str(classifier.path), "images": len(images), "clean": {k: v for k, v in clean.items() if k != "distances"}, "families": {}}
    print(f"{classifier.path.name}: {len(images)} PBC val images")
    print(f"{'family':<16} {'shift':<24} {'AUROC':>7} {'flagged':>8} {'top-1':>7} {'referred':>9} {'accepted top-1':>15}")

    def show(family: str, name: str, row: dict, cells: bool) -> None:
        auroc_text = f"{row['auroc']:.3f}" if "auroc" in row else "-"
        accuracy = f"{row['accuracy']:.1%}" if cells else "-"
        accepted = f"{row['accepted_accuracy']:.1%}" if cells and row["accepted_accuracy"] is not None else "-"
        print(f"{family:<16} {name:<24} {auroc_text:>7} {row['flagged']:>8.1%} {accuracy:>7} {row['referred']:>9.1%} {accepted:>15}")

    show("clean", "PBC val", result["clean"], True)
    rng = np.random.default_rng(0)
    for family, shifts in FAMILIES.items():
        cells = family != "not blood cells"
        for name, shift in shifts.items():
            m = measure([shift(image, rng) for image in images])
            row = {"auroc": round(auroc(clean["distances"], m.pop("distances")), 4), **{k: (round(v, 4) if v is not None else None) for k, v in m.items()}}
            result["families"].setdefault(family, {})[name] = row
            show(family, name, row, cells)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
