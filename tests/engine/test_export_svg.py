"""The timeline as SVG (issue 16 item 5): valid standalone XML, one mark per step."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import engine
from tests.engine import builders

SVG = "{http://www.w3.org/2000/svg}"
SCHEDULE = "dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd,dio,dio,dio,kswapd,kswapd"


def _classed(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if e.get("class") == cls]


def _buggy() -> engine.Trace:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    return engine.replay(sc, engine.make_config(sc, "buggy"), SCHEDULE.split(","))


def test_the_timeline_is_standalone_svg_with_one_mark_per_step() -> None:
    trace = _buggy()
    text = engine.render_svg(trace)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')
    root = ET.fromstring(text.encode())
    assert root.tag == SVG + "svg"
    assert float(root.get("width", "0")) > 0 and root.get("viewBox")
    marks = _classed(root, "circle", "step")
    assert [int(m.get("data-step", "")) for m in marks] == [s.index for s in trace.steps]
    assert [m.get("data-actor") for m in marks] == [s.actor for s in trace.steps]
    # Each mark names its kernel function in its tooltip.
    for mark, step in zip(marks, trace.steps, strict=True):
        assert f"{step.function}()" in (mark.findtext(SVG + "title") or "")
    # A mark sits in its actor's lane: one y per actor.
    lanes = {m.get("data-actor"): m.get("cy") for m in marks}
    assert len(set(lanes.values())) == len(lanes) == 2
    # The violations, on the step that caused them.
    assert trace.violations
    crosses = _classed(root, "g", "violation")
    expected = sorted({v.step or len(trace.steps) for v in trace.violations})
    assert sorted(int(c.get("data-step", "")) for c in crosses) == expected
    title = " ".join(c.findtext(SVG + "title") or "" for c in crosses)
    assert all(v.name in title for v in trace.violations)
    # A refcount and a mapcount line per page, made only of move/line commands.
    pages = {p.id for p in trace.initial.pages}
    for kind in ("refcount", "mapcount"):
        lines = _classed(root, "path", kind)
        assert {ln.get("data-page") for ln in lines} == pages
        assert all((ln.get("d") or "").startswith("M") for ln in lines)


def test_scenario_text_is_escaped() -> None:
    doc = builders.doc({"a": [{"write": {"addr": "buf", "value": "B"}}]})
    hostile = 'A <script>alert("x")</script> & \x01 </svg> title'
    doc["title"] = hostile
    sc = engine.parse_scenario(doc)
    cfg = engine.make_config(sc, kernel="5.18")
    trace = engine.run_schedule(sc, cfg, ["a"] * 1)
    text = engine.render_svg(trace)
    root = ET.fromstring(text.encode())  # would fail on injected markup
    assert not list(root.iter(SVG + "script")) and not list(root.iter("script"))
    assert "<script>" not in text
    assert hostile.replace("\x01", "") in (root.findtext(SVG + "title") or "")
    assert len(_classed(root, "circle", "step")) == len(trace.steps)


def test_an_empty_run_is_still_a_picture() -> None:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    trace = engine.replay(sc, engine.make_config(sc, "buggy"), [])
    root = ET.fromstring(engine.render_svg(trace).encode())
    assert _classed(root, "circle", "step") == []
    assert _classed(root, "path", "refcount")
