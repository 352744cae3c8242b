"""Data discovery, splitting, leakage guard, decoding cache and the tf.data pipeline."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from bcc_edge import data
from bcc_edge.errors import BccError
from bcc_edge.preprocess import PreprocessSpec
from bcc_edge.data import Record
from bcc_edge.fileio import file_sha256


@pytest.fixture()
def folder(synthetic_data, tmp_path):
    """A private, alterable copy of the synthetic ImageFolder."""
    return shutil.copytree(synthetic_data, tmp_path / "data")


def _classes(index):
    return sorted({r.label for r in index.train} | {r.label for r in index.val})


def test_image_folder_split_is_stratified_seeded_and_disjoint(synthetic_data):
    a = data.discover(synthetic_data, val_fraction=0.25, seed=3)
    b = data.discover(synthetic_data, val_fraction=0.25, seed=3)
    c = data.discover(synthetic_data, val_fraction=0.25, seed=4)
    assert a.split_source == "stratified"
    assert [r.path for r in a.val] == [r.path for r in b.val]
    assert [r.path for r in a.val] != [r.path for r in c.val]
    assert not {r.path for r in a.train} & {r.path for r in a.val}
    assert a.counts()["val"] == {label: 4 for label in a.labels}  # 25% of 16 per class
    assert a.labels == sorted(a.labels) and len(a.labels) == 3
    assert all(r.index == a.labels.index(r.label) for r in a.train + a.val)


def test_unreadable_and_non_image_files(folder):
    (folder / "eosinophil" / "notes.txt").write_text("not an image, ignored by extension")
    (folder / "eosinophil" / ".hidden.jpg").write_bytes(b"ignored: hidden")
    index = data.discover(folder, seed=0)
    assert not any(r.path.endswith(("notes.txt", ".hidden.jpg")) for r in index.train + index.val)


def test_duplicates_stay_out_of_val_and_label_conflicts_are_dropped(folder, tmp_path):
    # An identical file under another class: its label is ambiguous, every copy goes.
    src = folder / "eosinophil" / "eos_0000.jpg"
    shutil.copy(src, folder / "lymphocyte" / "copy_of_eos.jpg")
    index = data.discover(folder, seed=0)
    paths = {r.path for r in index.train + index.val}
    assert str(src) not in paths and str(folder / "lymphocyte" / "copy_of_eos.jpg") not in paths
    assert len(index.duplicates["label_conflicts"]) == 1

    # A split file that puts the same bytes in train and val: the val copy is removed.
    rows = ["path,label,split"]
    for name in ("eosinophil", "lymphocyte"):
        for i in range(4):
            rows.append(f"{name}/{name[:3]}_{i:04d}.jpg,{name},{'val' if i == 3 else 'train'}")
    shutil.copy(folder / "lymphocyte" / "lym_0000.jpg", folder / "lymphocyte" / "twin.jpg")
    rows.append("lymphocyte/twin.jpg,lymphocyte,val")
    (folder / "splits.csv").write_text("\n".join(rows) + "\n")
    index = data.discover(folder)
    assert index.split_source == "splits.csv"
    assert [d["path"] for d in index.duplicates["removed_from_val"]] == [str(folder / "lymphocyte" / "twin.jpg")]
    assert str(folder / "lymphocyte" / "twin.jpg") not in {r.path for r in index.val}


def test_splits_csv_dataset_with_images_folder_and_class_subset(synthetic_data, tmp_path):
    root = tmp_path / "pbc_like"
    shutil.copytree(synthetic_data, root / "images")
    rows = ["path,label,split,sha256"]
    for label in ("eosinophil", "lymphocyte", "monocyte"):
        for i in range(16):
            rows.append(f"{label}/{label[:3]}_{i:04d}.jpg,{label},{'val' if i < 4 else 'train'},ignored")
    rows.append("monocyte/mon_0000.jpg,monocyte,test,x")  # other splits are not used
    (root / "splits.csv").write_text("\n".join(rows) + "\n")

    index = data.discover(root, classes=["monocyte", "eosinophil"])
    assert index.root == (root / "images").resolve()
    assert index.labels == ["eosinophil", "monocyte"]
    assert len(index.train) == 24 and len(index.val) == 8
    assert index.train[0].sha256 == file_sha256(index.train[0].path)  # hashed, not trusted
    csv_text = index.splits_csv()
    assert csv_text.splitlines()[0] == "path,label,split,sha256"
    assert "eosinophil/eos_0004.jpg,eosinophil,train," in csv_text

    with pytest.raises(BccError, match="unknown class"):
        data.discover(root, classes=["basophil"])
    (root / "splits.csv").write_text("file,label\nx.jpg,a\n")
    with pytest.raises(BccError, match="lacks the column"):
        data.discover(root)


def test_discover_rejects_bad_input(tmp_path):
    with pytest.raises(BccError, match="not found"):
        data.discover(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a").mkdir()
    with pytest.raises(BccError, match="no images"):
        data.discover(tmp_path / "only")
    with pytest.raises(BccError, match="val-fraction"):
        data.discover(tmp_path, val_fraction=1.5)


def test_load_arrays_skips_corrupt_files_and_caches(folder, tmp_path):
    (folder / "eosinophil" / "broken.jpg").write_bytes(b"not a jpeg")
    index = data.discover(folder, seed=0)
    records = index.train + index.val
    spec = PreprocessSpec((24, 24), "area", jpeg_draft=True)
    cache = tmp_path / "cache"
    images, labels, bad = data.load_arrays(records, spec, cache)
    assert [p for p, _ in bad] == [str(folder / "eosinophil" / "broken.jpg")]
    assert images.shape == (len(records) - 1, 24, 24, 3) and images.dtype == np.uint8
    good = [r for r in records if not r.path.endswith("broken.jpg")]
    assert labels.tolist() == [r.index for r in good]
    # The cache holds exactly what preprocess gives for the resized-only spec.
    from bcc_edge.decode import load_image

    resized = spec.resized_only()
    np.testing.assert_array_equal(images[0], resized.apply(load_image(good[0].path, resized)))

    # Second load: served from the cache, even with the source files gone.
    shutil.rmtree(folder / "lymphocyte")
    again, labels_again, bad_again = data.load_arrays(good, spec, cache)
    np.testing.assert_array_equal(again, images)
    assert bad_again == []
    # Without the cache the vanished files are reported, not fatal.
    _, _, missing = data.load_arrays(good, spec, use_cache=False)
    assert len(missing) == sum(r.label == "lymphocyte" for r in good)


def test_damaged_cache_entry_is_a_miss(folder, tmp_path):
    path = folder / "monocyte" / "mon_0000.jpg"
    record = Record(str(path), "monocyte", 0, file_sha256(path))
    spec = PreprocessSpec((16, 16))
    first, _, _ = data.load_arrays([record], spec, tmp_path)
    cache = data.ImageCache(tmp_path, spec)
    cache._path(record.sha256).write_bytes(b"short")
    second, _, bad = data.load_arrays([record], spec, tmp_path)
    assert bad == [] and np.array_equal(first, second)


def test_channel_stats_are_exact_and_on_the_1_256_grid():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 8, 9, 3), dtype=np.uint8)
    mean, std = data.channel_stats(images)
    flat = images.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), atol=1 / 512)
    np.testing.assert_allclose(std, flat.std(0), atol=1 / 512)
    assert all(float(v * 256).is_integer() for v in mean + std)


@pytest.mark.parametrize(
    "mean,std",
    [((212.8515625, 195.13671875, 204.61328125), (40.453125, 48.20703125, 33.30859375)), ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))],
    ids=["stats-on-the-1/256-grid", "imagenet"],
)
def test_eval_pipeline_matches_spec_apply_bit_for_bit(mean, std):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (10, 20, 20, 3), dtype=np.uint8)
    images[0] = np.arange(20 * 20 * 3).reshape(20, 20, 3) % 256  # every grey level in every channel
    labels = np.arange(10, dtype=np.int32) % 3
    spec = PreprocessSpec((20, 20), "area", mean=mean, std=std)
    ds = data.make_dataset(images, labels, spec, batch_size=4, training=False)
    batches = list(ds)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x = np.concatenate([b[0].numpy() for b in batches])
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, spec.apply_batch(images))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), labels)


def test_training_pipeline_shuffles_each_pass_and_drops_partial_batches():
    images = np.repeat(np.arange(20, dtype=np.uint8)[:, None, None, None], 3, axis=3) * np.ones((1, 4, 4, 3), np.uint8)
    labels = np.arange(20, dtype=np.int32)
    spec = PreprocessSpec((4, 4))
    ds = data.make_dataset(images, labels, spec, batch_size=8, training=True, augment="dihedral-color", seed=5)
    first = np.concatenate([y.numpy() for _, y in ds])
    second = np.concatenate([y.numpy() for _, y in ds])
    assert len(first) == 16 and len(set(first)) == 16  # 2 full batches of distinct images
    assert first.tolist() != second.tolist()
    x, y = next(iter(ds))
    assert x.shape == (8, 4, 4, 3) and x.dtype.name == "float32"
    again = data.make_dataset(images, labels, spec, batch_size=8, training=True, augment="dihedral-color", seed=5)
    assert np.concatenate([y.numpy() for _, y in again]).tolist() == first.tolist()  # seeded


def test_normaliser_refuses_quantised_specs():
    with pytest.raises(BccError, match="float32"):
        data.normaliser(PreprocessSpec((8, 8)).with_output("int8", 0.1, 0), 8)


def test_fingerprint_changes_with_content(folder):
    a = data.discover(folder, seed=0)
    with open(folder / "monocyte" / "mon_0001.jpg", "ab") as f:
        f.write(b"\0")  # same name, new bytes
    b = data.discover(folder, seed=0)
    assert a.fingerprint != b.fingerprint
    assert dataclasses.replace(a).fingerprint == a.fingerprint
