"""Every step an op takes reports a kernel function the op declares (issue 10, item 4).

The declared list is what the editor's reference, the docs and the dashboard's op expansion
show; a step reporting anything else would be a function the user was never told about.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import engine
from engine.kernel import OPS
from engine.kernel.machine import Effect
from engine.model import Model, successors
from engine.state import World
from tests.engine.test_properties import SETTINGS, scenarios
from tests.fuzz.strategies import Doc, valid_documents


def undeclared(sc: engine.Scenario, cfg: engine.Config, limit: int = 20_000) -> set[str]:
    """(op, function) pairs, as text, for steps whose function the op does not declare."""
    model = Model(sc, cfg)
    start = model.initial()
    seen: set[World] = {start}
    todo = [start]
    out: set[str] = set()
    while todo and len(seen) < limit:
        world = todo.pop()
        for i, effect in successors(model, world):
            assert isinstance(effect, Effect)
            op = sc.actors[i].ops[world.actors[i].op]
            if effect.function not in OPS[op.kind].steps:
                out.add(f"{op.kind}: {effect.function}")
            if effect.world not in seen:
                seen.add(effect.world)
                todo.append(effect.world)
    return out


def test_catalog_steps_report_only_declared_functions() -> None:
    found: set[str] = set()
    for sc in engine.load_catalog().values():
        for v in sc.variants or (None,):
            found |= undeclared(sc, engine.make_config(sc, v.name if v else None))
    assert not found


@SETTINGS
@given(scenarios())
def test_random_scenarios_report_only_declared_functions(
    case: tuple[engine.Scenario, engine.Config],
) -> None:
    assert not undeclared(*case)


@SETTINGS
@given(valid_documents(), st.sampled_from(("4.12", "5.9", "5.17", "5.19", "6.5")))
def test_fuzzed_documents_report_only_declared_functions(document: Doc, kernel: str) -> None:
    # Forks, files, truncation, writeback, vmsplice and munmap come from these documents.
    try:
        sc = engine.parse_scenario(document)
    except engine.ScenarioError:
        return  # the generator may combine ops the language refuses; those are its tests
    assert not undeclared(sc, engine.make_config(sc, kernel=kernel), limit=3_000)
