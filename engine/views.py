"""Typed views of a world, made at the edge: the state panel, the figures, the diagram, JSON.

A `StateView` is a frozen value with one small dataclass per section (pages, PTEs, swap
slots, files, processes, devices, the oracle's expectations, the node). `to_json` is
the one place its JSON shape is written (the API's and the CLI's `state`), and
`changes` names the fields that differ between two views as the dotted paths of that
shape (`pages.P0.refcount`), which the API reports per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.kernel import OPS
from engine.model import Model
from engine.state import (
    ANON_EXCLUSIVE,
    GUP_PIN_COUNTING_BIAS,
    NO_PAGE,
    PRIVATE,
    ZERO_PAGE,
    Expected,
    File,
    Page,
    Pmd,
    Proc,
    Pte,
    Slot,
    Tlb,
    World,
    flag_list,
    page_name,
    revokes,
)

# What the actors hold on each page, in the order `holders` counts it: (add, key) where add
# counts one more under key and a plain entry sets it to 1.
Holds = dict[int, list[tuple[bool, str]]]


def actor_holds(model: Model, world: World) -> Holds:
    """Every actor's references, by page: one pass over the actors for all the pages."""
    out: Holds = {}
    for spec, actor in zip(model.scenario.actors, world.actors, strict=False):
        if actor.op < len(spec.ops):
            op = spec.ops[actor.op]
            ref = OPS[op.kind].refs_held.get(actor.pc)
            # The ops that hold a reference between steps keep its page in `regs.page`.
            pin = op.params.get("mode") == "pin"  # counted under "pins"
            if ref and not (pin and ref == "speculative"):
                page = getattr(actor.regs, "page", NO_PAGE)
                out.setdefault(page, []).append((False, f"{spec.name} ({ref})"))
        if actor.held_mode != "pin":
            for held, gen in actor.held:
                if held >= 0 and gen == world.pages[held].gen:
                    key = f"{spec.name} ({actor.held_mode})"
                    out.setdefault(world.folio(held), []).append((True, key))
    return out


def holders(model: Model, world: World, index: int) -> dict[str, int]:
    """Who accounts for the page's refcount (the pin bias shown apart as `pins`)."""
    page = world.pages[index]
    cached = any(f.cache == index for _, f in world.files)
    held = tuple(actor_holds(model, world).get(index, ()))
    return _holders(page, cached, held, world.pages[index + 1 : index + page.nr])


def _holders(
    page: Page, cached: bool, held: tuple[tuple[bool, str], ...], tails: tuple[Page, ...]
) -> dict[str, int]:
    out: dict[str, int] = {}
    if page.mapcount:
        out["mappings"] = page.mapcount
    if cached or page.swap >= 0:
        out["swap cache" if page.swap >= 0 else "page cache"] = 1
    if page.has(PRIVATE):  # buffer heads
        out["buffers"] = 1
    if page.owner.startswith("other:"):
        out[page.owner.removeprefix("other:")] = 1
    for add, key in held:
        out[key] = out.get(key, 0) + 1 if add else 1
    if page.entire:
        out["PMD mappings"] = page.entire
    if page.order:
        # The PTE mappings of every subpage count on the head, as the pins (1 each).
        maps = sum(p.mapcount for p in tails)
        if maps:
            out["mappings"] = out.get("mappings", 0) + maps
    if page.pins:
        out["pins"] = page.pins * (1 if page.order else GUP_PIN_COUNTING_BIAS)
    rest = page.ref - sum(out.values())
    if rest and not page.free:
        out["other"] = rest
    return out


def owner(world: World, index: int) -> str:
    return _owner(world.pages[index])


def _owner(page: Page) -> str:
    if page.free:
        return "free"
    if page.head >= 0:
        return f"tail of {page_name(page.head)}"
    if page.owner.startswith("file:"):
        return "file " + page.owner.removeprefix("file:")
    if page.owner.startswith("other:"):
        return "reallocated to " + page.owner.removeprefix("other:")
    return "anon"


def page_ref(index: int) -> str | None:
    if index == ZERO_PAGE:
        return "zero"
    return None if index < 0 else page_name(index)


@dataclass(frozen=True, slots=True)
class PageView:
    id: str
    refcount: int
    pins: int
    mapcount: int
    flags: tuple[str, ...]  # "lru" first when on an LRU list, then the PG_ flags
    lru: str | None
    data: str
    owner: str  # "anon", "file f", "free", "reallocated to X"
    holders: tuple[tuple[str, int], ...]  # who accounts for the refcount, in order
    locked_by: str | None
    # A large folio's head: its order and entire (PMD) mapcount; a tail shows its head in
    # `owner` and the folio's flags, its own refcount being 0 as a tail page's is.
    order: int = 0
    entire: int = 0


@dataclass(frozen=True, slots=True)
class PteView:
    proc: str
    addr: str
    page: str | None
    present: bool
    write: bool
    dirty: bool
    young: bool
    swap: str | None
    migration: bool
    file: str | None

    @property
    def key(self) -> str:
        return f"{self.proc}:{self.addr}"


@dataclass(frozen=True, slots=True)
class PmdView:
    """A PMD entry that is not a plain PTE table: a huge mapping, or cleared/invalidated."""

    proc: str
    region: str
    # "huge" | "protnone" (a huge PMD made PROT_NONE for NUMA hinting) | "none" | "invalid"
    # | "migration" | "invalid_migration" | "table" (a table other than the first)
    kind: str
    page: str | None  # huge: the folio's head
    write: bool
    dirty: bool
    young: bool

    @property
    def key(self) -> str:
        return f"{self.proc}:{self.region}"


@dataclass(frozen=True, slots=True)
class TlbView:
    """One CPU's cached translation; `stale` when the PTE no longer allows what it does."""

    cpu: str
    proc: str
    addr: str
    page: str | None
    write: bool
    dirty: bool
    stale: bool

    @property
    def key(self) -> str:
        return f"{self.cpu}:{self.proc}:{self.addr}"


@dataclass(frozen=True, slots=True)
class SlotView:
    slot: str
    data: str | None  # None until written
    entries: int
    cache: str | None
    # SWAP_HAS_CACHE held with no swap-cache folio: a swap-in that skips the swap cache
    # pinned the slot (swapcache_prepare).
    has_cache: bool = False
    free: bool = False  # the swap-map count is 0: the allocator may hand it out again


@dataclass(frozen=True, slots=True)
class FileView:
    name: str
    cache: str | None
    disk: str
    size: int  # in pages: 1, or 0 once truncated to EOF


@dataclass(frozen=True, slots=True)
class ProcView:
    name: str
    mmap_lock: str | None
    pte_lock: str | None
    write_protect_seq: int
    has_pinned: bool


@dataclass(frozen=True, slots=True)
class DeviceView:
    actor: str
    pages: tuple[str | None, ...]
    mode: str
    held_for: str  # the oracle key the GUP was made for ("for" in JSON)
    wrote: str | None


@dataclass(frozen=True, slots=True)
class ExpectedView:
    where: str
    allowed: tuple[str, ...]
    dma_in_flight: int


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    # PGDAT_DIRTY: the last kswapd pass saw only dirty file folios the flusher has not
    # queued, which is what lets a later kswapd pass write one itself (pageout).
    pgdat_dirty: bool


@dataclass(frozen=True, slots=True)
class StateView:
    pages: tuple[PageView, ...]
    ptes: tuple[PteView, ...]
    swap: tuple[SlotView, ...]
    files: tuple[FileView, ...]
    procs: tuple[ProcView, ...]
    devices: tuple[DeviceView, ...]
    expected: tuple[ExpectedView, ...]
    node: tuple[NodeView, ...]
    violations: tuple[str, ...]
    pmds: tuple[PmdView, ...] = ()
    tlb: tuple[TlbView, ...] = ()

    def page(self, page_id: str) -> PageView | None:
        return next((p for p in self.pages if p.id == page_id), None)


def page_counts(view: StateView, page_id: str) -> tuple[int, int, int] | None:
    """(refcount less the pins, mapcount, pins) of a page, as the timelines plot them: a pin
    adds GUP_PIN_COUNTING_BIAS to a small folio (1 to a large one), which would flatten
    every other line, so pins get a line of their own; a large folio's head counts its PMD
    (entire) mappings and every subpage's PTEs. None if the page does not exist yet."""
    page = view.page(page_id)
    if page is None:
        return None
    mapcount = page.mapcount
    bias = GUP_PIN_COUNTING_BIAS
    if page.order:
        tails = (p.mapcount for p in view.pages if p.owner == f"tail of {page.id}")
        mapcount += page.entire + sum(tails)
        bias = 1
    return page.refcount - bias * page.pins, mapcount, page.pins


def _mmap_lock(proc_writer: str, readers: tuple[str, ...]) -> str | None:
    if proc_writer:
        return f"write: {proc_writer}"
    return f"read: {', '.join(readers)}" if readers else None


def state_view(model: Model, world: World) -> StateView:
    return Views(model).of(world)


S = TypeVar("S")
V = TypeVar("V")
Section = tuple[tuple[S, ...], tuple[V, ...]]  # what each item was made of, and the items


def _items(src: tuple[S, ...], prev: Section[S, V] | None, make: Callable[[S], V]) -> Section[S, V]:
    """The items made of `src`: an item whose sources equal the previous world's at the same
    place is the previous item itself (a step leaves most of the state as it was)."""
    if prev is None or len(prev[0]) != len(src):
        return src, tuple(make(a) for a in src)
    if src == prev[0]:
        # All of them as they were: the previous tuple itself, so that comparing or encoding
        # the two states can skip the whole section at once.
        return prev
    return src, tuple(
        v if a == b else make(a) for a, b, v in zip(src, prev[0], prev[1], strict=True)
    )


PageSource = tuple[int, Page, Page | None, bool, tuple[tuple[bool, str], ...], tuple[Page, ...]]


def _page_view(src: PageSource) -> PageView:
    i, p, head, cached, held, tails = src
    flags = flag_list(p.flags)
    if head is not None:  # a tail shows its folio's flags, with its own AnonExclusive
        flags = flag_list((head.flags & ~ANON_EXCLUSIVE) | (p.flags & ANON_EXCLUSIVE))
    if p.lru:
        flags.insert(0, "lru")
    return PageView(
        id=page_name(i),
        refcount=p.ref,
        pins=p.pins,
        mapcount=p.mapcount,
        flags=tuple(flags),
        lru=p.lru or None,
        data=p.data,
        owner=_owner(p),
        holders=tuple(_holders(p, cached, held, tails).items()),
        locked_by=p.locker or None,
        order=p.order,
        entire=p.entire,
    )


def _pte_view(src: tuple[str, str, Pte]) -> PteView:
    proc, addr, e = src
    return PteView(
        proc,
        addr,
        page_ref(e.page) if (e.present or e.migration) else None,
        e.present,
        e.write,
        e.dirty,
        e.young,
        f"S{e.swap}" if e.swap >= 0 else None,
        e.migration,
        e.file or None,
    )


def _slot_view(src: tuple[int, Slot, bool]) -> SlotView:
    i, s, free = src
    return SlotView(
        f"S{i}",
        s.data if s.written else None,
        s.entries,
        page_ref(s.cache),
        s.has_cache and s.cache < 0,
        free,
    )


def _proc_view(proc: Proc) -> ProcView:
    return ProcView(
        proc.name,
        _mmap_lock(proc.mmap_writer, proc.mmap_readers),
        proc.ptl or None,
        proc.seq,
        proc.has_pinned,
    )


def _pmd_view(src: tuple[str, str, Pmd]) -> PmdView:
    proc, region, e = src
    kind = "protnone" if e.numa else e.kind
    return PmdView(proc, region, kind, page_ref(e.page), e.write, e.dirty, e.young)


def _tlb_view(src: tuple[Tlb, bool]) -> TlbView:
    t, stale = src
    return TlbView(t.cpu, t.proc, t.addr, page_ref(t.page), t.write, t.dirty, stale)


def _file_view(src: tuple[str, File]) -> FileView:
    name, f = src
    return FileView(name, page_ref(f.cache), f.disk, f.size)


def _expected_view(src: tuple[str, Expected]) -> ExpectedView:
    key, e = src
    return ExpectedView(key, e.allowed, e.inflight)


def _node_view(pgdat_dirty: bool) -> NodeView:
    return NodeView("node0", pgdat_dirty)


class Views:
    """The views of one model's worlds, the previous world's items reused where nothing they
    are made of changed: a replay's steps each change a few fields of a few items, and their
    views (and the changes and JSON made from them) then share the rest."""

    __slots__ = ("_prev", "model")

    def __init__(self, model: Model) -> None:
        self.model = model
        self._prev: dict[str, Section[Any, Any]] = {}

    def of(self, world: World) -> StateView:
        prev = self._prev
        out: dict[str, Section[Any, Any]] = {}
        spec = self.model.scenario.actors
        holds = actor_holds(self.model, world)
        in_cache = {f.cache for _, f in world.files}
        pages = world.pages
        out["pages"] = _items(
            tuple(
                (
                    i,
                    p,
                    pages[p.head] if p.head >= 0 else None,
                    i in in_cache,
                    tuple(holds.get(i, ())),
                    pages[i + 1 : i + p.nr] if p.order else (),
                )
                for i, p in enumerate(pages)
            ),
            prev.get("pages"),
            _page_view,
        )
        out["ptes"] = _items(tuple(world.walk()), prev.get("ptes"), _pte_view)
        free = world.swap_free
        out["swap"] = _items(
            tuple((i, s, i in free) for i, s in enumerate(world.swap)), prev.get("swap"), _slot_view
        )
        out["procs"] = _items(world.procs, prev.get("procs"), _proc_view)
        out["pmds"] = _items(world.pmds, prev.get("pmds"), _pmd_view)
        out["tlb"] = _items(
            tuple(
                (t, revokes(t, world.pte(t.proc, t.addr)) or pages[t.page].gen != t.gen)
                for t in world.tlb
            ),
            prev.get("tlb"),
            _tlb_view,
        )
        out["files"] = _items(world.files, prev.get("files"), _file_view)
        out["expected"] = _items(
            tuple((k, e) for k, e in world.expect if e.allowed),
            prev.get("expected"),
            _expected_view,
        )
        out["node"] = _items((world.pgdat_dirty,), prev.get("node"), _node_view)
        self._prev = out
        return StateView(
            pages=out["pages"][1],
            ptes=out["ptes"][1],
            swap=out["swap"][1],
            files=out["files"][1],
            procs=out["procs"][1],
            devices=tuple(
                DeviceView(
                    sp.name,
                    tuple(page_ref(i) for i, _ in a.held),
                    a.held_mode,
                    a.held_key,
                    a.dma or None,
                )
                for sp, a in zip(spec, world.actors, strict=False)
                if a.held
            ),
            expected=out["expected"][1],
            node=out["node"][1],
            violations=tuple(world.violations),
            pmds=out["pmds"][1],
            tlb=out["tlb"][1],
        )


def page_json(p: PageView) -> dict[str, Any]:
    return {
        "id": p.id,
        "refcount": p.refcount,
        "pins": p.pins,
        "mapcount": p.mapcount,
        "flags": list(p.flags),
        "lru": p.lru,
        "data": p.data,
        "owner": p.owner,
        "holders": dict(p.holders),
        "locked_by": p.locked_by,
        # Large folios only, so states of order-0 scenarios read as before.
        **({"order": p.order, "entire_mapcount": p.entire} if p.order else {}),
    }


def pte_json(e: PteView) -> dict[str, Any]:
    return {
        "proc": e.proc,
        "addr": e.addr,
        "page": e.page,
        "present": e.present,
        "write": e.write,
        "dirty": e.dirty,
        "young": e.young,
        "swap": e.swap,
        "migration": e.migration,
        "file": e.file,
    }


def slot_json(s: SlotView) -> dict[str, Any]:
    # `has_cache` and `free` only when set, so states without them read as before.
    return {
        "slot": s.slot,
        "data": s.data,
        "entries": s.entries,
        "cache": s.cache,
        **({"has_cache": True} if s.has_cache else {}),
        **({"free": True} if s.free else {}),
    }


def file_json(f: FileView) -> dict[str, Any]:
    # `size` only once truncated, so states of scenarios without EOF read as before.
    return {"name": f.name, "cache": f.cache, "disk": f.disk, **({} if f.size else {"size": 0})}


def proc_json(p: ProcView) -> dict[str, Any]:
    return {
        "name": p.name,
        "mmap_lock": p.mmap_lock,
        "pte_lock": p.pte_lock,
        "write_protect_seq": p.write_protect_seq,
        "has_pinned": p.has_pinned,
    }


def device_json(d: DeviceView) -> dict[str, Any]:
    return {
        "actor": d.actor,
        "pages": list(d.pages),
        "mode": d.mode,
        "for": d.held_for,
        "wrote": d.wrote,
    }


def expected_json(e: ExpectedView) -> dict[str, Any]:
    return {"where": e.where, "allowed": list(e.allowed), "dma_in_flight": e.dma_in_flight}


def node_json(n: NodeView) -> dict[str, Any]:
    return {"name": n.name, "pgdat_dirty": n.pgdat_dirty}


def pmd_json(m: PmdView) -> dict[str, Any]:
    return {
        "proc": m.proc,
        "region": m.region,
        "kind": m.kind,
        "page": m.page,
        "write": m.write,
        "dirty": m.dirty,
        "young": m.young,
    }


def tlb_json(t: TlbView) -> dict[str, Any]:
    return {
        "id": t.key,
        "cpu": t.cpu,
        "proc": t.proc,
        "addr": t.addr,
        "page": t.page,
        "write": t.write,
        "dirty": t.dirty,
        "stale": t.stale,
    }


# The sections of a state's JSON, in order, with each item's JSON; `pmds` and `tlb` only
# when there are some (so order-0 states and those of scenarios without CPUs read as before).
# `violations`, a list of names, comes between `node` and `pmds`.
JSON_SECTIONS: tuple[tuple[str, Callable[[Any], dict[str, Any]], bool], ...] = (
    ("pages", page_json, True),
    ("ptes", pte_json, True),
    ("swap", slot_json, True),
    ("files", file_json, True),
    ("procs", proc_json, True),
    ("devices", device_json, True),
    ("expected", expected_json, True),
    ("node", node_json, True),
    ("pmds", pmd_json, False),
    ("tlb", tlb_json, False),
)


def to_json(view: StateView) -> dict[str, Any]:
    """The JSON shape of a state (product.md: the `state` of a run and of each step)."""
    out: dict[str, Any] = {}
    for section, as_json, always in JSON_SECTIONS:
        if section == "pmds":
            out["violations"] = list(view.violations)
        items = getattr(view, section)
        if always or items:
            out[section] = [as_json(x) for x in items]
    return out


def to_text(view: StateView, memo: dict[object, str], encode: Callable[[Any], str]) -> str:
    """`encode(to_json(view))`, for an encoder without spaces: each item (and each section)
    encoded once per `memo` and spliced in, so the states of one run, which share most of
    their items (views.Views), cost what their changes do. `memo` is keyed by `id` (a
    section's with its name: every empty section is the same `()`), so the items must
    outlive it (those of one trace do)."""
    parts = []
    for section, as_json, always in JSON_SECTIONS:
        if section == "pmds":
            names = memo.get(("violations", id(view.violations)))
            if names is None:
                names = encode(list(view.violations))
                memo["violations", id(view.violations)] = names
            parts.append(f'"violations":{names}')
        items = getattr(view, section)
        if not (always or items):
            continue
        key = (section, id(items))
        text = memo.get(key)
        if text is None:
            texts = []
            for x in items:
                one = memo.get(id(x))
                if one is None:
                    one = memo[id(x)] = encode(as_json(x))
                texts.append(one)
            text = memo[key] = f'"{section}":[{",".join(texts)}]'
        parts.append(text)
    return "{" + ",".join(parts) + "}"


KEYS = {
    "pages": "id",
    "ptes": None,
    "swap": "slot",
    "files": "name",
    "procs": "name",
    "devices": "actor",
    "expected": "where",
    "node": "name",
    "pmds": None,
    "tlb": "id",
}


def flatten(view: StateView) -> dict[str, object]:
    """Every field of the JSON shape under its dotted path (`pages.P0.refcount`)."""
    flat: dict[str, object] = {}
    data = to_json(view)
    for section, key in KEYS.items():
        for item in data.get(section, ()):
            name = item[key] if key else f"{item['proc']}:{item.get('addr', item.get('region'))}"
            for field, value in item.items():
                flat[f"{section}.{name}.{field}"] = repr(value)
    return flat


def flat_changes(a: dict[str, object], b: dict[str, object]) -> tuple[str, ...]:
    """The fields that differ between two flattened views, sorted."""
    return tuple(k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))


# Each section of a state: its field in StateView, how an item is named in a dotted path
# (KEYS above, from the view rather than its JSON) and its JSON.
Item = Any
SECTIONS: tuple[tuple[str, Callable[[Item], str], Callable[[Item], dict[str, Any]]], ...] = (
    ("pages", lambda p: p.id, page_json),
    ("ptes", lambda e: e.key, pte_json),
    ("swap", lambda s: s.slot, slot_json),
    ("files", lambda f: f.name, file_json),
    ("procs", lambda p: p.name, proc_json),
    ("devices", lambda d: d.actor, device_json),
    ("expected", lambda e: e.where, expected_json),
    ("node", lambda n: n.name, node_json),
    ("pmds", lambda m: m.key, pmd_json),
    ("tlb", lambda t: t.key, tlb_json),
)


def changes(before: StateView, after: StateView) -> tuple[str, ...]:
    """The dotted paths of the fields that differ between two views, sorted: what
    `flat_changes(flatten(before), flatten(after))` says, without flattening either.

    A step changes a few fields of a few items, so only the items that differ (as frozen
    values) are turned into JSON and compared field by field (by repr, as `flatten` does).
    """
    out: list[str] = []
    for section, name_of, as_json in SECTIONS:
        old: tuple[Item, ...] = getattr(before, section)
        new: tuple[Item, ...] = getattr(after, section)
        if old is new or old == new:
            continue
        pairs: list[tuple[Item | None, Item | None]] | None = None
        if len(old) == len(new):
            # Most often the same items in the same places, one or two of them changed.
            pairs = [(a, b) for a, b in zip(old, new, strict=True) if a is not b and a != b]
            if any(name_of(a) != name_of(b) for a, b in pairs):
                pairs = None
        if pairs is None:  # items came, went or moved: pair them by name
            olds = {name_of(x): x for x in old}
            news = {name_of(x): x for x in new}
            pairs = [(olds.get(n), news.get(n)) for n in olds.keys() | news.keys()]
        for a, b in pairs:
            if a is not None and b is not None and a == b:
                continue
            fa = as_json(a) if a is not None else {}
            fb = as_json(b) if b is not None else {}
            prefix = f"{section}.{name_of(a if a is not None else b)}."
            for field in fa.keys() | fb.keys():
                if field not in fa or field not in fb or repr(fa[field]) != repr(fb[field]):
                    out.append(prefix + field)
    return tuple(sorted(out))
