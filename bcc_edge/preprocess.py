"""Image preprocessing shared by training and the device: resize, normalise, quantise.

THE CONTRACT, "preprocessing v2" (every other module relies on it; see ARCHITECTURE.md).
Integer arithmetic up to the grey level, so every code path (scalar C, SSE2, AVX2, NEON and
`reference_apply`, the numpy oracle) gives the same bytes on every CPU by construction:
  W  weights per axis: the taps of OpenCV INTER_LINEAR / INTER_AREA (`axis_table`), each
     rounded to Q14, W = rint(w * 16384), then the residue 16384 - sum(W) added to the first
     largest W, so every output's weights sum to exactly 16384 (a flat image stays flat);
  t  = (sum_k Wv[y, k] * s[start_y + k] + 64) >> 7          vertical pass first, uint8 s:
     a Q7 grey level, 0..32640. uint16 s: (sum_k Wv[y, k] * s + 16448) // 32896 (/257/128,
     rounded), so the uint16 image 257 * v gives exactly the bytes of the uint8 image v;
  p  = (sum_k Wh[x, k] * t[start_x + k] + 2^20) >> 21        horizontal pass: grey level 0..255
     (every sum fits int32: 32640 * 16384 < 2^31);
  x  = float32(float32(p - m) * r)   m = float32(mean[c]), r = float32(1.0 / std[c]) with 1/std
     in float64: two float32 operations, no fused multiply-add (numpy and TensorFlow
     reproduce it exactly, SIMD computes it without a table);
  q  = saturate(round_half_even(float64(x) / scale) + zero_point)   int8 / uint8 outputs.
Grey input is replicated to 3 channels; RGBA alpha is ignored. Because p is an integer, x and
q are a 256-entry table per channel (`output_table`), so a cached resized uint8 image
(`resized_only()`, whose table is the identity) followed by `apply` gives exactly the bytes
of the fused kernel. Area downscales by more than ~180x, the one case where the residue would
make the largest weight negative, take it one unit per tap from the largest taps instead.

Who computes what: the tables here in numpy (cached per source size, target size and mode);
the C kernel (csrc/, bcc_edge._kernels) all the rest, the float32 x with SIMD arithmetic and
q through the table (or p itself when the table is the identity).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bcc_edge.errors import BccError

try:
    from bcc_edge import _kernels
except ImportError:  # not built (e.g. a source checkout): the numpy oracle does the work
    _kernels = None

KERNEL_AVAILABLE = _kernels is not None

INTERPOLATIONS = ("bilinear", "area")
OUTPUTS = ("float32", "int8", "uint8")
OUTPUT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
# Largest model input side: keeps every index of the kernel within int32 and catches typos.
MAX_SIZE = 1 << 15

UINT16_TO_GREY = 257.0  # 65535 / 257 == 255: full 16-bit range onto the full 8-bit range


class PreprocessError(BccError, ValueError):
    """An invalid preprocessing spec or input array (a ValueError; the CLI prints it as one line)."""


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

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("size", _pair_of_sizes(self.size))
        if self.interpolation not in INTERPOLATIONS:
            raise PreprocessError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}; got {self.interpolation!r}")
        set_("interpolation", str(self.interpolation))
        set_("mean", _three_floats("mean", self.mean))
        std = _three_floats("std", self.std)
        if any(s <= 0 for s in std):
            raise PreprocessError(f"std must be positive for every channel; got {list(std)}")
        set_("std", std)
        if self.output not in OUTPUTS:
            raise PreprocessError(f"output must be one of {', '.join(OUTPUTS)}; got {self.output!r}")
        set_("output", str(self.output))
        if self.output == "float32":
            # scale/zero_point mean nothing for float output (TFLite reports 0.0/0 there);
            # normalising them keeps equal specs equal.
            set_("scale", 1.0)
            set_("zero_point", 0)
        else:
            scale = _finite_float("scale", self.scale)
            if scale <= 0:
                raise PreprocessError(f"scale must be positive for {self.output} output; got {scale}")
            set_("scale", scale)
            if isinstance(self.zero_point, bool) or not isinstance(self.zero_point, (int, np.integer)):
                raise PreprocessError(f"zero_point must be an integer; got {self.zero_point!r}")
            lo, hi = OUTPUT_RANGES[self.output]
            if not lo <= self.zero_point <= hi:
                raise PreprocessError(f"zero_point {self.zero_point} is outside the {self.output} range [{lo}, {hi}]")
            set_("zero_point", int(self.zero_point))
        if not isinstance(self.jpeg_draft, (bool, np.bool_)):
            raise PreprocessError(f"jpeg_draft must be true or false; got {self.jpeg_draft!r}")
        set_("jpeg_draft", bool(self.jpeg_draft))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["color_order"] = "RGB"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        if not isinstance(d, dict):
            raise PreprocessError(f"a preprocessing spec must be a JSON object; got {type(d).__name__}")
        d = dict(d)
        if d.pop("color_order", "RGB") != "RGB":
            raise PreprocessError("only RGB colour order is supported")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise PreprocessError(f"unknown preprocessing fields: {sorted(unknown)}")
        if "size" not in d:
            raise PreprocessError("preprocessing spec has no size")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PreprocessError(f"preprocessing spec is not valid JSON ({exc})") from None
        return cls.from_dict(d)

    def with_output(self, output: str, scale: float = 1.0, zero_point: int = 0) -> "PreprocessSpec":
        """The same resize/normalisation, emitting the model's input dtype."""
        return dataclasses.replace(self, output=output, scale=scale, zero_point=zero_point)

    def resized_only(self) -> "PreprocessSpec":
        """Spec whose output is the integer grey level p itself (uint8): what caches store."""
        return dataclasses.replace(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), output="uint8", scale=1.0, zero_point=0)

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype `apply` returns."""
        return np.dtype(self.output)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """One HxW or HxWxC (C = 1, 3, 4) uint8/uint16 image -> (h, w, 3) array of `self.dtype`."""
        # apply_batch's checks less those a fresh output and one image make moot: the
        # microseconds they cost are a tenth of a small image's time
        return self._fill([_check_image(image)], np.empty((1, *self.size, 3), self.dtype), 1)[0]

    def apply_batch(self, images, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
        """Images (a sequence of arrays of any sizes, or an NHWC array) -> (N, h, w, 3).

        Fills `out` when given (C-contiguous, shape (N, h, w, 3), dtype `self.dtype`, sharing
        no memory with the images). Up to `threads` images (default and cap: the CPUs this
        process may use, and the number of images) are processed at once, without the GIL.
        """
        checked = _check_batch(images)
        return self._fill(checked, _check_out(self, out, checked), _thread_count(threads, len(checked)))

    def _fill(self, checked: list[np.ndarray], out: np.ndarray, threads: int) -> np.ndarray:
        if not checked:
            return out
        if _kernels is None:
            _warn_no_kernel()
            for i, image in enumerate(checked):
                out[i] = reference_apply(self, image)
            return out
        jobs = [(image, _kernel_plan(self.size, self.interpolation, *image.shape)) for image in checked]
        _kernels.preprocess_batch(jobs, out, _kernel_target(self), threads)
        return out


def reference_apply(spec: PreprocessSpec, image: np.ndarray) -> np.ndarray:
    """The numpy oracle: the contract's integer formulas, written independently of the C kernel."""
    image = _check_image(image)
    rows, cols = axis_tables(spec.size, spec.interpolation, *image.shape[:2])
    if image.shape[2] == 4:
        image = image[:, :, :3]
    in_h, in_w = image.shape[:2]
    tmp = np.zeros((spec.size[0], in_w, image.shape[2]), np.int64)
    for k in range(rows.weight.shape[1]):
        # Padding taps have weight 0; clamp them onto a real row.
        tmp += rows.weight[:, k, None, None].astype(np.int64) * image[np.minimum(rows.start + k, in_h - 1)]
    if image.dtype == np.uint8:
        tmp = (tmp + 64) >> 7
    else:
        divisor = int(UINT16_TO_GREY) * 128
        tmp = (tmp + divisor // 2) // divisor
    acc = np.zeros((*spec.size, image.shape[2]), np.int64)
    for k in range(cols.weight.shape[1]):
        acc += cols.weight[None, :, k, None].astype(np.int64) * tmp[:, np.minimum(cols.start + k, in_w - 1)]
    grey = (acc + (1 << 20)) >> 21
    if grey.shape[2] == 1:
        grey = np.repeat(grey, 3, axis=2)
    return output_table(spec)[np.arange(3), grey]


# ----------------------------------------------------------------------------- tables

WEIGHT_ONE = 1 << 14  # Q14: every output's integer weights sum to this


@dataclass(frozen=True)
class AxisTable:
    """Resampling weights along one axis: output i = sum_k weight[i, k] * input[start[i] + k],
    k < count[i]; weight is Q14 (each row sums to WEIGHT_ONE), zero-padded to a common tap count."""

    start: np.ndarray  # int32 (out,)
    count: np.ndarray  # int32 (out,)
    weight: np.ndarray  # int16 (out, taps)


def axis_tables(size: tuple[int, int], interpolation: str, in_h: int, in_w: int) -> tuple[AxisTable, AxisTable]:
    """(vertical, horizontal) tables for resizing an in_h x in_w image to `size` (height, width)."""
    (out_h, out_w) = size
    return axis_table(in_h, out_h, interpolation, out_w > in_w), axis_table(in_w, out_w, interpolation, out_h > in_h)


@functools.lru_cache(maxsize=512)
def _kernel_plan(size: tuple[int, int], interpolation: str, in_h: int, in_w: int, channels: int):
    """The C kernel's plan (both tables in its layout), built once per geometry."""
    return _kernels.Plan(*axis_tables(size, interpolation, in_h, in_w), in_h, in_w, channels)


@functools.lru_cache(maxsize=512)
def axis_table(in_size: int, out_size: int, mode: str, other_axis_upscales: bool) -> AxisTable:
    """Weights for resizing one axis from `in_size` to `out_size`: OpenCV's, in Q14.

    `mode` "bilinear" is INTER_LINEAR (half-pixel centres). "area" is INTER_AREA, which uses
    true pixel-area weights only when neither axis is upscaled; otherwise OpenCV uses a
    linear-like formula on both axes (`other_axis_upscales` selects between them).
    """
    # OpenCV derives the scale as 1 / (dst / src); mirror it, floor() sees the same values.
    inv_scale = out_size / in_size
    scale = 1.0 / inv_scale
    if mode == "area" and scale >= 1 and not other_axis_upscales:
        taps = _area_taps(in_size, out_size, scale)
    else:
        taps = _linear_taps(in_size, out_size, scale, inv_scale, area=mode == "area")
    width = max(len(w) for _, w in taps)
    start = np.array([s for s, _ in taps], np.int32)
    count = np.array([len(w) for _, w in taps], np.int32)
    weight = np.zeros((out_size, width), np.int16)
    for i, (_, w) in enumerate(taps):
        weight[i, : len(w)] = _q14(w)
    table = AxisTable(start, count, weight)
    for a in (table.start, table.count, table.weight):
        a.flags.writeable = False  # shared through the cache
    return table


def _q14(weights: list[float]) -> np.ndarray:
    """Float weights (summing to ~1) -> integer weights summing to exactly WEIGHT_ONE."""
    w = np.rint(np.array(weights) * WEIGHT_ONE).astype(np.int64)
    residue = WEIGHT_ONE - int(w.sum())
    first = int(np.argmax(w))
    if w[first] + residue >= 0:
        w[first] += residue
    else:  # hundreds of equal small taps, each rounded up: one unit off each of the largest
        w[np.argsort(-w, kind="stable")[:-residue]] -= 1
    return w


def _linear_taps(in_size: int, out_size: int, scale: float, inv_scale: float, area: bool) -> list[tuple[int, list[float]]]:
    """OpenCV resize.cpp's 2-tap coefficients (INTER_LINEAR, or INTER_AREA when upscaling).

    OpenCV rounds the fractional position to float before floor(); so do we (np.float32),
    or positions a hair below an integer would pick the neighbouring pixel.
    """
    f32 = np.float32
    taps = []
    for d in range(out_size):
        if area:
            s = math.floor(d * scale)
            f = f32((d + 1) - (s + 1) * inv_scale)
            f = f32(0) if f <= 0 else f - f32(math.floor(f))
        else:
            f = f32((d + 0.5) * scale - 0.5)
            s = math.floor(f)
            f = f - f32(s)
        if s < 0:
            s, f = 0, f32(0)
        if s >= in_size - 1:  # the last source pixel alone (OpenCV's xmax region)
            taps.append((in_size - 1, [1.0]))
        else:
            taps.append((s, [float(f32(1) - f), float(f)]))
    return taps


def _area_taps(in_size: int, out_size: int, scale: float) -> list[tuple[int, list[float]]]:
    """OpenCV's computeResizeAreaTab: each output covers `scale` source pixels, weighted by overlap."""
    taps = []
    for d in range(out_size):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, in_size - f1)
        s2 = min(math.floor(f2), in_size - 1)
        s1 = min(math.ceil(f1), s2)
        weights = []
        first = s1
        if s1 - f1 > 1e-3:
            first = s1 - 1
            weights.append((s1 - f1) / cell)
        weights.extend([1.0 / cell] * (s2 - s1))
        if f2 - s2 > 1e-3:
            weights.append(min(f2 - s2, 1.0, cell) / cell)
        taps.append((first, weights))
    return taps


def channel_affine(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """(m, r) float32 per channel: the float32 output is (p - m) * r in float32 arithmetic."""
    return np.array(spec.mean, np.float32), (1.0 / np.array(spec.std, np.float64)).astype(np.float32)


@functools.lru_cache(maxsize=64)
def output_table(spec: PreprocessSpec) -> np.ndarray:
    """(3, 256) read-only array of spec.dtype: the model input for each channel and grey level."""
    m, r = channel_affine(spec)
    x = (np.arange(256, dtype=np.float32)[None, :] - m[:, None]) * r[:, None]
    if spec.output == "float32":
        table = x
    else:
        lo, hi = OUTPUT_RANGES[spec.output]
        table = np.clip(np.rint(x.astype(np.float64) / spec.scale) + spec.zero_point, lo, hi).astype(spec.output)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=64)
def _kernel_target(spec: PreprocessSpec):
    m, r = channel_affine(spec)
    return _kernels.Target(spec.output, m, r, None if spec.output == "float32" else output_table(spec))


# ----------------------------------------------------------------------------- input checks


def _check_image(image: Any) -> np.ndarray:
    """A uint8/uint16 HxWxC view (C in 1, 3, 4) of `image`, or a PreprocessError saying why not."""
    if not isinstance(image, np.ndarray):
        raise PreprocessError(f"image must be a numpy array; got {type(image).__name__}")
    if image.dtype.kind != "u" or image.dtype.itemsize not in (1, 2):
        raise PreprocessError(f"image dtype must be uint8 or uint16; got {image.dtype}")
    if not image.dtype.isnative or not image.flags.aligned:  # rare: a copy the C code can read
        image = image.astype(image.dtype.newbyteorder("="))
    if image.ndim == 2:
        image = image[:, :, None]
    elif image.ndim != 3:
        raise PreprocessError(f"image must be HxW or HxWxC; got {image.ndim} dimensions {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise PreprocessError(f"image is empty: shape {image.shape}")
    if image.shape[2] not in (1, 3, 4):
        raise PreprocessError(f"image must have 1, 3 or 4 channels (grey, RGB, RGBA); got {image.shape[2]}")
    if max(image.shape[:2]) >= 2**31 // 8:
        raise PreprocessError(f"image is too large: shape {image.shape}")
    return image


def _check_batch(images: Any) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise PreprocessError(
                f"a batch array must be NxHxWxC; got {images.ndim} dimensions {images.shape} (use apply() for one image, or pass a list)"
            )
        return [_check_image(image) for image in images]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise PreprocessError(f"images must be a list of arrays or an NxHxWxC array; got {type(images).__name__}")
    return [_check_image(image) for image in images]


def _check_out(spec: PreprocessSpec, out: Any, images: list[np.ndarray]) -> np.ndarray:
    shape = (len(images), *spec.size, 3)
    if out is None:
        return np.empty(shape, spec.dtype)
    if not isinstance(out, np.ndarray):
        raise PreprocessError(f"out must be a numpy array; got {type(out).__name__}")
    if out.shape != shape or out.dtype != spec.dtype:
        raise PreprocessError(f"out must have shape {shape} and dtype {spec.dtype}; got {out.shape} {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise PreprocessError("out must be a writeable C-contiguous array")
    for i, image in enumerate(images):
        if np.may_share_memory(out, image):  # the kernel would read what it has already written
            raise PreprocessError(f"out shares memory with image {i}; pass a separate output array")
    return out


def _thread_count(threads: Any, n: int) -> int:
    """Threads for n images: `threads` (default: all usable CPUs), at most one per CPU and image."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise PreprocessError(f"threads must be a positive integer; got {threads!r}")
    wanted = max(1, n if threads is None else min(int(threads), n))
    return wanted if wanted == 1 else min(wanted, usable_cpus())


def _pair_of_sizes(size: Any) -> tuple[int, int]:
    if isinstance(size, (str, bytes)) or not isinstance(size, (Sequence, np.ndarray)) or len(size) != 2:
        raise PreprocessError(f"size must be (height, width); got {size!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in size):
        raise PreprocessError(f"size must be two integers; got {size!r}")
    h, w = int(size[0]), int(size[1])
    if not (0 < h <= MAX_SIZE and 0 < w <= MAX_SIZE):
        raise PreprocessError(f"size must be between 1 and {MAX_SIZE} on each side; got ({h}, {w})")
    return h, w


def _finite_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PreprocessError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise PreprocessError(f"{name} must be finite; got {value}")
    return value


def _three_floats(name: str, values: Any) -> tuple[float, float, float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) or len(values) != 3:
        raise PreprocessError(f"{name} must have 3 values (R, G, B); got {values!r}")
    return tuple(_finite_float(name, v) for v in values)  # type: ignore[return-value]


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_warned_no_kernel = False


def _warn_no_kernel() -> None:
    global _warned_no_kernel
    if not _warned_no_kernel:
        _warned_no_kernel = True
        warnings.warn(
            "bcc_edge._kernels is not built: preprocessing uses the numpy reference (same results, "
            "~50x slower). Reinstall bcc-edge (pip install .) or run `python setup.py build_ext --inplace`.",
            RuntimeWarning,
            stacklevel=4,
        )
