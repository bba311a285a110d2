"""HTTP API (product.md 5.2): shapes, agreement with the engine, and 4xx for bad input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from app.schemas import ErrorResponse, ExploreResponse, RunResponse, ScenarioSummary

SEED = "madv-free-vs-dio"


def error(response: Any, status: int) -> ErrorResponse:
    assert response.status_code == status, response.text
    body = ErrorResponse.model_validate(response.json())
    assert body.detail
    return body


def test_list_scenarios_matches_catalog(
    client: TestClient, catalog: Mapping[str, engine.Scenario]
) -> None:
    response = client.get("/api/scenarios")
    assert response.status_code == 200
    items = [ScenarioSummary.model_validate(item) for item in response.json()]
    assert [item.id for item in items] == list(catalog)
    seed = next(item for item in items if item.id == SEED)
    assert seed.digest == catalog[SEED].digest
    assert any(ref.commit.startswith("6c8e2a256915") for ref in seed.refs)


def test_get_scenario_is_document_plus_digest(client: TestClient, seed: engine.Scenario) -> None:
    body = client.get(f"/api/scenarios/{SEED}").json()
    assert body["id"] == SEED
    assert body["digest"] == seed.digest
    assert body["title"] == seed.title


def test_unknown_scenario_is_404_naming_it(client: TestClient) -> None:
    body = error(client.get("/api/scenarios/no-such-thing"), 404)
    assert "no-such-thing" in body.detail
    body = error(client.post("/api/run", json={"scenario": "no-such-thing"}), 404)
    assert body.errors[0].path == "scenario"


def test_run_agrees_with_engine(
    client: TestClient, seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    response = client.post("/api/run", json={"scenario": SEED, "schedule": list(bug_schedule)})
    assert response.status_code == 200, response.text
    body = RunResponse.model_validate(response.json())
    expected = engine.run_to_json(engine.run_schedule(seed, engine.make_config(seed), bug_schedule))
    assert response.json() == json.loads(json.dumps(expected))
    assert body.digest == seed.digest
    assert len(body.steps) == len(bug_schedule)
    assert [step.index for step in body.steps] == list(range(1, len(bug_schedule) + 1))
    assert "lost_write" in {v.name for v in body.violations}


def test_run_empty_schedule_is_initial_state(client: TestClient) -> None:
    body = RunResponse.model_validate(client.post("/api/run", json={"scenario": SEED}).json())
    assert body.steps == []
    assert body.enabled
    assert not body.finished


def test_run_actor_not_enabled_names_enabled_actors(
    client: TestClient, seed: engine.Scenario
) -> None:
    actors = [actor.name for actor in seed.actors]
    body = error(client.post("/api/run", json={"scenario": SEED, "schedule": ["nobody"]}), 422)
    item = body.errors[0]
    assert item.path.startswith("schedule[")
    assert any(name in item.message for name in actors)


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({}, "scenario"),
        ({"scenario": SEED, "schedule": "dio"}, "schedule"),
        ({"scenario": SEED, "schedule": [1]}, "schedule[0]"),
        ({"scenario": SEED, "kernel": "five"}, "kernel"),
        ({"scenario": SEED, "bogus": 1}, "bogus"),
        ({"scenario": SEED, "fixes": {"x": "maybe"}}, "fixes.x"),
    ],
)
def test_invalid_body_is_422_with_path(
    client: TestClient, payload: dict[str, Any], path: str
) -> None:
    body = error(client.post("/api/run", json=payload), 422)
    assert path in [item.path for item in body.errors], body


def test_unknown_variant_is_422(client: TestClient) -> None:
    body = error(client.post("/api/run", json={"scenario": SEED, "variant": "nope"}), 422)
    assert "nope" in body.detail


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/api/run", content=b'{"scenario": ', headers={"content-type": "application/json"}
    )
    body = error(response, 422)
    assert body.errors[0].path == "body"
    assert "JSON" in body.errors[0].message


def test_oversized_body_is_413(client: TestClient) -> None:
    payload = json.dumps({"scenario": SEED, "schedule": ["dio"] * 100_000})
    body = error(
        client.post("/api/run", content=payload, headers={"content-type": "application/json"}),
        413,
    )
    assert body.errors[0].path == "body"


def test_too_long_schedule_is_422(client: TestClient) -> None:
    error(client.post("/api/run", json={"scenario": SEED, "schedule": ["a"] * 2_001}), 422)


def test_invalid_custom_scenario_names_the_path(client: TestClient, seed: engine.Scenario) -> None:
    doc = json.loads(json.dumps(seed.document))
    doc["actors"][0]["ops"][0] = {"no_such_op": {}}
    body = error(client.post("/api/run", json={"scenario": doc}), 422)
    assert any(item.path.startswith("actors[0].ops[0]") for item in body.errors), body


def test_custom_scenario_runs(client: TestClient, seed: engine.Scenario) -> None:
    doc = json.loads(json.dumps(seed.document))
    response = client.post("/api/run", json={"scenario": doc, "schedule": []})
    assert response.status_code == 200, response.text
    assert response.json()["digest"] == seed.digest


def test_explore_outcomes_per_variant(client: TestClient, seed: engine.Scenario) -> None:
    for variant in seed.variants:
        response = client.post("/api/explore", json={"scenario": SEED, "variant": variant.name})
        assert response.status_code == 200, response.text
        body = ExploreResponse.model_validate(response.json())
        found = {name for outcome in body.outcomes for name in outcome.violations}
        assert set(seed.expect[variant.name].violations) <= found
        if not seed.expect[variant.name].violations:
            assert not found
        assert body.interleavings == sum(o.interleavings for o in body.outcomes)
        assert isinstance(response.json()["interleavings"], int)


def test_explore_bounds_max_states(client: TestClient) -> None:
    error(client.post("/api/explore", json={"scenario": SEED, "max_states": 0}), 422)
    response = client.post("/api/explore", json={"scenario": SEED, "max_states": 2})
    assert response.status_code == 200
    assert response.json()["truncated"] is True


def test_diagram_is_plain_text_with_replay_link(
    client: TestClient, seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    response = client.post(
        "/api/diagram", json={"scenario": SEED, "schedule": list(bug_schedule), "at": 2}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for actor in set(bug_schedule):
        assert actor in text
    replay = text.strip().splitlines()[-1]
    assert replay.startswith("replay: http://testserver/s/madv-free-vs-dio?")
    assert f"t={','.join(bug_schedule)}" in replay
    assert "at=2" in replay
    assert f"d={seed.digest}" in replay


def test_diagram_as_markdown_for_mailing_lists(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    body = {"scenario": SEED, "schedule": list(bug_schedule)}
    response = client.post("/api/diagram?format=md", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/markdown")
    lines = response.text.splitlines()
    assert lines[0].endswith("breaks **lost_write**")
    assert "[replay](http://testserver/s/madv-free-vs-dio?" in lines[2]
    assert lines[4] == "```text" and lines[-1] == "```"
    bad = client.post("/api/diagram?format=pdf", json=body)
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "query.format"


def test_diagram_bad_schedule_is_422(client: TestClient) -> None:
    error(client.post("/api/diagram", json={"scenario": SEED, "schedule": ["nobody"]}), 422)


def test_openapi_documents_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in (
        "/api/scenarios",
        "/api/scenarios/{scenario_id}",
        "/api/run",
        "/api/explore",
        "/api/diagram",
    ):
        assert path in schema["paths"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"null",
        b"[]",
        b"1",
        b'"x"',
        b'{"scenario": {}}',
        b'{"scenario": []}',
        b'{"scenario": "madv-free-vs-dio", "schedule": [null]}',
        b"\xff\xfe",
    ],
)
def test_junk_never_500(client: TestClient, content: bytes) -> None:
    for path in ("/api/run", "/api/explore", "/api/diagram"):
        response = client.post(path, content=content, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (path, content, response.text)


def test_diagram_can_leave_the_replay_link_out(
    client: TestClient, bug_schedule: tuple[str, ...]
) -> None:
    body = {"scenario": SEED, "schedule": list(bug_schedule)}
    text = client.post("/api/diagram?replay=false", json=body).text
    assert "replay:" not in text and "http" not in text
    assert text.splitlines()[-1].startswith("schedule: ")
    markdown = client.post("/api/diagram?format=md&replay=false", json=body).text
    assert "[replay]" not in markdown and "http" not in markdown
    assert "point of no return" in text  # review M1: the decisive step is in it
    bad = client.post("/api/diagram?replay=perhaps", json=body)
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "query.replay"


def test_the_scenario_schema_is_published(client: TestClient) -> None:
    """Issue 15 item 7: the engine's JSON Schema of the language, for editors."""
    response = client.get("/api/schema/scenario.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "http://testserver/api/schema/scenario.json"
    assert "gup_fast" in schema["properties"]["setup"]["items"]["properties"]
    assert client.head("/api/schema/scenario.json").status_code == 200
