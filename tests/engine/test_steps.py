"""Atomic steps and invariants, one behaviour at a time, on tiny inline scenarios."""

from __future__ import annotations

import pytest

import engine
from engine.state import GUP_PIN_COUNTING_BIAS
from engine.views import PageView, PteView
from tests.engine.builders import (
    SETUP_LAZYFREE,
    OpDoc,
    config,
    run_sequential,
    scenario,
    sequential,
    violation_names,
)

GUP_GET = {"gup_fast": {"addr": "buf", "mode": "get"}}
GUP_GET_FAST_ONLY = {"gup_fast": {"addr": "buf", "mode": "get", "fast_only": True}}
GUP_PIN = {"gup_fast": {"addr": "buf", "mode": "pin"}}
SHRINK = {"shrink_folio_list": {"addr": "buf"}}


def page(state: engine.StateView, pid: str = "P0") -> PageView:
    found = state.page(pid)
    assert found is not None, pid
    return found


def pte(state: engine.StateView, proc: str = "app", addr: str = "buf") -> PteView:
    return next(e for e in state.ptes if e.proc == proc and e.addr == addr)


def functions(run: engine.Trace) -> list[str]:
    return [s.function for s in run.steps]


# -- GUP ----------------------------------------------------------------------------------


def test_gup_fast_pin_adds_the_bias_and_one_pin() -> None:
    sc = scenario({"dev": [GUP_PIN, {"unpin": {}}]})
    run = engine.run_schedule(sc, config(sc), ["dev"] * 4)
    assert functions(run) == [
        "ptep_get_lockless",
        "try_grab_folio",
        "ptep_get",
        "unpin_user_pages",
    ]
    grabbed = page(run.steps[1].state)
    assert grabbed.refcount == 1 + GUP_PIN_COUNTING_BIAS
    assert grabbed.pins == 1
    assert "pins" in run.steps[1].note
    released = page(run.steps[3].state)
    assert (released.refcount, released.pins) == (1, 0)
    assert run.finished and not run.violations


def test_gup_fast_get_adds_one_reference() -> None:
    sc = scenario({"dio": [GUP_GET, {"put_page": {}}]})
    run = engine.run_schedule(sc, config(sc), ["dio"] * 4)
    assert page(run.steps[1].state).refcount == 2
    assert page(run.steps[1].state).pins == 0
    assert run.steps[3].function == "put_page"
    assert page(run.state).refcount == 1


def test_gup_fast_falls_back_to_the_slow_path_without_a_page() -> None:
    sc = scenario({"dio": [GUP_GET, {"put_page": {}}]}, setup=[])
    run = run_sequential(sc, config(sc), "dio")
    assert run.steps[0].function == "ptep_get_lockless"
    assert "falls back to the slow path" in run.steps[0].note
    assert "follow_page_pte" in functions(run)
    assert "handle_mm_fault" in functions(run)


def test_slow_gup_with_write_sets_page_dirty_foll_touch() -> None:
    sc = scenario(
        {"dio": [{"gup": {"addr": "buf", "mode": "get", "write": True}}, {"put_page": {}}]}
    )
    run = run_sequential(sc, config(sc), "dio")
    assert run.steps[0].function == "follow_page_pte"
    # The PTE from the setup write is already dirty, so FOLL_TOUCH has nothing to add.
    assert run.finished and not run.violations


# -- MADV_FREE ---------------------------------------------------------------------------


def test_madvise_free_clears_pte_dirty_young_and_swapbacked() -> None:
    sc = scenario({"app": [{"madvise_free": {"addr": "buf"}}]})
    before = run_sequential(sc, config(sc)).initial
    assert pte(before).dirty and pte(before).young
    assert "swapbacked" in page(before).flags
    run = run_sequential(sc, config(sc), "app")
    assert functions(run) == ["madvise_free_pte_range", "folio_mark_lazyfree"]
    first = pte(run.steps[0].state)
    assert (first.dirty, first.young, first.write) == (False, False, True)
    assert "swapbacked" in page(run.steps[0].state).flags  # the folio changes in step 2
    after = page(run.steps[1].state)
    assert "swapbacked" not in after.flags
    assert "dirty" not in after.flags
    assert after.lru == "inactive_file"
    assert run.label == "page_kept: mapped, lazyfree"


def test_write_after_madvise_free_sets_the_pte_dirty() -> None:
    sc = scenario({"app": [{"write": {"addr": "buf", "value": "B"}}]}, SETUP_LAZYFREE)
    run = run_sequential(sc, config(sc), "app")
    assert functions(run) == ["store"]  # the PTE kept its write permission: no fault
    e = pte(run.steps[0].state)
    assert e.dirty and e.young
    assert page(run.state).data == "B"


def test_shrink_of_a_clean_lazyfree_page_frees_it_on_5_18() -> None:
    sc = scenario({"kswapd": [SHRINK]}, SETUP_LAZYFREE)
    run = run_sequential(sc, config(sc, "5.18"), "kswapd")
    assert functions(run) == [
        "isolate_lru_folio",
        "folio_trylock",
        "folio_check_references",
        "ptep_get_and_clear",
        "try_to_unmap_one",
        "folio_ref_freeze",
        "free_unref_page_list",
    ]
    assert page(run.steps[0].state).refcount == 2  # the isolation reference
    assert page(run.steps[5].state).refcount == 0
    assert page(run.state).owner == "free"
    assert run.label == "page_freed"
    assert not run.violations
    # A discarded lazyfree page reads as zero-fill, which MADV_FREE made legal.
    assert pte(run.state).present is False


def test_redirtied_lazyfree_page_is_remapped_as_swap_backed_anon() -> None:
    """Seed thread (a): a write after MADV_FREE; the second reclaim pass keeps the page."""
    sc = scenario(
        {"app": [{"write": {"addr": "buf", "value": "B"}}], "kswapd": [SHRINK, SHRINK]},
        SETUP_LAZYFREE,
    )
    run = run_sequential(sc, config(sc), "app", "kswapd")
    fns = functions(run)
    assert fns[3] == "folio_check_references"
    assert "young" in run.steps[3].note  # the first pass only clears the young bit
    assert fns.count("try_to_unmap_one") == 1
    decide = run.steps[fns.index("try_to_unmap_one")]
    assert "folio_set_swapbacked" in decide.note
    assert "set_pte_at restores" in decide.note
    assert run.label == "page_kept: mapped, swap-backed anon"
    assert page(run.state).data == "B"
    assert not run.violations


def test_a_young_page_survives_one_reclaim_pass() -> None:
    sc = scenario({"kswapd": [SHRINK]})
    run = run_sequential(sc, config(sc), "kswapd")
    assert functions(run)[-1] == "folio_putback_lru"
    assert (run.label or "").startswith("page_kept")
    assert pte(run.state).young is False


# -- references -------------------------------------------------------------------------


def test_put_page_of_the_last_reference_frees_the_page() -> None:
    sc = scenario(
        {"dio": [GUP_GET, {"put_page": {}}], "app": [{"madvise_dontneed": {"addr": "buf"}}]}
    )
    run = engine.run_schedule(sc, config(sc), ["dio", "dio", "dio", "app", "dio"])
    assert run.steps[3].function == "zap_pte_range"
    assert page(run.steps[3].state).refcount == 1  # only the GUP reference is left
    last = run.steps[4]
    assert last.function == "put_page"
    assert "the page is freed" in last.note
    assert page(last.state).owner == "free"
    assert run.label == "page_freed"
    assert not run.violations


def test_folio_ref_freeze_failure_keeps_the_page() -> None:
    """R2: a speculative GUP-fast reference makes the lazyfree freeze fail; the page is kept."""
    sc = scenario(
        {"dio": [GUP_GET_FAST_ONLY, {"put_page": {}}], "kswapd": [SHRINK]}, SETUP_LAZYFREE
    )
    schedule = ["dio", *["kswapd"] * 5, "dio", "kswapd", "kswapd", "dio", "dio"]
    run = engine.run_schedule(sc, config(sc, "5.18"), schedule)
    freeze = run.steps[7]
    assert (freeze.actor, freeze.function) == ("kswapd", "folio_ref_freeze")
    assert "fails" in freeze.note
    assert page(freeze.state).owner == "anon"
    assert page(freeze.state).refcount == 2
    assert run.steps[8].function == "folio_putback_lru"
    assert run.steps[9].function == "gup_put_folio"  # the recheck sees the PTE gone
    assert not run.violations


def test_dropping_the_freeze_is_a_bad_freeze_and_use_after_free() -> None:
    """Seed thread (b): without folio_ref_freeze the speculative reference outlives the page."""
    sc = scenario(
        {"dio": [GUP_GET_FAST_ONLY, {"put_page": {}}], "kswapd": [SHRINK]}, SETUP_LAZYFREE
    )
    schedule = ["dio", *["kswapd"] * 5, "dio", "kswapd", "kswapd", "dio", "dio"]
    run = engine.run_schedule(sc, config(sc, "5.18", lazyfree_freeze=False), schedule)
    assert violation_names(run) == ("bad_freeze", "refcount_underflow", "use_after_free")
    bad = next(v for v in run.violations if v.name == "bad_freeze")
    assert bad.step == 8
    assert run.steps[bad.step - 1].function == "folio_ref_freeze"
    uaf = next(v for v in run.violations if v.name == "use_after_free")
    assert run.steps[uaf.step - 1].function == "gup_put_folio"


def test_r1_lost_write_on_5_17_is_found_at_the_end() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    schedule = "dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd,dio,dio,dio,kswapd,kswapd"
    run = engine.run_schedule(sc, engine.make_config(sc, "buggy"), schedule.split(","))
    assert [(v.name, v.step) for v in run.violations] == [("lost_write", 0)]
    assert "'B'" in run.violations[0].message
    fixed = engine.run_schedule(sc, engine.make_config(sc, "fixed"), schedule.split(",")[:8])
    assert "restores the PTE" in fixed.steps[7].note


def test_a_device_write_into_a_reallocated_page_is_use_after_free() -> None:
    """5.17 discards the GUP-held lazyfree page; with the freeze dropped it is freed and reused."""
    sc = scenario(
        {
            "dio": [GUP_GET, {"dma_write": {"value": "B"}}, {"put_page": {}}],
            "kswapd": [SHRINK],
            "other": [{"alloc_page": {"owner": "net", "value": "N"}}],
        },
        SETUP_LAZYFREE,
    )
    cfg = config(sc, "5.17", lazyfree_freeze=False)
    run = engine.run_schedule(sc, cfg, [*["dio"] * 3, *["kswapd"] * 7, "other", "dio", "dio"])
    assert run.steps[10].function == "alloc_pages"
    assert page(run.steps[10].state).owner == "reallocated to net"
    by_step = {v.step: v for v in run.violations}
    assert by_step[9].name == "bad_freeze"
    assert by_step[12].name == "use_after_free"
    assert "reallocated to net" in by_step[12].message
    assert run.steps[11].function == "dma_write"
    assert by_step[0].name == "lost_write"  # the process reads zero-fill, not 'B'


def test_writeback_of_a_dirty_page_without_buffers_is_a_kernel_bug_before_5_18() -> None:
    """R8's last step: set_page_dirty on a file page that never got buffers, then writeback."""
    drv: list[OpDoc] = [
        {"gup_fast": {"addr": "fbuf", "mode": "get"}},
        {"dma_write": {"value": "X"}},
        {"set_page_dirty": {}},
        {"put_page": {}},
    ]
    setup = [{"mmap_file": {"addr": "fbuf", "file": "f"}}, {"read": {"addr": "fbuf"}}]
    sc = scenario(
        {"drv": drv, "wb": [{"writeback": {"file": "f"}}]}, setup, files={"f": {"data": "D"}}
    )
    old = run_sequential(sc, config(sc, "5.17"), "drv", "wb")
    assert "without buffers" in old.steps[4].note
    assert functions(old)[6:] == [
        "folio_lock",
        "folio_clear_dirty_for_io",
        "writepage",
        "folio_end_writeback",
    ]
    bug = next(v for v in old.violations if v.name == "kernel_bug")
    assert old.steps[bug.step - 1].function == "writepage"
    new = run_sequential(sc, config(sc, "5.18"), "drv", "wb")
    assert "kernel_bug" not in violation_names(new)
    assert "WARN" in new.steps[8].note
    # Either way the device's data never reaches the disk.
    assert "lost_write" in violation_names(old) and "lost_write" in violation_names(new)


# -- fork ----------------------------------------------------------------------------------


def test_fork_write_protects_the_parent_pte_in_a_separate_step() -> None:
    sc = scenario({"app": [{"fork": {"child": "kid"}}]})
    run = run_sequential(sc, config(sc), "app")
    assert functions(run) == [
        "dup_mmap",
        "copy_present_pte",
        "ptep_set_wrprotect",
        "raw_write_seqcount_end",
    ]
    copied = run.steps[1].state
    assert pte(copied, "kid").write is False
    assert pte(copied, "app").write is True  # the R5c gap: not yet write-protected
    assert page(copied).refcount == 2 and page(copied).mapcount == 2
    assert pte(run.steps[2].state, "app").write is False
    procs = {p.name: p for p in run.steps[0].state.procs}
    assert procs["app"].write_protect_seq % 2 == 1
    assert procs["app"].mmap_lock == "write: app"
    procs = {p.name: p for p in run.state.procs}
    assert procs["app"].write_protect_seq % 2 == 0
    assert procs["app"].mmap_lock is None


def test_fork_copies_a_pinned_page_for_the_child_on_5_9() -> None:
    sc = scenario({"dev": [GUP_PIN], "app": [{"fork": {"child": "kid"}}]})
    run = run_sequential(sc, config(sc, "5.9"), "dev", "app")
    copy = run.steps[4]
    assert copy.function == "copy_present_pte"
    assert "own copy" in copy.note
    assert pte(run.state, "kid").page == "P1"
    assert pte(run.state, "app").write is True


# -- schedules ------------------------------------------------------------------------------


def test_a_finished_actor_in_a_schedule_names_the_enabled_ones() -> None:
    sc = scenario({"kswapd": [SHRINK], "app": [{"read": {"addr": "buf"}}]})
    cfg = config(sc)
    schedule = sequential(sc, cfg, "kswapd")
    with pytest.raises(engine.ScheduleError) as err:
        engine.run_schedule(sc, cfg, [*schedule, "kswapd"])
    assert err.value.enabled == ("app",)
    assert err.value.actor == "kswapd"
    assert err.value.index == len(schedule) + 1
    assert "kswapd has finished" in str(err.value)
    assert "enabled: app" in str(err.value)


def test_a_blocked_actor_in_a_schedule_names_the_enabled_ones() -> None:
    sc = scenario(
        {"app": [{"fork": {"child": "kid"}}], "w": [{"write": {"addr": "buf", "value": "B"}}]}
    )
    with pytest.raises(engine.ScheduleError) as err:
        engine.run_schedule(sc, config(sc), ["app", "w"])
    message = str(err.value)
    assert "w is blocked" in message
    assert "mmap_lock of app, held for write" in message  # dup_mmap holds it
    assert "enabled: app" in message
    assert err.value.enabled == ("app",)


def test_an_unknown_actor_in_a_schedule_is_an_error() -> None:
    sc = scenario({"kswapd": [SHRINK], "app": [{"read": {"addr": "buf"}}]})
    with pytest.raises(engine.ScheduleError) as err:
        engine.run_schedule(sc, config(sc), ["kswapd", "bogus"])
    message = str(err.value)
    assert "unknown actor 'bogus'" in message
    assert "app" in message and "kswapd" in message
    assert err.value.index == 2


def test_a_partial_schedule_reports_enabled_actors_and_no_label() -> None:
    sc = scenario({"kswapd": [SHRINK], "app": [{"read": {"addr": "buf"}}]})
    run = engine.run_schedule(sc, config(sc), ["kswapd"])
    assert not run.finished
    assert run.label is None
    assert set(run.enabled) == {"kswapd", "app"}
    views = {a.name: a for a in run.actors}
    assert views["kswapd"].next_function == "folio_trylock"
    assert views["app"].next_function == "load"


def test_replay_is_deterministic() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    schedule = [*["dio"] * 3, *["kswapd"] * 5, *["dio"] * 3, "kswapd", "kswapd"]
    first = engine.run_schedule(sc, cfg, schedule)
    second = engine.run_schedule(sc, cfg, schedule)
    assert first == second
    assert [s.state for s in first.steps] == [s.state for s in second.steps]
    assert engine.run_to_json(first) == engine.run_to_json(second)


# -- known model gaps (see the report to the lead) --------------------------------------------


def test_slow_gup_fault_does_not_clobber_a_page_mapped_meanwhile() -> None:
    sc = scenario(
        {
            "dio": [{"gup": {"addr": "buf", "mode": "get"}}, {"put_page": {}}],
            "app": [{"write": {"addr": "buf", "value": "C"}}],
        },
        setup=[],
    )
    for kernel in ("4.12", "5.18", "6.4"):
        exp = engine.explore(sc, config(sc, kernel))
        assert not {v for o in exp.outcomes for v in o.violations}, kernel


@pytest.mark.parametrize("kernel", ["4.12", "5.10", "5.17", "5.18", "6.4"])
def test_cpu_write_racing_lazyfree_reclaim_never_loses_data(kernel: str) -> None:
    # Reclaim holds the PTE lock between ptep_get_and_clear and its decision, so a racing
    # store waits and then redirties the page; no interleaving on any kernel loses data.
    sc = scenario(
        {
            "dio": [GUP_GET, {"put_page": {}}],
            "kswapd": [SHRINK],
            "app": [{"write": {"addr": "buf", "value": "C"}}],
        },
        SETUP_LAZYFREE,
    )
    exp = engine.explore(sc, config(sc, kernel))
    assert not exp.truncated
    assert all(not o.violations for o in exp.outcomes)


def test_the_isolation_reference_leaves_the_holders_at_putback_before_the_write_completes() -> None:
    # The second pass swaps the page out: pageout starts the write, folio_putback_lru drops
    # the isolation reference, and folio_end_writeback is the actor's last step. Between the
    # two the refcount's breakdown must not count the isolation (it read "other: -1").
    shrink = {"shrink_folio_list": {"addr": "buf"}}
    sc = scenario({"kswapd": [shrink, shrink]})
    run = run_sequential(sc, config(sc, "5.18"), "kswapd")
    putback = next(s for s in run.steps if s.function == "folio_putback_lru" and s.op_index == 1)
    assert run.steps[putback.index].function == "folio_end_writeback"
    holders = dict(page(putback.state).holders)
    assert holders == {"swap cache": 1} and page(putback.state).refcount == 1
