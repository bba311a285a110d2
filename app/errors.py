"""Bad input becomes a 4xx JSON body that names the offending field; never a 500.

Every error body has the same shape (`ErrorResponse`): a one-line `detail` and a list of
`errors`, each with the `path` of the problem and a message that says what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import engine
from app.service import BadInput, UnknownScenario


def error_body(detail: str, errors: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"detail": detail, "errors": list(errors)}


def loc_to_path(loc: Sequence[int | str]) -> str:
    """('body', 'schedule', 3) -> 'schedule[3]'; the 'body' prefix says nothing useful."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def scenario_error_items(err: engine.ScenarioError) -> list[dict[str, Any]]:
    return [{"path": item.path, "message": item.message, "line": item.line} for item in err.errors]


def schedule_error_item(err: engine.ScheduleError) -> dict[str, Any]:
    return {
        "path": f"schedule[{err.index}]",
        "message": str(err),
        "actor": err.actor,
        "enabled": list(err.enabled),
    }


def _validation_message(item: dict[str, Any]) -> str:
    message = str(item.get("msg", "invalid value"))
    ctx = item.get("ctx") or {}
    if item.get("type") == "json_invalid" and "error" in ctx:
        message = f"malformed JSON: {ctx['error']}"
    return message


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [
        {
            # A JSON syntax error's location is a character offset, not a field.
            "path": "body" if item.get("type") == "json_invalid" else loc_to_path(item["loc"]),
            "message": _validation_message(item),
        }
        for item in exc.errors()
    ]
    summary = "; ".join(f"{item['path']}: {item['message']}" for item in items[:3])
    return JSONResponse(error_body(f"invalid request: {summary}", items), status_code=422)


async def on_scenario_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, engine.ScenarioError)
    items = scenario_error_items(exc)
    return JSONResponse(error_body(f"invalid scenario: {exc}", items), status_code=422)


async def on_config_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, engine.ConfigError)
    items = [{"path": str(exc.field), "message": str(exc)}]
    return JSONResponse(error_body(f"invalid configuration: {exc}", items), status_code=422)


async def on_schedule_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, engine.ScheduleError)
    body = error_body(f"invalid schedule: {exc}", [schedule_error_item(exc)])
    return JSONResponse(body, status_code=422)


async def on_unknown_scenario(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownScenario)
    items = [{"path": "scenario", "message": str(exc)}]
    return JSONResponse(error_body(str(exc), items), status_code=404)


async def on_bad_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadInput)
    items = [{"path": exc.path, "message": str(exc)}]
    return JSONResponse(error_body(f"invalid {exc.path}: {exc}", items), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(engine.ScenarioError, on_scenario_error)
    app.add_exception_handler(engine.ConfigError, on_config_error)
    app.add_exception_handler(engine.ScheduleError, on_schedule_error)
    app.add_exception_handler(UnknownScenario, on_unknown_scenario)
    app.add_exception_handler(BadInput, on_bad_input)


class BodySizeLimit:
    """Reject request bodies over `max_bytes` with 413, before any handler parses them.

    The body is read up front (it is small by construction) because FastAPI turns exceptions
    raised while it reads a body into a generic 400, which would hide the real reason.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._reject(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        detail = f"request body larger than {self.max_bytes} bytes"
        body = json.dumps(error_body(detail, [{"path": "body", "message": detail}])).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
