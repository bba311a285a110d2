"""A run as Chrome / Perfetto trace-event JSON (issue 16 item 1).

One track (tid) per actor named by thread_name metadata, a complete slice ("X") per step
named after its kernel function (args: the step's changes), counters ("C") for each
page's refcount and mapcount, instant events ("i") for violations. One step is 1000 us.
"""

from __future__ import annotations

from typing import Any

from engine.trace import Trace

STEP_US = 1000
PID = 1


def to_perfetto(trace: Trace) -> dict[str, Any]:
    """The trace-event object ({"traceEvents": [...]}) for one replayed run."""
    names = [a.name for a in trace.actors]
    for step in trace.steps:
        if step.actor not in names:
            names.append(step.actor)
    tids = {name: i + 1 for i, name in enumerate(names)}
    events: list[dict[str, Any]] = [
        {
            "ph": "M",
            "pid": PID,
            "tid": 0,
            "ts": 0,
            "name": "process_name",
            "args": {"name": f"{trace.scenario_id} ({trace.kernel})"},
        },
    ]
    for name, tid in tids.items():
        events.append(
            {
                "ph": "M",
                "pid": PID,
                "tid": tid,
                "ts": 0,
                "name": "thread_name",
                "args": {"name": name},
            }
        )

    def counters(ts: int, pages: Any) -> None:
        for page in pages:
            events.append(
                {
                    "ph": "C",
                    "pid": PID,
                    "tid": 0,
                    "ts": ts,
                    "name": f"{page.id}",
                    "args": {"refcount": page.refcount, "mapcount": page.mapcount},
                }
            )

    counters(0, trace.initial.pages)
    for i, step in enumerate(trace.steps):
        ts = i * STEP_US
        events.append(
            {
                "ph": "X",
                "pid": PID,
                "tid": tids[step.actor],
                "ts": ts,
                "dur": STEP_US,
                "name": step.function,
                "args": {"step": step.index, "op": step.op, "changes": list(step.changes)},
            }
        )
        counters(ts + STEP_US, step.state.pages)
    for v in trace.violations:
        ts = max(v.step, 1) * STEP_US if v.step else len(trace.steps) * STEP_US
        events.append(
            {
                "ph": "i",
                "pid": PID,
                "tid": 0,
                "ts": ts,
                "s": "g",
                "name": v.name,
                "args": {"message": v.message},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
