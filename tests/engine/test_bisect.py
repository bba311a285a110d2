"""pagerace bisect: verdicts per release, where they change and which switch explains it."""

from __future__ import annotations

import json

import pytest

import engine
from app.cli import main
from engine.bisect import attribute, bisect, describe, releases
from engine.fixes import NEWEST_KERNEL, OLDEST_KERNEL


def test_releases_cover_every_mainline_release_of_the_model_in_order() -> None:
    found = releases()
    assert found[0] == OLDEST_KERNEL and found[-1] == NEWEST_KERNEL
    assert found[found.index("4.20") : found.index("4.20") + 2] == ("4.20", "5.0")
    assert found[found.index("5.19") : found.index("5.19") + 2] == ("5.19", "6.0")
    assert len(found) == len(set(found)) == 9 + 20 + int(NEWEST_KERNEL.split(".")[1]) + 1


def test_the_madv_free_race_is_bisected_to_its_fix_in_5_18() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    result = bisect(sc)
    assert result.complete
    verdicts = dict(result.verdicts)
    assert verdicts["5.17"].violations == ("lost_write",) and verdicts["5.18"].violations == ()
    (change,) = result.changes
    assert (change.before, change.release) == ("5.17", "5.18")
    assert change.switches == ("lazyfree_refcount_check",)
    assert "6c8e2a256915" in describe(change)


def test_a_race_introduced_and_then_fixed_gives_two_changes() -> None:
    # 09854ba94c6a (5.9) reuses a swapped-in page by refcount, which loses the pinned
    # DMA's data; anon_exclusive (5.19) closes it again.
    result = bisect(engine.load_catalog()["swapout-vs-pinned"])
    assert [(c.release, c.switches) for c in result.changes] == [
        ("5.9", ("wp_reuse_by_refcount",)),
        ("5.19", ("anon_exclusive",)),
    ]


def test_attribution_names_the_switch_that_removes_a_violation() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    config = engine.make_config(sc, kernel="5.17")
    found = {(a.switch, a.on): a.commit for a in attribute(sc, config, "lost_write")}
    assert found[("lazyfree_refcount_check", True)] == "6c8e2a256915"
    # On the fixed kernel nothing is to be removed: no switch is named for a safe verdict,
    # and turning the fix off is not an attribution of lost_write's absence.
    fixed = engine.make_config(sc, kernel="5.18")
    assert attribute(sc, fixed, "lost_write") == ()


def test_a_time_budget_that_runs_out_says_so() -> None:
    result = bisect(engine.load_catalog()["madv-free-vs-dio"], time_limit_s=0.0)
    assert not result.complete and result.verdicts == ()


def test_the_cli_prints_runs_of_releases_and_the_json_body(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bisect", "madv-free-vs-dio"]) == 0
    out = capsys.readouterr().out
    assert "4.12-5.17   lost_write" in out
    assert "5.18-" in out and "lazyfree_refcount_check (6c8e2a256915)" in out
    assert main(["bisect", "madv-free-vs-dio", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["changes"][0]["kernel"] == "5.18" and body["complete"] is True
    assert len(body["verdicts"]) == len(releases())
