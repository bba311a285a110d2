"""Local servers for the benchmarks and the tests: the app and redis-server on free ports.

Everything listens on 127.0.0.1 only, is waited for until it answers, and is stopped on exit.
Used by scripts/bench_*.py and by the browser and Redis tests (`from scripts.servers import`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
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
    port = free_port()
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=out,
        stderr=out,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with urllib.request.urlopen(url + "/api/scenarios", timeout=1) as response:
            return bool(response.status == 200)

    try:
        wait_until(up, f"the app on port {port}", proc)
        yield url
    finally:
        stop(proc)


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
