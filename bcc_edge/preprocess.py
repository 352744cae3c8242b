"""Image preprocessing shared by training and the device: decode, resize, normalise, quantise.

THE CONTRACT (every other module relies on it; see ARCHITECTURE.md):
  p   = resample(image) in 0..255 grey units (uint16 input is divided by 257), separable
        weights equal to OpenCV INTER_LINEAR / INTER_AREA, accumulated in float32,
        then rounded half-to-even to an integer grey level and clamped to 0..255;
  x   = (p - mean[c]) / std[c]                                   (float64, cast to float32)
  q   = saturate(round_half_even(x / scale) + zero_point)        (int8 / uint8 outputs)
Because p is an integer, the last two steps are a 256-entry table per channel, so a cached
resized uint8 image followed by `apply` gives exactly the bytes the fused kernel gives.

PLACEHOLDER: the spec is final; `apply`, `apply_batch`, `reference_apply` and `load_image`
are being implemented (C kernel + numpy oracle) by the preprocessing work item.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

INTERPOLATIONS = ("bilinear", "area")
OUTPUTS = ("float32", "int8", "uint8")


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes a model input. Travels inside every exported artifact."""

    size: tuple[int, int]  # (height, width) of the model input
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB, 0..255 pixel units
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output: str = "float32"
    scale: float = 1.0  # quantised outputs only
    zero_point: int = 0
    # Decode JPEGs with DCT-domain downscaling (Pillow draft) to the smallest power-of-two
    # reduction that stays >= size: ~2x faster decode; training decodes the same way.
    jpeg_draft: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["color_order"] = "RGB"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        d = dict(d)
        if d.pop("color_order", "RGB") != "RGB":
            raise ValueError("only RGB colour order is supported")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown preprocessing fields: {sorted(unknown)}")
        d["size"] = tuple(int(v) for v in d["size"])
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessSpec":
        return cls.from_dict(json.loads(text))

    def with_output(self, output: str, scale: float = 1.0, zero_point: int = 0) -> "PreprocessSpec":
        """The same resize/normalisation, emitting the model's input dtype."""
        return dataclasses.replace(self, output=output, scale=float(scale), zero_point=int(zero_point))

    def resized_only(self) -> "PreprocessSpec":
        """Spec whose output is the integer grey level p itself (uint8): what caches store."""
        return dataclasses.replace(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), output="uint8", scale=1.0, zero_point=0)
