"""The review's heavy scenario, for the hostile-client tests and scripts/abuse.py.

5 actors x 12 dio_read macros (48 ops each once expanded: MAX_OPS counts macros) and the
360-step round-robin schedule that finishes it: one replay takes tens of ms and its state
message is ~400 KB, the most a valid scenario costs per socket command.
"""

from __future__ import annotations

import json
from typing import Any

import engine

SEED = "madv-free-vs-dio"


def heavy_scenario(variants: int = 1) -> tuple[dict[str, Any], list[str]]:
    """The document (with `variants` kernel-5.17 variants) and its full schedule."""
    doc = json.loads(json.dumps(engine.load_catalog()[SEED].document))
    doc.pop("expect")
    doc["id"] = "heavy"
    doc["variants"] = {f"v{i}": {"kernel": "5.17"} for i in range(variants)}
    doc["actors"] = [
        {"name": f"a{i}", "ops": [{"dio_read": {"addr": "buf", "value": "B"}}] * 12}
        for i in range(5)
    ]
    sc = engine.parse_scenario(doc)
    config = engine.make_config(sc)
    schedule: list[str] = []
    run = engine.run_schedule(sc, config, schedule)
    while not run.finished:
        schedule.append(run.enabled[len(schedule) % len(run.enabled)])
        run = engine.run_schedule(sc, config, schedule)
    return doc, schedule
