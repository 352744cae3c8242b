"""The page of `bcc-edge serve` in a real browser (Debian's chromium, driven by Playwright):
drop and pick images, see labels, statuses (referred first) and the count, review a referred
cell, download the CSV; nothing may fail in the browser's console (the page's CSP included).

The screenshot goes to the test's folder, and also to $BCC_EDGE_SCREENSHOT when set (how
docs/serve.jpg is made).
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
pytest.importorskip("fastapi")
expect = sync_api.expect

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-component-update", "--disable-sync"]

DROP = """async ([files]) => {
  const transfer = new DataTransfer();
  for (const [name, b64] of files) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
  }
  document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


def review_threshold(model, paths) -> float:
    """A threshold between the middle scores, so some cells are referred and some accepted."""
    from bcc_edge.runtime import EdgeClassifier

    scores = sorted({p.score for p in EdgeClassifier(model, threads=1).predict_paths(paths)})
    assert len(scores) >= 2, "the images need different scores"
    middle = len(scores) // 2
    return (scores[middle - 1] + scores[middle]) / 2


@pytest.fixture
def server(synthetic_data, tmp_path):
    """`bcc-edge serve --port 0` as a user starts it, with the bundled model (trained on PBC);
    yields (url, review dir, images)."""
    from bcc_edge.runtime import BUNDLED_MODEL

    images = sorted(synthetic_data.rglob("*.jpg"))[::4]
    review = tmp_path / "review"
    threshold = review_threshold(BUNDLED_MODEL, images)
    # --no-guard: synthetic cells are not PBC images and the guard rightly refers every one of
    # them; the page is tested here with a mix of accepted and referred cells.
    cmd = [sys.executable, "-m", "bcc_edge", "serve", "--port", "0", "--review-dir", str(review), "--review-threshold", f"{threshold:.6f}", "--no-guard"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        url, deadline = None, time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            url = (re.search(r"http://127\.0\.0\.1:\d+/", line) or [None])[0]
        assert url, "serve did not start"
        yield url, review, images
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_page_classifies_counts_and_reviews(server, tmp_path):
    url, review, images = server
    dropped, picked = images[: len(images) // 2], images[len(images) // 2 :]
    folder = tmp_path / "folder"
    folder.mkdir()
    for image in picked[1:]:
        shutil.copy(image, folder)
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / ".DS_Store").write_bytes(b"hidden: not sent")
    (folder / "notes.txt").write_text("not an image name: not sent")
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS, accept_downloads=True, viewport={"width": 1100, "height": 820})
        try:
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            # Waits go through locators: the page's CSP forbids the eval behind wait_for_function.
            expect(page.locator("#model")).to_contain_text("classes")
            page.evaluate(DROP, [[[f.name, base64.b64encode(f.read_bytes()).decode()] for f in dropped]])
            page.set_input_files("#files", str(picked[0]))
            page.set_input_files("#folder", str(folder))
            total = len(images) + 1
            expect(page.locator(".cell")).to_have_count(total, timeout=30000)
            expect(page.locator("#totals")).to_contain_text(f"{total} cells", timeout=30000)

            statuses = page.eval_on_selector_all(".cell", "cells => cells.map(c => c.dataset.status)")
            assert statuses == sorted(statuses, key=["review", "error", "ok"].index), "referred cells come first"
            assert statuses.count("error") == 1 and "review" in statuses and "ok" in statuses
            labels = page.eval_on_selector_all(".cell[data-status=ok] .label", "nodes => nodes.map(n => n.textContent)")
            assert labels and all(labels)
            rows = page.eval_on_selector_all("#count tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")
            assert len(rows) == 8 and sum(int(r[1]) for r in rows) == statuses.count("ok")

            first = page.locator(".cell[data-status=review]").first
            first.locator("select").select_option("monocyte")
            first.locator("button").click()
            expect(first.locator(".reviewed")).to_have_text("saved as monocyte")
            assert len(list((review / "monocyte").glob("*.jpg"))) == 1

            with page.expect_download() as download:
                page.click("#download")
            table = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
            assert len(table) == total and {r["status"] for r in table} == {"ok", "review", "error"}

            shot = tmp_path / "serve.jpg"
            page.screenshot(path=str(shot), type="jpeg", quality=80)
            assert shot.stat().st_size > 10_000
            if os.environ.get("BCC_EDGE_SCREENSHOT"):
                shutil.copy(shot, os.environ["BCC_EDGE_SCREENSHOT"])
        finally:
            context.close()
    assert problems == []
