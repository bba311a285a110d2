"""Property-based tests: random scenarios from the op vocabulary never crash the engine,
every explored example replays to its outcome, and path counting equals brute force."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import engine
from tests.engine.builders import OpDoc, brute_force_outcomes, doc, violation_names

KERNELS = ("4.12", "5.8", "5.9", "5.11", "5.17", "5.18", "5.19", "6.4", "6.5")
ADDRS = ("buf", "buf2")
VALUES = ("A", "B", "C")
PLAIN = (
    "write",
    "read",
    "madvise_free",
    "madvise_dontneed",
    "gup_fast",
    "gup",
    "shrink_folio_list",
    "migrate",
)
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def op_lists(draw: st.DrawFn, max_ops: int = 3) -> list[OpDoc]:
    """1..max_ops ops for one actor; device ops only after a GUP, put/unpin matching its mode."""
    ops: list[OpDoc] = []
    mode: str | None = None
    for _ in range(draw(st.integers(1, max_ops))):
        kinds = list(PLAIN)
        if mode is not None:
            kinds += ["dma_write", "put_page" if mode == "get" else "unpin"]
        kind = draw(st.sampled_from(kinds))
        addr = draw(st.sampled_from(ADDRS))
        args: dict[str, Any]
        if kind in ("write",):
            args = {"addr": addr, "value": draw(st.sampled_from(VALUES))}
        elif kind in ("gup_fast", "gup"):
            mode = draw(st.sampled_from(("get", "pin")))
            args = {"addr": addr, "mode": mode, "write": draw(st.booleans())}
            if kind == "gup_fast" and draw(st.booleans()):
                args["fast_only"] = True
        elif kind == "dma_write":
            args = {"value": draw(st.sampled_from(VALUES))}
        elif kind == "put_page":
            args = {}
        elif kind == "unpin":
            args = {"dirty": draw(st.booleans())}
        else:
            args = {"addr": addr}
        ops.append({kind: args})
    return ops


@st.composite
def scenarios(
    draw: st.DrawFn, max_actors: int = 3, max_ops: int = 3
) -> tuple[engine.Scenario, engine.Config]:
    n = draw(st.integers(1, max_actors))
    actors = {f"t{i}": draw(op_lists(max_ops)) for i in range(n)}
    setup = [{"write": {"addr": "buf", "value": "A"}}]
    if draw(st.booleans()):
        setup.append({"madvise_free": {"addr": "buf"}})
    sc = engine.parse_scenario(doc(actors, setup))
    fixes = {}
    if draw(st.integers(0, 4)) == 0:
        fixes[draw(st.sampled_from(sorted(engine.DESIGN_RULES)))] = False
    cfg = engine.make_config(sc, kernel=draw(st.sampled_from(KERNELS)), fixes=fixes)
    return sc, cfg


@SETTINGS
@given(scenarios())
def test_random_scenarios_explore_and_replay(case: tuple[engine.Scenario, engine.Config]) -> None:
    sc, cfg = case
    exp = engine.explore(sc, cfg, max_states=3000)
    assert not exp.cycle
    assert exp.outcomes or exp.truncated
    for outcome in exp.outcomes:
        run = engine.run_schedule(sc, cfg, outcome.example)
        assert run.finished
        assert violation_names(run) == outcome.violations
        assert run.label == outcome.label


@SETTINGS
@given(scenarios(max_actors=2, max_ops=2))
def test_random_interleaving_counts_equal_brute_force(
    case: tuple[engine.Scenario, engine.Config],
) -> None:
    sc, cfg = case
    exp = engine.explore(sc, cfg, max_states=3000)
    assume(not exp.truncated and exp.interleavings <= 20_000)
    brute = brute_force_outcomes(sc, cfg, limit=20_000)
    assert exp.interleavings == sum(count for count, _ in brute.values())
    assert {(o.violations, o.label): o.interleavings for o in exp.outcomes} == {
        key: count for key, (count, _) in brute.items()
    }


CPU_ONLY = ("write", "read", "madvise_free", "shrink_folio_list", "migrate")


@st.composite
def cpu_op_lists(draw: st.DrawFn) -> list[OpDoc]:
    ops: list[OpDoc] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(CPU_ONLY))
        args: dict[str, Any] = {"addr": draw(st.sampled_from(ADDRS))}
        if kind == "write":
            args["value"] = draw(st.sampled_from(VALUES))
        ops.append({kind: args})
    return ops


@SETTINGS
@given(
    st.lists(cpu_op_lists(), min_size=1, max_size=3),
    st.sampled_from(KERNELS),
    st.booleans(),
)
def test_cpu_accesses_racing_reclaim_and_migration_never_lose_data(
    actors: list[list[OpDoc]], kernel: str, lazyfree: bool
) -> None:
    """Without GUP or DMA every kernel keeps the process's data (issue 2's acceptance)."""
    setup: list[OpDoc] = [{"write": {"addr": "buf", "value": "A"}}]
    if lazyfree:
        setup.append({"madvise_free": {"addr": "buf"}})
    sc = engine.parse_scenario(doc({f"t{i}": ops for i, ops in enumerate(actors)}, setup))
    exp = engine.explore(sc, engine.make_config(sc, kernel=kernel), max_states=5000)
    bad = [o for o in exp.outcomes if o.violations]
    assert not bad, f"{bad[0].violations} on {kernel}: e.g. {','.join(bad[0].example)}"
