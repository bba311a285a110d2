"""Bad input becomes a 4xx answer that names the offending field; never a 500.

One table (`answer`) says, for every input error of the engine and the app (each derives from
`engine.InputError`) and for a refused exploration, what the user is told: the HTTP status, a
one-line `detail`, the `errors` (each with the `path` of the problem and a message that says
what is allowed), the heading and lines of the HTML error page, and any headers. The HTTP
handlers, the socket's `error` message and the HTML error page all read it. Any other
exception is a bug: logged with its traceback, answered as a 500 (a socket gets the same
message with status 500 and is closed with 1011).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import engine
from app.links import LinkError, LinkScenarioError, LinkTooLarge, NumberTooLong, loads_bounded
from app.security import security_headers
from app.service import CLIENT_GONE, BadInput, ClientGone, ExploreBusy, UnknownScenario

log = logging.getLogger("pagerace.errors")
INTERNAL = "internal error: this is a bug in pagerace, please report it"


def error_body(detail: str, errors: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"detail": detail, "errors": list(errors)}


def error_message(message: str, errors: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """A socket's `error` message (product.md 5.3)."""
    return {"type": "error", "message": message, "errors": list(errors)}


class PageError(engine.InputError):
    """A page that cannot be shown as asked (a bad link, an unknown room): its own heading and
    lines on the HTML error page, never a 500."""

    def __init__(self, status: int, title: str, items: Sequence[str] = ()) -> None:
        super().__init__(title)
        self.status, self.title, self.items = status, title, tuple(items)


class BadMessage(engine.InputError):
    """A socket message that does not validate against the client message models."""

    def __init__(self, err: ValidationError) -> None:
        self.items = [{"path": loc_to_path(e["loc"]), "message": e["msg"]} for e in err.errors()]
        super().__init__(self.items[0]["message"])


@dataclass(frozen=True, slots=True)
class Answer:
    """What a user is told about one error, on every transport."""

    status: int
    detail: str
    errors: tuple[dict[str, Any], ...]
    title: str  # the HTML error page's heading
    items: tuple[str, ...] = ()  # its lines (default: the detail)
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        return error_body(self.detail, self.errors)

    def message(self) -> dict[str, Any]:
        """The socket's `error` message: the HTTP detail and errors, and the status when it is
        not the usual 422 (a refused exploration's 503/429 with `retry_after`, a bug's 500)."""
        out = error_message(self.detail, self.errors)
        if self.status not in (400, 404, 422):
            out["status"] = self.status
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out

    def lines(self) -> tuple[str, ...]:
        return self.items or (self.detail,)


E = TypeVar("E", bound=BaseException)
_TABLE: dict[type[BaseException], Callable[[Any], Answer]] = {}


def _answers(kind: type[E]) -> Callable[[Callable[[E], Answer]], Callable[[E], Answer]]:
    def register(fn: Callable[[E], Answer]) -> Callable[[E], Answer]:
        _TABLE[kind] = fn
        return fn

    return register


def answer(exc: BaseException) -> Answer | None:
    """The table's answer for `exc` (its most specific class listed), None when it is not an
    input error or a refusal: a bug."""
    for kind in type(exc).__mro__:
        fn = _TABLE.get(kind)
        if fn is not None:
            return fn(exc)
    return None


def internal_error() -> Answer:
    return Answer(500, INTERNAL, (), "Something went wrong")


def answer_or_log(exc: BaseException, where: str) -> Answer:
    """`answer(exc)`, or, for a bug, a log line with the traceback and the 500 answer."""
    known = answer(exc)
    if known is not None:
        return known
    log.error("unexpected error in %s", where, exc_info=exc)
    return internal_error()


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


@_answers(engine.ScenarioError)
def _scenario(exc: engine.ScenarioError) -> Answer:
    items = scenario_error_items(exc)
    lines = tuple(f"{i['path']}: {i['message']}" for i in items)
    title = "This scenario is not valid"
    return Answer(422, f"invalid scenario: {exc}", tuple(items), title, lines)


@_answers(engine.ConfigError)
def _config(exc: engine.ConfigError) -> Answer:
    items = ({"path": str(exc.field), "message": str(exc)},)
    return Answer(422, f"invalid configuration: {exc}", items, "This kernel is not valid")


@_answers(engine.ScheduleError)
def _schedule(exc: engine.ScheduleError) -> Answer:
    items = (schedule_error_item(exc),)
    return Answer(422, f"invalid schedule: {exc}", items, "This schedule cannot run")


@_answers(engine.SetupError)
def _setup(exc: engine.SetupError) -> Answer:
    # A setup that cannot run on its own (a blocked setup op) is the scenario's fault.
    items = ({"path": "setup", "message": str(exc)},)
    return Answer(422, f"invalid scenario: {exc}", items, "This scenario is not valid")


@_answers(UnknownScenario)
def _unknown(exc: UnknownScenario) -> Answer:
    items = ({"path": "scenario", "message": str(exc)},)
    return Answer(404, str(exc), items, f"No scenario called “{exc.scenario_id}”")


@_answers(BadInput)
def _bad_input(exc: BadInput) -> Answer:
    items = ({"path": exc.path, "message": str(exc)},)
    return Answer(422, f"invalid {exc.path}: {exc}", items, "This request is not valid")


@_answers(BadMessage)
def _bad_message(exc: BadMessage) -> Answer:
    return Answer(422, f"invalid message: {exc}", tuple(exc.items), "This message is not valid")


@_answers(NumberTooLong)
def _number(exc: NumberTooLong) -> Answer:
    items = ({"path": exc.path, "message": str(exc)},)
    return Answer(422, f"invalid {exc.path}: {exc}", items, "This request is not valid")


@_answers(LinkError)
def _link(exc: LinkError) -> Answer:
    hint = (
        "s: the scenario text in this link is incomplete or damaged; the link was probably "
        "cut or wrapped by a mail client: copy the whole link (it is one line) and try again"
    )
    items = ({"path": "s", "message": str(exc)},)
    title = "This link's custom scenario cannot be read"
    return Answer(400, f"invalid s: {exc}", items, title, (hint, f"s: {exc}"))


@_answers(LinkTooLarge)
def _link_too_large(exc: LinkTooLarge) -> Answer:
    items = ({"path": "s", "message": str(exc)},)
    title = "This link's custom scenario is too large"
    return Answer(422, f"invalid s: {exc}", items, title, (f"s: {exc}",))


@_answers(LinkScenarioError)
def _link_scenario(exc: LinkScenarioError) -> Answer:
    err = exc.scenario_error
    items = scenario_error_items(err)
    lines = tuple(f"{item.path}: {item.message}" for item in err.errors) or (str(err),)
    title = "This link's custom scenario is not valid"
    return Answer(400, f"invalid s: {err}", tuple(items), title, lines)


@_answers(engine.InputError)
def _input(exc: engine.InputError) -> Answer:
    return Answer(422, str(exc), (), "This request is not valid")


@_answers(PageError)
def _page(exc: PageError) -> Answer:
    return Answer(exc.status, exc.title, (), exc.title, exc.items)


@_answers(ExploreBusy)
def _busy(exc: ExploreBusy) -> Answer:
    """No room for another exploration: 503 (queue full) or 429 (this client's share), with
    Retry-After."""
    items = ({"path": "explore", "message": str(exc)},)
    headers = {"Retry-After": str(exc.retry_after_s)}
    title = "Too many explorations right now"
    return Answer(exc.status, str(exc), items, title, (), headers, exc.retry_after_s)


def error_page(request: Request, exc: BaseException) -> Response:
    """The HTML error page for an input error met while making a page (whatever the client
    accepts: the URL was a page's)."""
    known = answer_or_log(exc, request.url.path)
    response = html_error(request, known.status, known.title, known.lines())
    response.headers.update(known.headers)
    return response


def respond(request: Request, known: Answer) -> Response:
    """The answer as a page for a browser that followed a link, JSON for the API and htmx."""
    if wants_html(request):
        response = html_error(request, known.status, known.title, known.lines())
    else:
        response = JSONResponse(known.body(), known.status)
    response.headers.update(known.headers)
    return response


async def on_input_error(request: Request, exc: Exception) -> Response:
    known = answer(exc)
    assert known is not None  # registered for InputError and ExploreBusy only
    return respond(request, known)


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
    """A bug: a plain message, never a traceback (uvicorn logs that). This handler runs outside
    every middleware, so it adds the security headers itself."""
    response = respond(request, internal_error())
    security_headers(response.headers)
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_server_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(engine.InputError, on_input_error)
    app.add_exception_handler(ExploreBusy, on_input_error)
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
