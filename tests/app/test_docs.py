"""docs/: the generated pages are current, the settings page covers every PAGERACE_* variable,
and every link in the README and docs/ stays inside the project and leads somewhere."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from engine.fixes import DESIGN_RULES, FIXES
from engine.invariants import FATES, VIOLATIONS
from engine.kernel.machine import OPS, OpKind
from engine.lang.validate import MACROS
from scripts import gen_docs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", sorted(gen_docs.PAGES))
def test_the_generated_page_is_current(page: str) -> None:
    if page == "cli.md" and sys.version_info[:2] != gen_docs.CLI_PYTHON:
        # argparse lays help out differently from one Python to the next (3.13 changed it).
        pytest.skip(f"docs/cli.md is written by Python {'.'.join(map(str, gen_docs.CLI_PYTHON))}")
    text = gen_docs.PAGES[page]()
    assert (DOCS / page).read_text() == text, (
        f"docs/{page} is stale: run python scripts/gen_docs.py"
    )


def test_the_check_notices_a_new_operation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gen_docs.main(["--check"]) == 0
    spare = OPS["put_page"]
    monkeypatch.setitem(OPS, "zz_new_op", OpKind("zz_new_op", (), ("f",), "New.", spare.run))
    assert gen_docs.main(["--check"]) == 1
    assert "stale: scenario-language.md" in capsys.readouterr().err


def test_the_language_reference_names_everything_the_engine_accepts() -> None:
    text = (DOCS / "scenario-language.md").read_text()
    for name in [*OPS, *MACROS, *FIXES, *DESIGN_RULES, *VIOLATIONS, *FATES]:
        assert f"`{name}`" in text, name
    for fix in FIXES.values():
        assert f"| `{fix.name}` | " in text and fix.releases in text, fix.name
        assert not fix.commit or f"`{fix.commit}`" in text, fix.name
    for kind in OPS.values():
        for step in kind.steps:
            assert f"`{step}`" in text, (kind.name, step)


def test_the_cli_page_has_every_option() -> None:
    text = (DOCS / "cli.md").read_text()
    for option in ("--workers", "--root-path", "--forwarded-allow-ips", "--public-url"):
        assert option in text
    for option in ("--scenarios", "--log-level", "--log-json", "--schedule", "--max-states"):
        assert option in text


def test_settings_page_covers_every_pagerace_variable() -> None:
    used = set()
    for path in (ROOT / "app").rglob("*.py"):
        used |= set(re.findall(r'"(PAGERACE_[A-Z0-9_]+)"', path.read_text()))
    documented = set(re.findall(r"`(PAGERACE_[A-Z0-9_]+)`", (DOCS / "settings.md").read_text()))
    assert used - documented == set(), "undocumented settings"
    tests_only = {"PAGERACE_REQUIRE_BROWSER"}
    assert documented - used - tests_only == set(), "documented settings nothing reads"


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in DOCS.glob("*.md"))], ids=str)
def test_links_stay_in_the_project_and_resolve(page: str) -> None:
    path = ROOT / page if page == "README.md" else DOCS / page
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        file = (path.parent / target.split("#", 1)[0]).resolve()
        assert file.is_relative_to(ROOT), f"{page} links outside the project: {target}"
        assert file.exists(), f"{page} links to {target}, which does not exist"


def test_the_readme_points_into_docs_not_outside() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "../" not in readme
    for page in (
        "scenario-language.md",
        "cli.md",
        "api.md",
        "settings.md",
        "deploy.md",
        "notebook.md",
    ):
        assert f"(docs/{page})" in readme, page
