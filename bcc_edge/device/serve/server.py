"""Bind and run the app (uvicorn), refusing an unsafe bind."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from bcc_edge.device.selftest import require_pass
from bcc_edge.device.selftest import run as run_selftest
from bcc_edge.device.serve.app import create_app
from bcc_edge.device.serve.safety import is_loopback
from bcc_edge.errors import BccError
from bcc_edge.runtime import EdgeClassifier


def check_bind(host: str, token: str | None) -> None:
    """A BccError unless `host` is loopback or a token guards the server."""
    if not token and not is_loopback(host):
        raise BccError(f"refusing to listen on {host} without --token: anyone on the network could use this server (give --token, or keep --host 127.0.0.1)")


def serve(classifier: EdgeClassifier, host: str, port: int, token: str | None = None, selftest: bool = True, review_dir: str | Path | None = None, **app_options) -> None:
    """Serve `classifier` until SIGINT/SIGTERM. `selftest`: refuse to start when the model fails
    it (when False it still runs, for /v1/model to show). `app_options`: `create_app`'s."""
    check_bind(host, token)
    report = require_pass(classifier) if selftest else run_selftest(classifier)
    app = create_app(classifier, token=token, review_dir=review_dir, selftest=report, **app_options)
    sock = _bind(host, port)
    import uvicorn

    where = f"[{host}]" if ":" in host else host
    print(f"bcc-edge serve: http://{where}:{sock.getsockname()[1]}/ ({classifier.path.name}; {report.summary()}){'; token required' if token else ''}", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="info", server_header=False, proxy_headers=False)).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, made here so that a busy port or an unknown host is one line, and
    listening before the address is printed: a client that reads it is never refused."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError as exc:
        raise BccError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
