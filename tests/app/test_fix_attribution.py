"""Fix attribution on the dashboard (issue 15 item 2): for the violation of the run shown,
each switch that, flipped alone, makes it unreachable in every interleaving; the same answer
as engine.attribute, searched through the app's explorer."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

import pytest
from fastapi.testclient import TestClient

import engine
from tests.app.conftest import SEED


def _lines(text: str) -> list[str]:
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", p)).split())
        for p in re.findall(r'<p class="fix-line".*?</p>', text, re.S)
    ]


def test_the_madv_free_lost_write_is_removed_by_the_refcount_check(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    t = ",".join(bug_schedule)
    page = client.get(f"/s/{SEED}?v=buggy&t={t}").text
    assert 'id="btn-fix"' in page and f"/s/{SEED}/fix?v=buggy" in html.unescape(page)
    response = client.get(f"/s/{SEED}/fix?v=buggy&t={t}")
    assert response.status_code == 200
    assert _lines(response.text) == [
        "lost_write on kernel 5.17: flipping one switch removes it from every interleaving: "
        "lazyfree_refcount_check on (6c8e2a256915): try_to_unmap_one discards a lazyfree "
        "page only if clean and refcount == 1 + mapcount; otherwise remaps it and sets "
        "PG_swapbacked."
    ]


def test_a_run_that_breaks_nothing_has_nothing_to_remove(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    t = ",".join(bug_schedule)
    assert 'id="btn-fix"' not in client.get(f"/s/{SEED}?v=buggy&t={t}&at=5").text
    response = client.get(f"/s/{SEED}/fix?v=buggy&t={t}&at=5")
    assert _lines(response.text) == ["This run breaks no invariant: there is nothing to remove."]


@pytest.mark.parametrize(
    ("sid", "variant"), [("pinned-then-fork", "buggy"), ("swapin-swap-entry-changed", "buggy")]
)
def test_it_agrees_with_engine_attribute(
    client: TestClient, catalog: Mapping[str, engine.Scenario], sid: str, variant: str
) -> None:
    sc = catalog[sid]
    cfg = engine.make_config(sc, variant)
    bad = next(o for o in engine.explore(sc, cfg).outcomes if o.violations)
    run = engine.run_schedule(sc, cfg, list(bad.example))
    text = client.get(f"/s/{sid}/fix?v={variant}&t={','.join(bad.example)}").text
    lines = {line.split(" ", 1)[0]: line for line in _lines(text)}
    assert set(lines) == {v.name for v in run.violations}
    for name, line in lines.items():
        expected = engine.attribute(sc, cfg, name)
        named = re.findall(r"(\w+) (on|off)(?: \(\w+\))?:", line.split("interleaving:", 1)[-1])
        assert sorted((n, o == "on") for n, o in named) == sorted(
            (a.switch, a.on) for a in expected
        ), line


def test_an_unknown_scenario_is_a_404_page(client: TestClient) -> None:
    response = client.get("/s/no-such-scenario/fix", headers={"accept": "text/html"})
    assert response.status_code == 404
