"""The scenario language's JSON Schema (issue 15 item 7): every catalog scenario is valid
under it, and the mistakes an editor should flag as you type are invalid."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import engine

jsonschema_rs = pytest.importorskip("jsonschema_rs")
CATALOG = engine.load_catalog()


def validator() -> Any:
    return jsonschema_rs.Draft202012Validator(engine.scenario_schema())


def test_every_catalog_scenario_is_valid_under_the_schema() -> None:
    check = validator()
    for sid, scenario in CATALOG.items():
        errors = [e.message for e in check.iter_errors(scenario.document)]
        assert not errors, f"{sid}: {errors}"


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("an unknown op", lambda d: d["actors"][0]["ops"].append({"dma_writes": {}})),
        ("a misspelt parameter", lambda d: d["setup"].append({"write": {"adr": "buf"}})),
        (
            "a bad choice",
            lambda d: d["actors"][0]["ops"].append({"gup_fast": {"addr": "b", "mode": "pinned"}}),
        ),
        ("an unknown fix switch", lambda d: d["variants"]["buggy"].update(fixes={"nope": True})),
        ("an unquoted kernel", lambda d: d["variants"]["buggy"].update(kernel=5.1)),
        ("a bad violation name", lambda d: d["expect"]["buggy"].update(violations=["lost"])),
        ("a bad outcome label", lambda d: d["expect"]["buggy"].update(reachable=["gone"])),
        ("an actor without ops", lambda d: d["actors"][0].pop("ops")),
        ("a swap switch not true or false", lambda d: d.update(swap={"synchronous": "yes"})),
        ("an unknown top-level key", lambda d: d.update(extra=1)),
        (
            "a bad subpage address",
            lambda d: d["setup"].append({"write": {"addr": "buf#7", "value": "A"}}),
        ),
    ],
)
def test_an_editor_flags_the_usual_mistakes(where: str, change: Any) -> None:
    doc = copy.deepcopy(CATALOG["madv-free-vs-dio"].document)
    change(doc)
    assert not validator().is_valid(doc), where
    with pytest.raises(engine.ScenarioError):
        engine.parse_scenario(doc)  # the validator, the authority, refuses it too


def test_the_schema_names_every_op_switch_and_violation() -> None:
    schema = engine.scenario_schema("https://example.org/api/schema/scenario.json")
    assert schema["$id"] == "https://example.org/api/schema/scenario.json"
    ops = schema["properties"]["actors"]["items"]["properties"]["ops"]["items"]["properties"]
    assert {"gup_fast", "shrink_folio_list", "dio_read"} <= set(ops)
    fixes = schema["properties"]["variants"]["additionalProperties"]["properties"]["fixes"]
    assert set(fixes["properties"]) == set(engine.SWITCHES)
    violations = schema["properties"]["expect"]["additionalProperties"]["properties"]
    assert "lost_write" in violations["violations"]["items"]["enum"]
    from engine.lang import validate

    assert set(schema["properties"]) == set(validate.TOP_KEYS)
