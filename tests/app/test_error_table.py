"""One error table (issue 10 item 5): every input error answers the same on every transport,
and a bug inside a step reaches the logs and answers as a server error everywhere."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import app.errors
import app.links
import app.service
import engine
from app.errors import INTERNAL, answer

SEED = "madv-free-vs-dio"


def input_error_classes() -> list[type[engine.InputError]]:
    """Every InputError subclass the engine and the app define."""
    found: list[type[engine.InputError]] = []
    stack: list[type[engine.InputError]] = [engine.InputError]
    while stack:
        kind = stack.pop()
        found.append(kind)
        stack.extend(kind.__subclasses__())
    return [k for k in found if k.__module__.split(".")[0] in {"engine", "app"}]


def test_every_app_input_error_is_an_engine_input_error() -> None:
    for module in (app.errors, app.links, app.service):
        for _, kind in inspect.getmembers(module, inspect.isclass):
            if kind.__module__ == module.__name__ and issubclass(kind, ValueError | LookupError):
                assert issubclass(kind, engine.InputError), kind


def test_every_input_error_class_has_an_answer() -> None:
    names = {k.__name__ for k in input_error_classes()}
    assert {"ScenarioError", "ConfigError", "ScheduleError", "SetupError"} <= names
    assert {"UnknownScenario", "BadInput", "LinkError", "BadMessage", "PageError"} <= names
    assert answer(KeyError("x")) is None  # a bug is not in the table
    assert answer(ValueError("x")) is None


def test_socket_and_http_say_the_same(client: TestClient) -> None:
    """The same bad schedule: the socket's message is the API's detail, and its errors too."""
    body = {"scenario": SEED, "schedule": ["nobody"]}
    http = client.post("/api/run", json=body)
    assert http.status_code == 422
    with client.websocket_connect("/ws/run") as ws:
        ws.send_json({"type": "load", **body})
        message = ws.receive_json()
    assert message["type"] == "error"
    assert message["message"] == http.json()["detail"]
    assert message["errors"] == http.json()["errors"]
    assert message["message"].startswith("invalid schedule: ")


def test_bad_kernel_says_the_same_on_both(client: TestClient) -> None:
    body = {"scenario": SEED, "kernel": "1.0"}
    http = client.post("/api/run", json=body)
    with client.websocket_connect("/ws/run") as ws:
        ws.send_json({"type": "load", **body})
        message = ws.receive_json()
    assert http.status_code == 422
    assert message["message"] == http.json()["detail"]


def boom(*args: Any, **kwargs: Any) -> Any:
    raise KeyError("a bug inside a step")


def test_a_bug_in_a_socket_is_logged_and_a_server_error(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engine, "run_schedule", boom)
    with (
        caplog.at_level(logging.ERROR, logger="pagerace.errors"),
        client.websocket_connect("/ws/run") as ws,
    ):
        ws.send_json({"type": "load", "scenario": SEED})
        message = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert message == {"type": "error", "message": INTERNAL, "errors": [], "status": 500}
    assert closed.value.code == 1011
    assert any("a bug inside a step" in (r.exc_text or "") for r in caplog.records)


def test_a_bug_in_an_http_request_is_a_500(monkeypatch: pytest.MonkeyPatch, app: Any) -> None:
    monkeypatch.setattr(engine, "run_schedule", boom)
    client = TestClient(app, raise_server_exceptions=False)
    response = client.post("/api/diagram", json={"scenario": SEED})
    assert response.status_code == 500
    assert response.json()["detail"] == INTERNAL


def test_a_link_error_is_its_page(client: TestClient) -> None:
    page = client.get(f"/s/{SEED}?s=AAAA", headers={"accept": "text/html"})
    assert page.status_code == 400
    assert "cannot be read" in page.text
    # The same page whatever the client accepts: the URL was a page's.
    assert client.get(f"/s/{SEED}?s=AAAA").status_code == 400
