import json

import engine
from engine.export_perfetto import to_perfetto

SCHEDULE = "dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd,dio,dio,dio,kswapd,kswapd"
REQUIRED = {"ph": str, "ts": int, "pid": int, "tid": int, "name": str}


def _trace() -> engine.Trace:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    return engine.replay(sc, cfg, SCHEDULE.split(","))


def test_events_follow_the_trace_event_format() -> None:
    trace = _trace()
    doc = json.loads(json.dumps(to_perfetto(trace)))
    events = doc["traceEvents"]
    for e in events:
        for field, kind in REQUIRED.items():
            assert isinstance(e[field], kind), (field, e)
        assert e["ph"] in {"M", "X", "C", "i"}
        if e["ph"] == "X":
            assert isinstance(e["dur"], int) and e["dur"] > 0
    slices = [e for e in events if e["ph"] == "X"]
    assert [e["name"] for e in slices] == [s.function for s in trace.steps]
    threads = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert [threads[e["tid"]] for e in slices] == [s.actor for s in trace.steps]
    assert [e["args"]["changes"] for e in slices] == [list(s.changes) for s in trace.steps]
    instants = [e["name"] for e in events if e["ph"] == "i"]
    assert instants == [v.name for v in trace.violations]
    assert trace.violations
    counters = [e for e in events if e["ph"] == "C"]
    assert len(counters) == len(trace.initial.pages) * (len(trace.steps) + 1)
