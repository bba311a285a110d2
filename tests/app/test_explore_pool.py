"""Explorations in worker processes (issue 14 item 5, issue 17 item 4).

Same results as in process; a bounded queue and a per-client share, refused with 503 / 429 and
Retry-After on every transport that starts one; a cancelled search frees its slot; progress
still streams over the socket; a worker that dies is replaced.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

import engine
from app import explore_pool
from app.config import Settings
from app.editor import STARTER
from app.explore_pool import Job
from app.links import encode_doc
from app.main import create_app
from app.service import Explorer
from scripts.bench_engine import family

BIG = family(5)  # 7.8M states: runs until its time limit or its cancel
SMALL = "madv-free-vs-dio"


@pytest.fixture
def make_app(catalog: Mapping[str, engine.Scenario]) -> Iterator[Callable[..., FastAPI]]:
    """Apps with the given explore limits; their worker processes are stopped afterwards."""
    made: list[FastAPI] = []

    def make(**limits: Any) -> FastAPI:
        defaults: dict[str, Any] = {"explore_time_limit_s": 60.0, "max_states": 10_000_000}
        app = create_app(catalog, replace(Settings(), **{**defaults, **limits}))
        made.append(app)
        return app

    yield make
    for app in made:
        app.state.explorer.close()


def explorer_of(app: FastAPI) -> Explorer:
    explorer: Explorer = app.state.explorer
    return explorer


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def as_client(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, client=(address, 50000))


@contextmanager
def exploring(app: FastAPI, address: str) -> Iterator[WebSocketTestSession]:
    """A socket from `address` whose long search holds one slot until the block ends (the
    socket then closes, which cancels it)."""
    explorer = explorer_of(app)
    before = explorer.pool.busy
    with as_client(app, address).websocket_connect("/ws/run") as ws:
        ws.send_json({"type": "load", "scenario": BIG})
        assert ws.receive_json()["type"] == "state"
        ws.send_json({"type": "explore"})
        wait_for(lambda: explorer.pool.busy > before, "the search to start")
        yield ws


def idle(app: FastAPI) -> None:
    explorer = explorer_of(app)
    wait_for(lambda: explorer.in_flight == 0 and explorer.pool.busy == 0, "the slots to free")


# --- same results --------------------------------------------------------------------------


def test_results_are_those_of_the_search_in_process(
    make_app: Callable[..., FastAPI], catalog: Mapping[str, engine.Scenario]
) -> None:
    app = make_app(explore_time_limit_s=30.0, max_states=200_000)
    client = TestClient(app)
    for scenario in catalog.values():
        config = engine.make_config(scenario)
        expected = engine.exploration_to_json(engine.explore(scenario, config))
        response = client.post("/api/explore", json={"scenario": scenario.id})
        assert response.status_code == 200, response.text
        got = response.json()
        expected.pop("elapsed_ms", None), got.pop("elapsed_ms", None)
        assert got == expected, scenario.id
    # ... and they came from another process: the server's own is not the one that searched.
    workers = explorer_of(app).pool._idle
    assert workers and all(w.process.pid != os.getpid() for w in workers)


def test_engine_errors_cross_back_as_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error the engine raises in the worker is raised again in the server, as it would
    have been in process (handlers turn it into a 4xx); one that cannot be pickled still says
    what it was."""
    ours, theirs = socket.socketpair()
    server, worker = Connection(ours.detach()), Connection(theirs.detach())

    class Unpicklable(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}/{b}")

    for raised in (engine.SetupError("setup x is blocked: y"), Unpicklable(1, 2)):

        def explode(*args: Any, exc: Exception = raised, **kwargs: Any) -> engine.Exploration:
            raise exc

        monkeypatch.setattr(engine, "explore", explode)
        job = Job(engine.load_catalog()[SMALL], None, 1, 1.0, False)  # type: ignore[arg-type]
        explore_pool._serve(worker, 7, job)
        kind, number, error = server.recv()
        assert (kind, number) == ("error", 7)
        assert type(error).__name__ == (
            "SetupError" if isinstance(raised, engine.SetupError) else "RuntimeError"
        )
        assert "blocked" in str(error) or str(error) == "Unpicklable: 1/2"
    server.close(), worker.close()


# --- a bounded queue -----------------------------------------------------------------------


def test_a_full_queue_is_503_with_retry_after_on_every_transport(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(explore_workers=1, explore_queue=0, explore_per_client=5)
    other = as_client(app, "10.0.0.2")
    with exploring(app, "10.0.0.1"):
        api = other.post("/api/explore", json={"scenario": SMALL, "variant": "fixed"})
        assert api.status_code == 503, api.text
        assert int(api.headers["retry-after"]) >= 1
        body = api.json()
        assert "busy" in body["detail"] and body["errors"][0]["path"] == "explore"

        link = f"/s/growth-5?s={encode_doc(family(4))}"
        for fragment in ("outcomes", "find-bug"):
            # htmx asks for the fragment: JSON, which the page shows as a message
            frag = other.get(f"{link.replace('?', '/' + fragment + '?')}")
            assert frag.status_code == 503, frag.text
            assert "retry-after" in frag.headers and "busy" in frag.json()["detail"]
        # A browser that followed the link itself (no JavaScript) gets a page.
        page = other.get(link.replace("?", "/find-bug?"), headers={"accept": "text/html"})
        assert page.status_code == 503 and "retry-after" in page.headers
        assert "text/html" in page.headers["content-type"] and "busy" in page.text

        # The editor: its htmx fragment (JSON, shown by editor.js), and the form without JS.
        edited = other.post("/edit/explore", data={"text": STARTER, "v": "buggy"})
        assert edited.status_code == 503 and "busy" in edited.json()["detail"]
        assert "retry-after" in edited.headers
        posted = other.post(
            "/edit",
            data={"text": STARTER, "v": "buggy", "do": "explore"},
            headers={"accept": "text/html"},
        )
        assert posted.status_code == 503 and "busy" in posted.text

        with other.websocket_connect("/ws/run") as ws:
            ws.send_json({"type": "load", "scenario": SMALL, "variant": "fixed"})
            assert ws.receive_json()["type"] == "state"
            ws.send_json({"type": "explore"})
            refused = ws.receive_json()
            assert refused["type"] == "error", refused
            assert refused["status"] == 503 and refused["retry_after"] >= 1
            assert "busy" in refused["message"]
            ws.send_json({"type": "pause"})  # the socket is still usable
            assert ws.receive_json()["type"] == "state"
    idle(app)
    # Room again once the search has gone: nothing was left counted.
    api = other.post("/api/explore", json={"scenario": SMALL, "variant": "fixed"})
    assert api.status_code == 200


def test_a_room_presenter_is_told_and_the_followers_see_nothing(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(explore_workers=1, explore_queue=0)
    presenter_client = as_client(app, "10.0.0.2")
    room = presenter_client.post("/api/rooms", json={"scenario": SMALL}).json()
    path = f"/ws/rooms/{room['room']}"
    with (
        exploring(app, "10.0.0.1"),
        presenter_client.websocket_connect(f"{path}?token={room['presenter_token']}") as ws,
    ):
        assert ws.receive_json()["type"] == "room"
        assert ws.receive_json()["type"] == "state"  # the room's catch-up
        ws.send_json({"type": "explore"})
        refused = ws.receive_json()
        assert refused["type"] == "error" and refused["status"] == 503, refused
        assert "seq" not in refused  # the presenter's own, never published to followers
    idle(app)


def test_the_queue_holds_searches_until_a_slot_frees(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(explore_workers=1, explore_queue=1, explore_per_client=5)
    explorer = explorer_of(app)
    with exploring(app, "10.0.0.1"), exploring_queued(app, "10.0.0.2") as waiting:
        assert explorer.in_flight == 2 and explorer.pool.waiting == 1
        third = as_client(app, "10.0.0.3").post("/api/explore", json={"scenario": SMALL})
        assert third.status_code == 503
        assert waiting  # still connected, still queued
    idle(app)


@contextmanager
def exploring_queued(app: FastAPI, address: str) -> Iterator[WebSocketTestSession]:
    explorer = explorer_of(app)
    with as_client(app, address).websocket_connect("/ws/run") as ws:
        ws.send_json({"type": "load", "scenario": SMALL, "variant": "fixed"})
        assert ws.receive_json()["type"] == "state"
        ws.send_json({"type": "explore"})
        wait_for(lambda: explorer.pool.waiting == 1, "the search to queue")
        yield ws


def test_a_search_cancelled_while_queued_never_runs(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(explore_workers=1, explore_queue=4)
    explorer = explorer_of(app)
    with exploring(app, "10.0.0.1"):
        with exploring_queued(app, "10.0.0.2"):
            pass  # its socket closes while it waits
        wait_for(lambda: explorer.pool.waiting == 0, "the queued search to leave")
        assert explorer.in_flight == 1  # only the running one
    idle(app)
    assert not explorer._cache  # neither search ran to its end


# --- a per-client share --------------------------------------------------------------------


def test_a_client_past_its_share_is_429_others_are_served(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(explore_workers=2, explore_queue=8, explore_per_client=1)
    with exploring(app, "10.0.0.1"):
        again = as_client(app, "10.0.0.1").post("/api/explore", json={"scenario": SMALL})
        assert again.status_code == 429, again.text
        assert int(again.headers["retry-after"]) >= 1
        assert "at most 1" in again.json()["detail"]
        other = as_client(app, "10.0.0.2").post("/api/explore", json={"scenario": SMALL})
        assert other.status_code == 200, other.text
        # A cached result costs no search: it is served even past the share.
        cached = as_client(app, "10.0.0.1").post("/api/explore", json={"scenario": SMALL})
        assert cached.status_code == 200
    idle(app)


# --- cancellation ----------------------------------------------------------------------------


def test_cancelling_stops_the_worker_job_and_frees_the_slot(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(explore_workers=1, explore_queue=0, explore_per_client=1)
    explorer = explorer_of(app)
    with exploring(app, "10.0.0.1") as ws:
        pool = explorer.pool
        ws.send_json({"type": "pause"})  # any command stops the running search
        assert ws.receive_json()["type"] == "state"
        began = time.monotonic()
        idle(app)
        assert time.monotonic() - began < explore_pool.GRACE_S  # stopped, not killed
        pids = [w.process.pid for w in pool._idle]
        # The same worker answers the next search: it stopped its job, it was not killed.
        ws.send_json({"type": "load", "scenario": SMALL, "variant": "fixed"})
        assert ws.receive_json()["type"] == "state"
        ws.send_json({"type": "explore"})
        assert ws.receive_json()["type"] == "outcomes"
        assert [w.process.pid for w in pool._idle] == pids


def test_progress_streams_from_the_worker(make_app: Callable[..., FastAPI]) -> None:
    """Progress arrives while the search runs, in the socket's message shape, whatever the
    machine's speed (a report per REPORT_EVERY states, at most one per 0.1 s)."""
    app = make_app()
    with TestClient(app).websocket_connect("/ws/run") as ws:
        ws.send_json({"type": "load", "scenario": BIG})
        assert ws.receive_json()["type"] == "state"
        ws.send_json({"type": "explore"})
        progress = [ws.receive_json() for _ in range(3)]
        ws.send_json({"type": "pause"})  # the search is still running: stop it
        while (message := ws.receive_json())["type"] == "progress":
            pass  # sent before the pause was read
        assert message["type"] == "state"
    assert all(set(p) == {"type", "states", "transitions"} for p in progress), progress
    assert all(p["type"] == "progress" for p in progress)
    states = [p["states"] for p in progress]
    assert states == sorted(states) and states[0] > 0
    idle(app)


def test_workers_run_below_the_server_in_the_scheduler(make_app: Callable[..., FastAPI]) -> None:
    """Two searches on a 2-core machine would otherwise take as much CPU as the server."""
    app = make_app()
    assert TestClient(app).post("/api/explore", json={"scenario": SMALL}).status_code == 200
    (worker,) = explorer_of(app).pool._idle
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, worker.process.pid) == min(19, mine + 10)


def test_ctrl_c_is_left_to_the_server(make_app: Callable[..., FastAPI]) -> None:
    """A terminal's Ctrl-C reaches the worker too: it must not die (with a traceback) before
    the server has stopped it."""
    app = make_app()
    client = TestClient(app)
    assert client.post("/api/explore", json={"scenario": SMALL}).status_code == 200
    (worker,) = explorer_of(app).pool._idle
    os.kill(worker.process.pid, signal.SIGINT)
    time.sleep(0.3)
    assert worker.alive
    fixed = client.post("/api/explore", json={"scenario": SMALL, "variant": "fixed"})
    assert fixed.status_code == 200
    assert explorer_of(app).pool._idle == [worker]


def test_one_client_never_holds_every_worker_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for workers, share in (("1", 1), ("2", 1), ("4", 3)):
        monkeypatch.setenv("PAGERACE_EXPLORE_WORKERS", workers)
        assert Settings.from_env().explore_per_client == share
    monkeypatch.setenv("PAGERACE_EXPLORE_PER_CLIENT", "3")
    assert Settings.from_env().explore_per_client == 3


# --- a worker that dies --------------------------------------------------------------------


def test_a_killed_worker_is_a_503_and_is_replaced(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(explore_workers=1)
    explorer = explorer_of(app)
    client = TestClient(app)
    assert client.post("/api/explore", json={"scenario": SMALL}).status_code == 200
    (worker,) = explorer.pool._idle
    with exploring(app, "10.0.0.1") as ws:
        os.kill(worker.process.pid, signal.SIGKILL)
        refused = ws.receive_json()
        assert refused["type"] == "error" and refused["status"] == 503, refused
        assert "killed by signal 9" in refused["message"]
    idle(app)
    fixed = client.post("/api/explore", json={"scenario": SMALL, "variant": "fixed"})
    assert fixed.status_code == 200
    (fresh,) = explorer.pool._idle
    assert fresh.process.pid != worker.process.pid
    # Over HTTP too: a 503 that says what happened, not a 500.
    (worker,) = explorer.pool._idle
    with ThreadPoolExecutor(1) as background:
        asked = background.submit(client.post, "/api/explore", json={"scenario": BIG})
        wait_for(lambda: explorer.pool.busy == 1, "the search to start")
        time.sleep(0.2)
        os.kill(worker.process.pid, signal.SIGKILL)
        lost = asked.result(timeout=10)
    assert lost.status_code == 503, lost.text
    assert "killed by signal 9" in lost.json()["detail"] and "retry-after" in lost.headers
    idle(app)


def test_the_api_documents_the_refusals(make_app: Callable[..., FastAPI]) -> None:
    """Schema-driven clients (and schemathesis' conformance check) expect 429 and 503 here."""
    responses = make_app().openapi()["paths"]["/api/explore"]["post"]["responses"]
    assert {"429", "503"} <= set(responses)
    assert "Retry-After" in responses["503"]["description"]
