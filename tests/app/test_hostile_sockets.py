"""Hostile sockets (issue 17, F2 and F8): replays off the event loop within a per-socket CPU
budget, and a follower that never reads is dropped. Bounded; loopback only."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from websockets.sync.client import connect

import engine
from app.config import Settings
from app.main import create_app
from scripts.heavy import heavy_scenario
from scripts.servers import PAGERACE_SERVE, app_server
from tests.app.test_hostile import on_loop

SEED = "madv-free-vs-dio"


def test_every_replay_a_socket_triggers_runs_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    seen: list[bool] = []
    real = engine.run_schedule

    def spy(*args: Any, **kwargs: Any) -> engine.Trace:
        seen.append(on_loop())
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "run_schedule", spy)
    with client.websocket_connect("/ws/run") as ws:
        ws.send_json({"type": "load", "scenario": SEED, "schedule": list(bug_schedule), "at": 0})
        assert ws.receive_json()["type"] == "state"
        ws.send_json({"type": "step", "actor": bug_schedule[0]})
        assert ws.receive_json()["type"] == "transition"
        ws.send_json({"type": "goto", "index": 3})
        assert ws.receive_json()["type"] == "state"
        ws.send_json({"type": "play", "delay_ms": 50})
        while ws.receive_json()["type"] == "transition":
            pass
    assert len(seen) >= 5 and not any(seen), seen


def test_a_socket_over_its_cpu_budget_is_told_and_stays_connected(
    catalog: Mapping[str, engine.Scenario],
) -> None:
    doc, schedule = heavy_scenario()
    settings = replace(Settings(), socket_cpu_burst_s=0.02, socket_cpu_share=0.01)
    client = TestClient(create_app(catalog, settings))
    with client.websocket_connect("/ws/run") as ws:
        ws.send_json({"type": "load", "scenario": doc, "schedule": schedule})
        assert ws.receive_json()["type"] == "state"  # the first burst pays for the load
        refusals = []
        for index in (10, 20, 30):
            ws.send_json({"type": "goto", "index": index})
            reply = ws.receive_json()
            if reply["type"] == "error":
                refusals.append(reply)
        assert refusals, "a heavy socket past its budget must be refused"
        assert "share of server time" in refusals[0]["message"]
        assert "try again in" in refusals[0]["message"]
        assert refusals[0]["errors"][0]["path"] == "message"
        # Still connected, and a command that costs nothing is answered.
        ws.send_json({"type": "goto", "index": 999})
        assert ws.receive_json()["errors"][0]["path"] == "index"


def test_one_clients_sockets_share_one_cpu_budget(catalog: Mapping[str, engine.Scenario]) -> None:
    # A client that opens more sockets does not get more server time: the second socket of
    # the same address inherits what the first one spent.
    doc, schedule = heavy_scenario()
    settings = replace(Settings(), socket_cpu_burst_s=0.02, socket_cpu_share=0.01)
    client = TestClient(create_app(catalog, settings))
    with client.websocket_connect("/ws/run") as first:
        first.send_json({"type": "load", "scenario": doc, "schedule": schedule})
        assert first.receive_json()["type"] == "state"
        for index in (10, 20):
            first.send_json({"type": "goto", "index": index})
            first.receive_json()
        with client.websocket_connect("/ws/run") as second:
            second.send_json({"type": "load", "scenario": doc, "schedule": schedule})
            reply = second.receive_json()
            assert reply["type"] == "error", "a fresh socket must not bring a fresh budget"
            assert "share of server time" in reply["message"]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    env = {"PAGERACE_FOLLOWER_SEND_TIMEOUT_S": "1"}
    with app_server(PAGERACE_SERVE, env, quiet=True) as url:
        yield url


def raw_follower(base: str, room: str) -> socket.socket:
    """A follower that completes the handshake and then never reads (tiny receive buffer)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        f"GET /ws/rooms/{room} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ".encode()
        + key
        + b"\r\n\r\n"
    )
    assert sock.recv(1024).startswith(b"HTTP/1.1 101")
    return sock


def test_a_follower_that_never_reads_is_dropped(server: str) -> None:
    doc, schedule = heavy_scenario()
    body = json.dumps({"scenario": doc, "schedule": schedule}).encode()
    request = urllib.request.Request(
        server + "/api/rooms", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as res:
        room = json.loads(res.read())
    stuck = raw_follower(server, room["room"])
    ws_url = server.replace("http://", "ws://") + f"/ws/rooms/{room['room']}"
    with connect(f"{ws_url}?token={room['presenter_token']}", open_timeout=10) as presenter:
        assert json.loads(presenter.recv(timeout=30))["type"] == "room"
        assert json.loads(presenter.recv(timeout=30))["type"] == "state"
        for n in range(20):  # ~400 KB each: far more than the follower's buffers hold
            presenter.send(json.dumps({"type": "goto", "index": len(schedule) - n % 2}))
            presenter.recv(timeout=30)
        time.sleep(3)  # past the 1 s send timeout
        # Reading now drains what the kernel kept, then must hit the end of the connection.
        deadline = time.monotonic() + 20
        closed = False
        with stuck:
            while time.monotonic() < deadline:
                try:
                    if not stuck.recv(1 << 20):
                        closed = True
                        break
                except ConnectionResetError:
                    closed = True
                    break
                except TimeoutError:
                    break
        assert closed, "the stuck follower is still connected"
        # The presenter was never held back.
        presenter.send(json.dumps({"type": "goto", "index": 1}))
        assert json.loads(presenter.recv(timeout=30))["at"] == 1
