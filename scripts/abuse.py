"""Hostile-client benchmark (issue 17): what one attacker spends, and what everyone else sees.

Usage: .venv/bin/python scripts/abuse.py [--seconds 10] [--only amplification,slow-headers]

Starts `pagerace serve` on a free 127.0.0.1 port (its default limits), then runs each attack
for a bounded time while a victim client (source address 127.0.0.1) requests /api/scenarios
and /static/app.css in a loop. The attacker connects from other loopback addresses
(127.0.0.2 and up), as a different client would. For each attack it prints what the attacker
spent, what it got, the victim's p50/p99 latency and errors, and the server's RSS (now and
peak). Prints figures only; this is not a pass/fail test. Everything is loopback and bounded
in time, connections and bytes.

Attacks: amplification (the largest custom-scenario page, 4 at a time), socket-flood (heavy
scenario: `goto` at 19/s on one socket, plus 3 sockets `play` at delay 0), slow-headers
(up to 1,200 half-sent requests from 12 addresses), explore-flood (8 explores of a scenario
that runs to the time limit), room-flood (1,100 POST /api/rooms).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers import PAGERACE_SERVE, ROOT, free_port, percentile, stop, wait_until

SEED = "madv-free-vs-dio"
ATTACKER = "127.0.0.2"  # the victim is 127.0.0.1: the server tells the two apart


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the server process, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


@contextmanager
def serve(env: dict[str, str] | None = None) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        [*PAGERACE_SERVE, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200

    try:
        wait_until(up, f"pagerace serve on {port}", proc)
        yield port, proc
    finally:
        stop(proc)


# --- the victim ---------------------------------------------------------------------------


@dataclass
class Victim:
    port: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        paths = ("/api/scenarios", "/static/app.css")
        n = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=10, source_address=("127.0.0.1", 0)
                )
                conn.request("GET", paths[n % 2])
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status != 200:
                    self.errors += 1
                else:
                    self.latencies.append(time.monotonic() - started)
            except OSError:
                self.errors += 1
            n += 1
            self.stop.wait(0.1)

    def summary(self) -> str:
        values = sorted(self.latencies)
        if not values:
            return f"victim: 0 answers, {self.errors} errors"
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        return (
            f"victim: {len(values)} answers, p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
            f"max {values[-1] * 1000:.0f} ms, {self.errors} errors"
        )


@dataclass
class Spend:
    """What the attacker did and what it got back."""

    requests: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0
    refused: int = 0  # 4xx/5xx answers, error messages, closed sockets
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sent: int = 0, received: int = 0, refused: bool = False) -> None:
        with self.lock:
            self.requests += 1
            self.sent_bytes += sent
            self.received_bytes += received
            self.refused += int(refused)

    def summary(self) -> str:
        extra = "; ".join(self.notes)
        return (
            f"attacker: {self.requests} requests/messages, sent {self.sent_bytes / 1024:.0f} KB, "
            f"got {self.received_bytes / 1024:.0f} KB, {self.refused} refused"
            + (f"; {extra}" if extra else "")
        )


def attacker_http(
    port: int, method: str, path: str, body: bytes | None = None, source: str = ATTACKER
) -> tuple[int, int]:
    """(status, bytes received); status 0 when the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, len(response.read())
    except OSError:
        return 0, 0
    finally:
        conn.close()


# --- the attacks ---------------------------------------------------------------------------


def heavy_doc() -> tuple[dict[str, Any], list[str]]:
    """The heavy scenario with the most variants a scenario may have (8)."""
    sys.path.insert(0, str(ROOT))
    from heavy import heavy_scenario

    return heavy_scenario(variants=8)


def amplification(port: int, seconds: float, spend: Spend) -> None:
    doc, schedule = heavy_doc()
    s = base64.urlsafe_b64encode(zlib.compress(json.dumps(doc).encode())).decode().rstrip("=")
    path = f"/s/heavy?s={s}&t={','.join(schedule)}&at={len(schedule)}"
    spend.notes.append(f"URL {len(path) / 1024:.1f} KB")
    deadline = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < deadline:
            status, got = attacker_http(port, "GET", path)
            spend.add(len(path), got, status != 200)

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if spend.requests:
        spend.notes.append(f"{spend.received_bytes / spend.requests / 1024:.0f} KB per page")


def ws_connect(port: int, path: str) -> Any:
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(ATTACKER, 0))
    return connect(f"ws://127.0.0.1:{port}{path}", sock=sock, open_timeout=10, max_size=None)


def socket_flood(port: int, seconds: float, spend: Spend) -> None:
    doc, schedule = heavy_doc()
    deadline = time.monotonic() + seconds
    load = json.dumps({"type": "load", "scenario": doc, "schedule": schedule, "at": 0})

    def reader(ws: Any) -> None:
        try:
            while True:
                text = ws.recv(timeout=seconds + 10)
                refused = '"type":"error"' in text.replace(" ", "")
                spend.add(0, len(text), refused)
        except Exception:
            return

    def goto_flood() -> None:
        with ws_connect(port, "/ws/run") as ws:
            threading.Thread(target=reader, args=(ws,), daemon=True).start()
            ws.send(load)
            n = 0
            while time.monotonic() < deadline:
                message = json.dumps({"type": "goto", "index": len(schedule) - n % 2})
                ws.send(message)
                spend.add(len(message))
                n += 1
                time.sleep(1 / 19)

    def player() -> None:
        with ws_connect(port, "/ws/run") as ws:
            threading.Thread(target=reader, args=(ws,), daemon=True).start()
            ws.send(load)
            while time.monotonic() < deadline:
                message = json.dumps({"type": "play", "delay_ms": 0})
                ws.send(message)
                spend.add(len(message))
                time.sleep(1.0)

    threads = [threading.Thread(target=goto_flood)] + [
        threading.Thread(target=player) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def slow_headers(port: int, seconds: float, spend: Spend) -> None:
    socks: list[socket.socket] = []
    opened = 0
    for n in range(1200):
        source = f"127.0.0.{2 + n % 12}"
        try:
            sock = socket.create_connection(
                ("127.0.0.1", port), timeout=2, source_address=(source, 0)
            )
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(sock)
            opened += 1
            spend.add(40)
        except OSError:
            spend.add(0, 0, True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1.0)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(b"x")  # one byte a second per connection
    still_open = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
            if not data or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 503"):
                spend.refused += 1
            else:
                still_open += 1
        except BlockingIOError:
            still_open += 1
        except OSError:
            spend.refused += 1
        sock.close()
    spend.notes.append(f"{opened} opened, {still_open} still open after {seconds:g} s")


def explore_flood(port: int, seconds: float, spend: Spend) -> None:
    doc, _ = heavy_doc()
    doc["variants"] = {"v0": {"kernel": "5.17"}}
    threads = []

    def one(n: int) -> None:
        body = json.dumps({"scenario": {**doc, "title": f"flood {n} {time.time()}"}}).encode()
        status, got = attacker_http(port, "POST", "/api/explore", body)
        spend.add(len(body), got, status != 200)

    for n in range(8):
        threads.append(threading.Thread(target=one, args=(n,)))
        threads[-1].start()
    for t in threads:
        t.join(timeout=seconds + 60)


def room_flood(port: int, seconds: float, spend: Spend) -> None:
    statuses: dict[int, int] = {}
    for _ in range(1100):
        status, got = attacker_http(port, "POST", "/api/rooms", b"{}")
        statuses[status] = statuses.get(status, 0) + 1
        spend.add(2, got, status != 201)
    spend.notes.append("statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    victim_room, _ = attacker_http(port, "POST", "/api/rooms", b"{}", source="127.0.0.1")
    spend.notes.append(f"a victim's POST /api/rooms afterwards: {victim_room}")


ATTACKS: dict[str, Callable[[int, float, Spend], None]] = {
    "amplification": amplification,
    "socket-flood": socket_flood,
    "slow-headers": slow_headers,
    "explore-flood": explore_flood,
    "room-flood": room_flood,
}


def measure(port: int, pid: int, name: str, seconds: float) -> None:
    victim = Victim(port)
    watcher = threading.Thread(target=victim.run)
    spend = Spend()
    started = time.monotonic()
    watcher.start()
    try:
        if name == "baseline":
            time.sleep(seconds)
        else:
            ATTACKS[name](port, seconds, spend)
    finally:
        victim.stop.set()
        watcher.join()
    rss, peak = rss_kb(pid)
    print(f"== {name} ({time.monotonic() - started:.1f} s)")
    if name != "baseline":
        print("   " + spend.summary())
    print("   " + victim.summary())
    print(f"   server RSS {rss / 1024:.0f} MB (peak so far {peak / 1024:.0f} MB)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per attack (default 10)")
    parser.add_argument("--only", default="", help="comma-separated attacks (default: all)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(ATTACKS)
    for name in names:
        if name not in ATTACKS:
            parser.error(f"unknown attack {name!r}; one of {', '.join(ATTACKS)}")
    for name in names:  # a fresh server per attack: one attack's leftovers do not count
        with serve() as (port, proc):
            measure(port, proc.pid, "baseline", 3.0)
            measure(port, proc.pid, name, args.seconds)
            time.sleep(1.0)
            measure(port, proc.pid, "baseline", 3.0)  # after: has the server recovered?


if __name__ == "__main__":
    main()
