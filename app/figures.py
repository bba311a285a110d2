"""Plotly figure specs as plain dicts: the run timeline and the outcomes bar chart.

Pure functions of engine results, so they are easy to test; the browser only draws them
(static/core.js drawFigure, which adds the page's theme). Colours are Okabe-Ito (colour-blind
safe) and every colour also has a symbol or word.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import engine
from engine.lang.ir import cpus_of
from engine.views import page_counts

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
VERMILLION = "#D55E00"
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "hexagon", "star", "pentagon")
Figure = dict[str, Any]


def _first_page_id(states: Sequence[engine.StateView]) -> str | None:
    return next((state.pages[0].id for state in states if state.pages), None)


def _page_field(state: engine.StateView, page_id: str, name: str) -> int | None:
    counts = page_counts(state, page_id)
    if counts is None:
        return None
    return dict(zip(("refcount", "mapcount", "pins"), counts, strict=True))[name]


def _lanes(scenario: engine.Scenario, run: engine.Trace) -> list[Figure]:
    traces: list[Figure] = []
    for number, actor in enumerate(scenario.actors):
        steps = [step for step in run.steps if step.actor == actor.name]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{number + 1} {actor.name}",
                "x": [step.index for step in steps],
                "y": [actor.name] * len(steps),
                # Plotly renders a subset of HTML in hover text: escape scenario text first.
                "text": [
                    f"<b>{escape(step.function)}</b><br>{escape(step.note)}" for step in steps
                ],
                "hovertemplate": "step %{x}: %{text}<extra></extra>",
                "marker": {
                    "size": 12,
                    "color": OKABE_ITO[number % len(OKABE_ITO)],
                    "symbol": SYMBOLS[number % len(SYMBOLS)],
                    "line": {"width": 1, "color": "#000000"},
                },
                "yaxis": "y",
            }
        )
    return traces


def _series(states: Sequence[engine.StateView], page_id: str, name: str) -> list[int | None]:
    # The refcount is plotted less the pins (1024 each on a small folio), which have a line.
    return [_page_field(state, page_id, name) for state in states]


def _counts(run: engine.Trace) -> list[Figure]:
    states = [run.initial, *(step.state for step in run.steps)]
    page_id = _first_page_id(states)
    if page_id is None:
        return []
    x = list(range(len(states)))
    pinned = any(_page_field(state, page_id, "pins") for state in states)
    lines = [("refcount", "solid", "#0072B2"), ("mapcount", "dash", "#E69F00")]
    if pinned:
        lines.append(("pins", "dot", "#CC79A7"))
    traces = []
    for name, dash, colour in lines:
        label = "refcount − pin bias" if name == "refcount" and pinned else name  # noqa: RUF001
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{page_id} {label}",
                "x": x,
                "y": _series(states, page_id, name),
                "line": {"shape": "hv", "dash": dash, "color": colour},
                "marker": {"size": 5},
                "hovertemplate": f"step %{{x}}: {label} %{{y}}<extra></extra>",
                "yaxis": "y2",
            }
        )
    return traces


def _violations(run: engine.Trace) -> list[Figure]:
    if not run.violations:
        return []
    last = len(run.steps)
    by_index = {step.index: step.actor for step in run.steps}
    # One marker per step: two violations on one step printed their labels on top of each
    # other ("data_leak" over "lost_write").
    grouped: dict[int, list[engine.Violation]] = {}
    for v in run.violations:
        grouped.setdefault(v.step or last, []).append(v)
    xs = list(grouped)
    ys = [by_index.get(x, run.steps[-1].actor if run.steps else "") for x in xs]
    return [
        {
            "type": "scatter",
            "mode": "markers+text",
            "name": "✖ violation",
            "x": xs,
            "y": ys,
            "text": [escape(" + ".join(v.name for v in grouped[x])) for x in xs],
            "textposition": "top center",
            # The text shade of vermillion: the mark's own hue is under 4.5:1 as text.
            "textfont": {"color": "#a63d00"},
            "customdata": [escape("; ".join(v.message for v in grouped[x])) for x in xs],
            "hovertemplate": "step %{x}: %{text}<br>%{customdata}<extra></extra>",
            "marker": {
                "size": 18,
                "color": VERMILLION,
                "symbol": "x-thin-open",
                "line": {"width": 3},
            },
            "yaxis": "y",
        }
    ]


def _flushes(scenario: engine.Scenario, run: engine.Trace) -> list[Figure]:
    """A mark on each step that removed TLB entries (a flush, immediate or deferred), on
    the lane of the actor that flushed: where a stale entry stops being usable. A CPU
    access that reloads its own entry from the page table is not a flush."""
    actors = {a.name: a for a in scenario.actors}
    cpu_of = dict(zip(actors, cpus_of(scenario.actors), strict=True))
    xs: list[int] = []
    ys: list[str] = []
    texts: list[str] = []
    before = run.initial
    for step in run.steps:
        now = {t.key for t in step.state.tlb}
        access = actors[step.actor].ops[step.op_index].kind in ("read", "write")
        gone = sorted(
            t.key
            for t in before.tlb
            if t.key not in now and not (access and t.cpu == cpu_of[step.actor])
        )
        if gone:
            xs.append(step.index)
            ys.append(step.actor)
            texts.append(escape(f"{step.function} flushes " + ", ".join(gone)))
        before = step.state
    if not xs:
        return []
    return [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "⇣ TLB flush",
            "x": xs,
            "y": ys,
            "text": texts,
            "hovertemplate": "step %{x}: %{text}<extra></extra>",
            "marker": {
                "size": 20,
                "color": "#000000",
                "symbol": "line-ew-open",
                "line": {"width": 2},
            },
            "yaxis": "y",
        }
    ]


def _no_return_marks(step: int) -> tuple[Figure, Figure]:
    """A solid vermillion rule at the point of no return and its label, above the lanes: a
    line and a word, not colour alone."""
    rule: Figure = {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": step,
        "x1": step,
        "y0": 0,
        "y1": 1,
        "line": {"color": VERMILLION, "width": 2},
    }
    label: Figure = {
        "xref": "x",
        "yref": "paper",
        "x": step,
        "y": 1,
        "yanchor": "bottom",
        "text": "⊘ point of no return",
        "showarrow": False,
        "font": {"color": "#a63d00", "size": 12},
    }
    return rule, label


def _current(run: engine.Trace, at: int) -> list[Figure]:
    """The function of the step shown, written under its marker (review L1: markers named
    their function on hover only)."""
    if not 0 < at <= len(run.steps):
        return []
    step = run.steps[at - 1]
    return [
        {
            "type": "scatter",
            "mode": "text",
            "name": "step shown",
            "showlegend": False,
            "x": [at],
            "y": [step.actor],
            "text": [escape(step.function)],
            "textposition": "bottom center",
            "hoverinfo": "skip",
            "yaxis": "y",
        }
    ]


def _differing(run: engine.Trace, differing: Sequence[int]) -> list[Figure]:
    """≠ over the steps that differ on the kernel compared with (review L1: the kernel
    comparison's marks were in the columns only)."""
    shown = [i for i in differing if 0 < i <= len(run.steps)]
    if not shown:
        return []
    return [
        {
            "type": "scatter",
            "mode": "text",
            "name": "≠ differs on the other kernel",
            "x": shown,
            "y": [run.steps[i - 1].actor for i in shown],
            "text": ["≠"] * len(shown),
            "textposition": "top right",
            "textfont": {"size": 16},
            "hovertemplate": "step %{x} differs on the other kernel<extra></extra>",
            "yaxis": "y",
        }
    ]


def timeline_figure(
    scenario: engine.Scenario,
    run: engine.Trace,
    at: int,
    no_return: int | None = None,
    differing: Sequence[int] = (),
) -> Figure:
    """Lane per actor (top), refcount/mapcount step lines (bottom), cursor at step `at` with
    its function named, ≠ over the steps that differ on the kernel compared with, and a
    marked rule at the point of no return when the run has one."""
    lanes = [actor.name for actor in scenario.actors]
    last = max(len(run.steps), 1)
    data = (
        _lanes(scenario, run)
        + _counts(run)
        + _violations(run)
        + _current(run, at)
        + _differing(run, differing)
        + _flushes(scenario, run)
    )
    layout: Figure = {
        "height": 200 + 36 * len(lanes),
        "margin": {"l": 90, "r": 150, "t": 10 if no_return is None else 26, "b": 48},
        "showlegend": True,
        "legend": {"x": 1.01, "y": 1, "xanchor": "left"},
        "hovermode": "closest",
        # The shared x axis sits under the lower (count) plot.
        "xaxis": {
            "title": {"text": "step"},
            "range": [-0.5, last + 0.5],
            "dtick": 1,
            "zeroline": False,
            "anchor": "y2",
        },
        "yaxis": {
            "domain": [0.45, 1],
            "type": "category",
            "categoryorder": "array",
            "categoryarray": list(reversed(lanes)),
            "range": [-0.5, len(lanes) - 0.5],
            "fixedrange": True,
        },
        "yaxis2": {
            "domain": [0, 0.36],
            "title": {"text": "count"},
            "rangemode": "tozero",
            "fixedrange": True,
        },
        "shapes": [
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": at,
                "x1": at,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#555555", "width": 2, "dash": "dot"},
            }
        ],
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
    }
    if no_return is not None:
        rule, label = _no_return_marks(no_return)
        layout["shapes"].append(rule)
        layout["annotations"] = [label]
    return {"data": data, "layout": layout}


def outcomes_figure(exploration: engine.Exploration) -> Figure:
    """One bar per outcome; violating outcomes red and hatched, log scale for wide ranges."""
    outcomes = exploration.outcomes
    labels = [
        ("✖ " + ", ".join(o.violations) + " · " if o.violations else "✓ ") + o.label
        for o in outcomes
    ]
    counts = [o.interleavings for o in outcomes]
    wide = bool(counts) and max(counts) > 100 * max(min(counts), 1)
    colours = [VERMILLION if o.violations else "#0072B2" for o in outcomes]
    patterns = ["x" if o.violations else "" for o in outcomes]
    data = [
        {
            "type": "bar",
            "x": [escape(label) for label in labels],
            "y": [float(count) for count in counts],  # exact counts are in the table
            "customdata": list(range(len(outcomes))),
            "text": [str(count) for count in counts],
            # Above the bar, in the page's text colour: white on the hatched vermillion bar
            # was unreadable.
            "textposition": "outside",
            "cliponaxis": False,
            "hovertemplate": "%{x}<br>%{text} interleavings<extra></extra>",
            "marker": {"color": colours, "pattern": {"shape": patterns}},
        }
    ]
    layout: Figure = {
        "height": 300,
        "margin": {"l": 60, "r": 20, "t": 10, "b": 110},
        "yaxis": {"title": {"text": "interleavings"}, "type": "log" if wide else "linear"},
        "xaxis": {"automargin": True},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
    }
    return {"data": data, "layout": layout}
