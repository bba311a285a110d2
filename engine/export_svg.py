"""A run's timeline as a standalone SVG document (issue 16 item 5).

The dashboard's timeline drawn without a browser or plotly, for a slide, a bug report or a
wiki page: a lane per actor with one mark per step (its kernel function in a <title>
tooltip), a step line per page for refcount and mapcount underneath, and a cross for each
violation on the step that caused it (end-of-run checks on the last column). Every piece of
scenario text is XML-escaped, so a hostile actor name cannot inject markup into the file.
Colours are Okabe-Ito and every colour also has a shape or a dash, as on the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from engine.trace import Trace
from engine.views import StateView, page_counts

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
VERMILLION = "#D55E00"
VIOLATION_TEXT = "#a63d00"  # the text shade: the mark's own hue is under 4.5:1 as text

STEP_W = 28  # one column per step (column 0: the state after the setup)
LANE_H = 30
LEFT = 140  # lane names
RIGHT = 190  # the legend
TOP = 58  # title and subtitle
CHART_H = 150
AXIS_H = 40

# Characters XML 1.0 forbids even as references: a scenario's text is free-form.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: object) -> str:
    """Text or attribute content: XML-escaped, quotes included, invalid characters dropped."""
    return escape(_NOT_XML.sub("", str(value)), quote=True)


def _fit(value: str, chars: int) -> str:
    return value if len(value) <= chars else value[: chars - 1] + "…"


def _pin_free(state: StateView, page_id: str) -> tuple[int, int, int] | None:
    """(refcount less the pins, mapcount, pins), as on the dashboard (views.page_counts)."""
    return page_counts(state, page_id)


def _step_path(xs: Sequence[float], ys: Sequence[float | None]) -> str:
    """A horizontal-then-vertical step line; a gap where the page does not exist yet."""
    parts: list[str] = []
    prev: float | None = None
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            prev = None
            continue
        if prev is None:
            parts.append(f"M{x:g} {y:g}")
        else:
            parts.append(f"H{x:g} V{y:g}")
        prev = y
    return " ".join(parts)


def _series(run: Trace) -> list[tuple[str, str, str, str, list[int | None]]]:
    """(page, field, colour, dash, value per column) for every page the run ever has."""
    states = [run.initial, *(s.state for s in run.steps)]
    page_ids: list[str] = []
    for state in states:
        page_ids.extend(p.id for p in state.pages if p.id not in page_ids)
    series: list[tuple[str, str, str, str, list[int | None]]] = []
    for k, page_id in enumerate(page_ids):
        values = [_pin_free(state, page_id) for state in states]
        colour = OKABE_ITO[(k * 2) % len(OKABE_ITO)]
        other = OKABE_ITO[(k * 2 + 1) % len(OKABE_ITO)]
        pinned = any(v is not None and v[2] for v in values)
        ref_name = "refcount − pin bias" if pinned else "refcount"  # noqa: RUF001
        series.append(
            (page_id, ref_name, colour, "", [None if v is None else v[0] for v in values])
        )
        series.append(
            (page_id, "mapcount", other, "6 4", [None if v is None else v[1] for v in values])
        )
        if pinned:
            pins = [None if v is None else v[2] for v in values]
            series.append((page_id, "pins", OKABE_ITO[6], "2 3", pins))
    return series


def render_svg(run: Trace) -> str:
    """The timeline of `run` as SVG text (UTF-8, with its XML declaration)."""
    scenario, config = run.model.scenario, run.model.config
    lanes = [a.name for a in scenario.actors]
    for step in run.steps:  # a trace always names its scenario's actors; kept total anyway
        if step.actor not in lanes:
            lanes.append(step.actor)
    n = len(run.steps)
    width = LEFT + (n + 1) * STEP_W + RIGHT
    lanes_h = LANE_H * len(lanes)
    chart_top = TOP + lanes_h + 24

    def x(column: int) -> float:
        return LEFT + column * STEP_W + STEP_W / 2

    broken = sorted({v.name for v in run.violations})
    verdict = (
        "breaks " + ", ".join(broken)
        if broken
        else (f"no violation; {run.label}" if run.finished else f"stopped after step {n}")
    )
    title = f"{scenario.title}, kernel {config.label}: {verdict}"
    series = _series(run)
    # Tall enough for the legend too: a scenario with many pages has many lines.
    height = max(chart_top + CHART_H + AXIS_H, chart_top + 8 + 18 * len(series) + 8)
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
        'font-size="12">',
        f"<title>{_text(title)}</title>",
        f"<desc>{_text('pagerace timeline of ' + scenario.id + '; schedule: ')}"
        f"{_text(','.join(s.actor for s in run.steps) or '(empty)')}</desc>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{_text(_fit(title, 160))}</text>',
        f'<text x="10" y="42" fill="#444444">{_text(scenario.id)} · {n} steps · '
        "one column per step, the state after the setup first</text>",
    ]

    # Actor lanes: a name, a guide line, one mark per step in the lane of its actor.
    out.append('<g class="lanes">')
    for i, name in enumerate(lanes):
        y = TOP + i * LANE_H + LANE_H / 2
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 4:g}" text-anchor="end">{_text(_fit(name, 20))}</text>'
        )
        out.append(
            f'<line x1="{LEFT}" y1="{y:g}" x2="{x(n) + STEP_W / 2:g}" y2="{y:g}" stroke="#dddddd"/>'
        )
    out.append("</g>")
    out.append('<g class="steps">')
    for step in run.steps:
        lane = lanes.index(step.actor)
        colour = OKABE_ITO[lane % len(OKABE_ITO)]
        y = TOP + lane * LANE_H + LANE_H / 2
        tip = f"step {step.index} · {step.actor} · {step.function}() · {step.op}"
        if step.note:
            tip += f" · {step.note}"
        out.append(
            f'<circle class="step" data-step="{step.index}" data-actor="{_text(step.actor)}" '
            f'cx="{x(step.index):g}" cy="{y:g}" r="7" fill="{colour}" stroke="#000000">'
            f"<title>{_text(tip)}</title></circle>"
        )
    out.append("</g>")

    # Violations: a cross on the step that broke the invariant, grouped per step so two
    # names on one step do not print on top of each other.
    grouped: dict[int, list[str]] = {}
    messages: dict[int, list[str]] = {}
    for v in run.violations:
        column = v.step or n
        grouped.setdefault(column, []).append(v.name)
        messages.setdefault(column, []).append(f"{v.name}: {v.message}")
    out.append('<g class="violations">')
    for column, names in grouped.items():
        actor = run.steps[column - 1].actor if 0 < column <= n else lanes[0] if lanes else ""
        lane = lanes.index(actor) if actor in lanes else 0
        cx, cy = x(column), TOP + lane * LANE_H + LANE_H / 2
        d = (
            f"M{cx - 9:g} {cy - 9:g} L{cx + 9:g} {cy + 9:g} "
            f"M{cx - 9:g} {cy + 9:g} L{cx + 9:g} {cy - 9:g}"
        )
        out.append(
            f'<g class="violation" data-step="{column}">'
            f"<title>{_text('; '.join(messages[column]))}</title>"
            f'<path d="{d}" stroke="{VERMILLION}" stroke-width="3" fill="none"/>'
            f'<text x="{cx + 11:g}" y="{cy - 8:g}" fill="{VIOLATION_TEXT}" '
            f'font-weight="bold">✖ {_text(" + ".join(names))}</text></g>'
        )
    out.append("</g>")

    # Counts: a step line per page and field, on one scale starting at zero.
    top = max([1, *(v for *_, vs in series for v in vs if v is not None)])
    low = min([0, *(v for *_, vs in series for v in vs if v is not None)])

    def level(value: float) -> float:
        return chart_top + CHART_H - (value - low) / (top - low) * CHART_H

    out.append('<g class="axis" fill="#444444">')
    out.append(f'<text x="{LEFT - 8}" y="{chart_top - 8}" text-anchor="end">count</text>')
    for tick in sorted({low, 0, (top + low) // 2, top}):
        ty = level(tick)
        out.append(
            f'<line x1="{LEFT}" y1="{ty:g}" x2="{x(n) + STEP_W / 2:g}" y2="{ty:g}" '
            'stroke="#eeeeee"/>'
            f'<text x="{LEFT - 8}" y="{ty + 4:g}" text-anchor="end">{tick}</text>'
        )
    every = 1 if n <= 40 else 5 if n <= 200 else 10
    base = chart_top + CHART_H + 16
    for column in range(n + 1):
        if column % every == 0 or column == n:
            out.append(f'<text x="{x(column):g}" y="{base}" text-anchor="middle">{column}</text>')
    out.append(
        f'<text x="{x(n) / 2 + LEFT / 2:g}" y="{base + 18}" text-anchor="middle">step</text>'
    )
    out.append("</g>")
    xs = [x(column) for column in range(n + 1)]
    out.append('<g class="counts" fill="none">')
    legend: list[str] = []
    for i, (page_id, field, colour, dash, values) in enumerate(series):
        ys = [None if v is None else level(v) for v in values]
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        kind = "refcount" if field.startswith("refcount") else field
        label = f"{page_id} {field}"
        out.append(
            f'<path class="{kind}" data-page="{_text(page_id)}" d="{_step_path(xs, ys)}" '
            f'stroke="{colour}" stroke-width="2"{dashed}><title>{_text(label)}</title></path>'
        )
        ly = chart_top + 8 + i * 18
        lx = x(n) + STEP_W / 2 + 16
        legend.append(
            f'<line x1="{lx:g}" y1="{ly}" x2="{lx + 24:g}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="2"{dashed}/>'
            f'<text x="{lx + 30:g}" y="{ly + 4}">{_text(_fit(label, 24))}</text>'
        )
    out.append("</g>")
    out.append('<g class="legend" font-size="11">')
    out.extend(legend)
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
