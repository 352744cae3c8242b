"""Training augmentation, outside the model: batched TensorFlow ops on uint8 images.

Cost matters: on a 2-core CPU the input pipeline competes with the training step for cores,
so every transform here is one cheap pass over the batch:
- flips and quarter turns are drawn once per batch (a batch is a random sample of the data
  set, so every image still sees all 8 orientations over the epochs) and move uint8 bytes;
- colour jitter (brightness, contrast, per-channel stain gain) is folded into one per-image,
  per-channel affine map, applied with row broadcasting (TensorFlow's CPU kernels broadcast
  a long last axis fast and a last axis of 3 slowly);
- only free-angle rotation interpolates, per image (ImageProjectiveTransformV3).

Randomness is stateless and derived from a per-batch seed, so a run is reproducible no matter
how many threads the input pipeline uses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from bcc_edge.errors import BccError


@dataclass(frozen=True)
class Augment:
    """What to randomise. Zero/False disables a transform."""

    flips: bool = False  # horizontal/vertical mirror (with rot90: all 8 symmetries of a square)
    rot90: bool = False  # quarter turns (square inputs only)
    rotate_degrees: float = 0.0  # per-image rotation, uniform in +-rotate_degrees, reflect-padded
    brightness: float = 0.0  # per-image additive shift, uniform in +-brightness x 255
    contrast: float = 0.0  # per-image scale around the data set's mean colour, 1 +- contrast
    stain: float = 0.0  # per-image, per-channel gain, 1 +- stain (stain intensity and hue)

    @property
    def colour(self) -> bool:
        return self.brightness > 0 or self.contrast > 0 or self.stain > 0

    @property
    def enabled(self) -> bool:
        return self.flips or self.rot90 or self.rotate_degrees > 0 or self.colour

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, Augment] = {
    "none": Augment(),
    # The seed's augmentation: random flips and rotations.
    "flip-rotate": Augment(flips=True, rot90=True, rotate_degrees=15.0),
    # Blood-cell smears have no orientation, so the 8 flips/quarter turns are free data; colour
    # jitter covers stain and illumination differences between slides and scanners.
    "dihedral-color": Augment(flips=True, rot90=True, brightness=0.06, contrast=0.1, stain=0.06),
    "full": Augment(flips=True, rot90=True, rotate_degrees=15.0, brightness=0.06, contrast=0.1, stain=0.06),
}


def resolve(augment: str | Augment | dict | None) -> Augment:
    """A preset name, an Augment, its dict form, or None (no augmentation)."""
    if augment is None:
        return PRESETS["none"]
    if isinstance(augment, Augment):
        return augment
    if isinstance(augment, dict):
        try:
            return Augment(**augment)
        except TypeError as exc:
            raise BccError(f"invalid augmentation settings: {exc}") from None
    if augment not in PRESETS:
        raise BccError(f"unknown augmentation {augment!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[augment]


def augment_batch(images, seed, augment: Augment, pivot=(128.0, 128.0, 128.0)):
    """(B, H, W, 3) uint8 -> float32 in 0..255 (pixel units, not rounded).

    `seed`: int64 tensor of shape (2,), e.g. (run seed, batch number). `pivot`: the RGB colour
    contrast scales around (the data set's mean keeps the average input unchanged).
    """
    from bcc_edge._tf import tf

    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    height, width = images.shape[1], images.shape[2]
    if augment.rot90 and height != width:
        raise BccError(f"90-degree rotations need a square input; got {height}x{width}")
    if augment.flips or augment.rot90:
        images = _dihedral(images, seeds[0], augment)
    images = tf.cast(images, tf.float32)
    if augment.rotate_degrees > 0:
        images = _rotate(images, seeds[1], augment.rotate_degrees)
    if augment.colour:
        images = _colour(images, seeds[2:], augment, pivot)
    return images


def _dihedral(images, seed, augment: Augment):
    from bcc_edge._tf import tf

    k = tf.random.stateless_uniform([], seed=seed, maxval=8, dtype=tf.int32)
    if augment.flips:
        images = tf.cond(k % 2 == 1, lambda: tf.reverse(images, [2]), lambda: images)
        if not augment.rot90:  # with quarter turns, a vertical flip is a turn of a horizontal one
            images = tf.cond(k // 4 == 1, lambda: tf.reverse(images, [1]), lambda: images)
    if augment.rot90:
        # Quarter turns: a transpose then a vertical flip is 90 degrees; vertical+horizontal 180.
        images = tf.cond((k // 2) % 2 == 1, lambda: tf.reverse(images, [1, 2]), lambda: images)
        images = tf.cond(k // 4 == 1, lambda: tf.reverse(tf.transpose(images, [0, 2, 1, 3]), [1]), lambda: images)
    return images


def _rotate(images, seed, degrees: float):
    from bcc_edge._tf import tf

    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    limit = math.radians(degrees)
    angle = tf.random.stateless_uniform([batch], seed=seed, minval=-limit, maxval=limit)
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    zeros = tf.zeros([batch])
    # output pixel -> input pixel, rotating about the image centre
    transforms = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def _colour(images, seeds, augment: Augment, pivot):
    """x' = clip(contrast * stain_c * (x - pivot_c) + pivot_c + brightness): one affine map per
    image and channel."""
    from bcc_edge._tf import tf

    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]

    def uniform(seed, shape, spread):
        return tf.random.stateless_uniform(shape, seed=seed, minval=1.0 - spread, maxval=1.0 + spread)

    pivot = tf.constant(pivot, tf.float32)
    gain = uniform(seeds[0], [batch, 1], augment.contrast) * uniform(seeds[1], [batch, 3], augment.stain)
    shift = (tf.random.stateless_uniform([batch, 1], seed=seeds[2], minval=-1.0, maxval=1.0) * augment.brightness * 255.0)
    offset = pivot * (1.0 - gain) + shift
    rows = tf.reshape(images, [batch, height, width * 3])
    rows = rows * tf.tile(gain, [1, width])[:, None, :] + tf.tile(offset, [1, width])[:, None, :]
    return tf.clip_by_value(tf.reshape(rows, [batch, height, width, 3]), 0.0, 255.0)
