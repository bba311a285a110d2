"""The explorer's StepCache assumes that a step never reads another actor's state.

That is a property of the kernel steps, not of the cache: a new step that looked at another
actor's registers would make the cache replay a step from the wrong world. So it is checked
on every catalog scenario directly: an actor's step from a reachable world, and from the
same world with every other actor's state taken from another reachable world, must do the
same to the shared world and to the actor itself.
"""

from __future__ import annotations

import random

import pytest

import engine
from engine.explore import ACTORS
from engine.kernel.machine import Effect
from engine.model import Model, successors
from engine.state import World

CATALOG = engine.load_catalog()
VARIANTS = [(sc.id, v.name) for sc in CATALOG.values() for v in sc.variants]
WORLDS = 400


def reachable(model: Model) -> list[World]:
    init = model.initial()
    seen = {init}
    queue = [init]
    for world in queue:
        for _, effect in successors(model, world):
            if effect.world not in seen and len(seen) < WORLDS:
                seen.add(effect.world)
                queue.append(effect.world)
    return queue


def outcome(result: Effect | object, index: int) -> object:
    """What a step did, but to the other actors (which the step keeps as they were)."""
    if isinstance(result, Effect):
        shared = tuple(v for f, v in enumerate(result.world) if f != ACTORS)
        return (shared, result.world.actors[index], result.function, result.note, result.events)
    return result


@pytest.mark.parametrize(("scenario", "variant"), VARIANTS)
def test_a_step_does_not_read_other_actors(scenario: str, variant: str) -> None:
    sc = CATALOG[scenario]
    model = Model(sc, engine.make_config(sc, variant))
    worlds = reachable(model)
    rng = random.Random(f"{scenario}/{variant}")
    for world in worlds:
        other = rng.choice(worlds)
        for i in range(len(world.actors)):
            actors = list(other.actors)
            actors[i] = world.actors[i]
            mixed = world.evolve(actors=tuple(actors))
            assert outcome(model.step(mixed, i), i) == outcome(model.step(world, i), i), (
                f"{sc.actors[i].name}'s step depends on another actor's state"
            )
