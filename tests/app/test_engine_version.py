"""Links carry the engine version they were made with (review M3, issue 15 item 4): `e=`.

A link from another engine replays with a warning that names both versions and what changed,
and keeps its e= in the links the page makes, so reloading or forwarding it keeps the warning.
Links without e= (older ones, or written by hand) keep working without a warning.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

import engine
import engine.version
from app.runref import RunRef

SEED = "madv-free-vs-dio"


def page_url(html: str) -> str:
    """The address the page shows (and the HX-Replace-Url of its frames): the island's."""
    found = re.search(r'"page_url": ?"([^"]+)"', html)
    assert found, "the page's island names its own address"
    return found.group(1).replace("\\u0026", "&")


def test_a_made_link_carries_this_engine_version() -> None:
    ref = RunRef(variant="buggy", schedule=("dio",), at=1, digest="abc123abc123")
    assert ref.query() == f"v=buggy&t=dio&at=1&d=abc123abc123&e={engine.ENGINE_VERSION}"
    # No digest, no scenario named: a bare page address carries no version either.
    assert RunRef(variant="buggy").query() == "v=buggy"
    # An old link's version is kept as the link has it.
    assert "&e=7" in RunRef(digest="abc123abc123", engine_version="7").query()


def test_this_engines_link_has_no_warning(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    t = ",".join(bug_schedule)
    html = client.get(f"/s/{SEED}?v=buggy&t={t}&e={engine.ENGINE_VERSION}").text
    assert "engine version" not in html
    assert f"&e={engine.ENGINE_VERSION}" in page_url(html)
    # A link from before versioned links: it works, with no warning.
    html = client.get(f"/s/{SEED}?v=buggy&t={t}").text
    assert "engine version" not in html
    assert "✖ lost_write" in html


def test_an_older_engines_link_warns_and_keeps_its_version(
    client: TestClient, bug_schedule: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.version, "ENGINE_VERSION", 3)
    monkeypatch.setattr(engine, "ENGINE_VERSION", 3)
    changes = {**engine.version.CHANGES, 2: "try_to_unmap_one split in two", 3: "a new step"}
    monkeypatch.setattr(engine.version, "CHANGES", changes)
    t = ",".join(bug_schedule)
    response = client.get(f"/s/{SEED}?v=buggy&t={t}&e=1")
    assert response.status_code == 200
    html = response.text
    assert "made with engine version 1; this server runs version 3" in html
    assert "2: try_to_unmap_one split in two; 3: a new step" in html
    # The replay still runs, and the page's own address keeps e=1 (and so the warning).
    assert "✖ lost_write" in html
    assert "&e=1" in page_url(html)
    frame = client.get(f"/s/{SEED}/frame?v=buggy&t={t}&e=1")
    assert "&e=1" in frame.headers["HX-Replace-Url"]
    assert "made with engine version 1" in frame.text


def test_a_newer_or_malformed_version_is_named(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    t = ",".join(bug_schedule)
    newer = engine.ENGINE_VERSION + 1
    html = client.get(f"/s/{SEED}?v=buggy&t={t}&e={newer}").text
    assert f"made with engine version {newer}, newer than this server" in html
    assert f"&e={newer}" in page_url(html)
    for bad in ("x1", "0", "1.5", "9" * 30):
        response = client.get(f"/s/{SEED}?v=buggy&t={t}&e={bad}")
        assert response.status_code == 200
        assert "is not an engine version" in response.text, bad
        assert f"&e={engine.ENGINE_VERSION}" in page_url(response.text)


def test_changes_since_lists_the_versions_after_it() -> None:
    assert engine.changes_since(engine.ENGINE_VERSION) == ()
    assert engine.ENGINE_VERSION in engine.version.CHANGES
    assert len(engine.changes_since(0)) == engine.ENGINE_VERSION
