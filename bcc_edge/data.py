"""Training data: find labelled images, split them, decode them once, feed them to TensorFlow.

Two layouts are accepted:
- an ImageFolder root, `<root>/<class>/<image>`; train/val are split here, stratified by class
  and seeded (files with identical bytes always land in the same split);
- a dataset with `<root>/splits.csv` (columns path,label,split[,...]; split train|val) whose
  paths are relative to `<root>/images/` when that folder exists, else to `<root>`.

Every file is hashed (sha256). Identical files in train and val are removed from val (leakage
guard); identical files with different labels are dropped everywhere. Decoding and resizing go
through `bcc_edge.preprocess` with the run's spec (what the device does); the resized uint8
images are cached on disk keyed by file hash and spec, so later runs, QAT and export skip JPEG
decoding. Unreadable files are returned as (path, reason) and skipped, never fatal.

TensorFlow is imported only inside the functions that build tf.data pipelines.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bcc_edge import augment as augment_mod
from bcc_edge.errors import BccError
from bcc_edge.decode import IMAGE_EXTENSIONS, ImageDecodeError, load_image
from bcc_edge.preprocess import PreprocessSpec, channel_affine, usable_cpus
from bcc_edge.progress import ProgressBar
from bcc_edge.fileio import csv_text, file_sha256, write_bytes

SPLITS_FILE = "splits.csv"
SPLIT_COLUMNS = ("path", "label", "split", "sha256")
# Bump when the cached bytes for a given spec would change (e.g. a resampling fix).
# 2: preprocessing v2 (integer Q14 resampling, see bcc_edge.preprocess).
CACHE_FORMAT = 2


@dataclass(frozen=True)
class Record:
    """One labelled image: absolute `path`, class name `label`, its model output `index`."""

    path: str
    label: str
    index: int
    sha256: str


@dataclass
class DataIndex:
    """The labelled files of one training run, split, hashed and checked for leakage."""

    root: Path  # record paths are relative to it in splits.csv
    labels: list[str]
    train: list[Record]
    val: list[Record]
    split_source: str  # "splits.csv" or "stratified"
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    duplicates: dict[str, Any] = field(default_factory=dict)

    def without(self, bad: Sequence[tuple[str, str]]) -> "DataIndex":
        """The same index minus files that failed to decode (added to `bad`)."""
        gone = {path for path, _ in bad}
        return DataIndex(
            self.root,
            self.labels,
            [r for r in self.train if r.path not in gone],
            [r for r in self.val if r.path not in gone],
            self.split_source,
            self.bad + list(bad),
            self.duplicates,
        )

    def splits_csv(self) -> str:
        rows = [
            (Path(os.path.relpath(r.path, self.root)).as_posix(), r.label, split, r.sha256)
            for split, records in (("train", self.train), ("val", self.val))
            for r in records
        ]
        return csv_text(SPLIT_COLUMNS, rows)

    @property
    def fingerprint(self) -> str:
        """sha256 of splits.csv: the exact files, contents, labels and split of the run."""
        return hashlib.sha256(self.splits_csv().encode("utf-8")).hexdigest()

    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for split, records in (("train", self.train), ("val", self.val)):
            per_class = {label: 0 for label in self.labels}
            for r in records:
                per_class[r.label] += 1
            out[split] = per_class
        return out

    def summary(self) -> dict[str, Any]:
        """What data.json records besides the fingerprint."""
        return {
            "data_root": str(self.root),
            "split_source": self.split_source,
            "labels": self.labels,
            "counts": self.counts(),
            "num_train": len(self.train),
            "num_val": len(self.val),
            "num_bad": len(self.bad),
            "duplicates": self.duplicates,
        }


# ----------------------------------------------------------------------------- discovery


def discover(
    data: str | os.PathLike,
    classes: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    threads: int | None = None,
) -> DataIndex:
    """Find, hash and split the labelled images under `data`."""
    data = Path(data).expanduser()
    if not data.is_dir():
        raise BccError(f"data folder not found: {data}")
    if not 0.0 < val_fraction < 1.0:
        raise BccError(f"--val-fraction must be between 0 and 1; got {val_fraction}")
    if (data / SPLITS_FILE).is_file():
        root, rows = _rows_from_splits_csv(data)
        source = "splits.csv"
    else:
        root, rows = data.resolve(), _rows_from_image_folder(data)
        source = "stratified"
    rows = _select_classes(rows, classes)
    labels = sorted({label for _, label, _ in rows})
    if len(labels) < 2:
        raise BccError(f"need images of at least 2 classes under {data}; found {len(labels)}")
    index = {label: i for i, label in enumerate(labels)}

    paths = [str(root / rel) for rel, _, _ in rows]
    hashes, bad = _hash_files(paths, threads)
    records, splits = [], []
    for (rel, label, split), path, sha in zip(rows, paths, hashes):
        if sha is not None:
            records.append(Record(path, label, index[label], sha))
            splits.append(split)
    if source == "stratified":
        splits = _stratified_split(records, val_fraction, seed)
    train, val, duplicates = _guard_leakage(records, splits)
    if not train or not val:
        raise BccError(f"no usable {'training' if not train else 'validation'} images under {data}")
    return DataIndex(root, labels, train, val, source, bad, duplicates)


def _rows_from_image_folder(root: Path) -> list[tuple[str, str, str]]:
    rows = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.rglob("*")):
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file():
                rows.append((path.relative_to(root).as_posix(), class_dir.name, ""))
    if not rows:
        raise BccError(f"no images found in {root}: expected <root>/<class>/<image> or <root>/{SPLITS_FILE}")
    return rows


def _rows_from_splits_csv(data: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    root = (data / "images") if (data / "images").is_dir() else data
    path = data / SPLITS_FILE
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"path", "label", "split"} - set(reader.fieldnames or ())
            if missing:
                raise BccError(f"{path} lacks the column(s) {', '.join(sorted(missing))} (needs path,label,split)")
            rows = [(row["path"], row["label"], row["split"].strip().lower()) for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BccError(f"{path} is not a readable CSV file ({exc})") from None
    rows = [row for row in rows if row[2] in ("train", "val")]
    for rel, label, _ in rows:
        if not rel or not label or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BccError(f"{path}: invalid row path={rel!r} label={label!r} (paths are relative to {root})")
    if not any(split == "val" for _, _, split in rows) or not any(split == "train" for _, _, split in rows):
        raise BccError(f"{path} needs both 'train' and 'val' rows")
    return root.resolve(), rows


def _select_classes(rows, classes):
    if not classes:
        return rows
    available = sorted({label for _, label, _ in rows})
    unknown = [c for c in classes if c not in available]
    if unknown:
        raise BccError(f"unknown class(es) {', '.join(unknown)}; available: {', '.join(available)}")
    wanted = set(classes)
    return [row for row in rows if row[1] in wanted]


# ----------------------------------------------------------------------------- evaluation images

EVAL_SPLITS = ("val", "train", "all")


@dataclass
class EvalImages:
    records: list[Record]  # .index is the position in the models' labels
    selection: str  # one sentence saying which images these are
    notes: list[str] = field(default_factory=list)


def evaluation_images(data: str | os.PathLike | None, split: str, runs: Sequence[Any], labels: Sequence[str]) -> EvalImages:
    """The labelled images `verify` and `report` evaluate on, in the models' label order:

    - no `data`, or the folder the runs were trained on (its root or its images/ folder): the
      runs' saved `split`, so "val" really is the images no model trained on (several runs
      with different splits: only the images in the split of every one of them);
    - another dataset with a splits.csv: its own `split`;
    - another plain ImageFolder: all of its images (there is no split to honour; a note says so).
    `split` is val, train or all (both). `runs` are RunDirs. BccError when no image is left,
    or when the images hold classes the models do not know.
    """
    if split not in EVAL_SPLITS:
        raise BccError(f"--split must be one of {', '.join(EVAL_SPLITS)}; got {split!r}")
    if data is None:
        if not runs:
            raise BccError("no data to evaluate on: give --data")
        chosen = _from_runs(runs, split)
    else:
        data = Path(data).expanduser()
        if not data.is_dir():
            raise BccError(f"data folder not found: {data}")
        roots = {data.resolve(), (data / "images").resolve()}
        trained_here = [run for run in runs if run.data_root.resolve() in roots]
        chosen = _from_runs(trained_here, split) if trained_here else _from_folder(data, split)
    chosen.records = relabel(chosen.records, labels, data or runs[0].data_root)
    if not chosen.records:
        raise BccError(f"no images to evaluate: {chosen.selection} is empty")
    missing = sorted(set(labels) - {r.label for r in chosen.records})
    if missing:
        chosen.notes.append(f"no images of class(es) {', '.join(missing)}: their recall is 0 and they are left out of balanced accuracy")
    return chosen


def _of_split(by_split: dict[str, list[Record]], split: str) -> list[Record]:
    return by_split["train"] + by_split["val"] if split == "all" else by_split[split]


def _from_runs(runs: Sequence[Any], split: str) -> EvalImages:
    per_run = [_of_split({s: run.records(s) for s in ("train", "val")}, split) for run in runs]
    common = set.intersection(*({r.path for r in records} for records in per_run))
    records = [r for r in per_run[0] if r.path in common]
    if len(runs) == 1:
        return EvalImages(records, f"the '{split}' images of the run's saved split ({runs[0].path / SPLITS_FILE})")
    notes = []
    if any(len(r) != len(records) for r in per_run):
        notes.append(f"the runs' '{split}' splits differ: only the {len(records)} images in all of them are used, so no model is scored on images it trained on")
    return EvalImages(records, f"the '{split}' images shared by the saved splits of runs {', '.join(str(r.path) for r in runs)}", notes)


def _from_folder(data: Path, split: str) -> EvalImages:
    index = discover(data)
    if index.split_source == SPLITS_FILE:
        return EvalImages(_of_split({"train": index.train, "val": index.val}, split), f"the '{split}' images of {data / SPLITS_FILE}")
    chosen = EvalImages(index.train + index.val, f"all images of {data} (no splits.csv, and no run was trained on it)")
    if split != "all":
        chosen.notes.append(f"--split {split} ignored: {data} has no splits.csv and no compared run was trained on it")
    return chosen


def relabel(records: Sequence[Record], labels: Sequence[str], source: str | os.PathLike) -> list[Record]:
    """`records` with `.index` set to each label's position in a model's `labels` (a dataset
    other than the training one may list its classes in another order); a class the model
    does not know is a BccError naming it."""
    position = {label: i for i, label in enumerate(labels)}
    unknown = sorted({r.label for r in records} - set(position))
    if unknown:
        raise BccError(f"{source} has classes the model does not know: {', '.join(unknown)} (model classes: {', '.join(labels)})")
    return [Record(r.path, r.label, position[r.label], r.sha256) for r in records]


def _hash_files(paths: list[str], threads: int | None) -> tuple[list[str | None], list[tuple[str, str]]]:
    def one(path):
        try:
            return file_sha256(path), None
        except OSError as exc:
            return None, exc.strerror or str(exc)

    with ThreadPoolExecutor(threads or usable_cpus()) as pool:
        results = list(pool.map(one, paths, chunksize=64))
    bad = [(path, reason) for path, (_, reason) in zip(paths, results) if reason is not None]
    return [sha for sha, _ in results], bad


def _stratified_split(records: list[Record], val_fraction: float, seed: int) -> list[str]:
    """Per class, a seeded val_fraction of the distinct file contents goes to val."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r.sha256 not in by_class[r.label]:
            by_class[r.label].append(r.sha256)
    rng = np.random.default_rng(seed)
    val_hashes = set()
    for label in sorted(by_class):
        hashes = sorted(by_class[label])
        n_val = int(round(len(hashes) * val_fraction))
        n_val = min(max(n_val, 1), len(hashes) - 1) if len(hashes) >= 2 else 0
        val_hashes.update(hashes[i] for i in rng.permutation(len(hashes))[:n_val])
    return ["val" if r.sha256 in val_hashes else "train" for r in records]


def _guard_leakage(records: list[Record], splits: list[str]):
    by_hash: dict[str, list[tuple[Record, str]]] = defaultdict(list)
    for r, split in zip(records, splits):
        by_hash[r.sha256].append((r, split))
    conflicts, removed, within = [], [], 0
    train, val = [], []
    for r, split in zip(records, splits):
        group = by_hash[r.sha256]
        if len({g.label for g, _ in group}) > 1:
            continue  # reported once below
        if split == "val":
            twin = next((g for g, s in group if s == "train"), None)
            if twin is not None:
                removed.append({"path": r.path, "same_as": twin.path})
                continue
        (train if split == "train" else val).append(r)
    for sha, group in by_hash.items():
        if len({g.label for g, _ in group}) > 1:
            conflicts.append({"sha256": sha, "paths": [g.path for g, _ in group], "labels": [g.label for g, _ in group]})
        elif len({s for _, s in group}) == 1:
            within += len(group) - 1
    return train, val, {"label_conflicts": conflicts, "removed_from_val": removed, "within_split_copies": within}


# ----------------------------------------------------------------------------- decoding + cache


def default_cache_dir() -> Path:
    if os.environ.get("BCC_EDGE_CACHE"):
        return Path(os.environ["BCC_EDGE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bcc-edge"


class ImageCache:
    """Resized uint8 images on disk, one raw file per (spec, file sha256). Best effort: a
    cache that cannot be written (read-only home, full disk) only costs speed."""

    def __init__(self, root: str | os.PathLike, spec: PreprocessSpec):
        spec = spec.resized_only()
        key_doc = json.dumps({"format": CACHE_FORMAT, "spec": spec.to_dict()}, sort_keys=True)
        h, w = spec.size
        self.shape = (h, w, 3)
        self.dir = Path(root) / f"{h}x{w}-{hashlib.sha256(key_doc.encode()).hexdigest()[:16]}"
        self.writable = True
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not (self.dir / "spec.json").is_file():
                _write_quietly(self.dir / "spec.json", key_doc.encode())
        except OSError:
            self.writable = False

    def _path(self, sha256: str) -> Path:
        return self.dir / sha256[:2] / f"{sha256}.u8"

    def get(self, sha256: str) -> np.ndarray | None:
        try:
            data = self._path(sha256).read_bytes()
        except OSError:
            return None
        if len(data) != int(np.prod(self.shape)):  # a damaged entry is a miss
            return None
        return np.frombuffer(data, np.uint8).reshape(self.shape)

    def put(self, sha256: str, image: np.ndarray) -> None:
        if self.writable:
            path = self._path(sha256)
            try:
                path.parent.mkdir(exist_ok=True)
            except OSError:
                self.writable = False
                return
            self.writable = _write_quietly(path, np.ascontiguousarray(image, np.uint8).tobytes())


def _write_quietly(path: Path, data: bytes) -> bool:
    """Atomic write that reports failure instead of raising: a cache may be read-only or full."""
    try:
        write_bytes(path, data)
        return True
    except OSError:
        return False


def load_arrays(
    records: Sequence[Record],
    spec: PreprocessSpec,
    cache_dir: str | os.PathLike | None = None,
    *,
    use_cache: bool = True,
    threads: int | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode and resize `records` with `spec` -> (uint8 N x h x w x 3, int32 labels, bad).

    Images hold `spec.resized_only()` grey levels; `bad` lists (path, reason) for files that
    could not be read, which are left out of both arrays (order otherwise kept).
    `progress`: a bar on stderr (None: only on a terminal).
    """
    resized = spec.resized_only()
    cache = ImageCache(cache_dir or default_cache_dir(), resized) if use_cache else None
    h, w = resized.size
    images = np.empty((len(records), h, w, 3), np.uint8)

    def one(i: int) -> tuple[str, str] | None:
        record = records[i]
        try:
            sha = record.sha256 or file_sha256(record.path)
        except OSError as exc:
            return record.path, exc.strerror or str(exc)
        cached = cache.get(sha) if cache else None
        if cached is not None:
            images[i] = cached
            return None
        try:
            resized.apply_batch([load_image(record.path, resized)], out=images[i : i + 1], threads=1)
        except (ImageDecodeError, BccError) as exc:
            return record.path, getattr(exc, "reason", str(exc))
        if cache:
            cache.put(sha, images[i])
        return None

    bar = ProgressBar(len(records), "decoding", enabled=progress)
    bad = []
    keep = np.ones(len(records), bool)
    with ThreadPoolExecutor(threads or usable_cpus()) as pool:
        for i, failure in enumerate(pool.map(one, range(len(records)), chunksize=16)):
            if failure is not None:
                bad.append(failure)
                keep[i] = False
            bar.update()
    bar.close()
    labels = np.array([r.index for r in records], np.int32)
    if bad:
        images, labels = images[keep], labels[keep]
    return images, labels, bad


# Mean and std are stored as multiples of 1/256: short, exact numbers in every JSON file, so a
# spec reads back the same on every machine.
_SNAP = 256


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0..255 units) of uint8 NHWC images, from exact histograms,
    rounded to multiples of 1/256."""
    grey = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for c in range(3):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        mean = float(hist @ grey / hist.sum())
        std = float(hist @ (grey - mean) ** 2 / hist.sum()) ** 0.5
        means.append(round(mean * _SNAP) / _SNAP)
        stds.append(max(1.0, round(std * _SNAP)) / _SNAP)
    return tuple(means), tuple(stds)


# ----------------------------------------------------------------------------- tf.data


def normaliser(spec: PreprocessSpec, width: int):
    """A TF function NHWC pixels (uint8, or float32 after augmentation) -> float32 model input:
    float32 (x - m) * r as the preprocessing contract computes it, so it equals `spec.apply`
    bit for bit on integer pixels (tested)."""
    if spec.output != "float32":
        raise BccError(f"the float model takes float32 input; spec output is {spec.output}")
    from bcc_edge._tf import tf

    m, r = channel_affine(spec)
    mean_row = tf.constant(np.tile(m, width)[None, :])
    inv_row = tf.constant(np.tile(r, width)[None, :])

    def normalise(x):
        shape = tf.shape(x)
        rows = tf.reshape(tf.cast(x, tf.float32), [-1, width * 3])  # a long last axis broadcasts fast
        return tf.reshape((rows - mean_row) * inv_row, shape)

    return normalise


def batch_loader(
    images: np.ndarray,
    labels: np.ndarray,
    spec: PreprocessSpec,
    augment,
    seed: int,
    alternative: np.ndarray | None = None,
    alternative_share: float = 0.0,
    soft_targets: np.ndarray | None = None,
):
    """A tf.data map function (batch_seed, indices) -> (float32 model input, int32 labels),
    or (input, labels, soft targets) when `soft_targets` (N x classes) are given.

    The uint8 images become one in-memory tensor that batches gather from, so an epoch
    costs no decoding and no copy of the data set. `alternative`: the same images decoded
    and resized another way; each sample comes from it with probability `alternative_share`
    (a model that has seen both is indifferent to how a client resizes).
    """
    from bcc_edge._tf import tf

    aug = augment_mod.resolve(augment)
    with tf.device("/cpu:0"):
        images_t = tf.convert_to_tensor(images)
        labels_t = tf.convert_to_tensor(np.asarray(labels, np.int32))
        alternative_t = tf.convert_to_tensor(alternative) if alternative is not None and alternative_share > 0 else None
        soft_t = tf.convert_to_tensor(np.asarray(soft_targets, np.float32)) if soft_targets is not None else None
    normalise = normaliser(spec, images.shape[2])

    def load(batch_seed, indices):
        seed_pair = tf.stack([tf.constant(seed, tf.int64), tf.cast(batch_seed, tf.int64)])
        x = tf.gather(images_t, indices)
        if alternative_t is not None:
            pick = tf.random.stateless_uniform(tf.shape(indices), seed=seed_pair + [0, 1 << 40]) < alternative_share
            x = tf.where(pick[:, None, None, None], tf.gather(alternative_t, indices), x)
        if aug.enabled:
            x = augment_mod.augment_batch(x, seed_pair, aug, pivot=spec.mean)
        x, y = normalise(x), tf.gather(labels_t, indices)
        return (x, y) if soft_t is None else (x, y, tf.gather(soft_t, indices))

    return load


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    spec: PreprocessSpec,
    batch_size: int,
    training: bool,
    augment=None,
    seed: int = 0,
):
    """A finite tf.data.Dataset of (float32 NHWC model input, int32 labels) batches.

    training=True: reshuffled every iteration, augmented (`augment`: preset name, Augment or
    None), and only full batches (BatchNorm statistics of a tiny last batch are noise).
    training=False: in order, every image once, no augmentation.
    """
    from bcc_edge._tf import tf

    n = len(images)
    if n != len(labels):
        raise BccError(f"{n} images but {len(labels)} labels")
    if batch_size < 1:
        raise BccError(f"batch size must be positive; got {batch_size}")
    load = batch_loader(images, labels, spec, augment if training else None, seed)
    indices = tf.data.Dataset.range(n)
    if training:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size, drop_remainder=training and n >= batch_size)
    # Per-batch augmentation seeds that differ between iterations but repeat between runs.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(seeds, batches).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
