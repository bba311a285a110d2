"""Kernel fidelity (issue 9): reverted fixes have a range, and a device read is checked like a
CPU read. Each scenario is built from ops, not from the catalog."""

from __future__ import annotations

import engine
from engine.fixes import FIXES, fixes_for
from tests.engine.builders import config, scenario

# After fork the parent's page is COW-shared; a driver pins it read-only for the device to read
# (an RDMA send buffer), then the parent writes its buffer and the device reads it.
RO_PIN_AFTER_FORK = scenario(
    {
        "dev": [{"gup": {"addr": "buf", "mode": "pin", "write": False}}, {"dma_read": {}}],
        "cpu": [{"write": {"addr": "buf", "value": "B"}}],
    },
    setup=[{"write": {"addr": "buf", "value": "A"}}, {"fork": {"child": "child"}}],
)
PIN_WRITE_READ = ["dev", "cpu", "cpu", "dev"]


def violations(sc: engine.Scenario, kernel: str) -> set[str]:
    exp = engine.explore(sc, config(sc, kernel))
    return {v for o in exp.outcomes for v in o.violations}


def test_the_forced_cow_break_is_on_only_in_5_8() -> None:
    cow = FIXES["gup_cow_break"]
    assert (cow.reverted, cow.revert_commit) == ("5.9", "a308c71bf1e6")
    assert cow.releases == "5.8 (reverted in 5.9)"
    assert [fixes_for(k)["gup_cow_break"] for k in ("5.7", "5.8", "5.9", "5.18", "6.1")] == [
        False,
        True,
        False,
        False,
        False,
    ]


def test_a_read_only_pin_from_5_9_to_5_18_takes_the_shared_page_itself() -> None:
    for kernel in ("5.9", "5.18"):
        run = engine.run_schedule(RO_PIN_AFTER_FORK, config(RO_PIN_AFTER_FORK, kernel), ["dev"])
        assert run.steps[-1].function == "follow_page_pte"
        assert "takes P0" in run.steps[-1].note, kernel


def test_a_device_reading_through_a_stale_read_only_pin_is_a_lost_write() -> None:
    sc = RO_PIN_AFTER_FORK
    run = engine.run_schedule(sc, config(sc, "5.18"), PIN_WRITE_READ)
    assert [v.name for v in run.violations] == ["lost_write"]
    assert run.violations[0].step == len(PIN_WRITE_READ)  # the dma_read, counted from 1
    assert "the device read stale data" in run.violations[0].message
    # 5.8 broke COW in GUP; 5.19 unshares before a read-only pin: the device sees 'B'.
    assert violations(sc, "5.8") == set()
    assert violations(sc, "5.18") == {"lost_write"}
    assert violations(sc, "5.19") == set()


def test_a_device_read_racing_a_device_write_may_see_either_value() -> None:
    # Two drivers with GUPs for the same address: while one's DMA write is in flight the
    # other's read may see the old or the new data; neither is stale.
    sc = scenario(
        {
            "w": [
                {"gup_fast": {"addr": "buf", "mode": "pin", "write": True}},
                {"dma_write": {"value": "B"}},
                {"unpin": {"dirty": True}},
            ],
            "r": [{"gup_fast": {"addr": "buf", "mode": "pin", "write": False}}, {"dma_read": {}}],
        },
    )
    assert violations(sc, "6.1") == set()


def has_pinned(sc: engine.Scenario, kernel: str, schedule: list[str]) -> bool:
    run = engine.run_schedule(sc, config(sc, kernel), schedule)
    return bool(next(p for p in run.state.procs if p.name == "app").has_pinned)


def test_a_pin_marks_the_mm_pinned_before_it_grabs_the_page() -> None:
    # mm->has_pinned (5.9-5.10) / MMF_HAS_PINNED is set at the top of the GUP entry points,
    # so fork sees it while a GUP-fast pin is between its PTE read and its grab.
    for op in ("gup_fast", "gup"):
        sc = scenario({"dev": [{op: {"addr": "buf", "mode": "pin", "write": True}}]})
        for kernel in ("5.10", "6.1"):
            run = engine.run_schedule(sc, config(sc, kernel), ["dev"])
            assert run.steps[-1].function in ("ptep_get_lockless", "follow_page_pte")
            assert has_pinned(sc, kernel, ["dev"]), (op, kernel)
    get = scenario({"dev": [{"gup_fast": {"addr": "buf", "mode": "get", "write": True}}]})
    assert not has_pinned(get, "6.1", ["dev", "dev", "dev"])


def test_pin_user_pages_does_not_mark_the_page_referenced() -> None:
    # No FOLL_TOUCH for pins: PG_referenced stays as the setup left it; a FOLL_GET touches it.
    def referenced(mode: str) -> bool:
        sc = scenario({"dev": [{"gup": {"addr": "buf", "mode": mode, "write": True}}]})
        run = engine.run_schedule(sc, config(sc, "6.1"), ["dev"])
        return "referenced" in run.state.pages[0].flags

    assert referenced("get")
    assert not referenced("pin")


def test_a_cpu_load_sets_the_young_bit_but_not_pg_referenced() -> None:
    sc = scenario({"app": [{"read": {"addr": "buf"}}]})
    run = engine.run_schedule(sc, config(sc, "6.1"), ["app"])
    assert "referenced" not in run.state.pages[0].flags
    assert next(p for p in run.state.ptes if p.addr == "buf").young


SWAPPED_OUT = [
    {"write": {"addr": "buf", "value": "A"}},
    # young on the first pass; the second writes it to swap; the third frees it
    *[{"shrink_folio_list": {"addr": "buf"}}] * 3,
]


def swap_in(kernel: str, op: dict[str, dict[str, str]]) -> tuple[engine.StateView, str]:
    sc = scenario({"app": [op]}, SWAPPED_OUT)
    assert engine.run_schedule(sc, config(sc, kernel), []).state.ptes[0].swap == "S0"
    # do_swap_page's steps, up to the one that maps the page (pte_same).
    for n in range(1, 8):
        run = engine.run_schedule(sc, config(sc, kernel), ["app"] * n)
        if run.steps[-1].function == "pte_same":
            break
    return run.state, run.steps[-1].note


def test_a_read_fault_from_swap_maps_the_page_read_only_even_when_exclusive() -> None:
    # do_swap_page (5.19+): exclusive || refcount == 1 sets RMAP_EXCLUSIVE, but only a write
    # fault makes the PTE writable.
    state, note = swap_in("5.19", {"read": {"addr": "buf"}})
    assert "maps P0 read-only" in note
    pte = state.ptes[0]
    assert pte.present and not pte.write
    assert "anon_exclusive" in state.pages[0].flags


def test_a_write_fault_from_swap_frees_the_swap_copy() -> None:
    # reuse_swap_page (<= 5.17) and should_try_to_free_swap (5.18+) delete the folio from the
    # swap cache: its only copy is now in memory, so it is dirty and the slot holds nothing.
    for kernel in ("5.17", "5.18", "6.1"):
        state, note = swap_in(kernel, {"write": {"addr": "buf", "value": "B"}})
        assert "delete_from_swap_cache" in note, kernel
        flags = state.pages[0].flags
        assert "swapcache" not in flags and "dirty" in flags, kernel
