"""`bcc-edge serve`: the API gives infer's rows and count's document for uploads, and is safe
by default (loopback, token, limits, queue, no client path on disk, no traceback)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from bcc_edge import metadata  # noqa: E402
from bcc_edge.cli import app as cli  # noqa: E402
from bcc_edge.device.serve.app import MAX_FILES, create_app, display_name  # noqa: E402
from bcc_edge.device.serve.reviews import ReviewStore  # noqa: E402
from bcc_edge.device.serve.safety import Safety  # noqa: E402
from bcc_edge.errors import BccError  # noqa: E402
from bcc_edge.runtime import BUNDLED_MODEL, EdgeClassifier  # noqa: E402

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def classifier():
    return EdgeClassifier(BUNDLED_MODEL, threads=1)


@pytest.fixture(scope="module")
def review_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("review")


@pytest.fixture(scope="module")
def client(classifier, review_dir):
    return TestClient(create_app(classifier, review_dir=review_dir, max_upload_bytes=1 << 20), base_url=LOCAL)


@pytest.fixture(scope="module")
def files(synthetic_data) -> list[tuple[str, bytes]]:
    paths = sorted(synthetic_data.rglob("*.jpg"))[::8]
    return [(p.name, p.read_bytes()) for p in paths] + [("broken.jpg", b"not an image")]


def upload(files, field="files"):
    return [(field, (name, data, "application/octet-stream")) for name, data in files]


def infer_json(paths, *args) -> list[dict]:
    result = CliRunner().invoke(cli, ["infer", *map(str, paths), "--format", "json", *args])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_rows_equal_infer_rows(client, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # infer's paths, and so its error messages, are the bare names
    for name, data in files:
        (tmp_path / name).write_bytes(data)
    response = client.post("/v1/classify?top_k=2", files=upload(files))
    assert response.status_code == 200
    rows = response.json()
    assert rows == infer_json([name for name, _ in files], "--top-k", "2")
    assert rows[-1]["status"] == "error" and "broken.jpg" in rows[-1]["error"]


def test_count_tally_and_csv_agree_with_the_commands(client, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, data in files:
        (tmp_path / name).write_bytes(data)
    doc = client.post("/v1/count", files=upload(files)).json()
    result = CliRunner().invoke(cli, ["count", *[n for n, _ in files], "--format", "json"])
    assert result.exit_code == 0, result.output
    assert doc["samples"] == json.loads(result.stdout)["samples"]
    assert doc["model"]["path"] == BUNDLED_MODEL.name  # the server's file layout stays private
    rows = client.post("/v1/classify", files=upload(files)).json()
    assert client.post("/v1/tally", json=rows).json()["samples"] == doc["samples"]
    response = client.post("/v1/results.csv", json=rows)
    assert response.headers["content-type"].startswith("text/csv")
    result = CliRunner().invoke(cli, ["infer", *[n for n, _ in files], "--format", "csv"])
    assert response.text == result.stdout
    bad = [{**rows[0], "label": "not-a-class"}]
    assert client.post("/v1/tally", json=bad).status_code == 400
    assert client.post("/v1/tally", json=[{"status": "maybe"}]).status_code == 422


def test_model_describes_labels_policy_and_selftest(client, classifier):
    info = client.get("/v1/model").json()
    assert info["labels"] == classifier.labels and info["path"] == BUNDLED_MODEL.name
    assert info["spec"] == classifier.spec.to_dict()
    assert "summary" in info["selftest"] and "review" in info and "probabilities" in info
    assert info["server"] == {"max_upload_bytes": 1 << 20, "max_files": MAX_FILES, "queue": 16, "reviews": True}


def test_model_reports_a_passed_selftest_and_the_review_policy(tiny_export):
    classifier = EdgeClassifier(tiny_export / "model_int8.tflite", threads=1)
    info = TestClient(create_app(classifier), base_url=LOCAL).get("/v1/model").json()
    assert info["selftest"]["available"] and info["selftest"]["passed"]
    assert info["review"] is not None and info["guard"] is True


def test_bad_requests_get_one_clear_status(client, files):
    assert client.post("/v1/classify", content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=x"}).status_code == 400
    assert client.post("/v1/classify", content=b"{}", headers={"Content-Type": "application/json"}).status_code == 400
    assert client.post("/v1/classify", data={"files": "text, not a file"}).status_code == 400
    assert client.post("/v1/classify", files=upload(files[:1] * (MAX_FILES + 1))).status_code == 400
    assert client.post("/v1/classify", files=upload([("big.jpg", b"\xff" * (2 << 20))])).status_code == 413
    # No Content-Length (chunked): the limit counts the bytes as they stream in.
    chunks = (b"\xff" * 65536 for _ in range(40))
    response = client.post("/v1/classify", content=chunks, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413
    assert client.get("/v1/nothing").status_code == 404


def test_an_internal_error_is_a_line_not_a_traceback(classifier, monkeypatch):
    def boom():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(classifier, "describe", boom)
    client = TestClient(create_app(classifier), base_url=LOCAL, raise_server_exceptions=False)
    response = client.get("/v1/model")
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}


def test_token_guards_everything_but_liveness_and_the_page_shell(classifier):
    client = TestClient(create_app(classifier, token="s3cret"), base_url="http://station.lab:8000")
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200 and client.get("/page/app.js").status_code == 200
    assert "/page/docs.js" in client.get("/docs").text  # the offline reference, no CDN
    assert "multipart/form-data" in json.dumps(client.get("/openapi.json").json()["paths"]["/v1/classify"])
    assert client.get("/v1/model").status_code == 401
    assert client.get("/v1/model", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/model", headers={"Authorization": "Basic s3cret"}).status_code == 401
    assert client.post("/v1/classify", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # An empty token (an unset variable) is no token: loopback names only.
    assert TestClient(create_app(classifier, token=""), base_url="http://station.lab").get("/v1/model").status_code == 421


def test_without_token_only_loopback_names_and_same_origin_posts(client, files):
    assert client.get("/v1/model", headers={"Host": "evil.example"}).status_code == 421  # DNS rebinding
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200
    assert client.post("/v1/classify", files=upload(files[:1]), headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/v1/classify", files=upload(files[:1]), headers={"Origin": LOCAL}).status_code == 200
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"] and "<html" in page.text


def test_a_full_queue_answers_503_with_retry_after():
    release = asyncio.Event()

    async def slow(scope, receive, send):
        await release.wait()
        await JSONResponse({})(scope, receive, send)

    async def run():
        transport = httpx.ASGITransport(app=Safety(slow, token=None, max_body=100, capacity=1))
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as c:
            first = asyncio.create_task(c.post("/x", content=b"a"))
            await asyncio.sleep(0.05)
            second = await c.post("/x", content=b"a")
            release.set()
            return (await first).status_code, second.status_code, second.headers.get("retry-after")

    assert asyncio.run(run()) == (200, 503, "2")


def test_reviews_are_stored_by_content_under_a_model_label(client, classifier, files, review_dir):
    name, data = files[0]
    sha = hashlib.sha256(data).hexdigest()
    response = client.post("/v1/review", files={"file": ("../../../etc/evil.jpg", data)}, data={"label": classifier.labels[1]})
    assert response.status_code == 200, response.text
    assert response.json() == {"sha256": sha, "file": f"{classifier.labels[1]}/{sha}.jpg", "label": classifier.labels[1]}
    # Relabelled: one file, under the latest label.
    response = client.post("/v1/review", files={"file": ("x.jpg", data)}, data={"label": classifier.labels[2]})
    assert response.status_code == 200
    stored = sorted(p.relative_to(review_dir).as_posix() for p in review_dir.rglob("*") if p.is_file())
    assert stored == [f"{classifier.labels[2]}/{sha}.jpg", "reviews.csv"]
    assert client.post("/v1/review", files={"file": ("x.jpg", data)}, data={"label": "../escape"}).status_code == 400
    assert client.post("/v1/review", files={"file": ("x.jpg", b"not an image")}, data={"label": classifier.labels[0]}).status_code == 400
    assert TestClient(create_app(classifier), base_url=LOCAL).post("/v1/review", files={"file": ("x.jpg", data)}, data={"label": classifier.labels[0]}).status_code == 404


def test_the_review_log_holds_the_models_own_prediction(classifier, files, tmp_path):
    store = ReviewStore(tmp_path, classifier.labels)
    (prediction,) = classifier.predict([classifier.load(_write(tmp_path / "in.jpg", files[0][1]))])
    store.save(files[0][1], classifier.labels[1], prediction)
    store.save(files[0][1], classifier.labels[2], prediction)
    with open(tmp_path / "reviews.csv", newline="") as f:
        log = list(csv.DictReader(f))
    assert [r["label"] for r in log] == classifier.labels[1:3] and log[0]["predicted"] == prediction.label
    with pytest.raises(BccError, match="cannot name a folder"):
        ReviewStore(tmp_path / "x", ["ok", "../up"])


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "raw, shown",
    [("cell.jpg", "cell.jpg"), ("C:\\scans\\cell.jpg", "cell.jpg"), ("../../etc/passwd", "passwd"), ("a\nb\x1b[2J.jpg", "a\\nb\\x1b[2J.jpg"), ("", "upload-3"), (None, "upload-3"), ("x" * 500, "x" * 200)],
)
def test_display_names(raw, shown):
    assert display_name(raw, 2) == shown


def test_serve_refuses_a_public_bind_without_token():
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: refusing to listen on 0.0.0.0 without --token") and result.stderr.count("\n") == 1


def test_the_cli_does_not_load_the_web_stack():
    code = "import sys, bcc_edge.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn', 'multipart', 'python_multipart')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def start(*args) -> tuple[subprocess.Popen, str, str]:
    """`bcc-edge serve --port 0 ARGS`, the address it printed and its first line."""
    proc = subprocess.Popen([sys.executable, "-m", "bcc_edge", "serve", "--port", "0", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if match is None:
        proc.kill()
        pytest.fail(f"serve did not start: {line}{proc.stderr.read()}")
    return proc, match.group(0), line


def test_the_command_serves_with_a_token_until_sigterm():
    proc, url, first = start("--token", "s3cret")
    assert "token required" in first
    try:
        def status(headers):
            try:
                with urllib.request.urlopen(urllib.request.Request(url + "/v1/model", headers=headers), timeout=30) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        assert status({}) == 401 and status({"Authorization": "Bearer s3cret"}) == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err and "Finished server process" in err
    assert proc.returncode == 128 + signal.SIGTERM  # like every command stopped by SIGTERM


def test_the_command_refuses_a_model_that_fails_its_selftest(tiny_export, tmp_path):
    meta = metadata.read_tflite(tiny_export / "model_int8.tflite")
    meta["golden"]["images"][0]["output"][0] += 7
    model = tmp_path / "m.tflite"
    model.write_bytes(metadata.embed_tflite((tiny_export / "model_int8.tflite").read_bytes(), meta))
    result = subprocess.run([sys.executable, "-m", "bcc_edge", "serve", "--port", "0", "--model", str(model)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "selftest failed at invoke" in result.stderr and result.stderr.count("\n") == 1


def test_the_wheel_ships_every_page_file():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    from fnmatch import fnmatch

    from bcc_edge.device.serve.app import PAGE

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bcc_edge"]
    files = [p.relative_to(root / "bcc_edge").as_posix() for p in PAGE.iterdir()]
    assert "index.html" in {Path(f).name for f in files}
    assert [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)] == []
