"""Every catalog file keeps its promise: one test per (file, variant), found by globbing.

A new YAML file in engine/scenarios/ is picked up without touching this module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import engine
from engine.invariants import FATES
from engine.lang.catalog import CATALOG_DIR, load_file

FILES = sorted(CATALOG_DIR.glob("*.yaml"))


def _variants(path: Path) -> list[str]:
    """The variant names of a file, or a marker that makes its test report the load error."""
    try:
        sc = load_file(path)
    except engine.ScenarioError:
        return ["<does not load>"]
    return [v.name for v in sc.variants] or ["default"]


CASES = [pytest.param(p, v, id=f"{p.stem}-{v}") for p in FILES for v in _variants(p)]


def test_catalog_is_not_empty() -> None:
    assert FILES, f"no scenario files in {CATALOG_DIR}"


@pytest.mark.parametrize(("path", "variant"), CASES)
def test_catalog_expect(path: Path, variant: str) -> None:
    sc = load_file(path)  # a file that does not load fails here, with its errors
    cfg = engine.make_config(sc, None if variant == "default" else variant)
    assert variant in sc.expect, f"{path.name}: no expect for variant {variant!r}"
    want = sc.expect[variant]
    exp = engine.explore(sc, cfg)
    summary = "\n".join(
        f"  {o.interleavings} x {list(o.violations) or 'ok'} {o.label} e.g. {','.join(o.example)}"
        for o in exp.outcomes
    )
    assert not exp.truncated, f"{path.name} [{variant}] truncated at {exp.states} states"
    found = {v for o in exp.outcomes for v in o.violations}
    assert found == set(want.violations), (
        f"{path.name} [{variant}]: violations {sorted(found)}, expected "
        f"{sorted(want.violations)}\n{summary}"
    )
    labels = [o.label for o in exp.outcomes]
    for reach in want.reachable:
        assert any(label.startswith(reach) for label in labels), (
            f"{path.name} [{variant}]: {reach!r} is not reachable\n{summary}"
        )
    assert exp.interleavings == sum(o.interleavings for o in exp.outcomes) > 0


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_catalog_file_is_complete(path: Path) -> None:
    sc = load_file(path)
    assert sc.refs, f"{path.name}: no refs"
    assert sc.summary.strip(), f"{path.name}: no summary"
    names = [v.name for v in sc.variants] or ["default"]
    assert set(sc.expect) == set(names), (
        f"{path.name}: expect covers {sorted(sc.expect)}, variants are {names}"
    )


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_catalog_file_states_a_reachable_outcome(path: Path) -> None:
    """product.md section 3: each scenario states at least one outcome that must be reachable."""
    sc = load_file(path)
    reachable = [r for e in sc.expect.values() for r in e.reachable]
    assert reachable, f"{path.name}: no variant states an outcome that must be reachable"
    assert all(r.startswith(FATES) for r in reachable)


def test_catalog_ids_are_unique_and_match_the_loader() -> None:
    ids = [load_file(p).id for p in FILES]
    assert len(ids) == len(set(ids))
    assert sorted(engine.load_catalog()) == sorted(ids)


@pytest.mark.parametrize(("path", "variant"), CASES)
def test_check_expect_agrees_with_the_catalog(path: Path, variant: str) -> None:
    """engine.check_expect (the editor's verdict) holds on every catalog variant, and turns
    false when a variant is checked against another kernel's promises."""
    sc = load_file(path)
    result = engine.explore(sc, engine.make_config(sc, None if variant == "default" else variant))
    checks = engine.check_expect(sc, variant, result)
    assert checks and all(c.ok for c in checks), checks
    others = [v for v in sc.expect if sc.expect[v].violations != sc.expect[variant].violations]
    for other in others:
        assert not all(c.ok for c in engine.check_expect(sc, other, result)), (variant, other)
