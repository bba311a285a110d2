"""Rich display of runs and explorations in Jupyter (issue 16 item 6).

`Trace._repr_html_` / `_repr_markdown_` and `Exploration._repr_html_` / `_repr_markdown_`
call these. The HTML is self-contained (inline SVG and inline styles: no script, no CDN,
no stylesheet, so it renders the same in JupyterLab, VS Code, nbviewer and GitHub's
notebook preview) and every piece of scenario text is HTML-escaped: a scenario is user
input. A run's Markdown is its diagram (engine.render_markdown), the form a mailing list or
an issue takes.
"""

from __future__ import annotations

from html import escape

from engine.diagram import render_diagram, render_markdown
from engine.explore import Exploration
from engine.export_svg import render_svg
from engine.trace import Trace

BAD = "color:#a63d00;font-weight:bold"
GOOD = "color:#006b4f;font-weight:bold"
CELL = "padding:2px 8px;text-align:left;border-bottom:1px solid #ddd"


def _verdict(trace: Trace) -> tuple[str, str]:
    """(style, text) of the run's verdict line."""
    if trace.violations:
        return BAD, "✖ breaks " + ", ".join(sorted({v.name for v in trace.violations}))
    if trace.finished:
        return GOOD, f"✓ no invariant broken; {trace.label}"
    return "", f"stopped after step {len(trace.steps)}; enabled: {', '.join(trace.enabled)}"


def trace_markdown(trace: Trace) -> str:
    return render_markdown(trace.model.scenario, trace.model.config, trace)


def trace_html(trace: Trace) -> str:
    scenario, config = trace.model.scenario, trace.model.config
    style, verdict = _verdict(trace)
    svg = render_svg(trace).split("\n", 1)[1]  # inline: no XML declaration inside HTML
    rows = "".join(
        f'<tr><td style="{CELL}">{s.index}</td><td style="{CELL}">{escape(s.actor)}</td>'
        f'<td style="{CELL}"><code>{escape(s.function)}</code></td>'
        f'<td style="{CELL}">{escape(s.op)}</td><td style="{CELL}">{escape(s.note)}</td></tr>'
        for s in trace.steps
    )
    violations = "".join(
        f'<li><span style="{BAD}">{escape(v.name)}</span> '
        f"{'at step ' + str(v.step) if v.step else 'at the end'}: {escape(v.message)}</li>"
        for v in trace.violations
    )
    head = "".join(f'<th style="{CELL}">{h}</th>' for h in ("#", "actor", "function", "op", "note"))
    return (
        '<div class="pagerace-run">'
        f"<p><strong>{escape(scenario.title)}</strong> on kernel {escape(config.label)}: "
        f'<span style="{style}">{escape(verdict)}</span></p>'
        f'<div style="overflow-x:auto">{svg}</div>'
        + (f"<ul>{violations}</ul>" if violations else "")
        + "<details><summary>steps</summary>"
        f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></details>"
        "<details><summary>diagram</summary>"
        f"<pre>{escape(render_diagram(scenario, config, trace))}</pre></details>"
        "</div>"
    )


def _summary(exp: Exploration) -> str:
    if exp.first_bug:
        return (
            f"first bug found after {exp.states} states with {exp.preemptions} preemption(s); "
            "the search stopped there, so nothing is counted"
        )
    cut = " (cut off: not every interleaving was searched)" if exp.truncated else ""
    return (
        f"{exp.states} states, {exp.transitions} transitions, "
        f"{exp.interleavings} interleavings, {exp.elapsed_ms:.1f} ms{cut}"
    )


def exploration_markdown(exp: Exploration) -> str:
    """The outcomes as a Markdown table (pipes in scenario text escaped)."""

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = [
        _summary(exp),
        "",
        "| interleavings | verdict | outcome | example schedule |",
        "|---:|---|---|---|",
    ]
    for o in exp.outcomes:
        verdict = "✖ " + ", ".join(o.violations) if o.violations else "✓ ok"
        lines.append(
            f"| {o.interleavings} | {cell(verdict)} | {cell(o.label)} | "
            f"`{cell(','.join(o.example))}` |"
        )
    return "\n".join(lines) + "\n"


def exploration_html(exp: Exploration) -> str:
    head = "".join(
        f'<th style="{CELL}">{h}</th>'
        for h in ("interleavings", "verdict", "outcome", "example schedule")
    )
    rows = []
    for o in exp.outcomes:
        verdict = (
            f'<span style="{BAD}">✖ {escape(", ".join(o.violations))}</span>'
            if o.violations
            else f'<span style="{GOOD}">✓ ok</span>'
        )
        message = f"<br><small>{escape(o.message)}</small>" if o.message else ""
        rows.append(
            f'<tr><td style="{CELL};text-align:right">{o.interleavings}</td>'
            f'<td style="{CELL}">{verdict}{message}</td><td style="{CELL}">{escape(o.label)}</td>'
            f'<td style="{CELL}"><code>{escape(",".join(o.example))}</code></td></tr>'
        )
    return (
        '<div class="pagerace-exploration">'
        f"<p>{escape(_summary(exp))}</p>"
        f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
