"""Scenario documents to validated values: every error names its path and what is allowed.

Errors name the offending path, e.g. `actors[1].ops[0].gup_fast.mode`. What is
particular to one operation (its parameters, which are positional, which other op it
needs before it, its own cross-parameter rule) is declared with the op in
engine/kernel/ (`OpKind`) and only read here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from engine.fixes import SWITCHES, valid_kernel
from engine.invariants import FATES, VIOLATIONS
from engine.kernel import OPS
from engine.kernel.machine import Param
from engine.lang.ir import (
    ActorSpec,
    ErrorItem,
    Expect,
    Op,
    Ref,
    Scenario,
    ScenarioError,
    Variant,
    digest_of,
    key_path,
    sha256_of,
)
from engine.state import HPAGE_NR

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
CPU = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,7}$")
MAX_CPU = 64
THREAD = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,23}$")
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
SUBPAGES = tuple(str(i) for i in range(HPAGE_NR))
TOP_KEYS = (
    "id",
    "title",
    "summary",
    "tags",
    "refs",
    "variants",
    "files",
    "swap",
    "setup",
    "actors",
    "expect",
)
# A macro is one line in a document standing for several ops: (op, fixed parameters),
# with the macro's own `addr`, `value` and `proc` passed to the ops that take them.
MACROS: dict[str, tuple[tuple[str, Mapping[str, object]], ...]] = {
    "dio_read": (
        ("gup_fast", {"mode": "get", "write": True}),
        ("set_page_dirty", {}),
        ("dma_write", {}),
        ("put_page", {}),
    ),
}


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
    """How an op reads in the UI: `gup_fast(buf, pin, write)`, positional values bare."""
    positional = {p.name for p in OPS[kind].params if p.positional}
    shown = []
    for key, value in params.items():
        if value is True:
            shown.append(key)
        elif value is False or value is None:
            continue
        elif key in positional:
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
    if spec.kind == "addr" and "#" in text:
        # A subpage of a large folio's region: buf#0 .. buf#{HPAGE_NR-1}.
        region, _, sub = text.partition("#")
        if not NAME.match(region) or sub not in SUBPAGES:
            c.err(
                path,
                f"a subpage address is a name, '#' and a subpage number 0-{HPAGE_NR - 1} "
                f"(a large folio is modelled with {HPAGE_NR} pages), e.g. buf#1",
            )
        return text
    if not NAME.match(text):
        c.err(path, "must be a name: lowercase letters, digits and _, starting with a letter")
    if spec.kind == "file" and text and text not in files:
        known = ", ".join(files) or "none declared"
        c.err(path, f"unknown file {text!r}; declared files: {known}")
    if spec.kind == "proc" and text and text not in procs:
        c.err(path, f"unknown process {text!r}; known: {', '.join(sorted(procs))}")
    return text


# The ops that make large folios, and those that handle one at a subpage address: the rest
# of the vocabulary still models order-0 pages only, so a scenario with large folios may use
# them on plain addresses but not on a THP region's subpages (a clear error, not a wrong
# verdict).
LARGE_FOLIO_SOURCES = ("thp_fault", "collapse")
LARGE_FOLIO_AWARE = (
    "read",
    "write",
    "gup",
    "gup_fast",
    "madvise_dontneed",
    "munmap",
    "thp_fault",
    "collapse",
    "split_huge_pmd",
    "deferred_split_scan",
    "numa_migrate",
    "migrate",
    "split_folio",
    "shrink_folio_list",
    "change_prot_numa",
)


# madvise_free_huge_pmd is modelled for a whole region; a partial MADV_FREE of a THP
# (split_folio, then per PTE) is not.
WHOLE_REGION_ONLY = ("madvise_free",)


def _large_folio_rule(c: _Checker, setup: tuple[Op, ...], actors: list[ActorSpec]) -> None:
    every = [("setup", op) for op in setup] + [
        (f"actors[{i}].ops", op) for i, a in enumerate(actors) for op in a.ops
    ]
    regions = {str(op.params.get("addr")) for _, op in every if op.kind in LARGE_FOLIO_SOURCES}
    if not regions:
        return
    aware = ", ".join(LARGE_FOLIO_AWARE)
    for path, op in every:
        addr = str(op.params.get("addr", ""))
        region = addr.partition("#")[0]
        whole = op.kind in WHOLE_REGION_ONLY and "#" not in addr
        if (
            op.kind not in LARGE_FOLIO_AWARE
            and not whole
            and "addr" in op.params
            and region in regions
        ):
            c.err(
                path,
                f"{op.text}: {op.kind} does not model large folios yet; on the THP region "
                f"{region!r} use {aware} (madvise_free on the whole region only)",
            )


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
    held: str | None = None  # what the actor's last GUP op left it holding
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
            held = OPS[expanded[0].kind].holding(expanded[0].params)
            continue
        spec = OPS.get(kind)
        if spec is None:
            allowed = ", ".join([*OPS, *MACROS])
            c.err(op_path, f"unknown operation; allowed: {allowed}")
            continue
        if spec.setup_only and not setup:
            c.err(op_path, "is only allowed in setup")
        if setup and spec.actor_only:
            c.err(op_path, "needs an actor to hold the page; not allowed in setup")
        names = tuple(s.name for s in spec.params)
        args = c.mapping(args, op_path, names)
        params: dict[str, object] = {}
        for s in spec.params:
            if s.name in args:
                params[s.name] = _param(c, s, args[s.name], f"{op_path}.{s.name}", files, procs)
            elif s.required:
                c.err(f"{op_path}.{s.name}", "is required")
        problem = spec.rule(params) if spec.rule else None
        if problem:
            c.err(op_path, problem)
        if spec.needs:
            _check_held(c, op_path, kind, spec.needs, held)
        if spec.holds:
            held = spec.holding(params)
        ops.append(Op(kind, params, op_text(kind, params), spec.steps))
    return tuple(ops)


def _check_held(c: _Checker, path: str, kind: str, needs: str, held: str | None) -> None:
    """An op acting on the page its actor obtained must come after the GUP that got it."""
    if held is None:
        c.err(
            path,
            "acts on the page this actor obtained with gup, gup_fast or "
            "vmsplice, but no such op comes before it in this actor",
        )
    elif needs != "any" and held != needs:
        c.err(path, f"the last GUP of this actor used mode {held}; {kind} needs {needs}")


def _macro(
    c: _Checker, name: str, args: object, path: str, files: Mapping[str, str], procs: set[str]
) -> list[Op]:
    args = c.mapping(args, path, ("addr", "value", "proc"))
    given: dict[str, object] = {
        "addr": _param(c, Param("addr", "addr"), args.get("addr"), f"{path}.addr", files, procs),
        "value": c.value(args.get("value"), f"{path}.value"),
    }
    if "proc" in args:
        given["proc"] = _param(c, Param("proc", "proc"), args["proc"], f"{path}.proc", files, procs)
    ops = []
    for kind, fixed in MACROS[name]:
        merged = {**given, **fixed}
        # The parameters the op takes, in its declared order (the text reads as the op's).
        params = {p.name: merged[p.name] for p in OPS[kind].params if p.name in merged}
        ops.append(Op(kind, params, op_text(kind, params), OPS[kind].steps, macro=name))
    return ops


def _flag(c: _Checker, section: Mapping[str, Any], path: str, meaning: str) -> bool:
    """A true/false attribute (false when absent); an error naming `path` otherwise."""
    value = section.get(path.rpartition(".")[2], False)
    if isinstance(value, bool):
        return value
    c.err(path, f"must be true or false ({meaning})")
    return False


def _cpu(c: _Checker, raw: object, path: str) -> str:
    """An actor's CPU: a name (`CPU1`) or a number (1, for CPU1)."""
    if raw == "":
        return ""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < MAX_CPU:
        return f"CPU{raw}"
    if isinstance(raw, str) and CPU.match(raw):
        return raw
    c.err(path, f"must be a CPU name such as CPU0 or cpu1, or a number from 0 to {MAX_CPU - 1}")
    return ""


def _in_process(op: Op, proc: str) -> Op:
    """An op of a thread of `proc`: `proc` is its process unless the op names one."""
    if "proc" in op.params or not any(p.name == "proc" for p in OPS[op.kind].params):
        return op
    return replace(op, params={**op.params, "proc": proc})


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
    sd = c.mapping(d.get("swap"), "swap", ("synchronous", "readahead", "zswap"))
    synchronous = _flag(c, sd, "swap.synchronous", "true: a SWP_SYNCHRONOUS_IO device such as zram")
    readahead = _flag(
        c,
        sd,
        "swap.readahead",
        "true: a swap-in through the swap cache also reads the neighbouring slots in use "
        "into the swap cache",
    )
    zswap = _flag(
        c,
        sd,
        "swap.zswap",
        "true: swap_writepage stores pages in zswap, and a zswap_writeback op writes them to "
        "the device",
    )
    procs = _procs(d)
    setup = _ops(c, d.get("setup"), "setup", files, procs, MAX_SETUP, setup=True)
    actors = []
    seen: set[str] = set()
    araw = c.seq(d.get("actors"), "actors", MAX_ACTORS)
    if not araw:
        c.err("actors", "at least one actor is needed")
    for i, a in enumerate(araw):
        ad = c.mapping(a, f"actors[{i}]", ("name", "label", "cpu", "thread", "ops"))
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
        cpu = _cpu(c, ad.get("cpu", ""), f"actors[{i}].cpu")
        thread = ad.get("thread", "")
        if thread != "" and not (isinstance(thread, str) and THREAD.match(thread)):
            c.err(
                f"actors[{i}].thread",
                "must be a name: the process this actor is a thread of ("
                + ", ".join(sorted(procs))
                + "), or the thread's own name (its ops then run in their `proc`, app by default)",
            )
            thread = ""
        if thread in procs:
            ops = tuple(_in_process(op, str(thread)) for op in ops)
        actors.append(ActorSpec(name, label, ops, cpu, str(thread)))
    _large_folio_rule(c, setup, actors)
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
            if not isinstance(r, str) or not r.startswith(FATES):
                c.err(f"{epath}.reachable[{i}]", f"must start with {', '.join(FATES)}")
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
        swap_sync=synchronous,
        swap_readahead=readahead,
        zswap=zswap,
        setup=setup,
        actors=tuple(actors),
        expect=expect,
        document=document,
        digest=digest_of(document),
        sha256=sha256_of(document),
    )
