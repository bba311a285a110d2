"""Large folios, PMDs, split and collapse (issue 11): the new ops composed with the old."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import engine
from engine.explore import reachable_violations
from engine.model import Model
from engine.state import HPAGE_NR, World
from tests.engine.builders import (
    OpDoc,
    brute_force_outcomes,
    config,
    scenario,
    violation_names,
)

THP: list[OpDoc] = [{"thp_fault": {"addr": "buf"}}, {"write": {"addr": "buf#1", "value": "A"}}]
SMALL: list[OpDoc] = [
    {"write": {"addr": "buf#0", "value": "A"}},
    {"write": {"addr": "buf#1", "value": "B"}},
]


def world_after(sc: engine.Scenario, kernel: str, schedule: list[str]) -> World:
    return engine.run_schedule(sc, config(sc, kernel), schedule).world(len(schedule))


def test_thp_fault_maps_one_folio_with_one_reference_and_the_entire_mapcount() -> None:
    sc = scenario({"app": [{"read": {"addr": "buf#1"}}]}, THP)
    w = Model(sc, config(sc, "6.6")).initial()
    head = w.pages[0]
    assert (head.order, head.ref, head.entire, head.mapcount) == (1, 1, 1, 0)
    assert [p.head for p in w.pages[1:HPAGE_NR]] == [0] * (HPAGE_NR - 1)
    assert w.pmd("app", "buf").kind == "huge"
    # The store went through the huge PMD into the subpage; the tail's refcount stays 0.
    assert (w.pages[1].data, w.pages[1].ref) == ("A", 0)
    run = engine.run_schedule(sc, config(sc, "6.6"), ["app"])
    assert run.finished and not run.violations


def test_split_huge_pmd_moves_the_reference_to_each_pte() -> None:
    sc = scenario({"app": [{"split_huge_pmd": {"addr": "buf"}}]}, THP)
    w = world_after(sc, "6.6", ["app"])
    head = w.pages[0]
    assert (head.ref, head.entire) == (HPAGE_NR, 0)
    assert all(p.mapcount == 1 for p in w.pages[:HPAGE_NR])
    assert w.pmd("app", "buf").kind == "table"
    assert w.raw_pte("app", "buf#1") is not None and w.raw_pte("app", "buf#1").page == 1


def test_gup_fast_on_a_huge_pmd_pins_the_folio_exactly() -> None:
    """gup_huge_pmd: the grab is on the folio, and a large folio's pin is +1 with _pincount."""
    sc = scenario({"dev": [{"gup_fast": {"addr": "buf#1", "mode": "pin", "write": True}}]}, THP)
    run = engine.run_schedule(sc, config(sc, "6.6"), ["dev", "dev", "dev"])
    w = run.world(3)
    assert (w.pages[0].ref, w.pages[0].pins) == (2, 1)
    assert w.pages[0].maybe_dma_pinned()
    assert [s.function for s in run.steps] == [
        "pmdp_get_lockless",
        "try_grab_folio",
        "gup_huge_pmd",
    ]
    assert run.actors[0].done


def test_dontneed_of_one_subpage_splits_the_pmd_and_queues_the_folio() -> None:
    sc = scenario({"app": [{"madvise_dontneed": {"addr": "buf#0"}}]}, THP)
    w = world_after(sc, "6.6", ["app"])
    assert w.pmd("app", "buf").kind == "table"
    assert w.deferred == (0,)
    assert (w.pages[0].ref, w.pages[0].mapcount, w.pages[1].mapcount) == (1, 0, 1)


def test_deferred_split_frees_the_unmapped_head_and_keeps_the_mapped_tail() -> None:
    sc = scenario(
        {"app": [{"madvise_dontneed": {"addr": "buf#0"}}, {"deferred_split_scan": {}}]}, THP
    )
    w = world_after(sc, "6.6", ["app", "app", "app"])
    assert w.pages[0].free and not w.pages[1].free
    assert (w.pages[1].order, w.pages[1].head, w.pages[1].ref) == (0, -1, 1)
    assert w.deferred == ()


def test_split_folio_of_a_pmd_mapped_thp_leaves_order_0_pages_mapped() -> None:
    sc = scenario({"app": [{"split_folio": {"addr": "buf#1"}}]}, THP)
    w = world_after(sc, "6.6", ["app", "app"])
    assert w.pmd("app", "buf").kind == "table"
    assert [(p.order, p.head, p.ref, p.mapcount) for p in w.pages[:2]] == [(0, -1, 1, 1)] * 2
    assert w.pages[1].data == "A" and w.pages[1].anon


def test_fork_shares_a_thp_and_a_write_copies_only_its_subpage() -> None:
    """copy_huge_pmd shares the folio read-only; the parent's write fault cannot reuse it
    (the child's mapping holds a reference), so do_huge_pmd_wp_page splits the PMD and
    do_wp_page copies the one subpage; the child still reads the old data."""
    sc = scenario(
        {
            "app": [{"fork": {"child": "kid"}}, {"write": {"addr": "buf#1", "value": "B"}}],
            "kid": [{"read": {"addr": "buf#1", "proc": "kid", "expect": "A"}}],
        },
        THP,
    )
    cfg = config(sc, "6.6")
    run = engine.run_schedule(sc, cfg, ["app", "app", "app", "app", "app", "kid"])
    assert run.finished and not run.violations, run.violations
    w = run.world(6)
    assert w.pmd("kid", "buf").kind == "huge" and w.pmd("app", "buf").kind == "table"
    assert w.pte("app", "buf#1") is not None and w.pte("app", "buf#1").page == 2
    assert (w.pages[0].ref, w.pages[0].entire) == (2, 1)  # kid's PMD + app's buf#0 PTE
    fns = [s.function for s in run.steps]
    assert "copy_huge_pmd" in fns and "handle_mm_fault" in fns
    assert reachable_violations(engine.explore(sc, cfg)) == set()


def test_fork_copies_the_ptes_of_a_pinned_thp() -> None:
    """A pinned exclusive THP is not shared by fork (folio_try_dup_anon_rmap_pmd fails):
    the PMD is split and copy_present_pte gives the child its own copy of each subpage."""
    sc = scenario(
        {
            "dev": [
                {"gup": {"addr": "buf#1", "mode": "pin", "write": True}},
                {"dma_write": {"value": "D"}},
            ],
            "app": [{"fork": {"child": "kid"}}],
        },
        THP,
    )
    cfg = config(sc, "6.6")
    run = engine.run_schedule(sc, cfg, ["dev", "app", "app", "app", "app", "app", "dev"])
    assert run.finished and not run.violations, [s.function for s in run.steps]
    assert run.world(7).pmd("app", "buf").kind == "table"
    assert reachable_violations(engine.explore(sc, cfg)) == set()


def test_a_pinned_folio_is_not_split() -> None:
    """can_split_folio: a pin is a reference besides the mappings and the caller's."""
    sc = scenario(
        {
            "dev": [{"gup": {"addr": "buf#1", "mode": "pin"}}],
            "app": [{"madvise_dontneed": {"addr": "buf#0"}}, {"deferred_split_scan": {}}],
        },
        THP,
    )
    w = world_after(sc, "6.6", ["dev", "app", "app", "app"])
    assert w.pages[0].order == 1 and not w.pages[0].free


@pytest.mark.parametrize("kernel", ["5.19", "6.0"])
def test_collapse_refuses_a_page_pinned_before_the_isolation(kernel: str) -> None:
    sc = scenario(
        {
            "dio": [{"gup": {"addr": "buf#0", "mode": "pin", "write": True}}],
            "khugepaged": [{"collapse": {"addr": "buf"}}],
        },
        SMALL,
    )
    run = engine.run_schedule(
        sc, config(sc, kernel), ["dio", "khugepaged", "khugepaged", "khugepaged"]
    )
    w = run.world(4)
    assert w.pmd("app", "buf").kind == "table"  # pmd_populate put the old table back
    assert "SCAN_PAGE_COUNT" in run.steps[-1].note


def test_a_get_racing_a_collapse_written_from_the_ops_alone() -> None:
    """Acceptance: an O_DIRECT write (FOLL_GET, the device reads the page) racing khugepaged,
    then the process writes buf#1 and reads buf#0 back; not a catalog scenario. Before
    70cbc3cc78a9 the device can read the stale small page after the process's later store
    went into the huge page; from 6.0 it cannot."""
    sc = scenario(
        {
            "khugepaged": [{"collapse": {"addr": "buf"}}],
            "dio": [
                {"gup_fast": {"addr": "buf#0", "mode": "get"}},
                {"dma_read": {}},
                {"put_page": {}},
            ],
            "app": [{"write": {"addr": "buf#0", "value": "C"}}],
        },
        SMALL,
    )
    buggy = engine.explore(sc, config(sc, "5.19"))
    fixed = engine.explore(sc, config(sc, "6.0"))
    assert not buggy.truncated and not fixed.truncated
    assert "lost_write" in reachable_violations(buggy)
    assert reachable_violations(fixed) == set()


def test_a_subpage_address_is_checked() -> None:
    with pytest.raises(engine.ScenarioError) as err:
        scenario({"app": [{"read": {"addr": f"buf#{HPAGE_NR}"}}]}, THP)
    assert "actors[0].ops[0].read.addr" in str(err.value)
    assert "subpage number" in str(err.value)


def test_madvise_free_of_a_thp_makes_the_folio_lazyfree_in_place() -> None:
    sc = scenario({"app": [{"madvise_free": {"addr": "buf"}}]}, THP)
    run = engine.run_schedule(sc, config(sc, "6.6"), ["app", "app"])
    w = run.world(2)
    pmd = w.pmd("app", "buf")
    assert (pmd.kind, pmd.dirty, pmd.young) == ("huge", False, False)
    assert w.pages[0].lazyfree and w.pages[0].lru == "inactive_file"
    assert [s.function for s in run.steps] == ["madvise_free_huge_pmd", "folio_mark_lazyfree"]


def test_dontneed_of_a_whole_thp_frees_it_through_zap_huge_pmd() -> None:
    sc = scenario(
        {"app": [{"madvise_dontneed": {"addr": "buf"}}, {"read": {"addr": "buf#1"}}]}, THP
    )
    run = engine.run_schedule(sc, config(sc, "6.6"), ["app", "app"])
    assert run.steps[0].function == "zap_huge_pmd"
    assert run.world(1).pages[0].free and run.world(1).pages[1].free
    assert not run.violations  # the read sees zero-fill


def test_numa_migrate_refuses_a_gup_reference() -> None:
    sc = scenario(
        {
            "dev": [{"gup": {"addr": "buf#0", "mode": "get"}}],
            "numa": [{"numa_migrate": {"addr": "buf"}}],
        },
        THP,
    )
    run = engine.run_schedule(sc, config(sc, "6.6"), ["dev", "numa"])
    assert "not migrated" in run.steps[-1].note
    assert run.world(2).pmd("app", "buf").page == 0


def test_migrating_a_large_folio_remaps_each_subpage_to_the_copy() -> None:
    """migrate_pages of a PTE-mapped THP: each PTE becomes a migration entry, and each is
    restored to the same subpage of the copy."""
    sc = scenario(
        {"mig": [{"migrate": {"addr": "buf#1"}}]}, [*THP, {"split_huge_pmd": {"addr": "buf"}}]
    )
    cfg = config(sc, "6.10")
    run = engine.run_schedule(sc, cfg, ["mig"] * 6)
    w = run.world(6)
    assert run.actors[0].done and not run.violations
    new = w.pte("app", "buf#1")
    assert new is not None and new.page == 3 and w.pages[3].data == "A"
    assert w.pages[0].free and w.pages[1].free  # the old folio
    assert (w.pages[2].ref, w.pages[2].order) == (HPAGE_NR, 1)


def test_migrating_a_pmd_mapped_thp_uses_a_pmd_migration_entry() -> None:
    """616b8371539a (4.14): set_pmd_migration_entry, then remove_migration_pmd maps the
    copy with a huge PMD; faults on the entry wait (pmd_migration_entry_wait)."""
    sc = scenario({"mig": [{"migrate": {"addr": "buf#1"}}]}, THP)
    run = engine.run_schedule(sc, config(sc, "6.10"), ["mig"] * 6)
    assert "set_pmd_migration_entry" in run.steps[2].note
    mid = run.world(3).pte("app", "buf#1")
    assert mid is not None and mid.migration and mid.page == 1
    w = run.world(6)
    assert run.actors[0].done and not run.violations
    pmd = w.pmd("app", "buf")
    assert (pmd.kind, pmd.page) == ("huge", 2)
    assert (w.pages[2].ref, w.pages[2].entire, w.pages[3].data) == (1, 1, "A")
    assert w.pages[0].free and w.pages[1].free


@pytest.mark.parametrize(("kernel", "bug"), [("6.9", True), ("6.10", False)])
def test_splitting_a_pmd_migration_entry_under_gup_fast(kernel: str, bug: bool) -> None:
    """3a5a8d343e1c: before 6.10 pmdp_invalidate ran on the migration entry, which
    GUP-fast (arm64) then took for a present huge PMD."""
    sc = scenario(
        {
            "mig": [{"migrate": {"addr": "buf#0"}}],
            "t2": [{"split_huge_pmd": {"addr": "buf"}}],
            "dev": [{"gup_fast": {"addr": "buf#0", "mode": "pin"}}],
        },
        THP,
    )
    exp = engine.explore(sc, config(sc, kernel))
    assert ("kernel_bug" in reachable_violations(exp)) is bug


def run_to_end(
    sc: engine.Scenario, kernel: str, actor: str = "k", first: tuple[str, ...] = ()
) -> engine.Trace:
    """Run `first`, then `actor` alone until its ops are done."""
    cfg = config(sc, kernel)
    n = 1
    while True:
        run = engine.run_schedule(sc, cfg, [*first, *[actor] * n])
        if run.actors[[a.name for a in sc.actors].index(actor)].done:
            return run
        n += 1


LAZYFREE_THP: list[OpDoc] = [*THP, {"madvise_free": {"addr": "buf"}}]
RECLAIM: OpDoc = {"shrink_folio_list": {"addr": "buf#0"}}


def test_reclaim_discards_a_clean_lazyfree_thp_whole_from_5_18() -> None:
    """820c4e2e6f51: no split_folio_to_list; try_to_unmap with TTU_SPLIT_HUGE_PMD splits
    the PMD, each PTE is discarded (refcount == 1 + folio_mapcount), the folio freed whole."""
    sc = scenario({"k": [RECLAIM]}, LAZYFREE_THP)
    run = run_to_end(sc, "6.6")
    functions = [s.function for s in run.steps]
    assert "split_folio_to_list" not in functions
    assert functions[3] == "split_huge_pmd_address"
    assert functions.count("try_to_unmap_one") == HPAGE_NR
    w = run.world(len(run.steps))
    assert w.pages[0].free and w.pages[1].free and not run.violations


def test_reclaim_splits_a_lazyfree_thp_before_5_18_and_puts_the_tail_back() -> None:
    sc = scenario({"k": [RECLAIM]}, LAZYFREE_THP)
    run = run_to_end(sc, "5.17")
    assert "split_folio_to_list" in [s.function for s in run.steps]
    w = run.world(len(run.steps))
    assert w.pages[0].free
    tail = w.pages[1]
    assert (tail.order, tail.head, tail.ref, tail.mapcount) == (0, -1, 1, 1)
    assert tail.lazyfree and tail.lru == "inactive_file" and not tail.has(1)  # unlocked


def test_a_redirtied_lazyfree_thp_is_kept_and_swap_backed_again() -> None:
    redirtied = [*LAZYFREE_THP, {"write": {"addr": "buf#1", "value": "B"}}]
    sc = scenario({"k": [RECLAIM, RECLAIM]}, redirtied)  # the first pass finds it young
    run = run_to_end(sc, "6.6")
    assert any("folio_set_swapbacked" in s.note for s in run.steps)
    w = run.world(len(run.steps))
    assert not w.pages[0].free and not w.pages[0].lazyfree
    assert w.pte("app", "buf#1") is not None and not run.violations


def test_reclaim_of_an_anon_thp_splits_it_and_swaps_the_head_out() -> None:
    """The model's swap device has no free THP cluster: THP_SWPOUT_FALLBACK splits the
    folio (split_folio_to_list) and the head, now order-0, goes to the swap cache."""
    sc = scenario({"k": [RECLAIM, RECLAIM]}, THP)  # the first pass only ages it
    run = run_to_end(sc, "6.6")
    assert "split_folio_to_list" in [s.function for s in run.steps]
    w = run.world(len(run.steps))
    pte = w.pte("app", "buf#0")
    assert pte is not None and pte.swap == 0 and w.swap[0].data == "0"
    assert (w.pages[1].order, w.pages[1].mapcount, w.pages[1].lru) == (0, 1, "active_anon")


def test_reclaim_keeps_a_pinned_thp_out_of_swap() -> None:
    sc = scenario(
        {"dev": [{"gup": {"addr": "buf#1", "mode": "pin"}}], "k": [RECLAIM, RECLAIM]}, THP
    )
    run = run_to_end(sc, "6.6", first=("dev",))
    notes = [s.note for s in run.steps if s.actor == "k"]
    assert any("may be DMA-pinned: keep it out of swap" in n for n in notes)
    assert run.world(len(run.steps)).pages[0].order == 1


@pytest.mark.parametrize(("kernel", "dirty"), [("4.15", False), ("4.16", True)])
def test_split_huge_pmd_loses_a_dirty_bit_set_after_its_read_before_4_16(
    kernel: str, dirty: bool
) -> None:
    """d52605d7cb30: before 4.16 __split_huge_pmd_locked read pmd_dirty before
    pmdp_invalidate; a store through the still-present PMD in between is not carried."""
    sc = scenario(
        {
            "t2": [{"split_huge_pmd": {"addr": "buf"}}],
            "t1": [{"write": {"addr": "buf#0", "value": "B"}}],
        },
        LAZYFREE_THP,
    )
    cfg = config(sc, kernel)
    schedule = ["t2", "t1", "t2"] if kernel == "4.15" else ["t2", "t1"]
    w = engine.run_schedule(sc, cfg, schedule).world(len(schedule))
    pte = w.pte("app", "buf#0")
    assert pte is not None and pte.present
    assert (w.pages[0].has(2) or pte.dirty) is dirty  # PG_dirty or a dirty PTE


@pytest.mark.parametrize(("kernel", "bug"), [("6.14", True), ("6.15", False)])
def test_a_deferred_split_rmap_walk_meets_another_folios_pmd_migration_entry(
    kernel: str, bug: bool
) -> None:
    """be6e843fc51a: split_huge_pmd_locked applied pmd_folio() to a PMD migration entry of
    another folio at the address the split folio's rmap walk visits."""
    sc = engine.load_catalog()["deferred-split-vs-pmd-migration-entry"]
    exp = engine.explore(sc, config(sc, kernel))
    assert ("kernel_bug" in reachable_violations(exp)) is bug


@pytest.mark.parametrize(("kernel", "dirty"), [("5.5", False), ("5.6", True)])
def test_set_pmd_migration_entry_loses_a_dirty_bit_set_after_its_read_before_5_6(
    kernel: str, dirty: bool
) -> None:
    """8a8683ad9ba4: before 5.6 set_pmd_migration_entry read the PMD, then pmdp_invalidate;
    a store through the PMD in between left the folio clean."""
    sc = scenario(
        {
            "mig": [{"migrate": {"addr": "buf#0"}}],
            "t1": [{"write": {"addr": "buf#0", "value": "B"}}],
        },
        LAZYFREE_THP,
    )
    # 5.5: the store lands between the read and pmdp_invalidate; 5.6 has no such window
    # (the store before the unmap leaves a dirty PMD, which goes to the folio).
    schedule = (
        ["mig", "mig", "mig", "t1", "mig"] if kernel == "5.5" else ["mig", "mig", "t1", "mig"]
    )
    w = engine.run_schedule(sc, config(sc, kernel), schedule).world(len(schedule))
    assert w.pmd("app", "buf").kind == "migration" and w.pages[0].data == "B"
    assert w.pages[0].has(2) is dirty


def test_a_prot_none_pmd_sends_gup_fast_to_the_slow_path_and_a_load_to_a_hinting_fault() -> None:
    """change_prot_numa: the huge PMD stays mapped but PROT_NONE; GUP-fast falls back and
    the slow path's fault (do_huge_pmd_numa_page) makes it accessible again."""
    sc = scenario(
        {
            "numa": [{"change_prot_numa": {"addr": "buf"}}],
            "app": [{"read": {"addr": "buf#1"}}],
            "dev": [{"gup_fast": {"addr": "buf#0", "mode": "get"}}],
        },
        THP,
    )
    run = engine.run_schedule(sc, config(sc, "6.6"), ["numa", "dev", "app", "app"])
    w = run.world(2)
    assert w.pmd("app", "buf").numa and w.folio_mapcount(0) == 1
    assert "falls back" in run.steps[1].note
    assert run.steps[2].function == "handle_mm_fault" and "hinting" in run.steps[2].note
    assert not run.world(4).pmd("app", "buf").numa and not run.violations


@pytest.mark.parametrize("op", ["vmsplice"])
def test_ops_not_yet_large_folio_aware_are_refused_on_a_thp_region(op: str) -> None:
    with pytest.raises(engine.ScenarioError) as err:
        scenario({"app": [{op: {"addr": "buf#0"}}]}, THP)
    assert "does not model large folios yet" in str(err.value)


# Random scenarios over large folios: the THP ops composed with the large-folio-aware ones.
THP_KERNELS = ("4.15", "4.19", "5.13", "5.14", "5.17", "5.19", "6.0", "6.9", "6.10")
SUBPAGES = ("buf#0", "buf#1")


@st.composite
def thp_op_lists(draw: st.DrawFn) -> list[OpDoc]:
    ops: list[OpDoc] = []
    mode: str | None = None
    for _ in range(draw(st.integers(1, 3))):
        kinds = [
            "write",
            "read",
            "gup_fast",
            "gup",
            "madvise_dontneed",
            "madvise_free",
            "split_huge_pmd",
            "collapse",
            "deferred_split_scan",
            "numa_migrate",
            "migrate",
            "split_folio",
            "shrink_folio_list",
            "change_prot_numa",
            "alloc_page",
            "fork",
        ]
        if mode is not None:
            kinds += ["dma_write", "put_page" if mode == "get" else "unpin"]
        kind = draw(st.sampled_from(kinds))
        sub = draw(st.sampled_from(SUBPAGES))
        args: dict[str, Any]
        if kind == "write":
            args = {"addr": sub, "value": draw(st.sampled_from(("B", "C")))}
        elif kind in ("gup_fast", "gup"):
            mode = draw(st.sampled_from(("get", "pin")))
            args = {"addr": sub, "mode": mode, "write": draw(st.booleans())}
        elif kind in (
            "split_huge_pmd",
            "collapse",
            "numa_migrate",
            "madvise_free",
            "change_prot_numa",
        ):
            args = {"addr": "buf"}
        elif kind == "madvise_dontneed":
            args = {"addr": draw(st.sampled_from((*SUBPAGES, "buf")))}
        elif kind == "alloc_page":
            args = {"owner": "other", "value": "X"}
        elif kind == "fork":
            args = {"child": "kid"}
        elif kind == "dma_write":
            args = {"value": "D"}
        elif kind == "unpin":
            args = {"dirty": draw(st.booleans())}
        elif kind in ("put_page", "deferred_split_scan"):
            args = {}
        else:
            args = {"addr": sub}
        ops.append({kind: args})
    return ops


@st.composite
def thp_scenarios(draw: st.DrawFn) -> tuple[engine.Scenario, engine.Config]:
    actors = {f"t{i}": draw(thp_op_lists()) for i in range(draw(st.integers(1, 2)))}
    setup: list[OpDoc] = draw(
        st.sampled_from([THP, SMALL, [*THP, {"split_huge_pmd": {"addr": "buf"}}], LAZYFREE_THP])
    )
    sc = scenario(actors, setup)
    fixes = {}
    if draw(st.integers(0, 3)) == 0:
        fixes[draw(st.sampled_from(sorted(engine.DESIGN_RULES)))] = False
    return sc, engine.make_config(sc, kernel=draw(st.sampled_from(THP_KERNELS)), fixes=fixes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(thp_scenarios())
def test_random_large_folio_scenarios_replay_and_count_like_brute_force(
    case: tuple[engine.Scenario, engine.Config],
) -> None:
    sc, cfg = case
    exp = engine.explore(sc, cfg, max_states=3000)
    assert not exp.cycle
    assume(not exp.truncated and exp.interleavings <= 20_000)
    for outcome in exp.outcomes:
        run = engine.run_schedule(sc, cfg, outcome.example)
        assert run.finished
        assert violation_names(run) == outcome.violations
        assert run.label == outcome.label
    brute = brute_force_outcomes(sc, cfg, limit=20_000)
    assert {(o.violations, o.label): o.interleavings for o in exp.outcomes} == {
        key: count for key, (count, _) in brute.items()
    }
