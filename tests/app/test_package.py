"""pagerace as a package: the built wheel serves everything outside the checkout; CLI and /healthz.

The wheel test builds from a copy of the sources (so no build/ or egg-info lands in the checkout),
installs the wheel with --no-deps into a fresh venv in a temporary folder, and makes the
dependencies importable through a .pth line naming this interpreter's site-packages. A path
added by a .pth line is not itself a site directory, so the editable install's own .pth finder
is not run there: `app` and `engine` can only come from the wheel (checked).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import __version__
from app.cli import parser
from scripts.servers import stop

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "engine", "app", "static", "templates")
IN_CI = os.environ.get("CI") == "true"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        status: int = resp.status
        return status, resp.read()


def build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    # Isolated build: pip fetches setuptools>=77 (from its cache or PyPI).
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )
    wheels = list(dist.glob("pagerace-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        reason = f"pip wheel failed (rc {result.returncode}): {result.stderr[-2000:]}"
        if IN_CI:
            pytest.fail(reason)  # in CI a packaging test that never ran must not pass
        pytest.skip(reason)
    return wheels[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv outside the checkout with only the wheel installed (dependencies via .pth)."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "pagerace-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        env=clean_env(),
        timeout=60,
    )
    return venv


def run_in(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=venv.parent,  # outside the checkout: the working folder must not help imports
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def served(installed: Path) -> Iterator[str]:
    port = free_port()
    log = (installed.parent / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(installed / "bin" / "pagerace"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=installed.parent,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                fetch(base + "/healthz")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    output = (installed.parent / "serve.log").read_text()
                    pytest.fail(f"pagerace serve did not come up:\n{output[-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        stop(proc)
        log.close()


@pytest.mark.package
def test_the_installed_wheel_imports_only_from_its_venv(installed: Path) -> None:
    code = "import app, engine; print(app.__file__); print(engine.__file__)"
    result = run_in(installed, "python", "-c", code)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.split():
        assert Path(line).is_relative_to(installed), line


@pytest.mark.package
def test_the_installed_wheel_serves_pages_static_files_and_docs(served: str) -> None:
    status, page = fetch(served + "/")
    assert status == 200 and b"madv-free-vs-dio" in page  # the catalog, from the wheel
    status, css = fetch(served + "/static/app.css")
    assert status == 200 and css == (ROOT / "static" / "app.css").read_bytes()
    status, js = fetch(served + "/static/vendor/htmx-2.0.11.min.js")
    assert status == 200 and len(js) > 10_000
    status, docs = fetch(served + "/docs")
    assert status == 200 and b"swagger-ui-bundle.js" in docs
    status, health = fetch(served + "/healthz")
    assert status == 200 and b'"status":"ok"' in health


@pytest.mark.package
def test_the_installed_wheel_reports_its_metadata_version(installed: Path) -> None:
    result = run_in(installed, "pagerace", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pagerace {version('pagerace')}"


def test_version_is_the_package_metadata() -> None:
    assert __version__ == version("pagerace")
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["--version"])
    assert exc.value.code == 0


def test_healthz_answers_ok_with_the_version(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "version": __version__}
    assert client.head("/healthz").status_code == 200


def test_list_into_a_closed_pipe_ends_quietly() -> None:
    # The reader is gone before pagerace writes, as with `pagerace list | head -1` on a long list.
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "list"],
            cwd=ROOT,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 0


def parsers() -> list[argparse.ArgumentParser]:
    top = parser()
    found = [top]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.extend(action.choices.values())
    return found


@pytest.mark.parametrize("p", parsers(), ids=lambda p: p.prog)
def test_every_option_has_help_and_the_epilog_names_the_exit_codes(
    p: argparse.ArgumentParser,
) -> None:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help"
    text = p.format_help()
    for code in ("0  success", "1  explore", "2  bad input"):
        assert code in text, p.prog


def test_setup_replaces_a_venv_without_pip(tmp_path: Path) -> None:
    # A half-made venv (python but no pip, as `python3 -m venv` leaves it without python3-venv).
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    # PYTHON=false: creating the new venv fails, so nothing is downloaded; the advice is shown.
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh")],
        env={**clean_env(), "VENV": str(venv), "PYTHON": "false"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "incomplete" in result.stderr and "python3-venv" in result.stderr, result.stderr
    assert not venv.exists()  # the next run starts from scratch instead of failing on bin/pip


@pytest.mark.parametrize("depth", [300, 5000])
def test_deep_json_is_named_body_on_every_python(client: TestClient, depth: int) -> None:
    # 300 levels parse on every Python (as 5000 do on 3.12+, whose json scanner no longer stops
    # at the recursion limit): the answer must still name the body, not `scenario.str`.
    content = b'{"scenario":' + b"[" * depth + b"]" * depth + b"}"
    resp = client.post("/api/run", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    errors = resp.json()["errors"]
    assert [e["path"] for e in errors] == ["body"]
    assert "nested too deeply" in errors[0]["message"]
