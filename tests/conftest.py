"""Fixtures shared by every test package: the catalog, loaded once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

import engine

# Apps made by tests keep their short links in a scratch file, never the user's data folder.
os.environ.setdefault(
    "PAGERACE_LINKS_DB",
    str(Path(tempfile.mkdtemp(prefix="pagerace-test-links-")) / "links.sqlite3"),
)


@pytest.fixture(scope="session")
def catalog() -> Mapping[str, engine.Scenario]:
    return engine.load_catalog()


# Tests that need something outside Python (Chromium, redis-server) skip when it is missing,
# so a local run stays usable; scripts/test.sh must not then report a plain green run.
NEEDS_SYSTEM = ("e2e", "redis")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if any(marker in report.keywords for marker in NEEDS_SYSTEM)
    ]
    path = os.environ.get("PAGERACE_SKIP_REPORT")
    if path:  # set by scripts/test.sh, which prints the count as its last line
        Path(path).write_text(f"{len(skipped)}\n")
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} browser/Redis tests skipped: the dashboard was not fully tested",
            yellow=True,
            bold=True,
        )
