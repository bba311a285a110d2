"""Web-layer fixtures: one app per session, a TestClient, and a known buggy schedule."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import engine
from app.main import create_app

SEED = "madv-free-vs-dio"


@pytest.fixture(scope="session")
def app(catalog: Mapping[str, engine.Scenario]) -> FastAPI:
    return create_app(catalog)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.fixture(scope="session")
def seed(catalog: Mapping[str, engine.Scenario]) -> engine.Scenario:
    return catalog[SEED]


@pytest.fixture(scope="session")
def bug_schedule(seed: engine.Scenario) -> tuple[str, ...]:
    """The shortest schedule that loses the DMA data on the scenario's first (buggy) variant."""
    config = engine.make_config(seed)
    result = engine.explore(seed, config)
    bad = [o for o in result.outcomes if "lost_write" in o.violations]
    assert bad, "the seed scenario must lose data on its default variant"
    return tuple(min(bad, key=lambda o: len(o.example)).example)
