"""The point of no return of any run (engine.doom), the dashboard's question: checked against
the explorer's graph-wide answer on every catalog example and against brute-force enumeration
of every continuation on generated scenarios and random schedules."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given

import engine
from engine.doom import point_of_no_return
from engine.model import Model, successors
from tests.engine.test_no_return import continuations_all_violate
from tests.engine.test_properties import SETTINGS, scenarios

CATALOG = engine.load_catalog()
VARIANTS = [(sid, v.name) for sid, sc in sorted(CATALOG.items()) for v in sc.variants]


@pytest.mark.parametrize(("sid", "variant"), VARIANTS, ids=[f"{s}/{v}" for s, v in VARIANTS])
def test_it_agrees_with_the_explorer_on_every_catalog_example(sid: str, variant: str) -> None:
    sc = CATALOG[sid]
    cfg = engine.make_config(sc, variant)
    exp = engine.explore(sc, cfg)
    if exp.truncated:
        pytest.skip("the catalog search was cut off: the explorer claims nothing")
    for outcome in exp.outcomes:
        found = point_of_no_return(sc, cfg, outcome.example)
        assert (found.step if found else -1) == outcome.no_return, outcome.label
        if found is not None:
            assert set(found.violations) <= set(outcome.violations)


def test_madv_free_vs_dio_is_lost_at_the_discard_and_only_lost_writes_follow() -> None:
    sc = CATALOG["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    bad = next(o for o in engine.explore(sc, cfg).outcomes if o.violations)
    found = point_of_no_return(sc, cfg, bad.example)
    assert found is not None and found.step == 8
    assert found.violations == ("lost_write",)
    # A prefix that stops before the discard is not lost yet; one that stops after it is,
    # at the same step, although the run has not ended.
    assert point_of_no_return(sc, cfg, bad.example[:7]) is None
    later = point_of_no_return(sc, cfg, bad.example[:10])
    assert later is not None and later.step == 8
    # The fixed kernel remaps instead of discarding: the same schedule is never lost.
    assert point_of_no_return(sc, engine.make_config(sc, "fixed"), bad.example[:8]) is None


def test_a_budget_too_small_claims_nothing() -> None:
    sc = CATALOG["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    bad = next(o for o in engine.explore(sc, cfg).outcomes if o.violations)
    assert point_of_no_return(sc, cfg, bad.example[:8], max_states=3) is None


def test_a_schedule_that_does_not_apply_is_refused() -> None:
    sc = CATALOG["madv-free-vs-dio"]
    with pytest.raises(ValueError, match="cannot move"):
        point_of_no_return(sc, engine.make_config(sc, "buggy"), ["dio"] * 200)


def random_run(sc: engine.Scenario, cfg: engine.Config, seed: int) -> tuple[str, ...]:
    model = Model(sc, cfg)
    rng = random.Random(seed)
    world, names = model.initial(), []
    while moves := successors(model, world):
        actor, effect = rng.choice(moves)
        names.append(model.names[actor])
        world = effect.world
    return tuple(names)


@SETTINGS
@given(scenarios(max_actors=2, max_ops=2))
def test_every_prefix_is_lost_exactly_from_the_point_on(
    case: tuple[engine.Scenario, engine.Config],
) -> None:
    sc, cfg = case
    exp = engine.explore(sc, cfg, max_states=5_000)
    assume(not exp.truncated and not exp.cycle)
    for seed in range(3):
        run = random_run(sc, cfg, seed)
        for cut in range(len(run) + 1):
            prefix = run[:cut]
            found = point_of_no_return(sc, cfg, prefix)
            if found is None:
                assert not continuations_all_violate(sc, cfg, prefix)
                continue
            assert 0 <= found.step <= cut
            assert continuations_all_violate(sc, cfg, prefix[: found.step])
            if found.step > 0:
                assert not continuations_all_violate(sc, cfg, prefix[: found.step - 1])
