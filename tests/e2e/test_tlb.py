"""TLBs in the dashboard, in headless Chromium (issue 12): a stale entry in the page panel,
the flush on the timeline, the CPU columns of the diagram."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e
R12 = "madv-free-tlb-flush-miss"
BAD = "t1,t0,t0,t1,t1,t1,t1,t0,kswapd,kswapd,kswapd,kswapd,kswapd,kswapd,kswapd"


def test_a_stale_tlb_entry_is_shown_beside_its_pte_and_the_flush_on_the_timeline(
    page: Page,
) -> None:
    page.goto(f"/s/{R12}?v=buggy&t={BAD}&at=2")
    row = page.locator('#state-panel .ptes .row[data-field="TLB CPU1 app:buf"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("stale")
    expect(page.locator('#state-panel .ptes .row[data-field="PTE app:buf"]')).to_contain_text(
        "·dirty"
    )
    expect(page.locator("#timeline .legendtext", has_text="TLB flush")).to_have_count(1)
    shot(page, "tlb-stale-entry")
    page.goto(f"/s/{R12}?v=buggy&t={BAD}&at=15")
    expect(page.locator("#narration")).to_contain_text("lost")
