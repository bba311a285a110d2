"""scripts/test.sh: a run that skipped the browser or Redis tests says so on its last line,
and fails under CI=true; the count comes from tests/conftest.py's summary hook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fake_venv(tmp_path: Path, skipped: int) -> Path:
    """A VENV whose tools succeed at once, and whose pytest reports `skipped` system skips."""
    bin_ = tmp_path / "venv" / "bin"
    bin_.mkdir(parents=True)
    for tool in ("pip", "ruff", "mypy"):
        (bin_ / tool).write_text("#!/bin/sh\nexit 0\n")
    (bin_ / "python").write_text(f'#!/bin/sh\necho {skipped} > "$PAGERACE_SKIP_REPORT"\n')
    for tool in bin_.iterdir():
        tool.chmod(0o755)
    return bin_.parent


def run_test_sh(tmp_path: Path, skipped: int, ci: bool) -> subprocess.CompletedProcess[str]:
    if not (Path("/usr/bin/chromium").exists() and shutil.which("redis-server")):
        pytest.skip("scripts/test.sh would try to apt-get install chromium/redis-server")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "VENV": str(fake_venv(tmp_path, skipped)),
    }
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        ["bash", "scripts/test.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_run_with_skipped_system_tests_says_so_last(tmp_path: Path) -> None:
    done = run_test_sh(tmp_path, skipped=3, ci=False)
    assert done.returncode == 0, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("test: INCOMPLETE: 3 browser/Redis tests skipped"), last


def test_under_ci_skipped_system_tests_fail_the_run(tmp_path: Path) -> None:
    done = run_test_sh(tmp_path, skipped=2, ci=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("test: FAILED: 2 browser/Redis")


def test_a_complete_run_ends_quietly(tmp_path: Path) -> None:
    done = run_test_sh(tmp_path, skipped=0, ci=True)
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stderr


def test_the_conftest_counts_skipped_redis_tests(tmp_path: Path) -> None:
    # Without redis-server on PATH the Redis tests skip (locally); the hook counts them.
    report = tmp_path / "skips"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PAGERACE_REQUIRE_BROWSER")}
    env |= {"PATH": str(tmp_path), "PAGERACE_SKIP_REPORT": str(report)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/app/test_rooms_redis.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout
    assert int(report.read_text()) >= 2
    assert "browser/Redis tests skipped" in done.stdout
