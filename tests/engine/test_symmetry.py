"""Symmetry reduction (issue 14, item 2): interchangeable actors share one stored world per
orbit, and the verdicts, outcome sets, counts and example lengths stay those of the full
search, with every example a real schedule of named actors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

import engine
from engine.kernel import OPS
from engine.lang.catalog import CATALOG_DIR
from engine.symmetry import detect
from scripts.bench_engine import family
from tests.engine.builders import OpDoc, doc
from tests.engine.test_properties import KERNELS, SETTINGS, op_lists

VALUES = ("V0", "V1", "V2")


def revalue(ops: list[OpDoc], value: str | None) -> list[OpDoc]:
    """The same ops with every written value replaced (None keeps them)."""
    out = []
    for op in ops:
        ((kind, args),) = op.items()
        args = dict(args)
        if value is not None and "value" in args:
            args["value"] = value
        out.append({kind: args})
    return out


@st.composite
def symmetric_scenarios(draw: st.DrawFn) -> tuple[engine.Scenario, engine.Config]:
    """2-3 copies of one random actor (each writing its own value, or all the same ones),
    and maybe one other actor."""
    ops = draw(op_lists(max_ops=3))
    copies = draw(st.integers(2, 3))
    own_values = draw(st.booleans())
    actors: dict[str, list[Any]] = {
        f"c{i}": revalue(ops, VALUES[i] if own_values else None) for i in range(copies)
    }
    if draw(st.booleans()):
        actors["other"] = draw(op_lists(max_ops=2))
    setup: list[OpDoc] = [{"write": {"addr": "buf", "value": "A"}}]
    if draw(st.booleans()):
        setup.append({"madvise_free": {"addr": "buf"}})
    body = doc(actors, setup)
    # With CPUs (TLBs): the copies each on a CPU of their own, all on one, or on CPUs they
    # share with the other actor (which is then no symmetry).
    placement = draw(st.sampled_from(("none", "own", "one", "mixed")))
    if placement != "none":
        for i, actor in enumerate(body["actors"]):
            actor["cpu"] = {"own": i, "one": 0, "mixed": i % 2}[placement]
    sc = engine.parse_scenario(body)
    return sc, engine.make_config(sc, kernel=draw(st.sampled_from(KERNELS)))


def summary(exp: engine.Exploration) -> list[tuple[str, tuple[str, ...], int, int]]:
    return [(o.label, o.violations, o.interleavings, len(o.example)) for o in exp.outcomes]


@SETTINGS
@given(symmetric_scenarios())
def test_the_reduced_search_equals_the_full_search(
    case: tuple[engine.Scenario, engine.Config],
) -> None:
    sc, cfg = case
    full = engine.explore(sc, cfg, max_states=20_000, symmetry=False)
    reduced = engine.explore(sc, cfg, max_states=20_000)
    assume(not full.truncated and not reduced.truncated)
    assert reduced.states <= full.states
    assert reduced.interleavings == full.interleavings
    assert summary(reduced) == summary(full)
    for outcome in reduced.outcomes:
        run = engine.run_schedule(sc, cfg, list(outcome.example))
        assert run.finished and run.label == outcome.label
        assert set(outcome.violations) == {v.name for v in run.violations}
        if outcome.violations:
            assert outcome.message == run.violations[0].message


def test_copies_of_one_actor_form_a_class_and_other_actors_do_not() -> None:
    sc = engine.parse_scenario(family(4))
    sym = detect(sc)
    assert sym is not None and sym.classes == ((0, 1, 2),)
    assert sym.values == (("B0",), ("B1",), ("B2",), ())


def test_a_value_that_appears_elsewhere_prevents_the_class() -> None:
    # dio1 writes 'A', the value the setup wrote: swapping dio0 and dio1 would rename the
    # setup's data too, so no symmetry may be assumed.
    body = family(3)
    body["actors"][1]["ops"][1] = {"dma_write": {"value": "A"}}
    assert detect(engine.parse_scenario(body)) is None


def test_the_reduction_stores_fewer_worlds_for_the_same_counts() -> None:
    sc = engine.parse_scenario(family(3))
    cfg = engine.make_config(sc, kernel="5.17")
    full = engine.explore(sc, cfg, symmetry=False)
    reduced = engine.explore(sc, cfg)
    assert not full.truncated and not reduced.truncated
    assert reduced.states * 3 < full.states * 2  # two interchangeable actors: nearly half
    assert summary(reduced) == summary(full)


def test_actors_on_cpus_of_their_own_are_swapped_with_their_tlbs() -> None:
    # Two writers on CPUs of their own against MADV_FREE's deferred flush and reclaim: a
    # swap of the writers moves each one's TLB entries to the other's CPU, or the reduced
    # search would count worlds whose cached translations belong to the wrong actor.
    writer = [{"write": {"addr": "buf", "value": v}} for v in ("V0", "V2")]
    body = doc(
        {
            "c0": writer,
            "c1": revalue(writer[:1], "V1") + revalue(writer[1:], "V3"),
            "k": [{"madvise_free": {"addr": "buf"}}, {"shrink_folio_list": {"addr": "buf"}}],
        }
    )
    for i, actor in enumerate(body["actors"]):
        actor["cpu"] = i
    sc = engine.parse_scenario(body)
    sym = detect(sc)
    assert sym is not None and sym.classes == ((0, 1),) and sym.cpus == ("CPU0", "CPU1", "")
    cfg = engine.make_config(sc, kernel="5.17")
    full = engine.explore(sc, cfg, symmetry=False)
    reduced = engine.explore(sc, cfg)
    assert reduced.states < full.states
    assert summary(reduced) == summary(full)


def test_copies_sharing_a_cpu_with_another_actor_form_no_class() -> None:
    body = family(3)
    for actor, cpu in zip(body["actors"], (0, 1, 1), strict=True):
        actor["cpu"] = cpu
    assert detect(engine.parse_scenario(body)) is None


def test_an_actor_outside_the_class_holding_a_members_value_is_renamed_too() -> None:
    # ksmd snapshots the data it compares (write_protect_page, then pages_identical): after
    # c1's store that is V3, and a swap of c0 and c1 must rename it in ksmd's registers as
    # well, or the reduced search merges worlds whose futures differ (a found symmetry bug).
    body = doc(
        {
            "c0": [{"write": {"addr": "buf", "value": v}} for v in ("V0", "V2")],
            "c1": [{"write": {"addr": "buf", "value": v}} for v in ("V1", "V3")],
            "ksmd": [{"ksm_merge": {"addr": "buf"}}],
            "t2": [{"mprotect": {"addr": "buf", "prot": "read"}}],
        }
    )
    sc = engine.parse_scenario(body)
    assert detect(sc) is not None
    cfg = engine.make_config(sc, kernel="5.17")
    full = engine.explore(sc, cfg, symmetry=False)
    reduced = engine.explore(sc, cfg)
    assert reduced.states < full.states
    assert summary(reduced) == summary(full)


def twinned(path: str) -> dict[str, Any]:
    """A catalog scenario with its first actor run twice: the copy writes its own values and
    runs on a CPU of its own when the original names one. Every op of the catalog then meets
    the reduction, with the actors, locks and TLBs the catalog gives it."""
    raw = yaml.safe_load((CATALOG_DIR / path).read_text())
    raw.pop("expect", None)
    first = raw["actors"][0]
    twin = copy.deepcopy(first)
    twin["name"] = first["name"] + "x"
    if "cpu" in first:
        twin["cpu"] = "CPU7"
    for op in twin["ops"]:
        ((kind, args),) = op.items()
        for param in OPS[kind].params if kind in OPS else ():
            if param.kind == "value" and param.name in (args or {}):
                args[param.name] = f"{args[param.name]}x"
    raw["actors"].insert(1, twin)
    return dict(raw)


@pytest.mark.parametrize("path", sorted(p.name for p in CATALOG_DIR.glob("*.yaml")))
def test_a_catalog_scenario_with_a_twin_actor_counts_as_the_full_search(path: str) -> None:
    sc = engine.parse_scenario(twinned(path))
    if detect(sc) is None:
        pytest.skip("the twin is not interchangeable (its values or names occur elsewhere)")
    for variant in sc.variants or (None,):
        cfg = engine.make_config(sc, variant.name if variant else None)
        full = engine.explore(sc, cfg, symmetry=False, max_states=6_000)
        if full.truncated:
            continue
        reduced = engine.explore(sc, cfg, max_states=6_000)
        assert summary(reduced) == summary(full), variant
