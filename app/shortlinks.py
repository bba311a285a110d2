"""Short, content-addressed links (Compiler Explorer's /z/... shape, issue 15 item 4).

A short link names a dashboard or editor address by the first characters of its SHA-256 in
base32: the same address always gets the same id, on every server that shares the store, and
an id cannot be walked to guess other people's links (50 bits). The store keeps the address
relative to the site (path and query, never a host), so a link made behind one proxy works
behind another, and only addresses of this app's own pages are taken (no open redirect). The
long form never depends on the store: it always still works.

Stores: SQLite by default (a file that outlives restarts), or the same Redis as the rooms
when PAGERACE_REDIS_URL is set, so that every worker sees every link.

Short links expire `ttl_s` after they were last made (PAGERACE_LINKS_TTL_DAYS; 0: never):
making the same link again starts its life again. An expired link answers 410 saying so
(not an unknown-link 404) for as long again, after which the store forgets it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio.to_thread

MIN_ID, MAX_ID = 10, 26  # base32 characters: 50 bits, then longer only on a collision
ID = re.compile(rf"[a-z2-7]{{{MIN_ID},{MAX_ID}}}")
# This app's own pages only: a dashboard (/s/{id}?...) or the editor (/edit?...).
TARGET = re.compile(r"/(?:s/[A-Za-z0-9._~%-]{1,200}|edit)(?:\?[\x21-\x7e]*)?")


class LinkStoreDown(Exception):
    """The store cannot be reached (Redis down, a read-only disk)."""


def digest_id(target: str, length: int = MIN_ID) -> str:
    raw = hashlib.sha256(target.encode()).digest()
    return base64.b32encode(raw).decode().rstrip("=").lower()[:length]


def check_target(target: str, max_chars: int) -> str | None:
    """Why `target` cannot be shortened, or None when it can."""
    if len(target) > max_chars:
        return f"{len(target)} characters; at most {max_chars}"
    if not TARGET.fullmatch(target):
        return "must be a path of this site's dashboard (/s/...) or editor (/edit?...)"
    return None


@dataclass(frozen=True, slots=True)
class Found:
    """A stored short link: the address it names, and when it was (last) made; `created`
    None for a record older than expiry (a Redis value of the bare address), which never
    expires."""

    target: str
    created: float | None

    def expired(self, ttl_s: float, now: float) -> bool:
        return bool(ttl_s) and self.created is not None and now - self.created > ttl_s


class LinkStore(Protocol):
    async def put(self, target: str) -> str: ...

    async def get(self, link_id: str) -> Found | None: ...

    def close(self) -> None: ...


class SqliteLinks:
    """Links in one SQLite file, made on the first link stored (reads of a missing file
    find nothing and create nothing)."""

    def __init__(self, path: Path, ttl_s: float = 0.0) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _open(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not self.path.exists():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")  # several workers share the file
            db.execute(
                "CREATE TABLE IF NOT EXISTS links "
                "(id TEXT PRIMARY KEY, target TEXT NOT NULL, created REAL NOT NULL)"
            )
            db.commit()
            self._db = db
        return self._db

    def _put(self, target: str) -> str:
        with self._lock:
            db = self._open(create=True)
            assert db is not None
            now = time.time()
            if self.ttl_s:
                # Expired links answer 410 for another ttl_s; then they are forgotten.
                db.execute("DELETE FROM links WHERE created < ?", (now - 2 * self.ttl_s,))
            for length in range(MIN_ID, MAX_ID + 1):
                link_id = digest_id(target, length)
                db.execute(
                    "INSERT OR IGNORE INTO links (id, target, created) VALUES (?, ?, ?)",
                    (link_id, target, now),
                )
                # Made again: its life starts again (a no-op for the row just inserted).
                db.execute(
                    "UPDATE links SET created = ? WHERE id = ? AND target = ?",
                    (now, link_id, target),
                )
                db.commit()
                row = db.execute("SELECT target FROM links WHERE id = ?", (link_id,)).fetchone()
                if row is not None and row[0] == target:
                    return link_id
            raise LinkStoreDown("no free id for this link")  # 130 bits collided: not real

    def _get(self, link_id: str) -> Found | None:
        with self._lock:
            db = self._open(create=False)
            if db is None:
                return None
            row = db.execute(
                "SELECT target, created FROM links WHERE id = ?", (link_id,)
            ).fetchone()
            return Found(str(row[0]), float(row[1])) if row is not None else None

    async def put(self, target: str) -> str:
        try:
            return await anyio.to_thread.run_sync(self._put, target)
        except sqlite3.Error as err:
            raise LinkStoreDown(str(err)) from err

    async def get(self, link_id: str) -> Found | None:
        try:
            return await anyio.to_thread.run_sync(self._get, link_id)
        except sqlite3.Error as err:
            raise LinkStoreDown(str(err)) from err

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class RedisLinks:
    """Links in Redis (PAGERACE_REDIS_URL): each a JSON record of its address and when it was
    made, kept for twice the TTL (expired, it answers 410 for the second half) or, with no
    TTL, for as long as the store lasts. A record of the bare address (made before links
    expired) stays valid."""

    PREFIX = "pagerace:link:"

    def __init__(self, url: str, timeout_s: float, ttl_s: float = 0.0) -> None:
        import redis.asyncio as aioredis  # only with PAGERACE_REDIS_URL (the [redis] extra)
        from redis.exceptions import RedisError

        self.redis = aioredis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.ttl_s = ttl_s
        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

    async def put(self, target: str) -> str:
        keep = max(1, round(2 * self.ttl_s)) if self.ttl_s else None
        try:
            for length in range(MIN_ID, MAX_ID + 1):
                link_id = digest_id(target, length)
                key = self.PREFIX + link_id
                record = json.dumps({"target": target, "created": time.time()})
                await self.redis.set(key, record, nx=True, ex=keep)
                found = _record(await self.redis.get(key))
                if found is not None and found.target == target:
                    # Made again: its life starts again.
                    await self.redis.set(key, record, ex=keep)
                    return link_id
        except self.errors as err:
            raise LinkStoreDown(str(err)) from err
        raise LinkStoreDown("no free id for this link")

    async def get(self, link_id: str) -> Found | None:
        try:
            value = await self.redis.get(self.PREFIX + link_id)
        except self.errors as err:
            raise LinkStoreDown(str(err)) from err
        return _record(value)

    def close(self) -> None:
        pass  # the connection pool closes with the process


def _record(value: object) -> Found | None:
    """A Redis value back into a link: a JSON record, or (made before links expired) the
    bare address."""
    if not isinstance(value, str):
        return None
    if not value.startswith("{"):
        return Found(value, None)
    try:
        raw = json.loads(value)
        return Found(str(raw["target"]), float(raw["created"]))
    except (ValueError, KeyError, TypeError):
        return None  # not a record this app wrote: as good as no link


def make_links(db: Path, redis_url: str | None, timeout_s: float, ttl_s: float = 0.0) -> LinkStore:
    return RedisLinks(redis_url, timeout_s, ttl_s) if redis_url else SqliteLinks(db, ttl_s)
