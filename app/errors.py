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
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import engine
from app.links import NumberTooLong, loads_bounded
from app.security import security_headers
from app.service import CLIENT_GONE, BadInput, ClientGone, ExploreBusy, UnknownScenario


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
    # Paths are inside the scenario document; its root is the request's `scenario`.
    return [
        {"path": item.path or "scenario", "message": item.message, "line": item.line}
        for item in err.errors
    ]


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


# Deepest JSON body accepted. Python's own parser gives up near 1000 levels on 3.11 (RecursionError,
# answered as a body error below) but not on 3.12+, whose C scanner has its own, larger limit, so
# a 5000-deep body parses there and fails validation field by field (`scenario.str`, ...). A fixed
# bound, well below either and far above any real document, names the body on every version.
MAX_JSON_DEPTH = 200
NESTED_TOO_DEEPLY = "the JSON body is nested too deeply"


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (the value may be thousands deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                break  # deep enough to refuse; no need to walk the rest
            stack.extend((child, depth + 1) for child in item)
    return deepest


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if json_depth(exc.body) > MAX_JSON_DEPTH:
        items = [{"path": "body", "message": NESTED_TOO_DEEPLY}]
        return JSONResponse(error_body(f"invalid request: body: {NESTED_TOO_DEEPLY}", items), 422)
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


async def on_setup_error(request: Request, exc: Exception) -> JSONResponse:
    # A setup that cannot run on its own (a blocked setup op) is the scenario's fault.
    items = [{"path": "setup", "message": str(exc)}]
    return JSONResponse(error_body(f"invalid scenario: {exc}", items), status_code=422)


async def on_unknown_scenario(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownScenario)
    items = [{"path": "scenario", "message": str(exc)}]
    return JSONResponse(error_body(str(exc), items), status_code=404)


async def on_bad_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadInput)
    items = [{"path": exc.path, "message": str(exc)}]
    return JSONResponse(error_body(f"invalid {exc.path}: {exc}", items), status_code=422)


async def on_explore_busy(request: Request, exc: Exception) -> Response:
    """No room for another exploration: 503 (queue full) or 429 (this client's share), with
    Retry-After; a page for a browser that followed a link, JSON for the API and htmx."""
    assert isinstance(exc, ExploreBusy)
    headers = {"Retry-After": str(exc.retry_after_s)}
    if wants_html(request):
        response = html_error(request, exc.status, "Too many explorations right now", [str(exc)])
        response.headers.update(headers)
        return response
    items = [{"path": "explore", "message": str(exc)}]
    return JSONResponse(error_body(str(exc), items), exc.status, headers=headers)


async def on_client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=CLIENT_GONE)


def wants_html(request: Request) -> bool:
    """A page request (a browser), not an API call: errors are shown as an HTML page."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def html_error(request: Request, status: int, title: str, items: Sequence[str] = ()) -> Response:
    templates = request.app.state.templates
    ctx = {"title": title, "items": list(items), "status": status}
    response: Response = templates.TemplateResponse(request, "error.html", ctx, status_code=status)
    return response


BODY_KEY = "pagerace.body"  # the request body, kept in the scope by BodySizeLimit


def _unparsable_body(exc: HTTPException, request: Request) -> tuple[str, str] | None:
    """Why FastAPI could not read a body it calls 'an error parsing the body' (a 400), and
    where in the body: (path, message)."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    message = _unparsable_message(cause)
    if message is None:
        return None
    body = request.scope.get(BODY_KEY)
    if isinstance(cause, ValueError) and "digits" in str(cause) and isinstance(body, bytes):
        try:
            loads_bounded(body)
        except NumberTooLong as err:
            return err.path, str(err)
        except ValueError:
            pass
    return "body", message


def _unparsable_message(cause: BaseException) -> str | None:
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not UTF-8 text"
    if isinstance(cause, RecursionError):
        return NESTED_TOO_DEEPLY
    if isinstance(cause, ValueError):
        if "digits" in str(cause):  # Python reads at most 4300 digits into an int
            return "a number in the JSON body has too many digits"
        return "the JSON body cannot be read"
    return None


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Framework errors (404, 405, unreadable bodies) in the same shape as every other error."""
    assert isinstance(exc, HTTPException)
    problem = _unparsable_body(exc, request)
    if problem is not None:
        path, message = problem
        items = [{"path": path, "message": message}]
        return JSONResponse(error_body(f"invalid request: {path}: {message}", items), 422)
    detail = str(exc.detail)
    if wants_html(request):
        return html_error(request, exc.status_code, detail)
    return JSONResponse(error_body(detail), exc.status_code, headers=exc.headers)


async def on_server_error(request: Request, exc: Exception) -> Response:
    """A bug: a plain message, never a traceback. This handler runs outside every middleware,
    so it adds the security headers itself."""
    detail = "internal error: this is a bug in pagerace, please report it"
    if wants_html(request):
        response = html_error(request, 500, "Something went wrong", [detail])
    else:
        response = JSONResponse(error_body(detail), 500)
    security_headers(response.headers)
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_server_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(engine.ScenarioError, on_scenario_error)
    app.add_exception_handler(engine.ConfigError, on_config_error)
    app.add_exception_handler(engine.ScheduleError, on_schedule_error)
    app.add_exception_handler(engine.SetupError, on_setup_error)
    app.add_exception_handler(UnknownScenario, on_unknown_scenario)
    app.add_exception_handler(BadInput, on_bad_input)
    app.add_exception_handler(ExploreBusy, on_explore_busy)
    app.add_exception_handler(ClientGone, on_client_gone)


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

        scope[BODY_KEY] = b"".join(m.get("body", b"") for m in messages)  # for error reports

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        detail = f"request body larger than {self.max_bytes} bytes"
        body = json.dumps(error_body(detail, [{"path": "body", "message": detail}])).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
