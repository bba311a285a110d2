"""Hostile clients (issue 17): collisions, oversized numbers, lax types, sockets, floods.

Every test here is bounded and in-process (TestClient on loopback): it shows one way a single
client could mislead or degrade everyone else, and that the server now refuses it.
"""

from __future__ import annotations

import json
import time
import zlib
from base64 import urlsafe_b64encode
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import engine
import engine.lang.validate
from app.config import Settings
from app.main import create_app
from app.rooms import RoomSettings
from app.schemas import ErrorResponse

SEED = "madv-free-vs-dio"


def error(response: Any, status: int, path: str) -> ErrorResponse:
    """A 4xx in the common error shape whose items name `path`."""
    assert response.status_code == status, response.text
    body = ErrorResponse.model_validate(response.json())
    assert path in [item.path for item in body.errors], body
    return body


def pack(raw: bytes) -> str:
    return urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")


# --- 1. digest collisions --------------------------------------------------------------------


def colliding_pair(seed: engine.Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    """The review's pair: A = the seed on its buggy kernel only (loses the DMA data); B = A
    without kswapd (nothing can go wrong). With `digest_of` patched they share a digest, as
    the real pair found by a 32 s birthday search does."""
    a = json.loads(json.dumps(seed.document))
    a["variants"] = {"buggy": a["variants"]["buggy"]}
    a["expect"] = {"buggy": a["expect"]["buggy"]}
    b = json.loads(json.dumps(a))
    b["actors"] = [actor for actor in b["actors"] if actor["name"] != "kswapd"]
    b["expect"] = {"buggy": {"violations": []}}
    return a, b


@pytest.fixture
def colliding(
    monkeypatch: pytest.MonkeyPatch, catalog: Mapping[str, engine.Scenario]
) -> TestClient:
    monkeypatch.setattr(engine.lang.validate, "digest_of", lambda document: "65b35cd92baa")
    return TestClient(create_app(catalog))


def violations(body: dict[str, Any]) -> set[str]:
    return {name for outcome in body["outcomes"] for name in outcome["violations"]}


def test_explore_cache_is_not_fooled_by_a_digest_collision(
    colliding: TestClient, seed: engine.Scenario
) -> None:
    a, b = colliding_pair(seed)
    first = colliding.post("/api/explore", json={"scenario": b, "variant": "buggy"})
    second = colliding.post("/api/explore", json={"scenario": a, "variant": "buggy"})
    assert first.status_code == second.status_code == 200
    assert violations(first.json()) == set()
    assert "lost_write" in violations(second.json())  # not B's verdict served for A


def test_run_cache_is_not_fooled_by_a_digest_collision(
    colliding: TestClient, seed: engine.Scenario
) -> None:
    a, b = colliding_pair(seed)
    first = colliding.post("/api/run", json={"scenario": b, "variant": "buggy"})
    second = colliding.post("/api/run", json={"scenario": a, "variant": "buggy"})
    assert first.json()["digest"] == second.json()["digest"]  # the collision is real
    assert [x["name"] for x in first.json()["actors"]] == ["dio"]
    assert [x["name"] for x in second.json()["actors"]] == ["dio", "kswapd"]


def test_outcomes_page_is_not_fooled_by_a_digest_collision(
    colliding: TestClient, seed: engine.Scenario
) -> None:
    a, b = colliding_pair(seed)
    for doc, lost in ((b, False), (a, True)):
        s = pack(json.dumps(doc).encode())
        page = colliding.get(f"/s/x/outcomes?v=buggy&s={s}")
        assert page.status_code == 200, page.text[:300]
        assert ("lost_write" in page.text) is lost


def test_a_full_sha256_in_d_is_checked_in_full(client: TestClient, seed: engine.Scenario) -> None:
    assert len(seed.sha256) == 64 and seed.sha256.startswith(seed.digest)
    same = client.get(f"/s/{SEED}?d={seed.sha256}")
    assert "changed since the link was made" not in same.text
    # Same 48-bit prefix, different document: a short-digest match must not pass.
    forged = seed.digest + ("0" if seed.sha256[12] != "0" else "1") + seed.sha256[13:]
    other = client.get(f"/s/{SEED}?d={forged}")
    assert "changed since the link was made" in other.text


def test_the_api_publishes_the_full_sha256(client: TestClient, seed: engine.Scenario) -> None:
    assert client.get(f"/api/scenarios/{SEED}").json()["sha256"] == seed.sha256
    listed = {s["id"]: s for s in client.get("/api/scenarios").json()}
    assert listed[SEED]["sha256"] == seed.sha256


# --- 2. integers longer than Python reads (4,300 digits) -------------------------------------

HUGE = "1" * 4301


@pytest.mark.parametrize("page", ["/s/x", "/s/x/frame", "/s/x/outcomes", "/s/x/find-bug", "/edit"])
def test_a_huge_integer_in_a_link_is_a_422_naming_s(client: TestClient, page: str) -> None:
    s = pack(b'{"id":"x","actors":[{"name":"a","ops":[{"at":' + HUGE.encode() + b"}]}]}")
    response = client.get(f"{page}?s={s}", headers={"accept": "text/html"})
    assert response.status_code == 422, response.text[:300]
    assert (
        "s: " in response.text and "actors[0].ops[0].at has too many digits (4301;" in response.text
    )


def test_a_huge_integer_in_api_json_is_a_422_naming_the_field(client: TestClient) -> None:
    content = f'{{"scenario": "{SEED}", "max_states": {HUGE}}}'
    response = client.post(
        "/api/explore", content=content, headers={"content-type": "application/json"}
    )
    body = error(response, 422, "max_states")
    assert "(4301; at most 4300)" in body.errors[0].message


def test_a_huge_integer_in_a_socket_message_names_the_field(client: TestClient) -> None:
    with client.websocket_connect("/ws/run") as ws:
        ws.send_text(f'{{"type": "goto", "index": {HUGE}}}')
        reply = json.loads(ws.receive_text())
    assert reply["type"] == "error"
    assert [item["path"] for item in reply["errors"]] == ["index"]


# --- 3. lax types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/rooms", {"scenario": SEED, "at": False}, "at"),
        ("/api/explore", {"scenario": SEED, "max_states": True}, "max_states"),
        ("/api/run", {"scenario": SEED, "fixes": {"lazyfree_refcount_check": "yes"}}, "fixes"),
        ("/api/explore", {"scenario": SEED, "max_states": "10"}, "max_states"),
    ],
)
def test_lax_types_are_a_422_naming_the_field(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    paths = [item["path"] for item in response.json()["errors"]]
    assert any(p == field or p.startswith(field + ".") for p in paths), paths


def test_lax_types_in_socket_messages_are_refused(client: TestClient) -> None:
    with client.websocket_connect("/ws/run") as ws:
        ws.send_text(json.dumps({"type": "goto", "index": True}))
        reply = json.loads(ws.receive_text())
    assert reply["type"] == "error"
    assert [item["path"] for item in reply["errors"]] == ["goto.index"] or any(
        "index" in item["path"] for item in reply["errors"]
    )


# --- 4. sockets: pace, message size, Origin --------------------------------------------------


def test_play_has_a_floor_on_its_pace(client: TestClient, bug_schedule: tuple[str, ...]) -> None:
    floor_ms = 50  # MIN_PLAY_DELAY_MS, as documented on PlayMessage.delay_ms
    with client.websocket_connect("/ws/run") as ws:
        ws.send_json({"type": "load", "scenario": SEED, "schedule": list(bug_schedule), "at": 0})
        assert ws.receive_json()["type"] == "state"
        started = time.monotonic()
        ws.send_json({"type": "play", "delay_ms": 0})
        while ws.receive_json()["type"] == "transition":
            pass
        elapsed = time.monotonic() - started
    # n steps, each followed by the floor's pause: at least n * floor, less scheduling noise.
    assert elapsed >= 0.9 * len(bug_schedule) * floor_ms / 1000


def test_serve_refuses_socket_messages_over_the_apps_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from app import cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    assert cli.main(["serve", "--port", "8765"]) == 0
    assert seen["ws_max_size"] == Settings().max_body_bytes  # not uvicorn's 16 MiB


@pytest.mark.parametrize("path", ["/ws/run", "/ws/rooms/k7m2xq9p"])
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://testserver.evil"])
def test_sockets_refuse_cross_site_origins(client: TestClient, path: str, origin: str) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(path, headers={"origin": origin}),
    ):
        pass
    assert refused.value.code == 1008


def test_sockets_accept_their_own_origin_or_none(client: TestClient) -> None:
    for headers in ({"origin": "http://testserver"}, {}):
        with client.websocket_connect("/ws/run", headers=headers) as ws:
            ws.send_json({"type": "load", "scenario": SEED})
            assert ws.receive_json()["type"] == "state"


def test_sockets_accept_the_configured_public_url(catalog: Mapping[str, engine.Scenario]) -> None:
    settings = replace(Settings(), public_url="https://pagerace.example")
    client = TestClient(create_app(catalog, settings))
    with client.websocket_connect("/ws/run", headers={"origin": "https://pagerace.example"}) as ws:
        ws.send_json({"type": "load", "scenario": SEED})
        assert ws.receive_json()["type"] == "state"


# --- 5. room flood ---------------------------------------------------------------------------


def rooms_app(catalog: Mapping[str, engine.Scenario], **limits: Any) -> Any:
    return create_app(catalog, room_settings=RoomSettings(**limits))


def test_room_creation_is_limited_per_client(catalog: Mapping[str, engine.Scenario]) -> None:
    app = rooms_app(catalog, client_rooms=3, client_window_s=60.0)
    flooder = TestClient(app, client=("192.0.2.1", 5000))
    for _ in range(3):
        assert flooder.post("/api/rooms", json={}).status_code == 201
    refused = flooder.post("/api/rooms", json={})
    assert refused.status_code == 429, refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert "too many rooms from this client" in refused.json()["detail"]
    # Refused before any work: a bad schedule is not even replayed.
    body = {"scenario": SEED, "schedule": ["nobody"]}
    assert flooder.post("/api/rooms", json=body).status_code == 429
    # Everyone else still gets rooms.
    other = TestClient(app, client=("192.0.2.2", 5000))
    assert other.post("/api/rooms", json={}).status_code == 201


def test_rooms_nobody_opened_expire_soon(catalog: Mapping[str, engine.Scenario]) -> None:
    client = TestClient(rooms_app(catalog, idle_s=60.0, unjoined_s=0.3))
    abandoned = client.post("/api/rooms", json={"scenario": SEED}).json()["room"]
    opened = client.post("/api/rooms", json={"scenario": SEED}).json()["room"]
    assert client.get(f"/live/{opened}").status_code == 200  # joined: the idle timer now
    time.sleep(0.5)
    assert client.get(f"/live/{abandoned}").status_code == 404
    assert client.get(f"/live/{opened}").status_code == 200


def test_expired_unjoined_rooms_free_the_room_limit(catalog: Mapping[str, engine.Scenario]) -> None:
    client = TestClient(rooms_app(catalog, idle_s=60.0, unjoined_s=0.3, max_rooms=2))
    for _ in range(2):
        assert client.post("/api/rooms", json={}).status_code == 201
    assert client.post("/api/rooms", json={}).status_code == 503
    time.sleep(0.5)
    assert client.post("/api/rooms", json={}).status_code == 201


# --- 6. HEAD ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", f"/s/{SEED}", f"/s/{SEED}/frame", "/api/scenarios", "/edit"])
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path, headers={"accept-encoding": "identity"})
    head = client.head(path, headers={"accept-encoding": "identity"})
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    assert "content-security-policy" in head.headers


# --- 7. cross-site triggers ------------------------------------------------------------------

IMG = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image"}


@pytest.mark.parametrize("page", ["outcomes", "find-bug"])
def test_another_sites_img_cannot_start_an_exploration(
    monkeypatch: pytest.MonkeyPatch, client: TestClient, page: str
) -> None:
    from app.service import Explorer

    started: list[object] = []

    async def explore_until_gone(*args: object) -> None:
        started.append(args)

    monkeypatch.setattr(Explorer, "explore_until_gone", explore_until_gone)
    response = client.get(f"/s/{SEED}/{page}", headers=IMG)
    assert response.status_code == 403
    assert started == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Fetch Metadata: an older browser, or curl
        {"sec-fetch-site": "same-origin", "sec-fetch-mode": "cors", "sec-fetch-dest": "empty"},
        # a person following a shared link from another site (chat, mail)
        {
            "sec-fetch-site": "cross-site",
            "sec-fetch-mode": "navigate",
            "sec-fetch-dest": "document",
            "sec-fetch-user": "?1",
        },
    ],
)
def test_own_pages_and_followed_links_still_explore(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert client.get(f"/s/{SEED}/outcomes", headers=headers).status_code == 200


# --- amplification: variants, frame cache ----------------------------------------------------


def test_a_scenario_has_a_bounded_number_of_variants(
    client: TestClient, seed: engine.Scenario
) -> None:
    doc = json.loads(json.dumps(seed.document))
    doc["variants"] = {f"v{i}": {"kernel": "5.17"} for i in range(9)}
    doc.pop("expect", None)
    error(client.post("/api/run", json={"scenario": doc}), 422, "variants")
    s = pack(json.dumps(doc).encode())
    page = client.get(f"/s/x?s={s}", headers={"accept": "text/html"})
    assert page.status_code == 400 and "variants" in page.text  # as any invalid document
    doc["variants"] = {f"v{i}": {"kernel": "5.17"} for i in range(8)}
    assert client.post("/api/run", json={"scenario": doc}).status_code == 200


def test_the_frame_cache_is_bounded_in_bytes() -> None:
    from app.routes.pages import FrameCache

    cache = FrameCache(entries=128, max_bytes=10_000)
    for i in range(50):
        cache.put(f"/s/x/frame?at={i}", b"x" * 1_000)
    assert cache.size <= 10_000
    assert sum(len(k) + len(v) for k, v in cache.frames.items()) == cache.size
    assert cache.get("/s/x/frame?at=49") is not None  # the newest stay
    cache.put("/s/x/frame?big", b"x" * 5_000)  # over an eighth: served, not kept
    assert cache.get("/s/x/frame?big") is None


# --- Host header: the configured public URL wins ---------------------------------------------


def test_links_handed_out_use_the_public_url_not_the_host(
    catalog: Mapping[str, engine.Scenario],
) -> None:
    settings = replace(Settings(), public_url="https://pagerace.example")
    client = TestClient(create_app(catalog, settings))
    evil = {"host": "evil.example"}
    room = client.post("/api/rooms", json={}, headers=evil).json()
    assert room["follow_url"] == f"https://pagerace.example/live/{room['room']}"
    page = client.get(f"/live/{room['room']}", headers=evil)
    assert "evil.example" not in page.text


def test_the_qr_code_varies_by_host_without_a_public_url(client: TestClient) -> None:
    room = client.post("/api/rooms", json={}).json()["room"]
    qr = client.get(f"/live/{room}/qr.svg")
    assert qr.status_code == 200
    assert "host" in qr.headers["vary"].lower()


# --- pages built off the event loop ----------------------------------------------------------


def on_loop() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_find_bug_and_live_pages_are_built_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    from app.routes import pages, rooms

    seen: list[bool] = []
    for module, name in ((pages, "_dashboard"), (pages, "_target"), (rooms, "_live_dashboard")):
        real = getattr(module, name)

        def spy(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            seen.append(on_loop())
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    assert client.get(f"/s/{SEED}/find-bug").status_code == 200
    room = client.post("/api/rooms", json={"scenario": SEED}).json()["room"]
    assert client.get(f"/live/{room}").status_code == 200
    assert len(seen) >= 3 and not any(seen)
