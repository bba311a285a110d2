"""The point of no return (issue 15, item 1, its engine half): after how many steps of a bad
example every continuation breaks an invariant, computed from the explored graph and checked
here against brute-force enumeration of every continuation."""

from __future__ import annotations

from hypothesis import assume, given

import engine
from engine.kernel.machine import Effect
from engine.model import Model, successors
from engine.state import World
from tests.engine.test_properties import SETTINGS, scenarios


def continuations_all_violate(
    sc: engine.Scenario, cfg: engine.Config, prefix: tuple[str, ...]
) -> bool:
    """Whether every complete run that starts with `prefix` ends with a violation."""
    model = Model(sc, cfg)
    world = model.initial()
    for name in prefix:
        effect = model.step(world, model.names.index(name))
        assert isinstance(effect, Effect)
        world = effect.world

    def walk(w: World) -> bool:
        moves = successors(model, w)
        if not moves:
            final, _ = model.conclude(w)
            return bool(final.violations)
        return all(walk(e.world) for _, e in moves)

    return walk(world)


def test_madv_free_is_lost_once_reclaim_discards_the_clean_lazyfree_page() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    bad = next(o for o in engine.explore(sc, cfg).outcomes if o.violations)
    # Steps 1-3: GUP-fast takes its reference; 4-7: reclaim isolates, locks, checks
    # references and clears the PTE; 8: try_to_unmap_one discards the page. Before step 8
    # the process could still redirty it; after it the device's write can never land.
    assert bad.no_return == 8
    run = engine.run_schedule(sc, cfg, list(bad.example))
    assert run.steps[bad.no_return - 1].function == "try_to_unmap_one"
    body = engine.exploration_to_json(engine.explore(sc, cfg))
    assert body["outcomes"][0]["point_of_no_return"] == 8
    assert all("point_of_no_return" not in o for o in body["outcomes"] if not o["violations"])


@SETTINGS
@given(scenarios(max_actors=2, max_ops=2))
def test_the_point_of_no_return_is_the_first_doomed_state_of_the_example(
    case: tuple[engine.Scenario, engine.Config],
) -> None:
    sc, cfg = case
    exp = engine.explore(sc, cfg, max_states=5_000)
    assume(not exp.truncated)
    for outcome in exp.outcomes:
        if not outcome.violations:
            assert outcome.no_return == -1
            continue
        k = outcome.no_return
        assert 0 <= k <= len(outcome.example)
        assert continuations_all_violate(sc, cfg, outcome.example[:k])
        if k > 0:
            assert not continuations_all_violate(sc, cfg, outcome.example[: k - 1])


def test_a_cut_off_search_claims_no_point_of_no_return() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    # At 135 of its 141 states the search has met the lost write but not every state that
    # could still avoid it: it must not claim a point of no return.
    exp = engine.explore(sc, engine.make_config(sc, "buggy"), max_states=135)
    assert exp.truncated and any(o.violations for o in exp.outcomes)
    assert all(o.no_return == -1 for o in exp.outcomes)
