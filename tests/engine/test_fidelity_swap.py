"""Kernel fidelity (issue 13): the swap slot's life, do_swap_page in steps, swapoff.

Every scenario here is written from the ops alone (no catalog file).
"""

from __future__ import annotations

from typing import Any

import pytest

import engine
from engine.lang.ir import ScenarioError
from engine.model import Model
from tests.engine.builders import config, doc, run_sequential

SWAPPED_OUT = [
    {"write": {"addr": "buf", "value": "A"}},
    {"shrink_folio_list": {"addr": "buf"}},  # clears the young bit
    {"shrink_folio_list": {"addr": "buf"}},  # add_to_swap, unmap, pageout
    {"shrink_folio_list": {"addr": "buf"}},  # frees the written page: buf holds S0
]
RACE: dict[str, list[dict[str, Any]]] = {
    "cpu0": [{"read": {"addr": "buf"}}],
    "cpu1": [{"write": {"addr": "buf", "value": "B"}}],
    "kswapd": [{"shrink_folio_list": {"addr": "buf"}}, {"shrink_folio_list": {"addr": "buf"}}],
}
# The interleaving of 13ddaf26be32's message: CPU0 allocates page A and reads it, then
# stalls; CPU1 swaps in page B, maps it, swap_free()s the entry, writes B, and kswapd
# swaps B out again to the same (reused) entry; CPU0's pte_same passes.
COMMIT_SCHEDULE = [
    *["cpu0"] * 3,  # do_swap_page, swap_cache_get_folio (allocate A), swap_read_folio
    *["cpu1"] * 5,  # the same three, pte_same + set_pte_at + swap_free, the store of B
    *["kswapd"] * 4,  # pass 1: the young PTE keeps the page
    *["kswapd"] * 9,  # pass 2: add_to_swap (S0 again), unmap, pageout of B, end of I/O
    *["cpu0"] * 2,  # pte_same passes, set_pte_at(A), swap_free; the load
]


def synchronous(
    actors: dict[str, list[dict[str, Any]]], setup: list[dict[str, Any]] = SWAPPED_OUT
) -> engine.Scenario:
    d = doc(actors, setup)
    d["swap"] = {"synchronous": True}
    return engine.parse_scenario(d)


def violations(sc: engine.Scenario, kernel: str) -> set[str]:
    exp = engine.explore(sc, config(sc, kernel))
    return {v for o in exp.outcomes for v in o.violations}


def test_two_faults_on_one_zram_entry_lose_a_write_until_6_8() -> None:
    # Acceptance: the kernel's verdict before and after 13ddaf26be32, from the ops alone.
    sc = synchronous(RACE)
    assert violations(sc, "6.7") == {"lost_write"}
    assert violations(sc, "6.8") == set()
    # Before 0bcac06f27d7 (4.15) every swap-in goes through the swap cache: no race.
    assert violations(sc, "4.14") == set()
    # A plain device never skips the swap cache: SWAP_HAS_CACHE and the folio lock
    # serialize the two faults.
    plain = engine.parse_scenario(doc(RACE, SWAPPED_OUT))
    assert violations(plain, "6.7") == set()


def test_the_commit_message_interleaving_installs_the_stale_page() -> None:
    sc = synchronous(RACE)
    run = engine.run_schedule(sc, config(sc, "6.7"), COMMIT_SCHEDULE)
    notes = [s.note for s in run.steps]
    assert run.error is None, notes
    assert "skip the swap cache" in notes[1] and "skip the swap cache" in notes[4]
    assert "enters the swap cache at slot S0" in " ".join(notes[8:21])  # the entry is reused
    assert "pte_same: buf still holds S0" in notes[-2]
    assert {v.name for v in run.violations} == {"lost_write"}  # at the load and at the end
    assert "'A'" in run.violations[0].message and "'B'" in run.violations[0].message


def test_from_6_8_the_racer_gets_eexist_and_waits() -> None:
    sc = synchronous(RACE)
    run = engine.run_schedule(sc, config(sc, "6.8"), ["cpu0", "cpu0"])
    assert "swapcache_prepare pins S0" in run.steps[1].note
    cpu1 = next(a for a in run.actors if a.name == "cpu1")
    assert cpu1.blocked and "-EEXIST" in cpu1.blocked
    done = engine.run_schedule(sc, config(sc, "6.8"), ["cpu0"] * 4 + ["cpu1"] * 2)
    assert "swapcache_clear unpins S0" in done.steps[3].note
    assert "already writable" in done.steps[4].note or "do_wp_page" in done.steps[4].note


def test_a_freed_slot_is_discarded_by_zram_and_handed_out_again() -> None:
    sc = synchronous({"cpu": [{"write": {"addr": "buf", "value": "B"}}], **{"r": []}})
    run = engine.run_schedule(sc, config(sc, "6.8"), ["cpu"] * 4)
    world = run.steps[-1].world
    assert world.swap_free == (0,) and world.swap[0] == engine.state.Slot()
    # Plain device: the freed slot keeps its stale content on disk, and is still reused.
    plain = engine.parse_scenario(
        doc(
            {
                "cpu": [{"write": {"addr": "buf", "value": "B"}}],
                "kswapd": [{"shrink_folio_list": {"addr": "buf"}}] * 2,
            },
            SWAPPED_OUT,
        )
    )
    cfg = config(plain, "6.8")
    run = engine.run_schedule(plain, cfg, [*["cpu"] * 7, *["kswapd"] * 8])
    notes = [s.note for s in run.steps]
    assert "delete_from_swap_cache" in notes[5], notes
    assert any("enters the swap cache at slot S0" in n for n in notes), notes
    assert len(run.steps[-1].world.swap) == 1


@pytest.mark.parametrize(
    ("swap", "path", "words"),
    [
        ({"synchronous": "yes"}, "swap.synchronous", "true or false"),
        ({"sync": True}, "swap.sync", "allowed: synchronous"),
        (True, "swap", "must be a mapping"),
    ],
)
def test_the_swap_device_attribute_is_validated(swap: object, path: str, words: str) -> None:
    d = doc({"cpu": [{"read": {"addr": "buf"}}]})
    d["swap"] = swap
    with pytest.raises(ScenarioError) as err:
        engine.parse_scenario(d)
    assert [(e.path, words in e.message) for e in err.value.errors] == [(path, True)]


SWAPOFF: dict[str, list[dict[str, Any]]] = {
    "app": [{"read": {"addr": "buf", "expect": "A"}}],
    "admin": [{"swapoff": {}}],
}


def test_swapoff_under_a_swap_in_that_skips_the_swap_cache() -> None:
    # 2799e77529c2: until 5.13 the skip-swapcache read can run after swapoff freed the device.
    sc = synchronous(SWAPOFF)
    assert violations(sc, "5.13") == {"use_after_free"}
    assert violations(sc, "5.14") == set()
    cfg = config(sc, "5.14")
    run = engine.run_schedule(sc, cfg, ["app", "app", *["admin"] * 4])
    admin = next(a for a in run.actors if a.name == "admin")
    assert admin.blocked and "get_swap_device of app" in admin.blocked
    end = engine.run_schedule(sc, cfg, ["app", "app", *["admin"] * 4, *["app"] * 3, "admin"])
    assert end.finished and end.violations == ()


def test_swapoff_under_a_swap_in_through_the_swap_cache() -> None:
    # eb085574a752: a forked entry (two users) goes through the swap cache; before 5.1 its
    # swapcache_prepare reads the freed swap_map.
    sc = synchronous(SWAPOFF, [*SWAPPED_OUT, {"fork": {"child": "kid"}}])
    assert violations(sc, "5.0") == {"use_after_free"}
    assert violations(sc, "5.1") == set()


def test_reclaim_allocates_no_slot_once_swapoff_has_begun() -> None:
    sc = engine.parse_scenario(
        doc(
            {
                "admin": [{"swapoff": {}}],
                "kswapd": [{"shrink_folio_list": {"addr": "buf"}}] * 2,
            }
        )
    )
    run = engine.run_schedule(sc, config(sc, "6.8"), ["admin", *["kswapd"] * 8])
    notes = [s.note for s in run.steps]
    assert any("folio_alloc_swap fails" in n for n in notes), notes
    assert run.steps[-1].world.swap == ()


def test_a_zap_does_not_wait_for_a_pinned_entry_and_the_swap_in_backs_off() -> None:
    # MADV_DONTNEED drops the swap entry while a skip-swapcache swap-in holds SWAP_HAS_CACHE
    # (zap_pte_range never waits for it); the swap-in's pte_same then fails, and the slot is
    # freed only when swapcache_clear drops the pin.
    sc = synchronous(
        {"cpu": [{"read": {"addr": "buf"}}], "zap": [{"madvise_dontneed": {"addr": "buf"}}]}
    )
    run = engine.run_schedule(sc, config(sc, "6.8"), ["cpu", "cpu", "zap"])
    world = run.steps[-1].world
    assert world.swap[0].has_cache and world.swap[0].entries == 0 and world.swap_free == ()
    end = engine.run_schedule(sc, config(sc, "6.8"), ["cpu", "cpu", "zap", "zap", *["cpu"] * 4])
    assert "pte_same fails" in end.steps[5].note, [s.note for s in end.steps]
    assert end.steps[5].world.swap_free == (0,)
    assert end.finished and end.violations == ()


def test_zapping_the_last_swap_entry_frees_the_swap_cache_folio() -> None:
    # free_swap_and_cache: count == SWAP_HAS_CACHE after swap_free, so __try_to_reclaim_swap
    # takes the unmapped, written folio out of the swap cache, and the slot is free.
    sc = engine.parse_scenario(
        doc({"zap": [{"madvise_dontneed": {"addr": "buf"}}]}, SWAPPED_OUT[:3])
    )
    run = engine.run_schedule(sc, config(sc, "6.8"), ["zap", "zap"])
    assert "only SWAP_HAS_CACHE is left of S0" in run.steps[0].note
    assert "__try_to_reclaim_swap: P0 leaves the swap cache" in run.steps[1].note
    world = run.steps[1].world
    assert world.page(0).free and world.swap_free == (0,)


def test_swapoff_under_free_swap_and_cache() -> None:
    # 82b1c07a0af6: zap leaves only SWAP_HAS_CACHE; swapoff frees that swap cache itself and
    # the device, under free_swap_and_cache's swap_page_trans_huge_swapped. A plain device.
    sc = engine.parse_scenario(
        doc(
            {"app": [{"madvise_dontneed": {"addr": "buf"}}], "admin": [{"swapoff": {}}]},
            SWAPPED_OUT[:3],
        )
    )
    assert violations(sc, "6.8") == {"use_after_free"}
    assert violations(sc, "6.9") == set()
    run = engine.run_schedule(sc, config(sc, "6.9"), ["app", *["admin"] * 3])
    admin = next(a for a in run.actors if a.name == "admin")
    assert admin.blocked and "get_swap_device of app" in admin.blocked


def test_fork_waits_for_a_swap_in_in_progress() -> None:
    # The fault holds mmap_lock for read across do_swap_page's steps; fork takes it for write.
    sc = synchronous({"cpu": [{"read": {"addr": "buf"}}], "parent": [{"fork": {"child": "kid"}}]})
    run = engine.run_schedule(sc, config(sc, "6.8"), ["cpu"])
    parent = next(a for a in run.actors if a.name == "parent")
    assert parent.blocked and "cpu" in parent.blocked
    assert violations(sc, "6.8") == set()


# The swap cache's protocol on an ordinary device, in do_swap_page's steps.
PLAIN_SWAPIN = [
    "do_swap_page",
    "swapcache_prepare",
    "add_to_swap_cache",
    "swap_read_folio",
    "folio_lock",
    "pte_same",
    "load",
]


def test_a_plain_swap_in_runs_the_swap_cache_protocol_in_steps() -> None:
    sc = engine.parse_scenario(
        doc({"cpu": [{"read": {"addr": "buf", "expect": "A"}}]}, SWAPPED_OUT)
    )
    run = engine.run_schedule(sc, config(sc, "6.8"), ["cpu"] * 7)
    assert [s.function for s in run.steps] == PLAIN_SWAPIN
    assert "swapcache_prepare claims S0" in run.steps[1].note
    world = run.steps[1].world
    assert world.swap[0].has_cache and world.swap[0].cache < 0  # claimed, no folio yet
    assert run.steps[2].world.swap[0].cache == 0  # P0 is the swap cache of S0
    assert run.finished and run.violations == ()


def test_a_second_plain_swap_in_gets_eexist_then_waits_for_the_folio_lock() -> None:
    sc = engine.parse_scenario(
        doc(
            {
                "cpu0": [{"read": {"addr": "buf"}}],
                "cpu1": [{"write": {"addr": "buf", "value": "B"}}],
            },
            SWAPPED_OUT,
        )
    )
    cfg = config(sc, "6.8")
    run = engine.run_schedule(sc, cfg, ["cpu0", "cpu0"])
    cpu1 = next(a for a in run.actors if a.name == "cpu1")
    assert cpu1.blocked and "-EEXIST" in cpu1.blocked  # between swapcache_prepare and the add
    run = engine.run_schedule(sc, cfg, ["cpu0", "cpu0", "cpu0", "cpu1", "cpu1"])
    assert "finds P0 in the swap cache of S0" in run.steps[-1].note
    cpu1 = next(a for a in run.actors if a.name == "cpu1")
    assert cpu1.blocked and "held by cpu0" in cpu1.blocked  # P0 is locked until its read ends
    # cpu0 holds P0's lock from its folio_lock to its pte_same: cpu1 waits for it there.
    run = engine.run_schedule(sc, cfg, [*["cpu0"] * 5, "cpu1", "cpu1"])
    cpu1 = next(a for a in run.actors if a.name == "cpu1")
    assert cpu1.blocked and "folio_lock_or_retry" in cpu1.blocked
    assert violations(sc, "6.8") == set()


def test_folio_free_swap_under_a_swap_in_sends_it_back() -> None:
    # do_swap_page's check after folio_lock: swapoff mapped the page and freed its swap
    # cache while the fault held only a reference; the fault returns and retries.
    sc = engine.parse_scenario(
        doc(
            {"app": [{"read": {"addr": "buf", "expect": "A"}}], "admin": [{"swapoff": {}}]},
            SWAPPED_OUT[:3],
        )
    )
    cfg = config(sc, "6.8")
    run = engine.run_schedule(sc, cfg, ["app", "app", "admin", "admin", "admin", "app", "app"])
    notes = [s.note for s in run.steps]
    assert "finds P0 in the swap cache" in notes[1], notes
    assert "no longer the swap cache of S0" in notes[5], notes
    assert "loads 'A'" in notes[6] and run.violations == ()
    assert violations(sc, "6.8") == set()


def test_fork_shares_an_exclusive_swap_entry_and_clears_its_bit() -> None:
    # copy_nonpresent_pte: swap_duplicate, and from 5.19 (1493a1913e34) pte_swp_clear_exclusive
    # in parent and child. With the bit kept (what if), the parent's swap-in trusts it, maps
    # the swap-cache page writable and its store reaches the page the child swaps in.
    sc = engine.parse_scenario(
        doc(
            {
                "parent": [{"fork": {"child": "kid"}}, {"write": {"addr": "buf", "value": "B"}}],
                "kid": [{"read": {"addr": "buf", "proc": "kid", "expect": "A"}}],
            },
            SWAPPED_OUT,
        )
    )
    run = engine.run_schedule(sc, config(sc, "5.19"), ["parent"] * 2)
    note = run.steps[1].note
    assert "swap_duplicate(S0)" in note and "pte_swp_clear_exclusive" in note, note
    world = run.steps[1].world
    assert world.swap[0].entries == 2
    assert not any(pte.exclusive_swap for _, _, pte in world.ptes)
    before = engine.run_schedule(sc, config(sc, "5.18"), ["parent"] * 2)
    assert "pte_swp_clear_exclusive" not in before.steps[1].note  # no exclusive bit before 5.19
    for kernel in ("5.18", "5.19", "6.8"):
        assert violations(sc, kernel) == set(), kernel
    kept = engine.explore(sc, config(sc, "5.19", fork_swap_pte_shared=False))
    assert {v for o in kept.outcomes for v in o.violations} == {"data_leak"}


def test_the_further_swapin_race_of_31c4a3d3a0f8() -> None:
    # The commit message's interleaving (catalog: swapin-swap-entry-changed): B holds page1
    # from the swap cache while A copies on write, C reuses page1 (swap1 freed), kswapd
    # gives swap1 to A+B's page2 and swap2 to page1; B's pte_same passes.
    sc = engine.load_catalog()["swapin-swap-entry-changed"]
    schedule = [
        *["thread_b"] * 4,  # do_swap_page, swapcache_prepare, add_to_swap_cache, the read
        *["others"] * 11,  # A: swap-in from the cache, COW, store; C: swap-in, reuse, store
        *["others"] * 25,  # reclaim: page2 to S0 (swap1, reused), page1 to S1 (B's reference)
        *["thread_b"] * 3,  # folio_lock, pte_same, the load
    ]
    buggy = engine.run_schedule(sc, engine.make_config(sc, "buggy"), schedule)
    notes = [s.note for s in buggy.steps]
    assert "delete_from_swap_cache" in notes[13], notes
    assert "P1 enters the swap cache at slot S0" in notes[22], notes
    assert "P0 enters the swap cache at slot S1" in notes[35], notes
    assert "of S1 now, not S0" in notes[40], notes
    assert "kid loads 'C'" in notes[42] and {v.name for v in buggy.violations} == {"data_leak"}
    fixed = engine.run_schedule(sc, engine.make_config(sc, "fixed"), schedule[:-2])
    assert "no longer the swap cache of S0" in fixed.steps[-1].note
    end = engine.run_schedule(
        sc, engine.make_config(sc, "fixed"), [*schedule[:-2], *["thread_b"] * 5]
    )
    assert "loads 'B'" in end.steps[-1].note and end.violations == ()


# GUP's fault (faultin_page -> handle_mm_fault) runs the same do_swap_page steps as a CPU
# fault, under the slow path's mmap_lock, and follow_page_pte is retried after it.
GUP_SWAPIN = [
    "follow_page_pte",
    "do_swap_page",
    "swapcache_prepare",
    "add_to_swap_cache",
    "swap_read_folio",
    "folio_lock",
    "pte_same",
    "follow_page_pte",
]


def test_gup_faults_a_swap_pte_in_with_do_swap_pages_steps() -> None:
    sc = engine.parse_scenario(
        doc({"drv": [{"gup": {"addr": "buf", "mode": "pin", "write": True}}]}, SWAPPED_OUT)
    )
    run = engine.run_schedule(sc, config(sc, "6.8"), ["drv"] * 8)
    assert [s.function for s in run.steps] == GUP_SWAPIN
    assert "maps P0 writable" in run.steps[6].note
    assert "drv takes P0" in run.steps[7].note and run.finished
    # The slow path keeps mmap_lock across the fault's steps, and lets it go at the end.
    assert all("drv" in s.world.proc("app").mmap_readers for s in run.steps[:7])  # type: ignore[union-attr]
    assert run.steps[-1].world.proc("app").mmap_readers == ()  # type: ignore[union-attr]
    # The swap-in's reference shows as the GUP's own in the holder breakdown.
    assert engine.kernel.OPS["gup"].refs_held["swapin_lock"] == "swap-in"


GUP_RACE: dict[str, list[dict[str, Any]]] = {
    "drv": [{"gup": {"addr": "buf", "mode": "pin"}}, {"unpin": {}}],
    "cpu1": [{"write": {"addr": "buf", "value": "B"}}],
    "kswapd": [{"shrink_folio_list": {"addr": "buf"}}, {"shrink_folio_list": {"addr": "buf"}}],
}


def test_a_gup_and_a_cpu_fault_on_one_zram_entry_race_until_6_8() -> None:
    # 13ddaf26be32's race with GUP as the slow faulter: the pin's skip-swapcache swap-in reads
    # page A, the CPU write swaps in B, kswapd swaps B out to the reused entry, and GUP's
    # pte_same passes: it maps and pins the stale A. From 6.8 swapcache_prepare serializes them.
    sc = synchronous(GUP_RACE)
    assert violations(sc, "6.7") == {"lost_write"}
    assert violations(sc, "6.8") == set()
    assert violations(sc, "4.14") == set()  # before 0bcac06f27d7 nothing skips the swap cache
    run = engine.run_schedule(sc, config(sc, "6.8"), ["drv"] * 3)
    assert "swapcache_prepare pins S0" in run.steps[2].note
    cpu1 = next(a for a in run.actors if a.name == "cpu1")
    assert cpu1.blocked and "S0 is claimed by another swap-in" in cpu1.blocked


def test_swapoff_under_gups_swap_in() -> None:
    # 2799e77529c2 (5.14): GUP's do_swap_page takes get_swap_device as a CPU fault's does.
    sc = synchronous({"drv": [{"gup": {"addr": "buf", "mode": "get"}}], "admin": [{"swapoff": {}}]})
    assert violations(sc, "5.13") == {"use_after_free"}
    assert violations(sc, "5.14") == set()
    run = engine.run_schedule(sc, config(sc, "5.14"), ["drv", "drv", "drv", *["admin"] * 4])
    admin = next(a for a in run.actors if a.name == "admin")
    assert admin.blocked and "get_swap_device of drv" in admin.blocked


def test_madv_free_of_a_swap_pte_runs_free_swap_and_cache_in_its_two_steps() -> None:
    # madvise_free_pte_range, under the PTE lock: free_swap_and_cache(_nr), pte_clear. Only
    # SWAP_HAS_CACHE is left of S0 (the written page stays in the swap cache), so the second
    # step, __try_to_reclaim_swap, frees the folio: zap_pte_range's steps, shared.
    sc = engine.parse_scenario(
        doc(
            {"app": [{"madvise_free": {"addr": "buf"}}, {"read": {"addr": "buf", "expect": "0"}}]},
            SWAPPED_OUT[:3],
        )
    )
    run = engine.run_schedule(sc, config(sc, "6.9"), ["app"] * 4)
    assert [s.function for s in run.steps[:2]] == ["madvise_free_pte_range", "free_swap_and_cache"]
    assert "only SWAP_HAS_CACHE is left of S0" in run.steps[0].note
    assert run.steps[0].world.pte("app", "buf") == engine.state.Pte()  # pte_clear
    assert "P0 leaves the swap cache: the last reference, freed" in run.steps[1].note
    assert run.steps[1].world.swap_free == (0,) and run.steps[1].world.swap_users == ()
    assert run.finished and run.violations == ()  # the address reads zero-fill
    # With no swap cache left, the entry's last count goes in the first step: one step.
    gone = engine.parse_scenario(doc({"app": [{"madvise_free": {"addr": "buf"}}]}, SWAPPED_OUT))
    one = engine.run_schedule(gone, config(gone, "6.9"), ["app"])
    assert one.finished and one.steps[0].world.swap_free == (0,)


def test_madv_free_of_a_page_in_the_swap_cache_takes_it_out_first() -> None:
    # madvise_free_pte_range (4.5 onwards): "if (PageSwapCache(page) &&
    # !try_to_free_swap(page)) continue;" before ClearPageDirty. buf was swapped out and read
    # back in: mapped, in the swap cache, its swap entry freed. Clearing PG_dirty alone would
    # let reclaim map buf to S0 again without writing it, and discard the page.
    sc = engine.parse_scenario(
        doc(
            {"app": [{"read": {"addr": "buf"}}, {"madvise_free": {"addr": "buf"}}]},
            SWAPPED_OUT[:3],
        )
    )
    run = run_sequential(sc, config(sc, "4.12"), "app")
    marked = next(s for s in run.steps if s.function == "madvise_free_pte_range")
    assert "try_to_free_swap: P0 leaves the swap cache" in marked.note
    page = run.steps[-1].world.page(0)
    assert not page.has(engine.state.SWAPCACHE) and not page.has(engine.state.SWAPBACKED)
    assert not page.has(engine.state.DIRTY) and run.steps[-1].world.swap_free == (0,)
    # The race hypothesis found (tests/engine/test_properties.py): a second MADV_FREE and
    # reclaim around a swap-in no longer lose the write on any interleaving.
    race = engine.parse_scenario(
        doc(
            {
                "t0": [{"madvise_free": {"addr": "buf"}}],
                "t1": [{"shrink_folio_list": {"addr": "buf"}}],
                "t2": [
                    {"read": {"addr": "buf"}},
                    {"madvise_free": {"addr": "buf"}},
                    {"shrink_folio_list": {"addr": "buf"}},
                ],
            },
            [{"write": {"addr": "buf", "value": "A"}}],
        )
    )
    assert violations(race, "4.12") == set()


def test_swapoff_under_madv_free_of_a_swap_pte() -> None:
    # 82b1c07a0af6's window through MADV_FREE, free_swap_and_cache's other caller: swapoff
    # frees the swap cache and swap_map between __swap_entry_free and
    # swap_page_trans_huge_swapped; from 6.9 get_swap_device holds swapoff off.
    sc = engine.parse_scenario(
        doc(
            {"app": [{"madvise_free": {"addr": "buf"}}], "admin": [{"swapoff": {}}]},
            SWAPPED_OUT[:3],
        )
    )
    assert violations(sc, "6.8") == {"use_after_free"}
    assert violations(sc, "6.9") == set()
    run = engine.run_schedule(sc, config(sc, "6.9"), ["app", *["admin"] * 3])
    admin = next(a for a in run.actors if a.name == "admin")
    assert admin.blocked and "get_swap_device of app" in admin.blocked


# Two addresses swapped out to S0 and S1: neighbours in the swap device's cluster.
TWO_SWAPPED = [
    {"write": {"addr": "buf", "value": "A"}},
    {"write": {"addr": "buf2", "value": "C"}},
    *[{"shrink_folio_list": {"addr": "buf"}}] * 3,
    *[{"shrink_folio_list": {"addr": "buf2"}}] * 3,
]


def readahead(actors: dict[str, list[dict[str, Any]]], on: bool = True) -> engine.Scenario:
    d = doc(actors, TWO_SWAPPED)
    if on:
        d["swap"] = {"readahead": True}
    return engine.parse_scenario(d)


def test_readahead_brings_the_neighbour_slot_into_the_swap_cache_unmapped() -> None:
    # swap_cluster_readahead: before its own entry, the fault reads the neighbour S1 (in use,
    # not cached) into a new swap-cache folio that only the swap cache holds; the later
    # fault on buf2 finds it there (no read, no swapcache_prepare).
    sc = readahead(
        {
            "app": [
                {"read": {"addr": "buf", "expect": "A"}},
                {"read": {"addr": "buf2", "expect": "C"}},
            ]
        }
    )
    run = engine.run_schedule(sc, config(sc, "6.8"), ["app"] * 12)
    assert run.steps[1].function == "swap_cluster_readahead"
    assert "reads S1 into P1" in run.steps[1].note, run.steps[1].note
    world = run.steps[1].world
    p1 = world.page(1)
    assert world.swap[1].cache == 1 and p1.swap == 1 and p1.data == "C"
    assert (p1.ref, p1.mapcount) == (1, 0) and p1.has(engine.state.SWAPCACHE)
    assert world.swap[0].has_cache and world.swap[0].cache < 0  # then S0 is claimed
    assert [s.function for s in run.steps[7:9]] == ["do_swap_page", "swap_cache_get_folio"]
    assert "finds P1 in the swap cache of S1" in run.steps[8].note
    assert run.finished and run.violations == ()
    # Off unless the scenario asks: the same fault leaves S1 alone.
    off = readahead({"app": [{"read": {"addr": "buf"}}]}, on=False)
    plain = engine.run_schedule(off, config(off, "6.8"), ["app"] * 2)
    assert plain.steps[1].function == "swapcache_prepare"
    assert plain.steps[1].world.swap[1].cache < 0


def test_zapping_the_neighbour_frees_its_readahead_folio() -> None:
    # The readahead folio holds only SWAP_HAS_CACHE's reference: MADV_DONTNEED of buf2 drops
    # S1's last swap count and free_swap_and_cache's __try_to_reclaim_swap frees the folio.
    sc = readahead({"app": [{"read": {"addr": "buf"}}, {"madvise_dontneed": {"addr": "buf2"}}]})
    run = engine.run_schedule(sc, config(sc, "6.8"), ["app"] * 9)
    assert "only SWAP_HAS_CACHE is left of S1" in run.steps[7].note, run.steps[7].note
    assert "P1 leaves the swap cache: the last reference, freed" in run.steps[8].note
    world = run.steps[8].world
    assert world.page(1).free and 1 in world.swap_free and run.finished


def test_swapoff_maps_the_readahead_folio_back() -> None:
    sc = readahead({"app": [{"read": {"addr": "buf"}}], "admin": [{"swapoff": {}}]})
    run = engine.run_schedule(sc, config(sc, "6.8"), ["app", "app", *["app"] * 5, "admin", "admin"])
    assert "buf2 held S1: finds it in the swap cache" in run.steps[8].note, run.steps[8].note
    for kernel in ("5.0", "6.8"):
        # A readahead neighbour racing swapoff and a fault on it: no new verdict.
        both = readahead(
            {
                "app": [{"read": {"addr": "buf", "expect": "A"}}],
                "kid": [{"read": {"addr": "buf2", "expect": "C"}}],
                "admin": [{"swapoff": {}}],
            }
        )
        assert violations(both, kernel) <= {"use_after_free"}, kernel
    assert violations(both, "6.8") == set()


def test_two_faults_on_neighbours_each_find_the_others_readahead() -> None:
    # cpu1's swap-in of S1 reads its neighbour S0 ahead; cpu0's fault on buf then finds
    # that folio in the swap cache instead of reading S0 itself.
    sc = readahead({"cpu0": [{"read": {"addr": "buf"}}], "cpu1": [{"read": {"addr": "buf2"}}]})
    run = engine.run_schedule(sc, config(sc, "6.8"), ["cpu1", "cpu1", "cpu0", "cpu0"])
    assert "reads S0 into" in run.steps[1].note, run.steps[1].note
    assert run.steps[3].function == "swap_cache_get_folio"
    assert "in the swap cache of S0" in run.steps[3].note, run.steps[3].note
    assert violations(sc, "6.8") == set()


def test_the_readahead_waits_for_a_neighbour_a_skipping_swap_in_pinned() -> None:
    # zram: cpu1's swap-in of S1 (one user) skips the swap cache and pins S1 with
    # swapcache_prepare (6.8); cpu0's entry S0 has two users (fork), so it goes through the
    # swap cache, and its readahead's __read_swap_cache_async of S1 gets -EEXIST and waits.
    setup = [
        {"write": {"addr": "buf", "value": "A"}},
        {"fork": {"child": "kid"}},
        *[{"shrink_folio_list": {"addr": "buf"}}] * 3,
        {"write": {"addr": "buf2", "value": "C"}},
        *[{"shrink_folio_list": {"addr": "buf2"}}] * 3,
    ]
    d = doc({"cpu0": [{"read": {"addr": "buf"}}], "cpu1": [{"read": {"addr": "buf2"}}]}, setup)
    d["swap"] = {"readahead": True, "synchronous": True}
    sc = engine.parse_scenario(d)
    run = engine.run_schedule(sc, config(sc, "6.8"), ["cpu1", "cpu1", "cpu0"])
    cpu0 = next(a for a in run.actors if a.name == "cpu0")
    assert cpu0.blocked and "swap_cluster_readahead: swapcache_prepare(S1)" in cpu0.blocked
    assert violations(sc, "6.8") == set()


@pytest.mark.parametrize("value", ["yes", 1])
def test_the_readahead_attribute_is_validated(value: object) -> None:
    d = doc({"cpu": [{"read": {"addr": "buf"}}]})
    d["swap"] = {"readahead": value}
    with pytest.raises(ScenarioError) as err:
        engine.parse_scenario(d)
    assert [e.path for e in err.value.errors] == ["swap.readahead"]


def zswapped(actors: dict[str, list[dict[str, Any]]]) -> engine.Scenario:
    d = doc(actors, SWAPPED_OUT[:3])
    d["swap"] = {"zswap": True}
    return engine.parse_scenario(d)


def test_zswap_stores_on_swap_out_loads_on_swap_in_and_invalidates_on_free() -> None:
    # swap_writepage: zswap_store keeps the page and ends the writeback at once, so the second
    # pass also frees it; swap_read_folio's zswap_load reads it; the slot's free invalidates.
    sc = zswapped({"app": [{"write": {"addr": "buf", "value": "B"}}]})
    start = Model(sc, config(sc, "6.8")).initial()
    slot = start.swap[0]
    assert (slot.zswap, slot.zdata, slot.written, slot.entries) == (1, "A", False, 1)
    assert start.page(0).free  # freed in the pass that stored it
    run = engine.run_schedule(sc, config(sc, "6.8"), ["app"] * 7)
    assert "reads 'A' from S0 (zswap_load)" in run.steps[3].note, run.steps[3].note
    end = run.steps[-1].world
    assert end.swap_free == (0,) and end.swap[0].zswap == 0  # zswap_invalidate
    assert run.finished and run.violations == ()


# The seven steps of 04fc7816089c's message (catalog: zswap-writeback-vs-swapin).
ZSWAP_COMMIT = [
    "zswpd",  # (2) the shrinker takes A's entry, with its own reference
    *["app"] * 7,  # (3) the fault: swap-in from zswap, reuse, X freed (entry invalidated); B
    *["kswapd"] * 4,  # the first pass only clears the young bit
    *["kswapd"] * 9,  # (4)-(5) B is stored at X (reused) as a new entry, and freed
    *["zswpd"] * 2,  # (6) a swap-cache folio for X, A decompressed into it, written to X
    *["app"] * 5,  # (7) the swap-in of X finds that folio: A
]


def test_the_commit_message_interleaving_of_04fc7816089c() -> None:
    sc = engine.load_catalog()["zswap-writeback-vs-swapin"]
    buggy = engine.run_schedule(sc, engine.make_config(sc, "buggy"), ZSWAP_COMMIT)
    notes = [s.note for s in buggy.steps]
    assert "takes zswap entry #1 of S0 ('A')" in notes[0]
    assert "delete_from_swap_cache: the page is dirty, the slot free" in notes[6]
    assert "P0 enters the swap cache at slot S0" in notes[15]  # X is handed out again
    assert "zswap_store keeps 'B' for S0 (zswap entry #2)" in notes[18]
    assert "the tree holds entry #2 now, not #1: stale data" in notes[22]
    assert "app loads 'A' from buf" in notes[-1]
    assert {v.name for v in buggy.violations} == {"lost_write"}
    # 6.4: the recheck aborts, but leaves the folio stranded (locked, referenced); 6.8 cleans up.
    stranded = engine.run_schedule(sc, engine.make_config(sc, "stranded"), ZSWAP_COMMIT[:23])
    assert "no longer holds entry #1" in stranded.steps[-1].note
    p1 = stranded.steps[-1].world.page(1)
    assert p1.locker == "zswpd" and p1.ref == 1 and not p1.has(engine.state.SWAPCACHE)
    zswpd = next(a for a in stranded.actors if a.name == "zswpd")
    assert zswpd.done  # it returned -ENOMEM holding both
    fixed = engine.run_schedule(sc, engine.make_config(sc, "fixed"), [*ZSWAP_COMMIT[:23], "zswpd"])
    assert "folio_unlock, folio_put of P1: the last reference, freed" in fixed.steps[-1].note
    assert fixed.steps[-1].world.page(1).free


def test_zswap_writeback_skips_an_entry_a_swap_in_got_first() -> None:
    sc = zswapped(
        {"zswpd": [{"zswap_writeback": {}}], "app": [{"read": {"addr": "buf", "expect": "A"}}]}
    )
    run = engine.run_schedule(sc, config(sc, "6.8"), ["zswpd", "app", "app", "app", "zswpd"])
    assert "we raced with swapin" in run.steps[-1].note, run.steps[-1].note
    assert violations(sc, "6.3") == set()  # no reuse of the slot, no stale write


@pytest.mark.parametrize("value", ["on", 0])
def test_the_zswap_attribute_is_validated(value: object) -> None:
    d = doc({"cpu": [{"read": {"addr": "buf"}}]})
    d["swap"] = {"zswap": value}
    with pytest.raises(ScenarioError) as err:
        engine.parse_scenario(d)
    assert [e.path for e in err.value.errors] == ["swap.zswap"]


SWAP_RACES = sorted(sid for sid, sc in engine.load_catalog().items() if "swap" in sc.tags)
# 31c4a3d3a0f8 is 2.6.36, older than the oldest modelled kernel: a design rule, no release.
DESIGN_RULES = {"31c4a3d3a0f8"}


@pytest.mark.parametrize("sid", SWAP_RACES)
def test_every_catalog_swap_race_has_a_buggy_and_a_fixed_kernel(sid: str) -> None:
    # Issue 13's catalog rule: commit and release in the refs, the commit named in the summary
    # (which tells its message's interleaving), and variants on both sides of the fix.
    sc = engine.load_catalog()[sid]
    assert sc.refs and sc.refs[0].commit in sc.summary
    for ref in sc.refs:
        assert ref.commit and (ref.version or ref.commit in DESIGN_RULES), ref
    verdicts = {
        v.name: {
            x
            for o in engine.explore(sc, engine.make_config(sc, v.name)).outcomes
            for x in o.violations
        }
        for v in sc.variants
    }
    assert any(verdicts.values()), verdicts
    assert not all(verdicts.values()), verdicts
