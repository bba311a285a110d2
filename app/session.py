"""One client's run over a WebSocket (product.md 5.3), shared by /ws/run and live rooms.

The client sends `{type: load|step|back|goto|play|pause|explore}`; the session answers through
its `send` callback with `{type: transition|state|progress|outcomes|error}`. Play and explore
are background jobs so that `pause` (or any new command) can stop them; exploring runs in a
worker process (app/explore_pool.py) and is cancelled with the job. An explore refused for lack
of room is an `error` with the HTTP status it would have had and `retry_after` seconds.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any

from pydantic import ValidationError
from starlette.websockets import WebSocket

import engine
from app.config import MIN_PLAY_DELAY_MS, Settings
from app.errors import loc_to_path, scenario_error_items, schedule_error_item
from app.links import NumberTooLong, loads_bounded, step_schedule
from app.schemas import (
    CLIENT_MESSAGE,
    BackMessage,
    ClientMessage,
    ExploreMessage,
    GotoMessage,
    LoadMessage,
    PauseMessage,
    PlayMessage,
    StepMessage,
)
from app.service import (
    BadInput,
    Catalog,
    ExploreBusy,
    Explorer,
    UnknownScenario,
    resolve_scenario,
)

Send = Callable[[dict[str, Any]], Awaitable[None]]
PROGRESS_EVERY_S = 0.1
# What one socket may send: bursts for quick key presses, but not a flood.
MESSAGES_PER_S = 20.0
MESSAGE_BURST = 40


def error_message(message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "error", "message": message, "errors": errors or []}


def describe(exc: Exception) -> dict[str, Any]:
    """The error message for an exception raised by a command; paths name the bad field."""
    if isinstance(exc, ValidationError):
        items = [{"path": loc_to_path(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return error_message("invalid message: " + items[0]["message"], items)
    if isinstance(exc, engine.ScenarioError):
        return error_message(f"invalid scenario: {exc}", scenario_error_items(exc))
    if isinstance(exc, engine.ScheduleError):
        return error_message(str(exc), [schedule_error_item(exc)])
    if isinstance(exc, engine.ConfigError):
        return error_message(str(exc), [{"path": str(exc.field), "message": str(exc)}])
    if isinstance(exc, UnknownScenario):
        return error_message(str(exc), [{"path": "scenario", "message": str(exc)}])
    if isinstance(exc, BadInput):
        return error_message(str(exc), [{"path": exc.path, "message": str(exc)}])
    if isinstance(exc, ExploreBusy):  # what HTTP says with 503/429 and Retry-After
        busy = error_message(str(exc), [{"path": "type", "message": str(exc)}])
        return {**busy, "status": exc.status, "retry_after": exc.retry_after_s}
    return error_message(str(exc))


class RunSession:
    """One client's run: a scenario, a configuration, a schedule and a cursor into it."""

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        explorer: Explorer,
        send: Send,
        client: str = "",
    ) -> None:
        self.catalog, self.settings, self.explorer, self.send = catalog, settings, explorer, send
        self.client = client  # the socket's address: explorations are limited per client
        self.scenario: engine.Scenario | None = None
        self.config: engine.Config | None = None
        self.source: LoadMessage | None = None  # the load that set scenario and config
        self.schedule: list[str] = []
        self.at = 0
        self.job: asyncio.Task[None] | None = None
        self.cancelled = threading.Event()

    # --- helpers ---------------------------------------------------------------------------

    def _loaded(self) -> tuple[engine.Scenario, engine.Config]:
        if self.scenario is None or self.config is None:
            raise BadInput("type", "send a 'load' message first")
        return self.scenario, self.config

    def _run(self, upto: int) -> engine.Run:
        scenario, config = self._loaded()
        return engine.run_schedule(scenario, config, self.schedule[:upto])

    def _state(self) -> dict[str, Any]:
        scenario, _ = self._loaded()
        body = engine.run_to_json(self._run(self.at), scenario)
        return {"type": "state", "at": self.at, "schedule": list(self.schedule), **body}

    def _transition(self, run: engine.Run) -> dict[str, Any]:
        scenario, _ = self._loaded()
        body = engine.run_to_json(run, scenario)
        step = body["steps"][-1]
        return {
            "type": "transition",
            **step,
            "at": self.at,
            "schedule": list(self.schedule),
            "enabled": body["enabled"],
            "finished": body["finished"],
            "violations": body["violations"],
            "actors": body.get("actors"),
        }

    async def stop_job(self) -> None:
        if self.job is not None and not self.job.done():
            self.cancelled.set()
            self.job.cancel()
            with suppress(asyncio.CancelledError):
                await self.job
        self.job = None

    # --- commands --------------------------------------------------------------------------

    async def handle(self, message: ClientMessage) -> None:
        await self.stop_job()
        if isinstance(message, LoadMessage):
            await self.load(message)
        elif isinstance(message, StepMessage):
            await self.step(message.actor)
        elif isinstance(message, BackMessage):
            await self.goto(max(self.at - 1, 0))
        elif isinstance(message, GotoMessage):
            await self.goto(message.index)
        elif isinstance(message, PlayMessage):
            self._loaded()
            delay = self.settings.play_delay_ms if message.delay_ms is None else message.delay_ms
            delay = max(delay, MIN_PLAY_DELAY_MS)  # a floor: see MIN_PLAY_DELAY_MS
            self._start(self.play(delay / 1000))
        elif isinstance(message, ExploreMessage):
            self._loaded()
            self._start(self.explore(message.max_states))
        elif isinstance(message, PauseMessage) and self.scenario is not None:
            await self.send(self._state())

    def _start(self, work: Awaitable[None]) -> None:
        self.cancelled = threading.Event()

        async def guarded() -> None:
            try:
                await work
            except (ValueError, LookupError, ExploreBusy) as exc:
                await self.send(describe(exc))

        self.job = asyncio.create_task(guarded())

    async def load(self, message: LoadMessage) -> None:
        scenario = resolve_scenario(self.catalog, message.scenario)
        config = engine.make_config(scenario, message.variant, message.kernel, message.fixes)
        engine.run_schedule(scenario, config, message.schedule)  # reject bad schedules now
        self.scenario, self.config, self.source = scenario, config, message
        self.schedule = list(message.schedule)
        self.at = len(self.schedule) if message.at is None else min(message.at, len(self.schedule))
        await self.send(self._state())

    async def step(self, actor: str) -> None:
        self._loaded()
        if self.at >= self.settings.max_schedule:
            raise BadInput("actor", f"at most {self.settings.max_schedule} steps")
        candidate = list(step_schedule(self.schedule, self.at, actor))
        scenario, config = self._loaded()
        run = engine.run_schedule(scenario, config, candidate[: self.at + 1])
        self.schedule, self.at = candidate, self.at + 1
        await self.send(self._transition(run))

    async def goto(self, index: int) -> None:
        self._loaded()
        if index > len(self.schedule):
            raise BadInput("index", f"step {index} is past the end ({len(self.schedule)} steps)")
        self.at = index
        await self.send(self._state())

    async def play(self, delay_s: float) -> None:
        if self.at >= len(self.schedule):
            self.at = 0  # at the end, play starts again from the beginning
        while self.at < len(self.schedule):
            self.at += 1
            await self.send(self._transition(self._run(self.at)))
            await asyncio.sleep(delay_s)
        await self.send(self._state())

    async def explore(self, max_states: int | None) -> None:
        scenario, config = self._loaded()
        loop = asyncio.get_running_loop()
        latest: list[tuple[int, int]] = []
        cancelled = self.cancelled
        last_sent = 0.0

        def progress(states: int, transitions: int) -> None:
            nonlocal last_sent
            now = time.monotonic()
            if now - last_sent >= PROGRESS_EVERY_S:
                last_sent = now
                loop.call_soon_threadsafe(latest.append, (states, transitions))

        task = asyncio.ensure_future(
            self.explorer.explore(
                scenario,
                config,
                max_states,
                progress,
                cancelled.is_set,
                abandon_on_cancel=True,
                client=self.client,
            )
        )
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=PROGRESS_EVERY_S)
                while latest:
                    states, transitions = latest.pop(0)
                    await self.send(
                        {"type": "progress", "states": states, "transitions": transitions}
                    )
        finally:
            if not task.done():
                cancelled.set()
                task.cancel()
        result = task.result()
        await self.send({"type": "outcomes", **engine.exploration_to_json(result)})


def parse(text: str, settings: Settings) -> ClientMessage:
    if len(text) > settings.max_body_bytes:
        raise BadInput("message", f"message larger than {settings.max_body_bytes} bytes")
    try:
        raw = loads_bounded(text)
    except NumberTooLong as err:
        raise BadInput(err.path, str(err)) from err
    except (json.JSONDecodeError, RecursionError) as err:
        raise BadInput("message", f"malformed JSON: {err}") from err
    return CLIENT_MESSAGE.validate_python(raw)


class RateLimit:
    """A token bucket: `burst` messages at once, `rate_per_s` sustained."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate, self.burst = rate_per_s, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


async def drive(websocket: WebSocket, session: RunSession, reply: Send) -> None:
    """Run a client's commands until it goes: each one rate-limited, parsed and handled, a
    bad one answered with an error (to `reply` only), any play or explore job stopped at the
    end."""
    limit = RateLimit(MESSAGES_PER_S, MESSAGE_BURST)
    try:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            if not limit.allow():
                await reply(too_fast())
                continue
            try:
                await session.handle(parse(frame_text(frame), session.settings))
            except (ValueError, LookupError) as exc:  # anything else (a room gone) ends it
                await reply(describe(exc))
    finally:
        await session.stop_job()


def frame_text(frame: Mapping[str, Any]) -> str:
    """The text of a received WebSocket frame (binary frames are read as UTF-8)."""
    text = frame.get("text")
    if text is not None:
        return str(text)
    return bytes(frame.get("bytes") or b"").decode("utf-8", "replace")


def too_fast() -> dict[str, Any]:
    return error_message(
        f"too many messages: at most {MESSAGES_PER_S:g} per second; this one was dropped",
        [{"path": "message", "message": "rate limit"}],
    )
