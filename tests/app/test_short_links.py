"""Short, content-addressed links (issue 15 item 4): POST /api/links, GET /z/{id}, kept in
SQLite by default and in the rooms' Redis when configured; the long link always works."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings, SettingsError
from app.shortlinks import Found, RedisLinks, SqliteLinks, check_target, digest_id
from scripts.servers import redis_server
from tests.app.conftest import SEED

LONG = f"/s/{SEED}?v=buggy&t=dio,dio,dio,kswapd&at=4&d=2940b5b6ba83"


@pytest.fixture
def stored(app: FastAPI, tmp_path: Path) -> Iterator[Path]:
    """The app's link store, in a file of this test's own."""
    before = app.state.links
    db = tmp_path / "links.sqlite3"
    app.state.links = SqliteLinks(db)
    yield db
    app.state.links.close()
    app.state.links = before


def test_a_short_link_names_the_long_one_by_its_content(client: TestClient, stored: Path) -> None:
    made = client.post("/api/links", json={"link": LONG})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["id"] == digest_id(LONG) and len(body["id"]) == 10
    assert body["short_url"] == f"http://testserver/z/{body['id']}"
    assert body["long_url"] == "http://testserver" + LONG
    # The same address, even given as a full URL of this site, gets the same id.
    again = client.post("/api/links", json={"link": "http://testserver" + LONG}).json()
    assert again["id"] == body["id"]
    followed = client.get(f"/z/{body['id']}", follow_redirects=False)
    assert followed.status_code == 303 and followed.headers["location"] == LONG
    # It is in a real file: a new store on the same file (a restart) still knows it.
    again_found = asyncio.run(SqliteLinks(stored).get(body["id"]))
    assert again_found is not None and again_found.target == LONG


def test_only_this_sites_pages_are_shortened(client: TestClient, stored: Path) -> None:
    for link in ("https://evil.example/", "//evil.example/s/x", "/api/rooms", "/z/abc", "/s/"):
        response = client.post("/api/links", json={"link": link})
        assert response.status_code == 422, link
        assert response.json()["errors"][0]["path"] == "link"
    assert client.post("/api/links", json={"link": "javascript:alert(1)"}).status_code == 422
    assert check_target("/edit?s=abc&v=x", 100) is None
    assert check_target("/s/x?" + "a" * 200, 100) == "205 characters; at most 100"


def test_unknown_and_malformed_short_links_say_so(client: TestClient, stored: Path) -> None:
    unknown = client.get("/z/aaaaaaaaaa", headers={"accept": "text/html"})
    assert unknown.status_code == 404 and "Unknown short link" in unknown.text
    assert "long links (/s/...) always work" in unknown.text
    cut = client.get("/z/abc", headers={"accept": "text/html"})
    assert cut.status_code == 404 and "probably cut" in cut.text
    assert not stored.exists()  # looking up creates nothing


def test_a_client_making_links_in_a_loop_is_slowed(app: FastAPI, stored: Path) -> None:
    client = TestClient(app, client=("203.0.113.9", 4000))
    limit = app.state.settings.links_per_minute
    codes = [
        client.post("/api/links", json={"link": f"{LONG}&n={i}"}).status_code
        for i in range(limit + 1)
    ]
    assert codes[:limit] == [201] * limit and codes[-1] == 429


def test_the_dashboard_offers_a_short_link(client: TestClient) -> None:
    page = client.get(f"/s/{SEED}?v=buggy").text
    assert 'id="btn-short-link"' in page and "/api/links" in page


@pytest.mark.redis
def test_redis_keeps_links_for_every_worker() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is missing (apt-get install redis-server)")

    async def both(url: str) -> tuple[str, Found | None, Found | None]:
        one, two = RedisLinks(url, 1.0), RedisLinks(url, 1.0)
        made = await one.put(LONG)
        return made, await two.get(made), await two.get("bbbbbbbbbb")

    with redis_server() as url:
        made, found, missing = asyncio.run(both(url))
    assert made == digest_id(LONG) and missing is None
    assert found is not None and found.target == LONG and found.created is not None


def _age(stored: Path, link_id: str, days: float) -> None:
    """Make the stored link `days` older, as time passing would."""
    with sqlite3.connect(stored) as db:
        db.execute("UPDATE links SET created = created - ? WHERE id = ?", (days * 86400.0, link_id))


def test_an_expired_short_link_is_a_410_saying_so(
    app: FastAPI, client: TestClient, stored: Path
) -> None:
    ttl = app.state.settings.links_ttl_days
    assert ttl > 0
    app.state.links = SqliteLinks(stored, app.state.settings.links_ttl_s)
    link_id = client.post("/api/links", json={"link": LONG}).json()["id"]
    _age(stored, link_id, ttl - 1)
    assert client.get(f"/z/{link_id}", follow_redirects=False).status_code == 303
    _age(stored, link_id, 2)
    gone = client.get(f"/z/{link_id}", headers={"accept": "text/html"}, follow_redirects=False)
    assert gone.status_code == 410, gone.text
    assert "This short link has expired" in gone.text
    assert f"last {ttl:g} days" in gone.text and "PAGERACE_LINKS_TTL_DAYS" in gone.text
    assert "long link (/s/...), which never expires" in gone.text
    # The long link it named still works, and making the short link again revives it.
    assert client.get(LONG).status_code == 200
    assert client.post("/api/links", json={"link": LONG}).json()["id"] == link_id
    assert client.get(f"/z/{link_id}", follow_redirects=False).status_code == 303
    # Twice the TTL after it was made, the store forgets it: an unknown link, 404.
    _age(stored, link_id, 2 * ttl + 1)
    client.post("/api/links", json={"link": f"{LONG}&n=1"})  # a put purges what is forgotten
    assert client.get(f"/z/{link_id}").status_code == 404


def test_with_no_ttl_links_never_expire(stored: Path) -> None:
    store = SqliteLinks(stored, 0.0)
    link_id = asyncio.run(store.put(LONG))
    _age(stored, link_id, 100_000)
    found = asyncio.run(store.get(link_id))
    assert found is not None and not found.expired(0.0, time.time())
    assert found.expired(86400.0, time.time())


def test_the_ttl_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERACE_LINKS_TTL_DAYS", "7")
    assert Settings.from_env().links_ttl_s == 7 * 86400
    monkeypatch.setenv("PAGERACE_LINKS_TTL_DAYS", "-1")
    with pytest.raises(SettingsError, match="PAGERACE_LINKS_TTL_DAYS"):
        Settings.from_env()


@pytest.mark.redis
def test_redis_links_expire_and_old_records_still_work() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is missing (apt-get install redis-server)")

    async def check(url: str) -> None:
        store = RedisLinks(url, 1.0, ttl_s=3600.0)
        made = await store.put(LONG)
        key = RedisLinks.PREFIX + made
        # Kept for twice the TTL: expired, it still answers 410 for the second half.
        assert 3600 < await store.redis.ttl(key) <= 7200
        found = await store.get(made)
        assert found is not None and not found.expired(3600.0, time.time())
        assert found.expired(3600.0, time.time() + 3601)
        # A record from before links expired: the bare address, never expired.
        await store.redis.set(RedisLinks.PREFIX + "cccccccccc", LONG)
        old = await store.get("cccccccccc")
        assert old is not None and old.target == LONG and old.created is None
        assert not old.expired(3600.0, time.time())
        # Not a record this app wrote: no link.
        await store.redis.set(RedisLinks.PREFIX + "dddddddddd", "{not json")
        assert await store.get("dddddddddd") is None

    with redis_server() as url:
        asyncio.run(check(url))
