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
