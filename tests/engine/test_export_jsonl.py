import json

import engine
from engine.export_jsonl import exploration_to_jsonl, run_to_jsonl

SCHEDULE = "dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd,dio,dio,dio,kswapd,kswapd"


def test_a_run_is_a_header_and_a_line_per_step() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    run = engine.replay(sc, engine.make_config(sc, "buggy"), SCHEDULE.split(","))
    rows = [json.loads(line) for line in run_to_jsonl(run).splitlines()]
    assert rows[0]["kind"] == "run" and rows[0]["scenario"] == sc.id
    assert rows[0]["count"] == len(run.steps) == len(rows) - 1
    assert [r["function"] for r in rows[1:]] == [s.function for s in run.steps]
    assert all(r["kind"] == "step" for r in rows[1:])


def test_an_exploration_is_a_header_and_a_line_per_outcome() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    exp = engine.explore(sc, engine.make_config(sc, "buggy"))
    rows = [json.loads(line) for line in exploration_to_jsonl(exp).splitlines()]
    assert rows[0]["kind"] == "exploration" and rows[0]["states"] == exp.states
    assert [r["label"] for r in rows[1:]] == [o.label for o in exp.outcomes]
    assert all(r["kind"] == "outcome" for r in rows[1:]) and len(rows) > 1
