"""A script-laden custom scenario in headless Chromium: its text shows literally, nothing runs.

The scenario travels in the link (`s=`), as users share custom scenarios. Its title, summary
and actor labels carry markup; the page must show that markup as text, fire no dialog
(`alert` would open one), log no CSP violation (the `page` fixture fails on console errors),
and be served with the Content Security Policy.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

import engine
from app.links import encode_doc

pytestmark = pytest.mark.e2e
SEED = "madv-free-vs-dio"
TITLE = '<script>alert(1)</script> "><img src=x onerror=alert(2)>'
LABELS = ("'><svg onload=alert(3)>", "<iframe src=javascript:alert(4)>")


def hostile_link() -> str:
    doc = json.loads(json.dumps(engine.load_catalog()[SEED].document))
    doc["id"] = "xss"
    doc["title"] = TITLE
    doc["summary"] = "<script>alert(5)</script>"
    for actor, label in zip(doc["actors"], LABELS, strict=True):
        actor["label"] = label
    return f"/s/xss?s={encode_doc(doc)}&v=buggy"


def watch_dialogs(page: Page) -> list[str]:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


def test_script_laden_scenario_renders_as_text(page: Page) -> None:
    dialogs = watch_dialogs(page)
    response = page.goto(hostile_link())
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert response.headers["x-frame-options"] == "DENY"

    expect(page.locator("h1.title")).to_have_text(TITLE)  # the markup, as text
    assert page.title().startswith(TITLE)
    for number, label in enumerate(LABELS, start=1):
        expect(page.locator(f".actor:nth-child({number}) h2 small")).to_have_text(label)
    assert page.locator("img[src=x], svg[onload], iframe, #frame script").count() == 0
    expect(page.locator("#timeline .main-svg").first).to_be_attached()

    # Everything that swaps server HTML in: step, find a bug, explore all, load an example.
    page.keyboard.press("1")
    expect(page.locator("#at")).to_have_text("1")
    page.keyboard.press("f")
    expect(page.locator(".notice", has_text="Found lost_write")).to_be_visible(timeout=15_000)
    page.keyboard.press("End")  # Find a bug may stop at the point of no return
    expect(page.locator("#violation-banner")).to_contain_text("lost_write", timeout=15_000)
    page.keyboard.press("e")
    expect(page.locator("#totals")).to_contain_text("interleavings", timeout=15_000)
    page.locator("tr.bad .load-example").first.click()
    expect(page.locator("#violation-banner")).to_be_visible()
    page.click("#btn-copy-diagram")
    expect(page.locator("#diagram-text")).to_contain_text(TITLE[:25])  # text/plain, as text

    expect(page.locator("h1.title")).to_have_text(TITLE)
    page.wait_for_timeout(300)  # a late onerror/onload would fire by now
    assert dialogs == []


def test_error_page_quoting_markup_runs_nothing(browser: Browser, server: str) -> None:
    context = browser.new_context(base_url=server)
    page = context.new_page()
    dialogs = watch_dialogs(page)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    doc = {
        "id": "xss",
        "title": TITLE,
        "actors": [{"name": "a", "ops": [{"gup": {"addr": "buf", "mode": TITLE}}]}],
    }
    response = page.goto(f"/s/xss?s={encode_doc(doc)}")
    assert response is not None and response.status == 400
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".errors")).to_contain_text("<script>alert(1)</script>")
    response = page.goto("/s/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_contain_text("<img src=x onerror=alert(1)>")
    page.wait_for_timeout(300)
    assert dialogs == [] and errors == []
    context.close()
