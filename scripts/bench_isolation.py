"""What other users see while explorations run, what a flood of explorations gets, and what a
static file costs the server (issue 14 items 5-6, issue 17 item 4). Part of `bench.py web`.

Usage: .venv/bin/python scripts/bench_isolation.py [--seconds 3]
Prints figures only, side by side with the figures before the change; asserts nothing.

- others: serial `POST /api/run` (cached) and dashboard page p50/p99, idle and during 1 and 2
  maximal explores (growth n=5: runs to the 10 s limit), with explorations in threads of the
  serving process (PAGERACE_EXPLORE_WORKERS=0, as before) and in worker processes (now);
- flood: 16 maximal explores from 16 loopback addresses (127.0.0.2-17), then from one; what
  they are answered and how long a legitimate 3-actor explore from another address takes;
- static: server CPU per `GET` of plotly.js (gzip accepted), from /proc/PID/stat, against
  gzip level 9 of the same file (what the GZip middleware did on every request);
- wrk (if installed): `POST /api/run` p50/p99 at 50 connections, cached and uncached.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

from bench_engine import family
from bench_web import DASHBOARD, RUN_BODY, _Connection, uvicorn_command
from servers import ROOT, app_process, percentile

PLOTLY = "/static/vendor/plotly-basic-4.1.1.min.js"
_titles = count()


def explore_body(actors: int) -> bytes:
    """A growth-family explore nobody has cached (a new title is a new document)."""
    doc = {**family(actors), "title": f"bench {actors} {os.getpid()} {next(_titles)}"}
    return json.dumps({"scenario": doc}).encode()


@contextmanager
def server(env: dict[str, str] | None = None, workers: int = 1) -> Iterator[tuple[str, int]]:
    """uvicorn on 127.0.0.1 (access log off); yields (base URL, server pid)."""
    with app_process(uvicorn_command(workers), env) as (url, proc):
        yield url, proc.pid


async def serial(url: str, method: str, path: str, body: bytes, seconds: float) -> list[float]:
    """One client, one request at a time for `seconds`: latencies in ms (after a warm-up)."""
    connection = _Connection(url, path, body, method)
    latencies: list[float] = []
    try:
        for _ in range(3):
            await connection.send()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            began = time.perf_counter()
            status = await connection.send()
            if status != 200:
                raise RuntimeError(f"{method} {path}: {status}")
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        await connection.close()
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 50), 2),
        "p99_ms": round(percentile(ordered, 99), 2),
    }


async def others(url: str, explores: int, seconds: float) -> dict[str, Any]:
    """Other users' run and page latency while `explores` maximal explores run."""
    running = [
        asyncio.ensure_future(
            _Connection(url, "/api/explore", explore_body(5), source=f"127.0.0.{10 + i}").send()
        )
        for i in range(explores)
    ]
    await asyncio.sleep(0.5 if explores else 0)  # the searches are under way
    began = time.perf_counter()
    run = await serial(url, "POST", "/api/run", json.dumps(RUN_BODY).encode(), seconds)
    page = await serial(url, "GET", DASHBOARD, b"", seconds)
    overlapped = time.perf_counter() - began
    statuses = await asyncio.gather(*running)
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"explores answered {statuses}")
    return {"run": summary(run), "page": summary(page), "measured_s": round(overlapped, 1)}


def isolation(seconds: float) -> list[dict[str, Any]]:
    rows = []
    for label, env in (
        ("threads (before)", {"PAGERACE_EXPLORE_WORKERS": "0"}),
        ("processes (now)", {}),
    ):
        with server(env) as (url, _):
            for explores in (0, 1, 2):
                figures = asyncio.run(others(url, explores, seconds))
                rows.append({"mode": label, "explores": explores, **figures})
    return rows


async def _ask(url: str, body: bytes, source: str, wait_s: float) -> tuple[str | None, float, Any]:
    """Send an explore from `source`; its status (with ' + Retry-After' if the header came) if
    answered within `wait_s` (None: still running or queued, the connection left open), the
    time taken, and the writer to close."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(source, 0))
    head = (
        f"POST /api/explore HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    began = time.perf_counter()
    writer.write(head.encode() + body)
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait_s)
    except TimeoutError:
        return None, time.perf_counter() - began, writer
    status = line.split(b" ", 2)[1].decode()
    if b"\r\nretry-after:" in line.lower():
        status += " + Retry-After"
    return status, time.perf_counter() - began, writer


async def flood(url: str, distinct: bool, hostile: int = 16) -> dict[str, Any]:
    sources = [f"127.0.0.{2 + (i if distinct else 0)}" for i in range(hostile)]
    asked = []
    for source in sources:  # in order, so the queue fills as it would
        asked.append(await _ask(url, explore_body(5), source, 0.3))
    legit_status, legit_s, legit_writer = await _ask(url, explore_body(3), "127.0.0.200", 30.0)
    for _, _, writer in asked:
        writer.close()  # the hostile clients leave: their searches stop
    legit_writer.close()
    await asyncio.sleep(1.0)
    after_status, after_s, after_writer = await _ask(url, explore_body(3), "127.0.0.201", 30.0)
    after_writer.close()
    answered = [(s, t) for s, t, _ in asked if s is not None]
    statuses: dict[str, int] = {}
    for s, _ in answered:
        statuses[s] = statuses.get(s, 0) + 1
    return {
        "hostile": hostile,
        "addresses": len(set(sources)),
        "held": sum(1 for s, _, _ in asked if s is None),
        "refused": statuses,
        "refusal_max_ms": round(max((t for _, t in answered), default=0) * 1000, 1),
        "legit": (legit_status, round(legit_s, 2)),
        "after_leaving": (after_status, round(after_s, 2)),
    }


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def static_cpu(requests: int = 300) -> dict[str, float]:
    raw = (ROOT / "static" / PLOTLY.removeprefix("/static/")).read_bytes()
    began = time.process_time()
    for _ in range(5):
        gzip.compress(raw, compresslevel=9)
    before_ms = (time.process_time() - began) / 5 * 1000
    with server() as (url, pid):

        async def fetch() -> None:
            connection = _Connection(url, PLOTLY, b"", "GET")
            try:
                for _ in range(requests):
                    await connection.send()
            finally:
                await connection.close()

        asyncio.run(fetch())  # warm: first requests, imports
        used = cpu_s(pid)
        asyncio.run(fetch())
        after_ms = (cpu_s(pid) - used) / requests * 1000
    return {"gzip9_ms": round(before_ms, 1), "served_ms": round(after_ms, 3)}


WRK_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept-Encoding"] = "gzip"
wrk.body = [[%s]]
"""


def wrk(seconds: int = 5) -> list[dict[str, Any]] | None:
    """`POST /api/run` through wrk (a C load generator): p50/p99 at 50 connections."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    rows = []
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_LUA % json.dumps(RUN_BODY))
    try:
        for workers in (1, 2):
            for cached in (True, False):
                env = {} if cached else {"PAGERACE_RUN_CACHE_BYTES": "0"}
                with server(env, workers) as (url, _):
                    command = [binary, "-t2", "-c50", f"-d{seconds}s", "--latency"]
                    out = subprocess.run(
                        [*command, "-s", script.name, url + "/api/run"],
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=seconds + 30,
                    ).stdout
                rows.append({"workers": workers, "cached": cached, **_wrk_figures(out)})
    finally:
        os.unlink(script.name)
    return rows


def _wrk_figures(out: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            figures[f"p{parts[0][:-1]}"] = parts[1]
        elif line.startswith("Requests/sec:"):
            figures["rps"] = parts[1]
        elif "Non-2xx" in line:
            figures["non_2xx"] = parts[-1]
    return figures


def report(seconds: float = 3.0) -> None:
    print("other users during maximal explores (growth n=5, 10 s limit), one serial client:")
    idle: dict[str, dict[str, Any]] = {}
    for row in isolation(seconds):
        base = idle.setdefault(row["mode"], row)
        run, page = row["run"], row["page"]
        print(
            f"  {row['mode']:17} {row['explores']} explore(s): /api/run p50 {run['p50_ms']:.2f} ms"
            f" (x{run['p50_ms'] / base['run']['p50_ms']:.2f} idle), p99 {run['p99_ms']:.1f};"
            f" page p50 {page['p50_ms']:.2f} ms"
            f" (x{page['p50_ms'] / base['page']['p50_ms']:.2f}), p99 {page['p99_ms']:.1f}"
        )
    print("  (issue 14, before: /api/run p50 1.3 -> 6.2 ms, page 5.5 -> 31 ms; target x1.3)")
    print("explore flood (defaults: 2 workers, queue 8, 1 per client):")
    with server() as (url, _):
        for distinct in (True, False):
            f = asyncio.run(flood(url, distinct))
            print(
                f"  {f['hostile']} hostile maximal explores from {f['addresses']} address(es):"
                f" {f['held']} running or queued, refused {f['refused']} within"
                f" {f['refusal_max_ms']} ms; a legitimate 3-actor explore: status"
                f" {f['legit'][0]} in {f['legit'][1]} s; once they left: {f['after_leaving'][0]}"
                f" in {f['after_leaving'][1]} s"
            )
    print("  (reliability-review F4, before: all queued; the 3-actor explore waited 84 s at 16)")
    cpu = static_cpu()
    print(
        f"static plotly.js (gzip accepted): server CPU {cpu['served_ms']:.3f} ms per request;"
        f" before, gzip -9 per request: {cpu['gzip9_ms']:.1f} ms"
    )
    rows = wrk()
    if rows is None:
        print("wrk: not installed (apt-get install wrk) - no wrk figures")
        return
    for r in rows:
        cache = "cached" if r["cached"] else "uncached"
        print(
            f"wrk POST /api/run, {r['workers']} worker(s), {cache}, 50 connections: p50"
            f" {r.get('p50')}, p99 {r.get('p99')}, {r.get('rps')} req/s,"
            f" non-2xx {r.get('non_2xx', 0)} (target p99 < 20 ms uncached on 2 workers)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per latency sample")
    args = parser.parse_args(argv)
    report(args.seconds)


if __name__ == "__main__":
    main()
