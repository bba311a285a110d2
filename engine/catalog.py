"""The catalog: every scenario file in engine/scenarios, in file-name order."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from engine.scenario import Scenario, ScenarioError, load_scenario_text

CATALOG_DIR = Path(__file__).parent / "scenarios"


def load_file(path: Path) -> Scenario:
    try:
        return load_scenario_text(path.read_text())
    except ScenarioError as exc:
        raise ScenarioError(
            [type(e)(f"{path.name}: {e.path}", e.message, e.line) for e in exc.errors]
        ) from None


@lru_cache(maxsize=4)
def _load(directory: Path) -> dict[str, Scenario]:
    catalog: dict[str, Scenario] = {}
    for path in sorted(directory.glob("*.yaml")):
        sc = load_file(path)
        if sc.id in catalog:
            raise ValueError(f"{path.name}: duplicate scenario id {sc.id!r}")
        catalog[sc.id] = sc
    return catalog


def load_catalog(directory: Path | None = None) -> dict[str, Scenario]:
    """All catalog scenarios by id (the seed-thread trio first)."""
    return dict(_load(directory or CATALOG_DIR))
