"""The thin layer between the web and the engine: resolve, configure, replay, explore.

Routes never step the model themselves; they call these functions, which only adapt.
"""

from __future__ import annotations

import asyncio
import difflib
import gzip
import json
import math
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

import engine
from app.config import Settings
from app.explore_pool import Job, SlotPool, WorkerLost
from app.runref import ScenarioRef
from engine.views import to_text

if TYPE_CHECKING:
    from app.limits import SharedLeases

Catalog = Mapping[str, engine.Scenario]


class UnknownScenario(engine.InputError, LookupError):
    """A catalog id that does not exist; the message lists what does."""

    def __init__(self, scenario_id: str, known: Sequence[str]) -> None:
        # The nearest ids first (review M3: a link cut or edited by hand, an old name).
        near = difflib.get_close_matches(scenario_id, known, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        super().__init__(f"unknown scenario {scenario_id!r}; {hint}the catalog has: {shown}")
        self.scenario_id = scenario_id
        self.near = tuple(near)


class BadInput(engine.InputError):
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


def replay_lenient(
    scenario: engine.Scenario, config: engine.Config, schedule: Sequence[str]
) -> engine.Trace:
    """Replay `schedule` as far as it applies (links outlive kernels and scenario edits): the
    trace's `error` says why it stopped early, its steps are the ones that applied."""
    return engine.replay(scenario, config, tuple(schedule))


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON response body, and the same gzipped: compressing costs more than a cache hit.

    `gzipped` is None for a body that nobody asked compressed and that is not remembered
    (the run cache is off, or the body is too big for it): compressing it would be wasted.
    """

    plain: bytes
    gzipped: bytes | None

    @staticmethod
    def encode(content: Any) -> bytes:
        # What JSONResponse would send.
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()

    @classmethod
    def of(cls, content: Any) -> Body:
        return cls.of_bytes(cls.encode(content))

    @classmethod
    def of_bytes(cls, plain: bytes, compress: bool = True) -> Body:
        gzipped = gzip.compress(plain, compresslevel=6, mtime=0) if compress else None
        return cls(plain, gzipped)

    @property
    def size(self) -> int:
        return len(self.plain) + (len(self.gzipped) if self.gzipped is not None else 0)


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _fields(content: dict[str, Any]) -> str:
    """A dict's encoded members, without the braces."""
    return _ENCODE(content)[1:-1]


def _record(value: Any) -> dict[str, Any]:
    """dataclasses.asdict of a flat dataclass (its fields all plain values), without the deep
    copy asdict makes: a slotted dataclass's __slots__ are its fields, in order."""
    return {name: getattr(value, name) for name in value.__slots__}


def run_text(trace: engine.Trace) -> bytes:
    """`Body.encode(engine.run_to_json(trace))`, made faster: every state of the run is
    encoded item by item with one memo (engine.views.to_text), so the items a step did not
    change are encoded once for the whole run, not once per step. The keys and their order
    are run_to_json's (tests/app/test_run_cache.py holds the two equal)."""
    memo: dict[object, str] = {}
    steps = ",".join(
        "{"
        + _fields(
            {
                "index": s.index,
                "actor": s.actor,
                "op": s.op,
                "op_index": s.op_index,
                "function": s.function,
                "note": s.note,
                "changes": list(s.changes),
            }
        )
        + f',"state":{to_text(s.state, memo, _ENCODE)}}}'
        for s in trace.steps
    )
    head = _fields(
        {
            "scenario": trace.scenario_id,
            "digest": trace.digest,
            "kernel": trace.kernel,
            "variant": trace.variant,
        }
    )
    tail = _fields(
        {
            "enabled": list(trace.enabled),
            "finished": trace.finished,
            "label": trace.label,
            "violations": [_record(v) for v in trace.violations],
            "actors": [_record(a) for a in trace.actors],
        }
    )
    initial = to_text(trace.initial, memo, _ENCODE)
    state = to_text(trace.state, memo, _ENCODE)
    text = f'{{{head},"steps":[{steps}],"initial":{initial},"state":{state},{tail}}}'
    return text.encode()


RunKey = tuple[object, ...]
CONFIGS = 256  # resolved configurations kept (a few hundred bytes each)


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
        # A catalog scenario's resolved configuration, by what the request named: building a
        # Config walks every fix switch's releases (a tenth of an uncached run), and links
        # and the dashboard ask for the same few over and over.
        self._configs: OrderedDict[tuple[object, ...], tuple[engine.Scenario, engine.Config]] = (
            OrderedDict()
        )

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
        if not isinstance(ref, str):  # a document: parsed afresh, its config too
            return scenario, engine.make_config(scenario, variant, kernel, fixes)
        key = (scenario.sha256, variant, kernel, tuple(fixes.items()) if fixes else ())
        with self._lock:
            known = self._configs.get(key)
            if known is not None and known[0] is scenario:
                self._configs.move_to_end(key)
                return known
        config = engine.make_config(scenario, variant, kernel, fixes)  # errors: never kept
        with self._lock:
            self._configs[key] = (scenario, config)
            if len(self._configs) > CONFIGS:
                self._configs.popitem(last=False)
        return scenario, config

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
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        schedule: Sequence[str],
        gzipped: bool = True,
    ) -> Body:
        """The run's JSON body: from the cache, or replayed (CPU work: call it off the loop).

        A body the cache keeps is compressed too; one it does not keep only if `gzipped`."""
        hit = self.cached(scenario, config, schedule)
        if hit is not None:
            return hit
        result = engine.run_schedule(scenario, config, schedule)
        plain = run_text(result)
        kept = len(plain) <= self.settings.run_cache_bytes // 4
        body = Body.of_bytes(plain, compress=gzipped or kept)
        if kept:
            self._remember(self.key(scenario, config, schedule), body)
        return body

    def _remember(self, key: RunKey, body: Body) -> None:
        limit = self.settings.run_cache_bytes
        if body.size > limit // 4 or body.gzipped is None:
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


class ExploreBusy(Exception):
    """No room for another exploration now: the queue is full (503) or this client already has
    its share running or waiting (429). `retry_after_s` is when a slot is likely to be free."""

    def __init__(self, status: int, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.status, self.retry_after_s = status, retry_after_s


class ClientGone(Exception):
    """The client went away before its exploration started; answered with CLIENT_GONE."""


class Explorer:
    """Runs explorations in worker processes (app/explore_pool.py) and remembers complete results.

    Exploring is CPU-bound and deterministic for a given scenario document (keyed on its full
    SHA-256) and configuration, so repeating "find a bug" then "explore all" costs one search;
    the cache lives here, in the serving process. A search that is not cached is admitted only
    if the queue has room and its client (by address) has fewer than its share in flight, so one
    client cannot make everyone else wait behind its searches (reliability-review F4).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache: OrderedDict[tuple[object, ...], engine.Exploration] = OrderedDict()
        # First bugs found (engine.find_first): never an answer to "explore" (no counts), but
        # what a room's followers are shown after their presenter's "Find a bug".
        self._first: OrderedDict[tuple[object, ...], engine.Exploration] = OrderedDict()
        self._lock = threading.Lock()
        self._admitted = 0
        self._per_client: Counter[str] = Counter()
        # Per-client concurrency on every worker (the rooms' Redis), when configured: the
        # count above is this process's only (app/limits.py).
        self.shared: SharedLeases | None = None
        self._releases: set[asyncio.Task[None]] = set()
        self._open()

    def _open(self) -> None:
        settings = self._settings
        in_process = settings.explore_workers < 1
        # In process, two searches at once keep one core for the event loop on a 2-core machine.
        self.pool = SlotPool(2 if in_process else settings.explore_workers, in_process)
        # One thread per admitted search: it waits for a slot, then drives its worker. Admission
        # bounds them, so this executor never queues, and never shares anyio's thread limiter
        # with page renders and replays.
        self._threads = ThreadPoolExecutor(
            self.pool.size + max(0, settings.explore_queue), thread_name_prefix="explore"
        )
        self._closed = False
        weakref.finalize(self, _shut_down, self.pool, self._threads)

    def warm(self) -> None:
        """Start the worker processes (else the first search starts them); after a close (an
        app whose lifespan ran before, as tests and ASGI harnesses do), open afresh."""
        with self._lock:
            if self._closed:
                self._open()
        self.pool.warm()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        _shut_down(self.pool, self._threads)

    @property
    def in_flight(self) -> int:
        """Searches admitted and not yet answered by their worker (running or waiting)."""
        with self._lock:
            return self._admitted

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

    def found(self, scenario: engine.Scenario, config: engine.Config) -> engine.Exploration | None:
        """The exhaustive result if there is one, else the first bug found: from memory only,
        never starting a search."""
        key = self._key(scenario, config, self.bound(None))
        with self._lock:
            return self._cache.get(key) or self._first.get(key)

    def _admit(self, client: str) -> None:
        settings = self._settings
        retry = max(1, math.ceil(settings.explore_time_limit_s))
        with self._lock:
            mine = self._per_client[client]
            if mine >= settings.explore_per_client:
                raise ExploreBusy(
                    429,
                    f"this client already has {mine} exploration(s) running or waiting (at most "
                    f"{settings.explore_per_client}); wait for one to finish or retry in {retry} s",
                    retry,
                )
            capacity = self.pool.size + max(0, settings.explore_queue)
            if self._admitted >= capacity:
                raise ExploreBusy(
                    503,
                    f"the server is busy: {self._admitted} explorations are running or waiting "
                    f"(at most {capacity}); retry in {retry} s",
                    retry,
                )
            self._admitted += 1
            self._per_client[client] += 1

    def _leave(self, client: str) -> None:
        with self._lock:
            self._admitted -= 1
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]

    def _search(
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        limit: int,
        progress: ProgressFn | None,
        cancel: CancelFn,
        first: bool = False,
    ) -> engine.Exploration | None:
        """In a thread: wait for a slot, search, remember a complete result. None: cancelled
        before it started."""
        key = self._key(scenario, config, limit)
        time_limit_s = self._settings.explore_time_limit_s
        job = Job(scenario, config, limit, time_limit_s, progress is not None, first)
        try:
            result = self.pool.run(job, progress, cancel)
        except WorkerLost as err:  # replaced already: the next search gets a fresh worker
            raise ExploreBusy(503, f"{err}; retry", 1) from err
        if result is not None and (result.first_bug or not result.truncated):
            store = self._first if result.first_bug else self._cache
            with self._lock:
                store[key] = result
                while len(store) > self._settings.explore_cache_size:
                    store.popitem(last=False)
        return result

    async def _lease(self, client: str) -> str | None:
        """A lease on the client's share across every worker (None without Redis, or while
        it is down); ExploreBusy (429) when the client has its share running elsewhere."""
        if self.shared is None:
            return None
        lease, held = await self.shared.acquire(client)
        if lease is None and held >= 0:
            retry = max(1, math.ceil(self._settings.explore_time_limit_s))
            raise ExploreBusy(
                429,
                f"this client already has {held} exploration(s) running or waiting on this "
                f"server's workers (at most {self._settings.explore_per_client}); wait for one "
                f"to finish or retry in {retry} s",
                retry,
            )
        return lease

    def _give_back(
        self, client: str, lease: str | None, work: asyncio.Future[Any] | None = None
    ) -> None:
        """Give the lease back once `work` is done (now, without it)."""
        if lease is None or self.shared is None:
            return
        shared = self.shared

        def release(_: object = None) -> None:
            task = asyncio.ensure_future(shared.release(client, lease))
            self._releases.add(task)  # kept until done: a task nobody holds may vanish
            task.add_done_callback(self._releases.discard)

        if work is None:
            release()
        else:
            work.add_done_callback(release)

    async def _submit_shared(
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        max_states: int | None,
        progress: ProgressFn | None,
        cancel: CancelFn,
        client: str,
        first: bool = False,
    ) -> asyncio.Future[engine.Exploration | None]:
        """`_submit`, holding a lease on the client's share across workers while it runs."""
        lease = await self._lease(client)
        try:
            work = self._submit(scenario, config, max_states, progress, cancel, client, first)
        except BaseException:
            self._give_back(client, lease)
            raise
        self._give_back(client, lease, work)
        return work

    def _submit(
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        max_states: int | None,
        progress: ProgressFn | None,
        cancel: CancelFn,
        client: str,
        first: bool = False,
    ) -> asyncio.Future[engine.Exploration | None]:
        """Admit the search (or raise ExploreBusy) and start its thread; the client's share is
        given back when the thread ends, that is once the worker has stopped."""
        self._admit(client)
        with self._lock:
            if self._closed:  # called outside a running lifespan: open again, never a 500
                self._open()
        try:
            work = self._threads.submit(
                self._search, scenario, config, self.bound(max_states), progress, cancel, first
            )
        except BaseException:
            self._leave(client)
            raise
        work.add_done_callback(lambda _: self._leave(client))
        waited = asyncio.wrap_future(work)
        # An abandoned search's error has no reader: mark it retrieved, not "never retrieved".
        waited.add_done_callback(lambda f: f.cancelled() or f.exception())
        return waited

    async def explore(
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        max_states: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        abandon_on_cancel: bool = False,
        client: str = "",
    ) -> engine.Exploration:
        """Explore off the event loop, in a worker process; raises ExploreBusy if no room.

        With `abandon_on_cancel` the awaiting task can be cancelled at once; the search then
        stops at its next `cancel()` poll (the task's cancellation also counts as one), and
        its slot and the client's share are given back once it has.
        """
        hit = self.cached(scenario, config, max_states)
        if hit is not None:
            return hit
        abandoned = threading.Event()

        def stop() -> bool:
            return abandoned.is_set() or (cancel is not None and cancel())

        work = await self._submit_shared(scenario, config, max_states, progress, stop, client)
        try:
            # Shielded: the thread runs to its end (and frees its slot) even if this task is
            # cancelled; only its answer is then dropped.
            result = await asyncio.shield(work)
        except asyncio.CancelledError:
            abandoned.set()
            if not abandon_on_cancel:  # wait until the search has stopped
                with suppress(Exception):
                    await asyncio.shield(work)
            raise
        if result is None:  # cancelled while it waited for a slot: nobody is left to read it
            raise ClientGone
        return result

    async def explore_until_gone(
        self,
        scenario: engine.Scenario,
        config: engine.Config,
        gone: Callable[[], Awaitable[object]],
        max_states: int | None = None,
        client: str = "",
        first: bool = False,
    ) -> engine.Exploration | None:
        """Explore off the event loop, or stop early (None) once `gone()` returns.

        For HTTP requests `gone` waits for the client to disconnect. The search polls a flag
        that is then set, so it stops within one progress interval; this returns once it has
        (a cut-off search is never cached). Raises ExploreBusy if there is no room for it.
        With `first`, a search that is not cached yet stops at the first bug it finds
        (engine.find_first); a cached exhaustive result is still the answer when there is one.
        """
        hit = self.cached(scenario, config, max_states)
        if hit is not None:
            return hit
        stop = threading.Event()
        work = await self._submit_shared(
            scenario, config, max_states, None, stop.is_set, client, first
        )

        async def watch() -> None:
            await gone()
            stop.set()

        # A plain task, not a task group: a group would wrap the search's own error (a 503,
        # an engine error) in an ExceptionGroup, which no handler knows (a 500).
        watcher = asyncio.ensure_future(watch())
        watcher.add_done_callback(lambda t: t.cancelled() or t.exception())
        try:
            result = await asyncio.shield(work)
        except BaseException:
            stop.set()  # this request is being cancelled (the server stops): so is its search
            raise
        finally:
            watcher.cancel()
        return None if stop.is_set() else result


def _shut_down(pool: SlotPool, threads: ThreadPoolExecutor) -> None:
    pool.close()
    threads.shutdown(wait=False, cancel_futures=False)


def client_of(conn: HTTPConnection) -> str:
    """Whom a request or socket comes from, for per-client limits (uvicorn has already applied
    trusted proxy headers to it)."""
    return conn.client.host if conn.client is not None else ""


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
