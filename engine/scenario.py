"""Scenario language v1: declarative documents, validated with errors that name the path.

A scenario is data (YAML in the catalog, JSON over the API); nothing in it is
ever executed. Every error names the offending path, e.g.
`actors[1].ops[0].gup_fast.mode`, and says what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.fixes import NEWEST_KERNEL, SWITCHES, valid_kernel
from engine.machine import Param
from engine.ops import OPS

VIOLATIONS = (
    "lost_write",
    "use_after_free",
    "refcount_underflow",
    "bad_freeze",
    "data_leak",
    "kernel_bug",
    "page_leak",
    "deadlock",
)
LABELS = ("page_freed", "page_kept", "page_swapped", "page_migrated")
# What each name means, for the documentation (scripts/gen_docs.py) and anyone reading results.
VIOLATION_HELP: Mapping[str, str] = {
    "lost_write": "a read, or the final observation of an address or file, sees a value "
    "that is not allowed there: a CPU store or DMA write was lost, or a stale page was read",
    "use_after_free": "a CPU, DMA, GUP or kernel access to a freed page or to a page "
    "reallocated to another owner (a failed try-get on a freed page is not an access)",
    "refcount_underflow": "a page's refcount went below zero",
    "bad_freeze": "folio_ref_freeze succeeded while references other than the expected "
    "ones were held",
    "data_leak": "a process observes a value written by or for another process (after fork)",
    "kernel_bug": "a state the kernel would BUG or warn on, e.g. writeback of a dirty file "
    "page without buffers",
    "page_leak": "at the end, a page that is not free has references but nobody holds them",
    "deadlock": "no actor can take a step, but not every actor has finished",
}
LABEL_HELP: Mapping[str, str] = {
    "page_freed": "the scenario's first page was freed (`page_freed: reused by X` when it "
    "was then allocated again)",
    "page_kept": "the page is still in use; the detail says whether it is mapped and what "
    "it is (`page_kept: mapped, swap-backed anon`, `lazyfree`, `page cache`, `off the cache`)",
    "page_swapped": "the page was freed after its data reached a swap slot that a PTE still "
    "points to (`page_swapped: still in the swap cache` while the page stays cached)",
    "page_migrated": "the page was migrated: its mappings now point to a new page",
}
MAX_ACTORS = 5
MAX_OPS = 12
MAX_SETUP = 12
MAX_FILES = 4
# Each variant is a kernel to replay and a link per page (with the whole s= of a custom
# scenario in it): 4,800 variants made one 44 KB link a 426 MB page. The catalog uses 3.
MAX_VARIANTS = 8
MAX_TEXT = 2000
# A scenario is a few hundred values a few levels deep. YAML aliases can make a small text
# stand for an enormous (or recursive) document: documents are measured as expanded.
MAX_NODES = 20_000
MAX_DEPTH = 32
ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,23}$")
VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
TOP_KEYS = (
    "id",
    "title",
    "summary",
    "tags",
    "refs",
    "variants",
    "files",
    "setup",
    "actors",
    "expect",
)
DEVICE_OPS = ("dma_write", "dma_read", "set_page_dirty", "put_page", "unpin")
GUP_OPS = ("gup", "gup_fast", "vmsplice")
MACROS: dict[str, tuple[str, ...]] = {
    "dio_read": ("gup_fast", "set_page_dirty", "dma_write", "put_page"),
}


@dataclass(frozen=True, slots=True)
class ErrorItem:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path}{where}: {self.message}"


class ScenarioError(ValueError):
    """A scenario document that does not follow the language; `.errors` lists every problem."""

    def __init__(self, errors: list[ErrorItem]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Ref:
    commit: str
    title: str
    version: str


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    kernel: str
    fixes: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Op:
    kind: str
    params: Mapping[str, object]
    text: str
    steps: tuple[str, ...]
    macro: str | None = None


@dataclass(frozen=True, slots=True)
class ActorSpec:
    name: str
    label: str
    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class Expect:
    violations: tuple[str, ...]
    reachable: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    summary: str
    tags: tuple[str, ...]
    refs: tuple[Ref, ...]
    variants: tuple[Variant, ...]
    files: Mapping[str, str]
    setup: tuple[Op, ...]
    actors: tuple[ActorSpec, ...]
    expect: Mapping[str, Expect]
    document: Mapping[str, Any]
    digest: str  # 48 bits, for display and links: collisions are findable in seconds
    # The full SHA-256 of the canonical document: what every cache keys on.
    sha256: str = ""

    def variant(self, name: str) -> Variant | None:
        for v in self.variants:
            if v.name == name:
                return v
        return None


def sha256_of(document: Mapping[str, Any]) -> str:
    """The full SHA-256 of the canonical document (sorted keys, compact)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest_of(document: Mapping[str, Any]) -> str:
    """The short (48-bit) digest shown to people and carried in links' d=."""
    return sha256_of(document)[:12]


PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def key_path(path: str, key: object) -> str:
    """`path.key`, or `path["key"]` for a key that is not a plain name ("", "a.b", "x[")."""
    name = str(key)
    if PLAIN_KEY.match(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


class _Checker:
    """Collects errors while walking a document."""

    def __init__(self, lines: Mapping[str, int]) -> None:
        self.errors: list[ErrorItem] = []
        self.lines = lines

    def err(self, path: str, message: str) -> None:
        line = self.lines.get(path)
        parent = path
        while line is None and self.lines:
            # The nearest enclosing path with a line. A key may itself contain "." or "[",
            # so stop when nothing more can be cut (this used to loop forever on "a.").
            shorter = re.sub(r'(\.[^.\[]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$', "", parent)
            if shorter == parent:
                break
            parent = shorter
            line = self.lines.get(parent)
        self.errors.append(ErrorItem(path, message, line))

    def mapping(self, value: object, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            keys = f" with keys {', '.join(allowed)}" if allowed else ""
            self.err(path, f"must be a mapping{keys}")
            return {}
        for key in value:
            if str(key) not in allowed:
                self.err(key_path(path, key), f"unknown key; allowed: {', '.join(allowed)}")
        return {str(k): v for k, v in value.items()}

    def text(self, value: object, path: str, limit: int = 200, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.err(path, "must be a non-empty string")
            return ""
        if len(value) > limit:
            self.err(path, f"is {len(value)} characters; at most {limit} allowed")
        return value

    def seq(self, value: object, path: str, limit: int) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, "must be a list")
            return []
        if len(value) > limit:
            self.err(path, f"has {len(value)} entries; at most {limit} allowed")
            return value[:limit]
        return value

    def value(self, raw: object, path: str) -> str:
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            self.err(path, 'must be a short string such as A or "B" (quote yes/no/on/off)')
            return "?"
        text = str(raw)
        if not VALUE.match(text):
            self.err(path, "must be 1-16 characters of letters, digits, _ . -")
        return text


def op_text(kind: str, params: Mapping[str, object]) -> str:
    shown = []
    for key, value in params.items():
        if value is True:
            shown.append(key)
        elif value is False or value is None:
            continue
        elif key in ("addr", "file", "mode", "value", "child", "owner"):
            shown.append(str(value))
        else:
            shown.append(f"{key}={value}")
    return f"{kind}({', '.join(shown)})"


def _param(
    c: _Checker, spec: Param, raw: object, path: str, files: Mapping[str, str], procs: set[str]
) -> object:
    if spec.kind == "bool":
        if not isinstance(raw, bool):
            c.err(path, "must be true or false")
        return bool(raw)
    if spec.kind == "choice":
        if raw not in spec.choices:
            c.err(path, f"{raw!r} is not allowed; allowed: {', '.join(spec.choices)}")
        return raw
    if spec.kind == "value":
        return c.value(raw, path)
    text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not NAME.match(text):
        c.err(path, "must be a name: lowercase letters, digits and _, starting with a letter")
    if spec.kind == "file" and text and text not in files:
        known = ", ".join(files) or "none declared"
        c.err(path, f"unknown file {text!r}; declared files: {known}")
    if spec.kind == "proc" and text and text not in procs:
        c.err(path, f"unknown process {text!r}; known: {', '.join(sorted(procs))}")
    return text


def _ops(
    c: _Checker,
    raw: object,
    path: str,
    files: Mapping[str, str],
    procs: set[str],
    limit: int,
    setup: bool,
) -> tuple[Op, ...]:
    ops: list[Op] = []
    last_gup: str | None = None
    for i, item in enumerate(c.seq(raw, path, limit)):
        p = f"{path}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            c.err(
                p,
                "must be a mapping with exactly one operation, e.g. {write: {addr: buf, value: A}}",
            )
            continue
        kind, args = next(iter(item.items()))
        kind = str(kind)
        op_path = key_path(p, kind)
        if kind in MACROS:
            expanded = _macro(c, kind, args, op_path, files, procs)
            ops.extend(expanded)
            last_gup = "get"
            continue
        spec = OPS.get(kind)
        if spec is None:
            allowed = ", ".join([*OPS, *MACROS])
            c.err(op_path, f"unknown operation; allowed: {allowed}")
            continue
        if spec.setup_only and not setup:
            c.err(op_path, "is only allowed in setup")
        if setup and (kind in DEVICE_OPS or kind in GUP_OPS or kind == "read_pipe"):
            c.err(op_path, "needs an actor to hold the page; not allowed in setup")
        names = tuple(s.name for s in spec.params)
        args = c.mapping(args, op_path, names)
        params: dict[str, object] = {}
        for s in spec.params:
            if s.name in args:
                params[s.name] = _param(c, s, args[s.name], f"{op_path}.{s.name}", files, procs)
            elif s.required:
                c.err(f"{op_path}.{s.name}", "is required")
        if kind == "shrink_folio_list" and ("addr" in params) == ("file" in params):
            c.err(op_path, "needs exactly one of addr or file")
        if kind in GUP_OPS:
            last_gup = "pipe" if kind == "vmsplice" else str(params.get("mode", "get"))
        need = {"put_page": "get", "unpin": "pin", "read_pipe": "pipe"}.get(kind)
        if kind in DEVICE_OPS or need:
            if last_gup is None:
                c.err(
                    op_path,
                    "acts on the page this actor obtained with gup, gup_fast or "
                    "vmsplice, but no such op comes before it in this actor",
                )
            elif need and last_gup != need:
                c.err(
                    op_path,
                    f"the last GUP of this actor used mode {last_gup}; {kind} needs {need}",
                )
        ops.append(Op(kind, params, op_text(kind, params), spec.steps))
    return tuple(ops)


def _macro(
    c: _Checker, name: str, args: object, path: str, files: Mapping[str, str], procs: set[str]
) -> list[Op]:
    args = c.mapping(args, path, ("addr", "value", "proc"))
    addr = _param(c, Param("addr", "addr"), args.get("addr"), f"{path}.addr", files, procs)
    value = c.value(args.get("value"), f"{path}.value")
    gup: dict[str, object] = {"addr": addr, "mode": "get", "write": True}
    if "proc" in args:
        gup["proc"] = _param(c, Param("proc", "proc"), args["proc"], f"{path}.proc", files, procs)
    parts: list[tuple[str, dict[str, object]]] = [
        ("gup_fast", gup),
        ("set_page_dirty", {}),
        ("dma_write", {"value": value}),
        ("put_page", {}),
    ]
    return [Op(k, p, op_text(k, p), OPS[k].steps, macro=name) for k, p in parts]


def _procs(doc: Mapping[str, Any]) -> set[str]:
    """`app` and every child a fork anywhere in the document creates."""
    actors = doc.get("actors")
    lists = [doc.get("setup")]
    lists += (
        [a.get("ops") for a in actors if isinstance(a, dict)] if isinstance(actors, list) else []
    )
    procs = {"app"}
    for ops in lists:
        for item in ops if isinstance(ops, list) else []:
            if isinstance(item, dict) and isinstance(item.get("fork"), dict):
                procs.add(str(item["fork"].get("child")))
    return procs


def _size_problem(doc: object) -> str | None:
    """Why a document is too big or too deep to be a scenario (walked without recursion)."""
    count = 0
    stack: list[tuple[object, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            return f"has more than {MAX_NODES} values"
        if depth > MAX_DEPTH:
            return f"is nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for pair in value.items() for child in pair)
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend((child, depth + 1) for child in value)
    return None


def parse_scenario(doc: object, lines: Mapping[str, int] | None = None) -> Scenario:
    """Validate a document (already parsed from YAML/JSON) into a Scenario."""
    problem = _size_problem(doc)
    if problem:
        raise ScenarioError([ErrorItem("", f"the document {problem}")])
    c = _Checker(lines or {})
    d = c.mapping(doc, "", TOP_KEYS)
    if not isinstance(doc, dict):
        raise ScenarioError(c.errors or [ErrorItem("", "must be a mapping")])
    sid = d.get("id")
    if not isinstance(sid, str) or not ID.match(sid):
        c.err("id", "must match [a-z0-9-]+ (at most 64 characters)")
    title = c.text(d.get("title"), "title", 120)
    summary = c.text(d.get("summary"), "summary", MAX_TEXT, required=False)
    tags = []
    for i, t in enumerate(c.seq(d.get("tags"), "tags", 12)):
        if not isinstance(t, str) or not NAME.match(t):
            c.err(f"tags[{i}]", "must be a lowercase name")
        else:
            tags.append(t)
    refs = []
    for i, r in enumerate(c.seq(d.get("refs"), "refs", 8)):
        rd = c.mapping(r, f"refs[{i}]", ("commit", "title", "version"))
        commit = str(rd.get("commit", ""))
        if not COMMIT.match(commit):
            c.err(f"refs[{i}].commit", "must be 7-40 lowercase hex digits")
        version = str(rd.get("version", ""))
        if version and not valid_kernel(version):
            c.err(f"refs[{i}].version", "must be a kernel version like 5.18")
        refs.append(Ref(commit, c.text(rd.get("title"), f"refs[{i}].title", 200), version))
    variants = []
    raw_variants = d.get("variants")
    names = tuple(str(k) for k in raw_variants) if isinstance(raw_variants, dict) else ()
    vraw = c.mapping(raw_variants, "variants", names)
    if len(vraw) > MAX_VARIANTS:
        c.err("variants", f"has {len(vraw)} variants; at most {MAX_VARIANTS}")
        vraw = dict(list(vraw.items())[:MAX_VARIANTS])
    for name, v in vraw.items():
        vpath = key_path("variants", name)
        vd = c.mapping(v, vpath, ("kernel", "fixes"))
        if not NAME.match(name):
            c.err(vpath, "variant names must be lowercase names")
        raw_kernel = vd.get("kernel", "")
        kernel = raw_kernel if isinstance(raw_kernel, str) else ""
        if not kernel.isascii() or not valid_kernel(kernel):  # \d also matches non-ASCII digits
            c.err(
                f"{vpath}.kernel",
                'must be a kernel version between 4.12 and 6.99, quoted, e.g. "5.17"',
            )
        fixes: dict[str, bool] = {}
        for fname, on in c.mapping(vd.get("fixes"), f"{vpath}.fixes", tuple(SWITCHES)).items():
            if not isinstance(on, bool):
                c.err(key_path(f"{vpath}.fixes", fname), "must be true or false")
            elif fname in SWITCHES:
                fixes[fname] = on
        variants.append(Variant(name, kernel, fixes))
    files: dict[str, str] = {}
    fraw = d.get("files") or {}
    if not isinstance(fraw, dict):
        c.err("files", "must be a mapping of file name to {data: VALUE}")
        fraw = {}
    if len(fraw) > MAX_FILES:
        c.err("files", f"at most {MAX_FILES} files")
    for fname, f in fraw.items():
        fpath = key_path("files", fname)
        fd = c.mapping(f, fpath, ("data",))
        if not NAME.match(str(fname)):
            c.err(fpath, "file names must be lowercase names")
        files[str(fname)] = c.value(fd.get("data", "0"), f"{fpath}.data")
    procs = _procs(d)
    setup = _ops(c, d.get("setup"), "setup", files, procs, MAX_SETUP, setup=True)
    actors = []
    seen: set[str] = set()
    araw = c.seq(d.get("actors"), "actors", MAX_ACTORS)
    if not araw:
        c.err("actors", "at least one actor is needed")
    for i, a in enumerate(araw):
        ad = c.mapping(a, f"actors[{i}]", ("name", "label", "ops"))
        name = str(ad.get("name", ""))
        if not NAME.match(name):
            c.err(f"actors[{i}].name", "must be a lowercase name")
        elif name in seen:
            c.err(f"actors[{i}].name", f"duplicate actor name {name!r}")
        seen.add(name)
        label = c.text(ad.get("label"), f"actors[{i}].label", 120, required=False) or name
        ops = _ops(c, ad.get("ops"), f"actors[{i}].ops", files, procs, MAX_OPS, setup=False)
        if not ops and "ops" not in ad:
            c.err(f"actors[{i}].ops", "is required")
        actors.append(ActorSpec(name, label, ops))
    vnames = tuple(v.name for v in variants) or ("default",)
    expect: dict[str, Expect] = {}
    for vname, e in c.mapping(d.get("expect"), "expect", vnames).items():
        epath = key_path("expect", vname)
        ed = c.mapping(e, epath, ("violations", "reachable"))
        viols = []
        for i, v in enumerate(c.seq(ed.get("violations"), f"{epath}.violations", 8)):
            if v not in VIOLATIONS:
                c.err(f"{epath}.violations[{i}]", f"allowed: {', '.join(VIOLATIONS)}")
            viols.append(str(v))
        reach = []
        for i, r in enumerate(c.seq(ed.get("reachable"), f"{epath}.reachable", 8)):
            if not isinstance(r, str) or not r.startswith(LABELS):
                c.err(f"{epath}.reachable[{i}]", f"must start with {', '.join(LABELS)}")
            reach.append(str(r))
        expect[vname] = Expect(tuple(viols), tuple(reach))
    if c.errors:
        raise ScenarioError(c.errors)
    document = json.loads(json.dumps(doc, default=str))
    return Scenario(
        id=str(sid),
        title=title,
        summary=summary,
        tags=tuple(tags),
        refs=tuple(refs),
        variants=tuple(variants),
        files=files,
        setup=setup,
        actors=tuple(actors),
        expect=expect,
        document=document,
        digest=digest_of(document),
        sha256=sha256_of(document),
    )


def _lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = key_path(path, key.value)
            out[sub] = key.start_mark.line + 1
            _lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, f"{path}[{i}]", out)


MAX_DOCUMENT = 64 * 1024


def _shape_problem(root: yaml.Node) -> str | None:
    """Why the composed document is not of a scenario's shape, counting aliases expanded."""
    count = 0
    ancestors: set[int] = set()

    def walk(node: yaml.Node, depth: int) -> str | None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            return f"expands to more than {MAX_NODES} values (through YAML aliases?)"
        if depth > MAX_DEPTH:
            return f"is nested more than {MAX_DEPTH} levels deep"
        if id(node) in ancestors:
            return "contains an alias to itself (a recursive structure)"
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            return None
        ancestors.add(id(node))
        for child in children:
            problem = walk(child, depth + 1)
            if problem:
                return problem
        ancestors.discard(id(node))
        return None

    return walk(root, 0)


def _yaml_error(exc: yaml.YAMLError) -> ScenarioError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return ScenarioError([ErrorItem("", f"not valid YAML: {problem}", line)])


def _compose(text: str) -> tuple[yaml.Node | None, object]:
    """The YAML node graph (for line numbers) and the document built from it, parsed once."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ScenarioError([ErrorItem("", "not valid YAML: nested too deeply")]) from None
        except (ValueError, OverflowError):
            # PyYAML's scanner calls chr() on a double-quoted "\U0011FFFF" unchecked.
            bad = "not valid YAML: an escape sequence that is not a character"
            raise ScenarioError([ErrorItem("", bad, loader.get_mark().line + 1)]) from None
        if node is None:
            return None, None
        problem = _shape_problem(node)
        if problem:
            raise ScenarioError(
                [ErrorItem("", f"the document {problem}", node.start_mark.line + 1)]
            )
        try:
            return node, loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            # PyYAML's scalar constructors fail in their own ways on an explicitly tagged
            # value they cannot read: an int of 5000 digits or `!!timestamp 2024-02-31`
            # (ValueError), `!!timestamp junk` (AttributeError), `!!bool maybe` (KeyError).
            why = "it has too many digits" if "digits" in str(exc) else "an explicit !!tag?"
            raise ScenarioError([ErrorItem("", f"a value cannot be read ({why})")]) from None
    finally:
        loader.dispose()


def load_scenario_text(text: str) -> Scenario:
    """Parse YAML (or JSON, a subset) text into a Scenario; errors carry line numbers."""
    if len(text) > MAX_DOCUMENT:
        raise ScenarioError(
            [ErrorItem("", f"document is {len(text)} bytes; at most {MAX_DOCUMENT} allowed")]
        )
    try:
        node, doc = _compose(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None
    lines: dict[str, int] = {}
    if node is not None:
        _lines(node, "", lines)
    return parse_scenario(doc, lines)


def default_variant(scenario: Scenario) -> Variant:
    return scenario.variants[0] if scenario.variants else Variant("default", NEWEST_KERNEL)
