"""Embeds (issue 15 item 8, review §5.9): /embed/s/... is the dashboard at a link's step,
read-only, framable by other sites (its own frame-ancestors policy), with no script."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

import engine
from app.config import Settings, SettingsError
from app.main import create_app

SEED = "madv-free-vs-dio"
AT_8 = "v=buggy&t=dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd&at=8"


def test_an_embed_is_framable_read_only_and_runs_no_script(client: TestClient) -> None:
    response = client.get(f"/embed/s/{SEED}?{AT_8}")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors *" in csp and "script-src 'none'" in csp
    assert "x-frame-options" not in response.headers
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    html = response.text
    assert "<script" not in html and "hx-get" not in html
    assert "Step dio" not in html  # nothing to drive: read-only
    assert "step 8 of 8" in html and "try_to_unmap_one" in html
    # Its steps stay in the frame; "Open in pagerace" is the full dashboard at that step.
    assert f'href="/embed/s/{SEED}?v=buggy&amp;t=' in html and "at=7" in html
    assert (
        f'href="/s/{SEED}?v=buggy&amp;t=dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd&amp;at=8'
        in html
    )
    assert 'target="_blank" rel="noopener"' in html


def test_every_other_page_still_refuses_framing(client: TestClient) -> None:
    for path in ("/", f"/s/{SEED}?{AT_8}", "/edit", "/embed/s/no-such-scenario"):
        response = client.get(path)
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path


def test_who_may_frame_an_embed_is_a_setting(
    monkeypatch: pytest.MonkeyPatch, catalog: Mapping[str, engine.Scenario]
) -> None:
    monkeypatch.setenv("PAGERACE_EMBED_ANCESTORS", "https://lwn.net  https://*.example.edu")
    settings = Settings.from_env()
    assert settings.embed_ancestors == "https://lwn.net https://*.example.edu"
    client = TestClient(create_app(catalog, replace(settings)))
    csp = client.get(f"/embed/s/{SEED}").headers["content-security-policy"]
    assert csp.endswith("frame-ancestors https://lwn.net https://*.example.edu")
    for bad in ("https://a.org; script-src *", "'unsafe-inline'", "data:x"):
        monkeypatch.setenv("PAGERACE_EMBED_ANCESTORS", bad)
        with pytest.raises(SettingsError, match="PAGERACE_EMBED_ANCESTORS"):
            Settings.from_env()


def test_an_embed_of_a_custom_scenario_and_a_bad_link(client: TestClient) -> None:
    assert client.get(f"/embed/s/{SEED}?at=abc").status_code == 200  # a notice, as on /s/
    assert "not a step number" in client.get(f"/embed/s/{SEED}?at=abc").text
    assert client.get("/embed/s/x?s=notbase64!").status_code == 400
