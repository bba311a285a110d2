"""Plain-data views of a world for the UI, the API and the diagram (JSON-ready dicts)."""

from __future__ import annotations

from typing import Any

from engine.model import Model
from engine.state import GUP_PIN_COUNTING_BIAS, ZERO_PAGE, World, flag_list, page_name

ISOLATING = ("shrink_folio_list", "migrate")
SPECULATIVE = {
    "gup_fast": ("recheck",),
    "vmsplice": ("recheck",),
    "filemap_lookup": ("reload", "copy"),
}


def holders(model: Model, world: World, index: int) -> dict[str, int]:
    """Who accounts for the page's refcount (the pin bias shown apart as `pins`)."""
    page = world.pages[index]
    out: dict[str, int] = {}
    if page.mapcount:
        out["mappings"] = page.mapcount
    if any(f.cache == index for _, f in world.files) or page.swap >= 0:
        out["swap cache" if page.swap >= 0 else "page cache"] = 1
    if page.has(32):  # PG_private: buffer heads
        out["buffers"] = 1
    if page.owner.startswith("other:"):
        out[page.owner[6:]] = 1
    for spec, actor in zip(model.scenario.actors, world.actors, strict=False):
        if actor.op < len(spec.ops):
            kind = spec.ops[actor.op].kind
            mine = actor.reg("page") == index
            if mine and kind in ISOLATING and actor.pc not in ("start",):
                out[f"{spec.name} (isolation)"] = 1
            pin = spec.ops[actor.op].params.get("mode") == "pin"  # counted under "pins"
            if mine and actor.pc in SPECULATIVE.get(kind, ()) and not pin:
                out[f"{spec.name} (speculative)"] = 1
        for held, gen in actor.held:
            if held == index and gen == page.gen and actor.held_mode != "pin":
                out[f"{spec.name} ({actor.held_mode})"] = (
                    out.get(f"{spec.name} ({actor.held_mode})", 0) + 1
                )
    if page.pins:
        out["pins"] = page.pins * GUP_PIN_COUNTING_BIAS
    rest = page.ref - sum(out.values())
    if rest and not page.free:
        out["other"] = rest
    return out


def owner(world: World, index: int) -> str:
    page = world.pages[index]
    if page.free:
        return "free"
    if page.owner.startswith("file:"):
        return "file " + page.owner[5:]
    if page.owner.startswith("other:"):
        return "reallocated to " + page.owner[6:]
    return "anon"


def page_ref(index: int) -> str | None:
    if index == ZERO_PAGE:
        return "zero"
    return None if index < 0 else page_name(index)


def state_view(model: Model, world: World) -> dict[str, Any]:
    pages = []
    for i, p in enumerate(world.pages):
        flags = flag_list(p.flags)
        if p.lru:
            flags.insert(0, "lru")
        pages.append(
            {
                "id": page_name(i),
                "refcount": p.ref,
                "pins": p.pins,
                "mapcount": p.mapcount,
                "flags": flags,
                "lru": p.lru or None,
                "data": p.data,
                "owner": owner(world, i),
                "holders": holders(model, world, i),
                "locked_by": p.locker or None,
            }
        )
    ptes = [
        {
            "proc": proc,
            "addr": addr,
            "page": page_ref(e.page) if (e.present or e.migration) else None,
            "present": e.present,
            "write": e.write,
            "dirty": e.dirty,
            "young": e.young,
            "swap": f"S{e.swap}" if e.swap >= 0 else None,
            "migration": e.migration,
            "file": e.file or None,
        }
        for proc, addr, e in world.ptes
    ]
    swap = [
        {
            "slot": f"S{i}",
            "data": s.data if s.written else None,
            "entries": s.entries,
            "cache": page_ref(s.cache),
        }
        for i, s in enumerate(world.swap)
    ]
    files = [
        {"name": n, "cache": page_ref(f.cache), "disk": f.disk, **({} if f.size else {"size": 0})}
        for n, f in world.files
    ]
    procs = []
    for proc in world.procs:
        lock = (
            f"write: {proc.mmap_writer}"
            if proc.mmap_writer
            else (f"read: {', '.join(proc.mmap_readers)}" if proc.mmap_readers else "")
        )
        procs.append(
            {
                "name": proc.name,
                "mmap_lock": lock or None,
                "pte_lock": proc.ptl or None,
                "write_protect_seq": proc.seq,
                "has_pinned": proc.has_pinned,
            }
        )
    devices = [
        {
            "actor": spec.name,
            "pages": [page_ref(i) for i, _ in a.held],
            "mode": a.held_mode,
            "for": a.held_key,
            "wrote": a.dma or None,
        }
        for spec, a in zip(model.scenario.actors, world.actors, strict=False)
        if a.held
    ]
    expected = [
        {"where": k, "allowed": list(e.allowed), "dma_in_flight": e.inflight}
        for k, e in world.expect
        if e.allowed
    ]
    return {
        "pages": pages,
        "ptes": ptes,
        "swap": swap,
        "files": files,
        "procs": procs,
        "devices": devices,
        "expected": expected,
        # PGDAT_DIRTY: the last kswapd pass saw only dirty file folios the flusher has not
        # queued, which is what lets a later kswapd pass write one itself (pageout).
        "node": [{"name": "node0", "pgdat_dirty": world.pgdat_dirty}],
        "violations": list(world.violations),
    }


KEYS = {
    "pages": "id",
    "ptes": None,
    "swap": "slot",
    "files": "name",
    "procs": "name",
    "devices": "actor",
    "expected": "where",
    "node": "name",
}


def flatten(view: dict[str, Any]) -> dict[str, object]:
    flat: dict[str, object] = {}
    for section, key in KEYS.items():
        for item in view.get(section, []):
            name = item[key] if key else f"{item['proc']}:{item['addr']}"
            for field, value in item.items():
                flat[f"{section}.{name}.{field}"] = repr(value)
    return flat


def flat_changes(a: dict[str, object], b: dict[str, object]) -> tuple[str, ...]:
    """The fields that differ between two flattened views, sorted."""
    return tuple(k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))
