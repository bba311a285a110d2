"""`POST /api/run` under a real load generator: wrk, 50 connections, `pagerace serve --workers 2`.

Usage: .venv/bin/python scripts/bench_wrk.py [--connections 50] [--duration 10] [--workers 2]
       [--no-paced]
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
bound. Beside each run: the server's own CPU per request (every worker's, from /proc: what
the load costs the server whatever else the machine runs), and a paced run (20 connections,
each waiting after every answer so that together they ask a fixed rate, wrk's delay()): the
latency of a server that is not saturated. Prints figures only (targets: issue 14, uncached
p99 < 20 ms, cached p99 < 10 ms); nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_web import RUN_BODY
from servers import PAGERACE_SERVE, app_process, redis_server

# wrk's --latency table: "     50%    3.21ms".
PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
REQUESTS = re.compile(r"^\s*([\d]+) requests in", re.MULTILINE)
RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
ERRORS = re.compile(r"Socket errors: (.*)")
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def lua_script(body: dict[str, Any], delay_ms: float = 0.0) -> str:
    """A wrk script that POSTs `body` as JSON on every request; with `delay_ms`, each
    connection waits that long after an answer before its next request (wrk's delay())."""
    text = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    script = (
        'wrk.method = "POST"\n'
        f'wrk.body = "{text}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    if delay_ms > 0:
        script += f"function delay()\n  return {delay_ms:.3f}\nend\n"
    return script


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (the workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sum(times.get(p, 0.0) for p in family)


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
    url: str, connections: int, duration_s: int, script: str, pid: int | None = None
) -> tuple[list[str], dict[str, Any]]:
    # A first request warms the setup cache (and fills the run cache when it is on).
    subprocess.run(wrk_command(url, script, 1, 1), capture_output=True, check=True, timeout=60)
    command = wrk_command(url, script, connections, duration_s)
    before = cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration_s + 60
    )
    figures = parse(out.stdout)
    if pid is not None and figures["requests"]:
        # The server's own CPU per request (all workers): what the load costs it, whatever
        # else the machine is running; latency on a shared machine also counts the others.
        spent = cpu_seconds(pid) - before
        figures["server_cpu_ms"] = round(spent * 1000 / figures["requests"], 3)
    return command, figures


# A paced run: each connection waits after every answer so that all of them together ask
# about this many requests a second (less, by the time the answers take): the latency of a
# server that is not saturated, beside the closed loop's.
PACED = {"uncached": 300, "cached": 1500}
PACED_CONNECTIONS = 20


def run(
    workers: int = 2, connections: int = 50, duration_s: int = 10, paced: bool = True
) -> dict[str, Any]:
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
                with app_process(serve, env, quiet=True) as (url, proc):
                    command, figures = measure(url, connections, duration_s, script, proc.pid)
                    if paced:
                        slow = str(Path(scratch) / f"paced-{name}.lua")
                        delay = PACED_CONNECTIONS * 1000 / PACED[name]
                        Path(slow).write_text(lua_script(RUN_BODY, delay))
                        _, results[f"{name}_paced"] = measure(
                            url, PACED_CONNECTIONS, duration_s, slow, proc.pid
                        )
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
            f"server CPU {f.get('server_cpu_ms', 0):.3f} ms/req  "
            f"non-2xx {f['non_2xx']} {f['socket_errors']} (target p99 < {target} ms)"
        )
        # Closed loop: every connection always has a request in flight, so the mean latency
        # is connections / throughput whatever the server does per request.
        floor = results["connections"] * 1000 / f["rps"] if f["rps"] else 0.0
        print(
            f"            ({results['connections']} connections / {f['rps']:.0f} req/s = "
            f"{floor:.1f} ms mean latency, by Little's law)"
        )
        p = results.get(f"{name}_paced")
        if p:
            print(
                f"    paced, {PACED_CONNECTIONS} connections asking ~{PACED[name]} req/s: "
                f"p50 {p.get('p50_ms', 0):6.2f} ms  p90 {p.get('p90_ms', 0):6.2f} ms  "
                f"p99 {p.get('p99_ms', 0):6.2f} ms  {p['rps']:8.1f} req/s  "
                f"server CPU {p.get('server_cpu_ms', 0):.3f} ms/req  non-2xx {p['non_2xx']}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--no-paced", action="store_true", help="only the closed-loop runs")
    args = parser.parse_args(argv)
    report(run(args.workers, args.connections, args.duration, not args.no_paced))


if __name__ == "__main__":
    main()
