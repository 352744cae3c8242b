"""Calibration manifests: stratified selection, the CSV format, and refusing sets that do not
belong to the model or the data."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bcc_edge import calib
from bcc_edge.cli import app
from bcc_edge.fileio import file_sha256
from bcc_edge.errors import BccError
from bcc_edge.data import Record


def _records(counts: dict[str, int], root: Path = Path("/data")) -> list[Record]:
    labels = sorted(counts)
    return [Record(str(root / label / f"{i:03d}.jpg"), label, labels.index(label), f"{label}{i}") for label in labels for i in range(counts[label])]


def test_select_is_stratified_capped_and_reproducible():
    records = _records({"a": 10, "b": 3, "c": 7})
    chosen = calib.select(records, per_class=5, seed=3)
    assert Counter(r.label for r in chosen) == {"a": 5, "b": 3, "c": 5}
    assert calib.select(list(reversed(records)), per_class=5, seed=3) == chosen  # input order does not matter
    assert calib.select(records, per_class=5, seed=4) != chosen  # the seed does


@pytest.mark.parametrize("per_class", [0, -1])
def test_select_refuses_non_positive_per_class(per_class):
    with pytest.raises(BccError, match="per-class"):
        calib.select(_records({"a": 2}), per_class)


def test_select_refuses_nothing():
    with pytest.raises(BccError, match="no images"):
        calib.select([], 4)


def test_manifest_round_trip(synthetic_data):
    labels = sorted(p.name for p in synthetic_data.iterdir())
    files = sorted(synthetic_data.glob("*/*.jpg"))[::7]
    records = [Record(str(f), f.parent.name, labels.index(f.parent.name), file_sha256(f)) for f in files]
    text = calib.manifest_text(records, synthetic_data)
    assert text.splitlines()[0] == "path,label,sha256"
    assert all(not Path(line.split(",")[0]).is_absolute() for line in text.splitlines()[1:])
    manifest = synthetic_data.parent / "roundtrip.csv"
    try:
        calib.write_manifest(manifest, calib.from_records(records, synthetic_data, "test"))
        cset = calib.load(manifest, synthetic_data, labels)
    finally:
        manifest.unlink(missing_ok=True)
    assert [(r.path, r.label, r.index, r.sha256) for r in cset.records] == [(r.path, r.label, r.index, r.sha256) for r in records]
    assert cset.describe()["count"] == len(records)
    assert len(cset.describe()["sha256"]) == 64


def test_manifest_text_refuses_paths_outside_the_root(tmp_path):
    with pytest.raises(BccError, match="outside the data root"):
        calib.manifest_text([Record("/elsewhere/x.jpg", "a", 0, "0" * 64)], tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "not a calibration manifest"),
        ("file,class\nx.jpg,a\n", "not a calibration manifest"),
        ("path,label,sha256\n", "empty"),
        ("path,label,sha256\nx.jpg,a\n", "line 2"),
        ("path,label,sha256\nx.jpg,,abc\n", "line 2"),
    ],
)
def test_parse_refuses_malformed_manifests(text, message):
    with pytest.raises(BccError, match=message):
        calib.parse_manifest(text, "m.csv")


@pytest.fixture
def data_copy(synthetic_data, tmp_path) -> Path:
    return Path(shutil.copytree(synthetic_data, tmp_path / "data"))


def _manifest_for(root: Path, files: list[Path], out: Path) -> Path:
    rows = [f"{f.relative_to(root).as_posix()},{f.parent.name},{file_sha256(f)}" for f in files]
    out.write_text("path,label,sha256\n" + "\n".join(rows) + "\n")
    return out


def test_load_refuses_labels_the_model_lacks(data_copy, tmp_path):
    manifest = _manifest_for(data_copy, sorted(data_copy.glob("*/*.jpg"))[:3], tmp_path / "m.csv")
    with pytest.raises(BccError, match="not classes of this model"):
        calib.load(manifest, data_copy, ["somethingelse", "other"])


def test_load_refuses_changed_and_missing_files(data_copy, tmp_path):
    files = sorted(data_copy.glob("*/*.jpg"))[:3]
    labels = sorted(p.name for p in data_copy.iterdir())
    manifest = _manifest_for(data_copy, files, tmp_path / "m.csv")
    files[1].write_bytes(files[1].read_bytes() + b"\0")
    with pytest.raises(BccError, match="does not match its sha256"):
        calib.load(manifest, data_copy, labels)
    files[1].unlink()
    with pytest.raises(BccError, match="not found"):
        calib.load(manifest, data_copy, labels)


def test_make_draws_from_the_train_split_only(synthetic_data, tmp_path):
    from bcc_edge.data import discover

    out = tmp_path / "calib.csv"
    cset = calib.make(synthetic_data, per_class=100, out=out, seed=1)
    index = discover(synthetic_data, seed=1)
    assert {r.path for r in cset.records} == {r.path for r in index.train}
    labels = sorted(p.name for p in synthetic_data.iterdir())
    assert calib.load(out, synthetic_data, labels).sha256 == cset.sha256


def test_make_refuses_a_test_split_and_an_existing_file(synthetic_data, tmp_path):
    with pytest.raises(BccError, match="test split"):
        calib.make(synthetic_data, 4, tmp_path / "c.csv", split="test")
    existing = tmp_path / "exists.csv"
    existing.write_text("keep me")
    with pytest.raises(BccError, match="already exists"):
        calib.make(synthetic_data, 4, existing)
    assert existing.read_text() == "keep me"


def test_calib_make_command(synthetic_data, tmp_path):
    out = tmp_path / "c.csv"
    result = CliRunner().invoke(app, ["calib", "make", "--data", str(synthetic_data), "--per-class", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "path,label,sha256" and len(lines) == 1 + 2 * 3
    again = CliRunner().invoke(app, ["calib", "make", "--data", str(synthetic_data), "--per-class", "2", "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
