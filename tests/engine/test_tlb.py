"""CPUs, TLBs, deferred flushes, mprotect and KSM (issue 12), composed with the old parts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.explore import reachable_violations
from engine.kernel.machine import Effect
from engine.model import Model, successors
from engine.state import KSM, Pte, World
from tests.engine.builders import SETUP_LAZYFREE, OpDoc, config

WRITE_A: list[OpDoc] = [{"write": {"addr": "buf", "value": "A"}}]


def on_cpus(
    actors: dict[str, tuple[str, list[OpDoc]]], setup: list[OpDoc] = WRITE_A
) -> engine.Scenario:
    """A scenario whose actors run on the given CPUs (name -> (cpu, ops)), threads of app."""
    doc: dict[str, Any] = {
        "id": "inline-tlb",
        "title": "inline TLB scenario",
        "setup": setup,
        "actors": [
            {"name": name, "cpu": cpu, "thread": "app", "ops": ops}
            for name, (cpu, ops) in actors.items()
        ],
    }
    return engine.parse_scenario(doc)


def world_after(sc: engine.Scenario, kernel: str, schedule: list[str], **fixes: bool) -> World:
    return engine.run_schedule(sc, config(sc, kernel, **fixes), schedule).world(len(schedule))


def violations(sc: engine.Scenario, kernel: str, **fixes: bool) -> set[str]:
    return reachable_violations(engine.explore(sc, config(sc, kernel, **fixes)))


# The issue's acceptance: written from the ops alone, two threads of one process, one storing
# around its own MADV_FREE while the other's MADV_FREE runs, against reclaim.
R12_BY_HAND = {
    "t0": ("CPU0", [{"madvise_free": {"addr": "buf"}}]),
    "t1": (
        "CPU1",
        [
            {"write": {"addr": "buf", "value": "B"}},
            {"madvise_free": {"addr": "buf"}},
            {"write": {"addr": "buf", "value": "C"}},
        ],
    ),
    "kswapd": ("CPU2", [{"shrink_folio_list": {"addr": "buf"}}]),
}


def test_two_threads_madv_free_and_a_store_lose_it_on_4_12_and_not_on_4_13() -> None:
    sc = on_cpus(R12_BY_HAND)
    assert "lost_write" in violations(sc, "4.12")
    assert violations(sc, "4.13") == set()
    # The fix that decides is mm_tlb_flush_nested, not reclaim's batched-flush marking.
    assert "lost_write" in violations(sc, "4.13", tlb_flush_nested=False)
    assert violations(sc, "4.13", flush_tlb_batched_pending=False) == set()


def test_a_store_through_a_dirty_writable_entry_leaves_the_pte_clean() -> None:
    sc = on_cpus({"t": ("CPU1", [{"write": {"addr": "buf", "value": "B"}}] * 1)})
    w = world_after(sc, "6.6", ["t"])
    entry = w.tlb_entry("CPU1", "app", "buf")
    assert entry is not None and entry.write and entry.dirty
    # Clean the PTE behind the CPU's back, as a deferred flush leaves it, and store again.
    pte = w.pte("app", "buf")
    assert pte is not None
    clean = w.set_pte("app", "buf", pte.evolve(dirty=False), flush=False)
    assert clean.tlb_entry("CPU1", "app", "buf") == entry
    flushed = w.set_pte("app", "buf", pte.evolve(dirty=False))
    assert flushed.tlb_entry("CPU1", "app", "buf") is None


def test_a_store_through_a_clean_entry_walks_and_dirties_the_pte() -> None:
    sc = on_cpus(
        {"t": ("CPU1", [{"read": {"addr": "buf"}}, {"write": {"addr": "buf", "value": "B"}}])},
        SETUP_LAZYFREE,
    )
    w = world_after(sc, "6.6", ["t"])
    entry = w.tlb_entry("CPU1", "app", "buf")
    assert entry is not None and not entry.dirty
    w = world_after(sc, "6.6", ["t", "t"])
    pte = w.pte("app", "buf")
    assert pte is not None and pte.dirty
    after = w.tlb_entry("CPU1", "app", "buf")
    assert after is not None and after.dirty


def test_a_scenario_without_cpus_caches_nothing() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    exp = engine.explore(sc, engine.make_config(sc, "buggy"))
    for outcome in exp.outcomes:
        run = engine.run_schedule(sc, engine.make_config(sc, "buggy"), outcome.example)
        assert all(not run.world(k).tlb for k in range(len(outcome.example) + 1))


def test_reclaim_frees_only_after_its_deferred_flush() -> None:
    """A load through the entry reclaim's TTU_BATCH_FLUSH left behind: after the flush it
    faults in zero-fill; without the rule it reads the freed page."""
    sc = on_cpus(
        {
            "t": ("CPU1", [{"read": {"addr": "buf"}}, {"read": {"addr": "buf"}}]),
            "kswapd": ("CPU0", [{"shrink_folio_list": {"addr": "buf"}}]),
        },
        SETUP_LAZYFREE,
    )
    assert "use_after_free" not in violations(sc, "6.6")
    assert "use_after_free" in violations(sc, "6.6", tlb_flush_before_free=False)


def test_mprotect_read_makes_a_store_a_sigsegv() -> None:
    sc = engine.parse_scenario(
        {
            "id": "mp",
            "title": "mprotect",
            "setup": WRITE_A,
            "actors": [
                {
                    "name": "app",
                    "ops": [
                        {"mprotect": {"addr": "buf", "prot": "read"}},
                        {"write": {"addr": "buf", "value": "B"}},
                        {"read": {"addr": "buf", "expect": "A"}},
                        {"mprotect": {"addr": "buf", "prot": "write"}},
                        {"write": {"addr": "buf", "value": "C"}},
                        {"read": {"addr": "buf", "expect": "C"}},
                    ],
                }
            ],
        }
    )
    run = engine.run_schedule(sc, config(sc, "6.6"), ["app"] * 6)
    functions = [s.function for s in run.steps]
    assert functions[1] == "SIGSEGV"
    assert not run.violations


def test_mprotect_vs_reclaim_leaves_a_writable_entry_on_4_12_only() -> None:
    sc = on_cpus(
        {
            "t1": (
                "CPU1",
                [
                    {"write": {"addr": "buf", "value": "B"}},
                    {"mprotect": {"addr": "buf", "prot": "read"}},
                    {"write": {"addr": "buf", "value": "C"}},
                ],
            ),
            "kswapd": (
                "CPU0",
                [{"shrink_folio_list": {"addr": "buf"}}, {"shrink_folio_list": {"addr": "buf"}}],
            ),
        }
    )
    assert "stale_tlb" in violations(sc, "4.12")
    assert violations(sc, "4.13") == set()
    assert "stale_tlb" in violations(sc, "4.13", flush_tlb_batched_pending=False)


def test_ksm_merge_maps_a_read_only_ksm_page_and_a_write_copies_it() -> None:
    sc = engine.parse_scenario(
        {
            "id": "ksm",
            "title": "ksm",
            "setup": WRITE_A,
            "actors": [
                {"name": "ksmd", "ops": [{"ksm_merge": {"addr": "buf"}}]},
                {
                    "name": "app",
                    "ops": [
                        {"write": {"addr": "buf", "value": "B"}},
                        {"read": {"addr": "buf", "expect": "B"}},
                    ],
                },
            ],
        }
    )
    w = world_after(sc, "6.6", ["ksmd", "ksmd"])
    pte = w.pte("app", "buf")
    assert pte is not None and not pte.write
    kpage = w.page(pte.page)
    assert kpage.has(KSM) and kpage.data == "A"
    assert w.page(0).free  # the merged page had no other user
    run = engine.run_schedule(sc, config(sc, "6.6"), ["ksmd", "ksmd", "app", "app"])
    pte = run.world(4).pte("app", "buf")
    assert pte is not None and pte.write and not run.world(4).page(pte.page).has(KSM)
    assert not run.violations


@pytest.mark.parametrize("mode", ["get", "pin"])
def test_ksm_backs_off_from_a_page_gup_holds(mode: str) -> None:
    sc = engine.parse_scenario(
        {
            "id": "ksm-gup",
            "title": "ksm vs gup",
            "setup": WRITE_A,
            "actors": [
                {
                    "name": "dio",
                    "ops": [
                        {"gup_fast": {"addr": "buf", "mode": mode, "write": True}},
                        {"dma_write": {"value": "B"}},
                        {"put_page" if mode == "get" else "unpin": {}},
                    ],
                },
                {"name": "ksmd", "ops": [{"ksm_merge": {"addr": "buf"}}]},
            ],
        }
    )
    for kernel in ("4.12", "5.19", "6.6"):
        assert violations(sc, kernel) == set(), kernel
    # Counting first loses the DMA; from 5.19 a pin on an exclusive page is still refused by
    # page_try_share_anon_rmap, a plain reference is not.
    assert "lost_write" in violations(sc, "4.12", ksm_count_after_flush=False)
    late = violations(sc, "6.6", ksm_count_after_flush=False)
    assert ("lost_write" in late) == (mode == "get")


def test_actor_cpu_and_thread_are_checked() -> None:
    base: dict[str, Any] = {"id": "bad", "title": "bad", "setup": WRITE_A}
    with pytest.raises(engine.ScenarioError) as err:
        engine.parse_scenario(
            {**base, "actors": [{"name": "a", "cpu": "cpu 1", "ops": [{"read": {"addr": "buf"}}]}]}
        )
    assert "actors[0].cpu" in str(err.value)
    with pytest.raises(engine.ScenarioError) as err:
        engine.parse_scenario(
            {
                **base,
                "actors": [{"name": "a", "thread": "no pe", "ops": [{"read": {"addr": "buf"}}]}],
            }
        )
    assert "actors[0].thread" in str(err.value) and "app" in str(err.value)
    with pytest.raises(engine.ScenarioError) as err:
        engine.parse_scenario(
            {**base, "actors": [{"name": "a", "cpu": 99, "ops": [{"read": {"addr": "buf"}}]}]}
        )
    assert "actors[0].cpu" in str(err.value)


def test_a_thread_may_be_named_and_a_cpu_numbered() -> None:
    """`thread:` names the process (its ops' default `proc`) or just the thread; `cpu: 1`
    is CPU1. Either way the actors share app's mm and run on CPUs."""
    sc = engine.parse_scenario(
        {
            "id": "named",
            "title": "named threads",
            "setup": WRITE_A,
            "actors": [
                {"name": "a", "thread": "T0", "cpu": 0, "ops": [{"read": {"addr": "buf"}}]},
                {"name": "b", "thread": "app", "cpu": "CPU1", "ops": [{"read": {"addr": "buf"}}]},
            ],
        }
    )
    assert Model(sc, config(sc, "6.6")).cpus == ("CPU0", "CPU1")
    assert [a.thread for a in sc.actors] == ["T0", "app"]
    assert "proc" not in sc.actors[0].ops[0].params
    assert sc.actors[1].ops[0].params["proc"] == "app"
    w = world_after(sc, "6.6", ["a", "b"])
    assert {e.cpu for e in w.tlb} == {"CPU0", "CPU1"}


def test_cpus_are_given_to_every_actor_once_one_is_named() -> None:
    sc = engine.parse_scenario(
        {
            "id": "cpus",
            "title": "cpus",
            "setup": WRITE_A,
            "actors": [
                {"name": "a", "ops": [{"read": {"addr": "buf"}}]},
                {"name": "b", "cpu": "CPU0", "ops": [{"read": {"addr": "buf"}}]},
                {"name": "c", "thread": "app", "ops": [{"read": {"addr": "buf"}}]},
            ],
        }
    )
    assert Model(sc, config(sc, "6.6")).cpus == ("CPU1", "CPU0", "CPU2")
    plain = engine.load_catalog()["madv-free-vs-dio"]
    assert set(Model(plain, engine.make_config(plain, "buggy")).cpus) == {""}


def test_an_ipi_flush_waits_for_gup_fast_and_closes_the_thp_windows() -> None:
    """R11 and R10 need a flush that does not wait for GUP-fast's interrupts-disabled walk;
    with IPI flushes (x86 native) pmdp_collapse_flush, the zap and unmap_folio wait, and the
    races are gone. KSM counting
    first is broken either way: the IPI only delays the write-protect after the count."""
    r11 = engine.load_catalog()["thp-collapse-vs-gup-fast"]
    buggy = engine.make_config(r11, "buggy")
    assert "lost_write" in reachable_violations(engine.explore(r11, buggy))
    x86 = engine.make_config(r11, "buggy", fixes={"rcu_gup_fast": False})
    assert reachable_violations(engine.explore(r11, x86)) == set()
    r10 = engine.load_catalog()["gup-fast-vs-thp-split"]
    x86 = engine.make_config(r10, "buggy", fixes={"rcu_gup_fast": False})
    assert reachable_violations(engine.explore(r10, x86)) == set()
    r7 = engine.load_catalog()["ksm-vs-gup-fast"]
    ipi = engine.make_config(r7, "count_first", fixes={"rcu_gup_fast": False})
    assert "lost_write" in reachable_violations(engine.explore(r7, ipi))
    ok = engine.make_config(r7, "merged", fixes={"rcu_gup_fast": False})
    assert reachable_violations(engine.explore(r7, ok)) == set()


# Threads on CPUs doing whatever the TLB ops allow, against reclaim, migration and KSM.
TLB_OPS: list[OpDoc] = [
    {"write": {"addr": "buf", "value": "B"}},
    {"write": {"addr": "buf", "value": "C"}},
    {"read": {"addr": "buf"}},
    {"madvise_free": {"addr": "buf"}},
    {"madvise_dontneed": {"addr": "buf"}},
    {"mprotect": {"addr": "buf", "prot": "read"}},
    {"mprotect": {"addr": "buf", "prot": "write"}},
]
KERNEL_OPS: list[OpDoc] = [
    {"shrink_folio_list": {"addr": "buf"}},
    {"migrate": {"addr": "buf"}},
    {"ksm_merge": {"addr": "buf"}},
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    threads=st.lists(
        st.lists(st.sampled_from(TLB_OPS), min_size=1, max_size=3), min_size=1, max_size=2
    ),
    kernel_ops=st.lists(st.sampled_from(KERNEL_OPS), min_size=1, max_size=2),
    release=st.sampled_from(["4.12", "4.13", "6.6"]),
)
def test_no_tlb_entry_outlives_the_page_it_maps(
    threads: list[list[OpDoc]], kernel_ops: list[OpDoc], release: str
) -> None:
    """Invariant 13's first half, in every reachable state of random scenarios: a page is
    never freed while a CPU's TLB may still map it (flush before free), on every kernel."""
    actors = {f"t{i}": (f"CPU{i}", ops) for i, ops in enumerate(threads)}
    actors["kd"] = ("CPU9", kernel_ops)
    sc = on_cpus(actors)
    model = Model(sc, config(sc, release))
    seen: set[World] = set()
    todo = [model.initial()]
    while todo and len(seen) < 4000:
        world = todo.pop()
        if world in seen:
            continue
        seen.add(world)
        for entry in world.tlb:
            page = world.pages[entry.page]
            assert not page.free and page.gen == entry.gen, (entry, page)
        assert "use_after_free" not in world.violations
        todo.extend(effect.world for _, effect in successors(model, world))


def test_a_ksm_page_swapped_in_from_the_swap_cache_is_still_copied_on_write() -> None:
    """KSM merges, reclaim puts the KSM page in the swap cache and unmaps it, and a write
    swaps it in from the cache: do_swap_page never treats a KSM folio as exclusive, so the
    write fault copies it instead of writing into the page other mappings share."""
    sc = engine.parse_scenario(
        {
            "id": "ksm-swap",
            "title": "ksm page swapped in",
            "setup": WRITE_A,
            "actors": [
                {
                    "name": "app",
                    "ops": [
                        {"ksm_merge": {"addr": "buf"}},
                        {"shrink_folio_list": {"addr": "buf"}},
                        {"shrink_folio_list": {"addr": "buf"}},
                        {"write": {"addr": "buf", "value": "B"}},
                        {"read": {"addr": "buf", "expect": "B"}},
                    ],
                }
            ],
        }
    )
    for kernel in ("5.17", "6.6"):
        model = Model(sc, config(sc, kernel))
        world = model.initial()
        ksm_page = -1
        functions = []
        while (result := model.step(world, 0)) is not None:
            assert isinstance(result, Effect), result
            world = result.world
            functions.append(result.function)
            pte = world.pte("app", "buf")
            if pte is not None and pte.present and world.page(pte.page).has(KSM):
                ksm_page = pte.page
            elif pte is not None and pte.present and pte.write:
                assert pte.page != ksm_page or not world.page(pte.page).has(KSM), kernel
        assert ksm_page >= 0
        # It went to swap and came back from the swap cache, then the write copied it.
        assert "add_to_swap" in functions and "swap_cache_get_folio" in functions, functions
        assert not world.violations, (kernel, world.violations)


def test_a_pte_table_freed_under_a_gup_fast_walk_is_a_use_after_free_until_6_1() -> None:
    """2ba99c5e0881 from the ops alone: GUP-fast reads the PMD, khugepaged detaches the PTE
    table and munmap frees it (zap_deposited_table) before GUP-fast reads the PTE in it."""
    sc = engine.parse_scenario(
        {
            "id": "table-free",
            "title": "table free",
            "setup": [
                {"write": {"addr": "buf#0", "value": "A"}},
                {"write": {"addr": "buf#1", "value": "B"}},
            ],
            "actors": [
                {"name": "gup", "ops": [{"gup_fast": {"addr": "buf#0", "mode": "pin"}}]},
                {"name": "khugepaged", "ops": [{"collapse": {"addr": "buf"}}]},
                {"name": "app", "ops": [{"madvise_dontneed": {"addr": "buf"}}]},
            ],
        }
    )
    assert "use_after_free" in violations(sc, "6.0")
    assert "use_after_free" not in violations(sc, "6.1")
    assert "use_after_free" not in violations(sc, "6.0", rcu_gup_fast=False)  # x86 IPIs
    assert "use_after_free" in violations(sc, "6.1", khugepaged_table_sync=False)


def test_khugepaged_does_not_collapse_a_munmapped_range() -> None:
    sc = engine.parse_scenario(
        {
            "id": "gone",
            "title": "gone",
            "setup": [
                {"write": {"addr": "buf#0", "value": "A"}},
                {"write": {"addr": "buf#1", "value": "B"}},
                {"munmap": {"addr": "buf"}},
            ],
            "actors": [{"name": "khugepaged", "ops": [{"collapse": {"addr": "buf"}}]}],
        }
    )
    run = engine.run_schedule(sc, config(sc, "6.6"), ["khugepaged"])
    assert run.steps[0].function == "hugepage_vma_revalidate" and not run.violations


def test_the_batched_flush_flag_loses_an_update_until_its_two_counts() -> None:
    """5ee2fa2f0636: the catalog race is decided by the cmpxchg switch alone, and before
    3ea277194daa there is no flag to lose (mprotect never looked at reclaim's batch)."""
    sc = engine.load_catalog()["tlb-flush-batched-lost"]
    assert "stale_tlb" in violations(sc, "5.17", tlb_flush_batched_cmpxchg=False)
    assert violations(sc, "5.16", tlb_flush_batched_cmpxchg=True) == set()
    assert "stale_tlb" in violations(sc, "4.12")


def test_a_zap_frees_a_cached_page_only_after_its_gathered_flush() -> None:
    """With CPUs, zap_pte_range leaves the flush and the page's reference to the mmu_gather:
    between the two a CPU may still store into the page, which is still allocated; the
    free comes after the flush (tlb_finish_mmu), so the store is never into a freed page."""
    sc = on_cpus(
        {
            "t0": ("CPU0", [{"madvise_dontneed": {"addr": "buf"}}]),
            "t1": ("CPU1", [{"write": {"addr": "buf", "value": "B"}}] * 2),
        }
    )
    w = world_after(sc, "6.6", ["t1", "t0"])
    assert w.pte("app", "buf") == Pte() and not w.page(0).free
    assert w.tlb_entry("CPU1", "app", "buf") is not None
    w = world_after(sc, "6.6", ["t1", "t0", "t0"])
    assert w.page(0).free and w.tlb_entry("CPU1", "app", "buf") is None
    assert "use_after_free" not in violations(sc, "6.6")
