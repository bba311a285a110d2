"""`POST /api/run` under a real load generator: wrk, 50 connections, `pagerace serve --workers 2`.

Usage: .venv/bin/python scripts/bench_wrk.py [--connections 50] [--duration 10] [--workers 2]
       (or scripts/bench.py wrk)
Needs wrk (apt-get install wrk) and, for more than one worker, redis-server (live rooms are
shared through it: `pagerace serve` refuses --workers 2 without PAGERACE_REDIS_URL).

Two runs of the same replay (scripts/bench_web.py's RUN_BODY, the 13-step madv-free-vs-dio
interleaving): uncached (PAGERACE_RUN_CACHE_BYTES=0: every request replays the schedule and
serialises the trace) and cached (the default run cache: every request after the first is a
lookup). wrk keeps every connection busy (a closed loop: a connection sends its next request
when the last one is answered), so at C connections the mean latency is C / throughput:
p99 < 20 ms at 50 connections means well over 2,500 replays a second. wrk runs on the same
machine as the server and takes CPU of its own: on a 2-CPU machine the figures are an upper
bound. Prints figures only (targets: issue 14, uncached p99
< 20 ms, cached p99 < 10 ms); nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_web import RUN_BODY
from servers import PAGERACE_SERVE, app_server, redis_server

# wrk's --latency table: "     50%    3.21ms".
PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
REQUESTS = re.compile(r"^\s*([\d]+) requests in", re.MULTILINE)
RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
ERRORS = re.compile(r"Socket errors: (.*)")
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def lua_script(body: dict[str, Any]) -> str:
    """A wrk script that POSTs `body` as JSON on every request."""
    text = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{text}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def wrk_command(url: str, script: str, connections: int, duration_s: int) -> list[str]:
    threads = min(2, connections)
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "-s",
        script,
        url + "/api/run",
    ]


def parse(output: str) -> dict[str, Any]:
    figures: dict[str, Any] = {
        f"p{q}_ms": round(float(v) * UNIT_MS[unit], 2) for q, v, unit in PERCENTILE.findall(output)
    }
    requests = REQUESTS.search(output)
    rate = RATE.search(output)
    non_2xx = NON_2XX.search(output)
    errors = ERRORS.search(output)
    figures["requests"] = int(requests.group(1)) if requests else 0
    figures["rps"] = float(rate.group(1)) if rate else 0.0
    figures["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    figures["socket_errors"] = errors.group(1).strip() if errors else ""
    return figures


def measure(
    url: str, connections: int, duration_s: int, script: str
) -> tuple[list[str], dict[str, Any]]:
    # A first request warms the setup cache (and fills the run cache when it is on).
    subprocess.run(wrk_command(url, script, 1, 1), capture_output=True, check=True, timeout=60)
    command = wrk_command(url, script, connections, duration_s)
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration_s + 60
    )
    return command, parse(out.stdout)


def run(workers: int = 2, connections: int = 50, duration_s: int = 10) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    results: dict[str, Any] = {"workers": workers, "connections": connections}
    with tempfile.TemporaryDirectory(prefix="pagerace-wrk-") as scratch:
        script = str(Path(scratch) / "run.lua")
        Path(script).write_text(lua_script(RUN_BODY))
        with redis_server() as redis:
            serve = [*PAGERACE_SERVE, "--workers", str(workers)]
            for name, cache in (("uncached", "0"), ("cached", str(32 * 1024 * 1024))):
                env = {"PAGERACE_REDIS_URL": redis, "PAGERACE_RUN_CACHE_BYTES": cache}
                with app_server(serve, env, quiet=True) as url:
                    command, figures = measure(url, connections, duration_s, script)
                results[name] = figures
                shown = " ".join(command).replace(url, "http://127.0.0.1:PORT")
                results["command"] = shown.replace(script, "run.lua")
    return results


def report(results: dict[str, Any]) -> None:
    print(
        f"POST /api/run, wrk at {results['connections']} connections on "
        f"`pagerace serve --workers {results['workers']}`:\n  {results['command']}"
    )
    for name, target in (("uncached", 20), ("cached", 10)):
        f = results[name]
        print(
            f"  {name:8}: p50 {f.get('p50_ms', 0):6.2f} ms  p90 {f.get('p90_ms', 0):6.2f} ms  "
            f"p99 {f.get('p99_ms', 0):6.2f} ms  {f['rps']:8.1f} req/s  "
            f"non-2xx {f['non_2xx']} {f['socket_errors']} (target p99 < {target} ms)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    args = parser.parse_args(argv)
    report(run(args.workers, args.connections, args.duration))


if __name__ == "__main__":
    main()
