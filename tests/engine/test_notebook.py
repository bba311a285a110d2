"""Rich display in notebooks (issue 16 item 6): _repr_html_ and _repr_markdown_."""

from __future__ import annotations

from html.parser import HTMLParser

import engine
from tests.engine import builders

SCHEDULE = "dio,dio,dio,kswapd,kswapd,kswapd,kswapd,kswapd,dio,dio,dio,kswapd,kswapd"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser


def _buggy() -> tuple[engine.Scenario, engine.Config, engine.Trace]:
    sc = engine.load_catalog()["madv-free-vs-dio"]
    cfg = engine.make_config(sc, "buggy")
    return sc, cfg, engine.run_schedule(sc, cfg, SCHEDULE.split(","))


def test_a_run_shows_as_its_diagram_in_markdown() -> None:
    sc, cfg, trace = _buggy()
    assert trace._repr_markdown_() == engine.render_markdown(sc, cfg, trace)


def test_a_run_shows_as_self_contained_html() -> None:
    sc, cfg, trace = _buggy()
    html = trace._repr_html_()
    parsed = _parse(html)
    assert "svg" in parsed.tags and parsed.tags.count("circle") == len(trace.steps)
    # Nothing to fetch or run: no script, no external stylesheet, image or link.
    assert not {"script", "link", "img", "iframe"} & set(parsed.tags)
    assert not [v for k, v in parsed.attrs if k in ("src", "href") and v]
    text = "".join(parsed.text)
    assert sc.title in text and cfg.label in text
    assert all(v.name in text for v in trace.violations)
    assert all(s.function in text for s in trace.steps)


def test_run_html_escapes_scenario_text() -> None:
    doc = builders.doc({"a": [{"write": {"addr": "buf", "value": "B"}}]})
    doc["title"] = '<img src=x onerror="alert(1)"> & co'
    sc = engine.parse_scenario(doc)
    trace = engine.run_schedule(sc, engine.make_config(sc, kernel="5.18"), ["a"])
    parsed = _parse(trace._repr_html_())
    assert "img" not in parsed.tags
    assert doc["title"] in "".join(parsed.text)


def test_an_exploration_shows_its_outcomes() -> None:
    sc, cfg, _ = _buggy()
    exp = engine.explore(sc, cfg)
    md = exp._repr_markdown_()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == len(exp.outcomes) + 1  # the header, then one row per outcome
    for o, row in zip(exp.outcomes, rows[1:], strict=True):
        assert row.startswith(f"| {o.interleavings} |") and ",".join(o.example) in row
    assert f"{exp.interleavings} interleavings" in md
    parsed = _parse(exp._repr_html_())
    assert parsed.tags.count("tr") == len(exp.outcomes) + 1
    assert "script" not in parsed.tags
    text = "".join(parsed.text)
    assert all(o.label in text for o in exp.outcomes)


def test_markdown_table_cells_escape_pipes() -> None:
    exp = engine.Exploration(
        states=1,
        transitions=0,
        interleavings=1,
        outcomes=(engine.Outcome("a | b", ("lost_write",), 1, ("x",)),),
        truncated=False,
        elapsed_ms=0.1,
    )
    row = exp._repr_markdown_().splitlines()[-1]
    assert "a \\| b" in row and row.count(" | ") == 3


def test_a_first_bug_search_says_it_counted_nothing() -> None:
    sc, cfg, _ = _buggy()
    first = engine.find_first(sc, cfg)
    assert first is not None and first.first_bug
    md = first._repr_markdown_()
    assert md.startswith(f"first bug found after {first.states} states")
    assert "nothing is counted" in _parse(first._repr_html_()).text[0]
