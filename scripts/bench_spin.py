"""SPIN beside pagerace on the growth family (issue 14): whole-process times, states, memory.

Usage: .venv/bin/python scripts/bench_spin.py [N ...]      (default: 4 5)
       (or scripts/bench.py spin)

For each N, the Promela model of scripts/spin/growth.py goes through `spin -a`,
`gcc -O2 -DSAFETY [-DNOREDUCE] -o pan pan.c` and `./pan -c0` (a full search that counts
every assertion violation rather than stopping at the first), each a subprocess timed on
the wall clock and in CPU (its children's rusage); `./pan` without -c0 is the search that
stops at the first violation. pagerace's figure is the whole process of
`scripts/bench_engine.py growth N [--no-symmetry]` (interpreter start, imports, setup and
the exhaustive search), timed the same way. The machine's load average is printed before
and after: the figures are only comparable on the same machine under the same load.

Without SPIN's reduction the model stores exactly pagerace's states (symmetry off) plus one
per end state (the `check` process's move), and as many transitions plus those moves plus
one (pan counts the initial state as a transition): the "exact" column checks that the two
differences agree (measured once at n=5 too: 1,376,381 = 1,376,345 + 36 end states, the
transitions agreeing; pagerace takes over a minute there without symmetry, so this script
does not run it). Prints figures only; nothing here is a pass/fail test.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.spin.growth import model  # noqa: E402

PAN_TIME_LIMIT_S = 600


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float
    out: str
    max_rss_kb: int


def timed(cmd: list[str], cwd: Path) -> Timed:
    """Run cmd to completion; its wall and CPU time (user + system of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=PAN_TIME_LIMIT_S, check=False
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall, cpu, done.stdout + done.stderr, after.ru_maxrss)


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no match for {pattern!r} in:\n{text[-2000:]}")
    return float(found.group(1))


def stored(text: str) -> float:
    """pan's memory for the stored states: the actual figure when it prints one (it does
    once the hash table's compression matters), else the equivalent (states x vector)."""
    actual = re.search(r"([\d.]+)\s+actual memory usage for states", text)
    return float(actual.group(1)) if actual else number(r"([\d.]+)\s+equivalent memory", text)


@dataclass(frozen=True)
class Spin:
    states: int
    transitions: int
    errors: int
    memory_mb: float  # pan's total (its default hash table alone is 128 MB)
    stored_mb: float  # of it, the stored states
    gen_s: float  # spin -a
    cc_s: float  # gcc
    pan_s: float  # ./pan (wall)
    cpu_s: float  # all three, CPU


def spin(n: int, work: Path, reduce: bool, full: bool = True) -> Spin:
    (work / "growth.pml").write_text(model(n))
    gen = timed(["spin", "-a", "growth.pml"], work)
    flags = ["-O2", "-DSAFETY", *(() if reduce else ("-DNOREDUCE",))]
    cc = timed(["gcc", *flags, "-o", "pan", "pan.c"], work)
    pan = timed(["./pan", *(("-c0",) if full else ())], work)
    text = pan.out
    return Spin(
        states=int(number(r"(\d+) states, stored", text)),
        transitions=int(number(r"(\d+) transitions", text)),
        errors=int(number(r"errors: (\d+)", text)),
        memory_mb=number(r"([\d.]+)\s+total actual memory usage", text),
        stored_mb=stored(text),
        gen_s=gen.wall,
        cc_s=cc.wall,
        pan_s=pan.wall,
        cpu_s=gen.cpu + cc.cpu + pan.cpu,
    )


@dataclass(frozen=True)
class Pagerace:
    states: int
    transitions: int
    wall_s: float
    cpu_s: float
    search_ms: float
    rss_mb: float


def pagerace(n: int, symmetry: bool) -> Pagerace:
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_engine.py"), "growth", str(n)]
    run = timed([*cmd, *(() if symmetry else ("--no-symmetry",))], ROOT)
    return Pagerace(
        states=int(number(r"(\d+) states", run.out)),
        transitions=int(number(r"(\d+) transitions", run.out)),
        wall_s=run.wall,
        cpu_s=run.cpu,
        search_ms=number(r"(\d+) ms", run.out),
        rss_mb=number(r"max RSS (\d+) MB", run.out),
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def report(sizes: list[int]) -> None:
    if not (shutil.which("spin") and shutil.which("gcc")):
        print("spin or gcc not installed (apt-get install -y spin gcc): no SPIN figures")
        return
    print(f"SPIN vs pagerace, growth family, kernel 5.17 ({load()})")
    head = f"{'n':>2} {'what':34} {'states':>9} {'transitions':>12} {'verdict':>16}"
    print(f"{head} {'wall s':>7} {'CPU s':>7} {'memory':>9}  detail")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="pagerace-spin-") as tmp:
            work = Path(tmp)
            full = spin(n, work, reduce=False)
            por = spin(n, work, reduce=True)
            first = spin(n, work, reduce=True, full=False)
        exact = pagerace(n, symmetry=False) if n <= 4 else None
        sym = pagerace(n, symmetry=True)
        for what, s in (
            ("SPIN -DNOREDUCE, full (-c0)", full),
            ("SPIN partial-order red., full", por),
            ("SPIN, stop at first violation", first),
        ):
            verdict = f"{s.errors} violating" if s.errors else "no violation"
            whole = s.gen_s + s.cc_s + s.pan_s
            detail = (
                f"spin -a {s.gen_s:.2f} + gcc {s.cc_s:.2f} + pan {s.pan_s:.2f} s; "
                f"states {s.stored_mb:.0f} MB"
            )
            print(
                f"{n:>2} {what:34} {s.states:>9} {s.transitions:>12} {verdict:>16} "
                f"{whole:>7.2f} {s.cpu_s:>7.2f} {s.memory_mb:>6.0f} MB  {detail}"
            )
        for what, p in (("pagerace, symmetry off", exact), ("pagerace, symmetry on", sym)):
            if p is None:
                print(f"{n:>2} {what:34} {'(not run: over a minute at n >= 5)':>39}")
                continue
            print(
                f"{n:>2} {what:34} {p.states:>9} {p.transitions:>12} {'(exhaustive)':>16} "
                f"{p.wall_s:>7.2f} {p.cpu_s:>7.2f} {p.rss_mb:>6.0f} MB  "
                f"search {p.search_ms / 1000:.2f} s of the process"
            )
        if exact is not None:
            ends = full.states - exact.states
            same = ends == full.transitions - exact.transitions - 1
            print(
                f"   SPIN -DNOREDUCE = pagerace + {ends} end states "
                f"({'exact: transitions agree' if same else 'NOT exact: transitions disagree'})"
            )
    print(f"({load()})")


def main(argv: list[str]) -> None:
    if any(not a.isdigit() for a in argv):
        raise SystemExit("usage: bench_spin.py [N ...]   (actors, 2..7)")
    report([int(a) for a in argv] or [4, 5])


if __name__ == "__main__":
    main(sys.argv[1:])
