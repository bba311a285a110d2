"""The engine is a pure library: nothing under engine/ imports the web stack or the app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
FORBIDDEN = frozenset(
    {"fastapi", "starlette", "uvicorn", "jinja2", "plotly", "pydantic", "app", "httpx", "redis"}
)
SOURCES = sorted(ENGINE.rglob("*.py"))


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level package) for every import, including ones inside functions."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", ""))
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def test_engine_sources_exist() -> None:
    assert ENGINE / "__init__.py" in SOURCES
    assert len(SOURCES) > 10


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_engine_module_imports_no_web_stack(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {mod}"
        for line, mod in imported_modules(tree)
        if mod in FORBIDDEN
    ]
    assert not bad, "\n".join(bad)


def test_the_scanner_catches_forbidden_imports() -> None:
    code = (
        "import fastapi\nfrom app.cli import main\nfrom engine import x\n"
        "def f():\n    import jinja2.ext\n    __import__('redis')\n"
    )
    mods = [m for _, m in imported_modules(ast.parse(code)) if m in FORBIDDEN]
    assert mods == ["fastapi", "app", "jinja2", "redis"]
