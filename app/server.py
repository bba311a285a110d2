"""The HTTP and WebSocket protocols `pagerace serve` runs: uvicorn's, plus slow-client limits.

uvicorn (0.54) times out an idle keep-alive connection, but nothing before the first request,
nothing on slow headers and nothing on a slow body: 19,990 half-sent requests held every file
descriptor and every legitimate request failed (reliability review, F3). Rather than change
servers, these subclass uvicorn's httptools protocol (its default when httptools is installed,
which uvicorn[standard] pins) and its websockets-sansio protocol, and add:

- a header deadline: a connection must finish a request's headers within `header_timeout_s`
  of opening (or of the previous response), else it gets 408 and is closed;
- a body deadline: the whole body must arrive within `body_timeout_s` of the headers;
- a per-client (IP) cap on open connections, HTTP and WebSocket together: the next one
  gets 503 and is closed before any request is read;
- security headers on the server's own error responses (its 400 for a bad request line or a
  URL over the parser's limit, and the 408 and 503 above), which never reach the app;
- a WebSocket whose client stopped reading is aborted when the app is done with it, instead
  of waiting forever for a send buffer that will never drain.

uvicorn loads these by import string (`http=` and `ws=` in app/cli.py), once per worker.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from app.config import MAX_URL_BYTES, ServeSettings, Settings
from app.security import CSP, HEADERS

HTTP_PROTOCOL = "app.server:GuardedHttpProtocol"
WS_PROTOCOL = "app.server:GuardedWebSocketProtocol"

# Open connections per client address, for each running server (a test may run several).
_OPEN: weakref.WeakKeyDictionary[ServerState, Counter[str]] = weakref.WeakKeyDictionary()
_SETTINGS: list[ServeSettings] = []


def serve_settings() -> ServeSettings:
    """Read once per process: the protocol is built for every connection."""
    if not _SETTINGS:
        _SETTINGS.append(ServeSettings.from_env())
    return _SETTINGS[0]


def _open_counts(state: ServerState) -> Counter[str]:
    counts = _OPEN.get(state)
    if counts is None:
        counts = _OPEN[state] = Counter()
    return counts


def _release(state: ServerState, host: str) -> None:
    """One connection from `host` fewer (forgotten at zero: the counter stays small)."""
    counts = _open_counts(state)
    counts[host] -= 1
    if counts[host] <= 0:
        del counts[host]


def raw_response(
    status: int, reason: str, message: str, extra: dict[str, str] | None = None
) -> bytes:
    """A complete HTTP/1.1 response written by the protocol itself (the app never sees these
    requests), with the same security headers the app puts on its own responses."""
    body = message.encode()
    headers = {
        **HEADERS,
        "Content-Security-Policy": CSP,
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **(extra or {}),
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a per-client cap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = serve_settings()
        self.deadline: asyncio.TimerHandle | None = None
        self.counted: str | None = None  # the address this connection is counted under

    # --- the per-client cap --------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else ""
        counts = _open_counts(self.server_state)
        if counts[host] >= self.limits.client_connections:
            self._refuse(
                503,
                "Service Unavailable",
                f"too many connections from this client (at most "
                f"{self.limits.client_connections}); close some and retry",
                {"Retry-After": "1"},
            )
            return
        counts[host] += 1
        self.counted = host
        self._arm(self.limits.header_timeout_s, "headers")

    def _uncount(self) -> None:
        if self.counted is not None:
            _release(self.server_state, self.counted)
            self.counted = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._uncount()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The socket's protocol takes over the transport (and counts it from now on).
        self._disarm()
        self._uncount()
        super().handle_websocket_upgrade()

    # --- deadlines -----------------------------------------------------------------------

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expired(self, what: str) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if answering and self.cycle.response_started:
            self.transport.close()  # too late for a status: the app has answered already
            return
        seconds = self.limits.header_timeout_s if what == "headers" else self.limits.body_timeout_s
        self._refuse(408, "Request Timeout", f"the request's {what} took longer than {seconds:g} s")

    def _refuse(
        self, status: int, reason: str, message: str, extra: dict[str, str] | None = None
    ) -> None:
        self.logger.warning("%s: %s", status, message)
        self.transport.write(raw_response(status, reason, message, extra))
        self.transport.close()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app sees http.disconnect, not more body
            self.cycle.message_event.set()

    def on_headers_complete(self) -> None:
        self._arm(self.limits.body_timeout_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Keep-alive: the idle timer (uvicorn's) runs until the next byte, then this one.
        if not self.transport.is_closing():
            self._arm(self.limits.header_timeout_s, "headers")

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return  # refused already (408, 503): the parser only noticed afterwards
        url = getattr(self, "url", b"")
        if len(url) > MAX_URL_BYTES:
            # httptools cannot parse a longer URL (16-bit offsets): say so, and what the
            # app's own limit on a link is, rather than "Invalid HTTP request".
            links = Settings().max_link_chars
            self.transport.write(
                raw_response(
                    414,
                    "URI Too Long",
                    f"the URL is over {MAX_URL_BYTES} bytes (a link's s= holds at most "
                    f"{links} characters)",
                )
            )
            self.transport.close()
            return
        self.transport.write(raw_response(400, "Bad Request", msg))
        self.transport.close()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, counted under the per-client cap, and aborted
    (not closed politely) when its client has stopped reading."""

    def __init__(self, config: Any, server_state: ServerState, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, server_state, *args, **kwargs)
        self.server_state = server_state
        self.counted: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.counted = self.client[0] if self.client else ""
        _open_counts(self.server_state)[self.counted] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted is not None:
            _release(self.server_state, self.counted)
            self.counted = None
        super().connection_lost(exc)

    async def run_asgi(self) -> None:
        await super().run_asgi()
        # A close on a transport whose buffer never drains waits forever (asyncio flushes
        # before it closes): a follower that stopped reading kept 2.8 MB queued for good.
        if not self.writable.is_set():
            self.transport.abort()
