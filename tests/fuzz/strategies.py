"""Hypothesis strategies for scenario documents.

- `valid_documents()`: built from the real operation names and parameters (engine.kernel.OPS) and
  the language's rules (device ops after a GUP, files declared, ...), so most of them parse
  and the explorer and the replay get real work.
- `mutated(...)`: one of those with one place broken: a value replaced by junk, a key dropped
  or added. Errors must then name that place.
- `junk`: anything JSON can hold.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from engine.fixes import SWITCHES
from engine.invariants import VIOLATIONS
from engine.kernel import OPS

Doc = dict[str, Any]

VALUES = ("A", "B", "C", "0", "Z9")
KERNELS = (
    "4.12",
    "5.8",
    "5.9",
    "5.11",
    "5.15",
    "5.17",
    "5.18",
    "5.19",
    "6.2",
    "6.3",
    "6.4",
    "6.5",
    "6.99",
)
ACTORS = ("a", "b", "c", "dio", "kswapd", "f")
FULLWIDTH_KERNEL = "\uff15.\uff11\uff17"  # "5.17" in fullwidth digits: \d matches them

text = st.text(max_size=30)
junk_leaf: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    st.sampled_from(["", " ", FULLWIDTH_KERNEL, "a.", "x[", "<script>", "yes", "on", "0" * 20]),
)
junk: st.SearchStrategy[Any] = st.recursive(
    junk_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(text, st.sampled_from(ACTORS)), inner, max_size=4),
    ),
    max_leaves=12,
)
value = st.sampled_from(VALUES)
label = st.text(min_size=1, max_size=40).filter(str.strip)


def param_value(kind: str, choices: tuple[str, ...], addrs: list[str], procs: list[str]) -> Any:
    return {
        "addr": st.sampled_from(addrs),
        "region": st.sampled_from(addrs),
        "file": st.just("f"),
        "proc": st.sampled_from(procs),
        "name": st.sampled_from(["kid3", "drv"]),
        "value": value,
        "bool": st.booleans(),
        "choice": st.sampled_from(choices or ("get",)),
    }[kind]


@st.composite
def generic_op(draw: st.DrawFn, addrs: list[str], procs: list[str]) -> list[Doc]:
    """Any operation in engine.kernel.OPS with parameters drawn from its own Param specs."""
    kind = draw(st.sampled_from(sorted(OPS)))
    args: Doc = {}
    for param in OPS[kind].params:
        if param.required or draw(st.booleans()):
            args[param.name] = draw(param_value(param.kind, param.choices, addrs, procs))
    return [{kind: args}]


@st.composite
def gup_block(draw: st.DrawFn, addr: str, proc: str | None) -> list[Doc]:
    """A GUP, then device ops on the page it holds, then its put or unpin."""
    kind = draw(st.sampled_from(["gup", "gup_fast", "vmsplice"]))
    target: Doc = {"addr": addr} if proc is None else {"addr": addr, "proc": proc}
    if kind == "vmsplice":
        return [{"vmsplice": target}, {"read_pipe": draw(st.sampled_from([{}, {"expect": "A"}]))}]
    mode = draw(st.sampled_from(["get", "pin"]))
    args = {**target, "mode": mode, "write": draw(st.booleans())}
    if draw(st.booleans()):
        args["longterm"] = True
    if kind == "gup_fast" and draw(st.integers(0, 4)) == 0:
        args["fast_only"] = True
    ops: list[Doc] = [{kind: args}]
    device = [
        {"set_page_dirty": draw(st.sampled_from([{}, {"lock": True}]))},
        {"dma_write": {"value": draw(value)}},
        {"dma_read": {}},
    ]
    ops += draw(st.lists(st.sampled_from(device), max_size=2))
    if draw(st.integers(0, 5)):
        ops.append({"put_page": {}} if mode == "get" else {"unpin": {"dirty": draw(st.booleans())}})
    return ops


@st.composite
def program(draw: st.DrawFn, addrs: list[str], files: list[str], procs: list[str]) -> list[Doc]:
    """An actor's ops: one or two blocks, at most 8 ops."""
    ops: list[Doc] = []
    for _ in range(draw(st.integers(1, 2))):
        addr = draw(st.sampled_from(addrs))
        proc = draw(st.sampled_from([None, *procs]))
        target: Doc = {"addr": addr} if proc is None else {"addr": addr, "proc": proc}
        choices: list[st.SearchStrategy[list[Doc]]] = [
            gup_block(addr, proc),
            generic_op(addrs, procs),
            st.just([{"dio_read": {"addr": addr, "value": draw(value)}}]),
            st.sampled_from(
                [
                    [{"write": {**target, "value": draw(value)}}],
                    [{"read": target}],
                    [{"madvise_free": target}],
                    [{"madvise_dontneed": target}],
                    [{"munmap": target}],
                    [{"migrate": target}],
                    [{"shrink_folio_list": target}],
                    [{"shrink_folio_list": target}, {"shrink_folio_list": target}],
                    [{"fork": {"child": "kid2"}}],
                    [{"alloc_page": {"owner": "drv", "value": draw(value)}}],
                ]
            ),
        ]
        if files:
            file = draw(st.sampled_from(files))
            kinds = ["filemap_lookup", "truncate", "writeback", "shrink_folio_list"]
            choices.append(st.sampled_from([[{kind: {"file": file}}] for kind in kinds]))
            choices.append(st.just([{"truncate": {"file": file, "eof": True}}]))
        ops += draw(st.one_of(choices))
    return ops[:8]


@st.composite
def valid_documents(draw: st.DrawFn, max_actors: int = 3) -> Doc:
    """A document that follows the language's rules (it may still deadlock or break things)."""
    doc: Doc = {"id": "fuzz", "title": draw(st.sampled_from(["a fuzzed scenario", "<b>x</b>"]))}
    with_file = draw(st.booleans())
    files = ["f"] if with_file else []
    if with_file:
        doc["files"] = {"f": {"data": draw(value)}}
    setup: list[Doc] = [{"write": {"addr": "buf", "value": "A"}}]
    addrs, procs = ["buf"], ["app"]
    if with_file and draw(st.booleans()):
        setup.append({"mmap_file": {"addr": "fbuf", "file": "f"}})
        addrs.append("fbuf")
    extra = [
        {"madvise_free": {"addr": "buf"}},
        {"write": {"addr": "buf", "value": "B"}},
        {"read": {"addr": "buf"}},
        {"fork": {"child": "kid"}},
    ]
    setup += draw(st.lists(st.sampled_from(extra), max_size=2, unique_by=str))
    if {"fork": {"child": "kid"}} in setup:
        procs.append("kid")
    doc["setup"] = setup
    names = draw(st.lists(st.sampled_from(ACTORS), min_size=1, max_size=max_actors, unique=True))
    doc["actors"] = []
    for name in names:
        actor: Doc = {"name": name, "ops": draw(program(addrs, files, procs))}
        if draw(st.integers(0, 3)) == 0:
            actor["label"] = draw(label)
        if draw(st.integers(0, 3)) == 0:  # a CPU with a TLB, as a thread of a process
            actor["cpu"] = draw(st.sampled_from(["CPU0", "CPU1", "cpu7"]))
            if draw(st.booleans()):
                actor["thread"] = draw(st.sampled_from(procs))
        doc["actors"].append(actor)
    variants = draw(
        st.lists(st.sampled_from(["buggy", "fixed", "what_if"]), max_size=2, unique=True)
    )
    if variants:
        doc["variants"] = {}
        for name in variants:
            variant: Doc = {"kernel": draw(st.sampled_from(KERNELS))}
            if draw(st.integers(0, 2)) == 0:
                fixes = st.dictionaries(st.sampled_from(list(SWITCHES)), st.booleans(), max_size=2)
                variant["fixes"] = draw(fixes)
            doc["variants"][name] = variant
    if draw(st.integers(0, 3)) == 0:
        doc["summary"] = draw(label)
        doc["tags"] = draw(st.lists(st.sampled_from(["reclaim", "gup", "dma"]), max_size=2))
        doc["refs"] = [{"commit": "6c8e2a256915", "title": "mm: a fix", "version": "5.18"}]
        doc["expect"] = {
            (variants[0] if variants else "default"): {
                "violations": draw(st.lists(st.sampled_from(VIOLATIONS), max_size=1)),
                "reachable": draw(
                    st.lists(st.sampled_from(["page_freed", "page_kept"]), max_size=1)
                ),
            }
        }
    return doc


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a document (dict keys and list indices), the root included."""
    places = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            places += _places(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            places += _places(child, (*path, index))
    return places


@st.composite
def mutated(draw: st.DrawFn, documents: st.SearchStrategy[Doc]) -> Any:
    """A document with one place broken: replaced by junk, removed, or given a junk key."""
    doc = draw(documents)
    path = draw(st.sampled_from(_places(doc)))
    if not path:
        return draw(junk)
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["replace", "remove", "add"]))
    if how == "replace" or (how == "add" and not isinstance(parent[path[-1]], dict)):
        parent[path[-1]] = draw(junk)
    elif how == "remove":
        del parent[path[-1]]
    else:
        parent[path[-1]][draw(st.sampled_from(["bogus", "a.", "x[", ""]))] = draw(junk)
    return doc


def documents() -> st.SearchStrategy[Any]:
    return st.one_of(valid_documents(), mutated(valid_documents()))


any_document: st.SearchStrategy[Any] = st.one_of(
    valid_documents(), mutated(valid_documents()), junk
)
