"""The replay cache behind `POST /api/run`: same bytes as a fresh replay, bounded, gzip-ready."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Mapping
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

import engine
from app.config import Settings
from app.main import create_app
from app.service import Body, Runner, run_text

SEED = "madv-free-vs-dio"


def fresh(seed: engine.Scenario, schedule: tuple[str, ...]) -> object:
    run = engine.run_schedule(seed, engine.make_config(seed), schedule)
    return json.loads(json.dumps(engine.run_to_json(run)))


def test_cached_body_is_a_fresh_replay_plain_and_gzipped(
    client: TestClient, seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    body = {"scenario": SEED, "schedule": list(bug_schedule)}
    first = client.post("/api/run", json=body, headers={"Accept-Encoding": "identity"})
    again = client.post("/api/run", json=body, headers={"Accept-Encoding": "identity"})
    assert first.status_code == again.status_code == 200
    assert "content-encoding" not in first.headers
    assert first.content == again.content
    assert first.json() == fresh(seed, bug_schedule)
    zipped = client.post("/api/run", json=body, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in zipped.headers["vary"].lower()
    assert zipped.json() == first.json()  # httpx inflates it


def test_a_custom_document_is_keyed_by_its_content(
    client: TestClient, seed: engine.Scenario
) -> None:
    doc = json.loads(json.dumps(seed.document))
    names = [actor["name"] for actor in doc["actors"]]
    one = client.post("/api/run", json={"scenario": doc, "schedule": names[:1]})
    doc["title"] = "another title, another digest"
    two = client.post("/api/run", json={"scenario": doc, "schedule": names[:1]})
    assert one.status_code == two.status_code == 200
    assert one.json()["digest"] != two.json()["digest"]


def test_errors_are_not_cached(client: TestClient) -> None:
    for _ in range(2):
        response = client.post("/api/run", json={"scenario": SEED, "schedule": ["nobody"]})
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "schedule[1]"


@pytest.mark.parametrize("small", [True, False])
def test_cache_is_bounded_in_bytes(
    catalog: Mapping[str, engine.Scenario], seed: engine.Scenario, small: bool
) -> None:
    config = engine.make_config(seed)
    names = [actor.name for actor in seed.actors]
    schedules = [(names[0],) * n for n in range(1, 4)] + [(names[1],) * n for n in range(1, 4)]
    unbounded = Runner(catalog, Settings())
    sizes = [unbounded.run(seed, config, schedule).size for schedule in schedules]
    # Room for every single body (each at most a quarter of the cache), not for all of them.
    limit = 0 if small else 4 * max(sizes)
    assert limit < sum(sizes) or small
    runner = Runner(catalog, replace(Settings(), run_cache_bytes=limit))
    for schedule in schedules:
        runner.run(seed, config, schedule)
    kept = [s for s in schedules if runner.cached(seed, config, s) is not None]
    assert runner._bytes <= limit
    if limit == 0:
        assert kept == []
    else:
        assert kept and kept[-1] == schedules[-1]  # the most recent survives
        assert len(kept) < len(schedules)  # and the oldest went
    body = runner.run(seed, config, schedules[0])
    assert gzip.decompress(body.gzipped) == body.plain


def test_an_app_without_a_run_cache_still_answers(
    catalog: Mapping[str, engine.Scenario], bug_schedule: tuple[str, ...]
) -> None:
    client = TestClient(create_app(catalog, replace(Settings(), run_cache_bytes=0)))
    body = {"scenario": SEED, "schedule": list(bug_schedule)}
    assert client.post("/api/run", json=body).json()["violations"]


@pytest.mark.parametrize("seed", [1, 2])
def test_run_text_is_the_encoded_run_to_json(
    catalog: Mapping[str, engine.Scenario], seed: int
) -> None:
    """The body POST /api/run sends (states spliced from per-item texts) is byte for byte
    the JSON of engine.run_to_json, for runs cut anywhere and runs to their end."""
    rng = random.Random(seed)
    for scenario in catalog.values():
        for variant in scenario.variants or (None,):
            config = engine.make_config(scenario, variant.name if variant else None)
            schedule: list[str] = []
            trace = engine.replay(scenario, config, ())
            while True:
                assert run_text(trace) == Body.encode(engine.run_to_json(trace)), scenario.id
                if not trace.enabled or len(schedule) > 60:
                    break
                schedule.append(rng.choice(trace.enabled))
                trace = engine.replay(scenario, config, tuple(schedule))
