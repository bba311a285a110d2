"""The dashboard under a sub-path, in headless Chromium: `pagerace serve --root-path /pr`
behind a proxy that strips /pr (scripts.servers.prefix_proxy, as nginx would). Every page,
htmx fetch, script fetch, WebSocket and address-bar update must stay under /pr: the proxy
answers 404 to anything else, which the `problems` watcher turns into a failure."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from scripts.servers import PAGERACE_SERVE, StartError, app_server, prefix_proxy
from tests.e2e.conftest import Problems

pytestmark = pytest.mark.e2e
SEED = "madv-free-vs-dio"
PREFIX = "/pr"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    try:
        with (
            app_server((*PAGERACE_SERVE, "--root-path", PREFIX, "--log-level", "warning")) as url,
            prefix_proxy(url, PREFIX) as proxied,
        ):
            yield proxied
    except StartError as err:
        pytest.fail(str(err))


@pytest.fixture
def sub_page(browser: Browser, base: str, problems: Problems) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield problems.watch(context.new_page())
    context.close()
    assert problems.items == [], problems.items


def test_catalog_dashboard_and_diagram_stay_under_the_prefix(sub_page: Page, base: str) -> None:
    page = sub_page
    page.goto(base + "/")
    page.locator(f'.card[data-scenario="{SEED}"] h2 a').click()
    expect(page).to_have_url(re.compile(f"^{re.escape(base)}/s/{SEED}"))
    expect(page.locator("#timeline .main-svg").first).to_be_attached()  # plotly.js loaded
    page.keyboard.press("1")  # an htmx frame fetch, then the address bar is replaced
    expect(page.locator("#at")).to_have_text("1")
    expect(page).to_have_url(re.compile(f"^{re.escape(base)}/s/{SEED}\\?.*at=1"))
    assert page.locator("#share-link").input_value().startswith(f"{base}/s/{SEED}?")
    page.click("#btn-copy-diagram")  # fetch(ROOT + "/api/diagram")
    expect(page.locator("#diagram-text")).to_contain_text(f"replay: {base}/s/{SEED}")
    page.keyboard.press("e")
    expect(page.locator("#totals")).to_contain_text("interleavings", timeout=15_000)
    page.locator("tr.bad .load-example").first.click()
    expect(page.locator("#violation-banner")).to_be_visible()
    page.locator("a.brand").click()
    expect(page).to_have_url(base + "/")


def test_a_live_room_works_through_the_prefix(
    browser: Browser, base: str, problems: Problems
) -> None:
    presenter_context = browser.new_context()
    follower_context = browser.new_context()
    try:
        presenter = problems.watch(presenter_context.new_page())
        presenter.goto(f"{base}/s/{SEED}?v=buggy&present=1")  # fetch(ROOT + "/api/rooms")
        follow = presenter.locator("#follow-url")
        expect(follow).to_have_attribute(
            "href", re.compile(f"^{re.escape(base)}/live/[a-z0-9]{{8}}$")
        )
        expect(presenter.locator("#room-status")).to_contain_text("live")  # the WebSocket
        expect(presenter.locator("#follow-qr")).to_be_visible()
        assert presenter.url.startswith(f"{base}/s/{SEED}?")

        follower = problems.watch(follower_context.new_page())
        follower.goto(follow.get_attribute("href") or "")
        expect(follower.locator("#live-status")).to_contain_text("following the presenter")
        presenter.keyboard.press("1")
        expect(follower.locator("#at")).to_have_text("1")  # a frame fetched under the prefix
        own = follower.locator("#open-own")
        expect(own).to_have_attribute("href", re.compile(f"^{re.escape(PREFIX)}/s/{SEED}\\?"))
    finally:
        presenter_context.close()
        follower_context.close()
    assert problems.items == [], problems.items


def test_the_editor_checks_and_links_under_the_prefix(sub_page: Page, base: str) -> None:
    page = sub_page
    page.goto(f"{base}/edit?from={SEED}")
    expect(page.locator("#check-status")).to_contain_text("✓ valid")  # hx-post /pr/edit/check
    expect(page).to_have_url(re.compile(f"^{re.escape(base)}/edit\\?"))
    page.click("#btn-open")
    expect(page).to_have_url(re.compile(f"^{re.escape(base)}/s/"))
    expect(page.locator("#state-panel")).to_be_visible()
