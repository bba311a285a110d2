"""Per-client limits across workers (issue 17): with the rooms in Redis, room creation, room
lookups that miss, short links and explore's per-client concurrency are counted once for
every process, not once per process (app/limits.py). Two apps on one Redis stand for two
workers. Without redis-server this skips locally and fails in CI, like test_rooms_redis.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import engine
from app.config import Settings
from app.limits import SharedLeases, SharedLimit
from app.main import create_app
from app.rooms import RoomSettings
from scripts.servers import redis_server

pytestmark = pytest.mark.redis
SEED = "madv-free-vs-dio"
HOSTILE = ("192.0.2.7", 5000)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        reason = "redis-server is missing (apt-get install redis-server)"
        if os.environ.get("CI") == "true" or os.environ.get("PAGERACE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with redis_server() as url:
        yield url


def worker(
    catalog: Mapping[str, engine.Scenario], url: str, tmp_path: Path, **rooms: Any
) -> FastAPI:
    settings = replace(Settings(), links_per_minute=3, links_db=tmp_path / "links.sqlite3")
    return create_app(catalog, settings, RoomSettings(redis_url=url, **rooms))


def test_room_creation_is_limited_across_workers(
    catalog: Mapping[str, engine.Scenario], redis_url: str, tmp_path: Path
) -> None:
    a = worker(catalog, redis_url, tmp_path, client_rooms=3, client_window_s=60.0)
    b = worker(catalog, redis_url, tmp_path, client_rooms=3, client_window_s=60.0)
    with TestClient(a, client=HOSTILE) as one, TestClient(b, client=HOSTILE) as two:
        codes = [c.post("/api/rooms", json={}).status_code for c in (one, two, one)]
        assert codes == [201, 201, 201]
        # Its fourth room, on either worker, is refused: the count is the servers', not one's.
        for client in (two, one):
            refused = client.post("/api/rooms", json={})
            assert refused.status_code == 429, refused.text
            assert 0 < int(refused.headers["retry-after"]) <= 60
    # Everyone else still gets rooms (a third worker: an app's Redis pool is bound to the
    # event loop of the client that opened it).
    c = worker(catalog, redis_url, tmp_path, client_rooms=3, client_window_s=60.0)
    with TestClient(c, client=("192.0.2.8", 5000)) as other:
        assert other.post("/api/rooms", json={}).status_code == 201


def test_room_guessing_and_short_links_are_limited_across_workers(
    catalog: Mapping[str, engine.Scenario], redis_url: str, tmp_path: Path
) -> None:
    a = worker(catalog, redis_url, tmp_path, client_misses=4)
    b = worker(catalog, redis_url, tmp_path, client_misses=4)
    hostile = ("192.0.2.9", 5000)
    with TestClient(a, client=hostile) as one, TestClient(b, client=hostile) as two:
        misses = [c.get(f"/live/zzzzzzz{n}").status_code for n, c in enumerate((one, two) * 2)]
        assert misses == [404] * 4
        assert one.get("/live/zzzzzzzz").status_code == 429
        assert two.get("/live/zzzzzzzy").status_code == 429
        made = [
            c.post("/api/links", json={"link": f"/s/{SEED}?at={n}"}).status_code
            for n, c in enumerate((one, two, one))
        ]
        assert made == [201] * 3
        refused = two.post("/api/links", json={"link": f"/s/{SEED}?at=9"})
        assert refused.status_code == 429, refused.text


def test_a_clients_searches_are_counted_on_every_worker(
    catalog: Mapping[str, engine.Scenario], redis_url: str, tmp_path: Path
) -> None:
    """A client whose share of searches runs on another worker is refused here (429), and
    gets its share back when they end."""
    app = worker(catalog, redis_url, tmp_path)
    shared = app.state.explorer.shared
    assert isinstance(shared, SharedLeases)
    per_client = app.state.settings.explore_per_client
    other_worker = SharedLeases(per_client, 60.0, shared.redis, shared.errors)
    with TestClient(app, client=("192.0.2.10", 5000)) as client:

        async def hold() -> list[str]:
            leases = []
            for _ in range(per_client):
                lease, _held = await other_worker.acquire("192.0.2.10")
                assert lease is not None
                leases.append(lease)
            return leases

        leases = client.portal.call(hold) if client.portal else []
        refused = client.post("/api/explore", json={"scenario": SEED, "variant": "buggy"})
        assert refused.status_code == 429, refused.text
        assert "on this server's workers" in refused.json()["detail"]
        assert "retry-after" in refused.headers

        async def give_back() -> None:
            for lease in leases:
                await other_worker.release("192.0.2.10", lease)

        if client.portal:
            client.portal.call(give_back)
        done = client.post("/api/explore", json={"scenario": SEED, "variant": "buggy"})
        assert done.status_code == 200, done.text

        async def free_again() -> tuple[str | None, int]:
            # The search gave its own lease back when it ended: the share is whole again.
            await asyncio.sleep(0.1)
            return await other_worker.acquire("192.0.2.10")

        lease, _ = client.portal.call(free_again) if client.portal else (None, 0)
        assert lease is not None


def test_leases_free_themselves_at_their_deadline(redis_url: str) -> None:
    async def check() -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        redis = aioredis.from_url(redis_url, decode_responses=True)
        leases = SharedLeases(1, 1.0, redis, (RedisError, OSError))
        first, _ = await leases.acquire("198.51.100.1")
        assert first is not None
        assert await leases.acquire("198.51.100.1") == (None, 1)
        await asyncio.sleep(1.3)  # its worker died: nobody gave it back
        again, _ = await leases.acquire("198.51.100.1")
        assert again is not None
        await redis.aclose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, check()).result()


def test_a_redis_fault_falls_back_to_this_process() -> None:
    """While Redis cannot be reached the limit still holds, in this process."""

    class Down:
        async def eval(self, *args: Any) -> Any:
            raise OSError("connection refused")

    async def check() -> None:
        limit = SharedLimit("rooms", 2, 60.0, Down(), (OSError,))
        assert limit.shared
        assert [await limit.retry_after("c") for _ in range(2)] == [0.0, 0.0]
        assert await limit.retry_after("c") > 0
        leases = SharedLeases(1, 60.0, Down(), (OSError,))
        assert await leases.acquire("c") == (None, -1)  # not refused: this process counts

    asyncio.run(check())
