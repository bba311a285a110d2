"""The dashboard's verdict strip: the verdict on every release, and the switch of each change."""

from __future__ import annotations

from fastapi.testclient import TestClient

import engine
from app.links import encode_doc
from app.verdict_strip import STRIPS, runs
from engine.fixes import NEWEST_KERNEL


def test_a_strip_groups_releases_and_names_the_fix_of_each_change() -> None:
    sc = engine.load_catalog()["swapout-vs-pinned"]
    strip = STRIPS.of(sc)
    assert [(r.releases, r.violations) for r in strip] == [
        ("4.12-5.8", ()),
        ("5.9-5.18", ("lost_write",)),
        ("5.19-" + NEWEST_KERNEL, ()),
    ]
    assert strip[0].change == ""
    assert strip[1].change == "5.9: wp_reuse_by_refcount (09854ba94c6a)"
    assert strip[1].words == "loses data"
    assert STRIPS.of(sc) is strip  # computed once


def test_runs_keep_a_cut_off_search_apart_from_a_complete_one() -> None:
    verdicts = (
        ("5.17", engine.Verdict(("lost_write",), True)),
        ("5.18", engine.Verdict((), False)),
        ("5.19", engine.Verdict((), True)),
    )
    strip = runs(engine.Bisection("x", verdicts, (), True))
    assert [(r.releases, r.words) for r in strip] == [
        ("5.17", "loses data"),
        ("5.18", "safe (search cut off)"),
        ("5.19", "safe"),
    ]


def test_the_dashboard_shows_the_strip_for_catalog_scenarios_only(client: TestClient) -> None:
    page = client.get("/s/madv-free-vs-dio?v=buggy").text
    strip = page.split('<ol class="strip"')[1].split("</ol>")[0]
    assert 'data-releases="4.12-5.17"' in strip and "loses data" in strip
    assert "since 5.18: lazyfree_refcount_check (6c8e2a256915)" in strip
    doc = dict(engine.load_catalog()["madv-free-vs-dio"].document, id="my-copy")
    custom = client.get(f"/s/my-copy?s={encode_doc(doc)}").text
    assert 'id="about"' in custom and 'class="strip"' not in custom
