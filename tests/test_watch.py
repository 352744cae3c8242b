"""`bcc-edge watch`: each image once it is completely written, across restarts; hidden and
temporary files ignored; rows appended whole; a clean stop on SIGTERM."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bcc_edge.device.watch import STATE_SUFFIX, watch
from bcc_edge.errors import BccError
from bcc_edge.fileio import AppendLog
from bcc_edge.runtime import BUNDLED_MODEL, EdgeClassifier

SETTLE = 0.4
POLL = 0.05


@pytest.fixture(scope="module")
def classifier():
    return EdgeClassifier(BUNDLED_MODEL, threads=1)


@pytest.fixture(scope="module")
def images(synthetic_data) -> list[Path]:
    return sorted(synthetic_data.rglob("*.jpg"))


class Watching:
    """`watch` in a thread, stopped (and joined) on exit."""

    def __init__(self, classifier, folder: Path, output: Path, **kwargs):
        self.stop = threading.Event()
        self.result = {}
        self.output = output
        self.thread = threading.Thread(target=self._run, args=(classifier, folder, output), kwargs=kwargs, daemon=True)

    def _run(self, *args, **kwargs):
        try:
            self.result["summary"] = watch(*args, stop=self.stop, settle=SETTLE, poll=POLL, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.result["error"] = exc

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive()
        if "error" in self.result:
            raise self.result["error"]

    def rows(self) -> list[dict]:
        if not self.output.exists():
            return []
        with open(self.output, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def wait_rows(self, n: int, timeout: float = 20) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.rows()) < n and time.monotonic() < deadline and "error" not in self.result:
            time.sleep(POLL)
        time.sleep(3 * SETTLE)  # nothing more may come
        return self.rows()


def names(rows) -> list[str]:
    return sorted(Path(r["path"]).name for r in rows)


def test_each_new_image_once_ignoring_partial_hidden_and_deleted_files(classifier, images, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "results.csv"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(images[0], folder / "already-there.jpg")
    with Watching(classifier, folder, out, count=tmp_path / "count.json") as w:
        assert names(w.wait_rows(1)) == ["already-there.jpg"]
        # A slow writer: pauses shorter than the settle time never expose a partial file.
        data = images[1].read_bytes()
        with open(folder / "slow.jpg", "wb") as f:
            for i in range(0, len(data), len(data) // 4 + 1):
                f.write(data[i : i + len(data) // 4 + 1])
                f.flush()
                time.sleep(SETTLE / 3)
        # Renamed in from a temporary name, as careful capture software does.
        shutil.copy(images[2], folder / "renamed.jpg.part")
        os.rename(folder / "renamed.jpg.part", folder / "sub" / "renamed.jpg")
        for ignored in (".hidden.jpg", "upload.tmp", "x.jpg~", "~lock.jpg", "notes.txt"):
            shutil.copy(images[3], folder / ignored)
        # Gone before it settled: forgotten.
        shutil.copy(images[4], folder / "deleted.jpg")
        (folder / "deleted.jpg").unlink()
        rows = w.wait_rows(3)
    assert names(rows) == ["already-there.jpg", "renamed.jpg", "slow.jpg"]
    assert all(r["status"] in ("ok", "review") and r["error"] == "" for r in rows)
    assert out.read_text().count("path,label") == 1
    doc = json.loads((tmp_path / "count.json").read_text())
    assert doc["samples"][0]["n"] == 3
    assert w.result["summary"].done == 3


def test_a_restart_classifies_only_what_is_new(classifier, images, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "results.csv"
    folder.mkdir()
    for i in range(2):
        shutil.copy(images[i], folder / f"{i}.jpg")
    with Watching(classifier, folder, out, count=tmp_path / "count.json") as w:
        w.wait_rows(2)
    (folder / "broken.jpg").write_bytes(b"not an image")
    shutil.copy(images[2], folder / "2.jpg")
    (folder / "0.jpg").unlink()  # a classified file deleted: its row stays
    with Watching(classifier, folder, out, count=tmp_path / "count.json") as w:
        rows = w.wait_rows(4)
    assert names(rows) == ["0.jpg", "1.jpg", "2.jpg", "broken.jpg"]
    assert [r["status"] for r in rows if r["error"]] == ["error"]
    doc = json.loads((tmp_path / "count.json").read_text())
    assert (doc["samples"][0]["n"], doc["samples"][0]["errors"]) == (4, 1)  # the count goes on from the first run
    assert w.result["summary"].done == 2
    # A file replaced under its name (new size and time) is a new capture.
    shutil.copy(images[3], folder / "1.jpg")
    with Watching(classifier, folder, out) as w:
        rows = w.wait_rows(5)
    assert names(rows).count("1.jpg") == 2 and len(rows) == 5


def test_refuses_results_of_another_kind(classifier, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    out = tmp_path / "results.csv"
    with Watching(classifier, folder, out):
        pass
    with pytest.raises(BccError, match="other columns"):
        watch(classifier, folder, out, top_k=2, stop=threading.Event())
    Path(f"{out}{STATE_SUFFIX}").write_text('{"model_sha256": "0000"}\n')
    with pytest.raises(BccError, match="another model"):
        watch(classifier, folder, out, stop=threading.Event())
    with pytest.raises(BccError, match="not a directory"):
        watch(classifier, tmp_path / "missing", out, stop=threading.Event())


def test_a_torn_record_is_cut_before_the_next_one(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("a,b\n1,2\n3,")  # a power cut in the middle of a record
    with AppendLog(log, "a,b\n") as f:
        f.write("5,6\n")
    assert log.read_text() == "a,b\n1,2\n5,6\n"
    log.write_text("")
    with AppendLog(log, "a,b\n") as f:
        f.write("7,8\n")
    assert log.read_text() == "a,b\n7,8\n"


def test_the_command_stops_cleanly_on_sigterm(images, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "results.csv"
    folder.mkdir()
    shutil.copy(images[0], folder / "a.jpg")
    cmd = [sys.executable, "-m", "bcc_edge", "watch", str(folder), "--output", str(out), "--settle", "0.2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text().count("\n") >= 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: 1 of 1 inputs classified" in err and "Traceback" not in err
