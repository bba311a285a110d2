"""Small helpers shared by the engine tests: inline scenarios and brute-force enumeration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import engine
from engine.kernel.machine import Effect
from engine.model import Model, successors
from engine.state import World

Doc = dict[str, Any]
OpDoc = dict[str, Any]

SETUP_WRITE: list[OpDoc] = [{"write": {"addr": "buf", "value": "A"}}]
SETUP_LAZYFREE: list[OpDoc] = [*SETUP_WRITE, {"madvise_free": {"addr": "buf"}}]


def doc(
    actors: Mapping[str, Sequence[OpDoc]],
    setup: Sequence[OpDoc] = SETUP_WRITE,
    *,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    files: Mapping[str, Mapping[str, str]] | None = None,
    sid: str = "inline",
) -> Doc:
    """A scenario document with the given actors (name -> ops) and setup."""
    out: Doc = {
        "id": sid,
        "title": "inline test scenario",
        "setup": list(setup),
        "actors": [{"name": name, "ops": list(ops)} for name, ops in actors.items()],
    }
    if variants:
        out["variants"] = {k: dict(v) for k, v in variants.items()}
    if files:
        out["files"] = {k: dict(v) for k, v in files.items()}
    return out


def scenario(
    actors: Mapping[str, Sequence[OpDoc]],
    setup: Sequence[OpDoc] = SETUP_WRITE,
    *,
    files: Mapping[str, Mapping[str, str]] | None = None,
) -> engine.Scenario:
    return engine.parse_scenario(doc(actors, setup, files=files))


def config(sc: engine.Scenario, kernel: str = "5.18", **fixes: bool) -> engine.Config:
    return engine.make_config(sc, kernel=kernel, fixes=fixes)


class TooMany(Exception):
    """The brute-force enumeration went past its budget."""


def brute_force_count(sc: engine.Scenario, cfg: engine.Config, limit: int = 50_000) -> int:
    """Complete schedules, by trying every enabled actor from every world, with no caching."""
    model = Model(sc, cfg)
    count = 0

    def walk(world: World, depth: int) -> None:
        nonlocal count
        moves = successors(model, world)
        if not moves:
            count += 1
            if count > limit:
                raise TooMany
            return
        assert depth < 400, "a schedule longer than 400 steps: the model has a cycle"
        for _, effect in moves:
            walk(effect.world, depth + 1)

    walk(model.initial(), 0)
    return count


OutcomeKey = tuple[tuple[str, ...], str]


def brute_force_outcomes(
    sc: engine.Scenario, cfg: engine.Config, limit: int = 50_000
) -> dict[OutcomeKey, tuple[int, int]]:
    """(violations, label) -> (complete schedules, shortest length), without any caching."""
    model = Model(sc, cfg)
    found: dict[OutcomeKey, tuple[int, int]] = {}
    total = 0

    def walk(world: World, depth: int) -> None:
        nonlocal total
        moves = successors(model, world)
        if not moves:
            total += 1
            if total > limit:
                raise TooMany
            final, _ = model.conclude(world)
            key = (final.violations, model.label(final))
            count, shortest = found.get(key, (0, depth))
            found[key] = (count + 1, min(shortest, depth))
            return
        assert depth < 400, "a schedule longer than 400 steps: the model has a cycle"
        for _, effect in moves:
            walk(effect.world, depth + 1)

    walk(model.initial(), 0)
    return found


def violation_names(run: engine.Trace) -> tuple[str, ...]:
    """A run's violations as the explorer reports them: distinct names, sorted."""
    return tuple(sorted({v.name for v in run.violations}))


def sequential(sc: engine.Scenario, cfg: engine.Config, *order: str) -> list[str]:
    """The schedule that runs each named actor alone until it can take no more steps."""
    model = Model(sc, cfg)
    world = model.initial()
    schedule: list[str] = []
    for name in order:
        index = model.names.index(name)
        while isinstance(effect := model.step(world, index), Effect):
            world = effect.world
            schedule.append(name)
    return schedule


def run_sequential(sc: engine.Scenario, cfg: engine.Config, *order: str) -> engine.Trace:
    return engine.run_schedule(sc, cfg, sequential(sc, cfg, *order))
