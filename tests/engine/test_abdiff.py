"""Two kernels on one schedule (engine.abdiff): the steps that differ, and the switch that
alone makes the first difference (issue 15 item 2, the A/B view's engine half)."""

from __future__ import annotations

import pytest

import engine
from engine.fixes import build_config

CATALOG = engine.load_catalog()
PAIRS = [
    (sid, sc.variants[0].name, v.name)
    for sid, sc in sorted(CATALOG.items())
    for v in sc.variants[1:]
]


def _bad_example(sc: engine.Scenario, variant: str) -> tuple[str, ...] | None:
    cfg = engine.make_config(sc, variant)
    bad = [o for o in engine.explore(sc, cfg).outcomes if o.violations]
    return bad[0].example if bad else None


def test_madv_free_differs_from_step_8_because_of_the_refcount_check() -> None:
    sc = CATALOG["madv-free-vs-dio"]
    schedule = _bad_example(sc, "buggy")
    assert schedule is not None
    a, b = engine.make_config(sc, "buggy"), engine.make_config(sc, "fixed")
    c = engine.compare(sc, a, b, schedule)
    assert c.indices == (8, 11, 12, 13)
    first = c.differences[0]
    assert first.a is not None and first.b is not None
    assert first.a.function == first.b.function == "try_to_unmap_one"
    assert "discard" in first.a.note and "folio_set_swapbacked" in first.b.note
    assert [(s.name, s.on, s.commit) for s in c.responsible] == [
        ("lazyfree_refcount_check", True, "6c8e2a256915")
    ]
    assert "lazyfree_refcount_check" in c.changed and len(c.changed) > 1
    # 5.18 ends after 12 steps (the page is kept, so there is no free): step 13 is A's alone.
    last = c.differences[-1]
    assert last.index == 13 and last.a is not None and last.b is None


def test_a_kernel_compared_with_itself_has_no_difference() -> None:
    sc = CATALOG["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    c = engine.compare(sc, cfg, cfg, _bad_example(sc, "buggy") or ())
    assert c.differences == () and c.changed == () and c.responsible == ()


@pytest.mark.parametrize(("sid", "a", "b"), PAIRS, ids=[f"{s}:{a}-{b}" for s, a, b in PAIRS])
def test_the_responsible_switch_alone_reproduces_the_other_kernels_step(
    sid: str, a: str, b: str
) -> None:
    sc = CATALOG[sid]
    # A schedule that breaks one of the two kernels: where a comparison matters.
    schedule = _bad_example(sc, a) or _bad_example(sc, b)
    if schedule is None:
        pytest.skip(f"{sid}: neither {a} nor {b} breaks: no example schedule to compare")
    ca, cb = engine.make_config(sc, a), engine.make_config(sc, b)
    c = engine.compare(sc, ca, cb, schedule)
    assert {s.name for s in c.responsible} <= set(c.changed)
    if not c.differences:
        return
    first = c.differences[0]
    assert c.responsible, f"{sid}: no switch, nor pair, explains step {first.index}"
    # Each named switch alone reproduces B's step; or, named jointly, the pair together
    # does and neither alone.
    tries = [{s.name: s.on for s in c.responsible}] if c.jointly else []
    tries += [] if c.jointly else [{s.name: s.on} for s in c.responsible]
    for flips in tries:
        flipped = build_config(ca.kernel, {**ca.overrides, **flips})
        run = engine.replay(sc, flipped, schedule[: first.index])
        step = run.steps[first.index - 1] if len(run.steps) >= first.index else None
        assert (engine.Side.of(step) if step else None) == first.b
    # A switch that is not named does not alone reproduce it.
    for name in set(c.changed) - {s.name for s in c.responsible}:
        flipped = build_config(ca.kernel, {**ca.overrides, name: cb.fixes[name]})
        run = engine.replay(sc, flipped, schedule[: first.index])
        step = run.steps[first.index - 1] if len(run.steps) >= first.index else None
        assert (engine.Side.of(step) if step else None) != first.b
