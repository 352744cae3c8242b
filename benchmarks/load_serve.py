"""Load test of `bcc-edge serve` on this machine: concurrent clients posting images to 127.0.0.1.

    python benchmarks/load_serve.py                        # 8 clients, 200 images, 1 per request
    python benchmarks/load_serve.py --per-request 8 --json

Starts `bcc-edge serve --port 0` (the bundled model unless --model), waits for /healthz, then
each client thread posts its share of the images (synthetic cells from bcc_edge.synthetic,
encoded once) to /v1/classify over its own keep-alive connection. Reports the answers by
status, request latency p50 / p95 / max, images per second and the server's peak resident
memory (VmHWM). Timings are reported, never asserted: they depend on the machine and on what
else runs on it. Exit status 1 when a request went unanswered, got a 5xx, or a row is missing.

Bounded: 127.0.0.1 only, at most MAX_CLIENTS clients and MAX_IMAGES images, REQUEST_TIMEOUT
seconds per request and --deadline seconds in all.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bcc_edge.synthetic import CLASSES, make_cell_image  # noqa: E402

HOST = "127.0.0.1"  # never anything else: this is a load test
MAX_CLIENTS = 64
MAX_IMAGES = 5000
REQUEST_TIMEOUT = 60
DISTINCT_IMAGES = 24


def images(n: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    encoded = []
    for i in range(DISTINCT_IMAGES):
        buf = io.BytesIO()
        Image.fromarray(make_cell_image(CLASSES[i % len(CLASSES)], rng, 363, 360)).save(buf, "JPEG", quality=90)
        encoded.append(buf.getvalue())
    return [(f"cell_{i:05d}.jpg", encoded[i % DISTINCT_IMAGES]) for i in range(n)]


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode() + data + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def start_server(args) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "bcc_edge", "serve", "--port", "0", "--queue", str(args.queue)]
    if args.model:
        cmd += ["--model", args.model]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(rf"http://{re.escape(HOST)}:(\d+)/", line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("bcc-edge serve did not start")


def client(port: int, batches: list[list[tuple[str, bytes]]], deadline: float, results: list) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    for batch in batches:
        if time.monotonic() > deadline:
            results.append(("deadline", 0.0, 0))
            continue
        body, content_type = multipart(batch)
        start = time.perf_counter()
        try:
            conn.request("POST", "/v1/classify", body, {"Content-Type": content_type})
            response = conn.getresponse()
            payload = response.read()
            rows = len(json.loads(payload)) if response.status == 200 else 0
            results.append((response.status, time.perf_counter() - start, rows))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            results.append((type(exc).__name__, time.perf_counter() - start, 0))
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    conn.close()


def peak_rss_mib(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--images", type=int, default=200, help="images in all, shared among the clients")
    parser.add_argument("--per-request", type=int, default=1)
    parser.add_argument("--queue", type=int, default=16, help="the server's --queue")
    parser.add_argument("--threads", type=int, default=None, help="the server's --threads")
    parser.add_argument("--model", default=None)
    parser.add_argument("--deadline", type=float, default=300, help="seconds for the whole test")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (1 <= args.clients <= MAX_CLIENTS and 1 <= args.images <= MAX_IMAGES and 1 <= args.per_request <= 256):
        parser.error(f"--clients 1..{MAX_CLIENTS}, --images 1..{MAX_IMAGES}, --per-request 1..256")

    files = images(args.images)
    batches = [files[i : i + args.per_request] for i in range(0, len(files), args.per_request)]
    proc, port = start_server(args)
    try:
        results: list = []
        deadline = time.monotonic() + args.deadline
        threads = [threading.Thread(target=client, args=(port, batches[i :: args.clients], deadline, results)) for i in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)

    latencies = sorted(seconds for status, seconds, _ in results if status == 200)
    rows = sum(n for _, _, n in results)
    statuses = Counter(str(status) for status, _, _ in results)
    report = {
        "clients": args.clients,
        "images": args.images,
        "per_request": args.per_request,
        "requests": len(batches),
        "answers": dict(statuses),
        "rows": rows,
        "seconds": round(wall, 2),
        "images_per_second": round(rows / wall, 1) if wall else None,
        "latency_ms": {
            "p50": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
            "max": round(1000 * latencies[-1], 1) if latencies else None,
        },
        "server_peak_rss_mib": round(rss, 1) if rss is not None else None,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        lat = report["latency_ms"]
        print(f"{args.clients} clients, {len(batches)} requests of {args.per_request} image(s): answers {dict(statuses)}, {rows} rows in {wall:.1f} s ({report['images_per_second']} images/s)")
        print(f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, max {lat['max']} ms; server peak RSS {report['server_peak_rss_mib']} MiB")
    complete = statuses.get("200", 0) == len(batches) and rows == args.images
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
