"""Live rooms (product.md 5.3): order, late join, token enforcement, expiry, bounds."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

import engine
from app.main import create_app
from app.rooms import RoomSettings, with_seq
from app.routes.rooms import FOLLOWER_REFUSED
from app.runref import RunRef

SEED = "madv-free-vs-dio"


@pytest.fixture
def rooms_app(catalog: Mapping[str, engine.Scenario]) -> FastAPI:
    return create_app(catalog, room_settings=RoomSettings(max_rooms=5, max_followers=3))


@pytest.fixture
def live(rooms_app: FastAPI) -> Iterator[TestClient]:
    # One portal (event loop) for every socket: the presenter and its followers share rooms.
    with TestClient(rooms_app) as client:
        yield client


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    res = client.post("/api/rooms", json=body)
    assert res.status_code == 201, res.text
    created: dict[str, Any] = res.json()
    return created


def receive(ws: WebSocketTestSession) -> dict[str, Any]:
    message: dict[str, Any] = ws.receive_json()
    return message


def refused(ws: WebSocketTestSession, code: int) -> str:
    """The error message a socket gets before the server closes it with `code`."""
    error = receive(ws)
    assert error["type"] == "error"
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == code
    message: str = error["message"]
    return message


def present(client: TestClient, room: dict[str, Any]) -> WebSocketTestSession:
    ws = client.websocket_connect(f"/ws/rooms/{room['room']}?token={room['presenter_token']}")
    return ws


def test_create_returns_room_token_and_follow_url(live: TestClient) -> None:
    room = create(live)
    assert len(room["room"]) == 8
    assert len(room["presenter_token"]) >= 24
    assert room["follow_url"] == f"http://testserver/live/{room['room']}"
    assert room["present_url"] is None
    loaded = create(live, scenario=SEED, variant="buggy", schedule=["dio", "dio"], at=1)
    assert loaded["present_url"].startswith(f"/s/{SEED}?v=buggy&t=dio,dio&at=1&d=")
    assert loaded["present_url"].endswith(
        f"&present=1&room={loaded['room']}#token={loaded['presenter_token']}"
    )


def test_create_rejects_bad_scenario_and_schedule(live: TestClient) -> None:
    res = live.post("/api/rooms", json={"scenario": "no-such-thing"})
    assert res.status_code == 404
    res = live.post("/api/rooms", json={"scenario": SEED, "variant": "nope"})
    assert res.status_code == 422
    assert res.json()["errors"][0]["path"] == "variant"
    res = live.post("/api/rooms", json={"scenario": SEED, "schedule": ["kswapd"] * 40})
    assert res.status_code == 422
    assert res.json()["errors"][0]["path"].startswith("schedule")


def test_followers_mirror_every_step_in_order(
    live: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    room = create(live)
    path = f"/ws/rooms/{room['room']}"
    with (
        present(live, room) as presenter,
        live.websocket_connect(path) as f1,
        live.websocket_connect(path) as f2,
    ):
        assert receive(presenter) == {
            "type": "room",
            "room": room["room"],
            "role": "presenter",
            "follow_url": f"/live/{room['room']}",
            "qr_url": f"/live/{room['room']}/qr.svg",
        }
        for follower in (f1, f2):
            hello = receive(follower)
            assert hello["role"] == "follower"
            assert hello["seq"] == 0
        presenter.send_json({"type": "load", "scenario": SEED, "variant": "buggy"})
        state = receive(presenter)
        assert state["type"] == "state"
        assert state["seq"] == 1
        for actor in bug_schedule:
            presenter.send_json({"type": "step", "actor": actor})
            assert receive(presenter)["type"] == "transition"
        for follower in (f1, f2):
            first = receive(follower)
            assert (first["type"], first["seq"], first["at"]) == ("state", 1, 0)
            seen = [receive(follower) for _ in bug_schedule]
            assert [m["type"] for m in seen] == ["transition"] * len(bug_schedule)
            assert [m["seq"] for m in seen] == list(range(2, 2 + len(bug_schedule)))
            assert [m["index"] for m in seen] == list(range(1, 1 + len(bug_schedule)))
            assert tuple(m["actor"] for m in seen) == bug_schedule
            assert {"function", "note", "changes", "state"} <= seen[0].keys()
            last = seen[-1]
            assert "lost_write" in {v["name"] for v in last["violations"]}
            assert last["frame_url"].startswith(f"/s/{SEED}/frame?v=buggy&t=")
            assert "&live=1" in last["frame_url"]
            assert last["page_url"].endswith(
                f"at={len(bug_schedule)}&d={state['digest']}&e={engine.ENGINE_VERSION}"
            )


def test_back_goto_and_variant_switch_reach_followers(
    live: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    room = create(live, scenario=SEED, variant="buggy", schedule=list(bug_schedule), at=3)
    with present(live, room) as presenter, live.websocket_connect(f"/ws/rooms/{room['room']}") as f:
        receive(presenter)
        assert receive(presenter)["at"] == 3  # the presenter catches up first
        receive(f)
        assert receive(f)["at"] == 3
        presenter.send_json({"type": "back"})
        presenter.send_json({"type": "goto", "index": 9})
        # The fixed kernel takes another path after step 7, so the presenter sends what applies.
        presenter.send_json(
            {
                "type": "load",
                "scenario": SEED,
                "variant": "fixed",
                "schedule": list(bug_schedule[:7]),
            }
        )
        got = [receive(f) for _ in range(3)]
        assert [(m["type"], m["at"]) for m in got] == [("state", 2), ("state", 9), ("state", 7)]
        assert "v=fixed" in got[-1]["page_url"]
        assert not got[-1]["violations"]


def test_late_joiner_starts_at_the_current_state(
    live: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    room = create(live, scenario=SEED, variant="buggy")
    with present(live, room) as presenter:
        receive(presenter)
        receive(presenter)
        for actor in bug_schedule[:5]:
            presenter.send_json({"type": "step", "actor": actor})
            receive(presenter)
        with live.websocket_connect(f"/ws/rooms/{room['room']}") as late:
            hello = receive(late)
            assert hello["seq"] == 5
            state = receive(late)
            assert (state["type"], state["at"], state["seq"]) == ("state", 5, 5)
            assert len(state["steps"]) == 5
            assert state["schedule"] == list(bug_schedule[:5])
            presenter.send_json({"type": "step", "actor": bug_schedule[5]})
            nxt = receive(late)
            assert (nxt["type"], nxt["index"], nxt["seq"]) == ("transition", 6, 6)


def test_only_the_token_drives(live: TestClient, bug_schedule: tuple[str, ...]) -> None:
    room = create(live, scenario=SEED, variant="buggy")
    path = f"/ws/rooms/{room['room']}"
    with live.websocket_connect(path + "?token=not-the-token") as impostor:
        assert "token" in refused(impostor, 4403)
    with present(live, room) as presenter, live.websocket_connect(path) as follower:
        receive(presenter)
        receive(presenter)
        receive(follower)
        receive(follower)
        for attempt in (
            {"type": "step", "actor": bug_schedule[0]},
            {"type": "load", "scenario": SEED, "variant": "fixed"},
            {"type": "goto", "index": 0},
        ):
            follower.send_json(attempt)
            answer = receive(follower)
            assert answer == {
                "type": "error",
                "message": FOLLOWER_REFUSED,
                "errors": [{"path": "type", "message": FOLLOWER_REFUSED}],
            }
        # Nothing changed: the presenter's next step is step 1 of the buggy variant.
        presenter.send_json({"type": "step", "actor": bug_schedule[0]})
        mine = receive(presenter)
        theirs = receive(follower)
        assert (mine["index"], mine["seq"]) == (theirs["index"], theirs["seq"]) == (1, 1)
        assert "v=buggy" in theirs["page_url"]


def test_follower_that_keeps_sending_is_closed(live: TestClient) -> None:
    room = create(live)
    with live.websocket_connect(f"/ws/rooms/{room['room']}") as follower:
        receive(follower)
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(100):
                follower.send_text("{}")
                receive(follower)
        assert closed.value.code == 1008


def test_presenter_errors_stay_with_the_presenter(live: TestClient) -> None:
    room = create(live, scenario=SEED, variant="buggy")
    with present(live, room) as presenter, live.websocket_connect(f"/ws/rooms/{room['room']}") as f:
        receive(presenter), receive(presenter), receive(f), receive(f)
        presenter.send_json({"type": "step", "actor": "nobody"})
        error = receive(presenter)
        assert error["type"] == "error"
        assert error["errors"][0]["path"].startswith("schedule")
        presenter.send_text("not json")
        assert receive(presenter)["errors"][0]["path"] == "message"
        presenter.send_json({"type": "step", "actor": "dio"})
        receive(presenter)
        assert receive(f)["type"] == "transition"  # the follower never saw the errors


def test_presenter_rate_is_limited(live: TestClient) -> None:
    room = create(live, scenario=SEED, variant="buggy")
    with present(live, room) as presenter:
        receive(presenter), receive(presenter)
        for _ in range(60):
            presenter.send_json({"type": "pause"})
        answers = [receive(presenter) for _ in range(60)]
        dropped = [a for a in answers if a["type"] == "error"]
        assert dropped, "60 messages at once must exceed the burst"
        assert "too many messages" in dropped[0]["message"]


def test_unknown_room_and_bad_ids(live: TestClient) -> None:
    for room in ("abcdefgh", "NOT-A-ROOM", "x" * 500):
        with live.websocket_connect(f"/ws/rooms/{room}") as ws:
            assert "no live room" in refused(ws, 4404)
    res = live.get("/live/abcdefgh")
    assert res.status_code == 404
    assert "No such live room" in res.text


def test_rooms_expire_when_idle(catalog: Mapping[str, engine.Scenario]) -> None:
    # Margins wide enough for a loaded machine: the kept room is touched every 0.25 s (plus
    # the request's own time) against a 0.8 s idle limit; the other idles for 1.25 s.
    app = create_app(catalog, room_settings=RoomSettings(idle_s=0.8))
    with TestClient(app) as client:
        kept, dropped = create(client), create(client)
        for _ in range(5):
            time.sleep(0.25)
            assert client.get(f"/live/{kept['room']}").status_code == 200  # activity
        assert client.get(f"/live/{dropped['room']}").status_code == 404
        with client.websocket_connect(
            f"/ws/rooms/{dropped['room']}?token={dropped['presenter_token']}"
        ) as ws:
            assert "expired" in receive(ws)["message"]


def test_room_and_follower_limits(live: TestClient) -> None:
    rooms = [create(live) for _ in range(5)]
    res = live.post("/api/rooms", json={})
    assert res.status_code == 503
    assert "too many live rooms" in res.json()["detail"]
    path = f"/ws/rooms/{rooms[0]['room']}"
    with (
        live.websocket_connect(path) as a,
        live.websocket_connect(path) as b,
        live.websocket_connect(path) as c,
    ):
        for ws in (a, b, c):
            receive(ws)
        with live.websocket_connect(path) as extra:
            assert "full" in refused(extra, 4409)


def test_live_page_renders_the_rooms_step(live: TestClient, bug_schedule: tuple[str, ...]) -> None:
    room = create(live, scenario=SEED, variant="buggy", schedule=list(bug_schedule))
    page = live.get(f"/live/{room['room']}")
    assert page.status_code == 200
    assert 'id="violation-banner"' in page.text
    assert f"step {len(bug_schedule)} · kswapd" in page.text
    assert f'data-room="{room["room"]}"' in page.text
    assert room["presenter_token"] not in page.text
    empty = create(live)
    waiting = live.get(f"/live/{empty['room']}")
    assert "Waiting for the presenter" in waiting.text
    qr = live.get(f"/live/{room['room']}/qr.svg")
    assert qr.status_code == 200
    assert qr.headers["content-type"] == "image/svg+xml"
    assert qr.text.startswith("<svg")


def test_frame_for_followers_does_not_move_the_address_bar(live: TestClient) -> None:
    normal = live.get(f"/s/{SEED}/frame?v=buggy", headers={"HX-Request": "true"})
    assert "HX-Replace-Url" in normal.headers
    followed = live.get(f"/s/{SEED}/frame?v=buggy&live=1", headers={"HX-Request": "true"})
    assert followed.status_code == 200
    assert "HX-Replace-Url" not in followed.headers


def test_with_seq_numbers_encoded_messages() -> None:
    assert with_seq(7, '{"type":"state"}') == '{"seq":7,"type":"state"}'
    assert with_seq(1, "{}") == '{"seq":1}'
    snap = RunRef({"id": "x"}, "buggy", None, {"a": True}, ("dio", "kswapd"), 1)
    assert RunRef.from_json(snap.to_json()) == snap


def test_followers_share_one_render_of_a_frame(live: TestClient) -> None:
    url = f"/s/{SEED}/frame?v=buggy&t=dio,dio&at=2&live=1"
    cache = live.app.state.live_frames  # type: ignore[attr-defined]
    first = live.get(url, headers={"HX-Request": "true"})
    assert first.status_code == 200
    assert list(cache.frames) == [url]
    again = live.get(url, headers={"HX-Request": "true"})
    assert again.text == first.text
    assert "step 2 · dio" in again.text
    live.get(f"/s/{SEED}/frame?v=buggy&t=dio,dio&at=2", headers={"HX-Request": "true"})
    assert list(cache.frames) == [url], "only followers' frames are kept"


def test_the_server_says_what_a_followers_frame_is(
    live: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    """A follower's frame URL carries cmp= for a kernel switch on the same schedule and
    found=1 for a new schedule; a step along the schedule carries neither."""
    schedule = list(bug_schedule[:4])  # runs on both kernels
    room = create(live, scenario=SEED, variant="buggy", schedule=schedule, at=2)
    with (
        present(live, room) as presenter,
        live.websocket_connect(f"/ws/rooms/{room['room']}") as follower,
    ):
        assert receive(presenter)["type"] == "room"
        receive(presenter)  # the room's own step, loaded for the presenter
        assert receive(follower)["type"] == "room"
        receive(follower)  # catch-up

        def published(message: dict[str, Any]) -> dict[str, Any]:
            presenter.send_json(message)
            mine = receive(presenter)
            theirs = receive(follower)
            assert theirs["frame_url"] == mine["frame_url"]
            assert mine["present_url"].endswith(f"&present=1&room={room['room']}")
            return theirs

        switched = published(
            {"type": "load", "scenario": SEED, "variant": "fixed", "schedule": schedule, "at": 2}
        )
        assert switched["switched"] == "fixed"
        assert switched["frame_url"].endswith("&live=1&cmp=buggy")
        stepped = published({"type": "goto", "index": 1})
        assert "cmp=" not in stepped["frame_url"] and "found=" not in stepped["frame_url"]
        found = published(
            {
                "type": "load",
                "scenario": SEED,
                "variant": "fixed",
                "schedule": schedule[:3],
                "at": 1,
            }
        )
        assert found["frame_url"].endswith("&live=1&found=1") and "switched" not in found
        assert found["scenario_id"] == SEED


def test_published_state_messages_are_encoded_off_the_event_loop(
    live: TestClient, bug_schedule: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 item 2: a room's published messages (a state carries the whole run) were
    JSON-encoded on the event loop by the broker. Every JSON encoding of a state or a
    transition now runs in a worker thread: none on the thread running the loop."""
    encoded: list[tuple[str, bool]] = []
    real = json.dumps

    def spy(obj: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(obj, dict) and obj.get("type") in ("state", "transition", "error"):
            encoded.append((str(obj["type"]), asyncio_loop_running()))
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", spy)
    room = create(live)
    with (
        present(live, room) as presenter,
        live.websocket_connect(f"/ws/rooms/{room['room']}") as follower,
    ):
        assert receive(presenter)["type"] == "room"
        assert receive(follower)["role"] == "follower"
        presenter.send_json({"type": "load", "scenario": SEED, "variant": "buggy"})
        assert receive(presenter)["type"] == "state"
        presenter.send_json({"type": "step", "actor": bug_schedule[0]})
        assert receive(presenter)["type"] == "transition"
        presenter.send_json({"type": "no-such-command"})
        assert receive(presenter)["type"] == "error"
        assert receive(follower)["type"] == "state"
        assert receive(follower)["type"] == "transition"
    large = [on_loop for kind, on_loop in encoded if kind != "error"]
    # The presenter's reply and the broker's copy of each, at least.
    assert len(large) >= 4, encoded
    assert not any(large), encoded
    # The spy does see the loop: the small error is encoded on it.
    assert any(on_loop for kind, on_loop in encoded if kind == "error"), encoded


def asyncio_loop_running() -> bool:
    """Whether this thread is running an event loop (the server's), not a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
