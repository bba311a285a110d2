"""The `pagerace` command line: list, explore, run and diagram, with their exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import engine
from app.cli import main

SCENARIO = "madv-free-vs-dio"

FILE_YAML = """\
id: my-own
title: R1 with slow GUP (pin)
variants:
  old: {kernel: "5.17"}
  new: {kernel: "5.18"}
setup:
  - write: {addr: buf, value: A}
  - madvise_free: {addr: buf}
actors:
  - name: drv
    ops:
      - gup: {addr: buf, mode: pin, write: true}
      - dma_write: {value: B}
      - unpin: {dirty: true}
  - name: kswapd
    ops:
      - shrink_folio_list: {addr: buf}
"""


def explore_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["explore", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def buggy_example(capsys: pytest.CaptureFixture[str]) -> list[str]:
    _, data = explore_json(capsys, SCENARIO, "--variant", "buggy")
    outcomes = data["outcomes"]
    assert isinstance(outcomes, list)
    lost = next(o for o in outcomes if "lost_write" in o["violations"])
    return list(lost["example"])


def test_explore_buggy_reports_a_lost_write_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, data = explore_json(capsys, SCENARIO, "--variant", "buggy")
    assert code == 1
    outcomes = data["outcomes"]
    assert isinstance(outcomes, list)
    lost = [o for o in outcomes if "lost_write" in o["violations"]]
    assert lost and lost[0]["example"]
    assert data["truncated"] is False
    assert data["interleavings"] == sum(o["interleavings"] for o in outcomes)


def test_explore_fixed_exits_0_with_page_kept_reachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, data = explore_json(capsys, SCENARIO, "--variant", "fixed")
    assert code == 0
    outcomes = data["outcomes"]
    assert isinstance(outcomes, list)
    assert all(not o["violations"] for o in outcomes)
    assert any(o["label"].startswith("page_kept") for o in outcomes)


def test_explore_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", SCENARIO, "--kernel", "5.17"]) == 1
    out = capsys.readouterr().out
    assert "states" in out and "interleavings" in out
    assert "lost_write" in out
    assert "--schedule " in out


def test_explore_with_a_fix_override(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = explore_json(
        capsys, SCENARIO, "--kernel", "5.17", "--fix", "lazyfree_refcount_check=on"
    )
    assert code == 0


def test_a_bad_scenario_id_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "no-such-scenario"]) == 2
    err = capsys.readouterr().err
    assert "no-such-scenario" in err


@pytest.mark.parametrize(
    "args",
    [
        ["explore", SCENARIO, "--variant", "nope"],
        ["explore", SCENARIO, "--fix", "nofix=on"],
        ["explore", SCENARIO, "--fix", "lazyfree_freeze=maybe"],
        ["explore", SCENARIO, "--kernel", "2.6"],
        ["run", SCENARIO, "--schedule", "dio,bogus"],
        ["diagram", SCENARIO, "--schedule", "nobody"],
        ["explore", "missing-file.yaml"],
    ],
)
def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("pagerace: ")


def test_diagram_of_the_buggy_example(capsys: pytest.CaptureFixture[str]) -> None:
    schedule = ",".join(buggy_example(capsys))
    assert main(["diagram", SCENARIO, "--variant", "buggy", "--schedule", schedule]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("dio"))
    assert "kswapd" in header
    assert header.index("kswapd") > header.index("dio")
    assert any(line.startswith("=> lost_write") for line in lines)
    assert f"schedule: {schedule}" in out
    assert (
        main(["diagram", SCENARIO, "--variant", "buggy", "--schedule", schedule, "--format", "md"])
        == 0
    )
    markdown = capsys.readouterr().out
    assert markdown.startswith("**") and "```text\n" in markdown and out in markdown
    assert all(len(line) <= 100 for line in lines)
    assert out.isascii()
    for function in ("ptep_get_and_clear()", "try_to_unmap_one()", "folio_ref_freeze(folio, 1) "):
        assert function in out


def test_run_prints_steps_and_violations(capsys: pytest.CaptureFixture[str]) -> None:
    schedule = ",".join(buggy_example(capsys))
    assert main(["run", SCENARIO, "--variant", "buggy", "--schedule", schedule]) == 0
    out = capsys.readouterr().out
    assert "try_to_unmap_one" in out
    assert "!!! lost_write (at the end)" in out
    assert "finished: page_freed" in out


def test_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", SCENARIO, "--variant", "fixed", "--schedule", "kswapd", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps"][0]["function"] == "isolate_lru_folio"
    assert data["finished"] is False
    assert sorted(data["enabled"]) == ["dio", "kswapd"]


def test_list_prints_every_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    catalog = engine.load_catalog()
    assert [line.split()[0] for line in lines] == list(catalog)
    assert catalog[SCENARIO].title in next(line for line in lines if line.startswith(SCENARIO))


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert SCENARIO in [s["id"] for s in data["scenarios"]]


def test_a_scenario_file_path_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 2's acceptance: R1 with slow GUP (pin) loses data on 5.17 and not on 5.18."""
    path = tmp_path / "mine.yaml"
    path.write_text(FILE_YAML)
    code, data = explore_json(capsys, str(path), "--variant", "old")
    assert code == 1
    outcomes = data["outcomes"]
    assert isinstance(outcomes, list)
    assert any("lost_write" in o["violations"] for o in outcomes)
    code, _ = explore_json(capsys, str(path), "--variant", "new")
    assert code == 0
    assert main(["diagram", str(path), "--variant", "new", "--schedule", "drv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("R1 with slow GUP (pin)")


def test_a_bad_scenario_file_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(FILE_YAML.replace("mode: pin", "mode: steal"))
    assert main(["explore", str(path)]) == 2
    err = capsys.readouterr().err
    assert "actors[0].ops[0].gup.mode" in err
    assert "get, pin" in err


def test_explore_first_stops_at_a_bug_and_falls_back_when_there_is_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, data = explore_json(capsys, SCENARIO, "--variant", "buggy", "--first")
    assert code == 1 and data["first_bug"] is True and data["interleavings"] == 0
    code, data = explore_json(capsys, SCENARIO, "--variant", "fixed", "--first")
    assert code == 0 and "first_bug" not in data and data["interleavings"] == 1364
    assert main(["explore", SCENARIO, "--variant", "buggy", "--first"]) == 1
    out = capsys.readouterr().out
    assert "first bug found" in out and "lost_write" in out and "--schedule dio," in out


def test_run_and_explore_export(capsys: pytest.CaptureFixture[str]) -> None:
    schedule = ",".join(buggy_example(capsys))
    run = ["run", SCENARIO, "--variant", "buggy", "--schedule", schedule]
    assert main([*run, "--export", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["kind"] == "run" and len(lines) == 1 + len(schedule.split(","))
    assert main([*run, "--export", "perfetto"]) == 0
    events = json.loads(capsys.readouterr().out)["traceEvents"]
    assert {e["name"] for e in events if e["ph"] == "i"} >= {"lost_write"}
    assert main([*run, "--export", "svg"]) == 0
    svg = ET.fromstring(capsys.readouterr().out.encode())
    steps = [e for e in svg.iter("{http://www.w3.org/2000/svg}circle") if e.get("class") == "step"]
    assert len(steps) == len(schedule.split(","))
    assert main(["explore", SCENARIO, "--variant", "buggy", "--export", "jsonl"]) == 1
    outcomes = capsys.readouterr().out.splitlines()
    assert json.loads(outcomes[0])["kind"] == "exploration"
