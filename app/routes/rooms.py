"""Live rooms (product.md 5.3, 5.4): create one, drive it, follow it.

- `POST /api/rooms` makes a room and its presenter token.
- `/ws/rooms/{room}?token=T` drives it with the `/ws/run` messages; every `state` and
  `transition` (and explore progress and outcomes) goes to all followers, numbered (`seq`)
  and carrying the dashboard links of the step it leads to.
- `/ws/rooms/{room}` without the token follows: the current state first, then every message
  in order. Anything a follower sends is refused and changes nothing.
- `/live/{room}` is the follower's page and `/live/{room}/qr.svg` the QR code of its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Annotated, Any

import anyio
import anyio.to_thread
import segno
from fastapi import APIRouter, Path, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response

import engine
from app.config import Settings
from app.dashboard import Dashboard, build_dashboard
from app.deps import CatalogDep, ExplorerDep, SettingsDep, TemplatesDep
from app.errors import PageError, error_message, error_page
from app.limits import SharedLimit
from app.rooms import (
    ROOM_ID_PATTERN,
    STORE_DOWN_RETRY_S,
    Broker,
    RoomEnded,
    RoomError,
    RoomGone,
    StoreDown,
    new_room_id,
    new_token,
    token_hash,
    token_matches,
)
from app.runref import RunRef
from app.schemas import ERRORS, RoomCreated, RoomRequest
from app.security import WS_POLICY, same_origin, site_url
from app.service import Catalog, ExploreBusy, Explorer, client_of, resolve_scenario
from app.session import (
    MESSAGE_BURST,
    MESSAGES_PER_S,
    RateLimit,
    RunSession,
    close_on_bug,
    drive,
    known_answer,
)
from app.urls import Urls
from app.wire import encode_off_loop

router = APIRouter()
RoomId = Annotated[str, Path(pattern=ROOM_ID_PATTERN, examples=["k7m2xq9p"])]
FOLLOWER_REFUSED = "only the presenter can drive this room; this connection follows it"
PRESENTER_LEFT = "the presenter has left; this page keeps the last step until they return"
# A follower that keeps sending after being told is closed (policy violation).
FOLLOWER_STRIKES = 20


class FollowerStuck(Exception):
    """A follower whose socket took no message for `follower_send_timeout_s`: it stopped
    reading. It is dropped without a close handshake (which would wait behind the same full
    buffer); the server's socket protocol aborts the connection (app/server.py)."""


def get_broker(conn: Request | WebSocket) -> Broker:
    broker: Broker = conn.app.state.rooms
    return broker


def room_links(
    session: RunSession, urls: Urls, shown: RunRef | None = None, kind: str = ""
) -> dict[str, Any]:
    """The dashboard URLs of where the session stands: followers fetch these frames.

    `shown` is what followers show now (the last published position). A `state` on the same
    schedule on another kernel asks for the A/B frame (`cmp=`, and `switched` names the new
    variant for the followers' log); a `state` on a new schedule, as "Find a bug" gives, asks
    for the frame with `found=1` (the server adds the search's summary when the schedule is
    that exploration's example)."""
    scenario, config = session.scenario, session.config
    if scenario is None or config is None or not session.ref.loaded:
        return {}
    now = session.ref.link(scenario, config)
    links: dict[str, Any] = {"scenario_id": scenario.id}
    extra: dict[str, str | int] = {"live": 1}
    if kind == "state" and shown is not None and shown.scenario == now.scenario:
        # The same schedule, give or take the steps that cannot run on one of the kernels.
        common = min(len(now.schedule), len(shown.schedule))
        kept = now.schedule[:common] == shown.schedule[:common]
        if now.variant and shown.variant and kept and now.variant != shown.variant:
            extra["cmp"] = shown.variant
            links["switched"] = now.variant
        elif session.ref.compare and session.ref.compare != now.variant:
            # The presenter walks the A/B view's differences: followers keep the comparison,
            # at the difference shown.
            extra["cmp"] = session.ref.compare
            extra["diff"] = now.step
    if kind == "state" and "cmp" not in extra and (shown is None or now.schedule != shown.schedule):
        extra["found"] = 1
    return {
        **links,
        "page_url": urls.page(scenario.id, now),
        "frame_url": urls.frame(scenario.id, now, **extra),
        "outcomes_url": urls.outcomes(scenario.id, now, live=1),
    }


def shown_by(session: RunSession) -> RunRef | None:
    """The position a published message leaves followers at (as a link)."""
    if session.scenario is None or session.config is None or not session.ref.loaded:
        return None
    return session.ref.link(session.scenario, session.config)


# What a late joiner needs of the last outcomes message to fetch and announce the chart.
LATE_OUTCOMES = ("outcomes_url", "states", "interleavings")


async def guessing_wait(conn: Request | WebSocket) -> float:
    """Seconds this client must wait before looking up another room (0: it may now)."""
    misses: SharedLimit = conn.app.state.room_misses
    return await misses.blocked(client_of(conn))


def too_many_misses(conn: Request | WebSocket, wait: float) -> str:
    misses: SharedLimit = conn.app.state.room_misses
    return (
        f"too many lookups of rooms that do not exist from this client (at most "
        f"{misses.per_client} per {misses.window_s:g} s); try again in {math.ceil(wait)} s"
    )


async def missed(conn: Request | WebSocket) -> None:
    misses: SharedLimit = conn.app.state.room_misses
    await misses.count(client_of(conn))


def follow_url(request: Request | WebSocket, room: str) -> str:
    settings: Settings = request.app.state.settings
    base = site_url(
        request.scope, str(request.base_url), settings.public_url, settings.allowed_hosts
    )
    return Urls(base).live(room)  # the site's own address (root included) in front


# --- HTTP ------------------------------------------------------------------------------------


@router.post(
    "/api/rooms",
    tags=["api"],
    status_code=201,
    response_model=RoomCreated,
    responses={
        **ERRORS,
        429: {"description": "this client made too many rooms lately (see Retry-After)"},
        503: {"description": "too many live rooms"},
    },
)
async def create_room(body: RoomRequest, request: Request, catalog: CatalogDep) -> JSONResponse:
    """A live room: the presenter token drives it, the follow URL watches it."""
    # Checked first, before any replay: a refused client must cost next to nothing.
    limit: SharedLimit = request.app.state.room_creations
    wait = await limit.retry_after(client_of(request))
    if wait > 0:
        detail = (
            f"too many rooms from this client (at most {limit.per_client} per "
            f"{limit.window_s:g} s); try again in {math.ceil(wait)} s"
        )
        return JSONResponse(
            {"detail": detail, "errors": []},
            status_code=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    snapshot, link = RunRef(), None
    if body.scenario is not None:
        scenario = resolve_scenario(catalog, body.scenario)
        config = engine.make_config(scenario, body.variant, body.kernel, body.fixes)
        engine.run_schedule(scenario, config, body.schedule)  # a bad schedule is a 422 now
        at = len(body.schedule) if body.at is None else min(body.at, len(body.schedule))
        snapshot = RunRef(
            body.scenario, body.variant, body.kernel, body.fixes, tuple(body.schedule), at
        )
        link = (scenario.id, snapshot.link(scenario, config))
    room, token = new_room_id(), new_token()
    try:
        await get_broker(request).create(room, token_hash(token), snapshot)
    except RoomError as err:  # too many rooms, or the store (Redis) is down
        headers = {"Retry-After": str(STORE_DOWN_RETRY_S)} if isinstance(err, StoreDown) else {}
        return JSONResponse({"detail": str(err), "errors": []}, status_code=503, headers=headers)
    present_url = None
    if link is not None:
        # The token rides in the #fragment, which browsers never send to a server or log;
        # present.js moves it into sessionStorage and drops it from the address bar.
        present_url = Urls.of(request).present(*link, room=room, token=token)
    created = RoomCreated(
        room=room,
        presenter_token=token,
        follow_url=follow_url(request, room),
        present_url=present_url,
    )
    return JSONResponse(created.model_dump(), status_code=201)


@router.get("/live/{room}/qr.svg", include_in_schema=False)
async def room_qr(room: RoomId, request: Request) -> Response:
    """The follow URL as a QR code, for the corner of a projected slide."""
    qr = segno.make(follow_url(request, room), error="m")
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=6, border=2, dark="#000000", light="#ffffff", xmldecl=False)
    headers = {"Cache-Control": "max-age=3600"}
    if request.app.state.settings.public_url is None:
        headers["Vary"] = "Host"  # the code holds the Host this request named: cache per Host
    return Response(out.getvalue(), media_type="image/svg+xml", headers=headers)


@router.get("/live/{room}", response_class=HTMLResponse, include_in_schema=False)
async def live_page(
    room: str, request: Request, catalog: CatalogDep, templates: TemplatesDep
) -> Response:
    """The follower's view: the room's current step, rendered on the server, kept in sync."""
    wait = await guessing_wait(request)
    if wait > 0:
        page = error_page(
            request, PageError(429, "Too many unknown rooms", [too_many_misses(request, wait)])
        )
        page.headers["Retry-After"] = str(math.ceil(wait))
        return page
    broker = get_broker(request)
    try:
        record = await broker.get(room) if _valid_room(room) else None
        if record is None:
            await missed(request)
            gone = await broker.missing(room) if _valid_room(room) else None
    except StoreDown as err:
        page = error_page(request, PageError(503, "Live rooms are down", [str(err)]))
        page.headers["Retry-After"] = str(STORE_DOWN_RETRY_S)
        return page
    if record is None:
        gone = gone or RoomGone(room[:40], broker.settings.idle_s)
        return error_page(request, PageError(404, "No such live room", [str(gone)]))
    ctx: dict[str, Any] = {"room": room, "follow_url": follow_url(request, room), "d": None}
    snapshot = record.snapshot

    def render() -> Response:  # a replay and a page render: off the event loop
        if snapshot.loaded:
            try:
                ctx["d"] = _live_dashboard(catalog, snapshot, Urls.of(request))
            except engine.InputError as err:
                ctx["problem"] = str(err)
        response: Response = templates.TemplateResponse(request, "live.html", ctx)
        if request.app.state.settings.public_url is None:
            response.headers["Vary"] = "Host"  # the page shows the follow URL of this Host
        return response

    return await anyio.to_thread.run_sync(render)


def _valid_room(room: str) -> bool:
    return re.fullmatch(ROOM_ID_PATTERN, room) is not None


def _live_dashboard(catalog: Catalog, snapshot: RunRef, urls: Urls) -> Dashboard:
    scenario = resolve_scenario(catalog, snapshot.scenario or "")
    config = engine.make_config(scenario, snapshot.variant, snapshot.kernel, snapshot.fixes)
    return build_dashboard(scenario, snapshot.link(scenario, config), scenario.id, (), urls)


# --- WebSocket -------------------------------------------------------------------------------


class Outbox:
    """One socket's writes, one at a time: a follower's forwarder and its refusals share it."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.lock = asyncio.Lock()

    async def text(self, text: str) -> None:
        async with self.lock:
            await self.websocket.send_text(text)

    async def send(self, message: dict[str, Any]) -> None:
        await self.text(await encode_off_loop(message))


@router.websocket("/ws/rooms/{room}")
async def ws_room(
    websocket: WebSocket,
    room: str,
    catalog: CatalogDep,
    settings: SettingsDep,
    explorer: ExplorerDep,
    token: str | None = None,
) -> None:
    if not same_origin(websocket.headers, settings.public_url):
        await websocket.close(WS_POLICY)  # before accepting: the handshake gets a 403
        return
    await websocket.accept()
    broker = get_broker(websocket)
    out = Outbox(websocket)

    async def refuse(err: RoomError) -> None:
        if isinstance(err, RoomEnded):
            await out.send({"type": "ended", "reason": err.reason, "message": str(err)})
        else:
            await out.send(error_message(str(err), [{"path": "room", "message": str(err)}]))
        # A close reason is at most 123 bytes of UTF-8.
        await websocket.close(err.code, str(err).encode()[:120].decode("utf-8", "ignore"))

    wait = await guessing_wait(websocket)
    if wait > 0:
        await refuse(RoomError(too_many_misses(websocket, wait), 4429))
        return
    try:
        record = await broker.get(room) if _valid_room(room) else None
        if record is None:
            await missed(websocket)
            gone = await broker.missing(room) if _valid_room(room) else None
            await refuse(gone or RoomGone(room[:40], broker.settings.idle_s))
            return
    except StoreDown as err:
        await refuse(err)
        return
    if token is not None and not token_matches(token, record):
        await refuse(RoomError("wrong presenter token for this room", 4403))
        return
    try:
        if token is not None:
            client = client_of(websocket)
            budget = websocket.app.state.replay_budgets.of(client)
            session = RunSession(catalog, settings, explorer, out.send, client, budget)
            await _present(websocket, room, broker, session)
        else:
            await _follow(websocket, room, broker, catalog, settings, explorer, out)
    except (WebSocketDisconnect, FollowerStuck):
        pass
    except RoomError as err:
        with contextlib.suppress(Exception):
            await refuse(err)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await close_on_bug(websocket, out.send, exc)


async def _present(websocket: WebSocket, room: str, broker: Broker, session: RunSession) -> None:
    """The presenter: every command's resulting messages are published to the room."""
    reply = session.send
    urls = Urls.of(websocket)
    publishing = False

    shown: RunRef | None = None  # what followers show: the last published position
    # The outcomes on the projector (review L2): kept in the snapshot for late joiners, for
    # as long as the presenter stays on the scenario and kernel they were explored on.
    explored: tuple[object, Mapping[str, Any]] | None = None

    def snapshot() -> RunRef:
        nonlocal explored
        where = (session.ref.scenario, session.ref.variant, session.ref.kernel)
        if explored is not None and explored[0] != where:
            explored = None
        return replace(session.ref, outcomes=explored[1] if explored else None)

    async def publish(message: dict[str, Any]) -> None:
        nonlocal shown, explored
        if not publishing or message.get("type") == "error":
            await reply(message)  # errors, and the catch-up state, are the presenter's own
            return
        kind = str(message.get("type", ""))
        body = {**message, **room_links(session, urls, shown, kind)}
        if kind == "outcomes" and body.get("outcomes_url"):
            where = (session.ref.scenario, session.ref.variant, session.ref.kernel)
            explored = (where, {key: body.get(key) for key in LATE_OUTCOMES})
        seq = await broker.publish(room, snapshot(), body)
        own: dict[str, str] = {}
        if kind in ("state", "transition"):
            shown = shown_by(session)
            if shown is not None and session.scenario is not None:
                # The presenter's address bar: this step, in presenter mode, in this room.
                own["present_url"] = urls.present(session.scenario.id, shown, room)
        await reply({"seq": seq, **body, **own})

    session.send = publish
    await reply(
        {
            "type": "room",
            "room": room,
            "role": "presenter",
            "follow_url": urls.live(room),  # the page resolves it against its own address
            "qr_url": urls.live_qr(room),
        }
    )
    record = await broker.get(room)
    kept = record.snapshot if record is not None else RunRef()
    if record is not None and record.snapshot.loaded:
        try:
            await session.load(record.snapshot.to_load())
            shown = shown_by(session)  # the room's step, which followers show on joining
        except (engine.InputError, ExploreBusy) as exc:
            await reply(known_answer(exc).message())

    async def left() -> None:
        # Followers are told the presenter went (the room stays: they may come back, and
        # their next step clears the note). The room's step is unchanged.
        message = {"type": "presenter", "connected": False, "message": PRESENTER_LEFT}
        await broker.publish(room, snapshot() if session.ref.loaded else kept, message)

    publishing = True
    try:
        await drive(websocket, session, reply)
    finally:
        with contextlib.suppress(Exception):  # the room may be gone, or the broker down
            await asyncio.shield(left())


async def _follow(
    websocket: WebSocket,
    room: str,
    broker: Broker,
    catalog: Catalog,
    settings: Settings,
    explorer: Explorer,
    out: Outbox,
) -> None:
    """A follower: the current state, then every numbered message after it, in order."""
    urls = Urls.of(websocket)
    if broker.fanout.count(room) >= broker.settings.max_followers:
        raise RoomError(f"this room is full ({broker.settings.max_followers} followers)", 4409)
    async with broker.subscribe(room) as sub:
        # Subscribed first, then the snapshot: nothing published in between is lost, and
        # whatever the snapshot already includes (seq <= seen) is skipped below.
        record = await broker.get(room)
        if record is None:
            raise await broker.ended(room)
        seen = record.seq
        await out.send({"type": "room", "room": room, "role": "follower", "seq": seen})
        if record.snapshot.loaded:
            state: dict[str, Any] = {}

            async def keep(message: dict[str, Any]) -> None:
                state.update(message)

            catch_up = RunSession(catalog, settings, explorer, keep)
            try:
                await catch_up.load(record.snapshot.to_load())
                links = room_links(catch_up, urls, None, "state")
                await out.send({"seq": seen, **state, **links})
                if record.snapshot.outcomes:  # the chart on the projector (review L2)
                    outcomes = {**record.snapshot.outcomes, "type": "outcomes", "seq": seen}
                    await out.send(outcomes)
            except (engine.InputError, ExploreBusy) as exc:
                await out.send(known_answer(exc).message())

        async def forward() -> None:
            nonlocal seen
            while True:
                item = await sub.next()
                if item is None and sub.problem is not None:
                    raise sub.problem  # the store went down: not this follower's fault
                if item is None:
                    raise RoomError("this follower fell too far behind; reload to catch up", 4408)
                seq, text = item
                if seq <= seen:
                    continue
                seen = seq
                try:
                    await asyncio.wait_for(out.text(text), settings.follower_send_timeout_s)
                except TimeoutError:
                    raise FollowerStuck(room) from None

        async def refuse_commands() -> None:
            strikes = 0
            limit = RateLimit(MESSAGES_PER_S, MESSAGE_BURST)
            while True:
                frame = await websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                strikes += 1
                if strikes > FOLLOWER_STRIKES or not limit.allow():
                    raise RoomError(FOLLOWER_REFUSED, 1008)
                refused = [{"path": "type", "message": FOLLOWER_REFUSED}]
                await out.send(error_message(FOLLOWER_REFUSED, refused))

        async def watch() -> None:
            # Nothing is published when a room expires: look, without restarting its timer.
            while True:
                await asyncio.sleep(broker.settings.watch_s)
                if not await broker.exists(room):
                    raise await broker.ended(room)

        # Structured (anyio) tasks: Starlette cancels the connection's scope when the client
        # goes, and all three must end with it. The first one to end ends the others.
        problems: list[Exception] = []
        async with anyio.create_task_group() as group:

            async def guarded(half: Callable[[], Awaitable[None]]) -> None:
                try:
                    await half()
                except (RoomError, FollowerStuck) as err:
                    problems.append(err)
                except WebSocketDisconnect:
                    pass
                finally:
                    group.cancel_scope.cancel()

            group.start_soon(guarded, forward)
            group.start_soon(guarded, refuse_commands)
            group.start_soon(guarded, watch)
        if problems:
            raise problems[0]
