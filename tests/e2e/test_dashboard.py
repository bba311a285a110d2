"""The dashboard in headless Chromium, used as a user would: catalog, stepping, kernels, links."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Problems, shot

pytestmark = pytest.mark.e2e
SEED = "madv-free-vs-dio"


def at(page: Page) -> int:
    return int(page.locator("#at").inner_text())


def timeline_points(page: Page) -> int:
    return page.locator("#timeline .scatterlayer .point").count()


def step_button(page: Page, number: int) -> str:
    return f'.actor .step[data-step-key="{number}"]'


def test_catalog_filters_and_opens_the_scenario(page: Page) -> None:
    page.goto("/")
    cards = page.locator(".card")
    total = cards.count()
    assert total > 1
    page.fill("#q", "no-such-words-xyz")
    expect(page.locator(".empty")).to_contain_text("No scenario matches")
    assert cards.count() == 0
    page.fill("#q", "O_DIRECT")
    expect(page.locator("#card-count")).to_contain_text("matching “O_DIRECT”")
    assert 1 <= cards.count() <= total
    expect(page.locator(f'.card[data-scenario="{SEED}"]')).to_be_visible()
    assert "q=O_DIRECT" in page.url
    page.fill("#q", "")
    expect(page.locator("#card-count")).not_to_contain_text("matching")
    page.locator(".tag-filter label", has_text="madv_free").click()
    expect(page.locator("#card-count")).to_contain_text("tagged madv_free")
    shot(page, "catalog-filtered")
    page.locator(f'.card[data-scenario="{SEED}"] h2 a').click()
    expect(page).to_have_url(re.compile(f"/s/{SEED}"))
    expect(page.locator("#state-panel")).to_be_visible()


def test_step_by_clicking_and_keyboard(page: Page) -> None:
    page.goto(f"/s/{SEED}")
    expect(page.locator("#timeline .main-svg").first).to_be_attached()
    assert at(page) == 0
    narration = page.locator("#narration .sentence").inner_text()
    panel = page.locator("#state-panel").inner_text()
    points = timeline_points(page)

    page.click(step_button(page, 1))
    expect(page.locator("#at")).to_have_text("1")
    assert page.locator("#narration .sentence").inner_text() != narration
    assert timeline_points(page) > points
    assert "at=1" in page.url

    page.keyboard.press("2")
    expect(page.locator("#at")).to_have_text("2")
    # Keep stepping actor 2 until the page state changes: then the changed fields are marked.
    while page.locator("#state-panel").inner_text() == panel:
        before = at(page)
        page.keyboard.press("2")
        expect(page.locator("#at")).to_have_text(str(before + 1))
    expect(page.locator("#state-panel .row.changed").first).to_be_visible()
    page.keyboard.press("Home")
    expect(page.locator("#at")).to_have_text("0")
    page.keyboard.press("1")
    expect(page.locator("#at")).to_have_text("1")
    page.keyboard.press("2")
    expect(page.locator("#at")).to_have_text("2")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#at")).to_have_text("1")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#at")).to_have_text("2")
    expect(page).to_have_url(re.compile(r"at=2"))
    shot(page, "stepped")

    # Keys are off inside text fields.
    page.focus("#share-link")
    page.keyboard.press("1")
    page.wait_for_timeout(300)
    assert at(page) == 2

    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()


def test_timeline_click_goes_to_that_step(page: Page) -> None:
    page.goto(f"/s/{SEED}")
    for _ in range(3):
        before = at(page)
        page.click(".actor a.step >> nth=0")
        expect(page.locator("#at")).to_have_text(str(before + 1))
    page.locator("#timeline .scatterlayer .trace").first.locator(".point").first.click(force=True)
    expect(page.locator("#at")).not_to_have_text("3")


def test_find_the_bug_then_switch_to_the_fixed_kernel(page: Page) -> None:
    page.goto(f"/s/{SEED}")
    page.keyboard.press("f")
    expect(page.locator(".notice", has_text="Found lost_write")).to_be_visible(timeout=15_000)
    # Find a bug may land on the point of no return, before the loss shows: End goes on.
    page.keyboard.press("End")
    banner = page.locator("#violation-banner")
    expect(banner).to_contain_text("lost_write", timeout=15_000)
    schedule = page.locator("#schedule").inner_text()
    expect(page.locator("#timeline .scatterlayer .point").first).to_be_attached()
    shot(page, "lost-write-5.17")

    page.locator('.kernel [data-variant="fixed"]').click()
    expect(page.locator('.kernel [data-variant="fixed"]')).to_have_attribute("aria-pressed", "true")
    replayed = page.locator(".notice", has_text="Same schedule replayed on kernel 5.18")
    expect(replayed).to_be_visible()
    expect(page.locator("#violation-banner")).to_have_count(0)
    assert "v=fixed" in page.url
    # The same schedule, replayed as far as it still applies on 5.18.
    assert schedule.startswith(page.locator("#schedule").inner_text())
    shot(page, "kept-5.18")


def test_copied_link_opens_the_same_step_in_a_fresh_browser(
    page: Page, browser: Browser, server: str
) -> None:
    page.goto(f"/s/{SEED}")
    for key in ("1", "2", "1", "ArrowLeft"):
        before = at(page)
        page.keyboard.press(key)
        expect(page.locator("#at")).not_to_have_text(str(before))
    page.click("#btn-copy-link")
    expect(page.locator("#status-msg")).to_contain_text("copied")
    link = page.locator("#share-link").input_value()
    assert link == page.url
    assert page.evaluate("navigator.clipboard.readText()") == link
    panel = page.locator("#state-panel").inner_text()
    narration = page.locator("#narration").inner_text()

    # The server's HTML for the link already has the state, before any script runs.
    raw = page.request.get(link).text()
    assert f'<strong id="at">{at(page)}</strong>' in raw

    fresh = browser.new_context(base_url=server)
    problems = Problems()
    other = problems.watch(fresh.new_page())
    other.goto(link)
    expect(other.locator("#at")).to_have_text(str(at(page)))
    assert other.locator("#state-panel").inner_text() == panel
    assert other.locator("#narration").inner_text() == narration
    assert other.url == link
    shot(other, "shared-link")
    fresh.close()
    assert problems.items == []


def test_copy_diagram(page: Page) -> None:
    page.goto(f"/s/{SEED}")
    page.keyboard.press("1")
    expect(page.locator("#at")).to_have_text("1")
    page.click("#btn-copy-diagram")
    expect(page.locator("#diagram-text")).to_contain_text("replay: http")
    assert "at=1" in page.locator("#diagram-text").inner_text()


def test_explore_all_and_load_an_example(page: Page) -> None:
    page.goto(f"/s/{SEED}")
    page.keyboard.press("e")
    expect(page.locator("#totals")).to_contain_text("interleavings", timeout=15_000)
    expect(page.locator("#outcomes-chart .main-svg").first).to_be_attached()
    shot(page, "explore-all")
    page.locator("tr.bad .load-example").first.click()
    expect(page.locator("#violation-banner")).to_be_visible()


def test_play_advances_through_the_schedule(page: Page) -> None:
    page.goto(f"/s/{SEED}")
    page.keyboard.press("f")
    expect(page.locator(".notice", has_text="Found lost_write")).to_be_visible(timeout=15_000)
    total = int(page.locator("#total").inner_text())
    page.keyboard.press("Home")
    expect(page.locator("#at")).to_have_text("0")
    page.keyboard.press(" ")
    expect(page.locator("#btn-play")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#at")).to_have_text(str(total), timeout=5_000 + 1_000 * total)
    expect(page.locator("#btn-play")).to_have_attribute("aria-pressed", "false", timeout=3_000)


def test_the_page_modules_and_their_shared_import_carry_the_page_version(page: Page) -> None:
    # Module imports resolve without the importing URL's query: the server stamps ?v= into
    # them, so core.js is fetched once, at the version dashboard.js and present.js carry.
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    page.goto(f"/s/{SEED}")
    expect(page.locator("#timeline .main-svg").first).to_be_attached()
    ours = [u.split("/static/")[1] for u in scripts if "/static/" in u and "/vendor/" not in u]
    assert sorted(u.split("?")[0] for u in ours) == ["core.js", "dashboard.js", "present.js"]
    assert len({u.partition("?v=")[2] for u in ours}) == 1 and "?v=" in ours[0]
