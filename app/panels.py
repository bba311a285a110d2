"""The page-state panel as view data: struct page fields, PTEs, and everything else.

Pages and PTEs get a dedicated layout (they are what a kernel developer has in their head);
every other key of the engine's state dict is shown generically so new keys never break the
page. A field is "changed" when the last step's change paths reach it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SECTION_TITLES = {
    "swap": "Swap",
    "files": "Files (page cache / disk)",
    "devices": "Devices",
    "locks": "Locks",
    "expected": "What a read may see",
    "node": "Node (reclaim state)",
}
ChipKind = Literal["on", "added", "removed", "off"]


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


def _refcount_row(page: Mapping[str, Any], changes: Changes, prefix: str) -> Row:
    refcount = int(page.get("refcount", 0))
    pins = int(page.get("pins", 0))
    holders = page.get("holders") or {}
    # The engine's holders already break the count down, the pin bias included ("pins").
    parts = [f"{count} {_singular(name, count)}" for name, count in holders.items() if count > 0]
    held = sum(count for count in holders.values() if count > 0)
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


def page_view(
    page: Mapping[str, Any], before: Mapping[str, Any] | None, changes: Changes
) -> PageView:
    page_id = str(page.get("id", "?"))
    prefix = f"pages.{page_id}"
    flags = list(page.get("flags") or [])
    prior_flags = list(before.get("flags") or []) if before is not None else None
    flags_changed = changes.touched(f"{prefix}.flags")
    rows = [
        _refcount_row(page, changes, prefix),
        Row("mapcount", show(page.get("mapcount")), changes.touched(f"{prefix}.mapcount")),
        Row(
            "flags",
            "" if flags or prior_flags else "none",
            flags_changed,
            _flag_chips(flags, prior_flags, flags_changed),
        ),
        Row(
            "LRU",
            show(page.get("lru")) if page.get("lru") else "off LRU",
            changes.touched(f"{prefix}.lru"),
        ),
        Row("data", _quoted(page.get("data", "")), changes.touched(f"{prefix}.data")),
        Row("owner", show(page.get("owner")), changes.touched(f"{prefix}.owner")),
    ]
    known = {"id", "refcount", "pins", "mapcount", "flags", "lru", "data", "owner", "holders"}
    rows += [
        Row(str(key), show(value), changes.touched(f"{prefix}.{key}"))
        for key, value in page.items()
        if key not in known
    ]
    title = f"page {page_id}"
    return PageView(page_id, title, tuple(rows), changes.touched(prefix))


def pte_key(pte: Mapping[str, Any]) -> str:
    return f"{pte.get('proc', '?')}:{pte.get('addr', '?')}"


def pte_row(pte: Mapping[str, Any], changes: Changes) -> Row:
    key = pte_key(pte)
    prefix = f"ptes.{key}"
    if pte.get("page"):
        target = f"→ {pte['page']}"
    elif pte.get("swap"):
        target = f"→ swap {pte['swap']}"
    elif pte.get("file"):
        target = f"→ file {pte['file']} (not present)"
    else:
        target = "→ none"
    chips = tuple(
        Chip(
            bit if pte.get(bit) else f"·{bit}",
            "on" if pte.get(bit) else "off",
            changes.touched(f"{prefix}.{bit}"),
        )
        for bit in ("present", "write", "dirty", "young")
    )
    changed = changes.touched(prefix)
    return Row(f"PTE {key}", target, changed, chips)


def _row_key(item: Mapping[str, Any], index: int) -> str:
    for name in ("id", "name", "actor", "where", "slot"):
        if name in item:
            return str(item[name])
    if "proc" in item and "addr" in item:
        return pte_key(item)
    return str(index)


def _generic_rows(key: str, value: Any, changes: Changes) -> tuple[Row, ...]:
    if isinstance(value, Mapping):
        return tuple(
            Row(str(name), show(item), changes.touched(f"{key}.{name}"))
            for name, item in value.items()
        )
    if isinstance(value, list | tuple):
        rows = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                row_key = _row_key(item, index)
                rest = {k: v for k, v in item.items() if str(v) != row_key}
                text = _expected_text(item) if key == "expected" else show(rest)
                touched = changes.touched(f"{key}.{row_key}", f"{key}.{index}")
                rows.append(Row(row_key, text, touched))
            else:
                rows.append(Row(str(index), show(item), changes.touched(f"{key}.{index}")))
        return tuple(rows)
    return (Row(key, show(value), changes.touched(key)),)


def _expected_text(item: Mapping[str, Any]) -> str:
    allowed = [_quoted(value) for value in item.get("allowed") or []]
    if not allowed:
        return "nothing written yet"
    return "a read must see " + " or ".join(allowed)


def state_panel(
    state: Mapping[str, Any], previous: Mapping[str, Any] | None, change_paths: Iterable[str]
) -> StatePanel:
    changes = Changes(change_paths)
    before_pages = {str(p.get("id")): p for p in (previous or {}).get("pages") or []}
    pages = tuple(
        page_view(page, before_pages.get(str(page.get("id"))) if previous else None, changes)
        for page in state.get("pages") or []
    )
    ptes = tuple(pte_row(pte, changes) for pte in state.get("ptes") or [])
    order = [key for key in SECTION_TITLES if key in state]
    hidden = ("pages", "ptes", "violations")  # violations have their own banner
    order += [key for key in state if key not in SECTION_TITLES and key not in hidden]
    sections = tuple(
        Section(key, SECTION_TITLES.get(key, key), _generic_rows(key, state[key], changes))
        for key in order
    )
    return StatePanel(pages, ptes, sections)
