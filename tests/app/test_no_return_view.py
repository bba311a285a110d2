"""The point of no return on the dashboard (issue 15 item 1, review H6): the narration says
what is lost and why, the step is marked in its actor's column, the timeline draws a rule at
it, and Find a bug lands on it even when no full search is cached."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping

from fastapi.testclient import TestClient

import engine
from app.figures import VERMILLION
from app.main import create_app
from tests.app.conftest import SEED


def _page(client: TestClient, schedule: tuple[str, ...], at: int, variant: str = "buggy") -> str:
    url = f"/s/{SEED}?v={variant}&t={','.join(schedule)}&at={at}"
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.text


def _island(text: str) -> dict[str, object]:
    raw = re.search(r"id=\"frame-data\" hidden data-json='([^']*)'", text)
    assert raw is not None
    data: dict[str, object] = json.loads(html.unescape(raw.group(1)))
    return data


def _note(text: str) -> str:
    found = re.search(r'id="no-return-note"[^>]*>(.*?)</span>\s*</p>', text, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else ""


def test_the_step_itself_says_why_the_run_is_lost(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    text = _page(client, bug_schedule, 8)
    note = _note(text)
    assert note.startswith(
        "⊘ Point of no return: from here the data is lost whatever runs next, because kswapd "
        "ran try_to_unmap_one: lazyfree P0 may go"
    )
    assert note.endswith("dio (get) still holds P0, and nobody maps it.")
    # The actor column marks step 8, with words for screen readers.
    line = re.search(r'<li class="line done[^"]*"[^>]*data-step="8"', text)
    assert line is not None and "no-return" in line.group(0)
    assert text.count("no-return-mark") == 1 and "point of no return</span>" in text
    # The timeline: a rule at x=8 and its label.
    figure = _island(text)["timeline"]
    assert isinstance(figure, dict)
    layout = figure["layout"]
    assert any(s["x0"] == 8 and s["line"]["color"] == VERMILLION for s in layout["shapes"])
    assert layout["annotations"][0]["x"] == 8
    assert "point of no return" in layout["annotations"][0]["text"]
    assert _island(text)["no_return"] == 8


def test_before_the_point_nothing_is_claimed_and_after_it_the_page_says_since_when(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    assert _note(_page(client, bug_schedule, 7)) == ""
    later = _note(_page(client, bug_schedule, 11))
    assert later.startswith("⊘ Past the point of no return (step 8, kswapd try_to_unmap_one)")
    # A partial schedule that has passed step 8 is already lost: it is marked too.
    assert "Past the point" in _note(_page(client, bug_schedule[:10], 10))
    # Stopped before the discard, the run can still be saved: no mark anywhere.
    early = _page(client, bug_schedule[:7], 7)
    assert "no-return" not in early and _island(early)["no_return"] is None


def test_the_fixed_kernel_has_no_point_of_no_return(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    text = _page(client, bug_schedule[:12], 8, variant="fixed")
    assert _note(text) == "" and "no-return-mark" not in text
    assert "annotations" not in _island(text)["timeline"]["layout"]  # type: ignore[index]


def test_find_a_bug_lands_on_it_without_a_cached_search(
    catalog: Mapping[str, engine.Scenario],
) -> None:
    """A fresh app has no full search cached: the first-bug search gives no graph, so the
    run's own search places the landing (it used to be the free at the end)."""
    fresh = TestClient(create_app(catalog))
    response = fresh.get(f"/s/{SEED}/find-bug?v=buggy")
    assert response.status_code == 200
    assert "step 8 · kswapd ·" in html.unescape(response.text)
    assert "Step 8 is the point of no return" in html.unescape(response.text)
    assert "Point of no return: from here the data is lost" in html.unescape(response.text)
