"""`POST /api/run` answers byte for byte what it answered before the replay was made faster.

`tests/app/data/run_bytes.json` holds, for each request, the SHA-256 and the length of the
plain JSON body it got (the catalog's default variants with each one's longest example
schedule, a run cut half-way, a kernel with a fix switched, an inline document). A change
that the kernel model demands (a new state field, a step that says more) changes these on
purpose: regenerate with

    .venv/bin/python -m tests.app.test_run_bytes --update

and say in the commit why the bytes changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from app.main import create_app
from engine.trace import MAX_SCHEDULE

DATA = Path(__file__).parent / "data" / "run_bytes.json"


def cases() -> list[dict[str, Any]]:
    if not DATA.exists():
        return []
    recorded: list[dict[str, Any]] = json.loads(DATA.read_text())["cases"]
    return recorded


def digest(content: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(content).hexdigest(), "length": len(content)}


def plain(client: TestClient, request: dict[str, Any]) -> bytes:
    response = client.post("/api/run", json=request, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200, response.text
    assert "content-encoding" not in response.headers
    return response.content


@pytest.mark.parametrize("case", cases(), ids=lambda case: str(case["name"]))
def test_run_body_bytes_are_unchanged(client: TestClient, case: dict[str, Any]) -> None:
    first = plain(client, case["request"])
    assert digest(first) == case["body"], (
        f"POST /api/run {case['name']}: the body changed (regenerate only if the kernel "
        "model demands it: see this module's docstring)"
    )
    # Again: the run cache's copy (or a second replay) is the same bytes, gzipped the same.
    assert plain(client, case["request"]) == first
    zipped = client.post("/api/run", json=case["request"], headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == first  # httpx inflates it


def longest_examples() -> list[dict[str, Any]]:
    """Each catalog scenario's default variant with its longest example schedule."""
    out = []
    for scenario in engine.load_catalog().values():
        config = engine.make_config(scenario)
        exploration = engine.explore(scenario, config)
        example = max((o.example for o in exploration.outcomes), key=len)
        request: dict[str, Any] = {"scenario": scenario.id, "schedule": list(example)}
        if scenario.variants:
            request["variant"] = config.variant
        out.append({"name": f"{scenario.id}/longest", "request": request})
        # And a whole run, round-robin over the actors that can run: every actor's every step.
        schedule: list[str] = []
        trace = engine.replay(scenario, config, ())
        while trace.enabled and len(schedule) < MAX_SCHEDULE:
            last = schedule[-1] if schedule else ""
            later = [n for n in trace.enabled if n > last] or list(trace.enabled)
            schedule.append(later[0])
            trace = engine.replay(scenario, config, tuple(schedule))
        whole = {**request, "schedule": schedule}
        out.append({"name": f"{scenario.id}/round-robin", "request": whole})
    return out


def update() -> None:
    from app.routes.api import RunRequest  # noqa: F401 (the request shape is the API's)

    seed = engine.load_catalog()["madv-free-vs-dio"]
    bug = ["dio"] * 3 + ["kswapd"] * 5 + ["dio"] * 3 + ["kswapd"] * 2
    requests: list[dict[str, Any]] = [
        {
            "name": "madv-free-vs-dio/buggy",
            "request": {"scenario": seed.id, "variant": "buggy", "schedule": bug},
        },
        {
            "name": "madv-free-vs-dio/half-way",
            "request": {"scenario": seed.id, "variant": "buggy", "schedule": bug[:7]},
        },
        {"name": "madv-free-vs-dio/empty", "request": {"scenario": seed.id, "schedule": []}},
        {
            "name": "madv-free-vs-dio/kernel-and-fix",
            "request": {
                "scenario": seed.id,
                "kernel": "5.17",
                "fixes": {"lazyfree_refcount_check": True},
                "schedule": bug[:10],
            },
        },
        {
            "name": "madv-free-vs-dio/document",
            "request": {"scenario": json.loads(json.dumps(seed.document)), "schedule": bug},
        },
        *longest_examples(),
    ]
    client = TestClient(create_app())
    for case in requests:
        case["body"] = digest(plain(client, case["request"]))
    DATA.write_text(json.dumps({"cases": requests}, indent=1) + "\n")
    print(f"wrote {len(requests)} cases to {DATA}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit(__doc__)
    update()
