"""The A/B view after a kernel switch (issue 15 item 2, review M8): the two kernels side by
side at the first step where they differ, the switch responsible named, and "next difference"
links that walk the differences while keeping the comparison."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from tests.app.conftest import SEED


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _part(page: str, element_id: str) -> str:
    found = re.search(rf'<(\w+)[^>]*id="{element_id}".*?</\1>', page, re.S)
    assert found is not None, element_id
    return found.group(0)


def _href(page: str, element_id: str) -> str | None:
    found = re.search(rf'id="{element_id}"[^>]*href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def test_after_a_switch_the_first_difference_is_side_by_side_with_its_switch(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    t = ",".join(bug_schedule)
    page = client.get(f"/s/{SEED}?v=fixed&t={t}&at=13&cmp=buggy").text
    why = _text(_part(page, "ab-why"))
    assert why.startswith("First difference at step 8 : on 5.18 (fixed), step 8 is kswapd")
    assert "The switch responsible: lazyfree_refcount_check on (6c8e2a256915)." in why
    a, b = _text(_part(page, "ab-side-a")), _text(_part(page, "ab-side-b"))
    assert a.startswith("kernel 5.17 (buggy)") and "discard" in a
    assert "P0 ref=2 (1 dio (get) + 1 kswapd (isolation)) map=0" in a
    assert "The whole schedule: breaks lost_write." in a
    assert b.startswith("kernel 5.18 (fixed)") and "folio_set_swapbacked" in b
    assert "map=1" in b and "The whole schedule: no invariant broken." in b
    assert _text(_part(page, "ab-position")) == "difference 1 of 4: step 8"
    assert 'id="ab-prev" class="btn" type="button" disabled' in page
    # The table: every step, the four that differ marked.
    assert len(re.findall(r'<tr class="differs', page)) == 4
    assert re.search(r'<tr class="differs focus" data-step="8"', page)


def test_next_difference_walks_the_differences_and_keeps_the_comparison(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    t = ",".join(bug_schedule)
    page = client.get(f"/s/{SEED}?v=fixed&t={t}&at=13&cmp=buggy").text
    seen = []
    for _ in range(3):
        nxt = _href(page, "ab-next")
        assert nxt is not None and "cmp=buggy" in nxt
        page = client.get(nxt).text
        seen.append(_text(_part(page, "ab-position")))
        # The board stands at that step on kernel B (whose run ends after step 12).
        step = min(int(seen[-1].rsplit(" ", 1)[1]), 12)
        assert f'step <strong id="at">{step}</strong>' in page
    assert seen == [
        "difference 2 of 4: step 11",
        "difference 3 of 4: step 12",
        "difference 4 of 4: step 13",
    ]
    assert _href(page, "ab-next") is None  # the last one
    back = _href(page, "ab-prev")
    assert back is not None and "diff=12" in back
    # The first difference and its switch stay named whichever difference is shown.
    assert "lazyfree_refcount_check on" in _text(_part(page, "ab-why"))


def test_without_a_switch_or_a_difference_there_is_no_ab_view(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    t = ",".join(bug_schedule[:7])
    assert 'id="ab"' not in client.get(f"/s/{SEED}?v=fixed&t={t}").text
    same = client.get(f"/s/{SEED}?v=fixed&t={t}&cmp=buggy").text
    assert 'id="ab"' not in same and "every step matches kernel 5.17" in same
    # An unknown cmp= is not an error: the page is shown without a comparison.
    odd = client.get(f"/s/{SEED}?v=fixed&t={t}&cmp=nosuch&diff=abc")
    assert odd.status_code == 200 and 'id="ab"' not in odd.text
