"""The scenario editor in headless Chromium: check as you type, explore, share to a new browser."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Problems, shot

pytestmark = pytest.mark.e2e
EXPLORE_TIMEOUT = 15_000


def editor_text(page: Page) -> str:
    value: str = page.locator("#ed-text").input_value()
    return value


def place_caret(page: Page, needle: str, after: bool = True) -> None:
    """Put the caret just after (or before) the first `needle` in the text, as a click would."""
    page.locator("#ed-text").evaluate(
        """(el, [needle, after]) => {
            const at = el.value.indexOf(needle) + (after ? needle.length : 0);
            el.focus();
            el.setSelectionRange(at, at);
        }""",
        [needle, after],
    )


def caret_line(page: Page) -> int:
    line: int = page.locator("#ed-text").evaluate(
        "el => el.value.slice(0, el.selectionStart).split('\\n').length"
    )
    return line


def settle(page: Page) -> None:
    """Let pending checks (debounced as you type) finish before leaving the page."""
    page.wait_for_load_state("networkidle")


def dashboard_state(page: Page) -> dict[str, Any]:
    expect(page.locator("#state-panel")).to_be_visible()
    expect(page.locator("#timeline .main-svg").first).to_be_attached()  # scripts have loaded
    return {
        "title": page.locator("h1.title").inner_text(),
        "at": page.locator("#at").inner_text(),
        "schedule": page.locator("#schedule").inner_text(),
        "kernel": page.locator('.kernel [aria-pressed="true"]').inner_text(),
        "panel": page.locator("#state-panel").inner_text(),
        "narration": page.locator("#narration").inner_text(),
        "banner": page.locator(".banner").all_inner_texts(),
    }


def test_check_as_you_type_points_at_the_line(page: Page) -> None:
    page.goto("/edit")
    status = page.locator("#check-status")
    expect(status).to_contain_text("✓ valid")
    page.evaluate("window.__noReload = true")
    line = next(n for n, text in enumerate(editor_text(page).split("\n"), 1) if "mode: get" in text)

    # A typo in an op's field: the panel names the line and the path, the gutter marks the line.
    place_caret(page, "mode: get")
    for _ in range(3):
        page.keyboard.press("Backspace")
    page.keyboard.type("grab")
    expect(status).to_contain_text("✖ 2 problems")
    problem = page.locator(".problems li").first
    expect(problem).to_contain_text(f"line {line} · actors[0].ops[0].gup_fast.mode:")
    expect(problem).to_contain_text("'grab' is not allowed; allowed: get, pin")
    expect(page.locator(f"#L{line}")).to_have_class("bad")
    expect(page.locator("#btn-open")).to_be_disabled()
    shot(page, "editor-error")

    # Clicking the problem puts the caret on that line.
    page.locator("#ed-text").evaluate("el => el.setSelectionRange(0, 0)")
    page.locator(".problems a.goto").first.click()
    expect(page.locator("#ed-text")).to_be_focused()
    assert caret_line(page) == line

    # Fix it: valid again, and the address bar is a link to the text on screen.
    place_caret(page, "mode: grab")
    for _ in range(4):
        page.keyboard.press("Backspace")
    page.keyboard.type("get")
    expect(status).to_contain_text("✓ valid: 2 actors, 5 ops (+2 in setup)")
    expect(page.locator(".ed-gutter .bad")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/edit\?s="))

    # A YAML syntax error points at line and column.
    place_caret(page, "  fixed:", after=False)
    page.keyboard.press("End")
    page.keyboard.type(" ]")
    expect(page.locator(".problems a.goto").first).to_contain_text("· col")
    expect(page.locator(".problems li").first).to_contain_text("YAML syntax")
    assert page.evaluate("window.__noReload") is True
    settle(page)


def test_keys_type_text_inside_the_editor(page: Page) -> None:
    page.goto("/edit")
    expect(page.locator("#check-status")).to_contain_text("✓ valid")
    place_caret(page, "label: page reclaim")
    # Letters that are shortcuts on the dashboard, then Enter (indents) and Tab (two spaces).
    page.keyboard.type(" e f c ? 1 2")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.type("#x")
    assert "label: page reclaim e f c ? 1 2\n      #x\n" in editor_text(page)
    expect(page.locator("#check-status")).to_contain_text("✓ valid")
    # Esc, then Tab, leaves the text (no keyboard trap).
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    expect(page.locator("#ed-text")).not_to_be_focused()
    settle(page)


def test_explore_draws_the_outcomes(page: Page) -> None:
    page.goto("/edit")
    expect(page.locator("#check-status")).to_contain_text("✓ valid")
    page.locator("#ed-text").focus()
    page.keyboard.press("Control+Enter")
    expect(page.locator("#totals")).to_contain_text("interleavings", timeout=EXPLORE_TIMEOUT)
    expect(page.locator("#ed-outcomes-chart .main-svg").first).to_be_attached()
    expect(page.locator("#explore-result h2")).to_contain_text("kernel 5.17")
    expect(page.locator(".ed-expect")).to_contain_text("✓ expect: lost_write is reachable")
    expect(page.locator("#explore-result tr.bad").first).to_contain_text("lost_write")
    shot(page, "editor-explore")

    # Switching the kernel explores again: the fix's A/B in one click.
    page.locator("#ed-variant").select_option("fixed")
    heading = page.locator("#explore-result h2")
    expect(heading).to_contain_text("kernel 5.18", timeout=EXPLORE_TIMEOUT)
    expect(page.locator("#explore-result tr.bad")).to_have_count(0)

    # An edit makes the outcomes stale until the next Explore.
    place_caret(page, "value: B")
    page.keyboard.type("2")
    expect(page.locator(".stale-note")).to_be_visible()
    page.locator("#btn-explore").click()
    expect(page.locator(".stale-note")).to_be_hidden(timeout=EXPLORE_TIMEOUT)
    settle(page)


def test_a_shared_scenario_opens_in_another_browser_with_the_same_state(
    page: Page, browser: Browser, server: str
) -> None:
    page.goto("/edit")
    expect(page.locator("#check-status")).to_contain_text("✓ valid")
    # A custom scenario: a new title, an extra comment, the fixed kernel chosen.
    place_caret(page, 'title: "My scenario: ')
    page.keyboard.type("ünïque & <shared> ")
    place_caret(page, "actors:", after=False)
    page.keyboard.type("# a comment the link must keep ✓")
    page.keyboard.press("Enter")
    page.locator("#ed-variant").select_option("fixed")
    expect(page.locator("#btn-open")).to_have_attribute("href", re.compile("v=fixed"))
    expect(page.locator("#check-status")).to_contain_text("✓ valid")
    text = editor_text(page)

    page.locator("#btn-share").click()
    expect(page.locator("#status-msg")).to_contain_text("Editor link copied")
    link = page.locator("#share-editor").input_value()
    assert link.startswith(server + "/edit?s=")
    assert page.evaluate("navigator.clipboard.readText()") == link
    dashboard_link = page.locator("#share-dashboard").input_value()
    shot(page, "editor-share")

    # This browser: the scenario in the dashboard at step 0, then a violating example.
    settle(page)
    page.locator("#btn-open").click()
    expect(page.locator("h1.title")).to_contain_text("ünïque & <shared>")
    mine = dashboard_state(page)
    page.go_back()
    expect(page.locator("#ed-text")).to_have_value(text)
    page.locator("#ed-variant").select_option("buggy")
    page.locator("#btn-explore").click()
    example = page.locator("#explore-result tr.bad .load-example").first
    expect(example).to_be_visible(timeout=EXPLORE_TIMEOUT)
    expect(page.locator("#ed-outcomes-chart .main-svg").first).to_be_attached()
    settle(page)  # the check the variant change started must not be cut off by leaving
    example.click()
    expect(page.locator("#violation-banner")).to_contain_text("lost_write")
    mine_bad = dashboard_state(page)

    # Another browser (a fresh context: no cookies, storage or cache) opens the shared link.
    other_context = browser.new_context(base_url=server, viewport={"width": 1400, "height": 1000})
    problems = Problems()
    other = problems.watch(other_context.new_page())
    other.goto(link)
    expect(other.locator("#check-status")).to_contain_text("✓ valid")
    assert editor_text(other) == text
    assert other.locator("#ed-variant").input_value() == "fixed"
    assert other.locator("#share-dashboard").input_value() == dashboard_link
    shot(other, "editor-shared-link")

    settle(other)
    other.locator("#btn-open").click()
    expect(other.locator("h1.title")).to_contain_text("ünïque & <shared>")
    assert dashboard_state(other) == mine

    other.go_back()
    other.locator("#ed-variant").select_option("buggy")
    other.locator("#btn-explore").click()
    example = other.locator("#explore-result tr.bad .load-example").first
    expect(example).to_be_visible(timeout=EXPLORE_TIMEOUT)
    expect(other.locator("#ed-outcomes-chart .main-svg").first).to_be_attached()
    settle(other)
    example.click()
    expect(other.locator("#violation-banner")).to_contain_text("lost_write")
    assert dashboard_state(other) == mine_bad
    shot(other, "editor-shared-dashboard")
    other_context.close()
    assert problems.items == []


def test_oversize_text_says_so(page: Page, problems: Problems) -> None:
    page.goto("/edit")
    expect(page.locator("#check-status")).to_contain_text("✓ valid")
    page.locator("#ed-text").fill("# " + "x" * 70_000)
    expect(page.locator("#check")).to_contain_text("the editor takes at most 65,536 bytes")
    page.locator("#ed-text").fill("# " + "y" * 300_000)
    expect(page.locator("#check")).to_contain_text("too large to send")
    # Both refusals are expected 413s (the browser and htmx log them too), nothing else.
    assert problems.items
    assert all("413" in item or "Too Large" in item for item in problems.items), problems.items
    problems.items.clear()


def test_editor_links_from_catalog_and_dashboard(page: Page) -> None:
    page.goto("/")
    page.locator("#nav-editor").click()
    expect(page).to_have_url(re.compile(r"/edit$"))
    expect(page.locator("#check-status")).to_contain_text("✓ valid")
    settle(page)
    page.goto("/s/madv-free-vs-dio?v=fixed")
    expect(page.locator("#timeline .main-svg").first).to_be_attached()
    page.locator("#btn-edit-copy").click()
    expect(page.locator("#ed-text")).to_have_value(re.compile(r"^id: madv-free-vs-dio\n"))
    assert page.locator("#ed-variant").input_value() == "fixed"
    page.emulate_media(color_scheme="dark")
    shot(page, "editor-dark")


def test_completion_offers_ops_parameters_and_values_from_the_schema(page: Page) -> None:
    """Issue 15 item 7: op and parameter completion from the engine's JSON Schema."""
    page.goto("/edit")
    expect(page.locator("#check-status")).to_contain_text("✓ valid")
    page.evaluate("window.__noReload = true")
    bar = page.locator("#ed-complete")
    # A new op line in an actor's ops: the op names that start with what is typed.
    place_caret(page, "# I/O completion")
    page.keyboard.press("Enter")
    page.keyboard.type("- gup")
    expect(bar).to_be_visible()
    expect(bar).to_contain_text("operation:")
    expect(bar.get_by_role("button", name="gup_fast", exact=True)).to_be_visible()
    bar.get_by_role("button", name="gup_fast", exact=True).click()
    line = page.locator("#ed-text").evaluate(
        "el => el.value.slice(0, el.selectionStart).split('\\n').pop()"
    )
    assert line.endswith("- gup_fast: {addr: "), line  # the caret on the first value
    # Its parameters' allowed words, and then its other parameters.
    page.keyboard.type("buf, mode: ")
    expect(bar.get_by_role("button", name="pin", exact=True)).to_be_visible()
    page.keyboard.press("Alt+2")  # the second offer: get, pin
    page.keyboard.type(", fa")
    expect(bar.get_by_role("button", name="fast_only", exact=True)).to_be_visible()
    assert "- gup_fast: {addr: buf, mode: pin, fa" in editor_text(page)
    settle(page)


def test_the_yaml_is_highlighted_under_the_text(page: Page) -> None:
    """Issue 15 item 7: keys, strings, numbers and comments are coloured; prose in a block
    scalar (summary: >) is not; the drawn text is exactly the textarea's."""
    page.goto("/edit?from=madv-free-vs-dio")
    expect(page.locator("#ed-field")).to_have_class(re.compile(r"\bpainted\b"))
    hl = page.locator("#ed-hl")
    expect(hl.locator(".y-key", has_text="gup_fast")).to_have_count(1)
    expect(hl.locator(".y-str", has_text='"5.17"').first).to_be_attached()
    assert hl.locator(".y-key", has_text="mapping").count() == 0  # inside the summary's prose
    drawn = hl.evaluate("el => el.textContent")
    assert drawn == editor_text(page) + "\n\n"
    # It follows typing.
    place_caret(page, "id: madv-free-vs-dio")
    page.keyboard.type("  # mine")
    expect(hl.locator(".y-com", has_text="# mine")).to_have_count(1)
    settle(page)
