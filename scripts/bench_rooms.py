"""Live-room fan-out: 200 followers, time from a presenter's step to the last follower.

Usage: .venv/bin/python scripts/bench_rooms.py [--followers 200] [--rounds 8] [--redis]

Starts `pagerace serve` on a free loopback port (with --redis: a redis-server and two
app processes, the presenter on one and the followers split across both), connects the
followers and a presenter, and has the presenter walk the 13-step lost-write schedule of
madv-free-vs-dio again and again. Each step is sent when the previous one has reached every
follower, and at most ten a second (a brisk lecturer, not a flood); its latency is the time
until the last follower has it. Prints figures only (target: p99 < 100 ms, section 6).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
import urllib.request
from contextlib import AbstractContextManager
from typing import Any

from servers import PAGERACE_SERVE, app_server, percentile, redis_server
from websockets.asyncio.client import ClientConnection, connect

SEED = "madv-free-vs-dio"
BUG = "dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd,dio,dio,dio,kswapd,kswapd".split(",")  # noqa: SIM905
PACE_S = 0.1
SEQ = re.compile(r'^\{"seq":(\d+),')


def serve(env: dict[str, str]) -> AbstractContextManager[str]:
    # Served the way `pagerace serve` (README, Dockerfile) serves it; its access log (200
    # lines a run) is kept out of the figures.
    return app_server(PAGERACE_SERVE, env, quiet=True)


def create_room(base: str) -> dict[str, Any]:
    body = json.dumps({"scenario": SEED, "variant": "buggy"}).encode()
    request = urllib.request.Request(
        base + "/api/rooms", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as res:
        room: dict[str, Any] = json.loads(res.read())
        return room


async def follow(
    base: str, room: str, arrivals: dict[int, list[float]], ready: asyncio.Event, n: int
) -> ClientConnection:
    ws = await connect(
        base.replace("http://", "ws://") + f"/ws/rooms/{room}", max_size=2**22, open_timeout=30
    )
    await ws.recv()  # hello
    await ws.recv()  # the current state

    async def reader() -> None:
        async for text in ws:
            match = SEQ.match(str(text))
            if match:
                seq = int(match.group(1))
                arrivals.setdefault(seq, []).append(time.perf_counter())
                if len(arrivals[seq]) == n:
                    ready.set()

    asyncio.get_running_loop().create_task(reader())
    return ws


async def measure(
    presenter_base: str, follower_bases: list[str], followers: int, rounds: int
) -> list[float]:
    room = create_room(presenter_base)
    arrivals: dict[int, list[float]] = {}
    ready = asyncio.Event()
    conns = []
    for i in range(followers):
        base = follower_bases[i % len(follower_bases)]
        conns.append(await follow(base, room["room"], arrivals, ready, followers))
    presenter = await connect(
        presenter_base.replace("http://", "ws://")
        + f"/ws/rooms/{room['room']}?token={room['presenter_token']}",
        max_size=2**22,
    )
    await presenter.recv()  # hello
    await presenter.recv()  # catch-up state
    latencies: list[float] = []
    messages = [{"type": "step", "actor": actor} for actor in BUG] + [{"type": "goto", "index": 0}]
    for _ in range(rounds):
        for message in messages:
            ready.clear()
            sent = time.perf_counter()
            await presenter.send(json.dumps(message))
            reply = json.loads(await presenter.recv())
            if "seq" not in reply:
                raise SystemExit(f"the presenter's step was refused: {reply}")
            seq = reply["seq"]
            await asyncio.wait_for(ready.wait(), timeout=30)
            while len(arrivals.get(seq, ())) < followers:  # ready may be a later seq's
                await asyncio.sleep(0)
            latencies.append((max(arrivals[seq]) - sent) * 1000)
            # A brisk presenter: ten steps a second (each socket may send 20/s).
            await asyncio.sleep(max(0.0, PACE_S - (time.perf_counter() - sent)))
    for ws in [presenter, *conns]:
        await ws.close()
    return latencies


def fanout(followers: int = 200, rounds: int = 8, redis: bool = False) -> dict[str, Any]:
    """Presenter-step-to-last-follower latency in ms: p50, p99, max, over every step."""
    if redis:
        with redis_server() as url:
            env = {"PAGERACE_REDIS_URL": url}
            with serve(env) as a, serve(env) as b:
                latencies = asyncio.run(measure(a, [a, b], followers, rounds))
    else:
        with serve({"PAGERACE_REDIS_URL": ""}) as a:
            latencies = asyncio.run(measure(a, [a], followers, rounds))
    return {
        "followers": followers,
        "steps": len(latencies),
        "redis": redis,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(sorted(latencies), 99),
        "max_ms": max(latencies),
    }


def report(result: dict[str, Any]) -> None:
    where = "2 processes via Redis" if result["redis"] else "1 process, in memory"
    print(
        f"room fan-out ({where}): {result['followers']} followers, {result['steps']} steps: "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"max {result['max_ms']:.1f} ms (target p99 < 100 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args()
    report(fanout(args.followers, args.rounds, args.redis))


if __name__ == "__main__":
    main()
