"""The page-state panel as view data: struct page fields, PTEs, and the other sections.

Built from the engine's typed `StateView`. Pages and PTEs get a dedicated layout (they are
what a kernel developer has in their head); each other section (swap slots, files,
devices, what a read may see, the node, the processes' locks) is a list of rows, one per
item. A field is "changed" when the last step's change paths (`pages.P0.refcount`) reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.views import PageView as EnginePage
from engine.views import PteView, StateView, TlbView

SECTION_TITLES = {
    "swap": "Swap",
    "files": "Files (page cache / disk)",
    "devices": "Devices",
    "expected": "What a read may see",
    "node": "Node (reclaim state)",
    "procs": "Processes (mmap_lock, PTE lock)",
    "pmds": "PMDs (huge mappings, cleared or invalidated entries)",
}
ChipKind = Literal["on", "added", "removed", "off", "warn"]


class Changes:
    """Answers "did the last step touch this path?" for dotted paths like pages.P0.refcount."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = tuple(paths)

    def touched(self, *prefixes: str) -> bool:
        for prefix in prefixes:
            for path in self.paths:
                if path == prefix or path.startswith(prefix + ".") or prefix.startswith(path + "."):
                    return True
        return False


@dataclass(frozen=True, slots=True)
class Chip:
    text: str
    kind: ChipKind = "on"
    changed: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    value: str
    changed: bool = False
    chips: tuple[Chip, ...] = ()


@dataclass(frozen=True, slots=True)
class PageView:
    id: str
    title: str
    rows: tuple[Row, ...]
    changed: bool


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class StatePanel:
    pages: tuple[PageView, ...]
    ptes: tuple[Row, ...]
    sections: tuple[Section, ...] = field(default_factory=tuple)


def show(value: Any) -> str:
    """A compact, plain rendering of a state value (escaped later by Jinja)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={show(item)}" for key, item in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(show(item) for item in value) or "—"
    return str(value)


def _quoted(value: Any) -> str:
    return "0" if str(value) == "0" else f'"{value}"'


def _singular(name: str, count: int) -> str:
    # The engine names the mapping holders in the plural: "1 mappings" reads wrong.
    return name[:-1] if count == 1 and name == "mappings" else name


def _refcount_row(page: EnginePage, changes: Changes, prefix: str) -> Row:
    refcount, pins = page.refcount, page.pins
    # The engine's holders already break the count down, the pin bias included ("pins").
    parts = [f"{count} {_singular(name, count)}" for name, count in page.holders if count > 0]
    held = sum(count for _, count in page.holders if count > 0)
    value = str(refcount)
    if refcount == 0 and held:
        # folio_ref_freeze() set the count to 0 while its holders still hold it.
        value += f" · frozen (was {held} = " + " + ".join(parts) + ")"
    elif parts:
        value += " = " + " + ".join(parts)
    changed = changes.touched(f"{prefix}.refcount", f"{prefix}.holders", f"{prefix}.pins")
    chips = (Chip(f"pins {pins}", "on" if pins else "off", changes.touched(f"{prefix}.pins")),)
    return Row("refcount", value, changed, chips)


def _flag_chips(
    flags: Sequence[str], before: Sequence[str] | None, changed: bool
) -> tuple[Chip, ...]:
    chips = [
        Chip(flag, "added" if before is not None and flag not in before else "on") for flag in flags
    ]
    if before is not None:
        chips += [Chip(flag, "removed", True) for flag in before if flag not in flags]
    return tuple(Chip(c.text, c.kind, changed and c.kind != "on") for c in chips)


def page_view(page: EnginePage, before: EnginePage | None, changes: Changes) -> PageView:
    prefix = f"pages.{page.id}"
    prior_flags = before.flags if before is not None else None
    flags_changed = changes.touched(f"{prefix}.flags")
    rows = (
        _refcount_row(page, changes, prefix),
        Row("mapcount", show(page.mapcount), changes.touched(f"{prefix}.mapcount")),
        Row(
            "flags",
            "" if page.flags or prior_flags else "none",
            flags_changed,
            _flag_chips(page.flags, prior_flags, flags_changed),
        ),
        Row("LRU", page.lru or "off LRU", changes.touched(f"{prefix}.lru")),
        Row("data", _quoted(page.data), changes.touched(f"{prefix}.data")),
        Row("owner", show(page.owner), changes.touched(f"{prefix}.owner")),
        *(
            (
                Row(
                    "folio",
                    f"large, order {page.order} ({1 << page.order} pages); "
                    f"entire (PMD) mapcount {page.entire}",
                    changes.touched(f"{prefix}.entire_mapcount"),
                ),
            )
            if page.order
            else ()
        ),
        Row("locked_by", show(page.locked_by), changes.touched(f"{prefix}.locked_by")),
    )
    return PageView(page.id, f"page {page.id}", rows, changes.touched(prefix))


def pte_row(pte: PteView, changes: Changes) -> Row:
    prefix = f"ptes.{pte.key}"
    if pte.page:
        target = f"→ {pte.page}"
    elif pte.swap:
        target = f"→ swap {pte.swap}"
    elif pte.file:
        target = f"→ file {pte.file} (not present)"
    else:
        target = "→ none"
    bits = {"present": pte.present, "write": pte.write, "dirty": pte.dirty, "young": pte.young}
    chips = tuple(
        Chip(bit if on else f"·{bit}", "on" if on else "off", changes.touched(f"{prefix}.{bit}"))
        for bit, on in bits.items()
    )
    return Row(f"PTE {pte.key}", target, changes.touched(prefix), chips)


def tlb_row(entry: TlbView, changes: Changes) -> Row:
    """A CPU's cached translation, shown under the PTE it was filled from."""
    bits = {"write": entry.write, "dirty": entry.dirty}
    chips = tuple(Chip(bit if on else f"·{bit}", "on" if on else "off") for bit, on in bits.items())
    if entry.stale:
        chips += (Chip("⚠ stale", "warn", changes.touched(f"tlb.{entry.key}")),)
    label = f"TLB {entry.cpu} {entry.proc}:{entry.addr}"
    return Row(label, f"→ {entry.page}", changes.touched(f"tlb.{entry.key}"), chips)


def pte_and_tlb_rows(state: StateView, changes: Changes) -> tuple[Row, ...]:
    """Each PTE followed by the TLB entries CPUs hold for it; entries whose PTE is gone last."""
    rows: list[Row] = []
    shown: set[str] = set()
    for pte in state.ptes:
        rows.append(pte_row(pte, changes))
        for entry in state.tlb:
            if (entry.proc, entry.addr) == (pte.proc, pte.addr):
                rows.append(tlb_row(entry, changes))
                shown.add(entry.key)
    rows.extend(tlb_row(e, changes) for e in state.tlb if e.key not in shown)
    return tuple(rows)


def _fields(key: str, pairs: Iterable[tuple[str, Any]]) -> str:
    """`data=A, entries=1, cache=P0`: an item's fields after its key."""
    return show({name: value for name, value in pairs if str(value) != key})


def _expected_text(allowed: Sequence[str]) -> str:
    if not allowed:
        return "nothing written yet"
    return "a read must see " + " or ".join(_quoted(value) for value in allowed)


# Each section: the items of the view it lists, and for an item its key and its text.
SectionRows = Callable[[StateView], Iterable[tuple[str, str]]]
SECTION_ROWS: dict[str, SectionRows] = {
    "swap": lambda v: (
        (
            s.slot,
            _fields(
                s.slot,
                [
                    ("data", s.data),
                    ("entries", s.entries),
                    ("cache", s.cache),
                    *([("has_cache", "pinned")] if s.has_cache else []),
                    *([("free", "yes")] if s.free else []),
                ],
            ),
        )
        for s in v.swap
    ),
    "files": lambda v: (
        (
            f.name,
            _fields(
                f.name,
                [("cache", f.cache), ("disk", f.disk), *([] if f.size else [("size", 0)])],
            ),
        )
        for f in v.files
    ),
    "devices": lambda v: (
        (
            d.actor,
            _fields(
                d.actor,
                [("pages", d.pages), ("mode", d.mode), ("for", d.held_for), ("wrote", d.wrote)],
            ),
        )
        for d in v.devices
    ),
    "expected": lambda v: ((e.where, _expected_text(e.allowed)) for e in v.expected),
    "node": lambda v: ((n.name, _fields(n.name, [("pgdat_dirty", n.pgdat_dirty)])) for n in v.node),
    "pmds": lambda v: (
        (
            m.key,
            f"{m.kind}"
            + (f" → {m.page}" if m.page else "")
            + "".join(
                f", {bit}"
                for bit, on in (("write", m.write), ("dirty", m.dirty), ("young", m.young))
                if on
            ),
        )
        for m in v.pmds
    ),
    "procs": lambda v: (
        (
            p.name,
            _fields(
                p.name,
                [
                    ("mmap_lock", p.mmap_lock),
                    ("pte_lock", p.pte_lock),
                    ("write_protect_seq", p.write_protect_seq),
                    ("has_pinned", p.has_pinned),
                ],
            ),
        )
        for p in v.procs
    ),
}


def state_panel(
    state: StateView, previous: StateView | None, change_paths: Iterable[str]
) -> StatePanel:
    changes = Changes(change_paths)
    pages = tuple(
        page_view(page, previous.page(page.id) if previous else None, changes)
        for page in state.pages
    )
    ptes = pte_and_tlb_rows(state, changes)
    sections = tuple(
        Section(
            key,
            title,
            tuple(
                Row(item, text, changes.touched(f"{key}.{item}"))
                for item, text in SECTION_ROWS[key](state)
            ),
        )
        for key, title in SECTION_TITLES.items()
        # The PMD section only once a scenario has large folios: order-0 panels stay as they were.
        if key != "pmds" or state.pmds
    )
    return StatePanel(pages, ptes, sections)
