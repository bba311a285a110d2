"""Kernel fidelity (issue 9): the fault handlers and fork. Each scenario is built from ops."""

from __future__ import annotations

import engine
from tests.engine.builders import config, scenario

FORKED = [{"write": {"addr": "buf", "value": "A"}}, {"fork": {"child": "child"}}]


def test_a_write_fault_on_a_pte_another_fault_made_writable_does_nothing() -> None:
    # Two write pins of the COW-shared buf: both see a read-only PTE and decide to fault; the
    # first breaks COW and pins the copy. handle_pte_fault then finds the PTE writable for the
    # second: no do_wp_page, so it pins the same copy instead of copying away from the pin.
    pin = {"gup": {"addr": "buf", "mode": "pin", "write": True}}
    sc = scenario({"g1": [pin], "g2": [pin]}, setup=FORKED)
    for kernel in ("5.17", "5.18", "5.19", "6.1"):
        run = engine.run_schedule(sc, config(sc, kernel), ["g1", "g2", "g1", "g1", "g2", "g2"])
        notes = [s.note for s in run.steps]
        assert "already writable" in notes[4], (kernel, notes)
        assert sum("wp_page_copy" in n for n in notes) == 1, (kernel, notes)
        assert notes[3].split(" takes ")[1].split()[0] == notes[5].split(" takes ")[1].split()[0]


def test_fork_makes_the_childs_pte_old() -> None:
    # After fork the parent COWs away from P0; the child's mapping of P0 is old (pte_mkold), so
    # the first reclaim pass finds P0 unreferenced and swaps it out of the child.
    sc = scenario(
        {
            "cpu": [{"write": {"addr": "buf", "value": "B"}}],
            "kswapd": [{"shrink_folio_list": {"addr": "buf", "proc": "child"}}],
        },
        setup=FORKED,
    )
    run = engine.run_schedule(sc, config(sc, "6.1"), ["cpu", "cpu"])
    model_run = engine.run_schedule(sc, config(sc, "6.1"), ["cpu", "cpu", *["kswapd"] * 3])
    refs = [s for s in model_run.steps if s.function == "folio_check_references"]
    assert refs and "not referenced" in refs[0].note, [s.note for s in model_run.steps]
    assert run.violations == ()


SWAPPED_OUT = [
    {"write": {"addr": "buf", "value": "A"}},
    {"shrink_folio_list": {"addr": "buf"}},
    {"shrink_folio_list": {"addr": "buf"}},
    {"shrink_folio_list": {"addr": "buf"}},
]


def test_a_write_fault_never_reuses_a_page_another_process_still_has_in_swap() -> None:
    # fork shares the swap entry; the parent swaps the page in (read-only: the entry is no
    # longer exclusive) and writes. The child's swap PTE keeps the swap cache reference, so
    # do_wp_page must copy, or the child would read the parent's write.
    sc = scenario(
        {
            "parent": [
                {"fork": {"child": "kid"}},
                {"write": {"addr": "buf", "value": "P"}},
            ],
            "kid": [{"read": {"addr": "buf", "proc": "kid", "expect": "A"}}],
        },
        setup=SWAPPED_OUT,
    )
    for kernel in ("5.10", "5.17", "5.18", "5.19", "6.5"):
        exp = engine.explore(sc, config(sc, kernel))
        assert not any(o.violations for o in exp.outcomes), kernel


def test_from_5_18_a_write_fault_frees_the_swap_cache_and_reuses_the_page() -> None:
    # 53a05ad9f21d: one process, its page swapped in read-only by a read fault; the write
    # fault frees the swap cache (no swap entry left) and reuses the page. Before 5.18 the
    # swap cache reference makes page_count 2 and do_wp_page copies.
    sc = scenario(
        {"cpu": [{"read": {"addr": "buf"}}, {"write": {"addr": "buf", "value": "B"}}]},
        setup=SWAPPED_OUT,
    )

    def notes(kernel: str) -> list[str]:
        cfg = config(sc, kernel)
        run = engine.run_schedule(sc, cfg, ["cpu"] * 9)  # a 7-step swap-in, then the write
        return [s.note for s in run.steps]

    assert any("wp_page_copy" in n for n in notes("5.17"))
    assert any("reuses" in n for n in notes("5.18"))


def test_the_child_cannot_fault_before_fork_returns() -> None:
    # dup_mmap write-locks the child's mm as well, and the child runs only once fork is
    # done: a child actor that touches its memory waits, it never sees a half-copied mm.
    sc = scenario(
        {
            "parent": [{"fork": {"child": "kid"}}],
            "kid": [{"read": {"addr": "buf", "proc": "kid", "expect": "A"}}],
        },
        setup=SWAPPED_OUT,
    )
    cfg = config(sc, "5.10")
    run = engine.run_schedule(sc, cfg, ["parent"])
    kid = next(a for a in run.actors if a.name == "kid")
    assert kid.blocked and "mmap_lock of kid" in kid.blocked
    assert not any(o.violations for o in engine.explore(sc, cfg).outcomes)
