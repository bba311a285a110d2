"""The explorer: exact interleaving counts, replayable examples, truncation."""

from __future__ import annotations

import gc

import pytest

import engine
from engine.explore import collector_paused
from tests.engine.builders import (
    SETUP_LAZYFREE,
    OpDoc,
    brute_force_count,
    brute_force_outcomes,
    config,
    scenario,
    violation_names,
)

BRUTE_LIMIT = 20_000
WRITE_B: OpDoc = {"write": {"addr": "buf", "value": "B"}}
READ: OpDoc = {"read": {"addr": "buf"}}
SHRINK: OpDoc = {"shrink_folio_list": {"addr": "buf"}}
GUP_GET: OpDoc = {"gup_fast": {"addr": "buf", "mode": "get", "write": True}}

SMALL: dict[str, tuple[dict[str, list[OpDoc]], list[OpDoc], str]] = {
    "write-vs-read": (
        {"a": [WRITE_B], "b": [READ]},
        [{"write": {"addr": "buf", "value": "A"}}],
        "5.18",
    ),
    "two-writers-fault-in": (
        {"a": [WRITE_B, READ], "b": [{"write": {"addr": "buf", "value": "C"}}]},
        [],
        "5.18",
    ),
    "gup-vs-madvise-free": (
        {"dio": [GUP_GET, {"put_page": {}}], "app": [{"madvise_free": {"addr": "buf"}}]},
        [{"write": {"addr": "buf", "value": "A"}}],
        "5.17",
    ),
    "write-vs-lazyfree-reclaim": ({"app": [WRITE_B], "kswapd": [SHRINK]}, SETUP_LAZYFREE, "5.17"),
    "dio-vs-lazyfree-reclaim": (
        {"dio": [GUP_GET, {"dma_write": {"value": "B"}}, {"put_page": {}}], "kswapd": [SHRINK]},
        SETUP_LAZYFREE,
        "5.17",
    ),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_interleavings_equal_brute_force(name: str) -> None:
    actors, setup, kernel = SMALL[name]
    sc = scenario(actors, setup)
    cfg = config(sc, kernel)
    exp = engine.explore(sc, cfg)
    assert not exp.truncated and not exp.cycle
    assert exp.interleavings == brute_force_count(sc, cfg)
    assert exp.interleavings > 1


def test_two_independent_single_step_actors_have_two_interleavings() -> None:
    sc = scenario({"a": [READ], "b": [READ]})
    exp = engine.explore(sc, config(sc))
    assert exp.interleavings == 2
    assert [o.interleavings for o in exp.outcomes] == [2]


def _outcomes_match_brute_force(sc: engine.Scenario, cfg: engine.Config) -> None:
    exp = engine.explore(sc, cfg)
    assert not exp.truncated
    brute = brute_force_outcomes(sc, cfg, limit=BRUTE_LIMIT)
    assert exp.interleavings == sum(count for count, _ in brute.values())
    got = {(o.violations, o.label): (o.interleavings, len(o.example)) for o in exp.outcomes}
    assert got == brute  # per outcome: the count, and a shortest example


@pytest.mark.parametrize("name", sorted(SMALL))
def test_outcome_counts_and_shortest_examples_equal_brute_force(name: str) -> None:
    actors, setup, kernel = SMALL[name]
    sc = scenario(actors, setup)
    _outcomes_match_brute_force(sc, config(sc, kernel))


try:
    CATALOG = engine.load_catalog()
except (engine.ScenarioError, ValueError):  # test_catalog.py reports which file is broken
    CATALOG = {}
CATALOG_CASES = [
    pytest.param(sid, name, id=f"{sid}-{name}")
    for sid, sc in CATALOG.items()
    for name in ([v.name for v in sc.variants] if sc.variants else [None])
]


@pytest.mark.parametrize(("sid", "variant"), CATALOG_CASES)
def test_catalog_outcomes_equal_brute_force(sid: str, variant: str | None) -> None:
    sc = CATALOG[sid]
    cfg = engine.make_config(sc, variant)
    if engine.explore(sc, cfg).interleavings > BRUTE_LIMIT:
        pytest.skip("too many schedules to enumerate one by one")
    _outcomes_match_brute_force(sc, cfg)


def _check_examples(sc: engine.Scenario, cfg: engine.Config) -> None:
    exp = engine.explore(sc, cfg)
    assert not exp.truncated
    for outcome in exp.outcomes:
        run = engine.run_schedule(sc, cfg, outcome.example)
        assert run.finished, outcome
        assert violation_names(run) == outcome.violations, outcome
        assert run.label == outcome.label, outcome
        if outcome.message:
            assert outcome.message in {v.message for v in run.violations}, outcome


@pytest.mark.parametrize("name", sorted(SMALL))
def test_examples_replay_to_their_outcome(name: str) -> None:
    actors, setup, kernel = SMALL[name]
    sc = scenario(actors, setup)
    _check_examples(sc, config(sc, kernel))


@pytest.mark.parametrize(("sid", "variant"), CATALOG_CASES)
def test_catalog_examples_replay_to_their_outcome(sid: str, variant: str | None) -> None:
    sc = CATALOG[sid]
    _check_examples(sc, engine.make_config(sc, variant))


def test_outcomes_list_violations_first_and_sum_to_the_total() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    exp = engine.explore(sc, engine.make_config(sc, "buggy"))
    flags = [bool(o.violations) for o in exp.outcomes]
    assert flags == sorted(flags, reverse=True)
    assert sum(o.interleavings for o in exp.outcomes) == exp.interleavings
    assert exp.states > 0 and exp.transitions >= exp.states - 1
    assert len({(o.violations, o.label) for o in exp.outcomes}) == len(exp.outcomes)


def test_max_states_truncates_without_raising() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    exp = engine.explore(sc, engine.make_config(sc, "buggy"), max_states=5)
    assert exp.truncated
    assert exp.states <= 5


def test_time_limit_and_cancel_truncate_without_raising() -> None:
    sc = scenario(
        {"a": [WRITE_B, READ, WRITE_B], "b": [SHRINK, SHRINK], "c": [READ, READ]}, SETUP_LAZYFREE
    )
    cfg = config(sc)
    calls: list[tuple[int, int]] = []
    exp = engine.explore(sc, cfg, progress=lambda s, t: calls.append((s, t)), cancel=lambda: True)
    full = engine.explore(sc, cfg)
    if full.states > 2048:  # progress and cancel are polled every 2048 expanded states
        assert exp.truncated and calls
    else:
        assert not exp.truncated
    assert engine.explore(sc, cfg, time_limit_s=0.0).truncated == (full.states > 2048)


def test_outcome_message_is_the_first_violation_sentence() -> None:
    sc = scenario(
        {
            "dio": [
                {"gup_fast": {"addr": "buf", "mode": "get", "fast_only": True}},
                {"put_page": {}},
            ],
            "kswapd": [SHRINK],
        },
        SETUP_LAZYFREE,
    )
    cfg = config(sc, "5.18", lazyfree_freeze=False)
    exp = engine.explore(sc, cfg)
    bad = [o for o in exp.outcomes if o.violations]
    assert bad
    for outcome in bad:
        run = engine.run_schedule(sc, cfg, outcome.example)
        assert outcome.message == run.violations[0].message


def test_the_collector_is_paused_while_exploring_and_resumed_after() -> None:
    dio = [GUP_GET, {"dma_write": {"value": "B"}}, {"put_page": {}}]
    reader = [{"read": {"addr": "buf"}}]
    sc = scenario({"dio0": dio, "dio1": dio, "kswapd": [SHRINK], "cpu": reader}, SETUP_LAZYFREE)
    during: list[bool] = []
    exp = engine.explore(
        sc, config(sc, "5.17"), progress=lambda s, t: during.append(gc.isenabled())
    )
    assert exp.states > 2048 and during  # progress is polled every 2048 expanded states
    assert not any(during)
    assert gc.isenabled()


def test_the_collector_resumes_after_nested_and_failed_pauses_only_if_it_ran() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
