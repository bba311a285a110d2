"""Page policy: security headers and a CSP without inline scripts on every response, and
scenario text rendered as text everywhere (no XSS), checked with a script-laden scenario."""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape

import engine
from app.config import TEMPLATES_DIR
from app.links import encode_doc
from app.main import create_app
from app.security import RedactTokens, docs_policy, redact_tokens_in_logs

SEED = "madv-free-vs-dio"
BUG = ["dio"] * 3 + ["kswapd"] * 5 + ["dio"] * 3 + ["kswapd"] * 2
PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</title><script>alert(1)</script>",
    "{{7*7}} {% raw %}",
)
# Markup that must never reach a page unescaped, from any payload above.
RAW = ("<script>alert", "<img src=x", "<svg onload", "</title><script>")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def hostile_doc(seed: engine.Scenario) -> dict[str, Any]:
    """The seed scenario with markup in every free-text field the language allows.

    Actor names, ids, tags and values are restricted to [a-z0-9_-] by the language; titles,
    summaries, labels and reference titles are free text.
    """
    doc: dict[str, Any] = json.loads(json.dumps(seed.document))
    doc["id"] = "xss"
    doc["title"] = f"{PAYLOADS[0]} {PAYLOADS[3]}"[:120]
    doc["summary"] = " ".join(PAYLOADS)
    for actor, payload in zip(doc["actors"], PAYLOADS[1:], strict=False):
        actor["label"] = payload
    doc["refs"] = [{"commit": "6c8e2a256915", "title": PAYLOADS[2], "version": "5.18"}]
    return doc


def assert_headers(response: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name, response.headers)
    assert "camera=()" in response.headers["permissions-policy"]
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'", csp
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "unsafe-eval" not in csp


class Tags(HTMLParser):
    """Every start tag and its attributes, as a browser would parse them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_no_inline_script(page: str) -> None:
    """Every <script> loads a same-origin file; no on* handler attributes; no javascript: URLs."""
    for tag, attrs in Tags(page).tags:
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/"), attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            if name in ("href", "src", "action", "hx-get", "formaction"):
                assert not (value or "").strip().lower().startswith("javascript:"), (tag, value)


def assert_escaped(page: str) -> None:
    for raw in RAW:
        assert raw not in page, f"unescaped {raw!r}"
    # No template evaluation: {{7*7}} never becomes a standalone 49 (asset hashes such as
    # app.css?v=494b4df3cd may contain those digits).
    assert not re.search(r"(?<![0-9a-f])49(?![0-9a-f])", page)


# --- headers on every kind of response --------------------------------------------------------


@pytest.fixture(scope="module")
def broken_app(catalog: Mapping[str, engine.Scenario]) -> FastAPI:
    """An app with two routes that fail like a bug would (to see the 500 pages)."""
    app = create_app(catalog)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail")

    @app.get("/api/boom")
    def api_boom() -> None:
        raise RuntimeError("internal detail")

    return app


def test_every_kind_of_response_has_the_headers(
    client: TestClient, broken_app: FastAPI, seed: engine.Scenario
) -> None:
    token = encode_doc(hostile_doc(seed))
    html_accept = {"Accept": "text/html"}
    responses = [
        client.get("/"),
        client.get("/", params={"q": "gup"}, headers={"HX-Request": "true"}),
        client.get(f"/s/{SEED}?t={','.join(BUG)}&at=5"),
        client.get(f"/s/{SEED}/frame?t={','.join(BUG)}&at=5", headers={"HX-Request": "true"}),
        client.get(f"/s/{SEED}/find-bug"),
        client.get(f"/s/{SEED}/outcomes"),
        client.get(f"/s/xss?s={token}"),
        client.get("/s/no-such-scenario"),  # 404 page
        client.get(f"/s/{SEED}?s=garbage!!"),  # 400 page
        client.get(f"/s/{SEED}?v={'x' * 100}"),  # 422 page
        client.get("/no/such/page", headers=html_accept),  # framework 404, as a page
        client.get("/api/no-such-thing"),  # framework 404, as JSON
        client.post("/api/scenarios"),  # 405
        client.get("/api/scenarios"),
        client.post("/api/run", json={"scenario": SEED, "schedule": BUG}),
        client.post("/api/run", json={"scenario": SEED, "schedule": ["nobody"]}),  # 422
        client.post("/api/run", content=b"x" * 300_000),  # 413
        client.post("/api/diagram", json={"scenario": SEED, "schedule": BUG}),  # text/plain
        client.get("/static/app.css"),
        client.get("/openapi.json"),
    ]
    failing = TestClient(broken_app, raise_server_exceptions=False)
    responses += [failing.get("/boom", headers=html_accept), failing.get("/api/boom")]
    for response in responses:
        assert_headers(response)
    statuses = {r.status_code for r in responses}
    assert {200, 400, 404, 405, 413, 422, 500} <= statuses


def test_server_errors_say_little_and_keep_the_policy(broken_app: FastAPI) -> None:
    failing = TestClient(broken_app, raise_server_exceptions=False)
    page = failing.get("/boom", headers={"Accept": "text/html"})
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in page.text
    assert "internal detail" not in page.text and "Traceback" not in page.text
    assert_no_inline_script(page.text)
    api = failing.get("/api/boom")
    assert api.status_code == 500
    assert api.json()["detail"].startswith("internal error")


def test_docs_pages_allow_exactly_their_own_inline_scripts(client: TestClient) -> None:
    for path in ("/docs",):
        response = client.get(path)
        # Offline: Swagger UI comes from this server (static/vendor), no CDN.
        assert "https://" not in response.text.replace("https://swagger.io", "")
        assets = re.findall(r'(?:src|href)="(/static/vendor/swagger-ui-[^"]+)"', response.text)
        assert len(assets) == 2
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
        assert response.status_code == 200
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
        csp = response.headers["content-security-policy"]
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
        assert csp == docs_policy(response.text)
        scripts = re.findall(r"<script>(.*?)</script>", response.text, flags=re.DOTALL)
        assert csp.count("'sha256-") == len(scripts)


def test_templates_have_no_inline_scripts_or_handlers() -> None:
    for path in TEMPLATES_DIR.glob("*.html"):
        source = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.DOTALL)  # comments
        for tag in re.findall(r"<script\b[^>]*>", source):
            assert "src=" in tag, (path.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", source), path.name
        assert "|safe" not in source and "autoescape false" not in source, path.name


# --- a script-laden scenario renders as text everywhere ---------------------------------------


@pytest.fixture(scope="module")
def hostile(seed: engine.Scenario) -> engine.Scenario:
    return engine.parse_scenario(hostile_doc(seed))


@pytest.fixture(scope="module")
def hostile_client(catalog: Mapping[str, engine.Scenario], hostile: engine.Scenario) -> TestClient:
    """The scenario in a catalog too, for the catalog listing."""
    return TestClient(create_app({**catalog, hostile.id: hostile}))


def test_hostile_scenario_is_accepted_by_the_language(hostile: engine.Scenario) -> None:
    assert "<script>" in hostile.title
    assert any("onerror" in actor.label for actor in hostile.actors)


def test_catalog_listing_escapes_scenario_text(
    hostile_client: TestClient, hostile: engine.Scenario
) -> None:
    for response in (
        hostile_client.get("/"),
        hostile_client.get("/", params={"q": "alert"}),
        hostile_client.get("/", params={"q": "alert"}, headers={"HX-Request": "true"}),
    ):
        assert response.status_code == 200
        assert_escaped(response.text)
        assert_no_inline_script(response.text)
        assert str(escape(hostile.title)) in response.text
    listing = hostile_client.get("/api/scenarios")
    assert listing.headers["content-type"] == "application/json"
    assert any(item["title"] == hostile.title for item in listing.json())


def dashboard_responses(client: TestClient, sid: str, query: str) -> dict[str, Any]:
    hx = {"HX-Request": "true"}
    return {
        "page": client.get(f"/s/{sid}?{query}"),
        "frame": client.get(f"/s/{sid}/frame?{query}", headers=hx),
        "find-bug": client.get(f"/s/{sid}/find-bug?{query}", headers=hx),
        "outcomes": client.get(f"/s/{sid}/outcomes?{query}", headers=hx),
    }


@pytest.mark.parametrize("carried", ["link", "catalog"])
def test_dashboard_and_fragments_escape_scenario_text(
    client: TestClient,
    hostile_client: TestClient,
    seed: engine.Scenario,
    hostile: engine.Scenario,
    carried: str,
) -> None:
    if carried == "link":
        query = f"s={encode_doc(hostile_doc(seed))}&t={','.join(BUG)}&at=4&v=buggy"
        responses = dashboard_responses(client, "xss", query)
    else:
        responses = dashboard_responses(hostile_client, hostile.id, f"t={','.join(BUG)}&at=4")
    for name, response in responses.items():
        assert response.status_code == 200, (name, response.text[:300])
        assert_escaped(response.text)
        assert_no_inline_script(response.text)
    page = responses["page"].text
    title = re.search(r"<title>(.*?)</title>", page, flags=re.DOTALL)
    assert title is not None
    assert html.unescape(title.group(1)).startswith(hostile.title)
    assert str(escape(hostile.title)) in page
    for actor in hostile.actors:
        assert str(escape(actor.label)) in responses["frame"].text
    # The JSON island for dashboard.js is an attribute: it must survive as exact data.
    island = re.search(r"data-json='([^']*)'", responses["frame"].text)
    assert island is not None
    data = json.loads(html.unescape(island.group(1)))
    if carried == "link":
        assert data["diagram_request"]["scenario"]["title"] == hostile.title


def test_diagram_is_plain_text_that_browsers_will_not_sniff(
    client: TestClient, seed: engine.Scenario
) -> None:
    body = {"scenario": hostile_doc(seed), "schedule": BUG, "variant": "buggy"}
    response = client.post("/api/diagram", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert_headers(response)
    ran = client.post("/api/run", json=body)
    assert ran.status_code == 200
    assert ran.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "query",
    [
        "v=" + PAYLOADS[0],  # an unknown variant becomes a notice that quotes it
        "at=" + PAYLOADS[1][:20],  # an odd step number becomes a notice that quotes it
        "t=" + "<script>,<img src=x>",  # unknown actors in the schedule
        "cmp=" + PAYLOADS[2],
    ],
)
def test_notices_quoting_the_link_are_escaped(client: TestClient, query: str) -> None:
    for suffix in ("", "/frame"):
        response = client.get(f"/s/{SEED}{suffix}?{query}")
        assert response.status_code == 200, response.text[:300]
        assert_escaped(response.text)
        assert "<script>," not in response.text


def test_error_pages_escape_what_they_quote(client: TestClient, seed: engine.Scenario) -> None:
    doc = hostile_doc(seed)
    doc["actors"][0]["ops"][0] = {"gup_fast": {"addr": "buf", "mode": PAYLOADS[0]}}
    doc["bogus<script>alert(1)</script>"] = 1
    browser = {"Accept": "text/html"}
    pages = [
        client.get(f"/s/xss?s={encode_doc(doc)}", headers=browser),  # 400: the invalid doc
        client.get("/s/%3Cscript%3Ealert(1)%3C%2Fscript%3E", headers=browser),  # 404: no route
        client.get("/s/%3Cimg%20src=x%20onerror=alert(1)%3E", headers=browser),  # 404: the id
    ]
    for response in pages:
        assert response.status_code in (400, 404), response.text[:300]
        assert response.headers["content-type"].startswith("text/html")
        assert_escaped(response.text)
        assert_no_inline_script(response.text)
        assert_headers(response)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text
    api = client.post("/api/run", json={"scenario": doc})
    assert api.status_code == 422
    assert api.headers["content-type"] == "application/json"


def test_room_tokens_are_blanked_in_server_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/ws/rooms/abcdefgh?token=s3cr3t-T0ken_x&x=1"),
        None,
    )
    assert RedactTokens().filter(record)
    assert (
        record.getMessage()
        == '127.0.0.1:5000 - "WebSocket /ws/rooms/abcdefgh?token=…&x=1" [accepted]'
    )
    redact_tokens_in_logs()
    redact_tokens_in_logs()
    assert sum(isinstance(f, RedactTokens) for f in logging.getLogger("uvicorn.error").filters) == 1


def test_the_api_docs_link_back_and_follow_dark_mode(client: TestClient) -> None:
    """Review L3: /docs had no link back to the app and stayed light in dark mode."""
    page = client.get("/docs")
    assert page.status_code == 200
    assert '<nav class="docs-back"><a href="/">← pagerace</a>' in page.text
    css = re.search(r'href="(/static/docs\.css\?v=[^"]+)"', page.text)
    assert css, "the docs page links its stylesheet"
    sheet = client.get(css.group(1))
    assert sheet.status_code == 200 and "prefers-color-scheme: dark" in sheet.text
