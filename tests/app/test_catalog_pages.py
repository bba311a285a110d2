"""Every catalog scenario's dashboard renders along every outcome's example schedule."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from fastapi.testclient import TestClient

import engine

CATALOG = engine.load_catalog()


@pytest.mark.parametrize("scenario_id", list(CATALOG))
def test_every_example_renders_at_every_step(
    client: TestClient, catalog: Mapping[str, engine.Scenario], scenario_id: str
) -> None:
    scenario = catalog[scenario_id]
    variants = [v.name for v in scenario.variants] or [None]
    for variant in variants:
        config = engine.make_config(scenario, variant=variant)
        result = engine.explore(scenario, config)
        for outcome in result.outcomes:
            schedule = ",".join(outcome.example)
            last = len(outcome.example)
            for at in sorted({0, 1, last // 2, last - 1, last} & set(range(last + 1))):
                query = f"t={schedule}&at={at}" + (f"&v={variant}" if variant else "")
                response = client.get(f"/s/{scenario_id}/frame?{query}")
                assert response.status_code == 200, (variant, at, response.text[:500])
                assert "does not apply" not in response.text
            if outcome.violations:
                assert f"✖ {outcome.violations[0]}" in response.text
