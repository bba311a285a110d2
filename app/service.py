"""The thin layer between the web and the engine: resolve, configure, replay, explore.

Routes never step the model themselves; they call these functions, which only adapt.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

import engine
from app.config import Settings

Catalog = Mapping[str, engine.Scenario]
ScenarioRef = str | Mapping[str, Any]


class UnknownScenario(LookupError):
    """A catalog id that does not exist; the message lists what does."""

    def __init__(self, scenario_id: str, known: Sequence[str]) -> None:
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        super().__init__(f"unknown scenario {scenario_id!r}; the catalog has: {shown}")
        self.scenario_id = scenario_id


class BadInput(ValueError):
    """Input the engine never sees because the app's own bounds reject it first."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def resolve_scenario(catalog: Catalog, ref: ScenarioRef) -> engine.Scenario:
    """A catalog id, or a scenario document validated by the engine."""
    if isinstance(ref, str):
        try:
            return catalog[ref]
        except KeyError:
            raise UnknownScenario(ref, list(catalog)) from None
    return engine.parse_scenario(dict(ref))


@dataclass(frozen=True, slots=True)
class Replay:
    """A schedule replayed as far as it applies."""

    run: engine.Run
    requested: tuple[str, ...]
    applied: tuple[str, ...]
    error: engine.ScheduleError | None


def replay_lenient(
    scenario: engine.Scenario, config: engine.Config, schedule: Sequence[str]
) -> Replay:
    """Replay `schedule` as far as it applies (links outlive kernels and scenario edits)."""
    wanted = tuple(schedule)
    run, error = engine.replay(scenario, config, wanted)
    return Replay(run, wanted, wanted[: len(run.steps)], error)


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON response body, and the same gzipped: compressing costs more than a cache hit."""

    plain: bytes
    gzipped: bytes

    @classmethod
    def of(cls, content: Any) -> Body:
        # What JSONResponse would send.
        plain = json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
        return cls(plain, gzip.compress(plain, compresslevel=6, mtime=0))

    @property
    def size(self) -> int:
        return len(self.plain) + len(self.gzipped)


RunKey = tuple[object, ...]


class Runner:
    """Replays schedules into `/api/run` bodies and remembers them (LRU, bounded in bytes).

    A replay is deterministic and a shared link is opened many times: a hit costs a dict
    lookup instead of a replay (about a millisecond for a dozen steps) and JSON encoding.
    """

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.settings = settings
        self._bytes = 0
        self._cache: OrderedDict[RunKey, Body] = OrderedDict()
        self._lock = threading.Lock()

    def check_length(self, schedule: Sequence[str]) -> None:
        limit = self.settings.max_schedule
        if len(schedule) > limit:
            raise BadInput("schedule", f"the schedule has {len(schedule)} steps; at most {limit}")

    def configure(
        self,
        ref: ScenarioRef,
        variant: str | None = None,
        kernel: str | None = None,
        fixes: Mapping[str, bool] | None = None,
    ) -> tuple[engine.Scenario, engine.Config]:
        scenario = resolve_scenario(self.catalog, ref)
        return scenario, engine.make_config(scenario, variant, kernel, fixes)

    @staticmethod
    def key(scenario: engine.Scenario, config: engine.Config, schedule: Sequence[str]) -> RunKey:
        """What a replay depends on: the scenario's content, the resolved kernel, the schedule."""
        fixes = tuple(sorted(config.fixes.items()))
        # The full SHA-256, never the 48-bit display digest: a collision must not serve one
        # scenario's run for another.
        return (scenario.sha256, config.kernel, config.variant, fixes, tuple(schedule))

    def cached(
        self, scenario: engine.Scenario, config: engine.Config, schedule: Sequence[str]
    ) -> Body | None:
        key = self.key(scenario, config, schedule)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def run(
        self, scenario: engine.Scenario, config: engine.Config, schedule: Sequence[str]
    ) -> Body:
        """The run's JSON body: from the cache, or replayed (CPU work: call it off the loop)."""
        hit = self.cached(scenario, config, schedule)
        if hit is not None:
            return hit
        result = engine.run_schedule(scenario, config, schedule)
        body = Body.of(engine.run_to_json(result, scenario))
        self._remember(self.key(scenario, config, schedule), body)
        return body

    def _remember(self, key: RunKey, body: Body) -> None:
        limit = self.settings.run_cache_bytes
        if body.size > limit // 4:
            return  # one huge run must not flush everything else
        with self._lock:
            old = self._cache.pop(key, None)
            self._bytes += body.size - (old.size if old is not None else 0)
            self._cache[key] = body
            while self._bytes > limit:
                _, dropped = self._cache.popitem(last=False)
                self._bytes -= dropped.size


ProgressFn = Callable[[int, int], None]
CLIENT_GONE = 499  # nginx's "client closed request": logged, never seen by the client
CancelFn = Callable[[], bool]


class Explorer:
    """Runs explorations in worker threads and remembers complete results.

    Exploring is CPU-bound and deterministic for a given scenario document (keyed on its full
    SHA-256) and configuration, so repeating "find a bug" then "explore all" costs one search.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache: OrderedDict[tuple[object, ...], engine.Exploration] = OrderedDict()
        self._lock = threading.Lock()
        # Two searches at once keep one core for the event loop on a 2-core machine.
        self._limiter = anyio.CapacityLimiter(2)

    def bound(self, max_states: int | None) -> int:
        limit = self._settings.max_states
        return limit if max_states is None else max(1, min(max_states, limit))

    @staticmethod
    def _key(
        scenario: engine.Scenario, config: engine.Config, max_states: int
    ) -> tuple[object, ...]:
        fixes = tuple(sorted(config.fixes.items()))
        return (scenario.sha256, config.kernel, fixes, max_states)

    def cached(
        self, scenario: engine.Scenario, config: engine.Config, max_states: int | None = None
    ) -> engine.Exploration | None:
        with self._lock:
            return self._cache.get(self._key(scenario, config, self.bound(max_states)))

    def explore_sync(
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        max_states: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> engine.Exploration:
        hit = self.cached(scenario, config, max_states)
        if hit is not None:
            return hit
        limit = self.bound(max_states)
        result = engine.explore(
            scenario,
            config,
            max_states=limit,
            time_limit_s=self._settings.explore_time_limit_s,
            progress=progress,
            cancel=cancel,
        )
        if not result.truncated:
            with self._lock:
                self._cache[self._key(scenario, config, limit)] = result
                while len(self._cache) > self._settings.explore_cache_size:
                    self._cache.popitem(last=False)
        return result

    async def explore(
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        max_states: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        abandon_on_cancel: bool = False,
    ) -> engine.Exploration:
        """Explore off the event loop.

        With `abandon_on_cancel` the awaiting task can be cancelled at once; the worker thread
        then stops at its next `cancel()` poll, so callers pass a `cancel` that turns true.
        """

        def work() -> engine.Exploration:
            return self.explore_sync(scenario, config, max_states, progress, cancel)

        return await anyio.to_thread.run_sync(
            work, limiter=self._limiter, abandon_on_cancel=abandon_on_cancel
        )

    async def explore_until_gone(
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        gone: Callable[[], Awaitable[object]],
        max_states: int | None = None,
    ) -> engine.Exploration | None:
        """Explore off the event loop, or stop early (None) once `gone()` returns.

        For HTTP requests `gone` waits for the client to disconnect. The worker polls a flag
        that is then set, so the search stops within one progress interval and still holds
        its worker slot until it has (a cut-off search is never cached).
        """
        stop = threading.Event()

        def work() -> engine.Exploration | None:
            if stop.is_set():  # gone while waiting for a free worker
                return None
            return self.explore_sync(scenario, config, max_states, cancel=stop.is_set)

        async def watch() -> None:
            await gone()
            stop.set()

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            result = await anyio.to_thread.run_sync(work, limiter=self._limiter)
            group.cancel_scope.cancel()
        return None if stop.is_set() else result


async def disconnected(receive: Callable[[], Awaitable[Mapping[str, Any]]]) -> None:
    """Return once an HTTP client has gone away (its request body has already been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def shortest_violation(exploration: engine.Exploration) -> engine.Outcome | None:
    """The violating outcome with the shortest example schedule (ties: most interleavings)."""
    bad = [outcome for outcome in exploration.outcomes if outcome.violations]
    if not bad:
        return None
    return min(bad, key=lambda outcome: (len(outcome.example), -outcome.interleavings))
