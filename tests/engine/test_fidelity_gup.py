"""Kernel-fidelity checks for the GUP model (issue 9)."""

from __future__ import annotations

import engine
from tests.engine.builders import config, run_sequential, scenario


def test_gup_fast_binds_the_page_it_read_in_the_pte() -> None:
    """Without the PTE re-check, a page freed and reused between ptep_get_lockless and
    try_grab_folio is another owner's page: the device write is a use-after-free."""
    sc = scenario(
        {
            "gup": [
                {"gup_fast": {"addr": "buf", "mode": "get", "write": True}},
                {"dma_write": {"value": "D"}},
            ],
            "app": [{"munmap": {"addr": "buf"}}, {"alloc_page": {"owner": "other", "value": "X"}}],
        }
    )
    cfg = config(sc, gup_fast_recheck=False)
    run = engine.run_schedule(sc, cfg, ["gup", "app", "app", "gup", "gup", "gup"])
    assert "use_after_free" in {v.name for v in run.violations}


def flags_after(sc: engine.Scenario, kernel: str, schedule: list[str]) -> set[str]:
    run = engine.run_schedule(sc, config(sc, kernel), schedule)
    return set(run.state.pages[0].flags)


def test_gup_fast_marks_every_page_it_returns_referenced_pins_included() -> None:
    """gup_fast_pte_range ends with folio_set_referenced for FOLL_GET and FOLL_PIN alike;
    only the slow pin_user_pages (no FOLL_TOUCH) leaves PG_referenced alone."""
    for mode in ("get", "pin"):
        fast = scenario({"dev": [{"gup_fast": {"addr": "buf", "mode": mode}}]})
        assert "referenced" in flags_after(fast, "6.1", ["dev", "dev", "dev"]), mode
    slow_pin = scenario({"dev": [{"gup": {"addr": "buf", "mode": "pin"}}]})
    assert "referenced" not in flags_after(slow_pin, "6.1", ["dev"])


# A clean file page mapped read-only (a read fault): a write GUP-fast must fall back.
LONGTERM_FILE = {"f": {"data": "A"}}
LONGTERM_SETUP = [
    {"mmap_file": {"addr": "fbuf", "file": "f"}},
    {"read": {"addr": "fbuf"}},
]


def longterm_fallback(kernel: str, longterm: bool) -> engine.Trace:
    """A write pin_user_pages_fast of a clean, read-only-mapped file page: GUP-fast falls
    back (the PTE is not writable); the slow path write-faults (page_mkwrite), then
    follow_page_pte takes the page, with or without FOLL_TOUCH."""
    sc = scenario(
        {
            "dev": [
                {"gup_fast": {"addr": "fbuf", "mode": "pin", "write": True, "longterm": longterm}}
            ]
        },
        LONGTERM_SETUP,
        files=LONGTERM_FILE,
    )
    return run_sequential(sc, config(sc, kernel), "dev")


def test_a_longterm_fallback_runs_without_foll_touch_until_6_3() -> None:
    # __gup_longterm_unlocked (5.2-6.2) calls __gup_longterm_locked without FOLL_TOUCH: no
    # mark_page_accessed. The non-longterm fallback (get_user_pages_unlocked) has it, and so
    # does every fallback from 6.3 (FOLL_TOUCH | FOLL_UNLOCKABLE).
    def referenced(kernel: str, longterm: bool) -> bool:
        return "referenced" in longterm_fallback(kernel, longterm).state.pages[0].flags

    assert not referenced("6.1", longterm=True)
    assert referenced("6.1", longterm=False)
    assert referenced("6.3", longterm=True)


def test_6_5_refuses_a_longterm_write_pin_of_a_shared_file_mapping() -> None:
    """writable_file_mapping_allowed (8ac268436e6d) and gup_fast_folio_allowed (a6e79df92e4a):
    the pin ends with -EFAULT from check_vma_flags and holds nothing; a short-term pin or a
    read-only longterm pin is still allowed."""
    run = longterm_fallback("6.5", longterm=True)
    assert "check_vma_flags" in [s.function for s in run.steps]
    assert run.state.pages[0].pins == 0
    assert longterm_fallback("6.4", longterm=True).state.pages[0].pins == 1
    assert longterm_fallback("6.5", longterm=False).state.pages[0].pins == 1

    # A writable, present PTE: GUP-fast grabs, then gup_fast_folio_allowed refuses and
    # gup_put_folio drops the pin before the slow path refuses too.
    sc = scenario(
        {"dev": [{"gup_fast": {"addr": "fbuf", "mode": "pin", "write": True, "longterm": True}}]},
        [{"mmap_file": {"addr": "fbuf", "file": "f"}}, {"write": {"addr": "fbuf", "value": "B"}}],
        files=LONGTERM_FILE,
    )
    run = run_sequential(sc, config(sc, "6.5"), "dev")
    functions = [s.function for s in run.steps]
    assert functions[:3] == ["ptep_get_lockless", "try_grab_folio", "gup_put_folio"]
    assert functions[-1] == "check_vma_flags"
    assert run.state.pages[0].pins == 0
