"""The scenario editor's logic: check YAML text, pack it into links, describe the language.

Routes (app/routes/editor.py) only adapt requests to these functions. Nothing here raises for
bad text: every problem becomes a `Problem` with a line (and, for YAML syntax, a column).

Sharing choice: the editor's share link (`/edit?s=`) carries the YAML **text**, not the parsed
document, so a reader sees the author's comments, key order and layout exactly. The packed value
is a zlib-compressed, base64url JSON *string*; the dashboard's `s=` (app/links.py `encode_doc`)
is a JSON *object* (the parsed document, which is what `/s/{id}` needs). `/edit?s=` accepts
both: a string is the text itself, an object (from a dashboard's "Edit a copy") is shown as YAML.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

import engine
from app.links import LinkError, encode_doc, unpack_json
from app.runref import RunRef
from app.urls import APP, Urls
from engine.fixes import DESIGN_RULES, FIXES, NEWEST_KERNEL, OLDEST_KERNEL
from engine.invariants import FATES, VIOLATIONS
from engine.kernel import OPS
from engine.lang.catalog import CATALOG_DIR
from engine.lang.loader import MAX_DOCUMENT
from engine.lang.validate import (
    MACROS,
    MAX_ACTORS,
    MAX_FILES,
    MAX_OPS,
    MAX_SETUP,
    MAX_VARIANTS,
    NAME,
)

# RFC 9110 (section 4.1) asks every HTTP component to take URIs of at least 8000 octets;
# longer links break in proxies, chat apps and mail clients, so the editor refuses to make them.
LINK_LIMIT = 8_000

STARTER = """\
# A pagerace scenario is data, never code. The panel checks it as you
# type and points at the line of every problem; Ctrl+Enter explores
# every interleaving of the actors.
#
# This starter is the MADV_FREE reclaim vs O_DIRECT read race (R1): on
# 5.17 the data the device writes is lost; 5.18 (commit 6c8e2a256915)
# keeps the page. Explore both kernels, then try changing the actors.
id: my-madv-free-race        # lowercase letters, digits and -
title: "My scenario: MADV_FREE reclaim vs O_DIRECT read"
summary: >
  A buffer is written, then freed lazily with MADV_FREE. An O_DIRECT
  read takes a GUP reference and only later marks the page dirty;
  kswapd reclaims the page in between.
tags: [reclaim, gup, dma, madv_free]
variants:                    # the kernel toggle; the first is the default
  buggy: {kernel: "5.17"}    # quote versions: 5.10 would be a number
  fixed: {kernel: "5.18"}
setup:                       # runs alone, in order, before the race
  - write: {addr: buf, value: A}
  - madvise_free: {addr: buf}
actors:                      # interleaved one atomic step at a time
  - name: dio
    label: O_DIRECT read via the block layer
    ops:
      - gup_fast: {addr: buf, mode: get, write: true}  # page stays clean
      - set_page_dirty: {}                             # bio_set_pages_dirty
      - dma_write: {value: B}                          # the read's data
      - put_page: {}                                   # I/O completion
  - name: kswapd
    label: page reclaim
    ops:
      - shrink_folio_list: {addr: buf}
expect:                      # optional: what each kernel should show
  buggy: {violations: [lost_write]}
  fixed: {violations: [], reachable: [page_kept]}
"""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the text, located as precisely as the parser allows."""

    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True, slots=True)
class Links:
    """Where a text can be shared; None (with a reason) when a link would be too long."""

    editor: str | None
    dashboard: str | None
    editor_length: int
    dashboard_length: int
    packed_doc: str | None  # the dashboard's s= value, reused by explore's example links


NO_LINKS = Links(None, None, 0, 0, None)


@dataclass(frozen=True, slots=True)
class Check:
    """The result of checking one text: a scenario, or the problems that stop it."""

    text: str
    size: int  # in UTF-8 bytes
    limit: int
    scenario: engine.Scenario | None
    problems: tuple[Problem, ...]
    variant: str | None  # the chosen variant, if the scenario has it
    kernel: str | None
    links: Links
    wanted: str | None = None  # the variant asked for, kept while the text is invalid

    @property
    def valid(self) -> bool:
        return self.scenario is not None

    @property
    def lines(self) -> int:
        return self.text.count("\n") + (0 if self.text.endswith("\n") else 1)

    @property
    def rows(self) -> int:
        """Rows in the textarea, a last empty one included (the gutter numbers them)."""
        return self.text.count("\n") + 1

    @property
    def bad_lines(self) -> frozenset[int]:
        return frozenset(p.line for p in self.problems if p.line)


def text_limit(max_doc_bytes: int) -> int:
    """The largest text the editor takes: the app's bound or the engine's, whichever is lower."""
    return min(max_doc_bytes, MAX_DOCUMENT)


def normalise(text: str) -> str:
    # Browsers submit textarea line breaks as CRLF; the link and the checks use LF.
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- links ----------------------------------------------------------------------------------


def pack_text(text: str) -> str:
    """The editor's s= value: the text as a JSON string, zlib-compressed, base64url."""
    raw = json.dumps(text, ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")


def unpack(value: str, max_bytes: int) -> str | dict[str, Any]:
    """An editor s= value (the text) or a dashboard one (a document)."""
    data = unpack_json(value, max_bytes)
    if isinstance(data, str | dict):
        return data
    raise LinkError("the link holds neither a scenario text nor a scenario document")


def editor_path(text: str, variant: str | None = None, urls: Urls = APP) -> str:
    return urls.edit(pack_text(text), variant)


def _links(text: str, scenario: engine.Scenario | None, variant: str | None, urls: Urls) -> Links:
    editor = editor_path(text, variant, urls)
    dashboard: str | None = None
    packed_doc: str | None = None
    if scenario is not None:
        packed_doc = encode_doc(scenario.document)
        params = RunRef(variant=variant, digest=scenario.digest, packed=packed_doc)
        dashboard = urls.page(scenario.id, params)
    return Links(
        editor=editor if len(editor) <= LINK_LIMIT else None,
        dashboard=dashboard if dashboard and len(dashboard) <= LINK_LIMIT else None,
        editor_length=len(editor),
        dashboard_length=len(dashboard or ""),
        packed_doc=packed_doc,
    )


def example_path(
    scenario: engine.Scenario,
    packed_doc: str,
    variant: str | None,
    schedule: Sequence[str],
    urls: Urls = APP,
) -> str | None:
    """The dashboard at the end of `schedule`, or None when that link would be too long."""
    example = tuple(schedule)
    params = RunRef(
        variant=variant,
        schedule=example,
        at=len(example),
        digest=scenario.digest,
        packed=packed_doc,
    )
    path = urls.page(scenario.id, params)
    return path if len(path) <= LINK_LIMIT else None


# --- text in, text out ----------------------------------------------------------------------


def source_text(catalog: Mapping[str, engine.Scenario], scenario_id: str) -> str | None:
    """A catalog scenario's YAML file as written (comments kept), or its document as YAML."""
    scenario = catalog.get(scenario_id)
    if scenario is None:
        return None
    path = _catalog_files().get(scenario_id)
    text = _read(path) if path else None
    return text if text is not None else document_text(scenario.document)


@lru_cache(maxsize=1)
def _catalog_files() -> dict[str, Path]:
    """Catalog id -> its YAML file; read once (the files ship with the package)."""
    found: dict[str, Path] = {}
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        text = _read(path)
        scenario_id = _id_of(text) if text is not None else None
        if isinstance(scenario_id, str):
            found.setdefault(scenario_id, path)
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _id_of(text: str) -> object:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return doc.get("id") if isinstance(doc, dict) else None


def document_text(document: Mapping[str, Any]) -> str:
    """A scenario document as YAML in the catalog's style (leaf mappings inline)."""
    return yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
    )


# --- checking -------------------------------------------------------------------------------


def _yaml_problem(text: str) -> Problem | None:
    """The YAML syntax error with its line and column, or None if the text parses."""
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = err.problem or err.context or "not valid YAML"
        if err.context and err.context_mark and err.problem:
            message += f" ({err.context} on line {err.context_mark.line + 1})"
        if "'\\t'" in message:
            message += "; YAML indents with spaces, not tabs"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        return Problem(f"YAML syntax: {message}", "", line, column)
    except yaml.YAMLError as err:
        return Problem(f"YAML syntax: {err}")
    except RecursionError:
        return _too_deep()
    except (ValueError, OverflowError, AttributeError, KeyError, TypeError):
        # PyYAML's own failures ("\U0011FFFF", "!!timestamp junk"): not a syntax error it
        # can place, and engine.load_scenario_text already said what is wrong.
        return None
    return None


def _too_deep() -> Problem:
    return Problem("YAML syntax: nested too deeply to read; a scenario needs a few levels only")


def _parse(text: str) -> tuple[engine.Scenario | None, tuple[Problem, ...]]:
    try:
        return engine.load_scenario_text(text), ()
    except RecursionError:
        return None, (_too_deep(),)
    except engine.ScenarioError as err:
        problems = [Problem(e.message, e.path, e.line) for e in err.errors]
    # In line order (review M10: line 9 was listed before line 6); those without a line last.
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    if any(not p.path and p.line for p in problems):
        # A document-level error with a line is YAML syntax: ask the parser for the column too.
        syntax = _yaml_problem(text)
        if syntax is not None:
            return None, (syntax,)
    return None, tuple(problems)


def _oversize(size: int, limit: int) -> Problem:
    return Problem(
        f"the text is {size:,} bytes; the editor takes at most {limit:,} bytes "
        f"({limit // 1024} KB). Shorten it (comments count too)."
    )


def check_text(
    text: str, max_doc_bytes: int, variant: str | None = None, urls: Urls = APP
) -> Check:
    """Check `text` as a scenario and work out its links (made by `urls`); never raises."""
    text = normalise(text)
    size, limit = len(text.encode()), text_limit(max_doc_bytes)
    scenario: engine.Scenario | None = None
    if size > limit:
        problems: tuple[Problem, ...] = (_oversize(size, limit),)
    elif not text.strip():
        problems = (Problem("the text is empty: write a scenario, or start from the catalog"),)
    else:
        scenario, problems = _parse(text)
    wanted = variant if variant and NAME.match(variant) else None
    chosen, kernel = _variant(scenario, wanted)
    links = _links(text, scenario, chosen or wanted, urls) if size <= limit else NO_LINKS
    return Check(text, size, limit, scenario, problems, chosen, kernel, links, chosen or wanted)


def _variant(scenario: engine.Scenario | None, wanted: str | None) -> tuple[str | None, str | None]:
    if scenario is None:
        return None, None
    names = [v.name for v in scenario.variants]
    chosen = wanted if wanted in names else (names[0] if names else None)
    return chosen, engine.make_config(scenario, variant=chosen).kernel


# --- what the panel says --------------------------------------------------------------------


def summary(scenario: engine.Scenario, kernel: str | None) -> str:
    """'2 actors, 5 ops (+2 in setup), variants buggy (5.17), fixed (5.18)'."""
    actors = len(scenario.actors)
    ops = sum(len(actor.ops) for actor in scenario.actors)
    parts = [f"{actors} actor{'s' if actors != 1 else ''}", f"{ops} op{'s' if ops != 1 else ''}"]
    if scenario.setup:
        parts[-1] += f" (+{len(scenario.setup)} in setup)"
    if scenario.variants:
        shown = ", ".join(f"{v.name} ({v.kernel})" for v in scenario.variants)
        parts.append(f"variant{'s' if len(scenario.variants) > 1 else ''} {shown}")
    else:
        parts.append(f"no variants: kernel {kernel} (every fix on)")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class OpHelp:
    name: str
    params: tuple[tuple[str, bool, str], ...]  # (name, required, allowed values)
    doc: str

    @property
    def doc_parts(self) -> tuple[str, ...]:
        """The doc split at backticks: every odd part is code."""
        return tuple(self.doc.split("`"))


@dataclass(frozen=True, slots=True)
class SwitchHelp:
    name: str
    commit: str
    releases: str  # "5.8 (reverted in 5.9)"; "design rule" for rules every kernel has
    effect: str


def switch_reference() -> tuple[SwitchHelp, ...]:
    """Every fix switch with the mainline releases that carry it, then the design rules."""
    fixes = [SwitchHelp(f.name, f.commit, f.releases, f.effect) for f in FIXES.values()]
    rules = [SwitchHelp(f.name, "", "design rule", f.effect) for f in DESIGN_RULES.values()]
    return (*fixes, *rules)


@dataclass(frozen=True, slots=True)
class NamingHelp:
    """What the checker accepts where the op table says nothing: names, kernels, `expect`."""

    violations: tuple[str, ...]
    outcomes: tuple[str, ...]
    oldest_kernel: str
    newest_kernel: str
    limits: tuple[tuple[str, int], ...]


def naming_reference() -> NamingHelp:
    # From the checker's own tables, so the reference cannot drift from what it enforces.
    return NamingHelp(
        violations=VIOLATIONS,
        outcomes=FATES,
        oldest_kernel=OLDEST_KERNEL,
        newest_kernel=NEWEST_KERNEL,
        limits=(
            ("actors", MAX_ACTORS),
            ("ops per actor", MAX_OPS),
            ("setup ops", MAX_SETUP),
            ("files", MAX_FILES),
            ("variants", MAX_VARIANTS),
        ),
    )


def op_reference() -> tuple[OpHelp, ...]:
    """Every operation and macro with its parameters, for the editor's reference table."""
    rows = [
        OpHelp(
            name,
            tuple((p.name, p.required, "|".join(p.choices)) for p in kind.params),
            kind.doc,
        )
        for name, kind in OPS.items()
    ]
    for name, parts in MACROS.items():
        params = (("addr", True, ""), ("value", True, ""), ("proc", False, ""))
        rows.append(OpHelp(name, params, "Macro: " + " + ".join(kind for kind, _ in parts) + "."))
    return tuple(sorted(rows, key=lambda row: row.name))
