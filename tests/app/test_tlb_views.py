"""TLBs on the dashboard (issue 12): the page panel's TLB rows, the timeline's flush marks,
the diagram's CPU columns, and the state's JSON."""

from __future__ import annotations

import engine
from app.figures import timeline_figure
from app.panels import state_panel
from engine.views import to_json

SC = engine.load_catalog()["madv-free-tlb-flush-miss"]
# t1 stores, t0 cleans the PTE, t1's madvise finds it clean and flushes nothing, t1 stores
# through the stale entry, t0's tlb_finish_mmu flushes, reclaim discards.
BAD = ["t1", "t0", "t0", "t1", "t1", "t1", "t1", "t0"]


def run(variant: str = "buggy") -> engine.Trace:
    return engine.run_schedule(SC, engine.make_config(SC, variant), BAD)


def test_the_state_lists_each_cpus_entries_and_marks_a_stale_one() -> None:
    trace = run()
    after_clean = trace.view(2)  # t0 cleaned the PTE, its flush deferred
    (entry,) = after_clean.tlb
    assert (entry.cpu, entry.addr, entry.write, entry.dirty, entry.stale) == (
        "CPU1",
        "buf",
        True,
        True,
        True,
    )
    assert to_json(after_clean)["tlb"][0]["stale"] is True
    assert "tlb" not in to_json(trace.view(0))  # no entry yet: the shape of old states


def test_the_page_panel_shows_the_tlb_entry_under_its_pte() -> None:
    trace = run()
    panel = state_panel(trace.view(2), trace.view(1), trace.steps[1].changes)
    labels = [r.label for r in panel.ptes]
    assert labels == ["PTE app:buf", "TLB CPU1 app:buf"]
    chips = [c.text for c in panel.ptes[1].chips]
    assert chips == ["write", "dirty", "⚠ stale"]
    assert [c.text for c in panel.ptes[0].chips if c.kind == "off"] == ["·dirty", "·young"]


def test_the_timeline_marks_the_flush_and_not_a_cpus_own_reload() -> None:
    trace = run()
    figure = timeline_figure(SC, trace, len(BAD))
    (flush,) = [t for t in figure["data"] if t["name"] == "⇣ TLB flush"]
    assert flush["x"] == [8] and flush["y"] == ["t0"]
    assert "tlb_finish_mmu" in flush["text"][0]
    plain = engine.load_catalog()["madv-free-vs-dio"]
    trace = engine.run_schedule(plain, engine.make_config(plain, "buggy"), ["dio"])
    assert all(t["name"] != "⇣ TLB flush" for t in timeline_figure(plain, trace, 1)["data"])


def test_the_diagram_heads_its_columns_with_cpus() -> None:
    trace = run()
    text = engine.render_diagram(SC, engine.make_config(SC, "buggy"), trace)
    heading = next(line for line in text.splitlines() if line.startswith("CPU0"))
    assert heading.split() == ["CPU0", "(t0)", "CPU1", "(t1)", "CPU2", "(kswapd)"]
    assert max(len(line) for line in text.splitlines()) <= 75
