"""Batched augmentation: orientation set, colour maths, seeding, presets."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_edge import augment
from bcc_edge.augment import Augment
from bcc_edge.errors import BccError


def _batch(n=6, size=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _run(images, aug, seed=(1, 2), pivot=(128.0, 128.0, 128.0)):
    from bcc_edge._tf import tf

    return augment.augment_batch(tf.constant(images), tf.constant(seed, tf.int64), aug, pivot).numpy()


def _symmetries(image):
    out = []
    for k in range(4):
        rotated = np.rot90(image, k, axes=(0, 1))
        out += [rotated, rotated[:, ::-1]]
    return out


def test_dihedral_gives_every_symmetry_of_the_square_and_nothing_else():
    images = _batch()
    seen = set()
    for s in range(64):  # deterministic draws; these happen to cover all 8
        out = _run(images, Augment(flips=True, rot90=True), seed=(0, s))
        assert out.dtype == np.float32
        matches = [k for k, sym in enumerate(_symmetries(images[0])) if np.array_equal(out[0], sym)]
        assert len(matches) == 1
        # one orientation per batch: every image got the same one
        for i in range(1, len(images)):
            assert np.array_equal(out[i], _symmetries(images[i])[matches[0]])
        seen.add(matches[0])
    assert seen == set(range(8))


def test_flips_only_never_transposes():
    images = _batch()
    allowed = [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]
    for s in range(12):
        out = _run(images, Augment(flips=True), seed=(3, s))
        assert any(np.array_equal(out, a) for a in allowed)


def test_colour_is_one_affine_map_per_image_and_channel_clipped():
    images = _batch(n=4, size=7)
    out = _run(images, Augment(brightness=0.2, contrast=0.3, stain=0.2), pivot=(100.0, 120.0, 140.0))
    assert out.min() >= 0.0 and out.max() <= 255.0
    for i in range(len(images)):
        for c in range(3):
            x = images[i, ..., c].astype(np.float64).ravel()
            y = out[i, ..., c].astype(np.float64).ravel()
            inside = (y > 0) & (y < 255)
            gain, offset = np.polyfit(x[inside], y[inside], 1)
            np.testing.assert_allclose(gain * x[inside] + offset, y[inside], atol=1e-3)
            assert 0.5 < gain < 1.6 and gain != pytest.approx(1.0, abs=1e-4)


def test_pivot_keeps_its_colour_under_contrast():
    images = np.full((3, 4, 4, 3), (100, 120, 140), np.uint8)
    out = _run(images, Augment(contrast=0.5), pivot=(100.0, 120.0, 140.0))
    np.testing.assert_allclose(out, images, atol=1e-4)


def test_free_rotation_interpolates_per_image():
    images = np.repeat(_batch(n=1, size=16), 4, axis=0)
    out = _run(images, Augment(rotate_degrees=30))
    assert out.shape == images.shape
    assert not np.array_equal(out[0], out[1])  # each image drew its own angle


def test_same_seed_same_result_and_none_is_identity():
    images = _batch()
    aug = augment.PRESETS["full"]
    np.testing.assert_array_equal(_run(images, aug, seed=(5, 9)), _run(images, aug, seed=(5, 9)))
    assert not np.array_equal(_run(images, aug, seed=(5, 9)), _run(images, aug, seed=(5, 10)))
    np.testing.assert_array_equal(_run(images, augment.PRESETS["none"]), images.astype(np.float32))


def test_quarter_turns_need_square_inputs():
    from bcc_edge._tf import tf

    with pytest.raises(BccError, match="square"):
        augment.augment_batch(tf.zeros([2, 8, 9, 3], tf.uint8), tf.constant([0, 0], tf.int64), Augment(rot90=True))


def test_resolve():
    assert augment.resolve(None) == Augment()
    assert augment.resolve("full").rotate_degrees > 0
    assert augment.resolve({"flips": True}) == Augment(flips=True)
    with pytest.raises(BccError, match="unknown augmentation"):
        augment.resolve("mixup")
    with pytest.raises(BccError, match="invalid"):
        augment.resolve({"jitter": 1})
