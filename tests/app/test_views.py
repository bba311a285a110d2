"""View data without HTTP: the state panel's change marks and the plotly figure specs."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

import engine
from app.figures import VERMILLION, outcomes_figure, timeline_figure
from app.panels import Changes, state_panel
from engine.views import NodeView, PageView, PteView, StateView


def test_changes_match_prefixes_both_ways() -> None:
    changes = Changes(["pages.P0.refcount", "ptes.app:buf"])
    assert changes.touched("pages.P0.refcount")
    assert changes.touched("pages.P0")
    assert changes.touched("ptes.app:buf.present")
    assert not changes.touched("pages.P0.mapcount")
    assert not changes.touched("pages.P01")


def page(refcount: int, flags: tuple[str, ...], holders: tuple[tuple[str, int], ...]) -> PageView:
    return PageView("P0", refcount, 0, 1, flags, "inactive_anon", "A", "anon", holders, None)


def state(*pages: PageView, ptes: tuple[PteView, ...] = ()) -> StateView:
    node = (NodeView("node0", pgdat_dirty=False),)
    return StateView(pages, ptes, (), (), (), (), (), node, ())


def test_state_panel_marks_changed_fields_and_flag_diffs() -> None:
    before = state(page(1, ("lru", "dirty"), (("mappings", 1),)))
    pte = PteView("app", "buf", "P0", True, True, False, True, None, False, None)
    after = state(page(2, ("lru", "locked"), (("mappings", 1), ("dio (get)", 1))), ptes=(pte,))
    panel = state_panel(after, before, ["pages.P0.refcount", "pages.P0.flags"])
    rows = {row.label: row for row in panel.pages[0].rows}
    assert rows["refcount"].changed
    assert rows["refcount"].value == "2 = 1 mapping + 1 dio (get)"
    assert not rows["mapcount"].changed
    chips = {chip.text: chip.kind for chip in rows["flags"].chips}
    assert chips == {"lru": "on", "locked": "added", "dirty": "removed"}
    assert panel.ptes[0].label == "PTE app:buf"
    assert [chip.text for chip in panel.ptes[0].chips] == ["present", "write", "·dirty", "young"]


def test_state_panel_shows_every_section_the_engine_has_under_its_title(
    seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    run = engine.run_schedule(seed, engine.make_config(seed), bug_schedule[:2])
    panel = state_panel(run.state, run.view(1), run.steps[-1].changes)
    titles = {section.key: section.title for section in panel.sections}
    assert list(titles) == ["swap", "files", "devices", "expected", "node", "procs"]
    procs = next(section for section in panel.sections if section.key == "procs")
    assert titles["procs"] == "Processes (mmap_lock, PTE lock)"
    assert [row.label for row in procs.rows] == [p.name for p in run.state.procs]
    assert "write_protect_seq=" in procs.rows[0].value


def test_timeline_has_a_lane_per_actor_and_marks_violations(
    seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    run = engine.run_schedule(seed, engine.make_config(seed), bug_schedule)
    figure = timeline_figure(seed, run, 3)
    names = [trace["name"] for trace in figure["data"]]
    for number, actor in enumerate(seed.actors, start=1):
        assert f"{number} {actor.name}" in names
    marks = [t for t in figure["data"] if t["name"] == "✖ violation"]
    assert marks and marks[0]["marker"]["color"] == VERMILLION
    assert figure["layout"]["shapes"][0]["x0"] == 3
    lanes = [t for t in figure["data"] if t.get("mode") == "markers"]
    assert sum(len(t["x"]) for t in lanes) == len(bug_schedule)


def test_outcomes_figure_colours_violations(seed: engine.Scenario) -> None:
    result = engine.explore(seed, engine.make_config(seed))
    bars = outcomes_figure(result)["data"][0]
    for outcome, colour in zip(result.outcomes, bars["marker"]["color"], strict=True):
        assert (colour == VERMILLION) == bool(outcome.violations)


def test_every_catalog_figure_is_valid_for_plotly(catalog: Mapping[str, engine.Scenario]) -> None:
    # plotly.graph_objects checks every property against the schema of the plotly.js it
    # bundles, the version vendored in static/ (static/vendor/VENDOR.md): a misspelt or
    # misplaced key raises here instead of being ignored by the browser.
    import plotly.graph_objects as go

    for scenario in catalog.values():
        config = engine.make_config(scenario)
        result = engine.explore(scenario, config)
        go.Figure(outcomes_figure(result))
        example = min(result.outcomes, key=lambda o: len(o.example)).example
        run = engine.run_schedule(scenario, config, list(example))
        go.Figure(timeline_figure(scenario, run, len(run.steps) // 2))


def test_plotly_validation_catches_a_bad_key(seed: engine.Scenario) -> None:
    import plotly.graph_objects as go

    run = engine.run_schedule(seed, engine.make_config(seed), [])
    figure = timeline_figure(seed, run, 0)
    figure["layout"]["xaxis"]["dticks"] = 1
    with pytest.raises(ValueError, match="dticks"):
        go.Figure(figure)


def test_l1_two_violations_on_one_step_share_one_label() -> None:
    # UX review L1: "data_leak" and "lost_write" on one step were drawn on top of each other.
    scenario = engine.load_catalog()["pinned-then-fork"]
    config = engine.make_config(scenario, variant="buggy")
    schedule = ["driver", "app", "app", "app", "app", "app", "app", "driver", "driver"]
    run = engine.run_schedule(scenario, config, schedule)
    assert len(run.violations) == 2
    marks = next(t for t in timeline_figure(scenario, run, 0)["data"] if t["name"] == "✖ violation")
    assert len(marks["x"]) == len(set(marks["x"])) == 1
    assert sorted(marks["text"][0].split(" + ")) == ["data_leak", "lost_write"]


def test_the_timeline_counts_a_large_folio_as_a_folio() -> None:
    """A THP's head line is the folio's: its mapcount counts the PMD (entire) and every
    subpage's PTEs, and a pin on a large folio is 1, not the small-folio bias."""
    sc = engine.parse_scenario(
        {
            "id": "thp-timeline",
            "title": "a THP pinned, then split",
            "setup": [{"thp_fault": {"addr": "buf"}}],
            "actors": [
                {
                    "name": "dev",
                    "ops": [
                        {"gup": {"addr": "buf#1", "mode": "pin"}},
                        {"split_huge_pmd": {"addr": "buf"}},
                    ],
                }
            ],
        }
    )
    run = engine.run_schedule(sc, engine.make_config(sc), ["dev", "dev"])
    figure = timeline_figure(sc, run, 2)
    lines = {t["name"]: t["y"] for t in figure["data"] if t.get("yaxis") == "y2"}
    assert lines["P0 mapcount"] == [1, 1, 2]  # the PMD, then one PTE per subpage
    assert lines["P0 refcount − pin bias"] == [1, 1, 2]  # noqa: RUF001
    assert lines["P0 pins"] == [0, 1, 1]
    panel = state_panel(run.state, run.view(1), ())
    assert any(r.label == "folio" for r in panel.pages[0].rows)
    assert any(s.key == "pmds" for s in panel.sections)


def test_the_timeline_names_the_step_shown_and_marks_differences(
    seed: engine.Scenario, bug_schedule: tuple[str, ...]
) -> None:
    """Review L1: markers named their function on hover only, and the kernel comparison's
    ≠ marks were not on the timeline."""
    run = engine.run_schedule(seed, engine.make_config(seed), bug_schedule)
    figure = timeline_figure(seed, run, 8, differing=(8, 11, 99))
    shown = next(t for t in figure["data"] if t["name"] == "step shown")
    assert shown["x"] == [8] and shown["text"] == [run.steps[7].function]
    marks = next(t for t in figure["data"] if t["name"].startswith("≠"))
    assert marks["x"] == [8, 11] and marks["y"] == [run.steps[7].actor, run.steps[10].actor]
    plain = timeline_figure(seed, run, 0)
    assert not [t for t in plain["data"] if t["name"] in ("step shown",) or t["name"][0] == "≠"]
