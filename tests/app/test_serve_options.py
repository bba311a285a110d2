"""`pagerace serve` options and PAGERACE_* settings: each reaches uvicorn or the app, and a
bad value is refused with exit 2 and a message naming the option or variable."""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi.testclient import TestClient

import engine
from app import cli
from app.config import Settings, SettingsError
from app.logs import JsonFormatter
from app.main import create_app
from app.rooms import RoomSettings
from scripts.servers import PAGERACE_SERVE, app_server, redis_server

SEED = "madv-free-vs-dio"
CATALOG_FILE = Path(engine.__file__).parent / "scenarios" / "10-madv-free-vs-dio.yaml"
# Every attribute of the templates that names a URL the browser will fetch or follow.
URL_ATTR = re.compile(r'\b(?:href|src|action|hx-get|hx-post|data-plotly)="(/[^"]*)"')
GET_ATTR = re.compile(r'\b(?:href|src|hx-get|data-plotly)="(/[^"]*)"')  # what a GET may fetch
SERVE_ENV = ("PAGERACE_PUBLIC_URL", "PAGERACE_SCENARIOS", "PAGERACE_REDIS_URL")


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run replaced by a recorder; the options serve sets in os.environ are undone."""
    for name in SERVE_ENV:
        monkeypatch.setenv(name, "")  # empty is "unset" to the settings, and is restored after
    calls: list[dict[str, Any]] = []

    def run(app: str, **kwargs: Any) -> None:
        calls.append({"app": app, **kwargs})

    monkeypatch.setattr(uvicorn, "run", run)
    return calls


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("PAGERACE_MAX_STATES", "abc", "whole number >= 1"),
        ("PAGERACE_MAX_STATES", "0", ">= 1"),
        ("PAGERACE_MAX_SCHEDULE", "100000", "<= 400"),
        ("PAGERACE_MAX_BODY_BYTES", "-5", ">= 1024"),
        ("PAGERACE_EXPLORE_TIME_LIMIT_S", "inf", "finite number"),
        ("PAGERACE_PUBLIC_URL", "pagerace.example", "http://HOST or https://HOST"),
        ("PAGERACE_PUBLIC_URL", "https://pagerace.example/?x=1", "no ? or #"),
        ("PAGERACE_PUBLIC_URL", "https://pagerace.example:99999", "not a URL"),
        ("PAGERACE_SCENARIOS", "/no/such/folder", "existing folder"),
    ],
)
def test_a_bad_setting_names_the_variable_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    assert str(err.value).startswith(f"{name}={value!r}: ")
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAGERACE_ROOM_IDLE_S", "x"),
        ("PAGERACE_ROOM_UNJOINED_S", "nan"),
        ("PAGERACE_MAX_ROOMS", "1.5"),
        ("PAGERACE_CLIENT_ROOMS", "-1"),
        ("PAGERACE_REDIS_URL", "localhost:6379"),
    ],
)
def test_a_bad_room_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"^{name}="):
        RoomSettings.from_env()


def test_good_settings_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAGERACE_MAX_STATES", "1_000")
    monkeypatch.setenv("PAGERACE_PUBLIC_URL", "https://x.example/pagerace/")
    monkeypatch.setenv("PAGERACE_SCENARIOS", str(tmp_path))
    monkeypatch.setenv("PAGERACE_REDIS_URL", "unix:///run/redis.sock")
    monkeypatch.setenv("PAGERACE_ROOM_IDLE_S", "")  # empty: the default
    settings = Settings.from_env()
    assert settings.max_states == 1000
    assert settings.public_url == "https://x.example/pagerace"  # links append "/live/..."
    assert settings.scenarios_dir == tmp_path
    assert RoomSettings.from_env().redis_url == "unix:///run/redis.sock"
    assert RoomSettings.from_env().idle_s == RoomSettings.idle_s


def test_serve_exits_2_on_a_bad_setting_without_starting(
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PAGERACE_ROOM_IDLE_S", "two hours")
    assert cli.main(["serve"]) == 2
    assert capsys.readouterr().err == (
        "pagerace: PAGERACE_ROOM_IDLE_S='two hours': expected a number >= 0\n"
    )
    assert uvicorn_calls == []


# ---------------------------------------------------------------------------- serve options


def test_serve_passes_its_options_to_uvicorn(
    uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERACE_REDIS_URL", "redis://127.0.0.1:6379/0")
    args = ["serve", "--workers", "3", "--root-path", "/pagerace", "--log-level", "warning"]
    args += ["--forwarded-allow-ips", "10.0.0.0/8", "--no-proxy-headers", "--log-json"]
    args += ["--public-url", "https://race.example.org/pagerace"]
    assert cli.main(args) == 0
    (call,) = uvicorn_calls
    assert call["app"] == "app.main:app"  # an import string: workers import the app themselves
    assert call["workers"] == 3
    assert call["root_path"] == "/pagerace"
    assert call["log_level"] == "warning"
    assert call["forwarded_allow_ips"] == "10.0.0.0/8"
    assert call["proxy_headers"] is False
    assert call["log_config"]["formatters"]["json"]["()"] == "app.logs.JsonFormatter"
    # Workers are new processes: the public URL reaches them through the environment.
    assert Settings.from_env().public_url == "https://race.example.org/pagerace"


def test_serve_defaults_are_uvicorns(uvicorn_calls: list[dict[str, Any]]) -> None:
    assert cli.main(["serve"]) == 0
    (call,) = uvicorn_calls
    assert (call["workers"], call["root_path"], call["proxy_headers"]) == (1, "", True)
    # Not passed: uvicorn then reads $FORWARDED_ALLOW_IPS, else trusts 127.0.0.1 only.
    assert "forwarded_allow_ips" not in call
    assert "log_config" not in call  # uvicorn's own text logs


def test_more_than_one_worker_needs_redis(
    uvicorn_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--workers 2" in err and "PAGERACE_REDIS_URL" in err
    assert uvicorn_calls == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workers", "0"], "--workers: '0': expected a whole number >= 1"),
        (["--root-path", "pagerace"], "--root-path: 'pagerace': expected /PREFIX"),
        (["--root-path", "/pagerace/"], "--root-path: '/pagerace/': expected /PREFIX"),
        (["--log-level", "loud"], "--log-level: invalid choice: 'loud'"),
    ],
)
def test_bad_serve_options_exit_2(
    uvicorn_calls: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    words: str,
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", *args])
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err


def test_a_bad_public_url_option_is_named_as_the_option(
    uvicorn_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--public-url", "race.example.org"]) == 2
    assert capsys.readouterr().err.startswith("pagerace: --public-url 'race.example.org': ")


# ---------------------------------------------------------------------------- --scenarios


def test_scenarios_folder_errors_name_every_file_and_field(
    uvicorn_calls: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-bad.yaml").write_text("id: mine\ntitle: x\nactors: {}\n")
    shutil.copy(CATALOG_FILE, tmp_path / "b-clash.yaml")
    (tmp_path / "notes.txt").write_text("not a scenario: ignored")
    assert cli.main(["serve", "--scenarios", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a-bad.yaml: actors (line 3): must be a list" in err
    assert f"b-clash.yaml: id: {SEED!r} is a catalog scenario's id" in err
    assert "notes.txt" not in err
    assert uvicorn_calls == []


def test_an_empty_scenarios_folder_is_refused(
    uvicorn_calls: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--scenarios", str(tmp_path)]) == 2
    assert "holds no scenario file" in capsys.readouterr().err


def test_the_users_scenarios_are_served_beside_the_catalog(tmp_path: Path) -> None:
    text = CATALOG_FILE.read_text().replace(f"id: {SEED}", "id: my-copy", 1)
    (tmp_path / "mine.yml").write_text(text)
    client = TestClient(create_app(settings=Settings(scenarios_dir=tmp_path)))
    ids = [s["id"] for s in client.get("/api/scenarios").json()]
    assert ids[-1] == "my-copy" and SEED in ids
    assert client.get("/s/my-copy").status_code == 200
    assert "/s/my-copy" in client.get("/").text


# ---------------------------------------------------------------------------- --root-path


def page_urls(html: str, pattern: re.Pattern[str] = URL_ATTR) -> list[str]:
    return [u.replace("&amp;", "&") for u in pattern.findall(html)]


def test_every_url_in_the_pages_honours_the_root_path(
    catalog: Mapping[str, engine.Scenario],
) -> None:
    # TestClient(root_path=) sets scope["root_path"] as uvicorn --root-path does behind a
    # proxy that strips the prefix.
    client = TestClient(create_app(catalog), root_path="/pr")
    pages = ["/", f"/s/{SEED}", f"/s/{SEED}?present=1", "/edit", f"/edit?from={SEED}", "/docs"]
    seen: set[str] = set()
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        for url in page_urls(response.text):
            assert url.startswith("/pr/"), f"{page} links to {url}, outside /pr"
        seen.update(page_urls(response.text, GET_ATTR))
    docs = client.get("/docs").text
    assert "'/pr/openapi.json'" in docs and "/pr/static/vendor/swagger-ui" in docs
    # And each of them answers. uvicorn hands the app the full path (root path included, as
    # the ASGI spec says), so the test client is asked for it the same way.
    for url in sorted(seen):
        assert client.get(url).status_code < 400, url
    assert len(seen) > 20
    # htmx replaces the address bar with the frame's page: the prefix is kept there too.
    frame = client.get(f"/s/{SEED}/frame?v=buggy&at=0", headers={"HX-Request": "true"})
    assert frame.headers["HX-Replace-Url"].startswith(f"/pr/s/{SEED}?")
    for url in page_urls(frame.text):
        assert url.startswith("/pr/"), url


def test_room_links_carry_the_root_path(catalog: Mapping[str, engine.Scenario]) -> None:
    client = TestClient(create_app(catalog), root_path="/pr")
    room = client.post("/api/rooms", json={"scenario": SEED}).json()
    assert room["follow_url"].startswith("http://testserver/pr/live/")
    assert client.get(urlsplit(room["follow_url"]).path).status_code == 200


def test_every_url_the_scripts_read_carries_the_root_path(
    catalog: Mapping[str, engine.Scenario],
) -> None:
    client = TestClient(create_app(catalog), root_path="/pr")
    page = client.get(f"/s/{SEED}?t=dio&at=1", headers={"accept": "text/html"}).text
    island = json.loads(html.unescape(re.search(r"data-json='([^']*)'", page).group(1)))  # type: ignore[union-attr]
    for key in ("page_url", "present_url", "goto_url", "diagram_url", "rooms_url"):
        assert island[key].startswith("/pr/"), key
    assert 'data-room-sockets="/pr/ws/rooms/"' in page
    room = client.post("/api/rooms", json={"scenario": SEED}).json()
    assert room["present_url"].startswith(f"/pr/s/{SEED}?")
    frame = client.get(f"/s/{SEED}/frame?t=dio&at=1", headers={"HX-Request": "true"})
    assert frame.headers["HX-Replace-Url"].startswith(f"/pr/s/{SEED}?")


def test_the_scripts_build_no_url() -> None:
    # Every URL a script fetches, opens or shows comes from the server (the frame's JSON island,
    # a data attribute, a room message), already under the root path: no script holds a path
    # or the root of its own, nor adds a query to one. The one exception: a presenter's room
    # socket, for a room only this browser remembers (its id and token are appended).
    static = Path(__file__).resolve().parents[2] / "static"
    path = re.compile(r'"/(?:s|api|ws|live|edit|static)/|"/frame|"/outcomes')
    query = re.compile(r'\+ *"[?&][a-z]+=')
    socket = 'return SOCKETS + room + "?token=" + encodeURIComponent(token);'
    for script in ("core.js", "dashboard.js", "editor.js", "live.js", "present.js"):
        text = (static / script).read_text()
        if script != "core.js":
            assert re.search(r'^import \{[^}]*\} from "\./core\.js";$', text, re.M), script
        assert "ROOT" not in text and "data-root" not in text, script
        for line in text.splitlines():
            code = line.strip()
            if code.startswith("//") or code == socket:
                continue
            assert not path.search(code), f"{script}: {code}"
            assert not query.search(code), f"{script}: {code}"


def test_uvicorn_serves_under_the_root_path() -> None:
    # The real server: uvicorn adds --root-path to the path it hands the app, as after a
    # proxy that strips the prefix (docs/deploy.md shows the nginx lines).
    with app_server((*PAGERACE_SERVE, "--root-path", "/pr", "--log-level", "warning")) as url:
        with urllib.request.urlopen(f"{url}/s/{SEED}", timeout=10) as response:
            html = response.read().decode()
        urls = page_urls(html)
        assert urls and all(u.startswith("/pr/") for u in urls)
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
            assert json.load(response)["status"] == "ok"


# ---------------------------------------------------------------------------- --log-json


def test_json_log_lines_carry_the_access_fields() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/healthz", "1.1", 200),
        None,
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info" and line["logger"] == "uvicorn.access"
    assert line["message"] == '127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200'
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert line["time"].endswith("+00:00")


@pytest.mark.redis
def test_two_workers_serve_rooms_through_redis() -> None:
    if shutil.which("redis-server") is None:
        reason = "redis-server is missing (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with redis_server() as redis_url:
        command = (*PAGERACE_SERVE, "--workers", "2", "--log-level", "warning")
        with app_server(command, env={"PAGERACE_REDIS_URL": redis_url}) as url:
            body = json.dumps({"scenario": SEED}).encode()
            headers = {"Content-Type": "application/json"}
            request = urllib.request.Request(f"{url}/api/rooms", data=body, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                follow = json.load(response)["follow_url"]
            # Whichever worker answers, the room is found (it lives in Redis).
            for _ in range(4):
                with urllib.request.urlopen(follow, timeout=10) as response:
                    assert response.status == 200
