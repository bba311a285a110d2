"""Rooms under hostile or unlucky conditions (issue 17, F11 and F15): followers are told when
their room ends or its presenter leaves, and room-id guessing is throttled per client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed

import engine
from app.main import create_app
from app.rooms import RoomSettings
from scripts.servers import PAGERACE_SERVE, app_server
from tests.app.test_rooms_redis import _post as new_room
from tests.app.test_rooms_redis import _recv as recv
from tests.app.test_rooms_redis import _ws as ws

SEED = "madv-free-vs-dio"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    env = {"PAGERACE_ROOM_IDLE_S": "1.5", "PAGERACE_ROOM_WATCH_S": "0.2"}
    with app_server(PAGERACE_SERVE, env, quiet=True) as url:
        yield url


def test_followers_are_told_when_their_room_expires(server: str) -> None:
    room = new_room(server + "/api/rooms", {"scenario": SEED})["room"]
    with ws(server, f"/ws/rooms/{room}") as follower:
        assert recv(follower)["role"] == "follower"
        assert recv(follower)["type"] == "state"
        ended = recv(follower)  # nobody drives it: 1.5 s idle
        assert ended["type"] == "ended" and ended["reason"] == "expired"
        assert "has ended" in ended["message"]
        with pytest.raises(ConnectionClosed) as closed:
            follower.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_followers_are_told_when_the_presenter_leaves(server: str) -> None:
    room = new_room(server + "/api/rooms", {"scenario": SEED})
    path = f"/ws/rooms/{room['room']}"
    with ws(server, path) as follower:
        assert recv(follower)["role"] == "follower"
        assert recv(follower)["type"] == "state"
        with ws(server, f"{path}?token={room['presenter_token']}") as presenter:
            assert recv(presenter)["role"] == "presenter"
            recv(presenter)  # its state
        note = recv(follower)
        assert note["type"] == "presenter" and note["connected"] is False
        assert "the presenter has left" in note["message"]


def test_room_id_guessing_is_throttled_per_client(
    catalog: Mapping[str, engine.Scenario],
) -> None:
    app = create_app(catalog, room_settings=RoomSettings(client_misses=5, client_window_s=60))
    guesser = TestClient(app, client=("192.0.2.7", 5000))
    room = guesser.post("/api/rooms", json={}).json()["room"]
    for n in range(5):
        assert guesser.get(f"/live/zzzzzzz{'abcde'[n]}").status_code == 404
    refused = guesser.get("/live/zzzzzzzz")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert "too many lookups of rooms that do not exist" in refused.text
    assert guesser.get(f"/live/{room}").status_code == 429  # even a right guess, for now
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        guesser.websocket_connect(f"/ws/rooms/{room}") as sock,
    ):
        assert sock.receive_json()["type"] == "error"
        sock.receive_json()
    assert closed.value.code == 4429
    # Other clients, and known rooms, are not affected.
    other = TestClient(app, client=("192.0.2.8", 5000))
    assert other.get(f"/live/{room}").status_code == 200
