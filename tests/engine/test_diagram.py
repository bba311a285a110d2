"""The diagram as Markdown, for mailing lists and issues (issue 16)."""

from __future__ import annotations

import engine


def test_the_markdown_diagram_is_a_header_and_a_fenced_block() -> None:
    catalog = engine.load_catalog()
    scenario = catalog["madv-free-vs-dio"]
    config = engine.make_config(scenario, variant="buggy")
    result = engine.explore(scenario, config)
    bad = next(o for o in result.outcomes if o.violations)
    run = engine.run_schedule(scenario, config, list(bad.example))
    text = engine.render_markdown(scenario, config, run, "https://example.org/s/x?t=a")
    lines = text.splitlines()
    assert lines[0] == f"**{scenario.title}** on kernel {config.label}: breaks **lost_write**"
    assert lines[2].startswith(f"Schedule: `{','.join(bad.example)}` ({len(bad.example)} steps)")
    assert lines[2].endswith("· [replay](https://example.org/s/x?t=a)")
    assert lines[4] == "```text" and lines[-1] == "```"
    assert "\n".join(lines[5:-1]) + "\n" == engine.render_diagram(scenario, config, run)


CATALOG = engine.load_catalog()


def _bad_run(sid: str, variant: str) -> tuple[engine.Scenario, engine.Config, engine.Trace]:
    scenario = CATALOG[sid]
    config = engine.make_config(scenario, variant=variant)
    bad = next(o for o in engine.explore(scenario, config).outcomes if o.violations)
    return scenario, config, engine.run_schedule(scenario, config, list(bad.example))


def test_the_body_fits_75_columns_for_every_catalog_bug() -> None:
    """checkpatch's limit for a commit description (review M1): every line but the
    schedule and replay trailers, which are pasted back whole."""
    for sid, scenario in CATALOG.items():
        for variant in scenario.variants:
            config = engine.make_config(scenario, variant=variant.name)
            bad = [o for o in engine.explore(scenario, config).outcomes if o.violations]
            if not bad:
                continue
            run = engine.run_schedule(scenario, config, list(bad[0].example))
            text = engine.render_diagram(scenario, config, run)
            assert text.isascii()
            for line in text.splitlines():
                if not line.startswith(("schedule: ", "replay: ")):
                    assert len(line) <= 75, f"{sid}/{variant.name}: {line!r}"
                assert not line.endswith("..."), f"{sid}/{variant.name}: {line!r}"


def test_the_point_of_no_return_is_a_marker_line_after_its_step() -> None:
    scenario, config, run = _bad_run("madv-free-vs-dio", "buggy")
    lines = engine.render_diagram(scenario, config, run).splitlines()
    mark = next(i for i, line in enumerate(lines) if "point of no return" in line)
    assert lines[mark].startswith("-") and lines[mark].endswith("-")
    assert "lost_write" in lines[mark]
    # Right after step 8, try_to_unmap_one (whose PTE clear is nested inside it, as in the
    # kernel: review M1), and its sentence (why it is decisive).
    unmap = next(i for i, line in enumerate(lines) if "try_to_unmap_one() {" in line)
    assert lines[unmap + 1].strip() == "ptep_get_and_clear()"
    assert lines[unmap + 1].index("ptep") == lines[unmap].index("try_to_unmap_one") + 2
    assert lines[unmap + 2].strip() == "}  /* ref=2 map=0 */"
    assert all(line.lstrip().startswith("# ") for line in lines[unmap + 3 : mark])
    assert "discard" in " ".join(lines[unmap + 3 : mark])
    assert "set_page_dirty()" in lines[mark + 1]


def test_after_the_fix_the_decisive_line_says_what_the_fix_does() -> None:
    """On 5.18 the same schedule reaches try_to_unmap_one, which now remaps: the diagram
    must say so (review M1: the line was blank), and claims no point of no return."""
    scenario, _, buggy = _bad_run("madv-free-vs-dio", "buggy")
    fixed = engine.make_config(scenario, variant="fixed")
    run = engine.replay(scenario, fixed, [s.actor for s in buggy.steps])
    lines = engine.render_diagram(scenario, fixed, run).splitlines()
    close = next(i for i, line in enumerate(lines) if "try_to_unmap_one() {" in line) + 2
    assert lines[close].strip() == "}"
    note = " ".join(line.strip("# ").strip() for line in lines[close + 1 : close + 4])
    assert "folio_set_swapbacked" in note and "restores the PTE" in note
    assert not any("point of no return" in line for line in lines)


def test_a_freeze_is_told_with_its_expected_count_and_outcome() -> None:
    """Review M1: `folio_ref_freeze()` said neither the count it expects nor whether it
    worked. The diagram, the step's sentence (the step log and narration) and the PTE read
    now tell them: `folio_ref_freeze(folio, 1) fails: ref 2`."""
    scenario = CATALOG["freeze-vs-speculative-ref"]
    config = engine.make_config(scenario, variant="v5_17")
    schedule = ["gup", *["kswapd"] * 4, "gup", "kswapd", "kswapd", "gup", "gup"]
    run = engine.run_schedule(scenario, config, schedule)
    freeze = run.steps[7]
    assert freeze.function == "folio_ref_freeze"
    assert freeze.call == "folio_ref_freeze(folio, 1) fails: ref 2"
    assert freeze.note.startswith("folio_ref_freeze(folio, 1) fails: ref 2,")
    text = engine.render_diagram(scenario, config, run)
    assert "  folio_ref_freeze(folio, 1) fails: ref 2\n" in text
    assert "ptep_get_lockless()  /* present: P0 */" in text
    assert "folio_ref_freeze()" not in text
    # The bug: the freeze at 1 succeeds (its count note follows).
    scenario, config, run = _bad_run("madv-free-vs-dio", "buggy")
    text = engine.render_diagram(scenario, config, run)
    assert "folio_ref_freeze(folio, 1) succeeds" in text


def test_remove_mappings_freeze_is_told_at_two() -> None:
    """__remove_mapping freezes at 1 + folio_nr_pages (2 for a small page)."""
    for sid, scenario in CATALOG.items():
        for variant in scenario.variants:
            config = engine.make_config(scenario, variant=variant.name)
            for outcome in engine.explore(scenario, config).outcomes:
                run = engine.run_schedule(scenario, config, list(outcome.example))
                for step in run.steps:
                    if step.function == "folio_ref_freeze":
                        assert step.call.startswith(
                            (
                                "folio_ref_freeze(folio, 1) ",
                                "folio_ref_freeze(folio, 2) ",
                                "no folio_ref_freeze (what if)",
                            )
                        ), f"{sid}/{variant.name}: {step.call!r}"
                        if "__remove_mapping" in step.note:
                            assert "(folio, 2)" in step.call
