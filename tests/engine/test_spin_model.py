"""The Promela model of the growth family (scripts/spin/growth.py, issue 14's SPIN comparison).

The text is checked everywhere; where `spin` is installed it must accept the model, and
where gcc is too, SPIN's unreduced state space must be pagerace's (symmetry off) plus one
state per end state, with the same verdict. The CI has no SPIN: those tests skip there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import engine
from engine.lang import parse_scenario
from scripts.bench_engine import family
from scripts.spin.growth import MAX_ACTORS, MIN_ACTORS, model, values

SIZES = (2, 3, 4)
needs_spin = pytest.mark.skipif(shutil.which("spin") is None, reason="spin is not installed")
needs_pan = pytest.mark.skipif(
    shutil.which("spin") is None or shutil.which("gcc") is None,
    reason="spin or gcc is not installed",
)


@pytest.mark.parametrize("n", SIZES)
def test_the_model_has_every_actor_and_step(n: int) -> None:
    text = model(n)
    assert f"#define NDIO {n - 1}\n" in text
    assert "active [NDIO] proctype dio()" in text
    assert "active proctype kswapd()" in text
    assert "active proctype check()" in text
    for value in values(n):
        assert f"#define V{value} " in text
    # One d_step per pagerace step: 7 for a dio, 7 for kswapd, 1 for the end-of-run check.
    assert text.count("d_step {") == 15
    for step in (
        "ptep_get_lockless",
        "try_grab_folio",
        "ptep_get",
        "follow_page_pte",
        "handle_mm_fault",
        "dma_write",
        "put_page",
        "isolate_lru_folio",
        "folio_trylock",
        "folio_check_references",
        "ptep_get_and_clear",
        "try_to_unmap_one",
        "folio_ref_freeze",
        "free_unref_page_list",
        "folio_putback_lru",
    ):
        assert step in text, step
    assert text.count("{") == text.count("}")


@pytest.mark.parametrize("n", [MIN_ACTORS - 1, MAX_ACTORS + 1])
def test_an_actor_count_out_of_range_is_refused_by_name(n: int) -> None:
    with pytest.raises(ValueError, match="actors"):
        model(n)


@needs_spin
@pytest.mark.parametrize("n", SIZES)
def test_spin_accepts_the_model(n: int, tmp_path: Path) -> None:
    (tmp_path / "growth.pml").write_text(model(n))
    done = subprocess.run(
        ["spin", "-a", "growth.pml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in (done.stdout + done.stderr).lower()
    assert (tmp_path / "pan.c").is_file()


def pan(n: int, work: Path) -> tuple[int, int, int]:
    """SPIN's full unreduced search: (states stored, transitions, assertion violations)."""
    (work / "growth.pml").write_text(model(n))
    subprocess.run(["spin", "-a", "growth.pml"], cwd=work, check=True, capture_output=True)
    subprocess.run(
        ["gcc", "-O0", "-DSAFETY", "-DNOREDUCE", "-o", "pan", "pan.c"],
        cwd=work,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        ["./pan", "-c0"], cwd=work, check=True, capture_output=True, text=True
    ).stdout
    found = [
        re.search(pattern, out)
        for pattern in (r"(\d+) states, stored", r"(\d+) transitions", r"errors: (\d+)")
    ]
    assert all(found), out
    states, transitions, errors = (int(m.group(1)) for m in found if m)
    # Only the lost-write check fails: no deadlock, use after free, underflow or leak.
    violated = re.findall(r"assertion violated (.*) \(at depth", out)
    assert violated and all("allowed" in v for v in violated), out
    return states, transitions, errors


@needs_pan
@pytest.mark.parametrize("n", (2, 3))
def test_spin_explores_pagerace_s_state_space(n: int, tmp_path: Path) -> None:
    sc = parse_scenario(family(n))
    exp = engine.explore(sc, engine.make_config(sc, kernel="5.17"), symmetry=False)
    states, transitions, errors = pan(n, tmp_path)
    ends = states - exp.states  # the check process's one move on each end state
    assert ends > 0
    # pan counts its initial state as a transition too.
    assert transitions == exp.transitions + ends + 1
    reachable = {v for o in exp.outcomes for v in o.violations}
    assert reachable == {"lost_write"}
    assert errors > 0
