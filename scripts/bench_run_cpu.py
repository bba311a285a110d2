"""Server CPU per `POST /api/run`, measured in process: no sockets, no load generator.

Usage: .venv/bin/python scripts/bench_run_cpu.py [--requests 300] [--profile] [--case NAME]

Drives the ASGI app directly (a request dict in, the response messages out) through its whole
middleware stack, so the figure is what one worker spends per request: routing, the request
model, the run cache lookup, the replay and its JSON when uncached. For each case (the default
13-step madv-free-vs-dio schedule, and the catalog's heaviest runs: the longest example of the
scenarios with the most state), prints the CPU time per request uncached (run cache off) and
cached (every request after the first a hit). With --profile, the cProfile top of one case.
Figures only, nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine
from app.config import Settings
from app.main import create_app
from app.routes import api


async def inline(function: Any, *args: Any) -> Any:
    return function(*args)


DEFAULT = ["dio"] * 3 + ["kswapd"] * 5 + ["dio"] * 3 + ["kswapd"] * 2
# The heavy ones: five actors, large folios, TLBs, swap (their longest example schedule).
HEAVY = (
    "swapin-swap-entry-changed",
    "tlb-flush-batched-lost",
    "deferred-split-vs-pmd-migration-entry",
    "migrate-pmd-dirty-vs-lazyfree",
)


def heavy_bodies() -> dict[str, dict[str, Any]]:
    bodies: dict[str, dict[str, Any]] = {
        "madv-free-vs-dio": {
            "scenario": "madv-free-vs-dio",
            "variant": "buggy",
            "schedule": DEFAULT,
        }
    }
    catalog = engine.load_catalog()
    for sid in HEAVY:
        scenario = catalog[sid]
        config = engine.make_config(scenario)
        result = engine.explore(scenario, config)
        example = max((o.example for o in result.outcomes), key=len)
        bodies[scenario.id] = {"scenario": scenario.id, "schedule": list(example)}
    return bodies


class Driver:
    """One app, fed ASGI requests in a loop on this thread's event loop."""

    def __init__(self, cache_bytes: int) -> None:
        settings = replace(Settings.from_env(), run_cache_bytes=cache_bytes)
        self.app = create_app(settings=settings)
        self.loop = asyncio.new_event_loop()

    async def _post(self, body: bytes) -> tuple[int, int]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/run",
            "raw_path": b"/api/run",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0
        size = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, size

    async def _posts(self, body: bytes, count: int) -> tuple[int, int]:
        # One task for all of them, as a server's: anyio keeps its worker threads for it.
        status, size = 0, 0
        for _ in range(count):
            status, size = await self._post(body)
        return status, size

    def post(self, body: bytes, count: int = 1) -> tuple[int, int]:
        return self.loop.run_until_complete(self._posts(body, count))

    def cpu_per_request(self, body: bytes, count: int) -> tuple[float, int]:
        status, size = self.post(body)  # warm: the setup cache, the run cache when on
        assert status == 200, status
        # The best of five rounds: other processes on a shared machine only ever add time
        # (cache misses, frequency), never take it away.
        rounds = []
        for _ in range(5):
            began = time.process_time()
            self.post(body, max(1, count // 5))
            rounds.append((time.process_time() - began) * 1000 / max(1, count // 5))
        return min(rounds), size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile one case instead")
    parser.add_argument("--cached", action="store_true", help="with --profile: the cache on")
    parser.add_argument("--case", default="madv-free-vs-dio")
    args = parser.parse_args(argv)
    bodies = heavy_bodies()
    uncached, cached = Driver(0), Driver(32 * 1024 * 1024)
    if args.profile:
        driver = cached if args.cached else uncached
        body = json.dumps(bodies[args.case]).encode()
        driver.post(body)
        # cProfile sees one thread: the replay, which a worker thread runs, runs inline here.
        api.anyio.to_thread.run_sync = inline  # type: ignore[assignment]
        profile = cProfile.Profile()
        profile.enable()
        driver.post(body, args.requests)
        profile.disable()
        stats = pstats.Stats(profile).sort_stats("cumulative")
        stats.print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        return
    print(f"server CPU per POST /api/run, in process (ASGI driver), {args.requests} requests each")
    for name, request in bodies.items():
        body = json.dumps(request).encode()
        un, size = uncached.cpu_per_request(body, args.requests)
        ca, _ = cached.cpu_per_request(body, args.requests * 4)
        steps = len(request["schedule"])
        print(
            f"  {name:45} {steps:3} steps {size / 1024:7.1f} KB: "
            f"uncached {un:6.3f} ms  cached {ca:6.3f} ms"
        )


if __name__ == "__main__":
    main()
