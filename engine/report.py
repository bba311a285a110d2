"""JSON bodies shared by the API and the CLI's --json (one shape, one place)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from engine.bisect import Bisection, describe
from engine.explore import Exploration
from engine.lang.ir import Scenario
from engine.trace import Trace
from engine.views import to_json


def run_to_json(run: Trace) -> dict[str, Any]:
    return {
        "scenario": run.scenario_id,
        "digest": run.digest,
        "kernel": run.kernel,
        "variant": run.variant,
        "steps": [
            {
                "index": s.index,
                "actor": s.actor,
                "op": s.op,
                "op_index": s.op_index,
                "function": s.function,
                "note": s.note,
                "changes": list(s.changes),
                "state": to_json(s.state),
            }
            for s in run.steps
        ],
        "initial": to_json(run.initial),
        "state": to_json(run.state),
        "enabled": list(run.enabled),
        "finished": run.finished,
        "label": run.label,
        "violations": [asdict(v) for v in run.violations],
        "actors": [asdict(a) for a in run.actors],
    }


def exploration_to_json(exp: Exploration) -> dict[str, Any]:
    return {
        "states": exp.states,
        "transitions": exp.transitions,
        "interleavings": exp.interleavings,
        "outcomes": [
            {
                "label": o.label,
                "violations": list(o.violations),
                "interleavings": o.interleavings,
                "example": list(o.example),
                "message": o.message,
                **({"point_of_no_return": o.no_return} if o.no_return >= 0 else {}),
            }
            for o in exp.outcomes
        ],
        "truncated": exp.truncated,
        "elapsed_ms": exp.elapsed_ms,
        # Only for a stopped-at-the-first-bug search, so exhaustive results read as before.
        **({"first_bug": True, "preemptions": exp.preemptions} if exp.first_bug else {}),
    }


def scenario_to_json(scenario: Scenario) -> dict[str, Any]:
    return {**scenario.document, "digest": scenario.digest}


def bisection_to_json(b: Bisection) -> dict[str, Any]:
    return {
        "scenario": b.scenario_id,
        "verdicts": [
            {"kernel": release, "violations": list(v.violations), "complete": v.complete}
            for release, v in b.verdicts
        ],
        "changes": [
            {
                "before": c.before,
                "kernel": c.release,
                "changed": list(c.changed),
                "switches": list(c.switches),
                "text": describe(c),
            }
            for c in b.changes
        ],
        "complete": b.complete,
    }
