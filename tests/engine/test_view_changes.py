"""`views.changes` (item by item) names exactly the fields `flatten` + `flat_changes` name."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping

import pytest

import engine
from engine.model import Model
from engine.views import Views, changes, flat_changes, flatten, state_view


def random_worlds(scenario: engine.Scenario, seed: int) -> list[engine.StateView]:
    """The views along a random run to its end (and the end-of-run checks' view)."""
    config = engine.make_config(scenario)
    rng = random.Random(seed)
    schedule: list[str] = []
    trace = engine.replay(scenario, config, ())
    while trace.enabled and len(schedule) < 200:
        schedule.append(rng.choice(trace.enabled))
        trace = engine.replay(scenario, config, tuple(schedule))
    return [trace.initial, *(s.state for s in trace.steps), trace.state]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_changes_equal_the_flattened_diff(
    catalog: Mapping[str, engine.Scenario], seed: int
) -> None:
    for scenario in catalog.values():
        views = random_worlds(scenario, seed)
        for a, b in itertools.pairwise(views):
            assert changes(a, b) == flat_changes(flatten(a), flatten(b)), scenario.id
        # Far apart too: items that appear and vanish, several fields of one item.
        assert changes(views[0], views[-1]) == flat_changes(flatten(views[0]), flatten(views[-1]))
        assert changes(views[-1], views[0]) == flat_changes(flatten(views[-1]), flatten(views[0]))


def test_a_view_has_no_changes_against_itself(catalog: Mapping[str, engine.Scenario]) -> None:
    scenario = next(iter(catalog.values()))
    model = Model(scenario, engine.make_config(scenario))
    view = state_view(model, model.initial())
    assert changes(view, view) == ()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_replays_reused_views_equal_fresh_ones(
    catalog: Mapping[str, engine.Scenario], seed: int
) -> None:
    """engine.replay builds each step's view from the previous one's (views.Views): every
    one equals the view made afresh from its world alone."""
    for scenario in catalog.values():
        config = engine.make_config(scenario)
        rng = random.Random(seed)
        schedule: list[str] = []
        trace = engine.replay(scenario, config, ())
        while trace.enabled and len(schedule) < 200:
            schedule.append(rng.choice(trace.enabled))
            trace = engine.replay(scenario, config, tuple(schedule))
        assert trace.initial == state_view(trace.model, trace.start), scenario.id
        for step in trace.steps:
            assert step.state == state_view(trace.model, step.world), (scenario.id, step.index)
        # A builder fed worlds out of order (the last, then the first) still makes each afresh.
        views = Views(trace.model)
        worlds = [trace.start, *(s.world for s in trace.steps)]
        for world in [*reversed(worlds), *worlds]:
            assert views.of(world) == state_view(trace.model, world), scenario.id
