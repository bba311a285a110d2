"""Catalog cards: what each scenario is, where it comes from, and what it shows on which kernel."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import engine
from app.context import PHRASES, ref_view


@dataclass(frozen=True, slots=True)
class Badge:
    text: str
    kind: Literal["bad", "good", "ref"]
    title: str = ""


@dataclass(frozen=True, slots=True)
class Card:
    id: str
    title: str
    summary: str
    tags: tuple[str, ...]
    refs: tuple[Badge, ...]
    verdicts: tuple[Badge, ...]


def verdicts(scenario: engine.Scenario) -> tuple[Badge, ...]:
    """One badge per variant, from the scenario's `expect` (what the catalog promises)."""
    kernels = {v.name: v.kernel for v in scenario.variants}
    shared = Counter(kernels.get(name, name) for name in scenario.expect)
    badges = []
    for name, expect in scenario.expect.items():
        kernel = kernels.get(name, name)
        if shared[kernel] > 1:
            # Two what-if variants of one kernel differ by a fix switch: name the variant,
            # or "safe on 6.4" sits next to "loses data on 6.4".
            kernel = f"{kernel} ({name})"
        if expect.violations:
            what = " + ".join(PHRASES.get(v, v) for v in expect.violations)
            badges.append(Badge(f"✖ {what} on {kernel}", "bad", ", ".join(expect.violations)))
        else:
            badges.append(Badge(f"✓ safe on {kernel}", "good", "no violation reachable"))
    return tuple(badges)


def card(scenario: engine.Scenario) -> Card:
    refs = tuple(
        Badge(view.badge, "ref", f"{view.title}: {view.what}" if view.what else view.title)
        for view in map(ref_view, scenario.refs)
    )
    return Card(
        scenario.id,
        scenario.title,
        scenario.summary,
        tuple(scenario.tags),
        refs,
        verdicts(scenario),
    )


def matches(scenario: engine.Scenario, query: str, tag: str | None) -> bool:
    if tag and tag not in scenario.tags:
        return False
    if not query:
        return True
    haystack = " ".join(
        [
            scenario.id,
            scenario.title,
            scenario.summary,
            *scenario.tags,
            *(f"{ref.commit} {ref.title} {ref.version}" for ref in scenario.refs),
        ]
    ).lower()
    return all(word in haystack for word in query.lower().split())


def cards(
    catalog: Mapping[str, engine.Scenario], query: str = "", tag: str | None = None
) -> list[Card]:
    return [card(sc) for sc in catalog.values() if matches(sc, query, tag)]


def all_tags(scenarios: Iterable[engine.Scenario]) -> list[str]:
    """Tags, most used first, so the common filters come first."""
    counts = Counter(tag for sc in scenarios for tag in sc.tags)
    return sorted(counts, key=lambda tag: (-counts[tag], tag))
