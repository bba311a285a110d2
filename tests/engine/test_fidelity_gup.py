"""Kernel-fidelity checks for the GUP model (issue 9)."""

from __future__ import annotations

import engine
from tests.engine.builders import config, scenario


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
