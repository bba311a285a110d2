"""The scenario editor: the page, checking as you type, exploring, and links that carry the text."""

from __future__ import annotations

import base64
import html
import random
import re
import zlib
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

import engine
from app.config import TEMPLATES_DIR
from app.editor import (
    LINK_LIMIT,
    STARTER,
    check_text,
    document_text,
    editor_path,
    pack_text,
    unpack,
)
from app.links import LinkError, encode_doc
from engine.lang.catalog import CATALOG_DIR

SEED = "madv-free-vs-dio"
SEED_FILE = CATALOG_DIR / "10-madv-free-vs-dio.yaml"
XSS = "<script>alert(1)</script>"
VALID = "✓ valid</strong>: 2 actors, 5 ops (+2 in setup), variants buggy (5.17), fixed (5.18)"


def textarea(page: str) -> str:
    """The textarea's text as a browser sees it (the parser drops one newline after the tag)."""
    match = re.search(r'<textarea id="ed-text"[^>]*>\n(.*?)</textarea>', page, re.S)
    assert match, "no editor textarea on the page"
    return html.unescape(match.group(1))


def check(client: TestClient, text: str, **form: str) -> str:
    response = client.post("/edit/check", data={"text": text, **form})
    assert response.status_code == 200, response.text
    return response.text


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def data_attr(page: str, name: str) -> str:
    match = re.search(rf'id="check-data"[^>]* {name}="([^"]*)"', page)
    assert match, f"no {name} on #check-data"
    return html.unescape(match.group(1))


# --- the page --------------------------------------------------------------------------------


def test_default_page_is_a_valid_starter(client: TestClient) -> None:
    response = client.get("/edit")
    assert response.status_code == 200
    page = response.text
    assert page.startswith("<!doctype html>")
    assert textarea(page) == STARTER
    assert VALID in page
    assert 'hx-post="/edit/check"' in page
    assert 'hx-trigger="input changed delay:300ms"' in page
    assert '<script type="module" src="/static/editor.js' in page
    assert "<script>" not in page  # the CSP allows no inline scripts
    assert response.headers["content-security-policy"].count("script-src 'self'") == 1
    # One gutter number per textarea row (the last, empty one included).
    assert len(re.findall(r'<span id="L\d+"', page)) == STARTER.count("\n") + 1


def test_starter_shows_a_real_race() -> None:
    result = check_text(STARTER, 256 * 1024)
    assert result.scenario is not None
    for variant, violations in (("buggy", {"lost_write"}), ("fixed", set())):
        config = engine.make_config(result.scenario, variant=variant)
        found = {v for o in engine.explore(result.scenario, config).outcomes for v in o.violations}
        assert found == violations


def test_from_a_catalog_scenario_keeps_its_file_text(client: TestClient) -> None:
    response = client.get("/edit", params={"from": SEED, "v": "fixed"})
    assert response.status_code == 200
    assert textarea(response.text) == SEED_FILE.read_text()
    assert "Editing a copy" in response.text
    assert f'<option value="{SEED}" selected>' in response.text  # in "start from"
    assert '<option value="fixed" selected>' in response.text


def test_from_an_unknown_scenario_says_so(client: TestClient) -> None:
    response = client.get("/edit", params={"from": "no-such-thing"})
    assert response.status_code == 404
    assert "No catalog scenario called “no-such-thing”" in response.text
    assert textarea(response.text) == STARTER


def test_shared_text_opens_exactly(client: TestClient) -> None:
    text = "\n# leading blank line, unicode ✓, a </textarea> and & < >\r\n" + STARTER
    response = client.get(editor_path(text.replace("\r\n", "\n"), "fixed"))
    assert response.status_code == 200
    assert textarea(response.text) == text.replace("\r\n", "\n")
    assert '<option value="fixed" selected>' in response.text


def test_a_dashboard_document_opens_as_yaml(
    client: TestClient, catalog: Mapping[str, engine.Scenario]
) -> None:
    seed = catalog[SEED]
    response = client.get("/edit", params={"s": encode_doc(seed.document)})
    assert response.status_code == 200
    text = textarea(response.text)
    assert engine.load_scenario_text(text).digest == seed.digest
    assert "as YAML" in response.text


@pytest.mark.parametrize("token", ["***", "AAAA", base64.urlsafe_b64encode(b"x").decode()])
def test_an_unreadable_link_falls_back_to_the_starter(client: TestClient, token: str) -> None:
    response = client.get("/edit", params={"s": token})
    assert response.status_code == 400
    assert "cannot be read" in response.text
    assert textarea(response.text) == STARTER


def test_links_to_the_editor(client: TestClient) -> None:
    assert 'href="/edit"' in client.get("/").text
    page = client.get(f"/s/{SEED}", params={"v": "fixed"}).text
    assert f'id="btn-edit-copy" class="btn" href="/edit?from={SEED}&amp;v=fixed"' in page
    custom = encode_doc(check_text(STARTER, 256 * 1024).scenario.document)  # type: ignore[union-attr]
    page = client.get("/s/my-madv-free-race", params={"s": custom}).text
    href = html.unescape(re.search(r'id="btn-edit-copy" class="btn" href="([^"]+)"', page)[1])  # type: ignore[index]
    assert parse_qs(urlsplit(href).query)["s"] == [custom]
    assert client.get(href).status_code == 200


# --- checking as you type ------------------------------------------------------------------


def test_check_valid_returns_the_fragment_with_links(client: TestClient) -> None:
    page = check(client, SEED_FILE.read_text(), v="fixed")
    assert "<html" not in page
    assert VALID in page
    assert 'id="variant-field" class="ed-variant" hx-swap-oob="true"' in page
    assert 'id="share" class="ed-share" aria-label="Open and share" hx-swap-oob="true"' in page
    assert '<option value="fixed" selected>' in page
    dashboard = html.unescape(re.search(r'id="btn-open" class="btn" href="([^"]+)"', page)[1])  # type: ignore[index]
    assert dashboard.startswith(f"/s/{SEED}?v=fixed&d=")
    assert data_attr(page, "data-lines") == ""


def test_yaml_syntax_error_points_at_line_and_column(client: TestClient) -> None:
    text = SEED_FILE.read_text().replace('  fixed: {kernel: "5.18"}', '  fixed {kernel: "5.18"}')
    line = line_of(text, "fixed {kernel")
    page = check(client, text)
    assert "✖ 1 problem" in page
    assert f'data-line="{line}" data-col="24">line {line} · col 24</a> · YAML syntax:' in page
    assert "while parsing a block mapping on line" in page
    assert data_attr(page, "data-lines") == str(line)


def test_tabs_get_a_hint(client: TestClient) -> None:
    page = check(client, "id: x\ntitle: y\nactors:\n\t- name: a\n")
    assert "YAML indents with spaces, not tabs" in page
    assert 'data-line="4"' in page


def test_semantic_error_names_the_path_and_line(client: TestClient) -> None:
    text = SEED_FILE.read_text().replace("mode: get", "mode: grab")
    line = line_of(text, "mode: grab")
    page = check(client, text)
    assert (
        f'data-line="{line}">line {line}</a> · <code>actors[0].ops[0].gup_fast.mode</code>: '
        "&#39;grab&#39; is not allowed; allowed: get, pin"
    ) in page
    assert str(line) in data_attr(page, "data-lines").split(",")
    assert '<button id="btn-open" class="btn" type="button" disabled>' in page


def test_invalid_text_keeps_the_chosen_kernel(client: TestClient) -> None:
    page = check(client, "id: [", v="fixed")
    assert '<input type="hidden" name="v" value="fixed">' in page
    assert "&amp;v=fixed" in page  # the editor link keeps it too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the text is empty"),
        ("just a string", "must be a mapping"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("a: [" * 3000, "nested too deeply"),
        ("id: x\n---\nid: y\n", "YAML syntax"),
        ("!!python/object:os.system {}", "YAML syntax"),
    ],
)
def test_odd_text_is_a_message_not_a_500(client: TestClient, text: str, message: str) -> None:
    assert message in html.unescape(check(client, text))


def test_oversize_text_is_a_clear_413(client: TestClient) -> None:
    response = client.post("/edit/check", data={"text": "# " + "x" * 70_000})
    assert response.status_code == 413
    assert "the text is 70,002 bytes; the editor takes at most 65,536 bytes" in response.text
    assert "over the size limit" in response.text
    explored = client.post("/edit/explore", data={"text": "# " + "x" * 70_000})
    assert explored.status_code == 413
    assert "over the size limit" in explored.text


def test_a_body_over_the_request_limit_is_refused_before_parsing(client: TestClient) -> None:
    response = client.post("/edit/check", data={"text": "x" * 300_000})
    assert response.status_code == 413
    assert "request body larger than" in response.json()["detail"]


def test_not_a_form_is_415(client: TestClient) -> None:
    response = client.post("/edit/check", json={"text": "id: x"})
    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.text


# --- exploring -------------------------------------------------------------------------------


def test_explore_fragment(client: TestClient) -> None:
    response = client.post("/edit/explore", data={"text": SEED_FILE.read_text(), "v": "buggy"})
    assert response.status_code == 200
    page = response.text
    assert "All interleavings on kernel 5.17" in page
    assert re.search(r"<strong>\d+</strong> interleavings", page)
    assert "✓ expect: lost_write is reachable" in page
    assert 'id="ed-outcomes-chart"' in page
    assert "data-json='" in page
    links = [html.unescape(u) for u in re.findall(r'class="btn load-example" href="([^"]+)"', page)]
    assert links
    bad = html.unescape(re.search(r'<tr class="bad".*?href="([^"]+)"', page, re.S)[1])  # type: ignore[index]
    assert "&s=" in bad
    assert "&t=" in bad
    dashboard = client.get(bad)
    assert dashboard.status_code == 200
    assert "✖ lost_write" in dashboard.text


def test_explore_the_fixed_kernel(client: TestClient) -> None:
    page = client.post("/edit/explore", data={"text": SEED_FILE.read_text(), "v": "fixed"}).text
    assert "All interleavings on kernel 5.18" in page
    assert "✓ expect: no invariant breaks" in page
    assert "✓ expect: page_kept is reachable" in page
    assert '<tr class="bad"' not in page


def test_explore_invalid_text_is_422_with_the_reason(client: TestClient) -> None:
    response = client.post("/edit/explore", data={"text": "id: x\n"})
    assert response.status_code == 422
    assert "Fix the" in response.text


def test_form_post_without_javascript(client: TestClient) -> None:
    response = client.post("/edit", data={"text": STARTER, "v": "buggy", "do": "explore"})
    assert response.status_code == 200
    assert textarea(response.text) == STARTER
    assert "All interleavings on kernel 5.17" in response.text


# --- sharing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        STARTER,
        SEED_FILE.read_text(),
        "# only a comment, ünïcode ✓ and a tab\t\n\n\n",
        "\n\nid: x   # trailing spaces   \n",
    ],
)
def test_share_link_round_trips_the_text_exactly(client: TestClient, text: str) -> None:
    page = check(client, text.replace("\n", "\r\n"), v="buggy")  # browsers post CRLF
    link = data_attr(page, "data-editor")
    assert link.startswith("/edit?s=")
    assert len(link) <= LINK_LIMIT
    assert unpack(parse_qs(urlsplit(link).query)["s"][0], 10**6) == text
    assert textarea(client.get(link).text) == text
    assert f'data-path="{html.escape(link)}"' in page


def test_pack_round_trip_and_bounds() -> None:
    assert unpack(pack_text("a: b\n# c\n"), 1000) == "a: b\n# c\n"
    assert unpack(encode_doc({"id": "x"}), 1000) == {"id": "x"}
    bomb = base64.urlsafe_b64encode(zlib.compress(b'"' + b" " * 5_000_000 + b'"')).decode()
    with pytest.raises(LinkError, match="larger than"):
        unpack(bomb, 100_000)
    with pytest.raises(LinkError, match="neither"):
        unpack(base64.urlsafe_b64encode(zlib.compress(b"[1]")).decode(), 1000)


def test_a_scenario_too_big_for_a_link_says_so(client: TestClient) -> None:
    noise = random.Random(4).randbytes(8000).hex()
    text = STARTER + "".join(f"# {noise[i : i + 80]}\n" for i in range(0, len(noise), 80))
    page = check(client, text)
    assert "✓ valid" in page
    assert "Too big for a link" in page
    assert data_attr(page, "data-editor") == ""
    assert 'id="btn-share" class="btn" type="button" data-copy="share-editor" disabled>' in page
    assert 'id="btn-open" class="btn" href="/s/' in page  # comments are not in the document


def test_document_text_is_catalog_style(catalog: Mapping[str, engine.Scenario]) -> None:
    text = document_text(catalog[SEED].document)
    assert "buggy: {kernel: '5.17'}" in text
    assert engine.load_scenario_text(text).digest == catalog[SEED].digest


# --- escaping ----------------------------------------------------------------------------------


def test_scenario_text_is_escaped_everywhere(client: TestClient) -> None:
    text = STARTER.replace(
        'title: "My scenario: MADV_FREE reclaim vs O_DIRECT read"', f'title: "{XSS}"'
    ).replace("label: page reclaim", f'label: "{XSS}"')
    assert check_text(text, 10**6).valid
    page = client.get(editor_path(text)).text
    fragment = check(client, text)
    explored = client.post("/edit/explore", data={"text": text}).text
    bad = check(client, text.replace("mode: get", f'mode: "{XSS}"'))
    for body in (page, fragment, explored, bad):
        assert XSS not in body
        assert "<script>alert" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in fragment
    assert "&#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; is not allowed" in bad
    dashboard = html.unescape(re.search(r'id="btn-open" class="btn" href="([^"]+)"', fragment)[1])  # type: ignore[index]
    shown = client.get(dashboard).text
    assert XSS not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown


def test_the_reference_lists_every_switch_with_its_mainline_releases(client: TestClient) -> None:
    page = client.get("/edit").text
    assert "mainline X.Y.0" in page
    row = re.search(r"<code>gup_cow_break</code>.*?</tr>", page, re.S)
    assert row and "5.8 (reverted in 5.9)" in row.group(0) and "17839856fd58" in row.group(0)
    for name in [*engine.FIXES, *engine.DESIGN_RULES]:
        assert f"<code>{name}</code>" in page


def test_the_editor_and_the_dashboard_share_one_outcomes_fragment(client: TestClient) -> None:
    dash = client.get(f"/s/{SEED}/outcomes")
    edit = client.post("/edit/explore", data={"text": SEED_FILE.read_text(), "v": "buggy"})
    page = client.post("/edit", data={"text": SEED_FILE.read_text(), "do": "explore"})
    assert dash.status_code == edit.status_code == page.status_code == 200
    assert not (TEMPLATES_DIR / "_editor_outcomes.html").exists()
    # The same rows, the same chart; each page's links and ids as before.
    assert 'id="outcomes-chart"' in dash.text and 'hx-get="/s/' in dash.text
    assert 'id="ed-outcomes-chart"' in edit.text and "hx-get" not in edit.text
    assert 'class="ed-outcomes" data-key="' in edit.text and "ed-expect" in edit.text
    assert dash.text.count("<tr class=") == edit.text.count("<tr class=")
    # The page includes the very fragment Explore swaps in (but for the time it took).
    took = re.compile(r"\d+ ms")
    assert took.sub("", edit.text) in took.sub("", page.text)


def test_problems_are_listed_in_line_order() -> None:
    """Review M10 item 8: with two problems, line 9's was listed before line 6's."""
    text = (
        "id: two-problems\n"
        "title: two problems\n"
        "actors:\n"
        "  - name: dio\n"
        "    ops:\n"
        "      - gup_fast: {addr: buf, mode: grab}\n"
        "variants:\n"
        '  k5.11: {kernel: "5.11"}\n'
    )
    lines = [p.line for p in check_text(text, 256 * 1024).problems if p.line is not None]
    assert len(lines) >= 2 and lines == sorted(lines), lines
