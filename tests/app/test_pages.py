"""Server-rendered pages: the catalog, and dashboard links that show their step without JS."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

import engine
import engine.lang.catalog
from app.config import Settings
from app.links import encode_doc
from app.main import create_app

SEED = "madv-free-vs-dio"


def link(schedule: tuple[str, ...], at: int, variant: str | None = None, digest: str = "") -> str:
    query = f"t={','.join(schedule)}&at={at}"
    if variant:
        query += f"&v={variant}"
    if digest:
        query += f"&d={digest}"
    return f"/s/{SEED}?{query}"


def test_catalog_lists_every_scenario_with_badges(
    client: TestClient, catalog: Mapping[str, engine.Scenario]
) -> None:
    page = client.get("/").text
    assert page.startswith("<!doctype html>")
    for scenario in catalog.values():
        assert f'data-scenario="{scenario.id}"' in page
        assert str(escape(scenario.title)) in page
    assert "6c8e2a256915 · fixed in 5.18" in page
    assert "✖ loses data on 5.17" in page
    assert "✓ safe on 5.18" in page
    assert "cdn" not in page.lower()


def test_catalog_keeps_seed_thread_first(
    client: TestClient, catalog: Mapping[str, engine.Scenario]
) -> None:
    page = client.get("/").text
    ids = re.findall(r'data-scenario="([a-z0-9-]+)"', page)
    assert ids == list(catalog)


def test_catalog_filter_returns_partial_for_htmx(client: TestClient) -> None:
    response = client.get("/", params={"q": "O_DIRECT"}, headers={"HX-Request": "true"})
    assert "<html" not in response.text
    assert f'data-scenario="{SEED}"' in response.text
    none = client.get("/", params={"q": "zzzz-nothing"}, headers={"HX-Request": "true"}).text
    assert "No scenario matches" in none
    assert 'data-scenario="' not in none


def test_catalog_tag_filter(client: TestClient, catalog: Mapping[str, engine.Scenario]) -> None:
    tag = catalog[SEED].tags[0]
    page = client.get("/", params={"tag": tag}).text
    ids = set(re.findall(r'data-scenario="([a-z0-9-]+)"', page))
    assert ids == {sid for sid, sc in catalog.items() if tag in sc.tags}


def test_dashboard_link_renders_that_step_on_the_server(
    client: TestClient, seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    at = len(bug_schedule) - 1
    run = engine.run_schedule(seed, engine.make_config(seed), bug_schedule)
    step = run.steps[at - 1]
    page = client.get(link(bug_schedule, at, digest=seed.digest)).text
    assert f'step <strong id="at">{at}</strong> of' in page
    assert str(escape(step.note)) in page
    assert f"<code>{escape(step.function)}</code>" in page
    first_page = step.state.pages[0]
    assert f'data-field="{first_page.id}.refcount"' in page
    refcount_row = page.split(f'data-field="{first_page.id}.refcount"')[1][:400]
    assert f"<dd>{first_page.refcount}" in refcount_row
    if step.changes:
        assert 'class="row changed"' in page


def test_dashboard_at_the_end_shows_the_violation(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    page = client.get(link(bug_schedule, len(bug_schedule))).text
    assert 'id="violation-banner"' in page
    assert "✖ lost_write" in page


def test_same_schedule_on_the_fixed_kernel_keeps_the_data(
    client: TestClient, seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    fixed = next(v.name for v in seed.variants if not seed.expect[v.name].violations)
    page = client.get(link(bug_schedule, len(bug_schedule), variant=fixed)).text
    assert "✖ lost_write" not in page
    assert 'aria-pressed="true" data-variant="' + fixed in page


def test_stale_digest_is_a_notice(client: TestClient, bug_schedule: tuple[str, ...]) -> None:
    response = client.get(link(bug_schedule, 2, digest="000000000000"))
    assert response.status_code == 200
    assert "changed since the link was made" in response.text


def test_invalid_schedule_entry_is_a_notice_not_an_error(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    schedule = (*bug_schedule[:2], "nobody", *bug_schedule[2:])
    response = client.get(link(schedule, len(schedule)))
    assert response.status_code == 200
    assert "does not apply" in response.text
    assert 'step <strong id="at">2</strong> of <span id="total">2</span>' in response.text


def test_bad_at_and_past_end_are_notices(client: TestClient) -> None:
    assert "not a step number" in client.get(f"/s/{SEED}?at=abc").text
    assert "past the end" in client.get(f"/s/{SEED}?at=50").text


def test_unknown_scenario_page_is_404_html(client: TestClient) -> None:
    response = client.get("/s/no-such-thing")
    assert response.status_code == 404
    assert "No scenario called" in response.text


def test_custom_scenario_travels_in_the_link(client: TestClient, seed: engine.Scenario) -> None:
    doc = json.loads(json.dumps(seed.document))
    doc["title"] = "<script>alert(1)</script> my variant"
    token = encode_doc(doc)
    page = client.get(f"/s/{doc['id']}?s={token}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; my variant" in page
    assert f"s={token}" in page  # buttons keep carrying the scenario


def test_broken_custom_link_is_400(client: TestClient, seed: engine.Scenario) -> None:
    assert client.get(f"/s/{SEED}?s=garbage!!").status_code == 400
    doc = json.loads(json.dumps(seed.document))
    doc["actors"][0]["ops"][0] = {"no_such_op": {}}
    response = client.get(f"/s/{SEED}?s={quote(encode_doc(doc))}")
    assert response.status_code == 400
    assert "actors[0].ops[0]" in response.text


def test_frame_tells_htmx_the_page_url(
    client: TestClient, seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    response = client.get(
        f"/s/{SEED}/frame?t={','.join(bug_schedule)}&at=1", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'hx-swap-oob="true"' in response.text
    url = response.headers["HX-Replace-Url"]
    assert url.startswith(f"/s/{SEED}?") and "at=1" in url and f"d={seed.digest}" in url


def test_find_bug_loads_the_shortest_violation(client: TestClient) -> None:
    response = client.get(f"/s/{SEED}/find-bug")
    assert response.status_code == 200
    assert "Found lost_write" in response.text  # the run itself may stop short of it: at=8


def test_outcomes_fragment_has_totals_and_examples(client: TestClient) -> None:
    text = client.get(f"/s/{SEED}/outcomes").text
    assert 'id="totals"' in text
    assert "interleavings" in text
    assert "Load example" in text
    assert "✖ lost_write" in text


def test_pages_load_only_local_assets(client: TestClient) -> None:
    page = client.get(f"/s/{SEED}").text
    # What the page loads (scripts, images, stylesheets); <a href> to git.kernel.org is a link
    # the user may follow, not an asset.
    sources = re.findall(r'src="([^"]+)"', page) + re.findall(r'<link [^>]*href="([^"]+)"', page)
    assert any("/static/app.css" in src for src in sources)
    for src in sources:
        assert not src.startswith(("http:", "https:", "//")), src
    for href in re.findall(r'<a [^>]*href="(https?:[^"]+)"', page):
        assert href.startswith("https://git.kernel.org/"), href
    for src in re.findall(r'<script src="([^"]+)"', page):
        assert client.get(src).status_code == 200, src
    assert "<script>" not in page  # no inline scripts (CSP-ready)


def test_custom_scenario_link_supports_find_bug(client: TestClient, seed: engine.Scenario) -> None:
    token = encode_doc(json.loads(json.dumps(seed.document)))
    response = client.get(f"/s/{SEED}/find-bug?s={token}")
    assert response.status_code == 200
    assert "Found lost_write" in response.text
    assert f"s={token}" in response.headers["HX-Replace-Url"]


def test_find_bug_answers_a_scenario_too_large_to_cover(client: TestClient) -> None:
    # Five actors: the exhaustive search would be cut off with no verdict; Find a bug stops
    # at the first bad interleaving (engine.find_first) and says the space was not covered.
    from scripts.bench_engine import family

    token = encode_doc(family(5))
    response = client.get(f"/s/growth-5/find-bug?s={token}")
    assert response.status_code == 200
    assert "Found lost_write after" in response.text
    assert "before the search covered every interleaving" in response.text


def test_find_bug_lands_on_the_point_of_no_return(client: TestClient) -> None:
    response = client.get(f"/s/{SEED}/outcomes")  # the exhaustive result, now cached
    assert response.status_code == 200
    response = client.get(f"/s/{SEED}/find-bug")
    assert "is the point of no return" in response.text
    url = response.headers["HX-Replace-Url"]
    assert "at=" in url
    example = engine.load_catalog()[SEED]
    bad = next(
        o for o in engine.explore(example, engine.make_config(example)).outcomes if o.violations
    )
    assert f"at={bad.no_return}" in url


def test_follower_frame_repeats_find_a_bug_only_from_the_cache(
    catalog: Mapping[str, engine.Scenario], bug_schedule: tuple[str, ...]
) -> None:
    # UX review H1: followers see the presenter's "Found ..." summary; a follower's frame
    # reads the explorer's cache only, and a frame without it is not kept in the frame cache.
    client = TestClient(create_app(catalog))  # its own explorer: an empty cache
    url = link(bug_schedule, len(bug_schedule))
    frame = url.replace("?", "/frame?", 1) + "&live=1&found=1"
    before = client.get(frame).text
    assert "Found lost_write" not in before  # nothing explored yet, and nothing started
    found = client.get(url.replace("?", "/find-bug?", 1))
    assert found.status_code == 200
    # The presenter's page now shows the schedule Find a bug chose: the followers' frame too.
    frame = found.headers["HX-Replace-Url"].replace("?", "/frame?", 1) + "&live=1&found=1"
    after = client.get(frame).text
    assert "Found lost_write" in after and "interleavings end this way" in after
    other = link(bug_schedule[:-1], len(bug_schedule) - 1).replace("?", "/frame?", 1)
    assert "Found" not in client.get(other + "&live=1&found=1").text  # not the shortest one


def test_the_play_delay_comes_from_the_settings(catalog: Mapping[str, engine.Scenario]) -> None:
    # dashboard.js steps at the server's interval (the /ws/run play uses the same setting).
    client = TestClient(create_app(catalog, replace(Settings(), play_delay_ms=250)))
    for path in (f"/s/{SEED}", f"/s/{SEED}?present=1", "/edit", "/"):
        assert re.search(r'<body [^>]*data-play-delay="250"', client.get(path).text), path


def test_a_shared_link_unfurls_with_title_kernel_and_verdict(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    t = ",".join(bug_schedule)
    page = client.get(f"/s/madv-free-vs-dio?v=buggy&t={t}", headers={"accept": "text/html"}).text
    title = re.search(r'<meta property="og:title" content="([^"]*)">', page)
    description = re.search(r'<meta property="og:description" content="([^"]*)">', page)
    assert title and "kernel 5.17" in title.group(1)
    assert description and description.group(1).startswith("Kernel 5.17 (buggy): breaks lost_write")
    start = client.get("/s/madv-free-vs-dio?v=fixed", headers={"accept": "text/html"}).text
    assert 'content="Kernel 5.18 (fixed): no invariant broken at step 0 of 0.' in start


def test_an_unknown_scenario_suggests_the_nearest_ids(client: TestClient) -> None:
    """Review M3: `/s/madv-free-vs-dio-old` listed the catalog but named no nearest match."""
    response = client.get(f"/s/{SEED}-old")
    assert response.status_code == 404
    assert f"did you mean &#39;{SEED}&#39;?" in response.text
    api = client.post("/api/run", json={"scenario": "madv-free-vs-dia"})
    assert api.status_code == 404 and f"did you mean '{SEED}'" in api.json()["detail"]
    far = client.get("/s/zzzzzzzz")
    assert far.status_code == 404 and "did you mean" not in far.text


def test_the_steps_after_one_that_does_not_apply_are_named(client: TestClient) -> None:
    """Review M3: with `t=dio,dio,cpu1,kswapd` the steps after the bad one were dropped
    silently."""
    page = client.get(f"/s/{SEED}?v=buggy&t=dio,dio,cpu1,kswapd,dio").text
    assert "Showing the 2 step(s) before it" in page
    assert "its 2 later step(s) (kswapd,dio) are not replayed either" in page
    last = client.get(f"/s/{SEED}?v=buggy&t=dio,dio,cpu1").text
    assert "Showing the 2 step(s) before it." in last


def test_each_actor_shows_what_its_next_step_would_do(client: TestClient) -> None:
    """Issue 15 item 7 (Spectacle's successor view): before a step is taken, its actor's
    column says what it would do, in the words the step itself will use."""
    page = client.get(f"/s/{SEED}?v=buggy").text
    assert 'aria-describedby="preview-1"' in page
    assert "ptep_get_lockless: dio reads the PTE at buf: P0" in page
    assert "isolate_lru_folio: kswapd takes P0 off" in page
    # What the preview said is what the step then does.
    stepped = client.get(f"/s/{SEED}?v=buggy&t=dio&at=1").text
    assert "dio reads the PTE at buf: P0" in stepped
    # A finished actor has no preview, only its reason.
    schedule = "dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd,dio,dio,dio,kswapd,kswapd"
    done = client.get(f"/s/{SEED}?v=buggy&t={schedule}").text
    assert 'id="preview-' not in done


def test_an_old_links_warning_names_the_version_it_was_made_on(client: TestClient) -> None:
    """Review M3 / issue 15 item 4: a link from an older version says what changed, naming
    the scenario's previous text (engine/scenarios/history.json, from git)."""
    history = json.loads(
        (engine.lang.catalog.CATALOG_DIR / "history.json").read_text(encoding="utf-8")
    )
    current = engine.load_catalog()
    older = [
        (sha, e)
        for sha, e in history.items()
        if e["id"] in current and sha != current[e["id"]].sha256
    ]
    if not older:
        pytest.skip("no catalog scenario has an earlier version in git")
    sha, entry = older[0]
    for d in (entry["digest"], sha):
        page = client.get(f"/s/{entry['id']}?d={d}").text
        assert "changed since the link was made" in page
        assert (
            f"the link was made on its version of {entry['date']} (commit {entry['commit']}" in page
        )
        assert f"git show {entry['commit']}:{entry['path']}" in page
    unknown = client.get(f"/s/{SEED}?d=000000000000").text
    assert "no earlier version of this catalog scenario has that digest" in unknown
