"""A run or an exploration as JSON Lines (issue 16 item 2).

The first line is a header (the report's object without its list, plus "kind"), then one
line per step (a run) or per outcome (an exploration), in the report's shapes.
"""

from __future__ import annotations

import json
from typing import Any

from engine.explore import Exploration
from engine.report import exploration_to_json, run_to_json
from engine.trace import Trace


def _lines(kind: str, body: dict[str, Any], key: str) -> str:
    items = body.pop(key)
    header = {"kind": kind, "count": len(items), **body}
    rows = [header, *({"kind": key[:-1], **item} for item in items)]
    return "".join(json.dumps(r, sort_keys=False, separators=(",", ":")) + "\n" for r in rows)


def run_to_jsonl(run: Trace) -> str:
    return _lines("run", run_to_json(run), "steps")


def exploration_to_jsonl(exp: Exploration) -> str:
    return _lines("exploration", exploration_to_json(exp), "outcomes")
