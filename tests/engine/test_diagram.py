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
