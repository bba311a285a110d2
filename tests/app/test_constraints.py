"""The dependency pins: exact versions in constraints.txt (the lock) and requirements*.txt,
ranges in pyproject.toml that admit them, and no runtime dependency the code never imports."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # one exact pin per line
        assert spec.operator == "==", f"{name}: {line} is not an exact pin"
        found[canonicalize_name(req.name)] = spec.version
    return found


LOCK = pins("constraints.txt")


def test_requirements_pin_what_the_lock_pins() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        for package, version in pins(name).items():
            assert LOCK.get(package) == version, f"{name}: {package}=={version}, lock {LOCK}"


def test_pyproject_ranges_admit_the_locked_versions() -> None:
    extras = [r for group in PYPROJECT["optional-dependencies"].values() for r in group]
    for text in [*PYPROJECT["dependencies"], *extras]:
        req = Requirement(text)
        package = canonicalize_name(req.name)
        if package == "pagerace":
            continue  # pagerace[redis] inside [dev]
        assert package in LOCK, f"{text} is not in constraints.txt"
        assert req.specifier.contains(LOCK[package]), f"{text} refuses the locked {LOCK[package]}"
        assert not any(s.operator == "==" for s in req.specifier), f"{text}: a range, not a pin"


def test_the_lock_covers_every_runtime_dependency_of_the_dependencies() -> None:
    # A lock that leaves out a transitive package (starlette, pydantic-core...) pins nothing.
    for package in ("starlette", "pydantic-core", "anyio", "h11", "markupsafe", "click"):
        assert package in LOCK, package


def test_every_runtime_dependency_is_imported() -> None:
    # The plotly Python package was a dependency nothing imported (63 MB); only the tests use
    # it now, to validate the figure dicts, so it belongs to [dev].
    imports = {"pyyaml": "yaml", "uvicorn": "uvicorn", "jinja2": "jinja2"}
    sources = "\n".join(p.read_text() for p in (ROOT / "app").rglob("*.py"))
    sources += "\n".join(p.read_text() for p in (ROOT / "engine").rglob("*.py"))
    for text in PYPROJECT["dependencies"]:
        package = canonicalize_name(Requirement(text).name)
        module = imports.get(package, package.replace("-", "_"))
        if package == "jinja2":
            continue  # loaded by fastapi.templating.Jinja2Templates
        assert re.search(rf"^\s*(import|from) {module}\b", sources, re.MULTILINE), package
    assert "plotly" not in {
        canonicalize_name(Requirement(t).name) for t in PYPROJECT["dependencies"]
    }
