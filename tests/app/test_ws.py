"""/ws/run (product.md 5.3): load, step, back, goto, play, pause, explore, and errors."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

import app.wire
import engine

SEED = "madv-free-vs-dio"
TRANSITION_KEYS = {"index", "actor", "function", "note", "changes", "state"}


def load(ws: WebSocketTestSession, **extra: Any) -> dict[str, Any]:
    ws.send_json({"type": "load", "scenario": SEED, **extra})
    message: dict[str, Any] = ws.receive_json()
    return message


def test_load_then_step_streams_transitions(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    with client.websocket_connect("/ws/run") as ws:
        state = load(ws)
        assert state["type"] == "state"
        assert state["at"] == 0
        assert state["steps"] == []
        for index, actor in enumerate(bug_schedule, start=1):
            ws.send_json({"type": "step", "actor": actor})
            message = ws.receive_json()
            assert message["type"] == "transition", message
            assert message.keys() >= TRANSITION_KEYS
            assert message["index"] == index
            assert message["actor"] == actor
        assert message["finished"] is True
        assert "lost_write" in {v["name"] for v in message["violations"]}


def test_back_and_goto(client: TestClient, bug_schedule: tuple[str, ...]) -> None:
    with client.websocket_connect("/ws/run") as ws:
        state = load(ws, schedule=list(bug_schedule))
        assert state["at"] == len(bug_schedule)
        ws.send_json({"type": "back"})
        back = ws.receive_json()
        assert back["type"] == "state"
        assert back["at"] == len(bug_schedule) - 1
        assert len(back["steps"]) == len(bug_schedule) - 1
        ws.send_json({"type": "goto", "index": 1})
        assert ws.receive_json()["at"] == 1
        ws.send_json({"type": "goto", "index": 999})
        error = ws.receive_json()
        assert error["type"] == "error"
        assert error["errors"][0]["path"] == "index"


def test_step_not_enabled_is_an_error_naming_enabled(
    client: TestClient, seed: engine.Scenario
) -> None:
    with client.websocket_connect("/ws/run") as ws:
        load(ws)
        ws.send_json({"type": "step", "actor": "nobody"})
        error = ws.receive_json()
        assert error["type"] == "error"
        assert error["errors"][0]["path"].startswith("schedule[")
        assert set(error["errors"][0]["enabled"]) <= {a.name for a in seed.actors}
        # The session survives the error.
        ws.send_json({"type": "goto", "index": 0})
        assert ws.receive_json()["type"] == "state"


def test_play_streams_the_schedule(client: TestClient, bug_schedule: tuple[str, ...]) -> None:
    with client.websocket_connect("/ws/run") as ws:
        load(ws, schedule=list(bug_schedule), at=0)
        ws.send_json({"type": "play", "delay_ms": 0})
        indices = []
        while True:
            message = ws.receive_json()
            if message["type"] != "transition":
                break
            assert message.keys() >= TRANSITION_KEYS
            indices.append(message["index"])
        assert indices == list(range(1, len(bug_schedule) + 1))
        assert message["type"] == "state"
        assert message["at"] == len(bug_schedule)


def test_pause_stops_play(client: TestClient, bug_schedule: tuple[str, ...]) -> None:
    with client.websocket_connect("/ws/run") as ws:
        load(ws, schedule=list(bug_schedule), at=0)
        ws.send_json({"type": "play", "delay_ms": 5_000})
        first = ws.receive_json()
        assert first["type"] == "transition"
        ws.send_json({"type": "pause"})
        paused = ws.receive_json()
        assert paused["type"] == "state"
        assert paused["at"] == 1


def test_explore_streams_outcomes(client: TestClient) -> None:
    with client.websocket_connect("/ws/run") as ws:
        load(ws)
        ws.send_json({"type": "explore"})
        while True:
            message = ws.receive_json()
            if message["type"] != "progress":
                break
            assert message["states"] >= 0
        assert message["type"] == "outcomes", message
        assert message["interleavings"] >= 1
        assert any(o["violations"] for o in message["outcomes"])


def test_bad_messages_are_errors_not_disconnects(client: TestClient) -> None:
    with client.websocket_connect("/ws/run") as ws:
        ws.send_text("{not json")
        assert ws.receive_json()["errors"][0]["path"] == "message"
        ws.send_json({"type": "warp"})
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "step", "actor": "dio"})
        before_load = ws.receive_json()
        assert before_load["type"] == "error"
        assert "load" in before_load["message"]
        ws.send_json({"type": "load", "scenario": "no-such-thing"})
        assert ws.receive_json()["errors"][0]["path"] == "scenario"
        ws.send_json({"type": "load", "scenario": SEED, "schedule": ["nobody"]})
        assert ws.receive_json()["type"] == "error"
        ws.send_text("x" * 300_000)
        assert ws.receive_json()["type"] == "error"
        assert load(ws)["type"] == "state"


def test_a_state_message_is_encoded_off_the_event_loop(
    client: TestClient, bug_schedule: tuple[str, ...], monkeypatch: Any
) -> None:
    threads: list[tuple[str, str]] = []
    real = app.wire.encode

    def spy(message: dict[str, Any]) -> str:
        threads.append((str(message.get("type")), threading.current_thread().name))
        return real(message)

    monkeypatch.setattr(app.wire, "encode", spy)
    with client.websocket_connect("/ws/run") as ws:
        assert load(ws, schedule=list(bug_schedule))["type"] == "state"
        loop_thread = next(name for kind, name in threads if kind == "state")
        ws.send_json({"type": "no-such-command"})
        assert ws.receive_json()["type"] == "error"
    # The loop's own thread encodes the small error; the state went to a worker thread.
    small = [name for kind, name in threads if kind != "state"]
    assert small and loop_thread not in small, threads


def test_transitions_carry_the_point_of_no_return_once_lost(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    """A room's step log marks the step after which every continuation breaks (issue 15
    item 1): the messages say where, from that step on, and not before."""
    with client.websocket_connect("/ws/run") as ws:
        load(ws, variant="buggy")
        seen = []
        for actor in bug_schedule:
            ws.send_json({"type": "step", "actor": actor})
            seen.append(ws.receive_json().get("point_of_no_return"))
    assert seen == [None] * 7 + [8] * (len(bug_schedule) - 7)
