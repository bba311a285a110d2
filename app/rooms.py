"""Live rooms (product.md 5.3): a presenter drives one run and every follower mirrors it.

A room is a small record, who may drive (the hash of a presenter token) and where the run
stands (a `RunRef`: scenario, kernel, schedule, step), plus a stream of numbered messages.
A broker keeps both: `MemoryBroker` inside this process, `RedisBroker` in Redis (a hash with
an idle TTL, and pub/sub) so that the presenter and the followers may be served by different
workers or hosts.

Order: the broker numbers each message (`seq`) in the same atomic step that stores the
snapshot it leads to. A follower subscribes first, then reads the record, starts from its
snapshot and drops every message whose seq it already has, so a late joiner neither misses
nor repeats a step.

Each process fans a room's messages out to its own followers from one subscription, and a
message is encoded once per process, not once per follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import anyio.to_thread

from app.config import env_float, env_int, env_url
from app.runref import RunRef
from app.wire import encode_off_loop

# Lower-case letters and digits without the look-alikes (0/o, 1/l/i): typed from a projector.
ROOM_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
ROOM_ID_LENGTH = 8
ROOM_ID_PATTERN = rf"^[{ROOM_ALPHABET}]{{{ROOM_ID_LENGTH}}}$"


@dataclass(frozen=True)
class RoomSettings:
    """Room limits; override with PAGERACE_* environment variables."""

    redis_url: str | None = None
    idle_s: float = 2 * 3600.0  # a room nobody drives or joins for this long is gone
    max_rooms: int = 1_000
    max_followers: int = 1_000  # per room and process
    # Messages a follower may fall behind by before it is dropped as too slow.
    follower_backlog: int = 512
    # A room nobody has opened since it was made is gone after this long: one client making
    # rooms in a loop must not hold the max_rooms switch for the whole idle_s.
    unjoined_s: float = 600.0
    # Rooms one client (by IP) may create per window, in this process.
    client_rooms: int = 10
    client_window_s: float = 60.0
    # Lookups of rooms that do not exist one client may make per window (room-id guessing:
    # 990 guesses/s were answered before); then 429 until the window has passed.
    client_misses: int = 30
    # How often a follower's connection checks that its room still exists (to tell it).
    watch_s: float = 15.0
    # Each Redis command gives up after this long (and is tried at most twice): a frozen
    # Redis made requests hang for 5 s, and redis-py's default retries would triple that.
    redis_timeout_s: float = 1.0

    @classmethod
    def from_env(cls) -> RoomSettings:
        return cls(
            redis_url=env_url("PAGERACE_REDIS_URL", ("redis", "rediss", "unix")),
            idle_s=env_float("PAGERACE_ROOM_IDLE_S", cls.idle_s),
            max_rooms=env_int("PAGERACE_MAX_ROOMS", cls.max_rooms, 1),
            max_followers=env_int("PAGERACE_MAX_FOLLOWERS", cls.max_followers, 1),
            unjoined_s=env_float("PAGERACE_ROOM_UNJOINED_S", cls.unjoined_s),
            client_rooms=env_int("PAGERACE_CLIENT_ROOMS", cls.client_rooms),
            client_window_s=env_float("PAGERACE_CLIENT_ROOM_WINDOW_S", cls.client_window_s),
            client_misses=env_int("PAGERACE_CLIENT_ROOM_MISSES", cls.client_misses),
            watch_s=env_float("PAGERACE_ROOM_WATCH_S", cls.watch_s),
            redis_timeout_s=env_float("PAGERACE_REDIS_TIMEOUT_S", cls.redis_timeout_s),
        )

    @property
    def first_ttl_s(self) -> float:
        """How long a new room lives before anyone opens it."""
        return min(self.idle_s, self.unjoined_s)


class RoomError(Exception):
    """A room that cannot be created or used; `code` is the WebSocket close code to use."""

    def __init__(self, message: str, code: int = 4400) -> None:
        super().__init__(message)
        self.code = code


class RoomGone(RoomError):
    def __init__(self, room: str, idle_s: float) -> None:
        minutes = max(1, round(idle_s / 60))
        super().__init__(
            f"there is no live room {room!r}: it never existed or expired after "
            f"{minutes} idle minute{'s' if minutes != 1 else ''}",
            4404,
        )


class RoomEnded(RoomError):
    """A room that went away under its followers: they are told why (a `{type: "ended"}`
    message their page shows) and the socket closes with `code`."""

    def __init__(self, message: str, reason: str, code: int = 4404) -> None:
        super().__init__(message, code)
        self.reason = reason


class StoreDown(RoomError):
    """The room store (Redis) does not answer: 503 on pages, close 1013 ("try again later")
    on sockets, so that clients back off instead of being told something untrue."""

    def __init__(self) -> None:
        super().__init__(
            "the live-room store (Redis) is not answering; live rooms are unavailable "
            "for now: try again in a few seconds",
            1013,
        )


STORE_DOWN_RETRY_S = 5  # the Retry-After sent with a StoreDown 503


def room_lost(room: str) -> RoomEnded:
    return RoomEnded(
        f"live room {room!r} was lost: the live-room store (Redis) restarted without its "
        "rooms; the presenter can make a new one",
        "lost",
    )


def room_expired(room: str, idle_s: float) -> RoomEnded:
    minutes = max(1, round(idle_s / 60))
    return RoomEnded(
        f"live room {room!r} has ended: nobody drove it for {minutes} "
        f"minute{'s' if minutes != 1 else ''}",
        "expired",
    )


class CreationLimit:
    """Events per client in a sliding window: rooms created, or failed room lookups, in this
    process (app/limits.SharedLimit counts them in Redis for every worker, and falls back
    to this while Redis is down). Forgets the least
    recently seen clients past `max_clients`, so a spoofed-address flood cannot grow it
    without bound."""

    def __init__(self, per_client: int, window_s: float, max_clients: int = 10_000) -> None:
        self.per_client, self.window_s, self.max_clients = per_client, window_s, max_clients
        self.recent: dict[str, list[float]] = {}

    def blocked(self, client: str, now: float | None = None) -> float:
        """0 when `client` is under its limit, else seconds until it is (counts nothing)."""
        now = time.monotonic() if now is None else now
        stamps = [t for t in self.recent.pop(client, []) if t > now - self.window_s]
        if stamps:
            self.recent[client] = stamps  # re-inserted: the dict's order is least recent first
        if len(stamps) >= self.per_client:
            return stamps[0] + self.window_s - now
        return 0.0

    def count(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.recent.setdefault(client, []).append(now)
        while len(self.recent) > self.max_clients:
            del self.recent[next(iter(self.recent))]

    def retry_after(self, client: str, now: float | None = None) -> float:
        """0 when `client` may create a room now (and counts it), else seconds to wait."""
        now = time.monotonic() if now is None else now
        wait = self.blocked(client, now)
        if wait == 0.0:
            self.count(client, now)
        return wait


class TooManyRooms(RoomError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"too many live rooms (at most {limit}); try again later", 4429)


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomRecord:
    room: str
    token_hash: str
    snapshot: RunRef
    seq: int = 0


def new_room_id() -> str:
    return "".join(secrets.choice(ROOM_ALPHABET) for _ in range(ROOM_ID_LENGTH))


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    # Only the hash is stored (in memory or in Redis): a leaked store does not leak the token.
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, record: RoomRecord) -> bool:
    return bool(token) and hmac.compare_digest(token_hash(token or ""), record.token_hash)


def with_seq(seq: int, body: str) -> str:
    """Number an encoded message: `{"type":...}` -> `{"seq":7,"type":...}`.

    Done on the encoded text so a message is serialised once however many followers get it.
    """
    return f'{{"seq":{seq},{body[1:]}' if body != "{}" else f'{{"seq":{seq}}}'


# --- local fan-out ---------------------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    """One follower's inbox: numbered, encoded messages in publication order."""

    room: str
    backlog: int
    queue: asyncio.Queue[tuple[int, str] | None] = field(init=False)
    overflowed: bool = False
    # Why the inbox ended, when it was not this follower's slowness (the store went down).
    problem: RoomError | None = None

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.backlog + 1)

    def deliver(self, seq: int, text: str) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= self.backlog:
            # Too slow to keep up: drop it rather than let one projector-less phone
            # hold the others back or grow memory without bound.
            self.overflowed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait((seq, text))

    def fail(self, problem: RoomError) -> None:
        """End the inbox for a reason of the server's, not the follower's."""
        if not self.overflowed:
            self.overflowed, self.problem = True, problem
            self.queue.put_nowait(None)  # room for it: the queue holds backlog + 1

    async def next(self) -> tuple[int, str] | None:
        """The next message, or None when the follower fell too far behind."""
        return await self.queue.get()


class Fanout:
    """This process's followers, by room."""

    def __init__(self) -> None:
        self.rooms: dict[str, set[Subscription]] = {}

    def count(self, room: str) -> int:
        return len(self.rooms.get(room, ()))

    def add(self, sub: Subscription) -> bool:
        """Adds; True when it is the room's first follower here."""
        subs = self.rooms.setdefault(sub.room, set())
        subs.add(sub)
        return len(subs) == 1

    def remove(self, sub: Subscription) -> bool:
        """Removes; True when it was the room's last follower here."""
        subs = self.rooms.get(sub.room)
        if subs is None:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self.rooms[sub.room]
        return True

    def deliver(self, room: str, seq: int, text: str) -> None:
        for sub in tuple(self.rooms.get(room, ())):
            sub.deliver(seq, text)


# --- brokers ---------------------------------------------------------------------------------


class Broker(Protocol):
    settings: RoomSettings
    fanout: Fanout

    async def create(self, room: str, token_hash: str, snapshot: RunRef) -> None: ...

    async def get(self, room: str) -> RoomRecord | None:
        """The room, its idle timer restarted; None when it does not exist (or expired)."""
        ...

    async def exists(self, room: str) -> bool:
        """Whether the room is still there, without restarting its idle timer."""
        ...

    async def ended(self, room: str) -> RoomEnded:
        """Why a room that existed is gone: it expired, or the store lost it."""
        ...

    async def missing(self, room: str) -> RoomError:
        """Why a room someone asked for is not there (it may never have existed)."""
        ...

    async def publish(self, room: str, snapshot: RunRef, message: Mapping[str, Any]) -> int:
        """Store the snapshot and send the message to every follower; returns its seq."""
        ...

    def subscribe(self, room: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...


async def _encode(message: Mapping[str, Any]) -> str:
    """A published message as text: a state (a whole run) in a worker thread, never on the
    event loop, which every other client shares (app/wire.py)."""
    return await encode_off_loop(dict(message))


async def _snapshot_json(snapshot: RunRef) -> str:
    """A room's stored snapshot as JSON: off the loop when it carries a whole document (a
    custom scenario, up to the link limit), inline for a catalog id."""
    if isinstance(snapshot.scenario, str) or snapshot.scenario is None:
        return snapshot.to_json()
    return await anyio.to_thread.run_sync(snapshot.to_json)


class MemoryBroker:
    """Rooms in this process's memory: the default, for one uvicorn worker."""

    def __init__(self, settings: RoomSettings) -> None:
        self.settings = settings
        self.fanout = Fanout()
        self.records: dict[str, RoomRecord] = {}
        self.expires: dict[str, float] = {}

    def _purge(self) -> None:
        now = time.monotonic()
        for room in [r for r, t in self.expires.items() if t <= now]:
            del self.records[room], self.expires[room]

    def _touch(self, room: str) -> None:
        self.expires[room] = time.monotonic() + self.settings.idle_s

    async def create(self, room: str, token_hash: str, snapshot: RunRef) -> None:
        self._purge()
        if len(self.records) >= self.settings.max_rooms:
            raise TooManyRooms(self.settings.max_rooms)
        self.records[room] = RoomRecord(room, token_hash, snapshot)
        self.expires[room] = time.monotonic() + self.settings.first_ttl_s

    async def get(self, room: str) -> RoomRecord | None:
        self._purge()
        record = self.records.get(room)
        if record is not None:
            self._touch(room)
        return record

    async def exists(self, room: str) -> bool:
        self._purge()
        return room in self.records

    async def ended(self, room: str) -> RoomEnded:
        return room_expired(room, self.settings.idle_s)  # this process's memory loses none

    async def missing(self, room: str) -> RoomError:
        return RoomGone(room, self.settings.idle_s)

    async def publish(self, room: str, snapshot: RunRef, message: Mapping[str, Any]) -> int:
        record = await self.get(room)
        if record is None:
            raise await self.ended(room)
        seq = record.seq + 1
        self.records[room] = replace(record, snapshot=snapshot, seq=seq)
        text = await _encode(message)
        self.fanout.deliver(room, seq, with_seq(seq, text))
        return seq

    @contextlib.asynccontextmanager
    async def subscribe(self, room: str) -> AsyncIterator[Subscription]:
        sub = Subscription(room, self.settings.follower_backlog)
        self.fanout.add(sub)
        try:
            yield sub
        finally:
            self.fanout.remove(sub)

    async def close(self) -> None:
        self.records.clear()


# Store the snapshot, number the message and publish it in one atomic step, so the seq a
# late joiner reads with the snapshot is exactly the last message that snapshot includes.
_PUBLISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'snapshot', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], redis.call('TIME')[1] + ARGV[3], KEYS[1])
redis.call('PUBLISH', KEYS[2], seq .. '\\n' .. ARGV[2])
return seq
"""

# Count live rooms (forgetting expired ones) and create the new one, or refuse.
_CREATE = """
local now = redis.call('TIME')[1]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'snapshot', ARGV[2], 'seq', 0)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + ARGV[3], KEYS[1])
return 1
"""


class RedisBroker:
    """Rooms in Redis: any process can create, drive or follow any room.

    Each process keeps one pub/sub subscription per room it has followers for and fans the
    messages out locally. Every Redis failure (refused, reset, timed out) becomes StoreDown.
    An epoch key, written once by whichever process starts first, tells a room that expired
    from one that Redis lost when it restarted empty (the epoch changed under us).
    """

    PREFIX = "pagerace:room:"
    INDEX = "pagerace:rooms"
    EPOCH = "pagerace:epoch"

    def __init__(self, settings: RoomSettings, url: str) -> None:
        try:
            import redis.asyncio as aioredis  # only needed when PAGERACE_REDIS_URL is set
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError as exc:  # the [redis] extra is optional
            raise RuntimeError(
                "PAGERACE_REDIS_URL is set but the redis package is not installed: "
                "pip install 'pagerace[redis]'"
            ) from exc

        self.settings = settings
        self.fanout = Fanout()
        timeout = settings.redis_timeout_s
        self.redis = aioredis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One retry: a pooled connection Redis closed (a restart) fails once and is
            # replaced; a frozen Redis costs at most two timeouts.
            retry=Retry(NoBackoff(), 1),
        )
        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self.listeners: dict[str, tuple[asyncio.Task[None], asyncio.Future[None]]] = {}
        self.ttl = max(1, round(settings.idle_s))
        self.first_ttl = max(1, round(settings.first_ttl_s))
        self.epoch: str | None = None
        self.restarted: float | None = None  # when this process saw the epoch change

    @contextlib.asynccontextmanager
    async def _store(self) -> AsyncIterator[None]:
        try:
            yield
        except self.errors as exc:
            raise StoreDown() from exc

    async def _epoch(self) -> str:
        """The store's epoch, made if missing (an empty Redis: new, or restarted)."""
        await self.redis.set(self.EPOCH, secrets.token_hex(8), nx=True)
        return str(await self.redis.get(self.EPOCH))

    async def _remember_epoch(self) -> None:
        if self.epoch is None:
            self.epoch = await self._epoch()

    def _key(self, room: str) -> str:
        return self.PREFIX + room

    def _channel(self, room: str) -> str:
        return self.PREFIX + room + ":events"

    async def create(self, room: str, token_hash: str, snapshot: RunRef) -> None:
        stored = await _snapshot_json(snapshot)
        async with self._store():
            await self._remember_epoch()
            created = await self.redis.eval(
                _CREATE,
                2,
                self._key(room),
                self.INDEX,
                token_hash,
                stored,
                self.first_ttl,
                self.settings.max_rooms,
            )
        if not created:
            raise TooManyRooms(self.settings.max_rooms)

    async def get(self, room: str) -> RoomRecord | None:
        key = self._key(room)
        async with self._store():
            await self._remember_epoch()
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(key)
                pipe.expire(key, self.ttl)
                # XX: only a room still indexed; its index entry follows its (now longer) TTL.
                pipe.zadd(self.INDEX, {key: time.time() + self.ttl}, xx=True)
                fields, _, _ = await pipe.execute()
        if not fields or "token" not in fields:
            return None
        return RoomRecord(
            room,
            fields["token"],
            RunRef.from_json(fields.get("snapshot") or "{}"),
            int(fields.get("seq") or 0),
        )

    async def exists(self, room: str) -> bool:
        async with self._store():
            return bool(await self.redis.exists(self._key(room)))

    async def _lost_recently(self) -> bool:
        """Whether Redis lost its rooms (restarted empty) within the last idle period."""
        async with self._store():
            now = await self._epoch()
        if self.epoch is not None and now != self.epoch:
            self.epoch, self.restarted = now, time.monotonic()
        return self.restarted is not None and time.monotonic() - self.restarted < self.ttl

    async def ended(self, room: str) -> RoomEnded:
        if await self._lost_recently():
            return room_lost(room)
        return room_expired(room, self.settings.idle_s)

    async def missing(self, room: str) -> RoomError:
        if await self._lost_recently():
            return room_lost(room)
        return RoomGone(room, self.settings.idle_s)

    async def publish(self, room: str, snapshot: RunRef, message: Mapping[str, Any]) -> int:
        stored, text = await _snapshot_json(snapshot), await _encode(message)
        async with self._store():
            seq = int(
                await self.redis.eval(
                    _PUBLISH,
                    3,
                    self._key(room),
                    self._channel(room),
                    self.INDEX,
                    stored,
                    text,
                    self.ttl,
                )
            )
        if seq < 0:
            raise await self.ended(room)
        return seq

    async def _listen(self, room: str, ready: asyncio.Future[None]) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self._channel(room))
            async for item in pubsub.listen():
                if item["type"] == "subscribe":
                    if not ready.done():
                        ready.set_result(None)
                    continue
                if item["type"] != "message":
                    continue
                head, _, body = str(item["data"]).partition("\n")
                seq = int(head)
                self.fanout.deliver(room, seq, with_seq(seq, body))
        except Exception as exc:  # the connection broke: followers here are told why
            if not ready.done():
                ready.set_exception(StoreDown())
            for sub in tuple(self.fanout.rooms.get(room, ())):
                sub.fail(StoreDown())
            if not isinstance(exc, self.errors):
                raise
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    @contextlib.asynccontextmanager
    async def subscribe(self, room: str) -> AsyncIterator[Subscription]:
        sub = Subscription(room, self.settings.follower_backlog)
        self.fanout.add(sub)
        listener = self.listeners.get(room)
        if listener is None or listener[0].done():
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            listener = (asyncio.create_task(self._listen(room, ready)), ready)
            self.listeners[room] = listener
        try:
            # Every follower waits until the channel is subscribed before it reads the
            # snapshot: otherwise a message published in between would be lost to it.
            timeout = 2 * self.settings.redis_timeout_s
            await asyncio.wait_for(asyncio.shield(listener[1]), timeout=timeout)
        except TimeoutError as exc:
            self._drop(sub)
            raise StoreDown() from exc
        except BaseException:
            self._drop(sub)
            raise
        try:
            yield sub
        finally:
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        if self.fanout.remove(sub):
            listener = self.listeners.pop(sub.room, None)
            if listener is not None:
                listener[0].cancel()

    async def close(self) -> None:
        for task, _ in self.listeners.values():
            task.cancel()
        self.listeners.clear()
        await self.redis.aclose()


def make_broker(settings: RoomSettings) -> Broker:
    if settings.redis_url:
        return RedisBroker(settings, settings.redis_url)
    return MemoryBroker(settings)
