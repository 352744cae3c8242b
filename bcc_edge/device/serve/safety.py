"""What stands between the network and the app: one ASGI layer, checked in this order.

1. Without a token the server listens on loopback only, so it also accepts only a loopback
   `Host`: a web page elsewhere whose name an attacker re-points at 127.0.0.1 (DNS rebinding)
   is refused (421).
2. A browser's POST from another origin is refused (403): a page elsewhere could otherwise send
   images or reviews to the station without being able to read the answer (CSRF).
3. With a token, every request but PUBLIC needs `Authorization: Bearer <token>` (401),
   compared in constant time. PUBLIC holds what carries no data and does nothing: /healthz (a
   service manager's liveness probe has no secret), the page shell and its assets, and the API
   description (a browser cannot send a header when it opens a page, so the page asks for
   the token and sends it with each API call).
4. A body over the limit gets 413: at once when Content-Length announces it, else when the
   bytes streamed in pass the limit, before the body is read whole.
5. At most `capacity` POSTs are in the server at a time (being read, waiting for the model or
   classified); one more gets 503 with Retry-After, so memory stays bounded.
Every response also carries headers that keep the page from loading anything from elsewhere.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

PUBLIC = frozenset({"/healthz", "/", "/docs", "/openapi.json"})
PUBLIC_PREFIX = "/page/"
RETRY_AFTER_SECONDS = 2
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, without a port) can only be reached from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8000" -> "::1")."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0]


class Safety:
    """The ASGI layer of the module docstring, wrapped around the app."""

    def __init__(self, app, token: str | None, max_body: int, capacity: int):
        self.app, self.max_body, self.capacity = app, max_body, capacity
        self.token = token or None  # an empty --token (an unset variable) is no token
        self.held = 0  # POSTs in the server; the event loop is single-threaded, so no lock

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secured(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            return await refusal(scope, receive, send_secured)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send_secured)
        self.held += 1
        try:
            await self.app(scope, self._limited(receive), send_secured)
        finally:
            self.held -= 1

    def _refusal(self, scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.token is None and not is_loopback(_hostname(host)):
            return _reply(421, "this server answers only to 127.0.0.1 and localhost (start it with --token to serve others)")
        origin = headers.get("origin")
        if scope["method"] == "POST" and origin is not None and urlsplit(origin).netloc != host:
            return _reply(403, "cross-origin requests are refused")
        if self.token is not None and not _public(scope["path"]) and not _bearer_matches(headers.get("authorization"), self.token):
            return _reply(401, "this server needs 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
        if scope["method"] != "POST":
            return None
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return _reply(413, f"the request is over the limit of {self.max_body} bytes (--max-upload-mb)")
        if self.held >= self.capacity:
            return _reply(503, "the server is busy; retry shortly", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return None

    def _limited(self, receive):
        """`receive` that refuses a streamed body (no Content-Length) once it passes the limit."""
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise HTTPException(413, f"the request is over the limit of {self.max_body} bytes (--max-upload-mb)")
            return message

        return limited


def _public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIX)


def _bearer_matches(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest on bytes: its time does not depend on where the strings differ.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))


def _reply(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status, headers)
