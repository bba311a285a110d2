"""The bounded search for a first bug (issue 14, item 1): iterative preemption bounding.

Its answer must be one the exhaustive search would give (a reachable outcome, replayable by
name), it must say "no bug" only by handing over to the exhaustive search, and on the growth
family's five actors, where the exhaustive search runs out of budget, it must still answer.
"""

from __future__ import annotations

from hypothesis import given

import engine
from engine.first import MAX_PREEMPTIONS
from engine.lang import parse_scenario
from scripts.bench_engine import family
from tests.engine.test_properties import SETTINGS, scenarios


def preemptions(sc: engine.Scenario, cfg: engine.Config, schedule: tuple[str, ...]) -> int:
    """Switches away from an actor that could have gone on, along `schedule`."""
    count, last = 0, None
    names = [a.name for a in sc.actors]
    for i, name in enumerate(schedule):
        run = engine.run_schedule(sc, cfg, list(schedule[:i]))
        if last is not None and name != last and last in run.enabled:
            count += 1
        last = name
        assert name in names
    return count


@SETTINGS
@given(scenarios())
def test_a_first_bug_is_an_outcome_of_the_full_search(
    case: tuple[engine.Scenario, engine.Config],
) -> None:
    sc, cfg = case
    full = engine.explore(sc, cfg, max_states=20_000)
    first = engine.find_first(sc, cfg, max_states=20_000)
    bad = {o.violations for o in full.outcomes if o.violations}
    if first is None:
        return  # handed over to the exhaustive search: nothing claimed
    assert first.first_bug and first.truncated
    (outcome,) = first.outcomes
    assert outcome.violations in bad or full.truncated
    run = engine.run_schedule(sc, cfg, list(outcome.example))
    assert run.finished
    assert set(outcome.violations) <= {v.name for v in run.violations}
    assert preemptions(sc, cfg, outcome.example) == first.preemptions <= MAX_PREEMPTIONS


def test_no_bug_means_no_answer_from_the_bounded_search() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    assert engine.find_first(sc, engine.make_config(sc, "fixed")) is None


def test_the_example_has_the_fewest_preemptions_and_is_shortest_among_them() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    first = engine.find_first(sc, cfg)
    assert first is not None and first.preemptions == 1
    full = engine.explore(sc, cfg)
    shortest = min(len(o.example) for o in full.outcomes if o.violations)
    assert len(first.outcomes[0].example) == shortest
    assert first.outcomes[0].message == full.outcomes[0].message


def test_five_actors_get_a_verdict_where_the_exhaustive_search_runs_out() -> None:
    sc = parse_scenario(family(5))
    cfg = engine.make_config(sc, kernel="5.17")
    full = engine.explore(sc, cfg, max_states=20_000)
    assert full.truncated and not any(o.violations for o in full.outcomes)
    first = engine.find_first(sc, cfg, max_states=20_000)
    assert first is not None and first.outcomes[0].violations == ("lost_write",)
    assert first.states < 20_000


def test_json_marks_a_first_bug_and_exhaustive_results_read_as_before() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    first = engine.find_first(sc, cfg)
    assert first is not None
    body = engine.exploration_to_json(first)
    assert body["first_bug"] is True and body["preemptions"] == 1 and body["truncated"] is True
    assert "first_bug" not in engine.exploration_to_json(engine.explore(sc, cfg))
