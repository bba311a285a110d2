"""Runtime settings for the web app, read once from the environment.

Every limit here exists so that a hostile or careless request is answered with a clear 4xx
instead of a hang: bodies, schedules and explorations are all bounded.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from engine.trace import MAX_SCHEDULE as MAX_SCHEDULE  # re-exported: the longest replay


def resource_dir(name: str) -> Path:
    """The folder `name` (static, templates) as shipped with the app package.

    A wheel or `pip install .` carries it inside the package (pyproject maps the top-level
    folder to app/NAME); a checkout or editable install keeps it beside the package, at the
    repository root. Both are real folders: StaticFiles and Jinja2 need a file-system path, so
    an install from a zip (where files() is not a Path) is not supported.
    """
    package = files("app")
    if not isinstance(package, Path):
        raise RuntimeError(f"pagerace must be installed as files on disk, not {package!r}")
    for candidate in (package / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"pagerace's {name}/ folder is missing: not in {package} nor beside it")


STATIC_DIR = resource_dir("static")
TEMPLATES_DIR = resource_dir("templates")


class SettingsError(ValueError):
    """A PAGERACE_* variable with a value the app cannot use; the message names it."""


def _env(name: str) -> str | None:
    raw = os.environ.get(name)
    return raw.strip() if raw and raw.strip() else None  # unset and empty both mean default


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer setting; a typo is refused naming the variable, not a traceback at import."""
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)  # accepts 200_000, as Python does
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number >= {minimum}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={raw!r}: must be <= {maximum}")
    return value


# A CSP source: *, 'self', 'none', a scheme (https:) or a scheme and host (port, wildcard).
ANCESTOR = re.compile(
    r"\*|'self'|'none'|[a-z][a-z0-9+.-]*:(//(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?)?"
)


def env_ancestors(name: str, default: str) -> str:
    """A CSP frame-ancestors source list; anything else (a quote, a semicolon that would
    start another directive) is refused naming the variable."""
    raw = _env(name)
    if raw is None:
        return default
    sources = raw.split()
    bad = [s for s in sources if not ANCESTOR.fullmatch(s)]
    if not sources or bad:
        raise SettingsError(
            f"{name}={raw!r}: expected CSP sources separated by spaces (*, 'self', 'none', "
            f"https:, https://example.org); not {', '.join(bad) or 'empty'}"
        )
    return " ".join(sources)


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    """A number of seconds (or any non-negative real); refuses nan and inf, which no limit means."""
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number >= {minimum:g}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name}={raw!r}: expected a finite number >= {minimum:g}")
    return value


def env_url(name: str, schemes: tuple[str, ...]) -> str | None:
    """A URL setting: one of `schemes`, with a host; checked now rather than at first use."""
    raw = _env(name)
    if raw is None:
        return None
    try:
        url = urlsplit(raw)
        url.port  # noqa: B018 -- a non-numeric or out-of-range port raises here
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r}: not a URL ({exc})") from None
    located = url.path if url.scheme == "unix" else url.hostname  # unix:///run/redis.sock
    if url.scheme not in schemes or not located:
        allowed = " or ".join("unix:///PATH" if s == "unix" else f"{s}://HOST" for s in schemes)
        raise SettingsError(f"{name}={raw!r}: expected {allowed}...")
    return raw


def env_public_url(name: str) -> str | None:
    """The site's own URL: links are this plus a path, so no query, fragment or trailing slash."""
    raw = env_url(name, ("http", "https"))
    if raw is not None and (urlsplit(raw).query or urlsplit(raw).fragment):
        raise SettingsError(f"{name}={raw!r}: expected scheme://host[:port][/path], no ? or #")
    return raw.rstrip("/") if raw is not None else None


def env_folder(name: str) -> Path | None:
    """An existing folder; its files are checked when they are loaded, naming each file."""
    raw = _env(name)
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise SettingsError(f"{name}={raw!r}: expected an existing folder")
    return path


def env_file(name: str) -> Path | None:
    """A file to create or open (its folder is made when it is first written)."""
    raw = _env(name)
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if path.is_dir():
        raise SettingsError(f"{name}={raw!r}: expected a file path, not a folder")
    return path


def default_links_db() -> Path:
    """Where short links live without PAGERACE_LINKS_DB: the user's data folder (XDG)."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(data) / "pagerace" / "links.sqlite3"


MAX_STATES = 200_000
# The fastest `play` may go: each step is a replay, and `delay_ms: 0` let one socket spend
# 11.5 s of event-loop time on a heavy scenario. Faster requests are raised to this.
MIN_PLAY_DELAY_MS = 50
# The longest request target (path and query) the server reads: httptools keeps URL offsets
# in 16 bits. app/server.py answers a longer one with 414.
MAX_URL_BYTES = 65_535
# Longest accepted name in a page parameter: a variant, a digest, an actor in t=.
MAX_PARAM_CHARS = 64


# Not slotted: from_env reads the class-level defaults.
@dataclass(frozen=True)
class Settings:
    """Limits and pacing; override with PAGERACE_* environment variables."""

    max_body_bytes: int = 256 * 1024
    max_schedule: int = MAX_SCHEDULE  # the engine replays no more than this
    max_states: int = MAX_STATES
    explore_time_limit_s: float = 10.0
    # A custom scenario inside a link is inflated at most to this size (zip-bomb guard)...
    max_doc_bytes: int = 256 * 1024
    # ...and its packed form (the s= parameter) is at most this long: under the server's URL
    # limit (MAX_URL_BYTES) with room for the path and the other parameters, so that a link
    # over it gets the app's 422 naming s=, not the server's bare 400.
    max_link_chars: int = 60 * 1024
    play_delay_ms: int = 700
    explore_cache_size: int = 64
    run_cache_bytes: int = 32 * 1024 * 1024
    # Server CPU one socket may spend on replays (every load, step, goto and play step runs
    # in a worker thread and is charged here): bursts of socket_cpu_burst_s, and
    # socket_cpu_share of one core sustained. One /ws/run socket at 19 goto/s on a heavy
    # scenario left other users 2 answers in 20 s when this ran on the event loop.
    socket_cpu_burst_s: float = 3.0
    socket_cpu_share: float = 0.2
    # A follower whose socket has not taken a message for this long has stopped reading:
    # it is dropped (its connection aborted) instead of holding the forwarder and its memory.
    follower_send_timeout_s: float = 10.0
    # Explorations run in this many worker processes (0: in threads of the serving process,
    # sharing its GIL, two at a time), with at most `explore_queue` more waiting, and at most
    # `explore_per_client` running or waiting per client address: past that, 503 / 429.
    explore_workers: int = min(2, os.cpu_count() or 1)
    explore_queue: int = 8
    # One client never holds every worker: with 2, another client's search starts at once.
    explore_per_client: int = max(1, explore_workers - 1)
    # The URL people reach the server by (e.g. https://pagerace.example), when it sits
    # behind a proxy: sockets accept this Origin as well as the request's own Host.
    public_url: str | None = None
    # A folder of the user's own scenarios, served beside the catalog (`serve --scenarios`).
    scenarios_dir: Path | None = None
    # Without a public URL, links handed out use the request's Host only when it is one of
    # these names (or loopback, or the address the request came to); PAGERACE_ALLOWED_HOSTS,
    # comma-separated.
    allowed_hosts: tuple[str, ...] = ()
    # The SQLite file of short links (/z/...), when the rooms' Redis does not hold them;
    # None: default_links_db(). Short links one client may make per minute.
    links_db: Path | None = None
    links_per_minute: int = 30
    # A short link expires this many days after it was last made (then /z/{id} is a 410
    # saying so; the long link keeps working); 0: never.
    links_ttl_days: float = 365.0
    # Who may frame /embed/s/... (a CSP frame-ancestors source list): any site by default,
    # since an embed is read-only and runs no script; e.g. "https://lwn.net https://x.edu".
    embed_ancestors: str = "*"

    @property
    def links_ttl_s(self) -> float:
        return self.links_ttl_days * 86400.0

    @classmethod
    def from_env(cls) -> Settings:
        workers = env_int("PAGERACE_EXPLORE_WORKERS", cls.explore_workers)
        return cls(
            max_body_bytes=env_int("PAGERACE_MAX_BODY_BYTES", cls.max_body_bytes, 1024),
            max_schedule=env_int("PAGERACE_MAX_SCHEDULE", cls.max_schedule, 1, MAX_SCHEDULE),
            max_states=env_int("PAGERACE_MAX_STATES", cls.max_states, 1),
            explore_time_limit_s=env_float(
                "PAGERACE_EXPLORE_TIME_LIMIT_S", cls.explore_time_limit_s
            ),
            run_cache_bytes=env_int("PAGERACE_RUN_CACHE_BYTES", cls.run_cache_bytes),
            explore_workers=workers,
            explore_queue=env_int("PAGERACE_EXPLORE_QUEUE", cls.explore_queue),
            explore_per_client=env_int(
                "PAGERACE_EXPLORE_PER_CLIENT", max(1, workers - 1), minimum=1
            ),
            public_url=env_public_url("PAGERACE_PUBLIC_URL"),
            scenarios_dir=env_folder("PAGERACE_SCENARIOS"),
            allowed_hosts=tuple(
                h.strip()
                for h in os.environ.get("PAGERACE_ALLOWED_HOSTS", "").split(",")
                if h.strip()
            ),
            socket_cpu_burst_s=env_float("PAGERACE_SOCKET_CPU_BURST_S", cls.socket_cpu_burst_s),
            socket_cpu_share=env_float("PAGERACE_SOCKET_CPU_SHARE", cls.socket_cpu_share),
            follower_send_timeout_s=env_float(
                "PAGERACE_FOLLOWER_SEND_TIMEOUT_S", cls.follower_send_timeout_s
            ),
            links_db=env_file("PAGERACE_LINKS_DB"),
            links_per_minute=env_int("PAGERACE_LINKS_PER_MINUTE", cls.links_per_minute, 1),
            links_ttl_days=env_float("PAGERACE_LINKS_TTL_DAYS", cls.links_ttl_days),
            embed_ancestors=env_ancestors("PAGERACE_EMBED_ANCESTORS", cls.embed_ancestors),
        )


@dataclass(frozen=True)
class ServeSettings:
    """Connection limits of `pagerace serve` (app/server.py), below the app: uvicorn has no
    header timeout and no per-client cap of its own. Override with PAGERACE_* variables."""

    # A request's headers must arrive within this long of the connection opening (or of the
    # previous response on a keep-alive connection); its body within body_timeout_s after.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    # Open connections (HTTP and WebSocket) from one client address.
    client_connections: int = 64

    @classmethod
    def from_env(cls) -> ServeSettings:
        return cls(
            header_timeout_s=env_float("PAGERACE_HEADER_TIMEOUT_S", cls.header_timeout_s),
            body_timeout_s=env_float("PAGERACE_BODY_TIMEOUT_S", cls.body_timeout_s),
            client_connections=env_int("PAGERACE_CLIENT_CONNECTIONS", cls.client_connections, 1),
        )
