"""Export endpoints (issue 16 item 5): a run as Perfetto JSON, JSON Lines, SVG or Markdown,
from an API body or from a dashboard link, with the error table's 4xx naming the field."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from app.links import encode_doc
from tests.app.conftest import SEED

MEDIA = {
    "perfetto": "application/json",
    "jsonl": "application/x-ndjson",
    "svg": "image/svg+xml",
    "md": "text/markdown",
}
SUFFIX = {"perfetto": ".perfetto.json", "jsonl": ".jsonl", "svg": ".svg", "md": ".md"}
FILENAME = re.compile(r'^attachment; filename="([A-Za-z0-9._-]+)"$')


def _check(fmt: str, text: str, trace: engine.Trace) -> None:
    """The body is a valid file of its format holding this run."""
    if fmt == "perfetto":
        events = json.loads(text)["traceEvents"]
        names = [e["name"] for e in events if e["ph"] == "X"]
        assert names == [s.function for s in trace.steps]
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        assert rows[0]["kind"] == "run" and rows[0]["count"] == len(trace.steps)
        assert [r["actor"] for r in rows[1:]] == [s.actor for s in trace.steps]
    elif fmt == "svg":
        root = ET.fromstring(text.encode())
        marks = list(root.iter("{http://www.w3.org/2000/svg}circle"))
        assert len([m for m in marks if m.get("class") == "step"]) == len(trace.steps)
    else:
        assert text.startswith(f"**{trace.model.scenario.title}**")
        assert f"`{','.join(s.actor for s in trace.steps)}`" in text


def _trace(seed: engine.Scenario, schedule: tuple[str, ...]) -> engine.Trace:
    return engine.run_schedule(seed, engine.make_config(seed), schedule)


@pytest.mark.parametrize("fmt", list(MEDIA))
def test_an_api_body_exports_its_run(
    client: TestClient, seed: engine.Scenario, bug_schedule: tuple[str, ...], fmt: str
) -> None:
    body = {"scenario": SEED, "schedule": list(bug_schedule)}
    response = client.post(f"/api/export/{fmt}", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == MEDIA[fmt]
    match = FILENAME.match(response.headers["content-disposition"])
    assert match, response.headers["content-disposition"]
    variant = engine.make_config(seed).variant
    assert match.group(1) == f"{SEED}-{variant}{SUFFIX[fmt]}"
    _check(fmt, response.text, _trace(seed, bug_schedule))


@pytest.mark.parametrize("fmt", list(MEDIA))
def test_a_dashboard_link_exports_the_same_bytes(
    client: TestClient, seed: engine.Scenario, bug_schedule: tuple[str, ...], fmt: str
) -> None:
    variant = engine.make_config(seed).variant
    t = ",".join(bug_schedule)
    linked = client.get(f"/s/{SEED}/export/{fmt}", params={"v": variant, "t": t})
    assert linked.status_code == 200, linked.text
    posted = client.post(
        f"/api/export/{fmt}",
        json={"scenario": SEED, "variant": variant, "schedule": list(bug_schedule)},
    )
    assert linked.content == posted.content
    assert linked.headers["content-disposition"] == posted.headers["content-disposition"]


def test_a_custom_document_exports_from_its_packed_link(client: TestClient) -> None:
    doc: dict[str, Any] = {
        "id": "mine",
        "title": "My <b>own</b> & scenario",
        "setup": [{"write": {"addr": "buf", "value": "A"}}],
        "actors": [{"name": "a", "ops": [{"write": {"addr": "buf", "value": "B"}}]}],
    }
    posted = client.post(
        "/api/export/svg", json={"scenario": doc, "kernel": "6.1", "schedule": ["a"]}
    )
    assert posted.status_code == 200, posted.text
    assert FILENAME.match(posted.headers["content-disposition"])
    title = ET.fromstring(posted.content).findtext("{http://www.w3.org/2000/svg}title") or ""
    assert title.startswith(doc["title"])
    linked = client.get("/s/mine/export/md", params={"t": "a", "s": encode_doc(doc)})
    assert linked.status_code == 200, linked.text
    assert "[replay](http://testserver/s/mine?" in linked.text and "s=" in linked.text


def test_the_markdown_replay_link_opens_at_the_step_asked(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    body = {"scenario": SEED, "schedule": list(bug_schedule), "at": 2}
    text = client.post("/api/export/md", json=body).text
    assert "at=2" in text.splitlines()[2]
    link = client.get(f"/s/{SEED}/export/md", params={"t": ",".join(bug_schedule), "at": "3"})
    assert "at=3" in link.text.splitlines()[2]


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "path"),
    [
        ("post", "/api/export/pdf", {"scenario": SEED, "schedule": []}, 422, "path.format"),
        ("post", "/api/export/svg", {"scenario": SEED, "schedule": ["nobody"]}, 422, "schedule[1]"),
        ("post", "/api/export/svg", {"scenario": SEED, "variant": "nope"}, 422, "variant"),
        ("post", "/api/export/svg", {"scenario": "no-such-scenario"}, 404, None),
        ("post", "/api/export/jsonl", {"schedule": []}, 422, "scenario"),
        ("get", f"/s/{SEED}/export/svg?t=nobody", None, 422, "t"),
        ("get", f"/s/{SEED}/export/svg?v=nope", None, 422, "v"),
        ("get", f"/s/{SEED}/export/svg?t=" + ",".join(["dio"] * 401), None, 422, None),
        ("get", f"/s/{SEED}/export/gif", None, 422, "path.format"),
        ("get", "/s/no-such-scenario/export/svg", None, 404, None),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    client: TestClient,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    status: int,
    path: str | None,
) -> None:
    if method == "post":
        response = client.post(url, json=body)
    else:
        response = client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["detail"]
    if path is not None:
        assert [e["path"] for e in answer["errors"]][:1] == [path], answer


def test_a_browser_following_a_bad_export_link_gets_an_error_page(client: TestClient) -> None:
    response = client.get(f"/s/{SEED}/export/svg?t=nobody", headers={"Accept": "text/html"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "nobody" in response.text


def test_openapi_documents_the_exports(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (
        ("/api/export/{format}", "post"),
        ("/s/{scenario_id}/export/{format}", "get"),
    ):
        op = paths[path][method]
        assert set(MEDIA.values()) <= set(op["responses"]["200"]["content"])
        assert {"404", "422"} <= set(op["responses"])
        if method == "get":  # a link's s= may not be a packed scenario
            assert "400" in op["responses"]
        fmt = next(p for p in op["parameters"] if p["name"] == "format")
        assert set(fmt["schema"]["enum"]) == set(MEDIA)
