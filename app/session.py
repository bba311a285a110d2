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
from dataclasses import replace
from typing import Any, TypeVar

import anyio.to_thread
from pydantic import ValidationError
from starlette.websockets import WebSocket

import engine
from app.config import MIN_PLAY_DELAY_MS, Settings
from app.doom import no_return_of
from app.errors import Answer, BadMessage, answer, answer_or_log, error_message
from app.links import NumberTooLong, loads_bounded
from app.runref import RunRef
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
    resolve_scenario,
)

Send = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")
PROGRESS_EVERY_S = 0.1
# What one socket may send: bursts for quick key presses, but not a flood.
MESSAGES_PER_S = 20.0
MESSAGE_BURST = 40


class ReplayBudget:
    """Server CPU time a socket may spend on replays: a bucket of `burst_s` seconds that
    refills at `share` seconds per second. A replay is charged after it ran (its cost is only
    known then), so the bucket may go below zero; the socket then waits until it is back."""

    def __init__(self, burst_s: float, share: float) -> None:
        self.burst_s, self.share = burst_s, share
        self.tokens, self.stamp = burst_s, time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst_s, self.tokens + (now - self.stamp) * self.share)
        self.stamp = now

    def wait_s(self) -> float:
        """0 when a replay may start now, else how long until it may."""
        self._refill()
        return 0.0 if self.tokens > 0 else (-self.tokens + 0.01) / self.share

    def charge(self, spent_s: float) -> None:
        self._refill()
        self.tokens -= spent_s

    def spent(self) -> bool:
        """Whether the bucket is not full again yet (it still remembers recent replays)."""
        self._refill()
        return self.tokens < self.burst_s


class ClientBudgets:
    """One ReplayBudget per client address, shared by all of that client's sockets.

    A budget per socket let one client open four sockets and take four shares (the 15 s
    socket flood of scripts/abuse.py was never refused). Entries at rest (a full bucket)
    are dropped when the table is full, so it stays bounded whatever the number of clients.
    """

    def __init__(self, burst_s: float, share: float, limit: int = 10_000) -> None:
        self.burst_s, self.share, self.limit = burst_s, share, limit
        self._budgets: dict[str, ReplayBudget] = {}

    def of(self, client: str) -> ReplayBudget:
        budget = self._budgets.get(client)
        if budget is None:
            if len(self._budgets) >= self.limit:
                self._budgets = {
                    c: b for c, b in self._budgets.items() if b.wait_s() > 0 or b.spent()
                }
            budget = self._budgets[client] = ReplayBudget(self.burst_s, self.share)
        return budget


class RunSession:
    """One client's run: a scenario, a configuration, a schedule and a cursor into it.

    Every replay runs in a worker thread (`_offload`), charged to the socket's ReplayBudget:
    the event loop serves everyone else meanwhile, and one socket gets a bounded share."""

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        explorer: Explorer,
        send: Send,
        client: str = "",
        budget: ReplayBudget | None = None,
    ) -> None:
        self.catalog, self.settings, self.explorer, self.send = catalog, settings, explorer, send
        # The client's shared budget when the route passes one (ClientBudgets), else its own.
        self.budget = budget or ReplayBudget(settings.socket_cpu_burst_s, settings.socket_cpu_share)
        self.client = client  # the socket's address: explorations are limited per client
        self.scenario: engine.Scenario | None = None
        self.config: engine.Config | None = None
        self.ref = RunRef()  # where the run stands: set by a `load`, moved by every command
        self.job: asyncio.Task[None] | None = None
        self.cancelled = threading.Event()

    @property
    def at(self) -> int:
        return self.ref.step

    # --- helpers ---------------------------------------------------------------------------

    def _loaded(self) -> tuple[engine.Scenario, engine.Config]:
        if self.scenario is None or self.config is None:
            raise BadInput("type", "send a 'load' message first")
        return self.scenario, self.config

    async def _offload(self, work: Callable[[], T]) -> T:
        """Run a replay off the event loop, charged to this socket's CPU budget."""
        wait = self.budget.wait_s()
        if wait > 0:
            raise BadInput(
                "message",
                f"this connection has used its share of server time (replays may take "
                f"{self.settings.socket_cpu_share:.0%} of a CPU core, in bursts of "
                f"{self.settings.socket_cpu_burst_s:g} s); this command was dropped: "
                f"try again in {wait:.1f} s",
            )

        def timed() -> tuple[T, float]:
            started = time.thread_time()  # this thread's CPU: waiting for the GIL is free
            result = work()
            return result, time.thread_time() - started

        result, spent = await anyio.to_thread.run_sync(timed)
        self.budget.charge(spent)
        return result

    async def _replay(self, schedule: list[str]) -> tuple[engine.Trace, dict[str, Any]]:
        """The run of `schedule` and its JSON body, both built off the loop."""
        scenario, config = self._loaded()

        def work() -> tuple[engine.Trace, dict[str, Any]]:
            run = engine.run_schedule(scenario, config, schedule)
            body = engine.run_to_json(run)
            # Where this run became lost, if it has: followers' step logs mark that step.
            doomed = no_return_of(scenario, config, schedule)
            if doomed is not None:
                body["point_of_no_return"] = doomed.step
            return run, body

        return await self._offload(work)

    async def _state(self) -> dict[str, Any]:
        at, schedule = self.at, list(self.ref.schedule)
        _, body = await self._replay(schedule[:at])
        return {"type": "state", "at": at, "schedule": schedule, **body}

    def _transition(self, body: dict[str, Any]) -> dict[str, Any]:
        step = body["steps"][-1]
        return {
            "type": "transition",
            **step,
            "at": self.at,
            "schedule": list(self.ref.schedule),
            "enabled": body["enabled"],
            "finished": body["finished"],
            "violations": body["violations"],
            "actors": body.get("actors"),
            **(
                {"point_of_no_return": body["point_of_no_return"]}
                if "point_of_no_return" in body
                else {}
            ),
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
            await self.send(await self._state())

    def _start(self, work: Awaitable[None]) -> None:
        self.cancelled = threading.Event()

        async def guarded() -> None:
            try:
                await work
            except Exception as exc:  # a bug is logged and answered as a 500, never dropped
                await self.send(answer_or_log(exc, "a socket's play or explore").message())

        self.job = asyncio.create_task(guarded())

    async def load(self, message: LoadMessage) -> None:
        scenario = resolve_scenario(self.catalog, message.scenario)
        config = engine.make_config(scenario, message.variant, message.kernel, message.fixes)
        schedule = list(message.schedule)
        at = len(schedule) if message.at is None else min(message.at, len(schedule))

        def work() -> dict[str, Any]:  # one offload: validated and rendered, or neither
            run = engine.run_schedule(scenario, config, schedule)  # a bad schedule raises
            return engine.run_to_json(run.at(at))

        body = await self._offload(work)
        self.scenario, self.config = scenario, config
        self.ref = replace(RunRef.from_load(message), at=at)
        await self.send({"type": "state", "at": at, "schedule": list(schedule), **body})

    async def step(self, actor: str) -> None:
        self._loaded()
        if self.at >= self.settings.max_schedule:
            raise BadInput("actor", f"at most {self.settings.max_schedule} steps")
        moved = self.ref.stepped(actor)
        _, body = await self._replay(list(moved.schedule[: moved.step]))
        self.ref = moved
        await self.send(self._transition(body))

    async def goto(self, index: int) -> None:
        self._loaded()
        steps = len(self.ref.schedule)
        if index > steps:
            raise BadInput("index", f"step {index} is past the end ({steps} steps)")
        self.ref = self.ref.at_step(index)
        await self.send(await self._state())

    async def play(self, delay_s: float) -> None:
        schedule = list(self.ref.schedule)
        if self.at >= len(schedule):
            self.ref = self.ref.at_step(0)  # at the end, play starts again from the beginning
        while self.at < len(schedule):
            _, body = await self._replay(schedule[: self.at + 1])
            self.ref = self.ref.at_step(self.at + 1)
            await self.send(self._transition(body))
            await asyncio.sleep(delay_s)
        await self.send(await self._state())

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
    try:
        return CLIENT_MESSAGE.validate_python(raw)
    except ValidationError as err:
        raise BadMessage(err) from err


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
            except (engine.InputError, ExploreBusy) as exc:  # anything else ends the socket
                await reply(known_answer(exc).message())
    finally:
        await session.stop_job()


def known_answer(exc: engine.InputError | ExploreBusy) -> Answer:
    known = answer(exc)
    assert known is not None  # the table lists every input error and ExploreBusy
    return known


async def close_on_bug(websocket: WebSocket, reply: Send, exc: BaseException) -> None:
    """A bug met while serving a socket: logged with its traceback, told to the client as a
    500 `error` message, and the socket closed with 1011 (internal error)."""
    told = answer_or_log(exc, websocket.url.path).message()  # logged first, whatever follows
    with suppress(Exception):  # the socket may be the thing that broke
        await reply(told)
        await websocket.close(1011)


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
