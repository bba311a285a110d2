"""Web benchmarks: `POST /api/run` latency under concurrent clients, and first-load weight.

Usage: .venv/bin/python scripts/bench_web.py [--workers 1,2] [--requests 2000] [--clients 50]
Prints figures only; nothing here is a pass/fail test (targets: product.md section 6):
`POST /api/run` p99 under 20 ms, the dashboard's first load under 600 KB compressed.

The app runs under uvicorn as a subprocess on a free 127.0.0.1 port; all traffic is loopback and
bounded in count and time. `api_latency()` and `first_load()` are callable from other scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urljoin

import httpx
from servers import UVICORN, app_server, percentile

SCENARIO = "madv-free-vs-dio"
# The 13-step buggy interleaving: the page is freed under the DMA and the data is lost.
SCHEDULE = ["dio"] * 3 + ["kswapd"] * 5 + ["dio"] * 3 + ["kswapd"] * 2
RUN_BODY = {"scenario": SCENARIO, "variant": "buggy", "schedule": SCHEDULE}
DASHBOARD = f"/s/{SCENARIO}?v=buggy&t={','.join(SCHEDULE)}&at={len(SCHEDULE)}"
TIME_LIMIT_S = 120.0  # per measurement: a stuck server ends the benchmark, not the machine


def uvicorn_command(workers: int = 1) -> list[str]:
    command = [*UVICORN, "--no-access-log"]
    if workers > 1:
        command += ["--workers", str(workers)]
    return command


def serve(workers: int = 1, env: dict[str, str] | None = None) -> AbstractContextManager[str]:
    """The app under uvicorn on 127.0.0.1 (never another address); yields its base URL."""
    return app_server(uvicorn_command(workers), env)


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(percentile(ordered, 50), 2),
        "p90_ms": round(percentile(ordered, 90), 2),
        "p99_ms": round(percentile(ordered, 99), 2),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "rps": round(len(latencies) / elapsed, 1),
    }


class _Connection:
    """A minimal keep-alive HTTP/1.1 client for one request shape.

    httpx costs the client about as much CPU as the server spends on a cached response; on a
    2-core machine that would measure the load generator, not the app. The request bytes are
    built once and the response is read by Content-Length (or chunks): little else to do.
    """

    def __init__(
        self, url: str, path: str, body: bytes, method: str = "POST", source: str | None = None
    ) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nAccept-Encoding: gzip\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body
        # Another loopback address (127.0.0.N) is another client to the server's per-IP limits.
        self.source = source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> int:
        """One request; returns the status code after the whole body has arrived."""
        if self.reader is None or self.writer is None:
            local = (self.source, 0) if self.source else None
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, local_addr=local
            )
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def _load(url: str, clients: int, per_client: int) -> dict[str, Any]:
    body = json.dumps(RUN_BODY).encode()
    connections = [_Connection(url, "/api/run", body) for _ in range(clients)]
    latencies: list[float] = []
    errors = 0

    async def one_client(connection: _Connection, count: int, record: bool) -> None:
        nonlocal errors
        for _ in range(count):
            began = time.perf_counter()
            status = await connection.send()
            if record:
                latencies.append((time.perf_counter() - began) * 1000)
                errors += status != 200

    try:
        # Warm-up: every connection opened, caches filled, nothing recorded.
        await asyncio.gather(*(one_client(c, 2, False) for c in connections))
        began = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(one_client(c, per_client, True) for c in connections)), TIME_LIMIT_S
        )
        elapsed = time.perf_counter() - began
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return _summary(latencies, errors, elapsed)


def _serial(url: str, count: int) -> dict[str, Any]:
    """One client, one request at a time: the service time without queueing."""
    return asyncio.run(_load(url, 1, count))


def api_latency(
    clients: int = 50,
    requests: int = 2000,
    workers: int = 1,
    cached: bool = True,
    url: str | None = None,
) -> dict[str, Any]:
    """p50/p99 of `POST /api/run` (the 13-step buggy schedule) under `clients` concurrent clients.

    With `url` the running server there is measured; otherwise uvicorn is started with
    `workers` processes (and with `cached=False`, its run cache off: every request replays)
    and stopped afterwards. Also reports one client's serial latency.
    """
    if url is None:
        env = {} if cached else {"PAGERACE_RUN_CACHE_BYTES": "0"}
        with serve(workers, env) as started:
            return api_latency(clients, requests, workers, cached, started)
    result = asyncio.run(_load(url, clients, max(1, requests // clients)))
    return {
        "clients": clients,
        "workers": workers,
        "cached": cached,
        **result,
        "serial": _serial(url, 200),
    }


ASSET = re.compile(
    r"<script\b[^>]*\bsrc=\"([^\"]+)\"|<link\b[^>]*\brel=\"stylesheet\"[^>]*\bhref=\"([^\"]+)\""
)


def first_load(url: str | None = None, path: str = DASHBOARD) -> dict[str, Any]:
    """Bytes on the wire (gzip accepted) for the dashboard page and every script/stylesheet."""
    if url is None:
        with serve(1) as started:
            return first_load(started, path)
    files: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=30, headers={"Accept-Encoding": "gzip"}) as http:

        def fetch(target: str) -> httpx.Response:
            with http.stream("GET", target) as response:
                response.read()
            files.append(
                {
                    "url": target,
                    "status": response.status_code,
                    "encoding": response.headers.get("content-encoding", "identity"),
                    "wire_bytes": response.num_bytes_downloaded,
                    "raw_bytes": len(response.content),
                    "header_bytes": sum(len(k) + len(v) + 4 for k, v in response.headers.raw),
                }
            )
            return response

        page = fetch(path)
        for script, style in ASSET.findall(page.text):
            fetch(urljoin(path, (script or style).replace("&amp;", "&")))
    body = sum(f["wire_bytes"] for f in files)
    headers = sum(f["header_bytes"] for f in files)
    return {
        "path": path,
        "files": files,
        "wire_bytes": body,
        "with_headers_bytes": body + headers,
        "raw_bytes": sum(f["raw_bytes"] for f in files),
    }


def _print_latency(figures: dict[str, Any]) -> None:
    serial = figures["serial"]
    cache = "" if figures["cached"] else ", run cache off"
    print(
        f"POST /api/run, {figures['workers']} worker(s){cache}, {figures['clients']} clients, "
        f"{figures['requests']} requests: p50 {figures['p50_ms']:.1f} ms, "
        f"p90 {figures['p90_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
        f"max {figures['max_ms']:.1f} ms, {figures['rps']:.0f} req/s, "
        f"{figures['errors']} errors (target p99 < 20 ms)"
    )
    print(
        f"  one client, serial: p50 {serial['p50_ms']:.2f} ms, p99 {serial['p99_ms']:.2f} ms, "
        f"{serial['rps']:.0f} req/s"
    )


def _print_first_load(figures: dict[str, Any]) -> None:
    print(f"first load of {figures['path']}")
    for f in figures["files"]:
        print(
            f"  {f['status']} {f['url'][:70]:70} {f['encoding']:8} {f['wire_bytes']:>9,} B"
            f" (raw {f['raw_bytes']:,} B)"
        )
    kb = figures["wire_bytes"] / 1000
    print(
        f"  total on the wire: {figures['wire_bytes']:,} B = {kb:.0f} KB "
        f"({figures['with_headers_bytes']:,} B with response headers; "
        f"raw {figures['raw_bytes']:,} B) (target < 600 KB)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts, e.g. 1,2")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    for workers in (int(w) for w in args.workers.split(",")):
        _print_latency(api_latency(args.clients, args.requests, workers))
    _print_latency(api_latency(args.clients, args.requests, 1, cached=False))
    _print_first_load(first_load())
    import bench_isolation  # imports this module: here, not at the top

    bench_isolation.report()


if __name__ == "__main__":
    main()
