"""The dashboard's Export links in headless Chromium: each downloads a valid file of the run
the page shows, and follows the page as it steps (issue 16 item 5)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import engine
from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e
SEED = "madv-free-vs-dio"
SVG = "{http://www.w3.org/2000/svg}"


def _download(page: Page, label: str, tmp_path: Path) -> tuple[str, str]:
    """(suggested filename, text) of the file the Export link `label` downloads."""
    with page.expect_download() as info:
        page.locator("#exports a", has_text=label).click()
    download = info.value
    assert download.failure() is None
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    return download.suggested_filename, target.read_text(encoding="utf-8")


def _bug() -> tuple[engine.Scenario, engine.Config, tuple[str, ...]]:
    sc = engine.load_catalog()[SEED]
    cfg = engine.make_config(sc)
    bad = [o for o in engine.explore(sc, cfg).outcomes if "lost_write" in o.violations]
    return sc, cfg, tuple(min(bad, key=lambda o: len(o.example)).example)


def test_export_links_download_the_run_shown(page: Page, tmp_path: Path) -> None:
    sc, cfg, schedule = _bug()
    run = engine.run_schedule(sc, cfg, schedule)
    page.goto(f"/s/{SEED}?v={cfg.variant}&t={','.join(schedule)}&at=2")
    expect(page.locator("#exports a")).to_have_count(4)
    shot(page, "exports-toolbar")
    stem = f"{SEED}-{cfg.variant}"

    name, text = _download(page, "Perfetto", tmp_path)
    assert name == f"{stem}.perfetto.json"
    events = json.loads(text)["traceEvents"]
    assert [e["name"] for e in events if e["ph"] == "X"] == [s.function for s in run.steps]
    assert [e["name"] for e in events if e["ph"] == "i"] == [v.name for v in run.violations]

    name, text = _download(page, "JSONL", tmp_path)
    assert name == f"{stem}.jsonl"
    rows = [json.loads(line) for line in text.splitlines()]
    assert rows[0]["kind"] == "run" and len(rows) == len(schedule) + 1

    name, text = _download(page, "SVG", tmp_path)
    assert name == f"{stem}.svg"
    root = ET.fromstring(text.encode())
    marks = [e for e in root.iter(SVG + "circle") if e.get("class") == "step"]
    assert len(marks) == len(schedule)

    name, text = _download(page, "Markdown", tmp_path)
    assert name == f"{stem}.md"
    assert "breaks **lost_write**" in text.splitlines()[0]
    assert "at=2" in text  # the replay link opens where the page stands


def test_export_links_follow_the_page_as_it_steps(page: Page, tmp_path: Path) -> None:
    page.goto(f"/s/{SEED}")
    _, text = _download(page, "JSONL", tmp_path)
    assert json.loads(text.splitlines()[0])["count"] == 0
    page.click('.actor .step[data-step-key="1"]')
    expect(page.locator("#at")).to_have_text("1")
    page.click('.actor .step[data-step-key="1"]')
    expect(page.locator("#at")).to_have_text("2")
    _, text = _download(page, "JSONL", tmp_path)
    rows = [json.loads(line) for line in text.splitlines()]
    assert rows[0]["count"] == 2 and len(rows) == 3
