"""pagerace's engine: a pure model of Linux page-lifecycle races and a checker for it.

No web imports here: the dashboard and the CLI are clients of this package.
"""

from engine.abdiff import Comparison, Difference, Side, Switch, compare
from engine.bisect import Attribution, Bisection, Verdict, attribute, bisect
from engine.diagram import render_diagram, render_markdown
from engine.doom import NoReturn, point_of_no_return
from engine.errors import InputError
from engine.expect import ExpectCheck, check_expect
from engine.explore import Exploration, Outcome, explore, reachable_violations
from engine.export_jsonl import exploration_to_jsonl, run_to_jsonl
from engine.export_perfetto import to_perfetto
from engine.export_svg import render_svg
from engine.first import find_first
from engine.fixes import DESIGN_RULES, FIXES, SWITCHES, Config, ConfigError, build_config
from engine.lang import (
    ErrorItem,
    Op,
    Ref,
    Scenario,
    ScenarioError,
    Variant,
    load_scenario_text,
    parse_scenario,
)
from engine.lang.catalog import load_catalog
from engine.lang.schema import scenario_schema
from engine.model import SetupError
from engine.report import bisection_to_json, exploration_to_json, run_to_json, scenario_to_json
from engine.trace import (
    ActorView,
    ScheduleError,
    Step,
    Trace,
    Violation,
    make_config,
    replay,
    run_schedule,
)
from engine.version import ENGINE_VERSION, changes_since
from engine.views import StateView

__all__ = [
    "DESIGN_RULES",
    "ENGINE_VERSION",
    "FIXES",
    "SWITCHES",
    "ActorView",
    "Attribution",
    "Bisection",
    "Comparison",
    "Config",
    "ConfigError",
    "Difference",
    "ErrorItem",
    "ExpectCheck",
    "Exploration",
    "InputError",
    "NoReturn",
    "Op",
    "Outcome",
    "Ref",
    "Scenario",
    "ScenarioError",
    "ScheduleError",
    "SetupError",
    "Side",
    "StateView",
    "Step",
    "Switch",
    "Trace",
    "Variant",
    "Verdict",
    "Violation",
    "attribute",
    "bisect",
    "bisection_to_json",
    "build_config",
    "changes_since",
    "check_expect",
    "compare",
    "exploration_to_json",
    "exploration_to_jsonl",
    "explore",
    "find_first",
    "load_catalog",
    "load_scenario_text",
    "make_config",
    "parse_scenario",
    "point_of_no_return",
    "reachable_violations",
    "render_diagram",
    "render_markdown",
    "render_svg",
    "replay",
    "run_schedule",
    "run_to_json",
    "run_to_jsonl",
    "scenario_schema",
    "scenario_to_json",
    "to_perfetto",
]
