"""`pagerace`: list, explore, run and diagram scenarios from the shell; serve the dashboard.

Exit codes (also in every `--help`): explore exits 1 when a violation is reachable and 0 when
none is; every command exits 2 on bad input. `--json` prints the API's response body.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import engine
from app.logs import LEVELS
from engine.bisect import describe
from engine.fixes import Config
from engine.lang.catalog import load_file, load_folder


class UsageError(Exception):
    pass


def scenario_arg(ref: str) -> engine.Scenario:
    catalog = engine.load_catalog()
    if ref in catalog:
        return catalog[ref]
    path = Path(ref)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise UsageError(f"no such file: {ref}")
        return load_file(path)
    raise UsageError(f"unknown scenario {ref!r}; try `pagerace list` or give a .yaml/.json path")


def fixes_arg(items: Sequence[str]) -> dict[str, bool]:
    fixes: dict[str, bool] = {}
    for item in items:
        name, _, value = item.partition("=")
        if value not in ("on", "off"):
            raise UsageError(f"--fix {item}: expected NAME=on or NAME=off")
        fixes[name] = value == "on"
    return fixes


def config_arg(sc: engine.Scenario, args: argparse.Namespace) -> Config:
    return engine.make_config(sc, args.variant, args.kernel, fixes_arg(args.fix))


def schedule_arg(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def emit(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2))


def cmd_list(args: argparse.Namespace) -> int:
    catalog = engine.load_catalog()
    if args.json:
        emit(
            {
                "scenarios": [
                    {"id": s.id, "title": s.title, "tags": list(s.tags), "digest": s.digest}
                    for s in catalog.values()
                ]
            }
        )
        return 0
    width = max(len(i) for i in catalog)
    for s in catalog.values():
        print(f"{s.id.ljust(width)}  {s.title}")
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    sc = scenario_arg(args.scenario)
    cfg = config_arg(sc, args)
    limits = {"max_states": args.max_states, "time_limit_s": args.time_limit}
    # --first: the bounded search for one bad interleaving; when it finds none (none within
    # its preemption bound, or the space is covered), the exhaustive search decides.
    first = engine.find_first(sc, cfg, **limits) if args.first else None
    exp = first or engine.explore(sc, cfg, **limits)
    bad = any(o.violations for o in exp.outcomes)
    if args.json:
        emit(engine.exploration_to_json(exp))
        return 1 if bad else 0
    if args.export == "jsonl":
        sys.stdout.write(engine.exploration_to_jsonl(exp))
        return 1 if bad else 0
    print(f"{sc.id} on kernel {cfg.label}")
    if exp.first_bug:
        print(
            f"first bug found after {exp.states} states, {exp.elapsed_ms:.1f} ms, with "
            f"{exp.preemptions} preemption(s); the space was not covered, so nothing is counted"
        )
        for o in exp.outcomes:
            print(f"  {', '.join(o.violations):<24} {o.label}: {o.message}")
            print(f"              e.g. --schedule {','.join(o.example)}")
        return 1
    trunc = " (truncated)" if exp.truncated else ""
    print(
        f"{exp.states} states, {exp.transitions} transitions, {exp.interleavings} "
        f"interleavings, {exp.elapsed_ms:.1f} ms{trunc}"
    )
    for o in exp.outcomes:
        verdict = ", ".join(o.violations) if o.violations else "ok"
        print(f"  {o.interleavings:>10}  {verdict:<24} {o.label}")
        print(f"              e.g. --schedule {','.join(o.example)}")
    return 1 if bad else 0


def cmd_run(args: argparse.Namespace) -> int:
    sc = scenario_arg(args.scenario)
    cfg = config_arg(sc, args)
    run = engine.run_schedule(sc, cfg, schedule_arg(args.schedule))
    if args.json:
        emit(engine.run_to_json(run))
        return 0
    if args.export == "jsonl":
        sys.stdout.write(engine.run_to_jsonl(run))
        return 0
    if args.export == "perfetto":  # open it at ui.perfetto.dev or chrome://tracing
        print(json.dumps(engine.to_perfetto(run), separators=(",", ":")))
        return 0
    if args.export == "svg":  # the timeline, for a slide or a bug report
        sys.stdout.write(engine.render_svg(run))
        return 0
    print(f"{sc.id} on kernel {cfg.label}")
    for s in run.steps:
        print(f"{s.index:>3} {s.actor:<10} {s.function:<26} {s.note}")
    for v in run.violations:
        where = f"step {v.step}" if v.step else "at the end"
        print(f"!!! {v.name} ({where}): {v.message}")
    state = (
        "finished: " + (run.label or "") if run.finished else f"enabled: {', '.join(run.enabled)}"
    )
    print(state)
    return 0


def runs(
    verdicts: Sequence[tuple[str, engine.Verdict]],
) -> list[tuple[str, str, engine.Verdict]]:
    """(first, last, verdict) for each run of consecutive releases with one verdict."""
    out: list[tuple[str, str, engine.Verdict]] = []
    for release, verdict in verdicts:
        if out and out[-1][2] == verdict:
            out[-1] = (out[-1][0], release, verdict)
        else:
            out.append((release, release, verdict))
    return out


def cmd_bisect(args: argparse.Namespace) -> int:
    sc = scenario_arg(args.scenario)
    result = engine.bisect(sc, max_states=args.max_states, time_limit_s=args.time_limit)
    if args.json:
        emit(engine.bisection_to_json(result))
        return 0
    print(f"{sc.id}: the verdict on every modelled release (mainline X.Y.0)")
    changes = {c.release: c for c in result.changes}
    for first, last, verdict in runs(result.verdicts):
        change = changes.get(first)
        why = f"   <- {describe(change)}" if change else ""
        releases = first if first == last else f"{first}-{last}"
        print(f"  {releases:<11} {verdict.text}{why}")
    if not result.changes:
        print("the verdict is the same on every release")
    if not result.complete:
        print(f"stopped after {len(result.verdicts)} releases: --time-limit ran out")
    return 0


def cmd_diagram(args: argparse.Namespace) -> int:
    sc = scenario_arg(args.scenario)
    cfg = config_arg(sc, args)
    run = engine.run_schedule(sc, cfg, schedule_arg(args.schedule))
    render = engine.render_markdown if args.format == "md" else engine.render_diagram
    sys.stdout.write(render(sc, cfg, run))
    return 0


def serve_environment(args: argparse.Namespace) -> None:
    """Put the options the app reads into the environment, then check every PAGERACE_* now.

    The app is built inside each uvicorn worker from the environment, so options travel there
    (a worker is a new process); checking here turns a bad value into one line and exit 2
    instead of a traceback from every worker.
    """
    from app.config import ServeSettings, Settings, SettingsError
    from app.rooms import RoomSettings

    if args.public_url is not None:
        os.environ["PAGERACE_PUBLIC_URL"] = args.public_url
    if args.scenarios is not None:
        os.environ["PAGERACE_SCENARIOS"] = args.scenarios
    try:
        settings = Settings.from_env()
        rooms = RoomSettings.from_env()
        ServeSettings.from_env()  # read again by each worker's protocols (app/server.py)
    except SettingsError as exc:
        option = {"PAGERACE_PUBLIC_URL": args.public_url, "PAGERACE_SCENARIOS": args.scenarios}
        for name, value in option.items():
            if value is not None and str(exc).startswith(name + "="):
                flag = "--" + name.removeprefix("PAGERACE_").lower().replace("_", "-")
                raise UsageError(f"{flag} {value!r}: {str(exc).partition(': ')[2]}") from None
        raise UsageError(str(exc)) from None
    if args.workers > 1 and rooms.redis_url is None:
        # Each worker would hold its own rooms: a follower sent to another worker than its
        # presenter's would find no room. Refused rather than half-working.
        raise UsageError(
            f"--workers {args.workers}: live rooms live in one process's memory; set "
            "PAGERACE_REDIS_URL (and pip install 'pagerace[redis]') to share them between workers"
        )
    if settings.scenarios_dir is not None:
        try:
            load_folder(settings.scenarios_dir, engine.load_catalog())  # as app.main will
        except engine.ScenarioError as exc:
            problems = "\n  ".join(str(e) for e in exc.errors)
            raise UsageError(f"--scenarios {args.scenarios}:\n  {problems}") from None


def root_path_arg(text: str) -> str:
    if text and (not text.startswith("/") or text.endswith("/") or "//" in text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected /PREFIX (a leading /, no trailing /)")
    return text


def workers_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # the web stack is only needed to serve

    from app.config import Settings
    from app.logs import log_config

    serve_environment(args)
    # No permessage-deflate: room and run messages are a few KB, and compressing each one for
    # each of 200 followers cost more than it saved (bench_rooms: p99 381 -> 45 ms, loopback).
    # A WebSocket message is refused (close 1009) once it passes the app's own message limit,
    # before uvicorn has buffered it: its default of 16 MiB let 20 sockets take 669 MB.
    # The protocols are uvicorn's with header/body deadlines and a per-client connection cap
    # (app/server.py; PAGERACE_HEADER_TIMEOUT_S, PAGERACE_BODY_TIMEOUT_S,
    # PAGERACE_CLIENT_CONNECTIONS).
    from app.server import HTTP_PROTOCOL, WS_PROTOCOL

    extra: dict[str, Any] = {}
    if args.forwarded_allow_ips is not None:  # else uvicorn's: $FORWARDED_ALLOW_IPS or 127.0.0.1
        extra["forwarded_allow_ips"] = args.forwarded_allow_ips
    config = log_config(args.log_json)
    if config is not None:
        extra["log_config"] = config
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_per_message_deflate=False,
        ws_max_size=Settings.from_env().max_body_bytes,
        workers=args.workers,
        root_path=args.root_path,
        proxy_headers=args.proxy_headers,
        http=HTTP_PROTOCOL,
        ws=WS_PROTOCOL,
        # A line per request cost 22% of throughput (issue 14); errors are logged either way.
        access_log=args.access_log,
        **extra,
    )
    return 0


EXIT_CODES = """\
exit codes:
  0  success; for explore: no violation is reachable
  1  explore: a violation is reachable
  2  bad input (unknown scenario, bad file, --kernel/--fix/--schedule the engine rejects;
     for serve: a bad option, PAGERACE_* setting or --scenarios file)
A reader that closes the pipe early (`pagerace list | head -1`) ends the command quietly."""


def version_string() -> str:
    from app import __version__  # the package metadata's version, written once in pyproject

    return f"pagerace {__version__}"


def parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="pagerace", description=__doc__.splitlines()[0], epilog=EXIT_CODES, formatter_class=fmt
    )
    p.add_argument("--version", action="version", version=version_string())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("serve", help="serve the dashboard", epilog=EXIT_CODES, formatter_class=fmt)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default %(default)s)")
    s.add_argument(
        "--workers",
        type=workers_arg,
        default=1,
        metavar="N",
        help="worker processes (default %(default)s); more than 1 needs PAGERACE_REDIS_URL",
    )
    s.add_argument(
        "--root-path",
        type=root_path_arg,
        default="",
        metavar="/PREFIX",
        help="serve under this sub-path behind a proxy that strips it (e.g. /pagerace)",
    )
    s.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (default on)",
    )
    s.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated proxy addresses or networks to trust, or '*' "
        "(default $FORWARDED_ALLOW_IPS, else 127.0.0.1)",
    )
    s.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL people reach the server by (sets PAGERACE_PUBLIC_URL): used in follow "
        "links, QR codes and diagrams' replay links, and accepted as a WebSocket Origin",
    )
    s.add_argument(
        "--scenarios",
        metavar="DIR",
        help="also serve the .yaml/.yml/.json scenarios in DIR (sets PAGERACE_SCENARIOS); "
        "each file is checked at start-up",
    )
    s.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info",
        help="uvicorn's log level (default %(default)s)",
    )
    s.add_argument(
        "--log-json", action="store_true", help="log one JSON object per line (to stderr)"
    )
    s.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per request (off by default: it costs about a fifth of throughput)",
    )
    s.set_defaults(fn=cmd_serve)
    doc = "the verdict on every modelled release, and the fix switch where it changes"
    s = sub.add_parser("bisect", help=doc, description=doc, epilog=EXIT_CODES, formatter_class=fmt)
    s.add_argument("scenario", help="catalog id or path to a YAML/JSON scenario")
    s.add_argument(
        "--max-states",
        type=int,
        default=200_000,
        help="per release: stop (the verdict marked cut off) after this many states "
        "(default %(default)s)",
    )
    s.add_argument(
        "--time-limit",
        type=float,
        default=120.0,
        help="for the whole bisection, in seconds (default %(default)s)",
    )
    s.add_argument("--json", action="store_true", help="print the verdicts and changes as JSON")
    s.set_defaults(fn=cmd_bisect)
    s = sub.add_parser("list", help="list the catalog", epilog=EXIT_CODES, formatter_class=fmt)
    s.add_argument("--json", action="store_true", help="print the /api/scenarios JSON body")
    s.set_defaults(fn=cmd_list)
    for name, fn, doc in (
        ("explore", cmd_explore, "explore every interleaving"),
        ("run", cmd_run, "run one interleaving step by step"),
        ("diagram", cmd_diagram, "print the CPU0/CPU1 text diagram of one interleaving"),
    ):
        s = sub.add_parser(name, help=doc, description=doc, epilog=EXIT_CODES, formatter_class=fmt)
        s.add_argument("scenario", help="catalog id or path to a YAML/JSON scenario")
        group = s.add_mutually_exclusive_group()
        group.add_argument(
            "--variant", help="one of the scenario's named variants (e.g. buggy, fixed)"
        )
        group.add_argument(
            "--kernel", help="a kernel release (e.g. 5.17): its fixes are on or off by date"
        )
        s.add_argument(
            "--fix",
            action="append",
            default=[],
            metavar="NAME=on|off",
            help="turn one fix switch on or off over the variant/kernel; repeatable",
        )
        if name != "explore":
            s.add_argument(
                "--schedule",
                required=True,
                help="actor names, comma-separated, one per step (explore prints examples)",
            )
        else:
            s.add_argument(
                "--max-states",
                type=int,
                default=200_000,
                help="stop (truncated) after this many states (default %(default)s)",
            )
            s.add_argument(
                "--time-limit",
                type=float,
                default=30.0,
                help="stop (truncated) after this many seconds (default %(default)s)",
            )
            s.add_argument(
                "--first",
                action="store_true",
                help="stop at the first violation, searching the schedules with the fewest "
                "preemptions first (no counts); falls back to the full search if none is found",
            )
        if name != "diagram":
            s.add_argument("--json", action="store_true", help="print the API's JSON body")
            unit, perfetto = (
                "step",
                "; perfetto: Chrome trace-event JSON, one track per actor"
                "; svg: the timeline as a standalone SVG image",
            )
            if name != "run":
                unit, perfetto = "outcome", ""
            s.add_argument(
                "--export",
                choices=("jsonl", "perfetto", "svg") if name == "run" else ("jsonl",),
                help=f"jsonl: a header line, then one JSON object per {unit}{perfetto}",
            )
        else:
            s.add_argument(
                "--format",
                choices=("text", "md"),
                default="text",
                help="text: the plain diagram; md: Markdown, a header and a fenced block "
                "(for mailing lists and issues)",
            )
        s.set_defaults(fn=fn)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.fn(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside the try, not at exit
        return code
    except (UsageError, engine.ScenarioError, engine.ConfigError, engine.ScheduleError) as exc:
        print(f"pagerace: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader has all it wanted (`| head`). Point stdout at /dev/null so the interpreter's
        # own flush at exit does not fail again, and end quietly, as cat and grep do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
