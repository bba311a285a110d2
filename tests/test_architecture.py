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


def engine_imports(path: Path) -> set[str]:
    """The engine names (dotted: engine.kernel.refs, engine.model.Model) a file imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("engine"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("engine"):
            found.add(str(node.module))
            # `from engine.kernel import refs` imports the module engine.kernel.refs
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


KERNEL = sorted((ENGINE / "kernel").glob("*.py"))
LANG = sorted((ENGINE / "lang").glob("*.py"))
# What the kernel paths may build on: the world's values, the fixes and each other.
KERNEL_MAY_IMPORT = ("engine.state", "engine.fixes", "engine.errors", "engine.kernel")
# The language knows the ops' declarations (to validate them), never the checker.
LANG_MAY_IMPORT = (*KERNEL_MAY_IMPORT, "engine.invariants", "engine.lang")


def outside(imported: set[str], allowed: tuple[str, ...]) -> list[str]:
    return sorted(
        m
        for m in imported
        if m != "engine" and not any(m == a or m.startswith(a + ".") for a in allowed)
    )


@pytest.mark.parametrize("path", KERNEL, ids=[p.name for p in KERNEL])
def test_kernel_paths_know_neither_the_language_nor_the_checker(path: Path) -> None:
    assert not outside(engine_imports(path), KERNEL_MAY_IMPORT), package_of(path)


@pytest.mark.parametrize("path", LANG, ids=[p.name for p in LANG])
def test_the_language_knows_the_ops_but_not_the_checker(path: Path) -> None:
    assert not outside(engine_imports(path), LANG_MAY_IMPORT), package_of(path)


def test_the_layer_scanner_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from engine.kernel import refs\nfrom engine.model import Model\n")
    assert outside(engine_imports(bad), KERNEL_MAY_IMPORT) == ["engine.model", "engine.model.Model"]
    assert engine_imports(bad) >= {"engine.kernel.refs"}


ROUTES = sorted((ROOT / "app" / "routes").glob("*.py"))


def route_imports(path: Path) -> list[int]:
    """Lines of `path` that import a module of app.routes."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        if any(n.startswith("app.routes") for n in names):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "path",
    ROUTES,
    ids=[p.name for p in ROUTES],
)
def test_routes_import_no_other_route(path: Path) -> None:
    assert not route_imports(path), f"{path.name} imports another route"


# --- one URL builder (app/urls.py) -----------------------------------------------------------

TEMPLATES = sorted((ROOT / "templates").glob("*.html"))
APP_SOURCES = sorted((ROOT / "app").rglob("*.py"))
# A literal app path in a template attribute, a URL rewritten with `replace`, or a root
# prefix added by hand: every one of these is a URL made outside app/urls.py.
HAND_MADE_IN_TEMPLATE = (
    '="/',
    "{{ root }}",
    "|replace('/",
    '|replace("/',
)
# In Python, an f-string or string starting a dashboard, frame, live or edit path.
HAND_MADE_IN_PYTHON = ('f"/s/', "f'/s/", '"/s/', 'f"/live/', '"/edit?', "/frame?", "/outcomes?")


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.name for p in TEMPLATES])
def test_templates_make_no_url(path: Path) -> None:
    text = path.read_text()
    for made in HAND_MADE_IN_TEMPLATE:
        assert made not in text, f"{path.name} makes a URL by hand ({made!r}): use `urls`"


@pytest.mark.parametrize(
    "path",
    [p for p in APP_SOURCES if p.name != "urls.py"],
    ids=[str(p.relative_to(ROOT)) for p in APP_SOURCES if p.name != "urls.py"],
)
def test_only_urls_py_makes_paths(path: Path) -> None:
    # Route declarations name their own paths; that is where paths are defined, not made.
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("@")]
    for made in HAND_MADE_IN_PYTHON:
        for line in lines:
            assert made not in line, f"{path.relative_to(ROOT)} makes a path by hand: {line}"
