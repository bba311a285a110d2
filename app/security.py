"""Security headers on every response: a Content Security Policy without inline scripts.

All our JavaScript lives in static files and reads its data from data- attributes, so scripts
are limited to 'self'. Styles allow 'unsafe-inline' because plotly.js styles its SVG inline.
The CSP is sent on every response, not only HTML: a JSON or text body opened as a document
gets the same policy. The /docs page (Swagger UI, vendored in static/vendor)
has one inline bootstrap script; it gets its own policy that allows exactly that script, by
hash (`docs_policy`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": ", ".join(
        f"{feature}=()" for feature in ("camera", "microphone", "geolocation", "payment", "usb")
    ),
}
DOCS = ("/docs",)
WS_POLICY = 1008  # WebSocket close code "policy violation"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def security_headers(headers: MutableHeaders, csp: str = CSP) -> None:
    """Add the headers a response does not set itself. A response that sets its own policy
    allowing some sites to frame it (an embed) gets no X-Frame-Options, which would forbid
    every one of them."""
    own = headers.get("content-security-policy")
    framable = own is not None and "frame-ancestors 'none'" not in own
    for name, value in HEADERS.items():
        if not (framable and name == "X-Frame-Options"):
            headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", csp)


def embed_policy(ancestors: str) -> str:
    """The CSP of an embed (/embed/s/...): the app's, framable by `ancestors` (a CSP
    source list: `*` for any site, or `https://lwn.net https://example.edu`), and no script
    at all: an embed is server-rendered HTML and CSS."""
    parts = [p for p in CSP.split("; ") if not p.startswith(("frame-ancestors", "script-src"))]
    return "; ".join([*parts, "script-src 'none'", f"frame-ancestors {ancestors}"])


def _origin_of(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return parts.scheme.lower(), parts.netloc.lower()


def same_origin(headers: Headers, public_url: str | None = None) -> bool:
    """Whether a WebSocket handshake may proceed: browsers send the page's Origin, and a page
    on another site must not drive (or spend CPU on) our sockets with its visitors' browsers.
    The Origin must name this server: the Host the request came to, or the configured public
    URL (behind a proxy that rewrites Host). No Origin at all is a non-browser client (a
    script, a test): it could forge any header anyway, so it is allowed; "null" (a sandboxed
    or file: page) is not."""
    origin = headers.get("origin")
    if origin is None:
        return True
    seen = _origin_of(origin)
    if seen is None:
        return False
    host = headers.get("host", "").lower()
    if host and seen[1] == host:
        return True
    return public_url is not None and seen == _origin_of(public_url)


def docs_policy(html: str) -> str:
    """The CSP for the docs page: its inline scripts by sha256 (no 'unsafe-inline')."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {hashes}".rstrip(),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "worker-src 'self' blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """Pure ASGI middleware (a BaseHTTPMiddleware would buffer streamed responses)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if str(scope.get("path", "")).startswith(DOCS):
            await self._docs(scope, receive, send)
            return

        host = Headers(scope=scope).get("host", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                security_headers(headers)
                if 300 <= message["status"] < 400:
                    relative_location(headers, host)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold the (small) docs page back until its inline scripts can be hashed."""
        start: Message = {}
        chunks: list[bytes] = []

        async def send_after_body(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = MutableHeaders(scope=start)
            csp = CSP
            if headers.get("content-type", "").startswith("text/html"):
                csp = docs_policy(body.decode("utf-8", "replace"))
            security_headers(headers, csp)
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_after_body)


class RedactTokens(logging.Filter):
    """Blank out `token=...` in log lines: uvicorn logs each WebSocket's path with its query,
    and a presenter's room token must not end up in a log file."""

    PATTERN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self.PATTERN.sub(r"\1…", message), ()
        return True


def redact_tokens_in_logs() -> None:
    """Install `RedactTokens` on uvicorn's loggers (idempotent)."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class HeadAsGet:
    """HEAD answers like GET without the body (RFC 9110 9.3.2): link checkers, crawlers and
    `curl -I` otherwise got 405 from every page. The GET route runs (so its status and
    headers, Content-Length included, are the real ones) and its body is dropped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def send_without_body(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended and not message.get("more_body", False):
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, send_without_body)


LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _hostname(netloc: str) -> str:
    """`example.org:8000` -> `example.org`; `[::1]:8000` -> `::1`."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def host_allowed(
    host: str, server: tuple[str, int | None] | None, allowed: tuple[str, ...]
) -> bool:
    """Whether a request's Host names this server: a loopback name, the address the request
    arrived at, or one of `allowed` (PAGERACE_ALLOWED_HOSTS)."""
    name = _hostname(host)
    if not name:
        return False
    known = {*LOOPBACK, *(h.lower() for h in allowed)}
    if server is not None:
        known.add(str(server[0]).lower())
    return name in known


def site_url(
    scope: Scope, base_url: str, public_url: str | None, allowed: tuple[str, ...] = ()
) -> str:
    """The server's own URL for links it hands out (follow URLs, QR codes, replay links):
    the configured public URL when there is one; else the request's Host if it names this
    server (`host_allowed`); else the address the request arrived at. An arbitrary Host is
    never reflected: a cache or proxy passing one would otherwise store a poisoned link."""
    if public_url:
        return public_url.rstrip("/")
    headers = Headers(scope=scope)
    server = scope.get("server")
    if host_allowed(headers.get("host", ""), server, allowed) or not server:
        return base_url.rstrip("/")
    address, port = server
    scheme = str(scope.get("scheme", "http"))
    address = f"[{address}]" if ":" in str(address) else str(address)
    default = port is None or (scheme, port) in (("http", 80), ("https", 443))
    netloc = address if default else f"{address}:{port}"
    return f"{scheme}://{netloc}{scope.get('root_path', '')}".rstrip("/")


def relative_location(headers: MutableHeaders, host: str) -> None:
    """A redirect to this same Host needs no scheme or host: `Location: /edit` rather than
    `http://evil.example/edit`, so that a forged Host is not echoed into a cached redirect."""
    location = headers.get("location")
    if not location or not host:
        return
    parts = urlsplit(location)
    if parts.netloc and parts.netloc.lower() == host.lower():
        headers["location"] = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def cross_site_subresource(headers: Headers) -> bool:
    """A request another site's page made the browser send by itself (an <img>, a <script>,
    a fetch, an iframe, a scripted redirect): Sec-Fetch-Site says cross-site, and it is not
    a person following a link (a top-level navigation with user activation). Such a request
    must not start work on the server for the other site. Browsers without Fetch Metadata
    send no Sec-Fetch-Site, and are let through."""
    if headers.get("sec-fetch-site") != "cross-site":
        return False
    followed_link = (
        headers.get("sec-fetch-mode") == "navigate"
        and headers.get("sec-fetch-dest", "document") == "document"
        and headers.get("sec-fetch-user") == "?1"
    )
    return not followed_link
