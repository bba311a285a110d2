"""Browser fixtures: a real uvicorn server and Debian's headless Chromium via Playwright.

No pytest-playwright (its session event loop breaks pytest-asyncio tests) and never
`playwright install`: the browser is /usr/bin/chromium. A missing browser skips locally and
fails when PAGERACE_REQUIRE_BROWSER=1 (CI), because a green run that never opened a browser
proves nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scripts.servers import StartError, app_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(reason: str) -> None:
    if os.environ.get("PAGERACE_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true":
        pytest.fail(f"browser tests required but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """The app under uvicorn on a free port (or PAGERACE_E2E_URL, if given)."""
    if given := os.environ.get("PAGERACE_E2E_URL"):
        yield given.rstrip("/")
        return
    try:
        with app_server() as url:
            yield url
    except StartError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Problems:
    """Console errors, page errors and failed requests seen by a page."""

    items: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on(
            "console",
            lambda m: (
                self.items.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda e: self.items.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)
        page.on(
            "response",
            lambda r: self.items.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
        )
        return page

    def _failed(self, request: Request) -> None:
        # The editor checks its text in the background after every edit. When a test leaves
        # the editor (as a user does) while such a check is in flight, the browser aborts it:
        # that is the client cancelling its own request, not a failure of the server, and it
        # cost three CI runs. Every other failed request, and an aborted one anywhere else,
        # still counts.
        cancelled = request.failure == "net::ERR_ABORTED" and request.url.endswith("/edit/check")
        if not cancelled:
            self.items.append(f"failed: {request.method} {request.url} ({request.failure})")


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def page(browser: Browser, server: str, problems: Problems) -> Iterator[Page]:
    context = browser.new_context(
        base_url=server,
        viewport={"width": 1400, "height": 1000},
        permissions=["clipboard-read", "clipboard-write"],
    )
    yield problems.watch(context.new_page())
    context.close()
    assert problems.items == [], problems.items


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
