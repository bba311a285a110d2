"""The scenario language v1: its values (ir), its YAML loader and its validation.

`ir` holds the frozen values a scenario is made of, `loader` turns text into a
document safely, `validate` turns a document into a Scenario with errors that name
their paths, and `catalog` reads the shipped scenarios (engine/scenarios/*.yaml).
"""

from engine.lang.ir import (
    ActorSpec,
    ErrorItem,
    Expect,
    Op,
    Ref,
    Scenario,
    ScenarioError,
    Variant,
    default_variant,
)
from engine.lang.loader import load_scenario_text
from engine.lang.validate import parse_scenario

__all__ = [
    "ActorSpec",
    "ErrorItem",
    "Expect",
    "Op",
    "Ref",
    "Scenario",
    "ScenarioError",
    "Variant",
    "default_variant",
    "load_scenario_text",
    "parse_scenario",
]
