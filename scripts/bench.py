"""Every benchmark of product.md section 6, one command: prints figures, asserts nothing.

Usage: .venv/bin/python scripts/bench.py [engine] [web] [rooms] [wrk] [spin] [--redis]
  engine  explore time of every catalog scenario and variant, throughput, growth 2..5 actors
  web     POST /api/run p50/p99 under 50 concurrent clients; the dashboard's first load;
          other users during maximal explores, an explore flood, static CPU, wrk if installed
  rooms   a live room's fan-out to 200 followers, presenter step to last follower
  wrk     POST /api/run uncached and cached, wrk at 50 connections on `pagerace serve
          --workers 2` (needs wrk and redis-server; scripts/bench_wrk.py)
  spin    the growth family's Promela model (scripts/spin/growth.py) through spin -a, gcc and
          pan for 4 and 5 actors, beside pagerace's whole process (scripts/bench_spin.py;
          needs spin and gcc: `apt-get install -y spin`)
With no section named, all five run (wrk only if wrk is installed; spin prints its figures
only if spin and gcc are). The web, rooms and wrk sections start their own servers on
127.0.0.1 (rooms --redis and wrk also a redis-server).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench_* modules

SECTIONS = ("engine", "web", "rooms", "wrk", "spin")


def main(argv: list[str]) -> None:
    chosen = [a for a in argv if a in SECTIONS] or list(SECTIONS)
    unknown = [a for a in argv if a not in SECTIONS and a != "--redis"]
    if unknown:
        raise SystemExit(f"unknown argument(s) {unknown}; allowed: {SECTIONS} and --redis")
    began = time.perf_counter()
    if "engine" in chosen:
        import bench_engine

        print("== engine ==")
        bench_engine.main()
    if "web" in chosen:
        import bench_web

        print("\n== web ==")
        bench_web.main([])
    if "rooms" in chosen:
        import bench_rooms

        print("\n== rooms ==")
        bench_rooms.report(bench_rooms.fanout(redis=False))
        if "--redis" in argv:
            bench_rooms.report(bench_rooms.fanout(redis=True))
    if "wrk" in chosen and (shutil.which("wrk") or "wrk" in argv):
        import bench_wrk

        print("\n== wrk ==")
        bench_wrk.report(bench_wrk.run())
    if "spin" in chosen:  # without spin or gcc it says so and prints no figures
        import bench_spin

        print("\n== spin ==")
        bench_spin.report([4, 5])
    print(f"\n(benchmarks took {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
