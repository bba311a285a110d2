"""Kernel fidelity of truncate (issue 9, item 3): a hole punch versus a truncate to EOF, and
folio_mark_dirty clearing PG_reclaim. Each scenario is built from ops."""

from __future__ import annotations

import engine
from tests.engine.builders import config, run_sequential, scenario

FILES = {"f": {"data": "A"}}
MAPPED = [{"mmap_file": {"addr": "fbuf", "file": "f"}}, {"read": {"addr": "fbuf"}}]


def test_after_a_hole_punch_a_fault_reads_zeros() -> None:
    sc = scenario(
        {"t": [{"truncate": {"file": "f"}}], "cpu": [{"read": {"addr": "fbuf", "expect": "0"}}]},
        MAPPED,
        files=FILES,
    )
    run = run_sequential(sc, config(sc, "6.1"), "t", "cpu")
    assert not run.violations
    assert [s.function for s in run.steps if s.actor == "cpu"] == ["handle_mm_fault", "load"]


def test_after_a_truncate_to_eof_a_fault_gets_sigbus_and_a_read_gets_nothing() -> None:
    sc = scenario(
        {
            "t": [{"truncate": {"file": "f", "eof": True}}],
            "cpu": [{"write": {"addr": "fbuf", "value": "B"}}],
            "reader": [{"filemap_lookup": {"file": "f"}}],
        },
        MAPPED,
        files=FILES,
    )
    run = run_sequential(sc, config(sc, "6.1"), "t", "cpu", "reader")
    assert next(s.function for s in run.steps if s.actor == "t") == "i_size_write"
    cpu = [s for s in run.steps if s.actor == "cpu"]
    assert [s.function for s in cpu] == ["filemap_fault"]
    assert "SIGBUS" in cpu[0].note
    reader = [s for s in run.steps if s.actor == "reader"]
    assert [s.function for s in reader] == ["xas_load"] and "0 bytes" in reader[0].note
    assert next(f for f in run.state.files if f.name == "f").size == 0
    assert not run.violations


def test_a_write_between_i_size_write_and_the_unmap_retries_until_truncate_unmaps() -> None:
    # The page is still mapped read-only after i_size_write: ext4_page_mkwrite sees it past
    # EOF (VM_FAULT_NOPAGE) and the store retries; once truncate has unmapped it, SIGBUS.
    sc = scenario(
        {
            "t": [{"truncate": {"file": "f", "eof": True}}],
            "cpu": [{"write": {"addr": "fbuf", "value": "B"}}],
        },
        MAPPED,
        files=FILES,
    )
    cfg = config(sc, "6.1")
    run = engine.run_schedule(sc, cfg, ["t"])
    cpu = next(a for a in run.actors if a.name == "cpu")
    assert cpu.blocked and "VM_FAULT_NOPAGE" in cpu.blocked
    run = run_sequential(sc, cfg, "t", "cpu")
    assert [s.function for s in run.steps if s.actor == "cpu"] == ["filemap_fault"]


def test_redirtying_a_folio_clears_pg_reclaim() -> None:
    # Reclaim unmaps the dirty file folio, sets PG_reclaim and activates it; a write GUP
    # then faults it back in: page_mkwrite and fault_dirty_shared_page's folio_mark_dirty,
    # which clears PG_reclaim (the folio is being used again, not waiting to be freed).
    sc = scenario(
        {
            "kswapd": [{"shrink_folio_list": {"file": "f"}}],
            "gup": [{"gup": {"addr": "fbuf", "mode": "get", "write": True}}],
        },
        [
            {"mmap_file": {"addr": "fbuf", "file": "f"}},
            {"write": {"addr": "fbuf", "value": "B"}},
            {"shrink_folio_list": {"file": "f"}},
        ],
        files=FILES,
    )
    run = run_sequential(sc, config(sc, "6.1"), "kswapd", "gup")
    flags = set(run.state.pages[0].flags)
    assert "dirty" in flags and "reclaim" not in flags
