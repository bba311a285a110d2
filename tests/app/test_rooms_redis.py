"""Rooms across processes: two `pagerace serve` processes sharing rooms through a real Redis.

The test starts its own redis-server on a free loopback port (installed by scripts/test.sh);
without one it skips locally and fails in CI, like the browser tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from app.rooms import RedisBroker, RoomSettings, token_hash
from app.runref import RunRef
from scripts.servers import PAGERACE_SERVE, app_server, redis_server

pytestmark = pytest.mark.redis
SEED = "madv-free-vs-dio"
BUG = "dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd,dio,dio,dio,kswapd,kswapd".split(",")  # noqa: SIM905


def _required(reason: str) -> None:
    if os.environ.get("CI") == "true" or os.environ.get("PAGERACE_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        _required("redis-server is missing (apt-get install redis-server)")
    with redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def servers(redis_url: str) -> Iterator[tuple[str, str]]:
    """Two `pagerace serve` processes sharing rooms through the same Redis."""
    env = {"PAGERACE_REDIS_URL": redis_url}
    with (
        app_server(PAGERACE_SERVE, env, quiet=True) as a,
        app_server(PAGERACE_SERVE, env, quiet=True) as b,
    ):
        yield a, b


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as res:
        created: dict[str, Any] = json.loads(res.read())
        return created


def _ws(base: str, path: str) -> ClientConnection:
    return connect(base.replace("http://", "ws://") + path, open_timeout=10)


def _recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return message


def test_follower_on_one_process_mirrors_a_presenter_on_the_other(
    servers: tuple[str, str],
) -> None:
    a, b = servers
    room = _post(a + "/api/rooms", {"scenario": SEED, "variant": "buggy"})
    assert room["follow_url"] == f"{a}/live/{room['room']}"
    path = f"/ws/rooms/{room['room']}"
    with (
        _ws(b, path) as far,
        _ws(a, path) as near,
        _ws(b, path + f"?token={room['presenter_token']}") as presenter,
    ):
        for follower in (far, near):
            assert _recv(follower)["role"] == "follower"
            assert _recv(follower)["at"] == 0
        assert _recv(presenter)["role"] == "presenter"
        assert _recv(presenter)["type"] == "state"
        for actor in BUG:
            presenter.send(json.dumps({"type": "step", "actor": actor}))
        for follower in (far, near):
            got = [_recv(follower) for _ in BUG]
            assert [m["index"] for m in got] == list(range(1, len(BUG) + 1))
            assert [m["actor"] for m in got] == BUG
            assert [m["seq"] for m in got] == list(range(1, len(BUG) + 1))
            assert "lost_write" in {v["name"] for v in got[-1]["violations"]}
        # A follower's attempt to drive is refused on either process and changes nothing.
        far.send(json.dumps({"type": "back"}))
        assert _recv(far)["type"] == "error"
        presenter.send(json.dumps({"type": "goto", "index": 4}))
        assert (_recv(near)["type"], _recv(far)["at"]) == ("state", 4)
    # A late joiner on the other process starts at the current step.
    with _ws(a, path) as late:
        hello = _recv(late)
        state = _recv(late)
        assert (state["type"], state["at"], state["seq"]) == ("state", 4, hello["seq"])
        assert state["schedule"] == BUG
    # The follower page renders the room's step on a process that never drove it.
    with urllib.request.urlopen(f"{a}/live/{room['room']}", timeout=10) as res:
        page = res.read().decode()
    assert "step 4 · kswapd" in page


def test_redis_broker_order_expiry_and_token(redis_url: str) -> None:
    async def scenario() -> None:
        broker = RedisBroker(RoomSettings(idle_s=1.0, max_rooms=1000), redis_url)
        try:
            await broker.create("abcdefgh", token_hash("secret"), RunRef(SEED, "buggy"))
            record = await broker.get("abcdefgh")
            assert record is not None
            assert record.token_hash == token_hash("secret")
            assert record.snapshot == RunRef(SEED, "buggy")
            async with broker.subscribe("abcdefgh") as sub:
                for n in range(1, 51):
                    snap = RunRef(SEED, "buggy", schedule=("dio",) * n, at=n)
                    assert await broker.publish("abcdefgh", snap, {"type": "state", "n": n}) == n
                got = [await asyncio.wait_for(sub.next(), 5) for _ in range(50)]
            assert [item[0] for item in got if item] == list(range(1, 51))
            assert json.loads(got[-1][1] if got[-1] else "{}") == {
                "seq": 50,
                "type": "state",
                "n": 50,
            }
            record = await broker.get("abcdefgh")
            assert record is not None
            assert (record.seq, record.snapshot.at) == (50, 50)
            await asyncio.sleep(2.2)  # idle TTL of 1 s (Redis expires keys by the second)
            assert await broker.get("abcdefgh") is None
        finally:
            await broker.close()

    # In a thread of its own: a browser test's sync Playwright may own this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


def test_redis_broker_encodes_large_messages_off_the_event_loop(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 item 2: the broker's copy of a state (the whole run) and a snapshot that
    carries a custom scenario's document are encoded in a worker thread, not on the loop."""
    on_loop: list[tuple[str, bool]] = []
    real = json.dumps

    def spy(obj: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(obj, dict) and ("steps" in obj or isinstance(obj.get("scenario"), dict)):
            try:
                asyncio.get_running_loop()
                running = True
            except RuntimeError:
                running = False
            on_loop.append(("steps" if "steps" in obj else "snapshot", running))
        return real(obj, *args, **kwargs)

    async def scenario() -> None:
        broker = RedisBroker(RoomSettings(idle_s=5.0, max_rooms=1000), redis_url)
        custom = RunRef({"id": "mine", "title": "x" * 1000}, "buggy")
        try:
            await broker.create("offloopa", token_hash("secret"), custom)
            message = {"type": "state", "steps": [{"note": "y" * 1000}] * 50}
            assert await broker.publish("offloopa", custom, message) == 1
        finally:
            await broker.close()

    monkeypatch.setattr(json, "dumps", spy)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
    assert {kind for kind, _ in on_loop} == {"steps", "snapshot"}, on_loop
    assert not any(running for _, running in on_loop), on_loop
