"""The outcomes of exploring every interleaving, as `templates/_outcomes.html` shows them.

One view for both pages. The dashboard's rows load their example into the frame in place
(htmx); the editor's open it in the dashboard, with the scenario's `expect` checked and a
key that tells editor.js when the text or kernel has changed since (the result goes stale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import engine
from app import figures
from app.dashboard import Notice
from app.editor import example_path
from app.runref import RunRef
from app.urls import Urls


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    outcome: engine.Outcome
    page_url: str | None  # the dashboard at the example's end; None when too long for a link
    frame_url: str | None = None  # the dashboard's frame at that step (the dashboard's rows)


@dataclass(frozen=True, slots=True)
class OutcomesView:
    result: engine.Exploration
    kernel: str
    rows: tuple[OutcomeRow, ...]
    figure: dict[str, Any]  # the bar chart, as plotly.js draws it
    editor: bool = False  # the editor's table: rows open the dashboard, ids are "ed-..."
    variant: str | None = None  # named after the kernel (the editor's heading)
    notices: tuple[Notice, ...] = ()
    expect: tuple[engine.ExpectCheck, ...] = ()
    stale_key: str = ""  # the editor's "digest:variant" of what was explored

    @property
    def ids(self) -> str:
        """The prefix of the chart's and its data's element ids."""
        return "ed-" if self.editor else ""


def dashboard_outcomes(
    scenario_id: str,
    scenario: engine.Scenario,
    config: engine.Config,
    result: engine.Exploration,
    packed: str | None,
    notices: Sequence[Notice],
    urls: Urls,
) -> OutcomesView:
    """The dashboard's outcomes: each row loads its shortest example at its last step."""
    rows = []
    for outcome in result.outcomes:
        example = tuple(outcome.example)
        at_end = RunRef(
            variant=config.variant,
            schedule=example,
            at=len(example),
            digest=scenario.digest,
            packed=packed,
        )
        rows.append(
            OutcomeRow(outcome, urls.page(scenario_id, at_end), urls.frame(scenario_id, at_end))
        )
    return OutcomesView(
        result,
        config.kernel,
        tuple(rows),
        figures.outcomes_figure(result),
        notices=tuple(notices),
    )


def editor_outcomes(
    scenario: engine.Scenario,
    variant: str | None,
    kernel: str,
    result: engine.Exploration,
    packed: str,
    urls: Urls,
) -> OutcomesView:
    """The editor's outcomes: each row opens its example in the dashboard, if it fits a link."""
    rows = tuple(
        OutcomeRow(o, example_path(scenario, packed, variant, o.example, urls))
        for o in result.outcomes
    )
    return OutcomesView(
        result,
        kernel,
        rows,
        figures.outcomes_figure(result),
        editor=True,
        variant=variant,
        expect=engine.check_expect(scenario, variant, result),
        stale_key=f"{scenario.digest}:{variant or ''}",
    )
