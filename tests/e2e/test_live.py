"""Live rooms in headless Chromium: a presenter page drives, two follower pages mirror it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Problems, shot

pytestmark = pytest.mark.e2e
SEED = "madv-free-vs-dio"


@pytest.fixture
def contexts(browser: Browser, server: str) -> Iterator[list[BrowserContext]]:
    """Three separate browsers' worth of state: the lecturer's and two students'."""
    made = [
        browser.new_context(base_url=server, viewport={"width": 1400, "height": 1000})
        for _ in range(3)
    ]
    yield made
    for context in made:
        context.close()


def log_steps(page: Page) -> list[str]:
    return [
        f"{item.get_attribute('data-index')}:{item.get_attribute('data-actor')}"
        for item in page.locator("#live-log .log-step").all()
    ]


def test_followers_mirror_the_presenter_in_order(
    contexts: list[BrowserContext], problems: Problems
) -> None:
    presenter = problems.watch(contexts[0].new_page())
    presenter.goto(f"/s/{SEED}?v=buggy&present=1")
    expect(presenter.locator("body")).to_have_class(re.compile("present"))
    follow = presenter.locator("#follow-url")
    expect(follow).to_have_attribute("href", re.compile(r"/live/[a-z0-9]{8}$"))
    expect(presenter.locator("#room-status")).to_contain_text("live")
    expect(presenter.locator("#follow-qr")).to_be_visible()
    follow_url = follow.get_attribute("href") or ""
    room = follow_url.rsplit("/", 1)[1]
    assert re.search(f"present=1&room={room}", presenter.url)
    assert "token" not in presenter.url

    followers = [problems.watch(context.new_page()) for context in contexts[1:]]
    for follower in followers:
        follower.goto(follow_url)
        expect(follower.locator("#live-status")).to_contain_text("following the presenter")
        expect(follower.locator("#at")).to_have_text("0")

    # The lecturer drives with the keyboard only: 1 = dio, 2 = kswapd.
    keys = "1112222211122"
    taken: list[str] = []
    for number, key in enumerate(keys, start=1):
        presenter.keyboard.press(key)
        expect(presenter.locator("#at")).to_have_text(str(number))
        taken.append(f"{number}:{'dio' if key == '1' else 'kswapd'}")
    expect(presenter.locator("#violation-banner")).to_contain_text("lost_write")
    presenter.keyboard.press("ArrowLeft")
    expect(presenter.locator("#at")).to_have_text(str(len(keys) - 1))

    for follower in followers:
        expect(follower.locator("#at")).to_have_text(str(len(keys) - 1))
        expect(follower.locator("#live-log .log-step")).to_have_count(len(keys))
        assert log_steps(follower) == taken, "every step, in the presenter's order"
        expect(follower.locator("#live-log .log-jump").last).to_contain_text("now at step 12")
        assert follower.url.endswith(f"/live/{room}")
    shot(presenter, "live-presenter")
    shot(followers[0], "live-follower")

    # Switching the kernel on the presenter reaches the followers too.
    presenter.keyboard.press("k")
    expect(presenter.locator('.kernel .seg.active[data-variant="fixed"]')).to_be_visible()
    for follower in followers:
        expect(follower.locator('.kernel .seg.active[data-variant="fixed"]')).to_be_attached()
        expect(follower.locator("#violation-banner")).to_have_count(0)

    # "Explore all" on the presenter shows the outcomes on every follower.
    presenter.keyboard.press("e")
    expect(presenter.locator("#outcomes-chart .main-svg").first).to_be_attached()
    for follower in followers:
        expect(follower.locator("#outcomes-chart .main-svg").first).to_be_attached()
        expect(follower.locator("#outcomes")).to_contain_text("page_kept")

    # A follower cannot drive: its keys do nothing and its step buttons are not there.
    before = followers[0].locator("#at").inner_text()
    followers[0].keyboard.press("1")
    followers[0].keyboard.press("ArrowRight")
    expect(followers[0].locator(".actor .btn.step").first).to_be_hidden()
    expect(followers[1].locator("#at")).to_have_text(before)
    expect(presenter.locator("#at")).to_have_text(before)
    assert problems.items == [], problems.items


def test_the_api_present_url_drives_its_room(
    contexts: list[BrowserContext], problems: Problems, server: str
) -> None:
    created = (
        contexts[0]
        .request.post(
            "/api/rooms", data={"scenario": SEED, "variant": "buggy", "schedule": ["dio"], "at": 1}
        )
        .json()
    )
    follower = problems.watch(contexts[1].new_page())
    follower.goto(created["follow_url"])
    expect(follower.locator("#at")).to_have_text("1")
    presenter = problems.watch(contexts[0].new_page())
    presenter.goto(created["present_url"])
    expect(presenter.locator("#room-status")).to_contain_text("live")
    assert "token" not in presenter.url, "the token leaves the address bar"
    assert f"room={created['room']}" in presenter.url
    presenter.keyboard.press("2")
    expect(presenter.locator("#at")).to_have_text("2")
    expect(follower.locator("#at")).to_have_text("2")
    assert problems.items == [], problems.items


def test_a_late_follower_starts_where_the_presenter_is(
    contexts: list[BrowserContext], problems: Problems
) -> None:
    presenter = problems.watch(contexts[0].new_page())
    presenter.goto(f"/s/{SEED}?v=buggy&present=1")
    follow = presenter.locator("#follow-url")
    expect(follow).to_have_attribute("href", re.compile(r"/live/"))
    expect(presenter.locator("#room-status")).to_contain_text("live")
    for number in (1, 2):
        presenter.keyboard.press("1")
        expect(presenter.locator("#at")).to_have_text(str(number))
    late = problems.watch(contexts[1].new_page())
    late.goto(follow.get_attribute("href") or "")
    expect(late.locator("#at")).to_have_text("2")
    presenter.keyboard.press("2")
    expect(late.locator("#at")).to_have_text("3")
    expect(late.locator("#narration")).to_contain_text("kswapd")
    assert problems.items == [], problems.items
