"""Local servers for the benchmarks and the tests: the app and redis-server on free ports.

Everything listens on 127.0.0.1 only, is waited for until it answers, and is stopped on exit.
Used by scripts/bench_*.py and by the browser and Redis tests (`from scripts.servers import`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The app as uvicorn runs it, and as `pagerace serve` (README, Dockerfile) runs it.
UVICORN = (sys.executable, "-m", "uvicorn", "app.main:app", "--log-level", "warning")
PAGERACE_SERVE = (sys.executable, "-m", "app.cli", "serve")
START_TIMEOUT_S = 30.0


class StartError(RuntimeError):
    """A server that exited or did not answer in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(ready: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StartError(f"{what} did not start (exit code {proc.poll()})")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server process, killing it if it has not gone in 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def app_server(
    command: Sequence[str] = UVICORN, env: dict[str, str] | None = None, quiet: bool = False
) -> Iterator[str]:
    """The app (`command` plus --host and --port) on a free port; yields its base URL."""
    with app_process(command, env, quiet) as (url, _):
        yield url


@contextmanager
def app_process(
    command: Sequence[str] = UVICORN, env: dict[str, str] | None = None, quiet: bool = False
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As app_server, and the server's process too (to read its CPU time)."""
    port = free_port()
    out = subprocess.DEVNULL if quiet else None
    # Short links go to a file of this server's own, never the user's data folder.
    scratch = tempfile.TemporaryDirectory(prefix="pagerace-links-")
    links = {"PAGERACE_LINKS_DB": str(Path(scratch.name) / "links.sqlite3")}
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **links, **(env or {})},
        stdout=out,
        stderr=out,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with urllib.request.urlopen(url + "/api/scenarios", timeout=1) as response:
            return bool(response.status == 200)

    try:
        wait_until(up, f"the app on port {port}", proc)
        yield url, proc
    finally:
        stop(proc)
        scratch.cleanup()


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server (no persistence); yields its redis:// URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartError("redis-server is missing (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )

    def up() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    try:
        wait_until(up, "redis-server", proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    index = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _proxy_one(client: socket.socket, upstream: tuple[str, int], prefix: str) -> None:
    """One connection: strip `prefix` from the request's path, then relay bytes both ways.

    Each plain request gets `Connection: close`, so one connection carries one request and
    only its first line needs rewriting; an Upgrade (WebSocket) becomes a two-way pipe.
    """
    with client:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        request, *fields = head.decode("latin-1").split("\r\n")
        method, target, version = request.split(" ", 2)
        if target != prefix and not target.startswith((prefix + "/", prefix + "?")):
            client.sendall(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        target = target[len(prefix) :] or "/"
        upgrade = any(f.lower().startswith("upgrade:") for f in fields)
        if not upgrade:
            fields = [f for f in fields if not f.lower().startswith("connection:")]
            fields.append("Connection: close")
        out = "\r\n".join([f"{method} {target} {version}", *fields]).encode("latin-1")
        with socket.create_connection(upstream) as server:
            server.sendall(out + b"\r\n\r\n" + rest)
            back = threading.Thread(target=_pipe, args=(server, client), daemon=True)
            back.start()
            _pipe(client, server)
            back.join()


@contextmanager
def prefix_proxy(upstream_url: str, prefix: str) -> Iterator[str]:
    """A reverse proxy on a free port that serves `upstream_url` under `prefix` and strips it
    (as nginx's `location /prefix/ { proxy_pass http://app/; }` does), WebSockets included;
    yields its URL, prefix included. For testing `pagerace serve --root-path`."""
    host, port = urllib.parse.urlsplit(upstream_url).netloc.split(":")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            args = (client, (host, int(port)), prefix)
            threading.Thread(target=_proxy_one, args=args, daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}{prefix}"
    finally:
        stopping.set()
        acceptor.join()
        listener.close()
