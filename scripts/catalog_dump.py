"""Dump every catalog scenario's exploration (per variant) as JSON, for before/after diffs.

Usage: .venv/bin/python scripts/catalog_dump.py > before.json   (then diff two dumps)
The elapsed time is left out so that two dumps of the same engine are byte-identical.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The checkout this script is in, not whichever one the venv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine


def dump() -> dict[str, object]:
    out: dict[str, object] = {}
    for sc in engine.load_catalog().values():
        for v in sc.variants or (None,):
            cfg = engine.make_config(sc, v.name if v else None)
            body = engine.exploration_to_json(engine.explore(sc, cfg))
            body.pop("elapsed_ms", None)
            out[f"{sc.id}/{v.name if v else 'default'}"] = body
    return out


if __name__ == "__main__":
    json.dump(dump(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
