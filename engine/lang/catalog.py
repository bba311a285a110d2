"""The catalog: every scenario file in engine/scenarios, in file-name order."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from engine.lang.ir import ErrorItem, Scenario, ScenarioError
from engine.lang.loader import load_scenario_text

CATALOG_DIR = Path(__file__).parent.parent / "scenarios"


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


SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


def load_folder(directory: Path, beside: Mapping[str, Scenario]) -> dict[str, Scenario]:
    """A user's folder of scenarios, to serve beside the catalog `beside`.

    Not cached: it is read once at startup, and the user may edit it between runs. Every file
    is checked, and all their problems are reported together (each naming its file and field),
    so one start-up shows everything there is to fix.
    """
    if not directory.is_dir():
        raise ScenarioError([ErrorItem(str(directory), "not a folder")])
    paths = sorted(p for p in directory.iterdir() if p.suffix in SCENARIO_SUFFIXES)
    if not paths:
        suffixes = ", ".join(SCENARIO_SUFFIXES)
        raise ScenarioError([ErrorItem(str(directory), f"holds no scenario file ({suffixes})")])
    found: dict[str, Scenario] = {}
    where: dict[str, str] = {}
    errors: list[ErrorItem] = []
    for path in paths:
        try:
            sc = load_file(path)
        except ScenarioError as exc:
            errors.extend(exc.errors)
            continue
        if sc.id in beside:
            errors.append(ErrorItem(f"{path.name}: id", f"{sc.id!r} is a catalog scenario's id"))
        elif sc.id in found:
            errors.append(ErrorItem(f"{path.name}: id", f"{sc.id!r} is also {where[sc.id]}'s id"))
        else:
            found[sc.id] = sc
            where[sc.id] = path.name
    if errors:
        raise ScenarioError(errors)
    return found
