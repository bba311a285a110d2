"""docs/notebook.md's Python blocks run, in order, as one notebook would run them."""

from __future__ import annotations

import re
from pathlib import Path

import engine

DOC = Path(__file__).resolve().parents[2] / "docs" / "notebook.md"


def test_the_notebook_page_runs_as_written() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict[str, object] = {}
    for block in blocks:  # the project's own page, run as a reader would paste it
        exec(compile(block, str(DOC), "exec"), namespace)
    run, exploration = namespace["run"], namespace["exploration"]
    assert isinstance(run, engine.Trace) and isinstance(exploration, engine.Exploration)
    assert [v.name for v in run.violations] == ["lost_write"]
    assert namespace["markdown"] == run._repr_markdown_()
    assert namespace["html"] == run._repr_html_()
    assert str(namespace["svg"]).startswith("<?xml")
