"""Per-client limits that hold across workers (issue 17 item 5 and F4 behind several workers).

Without Redis every limit is counted in this process (app/rooms.CreationLimit), and with one
worker that is the whole server. Behind several workers (`uvicorn --workers N`, or several
containers) a client spread over N processes would get N times its share, so when the rooms
use Redis (PAGERACE_REDIS_URL) these limits are counted there, once for every process:

- `SharedLimit`: events per client in a sliding window (rooms created, failed room lookups,
  short links made): a sorted set per client of the events' times, trimmed and counted in
  one Lua script, so two workers cannot both let the last one through.
- `SharedLeases`: searches a client has running or waiting (explore's per-client
  concurrency): a sorted set per client of leases, each with a deadline, so a lease whose
  worker died frees itself.

While Redis cannot be reached they fall back to this process's own count: the limit then
holds per process again (never none), and the rooms themselves answer 503 meanwhile.
The limits that stay per process on purpose are listed in docs/threat-model.md.
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any

from app.rooms import CreationLimit

log = logging.getLogger("pagerace.limits")

# Trim the window, then (mode 0) say how long until the client is under its limit, (mode 1)
# count one event, or (mode 2) both: count it only if it is allowed. Seconds as a string:
# Redis turns a Lua number into an integer.
_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if ARGV[3] ~= '1' and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(first[2]) + window - now)
end
if ARGV[3] ~= '0' then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
end
return '0'
"""

# Forget leases past their deadline, then take one if the client has fewer than ARGV[1].
_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return held end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return -1
"""

PREFIX = "pagerace:limit:"


class SharedLimit:
    """Events per client in a sliding window, in Redis when given one (for every worker),
    else, and while Redis is down, in this process (`local`)."""

    def __init__(
        self,
        name: str,
        per_client: int,
        window_s: float,
        redis: Any = None,
        errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.name, self.per_client, self.window_s = name, per_client, window_s
        self.local = CreationLimit(per_client, window_s)
        self.redis, self.errors = redis, errors

    @property
    def shared(self) -> bool:
        """Whether the count is kept for every worker (in Redis)."""
        return self.redis is not None

    async def _window(self, client: str, mode: str) -> float | None:
        """The script's answer, or None when Redis cannot be reached (then: this process)."""
        if self.redis is None:
            return None
        try:
            wait = await self.redis.eval(
                _WINDOW,
                1,
                f"{PREFIX}{self.name}:{client}",
                self.per_client,
                self.window_s,
                mode,
                secrets.token_hex(8),
            )
        except self.errors as exc:
            log.warning("limit %s counted in this process only: Redis failed (%s)", self.name, exc)
            return None
        return max(0.0, float(wait))

    async def blocked(self, client: str) -> float:
        """0 when `client` is under its limit, else seconds until it is (counts nothing)."""
        wait = await self._window(client, "0")
        return self.local.blocked(client) if wait is None else wait

    async def count(self, client: str) -> None:
        if await self._window(client, "1") is None:
            self.local.count(client)

    async def retry_after(self, client: str) -> float:
        """0 when `client` may go on now (and counts it), else seconds to wait."""
        wait = await self._window(client, "2")
        return self.local.retry_after(client) if wait is None else wait


class SharedLeases:
    """How many searches each client has running or waiting on every worker (explore's
    per-client concurrency), in Redis: a lease per search, given back when it ends, or freed
    at its deadline if its worker died first."""

    def __init__(
        self, per_client: int, lease_s: float, redis: Any, errors: tuple[type[BaseException], ...]
    ) -> None:
        self.per_client, self.lease_s = per_client, lease_s
        self.redis, self.errors = redis, errors

    async def acquire(self, client: str) -> tuple[str | None, int]:
        """(lease, -1) when taken; (None, held) when the client already holds `held` on the
        servers; (None, -1) when Redis cannot be reached (then only this process counts)."""
        lease = secrets.token_hex(8)
        try:
            held = int(
                await self.redis.eval(
                    _LEASE,
                    1,
                    f"{PREFIX}explore:{client}",
                    self.per_client,
                    math.ceil(self.lease_s),
                    lease,
                )
            )
        except self.errors as exc:
            log.warning("explore leases counted in this process only: Redis failed (%s)", exc)
            return None, -1
        return (lease, -1) if held < 0 else (None, held)

    async def release(self, client: str, lease: str) -> None:
        try:
            await self.redis.zrem(f"{PREFIX}explore:{client}", lease)
        except self.errors as exc:  # the lease frees itself at its deadline
            log.warning("an explore lease is left to expire: Redis failed (%s)", exc)
