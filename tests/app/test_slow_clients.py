"""Slow and greedy clients against a real `pagerace serve` (issue 17, F3, F9, F13).

One server on a free loopback port with short limits; raw sockets play the hostile client.
Every wait is bounded by a socket timeout well above the limit under test.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from scripts.servers import PAGERACE_SERVE, app_server

HEADER_S, BODY_S, PER_CLIENT = 1.0, 1.5, 6


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    env = {
        "PAGERACE_HEADER_TIMEOUT_S": str(HEADER_S),
        "PAGERACE_BODY_TIMEOUT_S": str(BODY_S),
        "PAGERACE_CLIENT_CONNECTIONS": str(PER_CLIENT),
    }
    with app_server(PAGERACE_SERVE, env, quiet=True) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def connect(server: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(server, timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (or the 10 s socket timeout fails the test)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def head_of(response: bytes) -> dict[str, str]:
    lines = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.mark.parametrize(
    ("sent", "limit"),
    [
        (b"", HEADER_S),  # connects and says nothing
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", HEADER_S),  # headers never end
        (  # declares a body and never sends it
            b"POST /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{",
            BODY_S,
        ),
    ],
)
def test_a_slow_client_gets_408_and_is_closed(
    server: tuple[str, int], sent: bytes, limit: float
) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        response = read_all(sock)
        took = time.monotonic() - started
    assert response.startswith(b"HTTP/1.1 408"), response[:200]
    assert limit * 0.8 <= took < limit + 5
    assert head_of(response)["x-content-type-options"] == "nosniff"


def test_slow_headers_on_a_kept_alive_connection_are_timed_out_too(
    server: tuple[str, int],
) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the whole first response: headers and JSON body
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request, and then nothing
        assert read_all(sock).startswith(b"HTTP/1.1 408")


def test_one_client_cannot_hold_more_than_its_share_of_connections(
    server: tuple[str, int],
) -> None:
    held = [connect(server) for _ in range(PER_CLIENT)]
    try:
        time.sleep(0.2)  # let the server accept them all
        with connect(server) as extra:
            refused = read_all(extra)
        assert refused.startswith(b"HTTP/1.1 503"), refused[:200]
        assert b"too many connections from this client" in refused
        assert head_of(refused)["retry-after"] == "1"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)  # closed connections are counted out again
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 200")


def test_the_servers_own_errors_carry_security_headers_and_say_why(
    server: tuple[str, int],
) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        bad = read_all(sock)
    assert bad.startswith(b"HTTP/1.1 400")
    assert "content-security-policy" in head_of(bad)
    with connect(server) as sock:
        sock.sendall(b"GET /s/x?s=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        long = read_all(sock)
    assert long.startswith(b"HTTP/1.1 414"), long[:200]
    assert b"over 65535 bytes" in long and head_of(long)["x-frame-options"] == "DENY"


def test_the_apps_link_limit_is_reachable_under_the_servers_url_limit(
    server: tuple[str, int],
) -> None:
    from app.config import MAX_URL_BYTES, Settings

    over = Settings().max_link_chars + 1
    target = b"/s/x?s=" + b"a" * over
    assert len(target) < MAX_URL_BYTES
    with connect(server) as sock:
        sock.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        page = read_all(sock)
    assert page.startswith(b"HTTP/1.1 422"), page[:200]
    assert f"s: {over} characters".encode() in page


def test_a_16_mib_socket_frame_is_refused_from_its_header(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET /ws/run HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            + key
            + b"\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 101")
        # A masked text frame announcing 16 MiB, and only 10 bytes of it: the server must
        # answer from the header, not after buffering the payload.
        sock.sendall(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 16 << 20) + b"\0" * 4)
        sock.sendall(b"x" * 10)
        close = sock.recv(65536)
    assert close[0] == 0x88, close  # a close frame...
    assert struct.unpack("!H", close[2:4])[0] == 1009  # ..."message too big"
