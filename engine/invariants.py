"""What the checker checks, as one registry: the invariants and the fates of a run.

Invariants are "always" properties: a run that breaks one records a violation, named
here. The detectors that fire them live in the steps (refs.py, oracle.py, the paths and
the model's end-of-run checks), KASAN-style, so the sentence is written at the exact
step; this module is where each name is defined, documented and phrased for people.

Fates are what became of the scenario's first page (P0) at the end of a run: the
"sometimes" side, which a scenario's `expect.reachable` promises. A fate has a kind
(`Fate`) and an optional detail ("page_kept: mapped, lazyfree").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    doc: str  # what breaking it means, one sentence (docs/, the language reference)
    phrase: str  # how a verdict reads in words: "loses data" (catalog cards, about panel)


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "lost_write",
        "a read, or the final observation of an address or file, sees a value that is not "
        "allowed there: a CPU store or DMA write was lost, or a stale page was read",
        "loses data",
    ),
    Invariant(
        "use_after_free",
        "a CPU, DMA, GUP or kernel access to a freed page or to a page reallocated to "
        "another owner (a failed try-get on a freed page is not an access)",
        "use-after-free",
    ),
    Invariant("refcount_underflow", "a page's refcount went below zero", "refcount underflow"),
    Invariant(
        "bad_freeze",
        "folio_ref_freeze succeeded while references other than the expected ones were held",
        "bad refcount freeze",
    ),
    Invariant(
        "data_leak",
        "a process observes a value written by or for another process (after fork)",
        "leaks data",
    ),
    Invariant(
        "kernel_bug",
        "a state the kernel would BUG or warn on, e.g. writeback of a dirty file page "
        "without buffers",
        "kernel BUG",
    ),
    Invariant(
        "page_leak",
        "at the end, a page that is not free has references but nobody holds them",
        "leaks a page",
    ),
    Invariant(
        "stale_tlb",
        "a CPU stored through a TLB entry that a returned mprotect had revoked: the kernel "
        "changed the PTE but never flushed the entry (kernel-model.md invariant 13)",
        "writes through a stale TLB entry",
    ),
    Invariant(
        "deadlock", "no actor can take a step, but not every actor has finished", "deadlocks"
    ),
)
BY_NAME = {invariant.name: invariant for invariant in INVARIANTS}
VIOLATIONS: tuple[str, ...] = tuple(BY_NAME)


def phrase(name: str) -> str:
    """How violation `name` reads in words ("loses data"); the name itself if unknown."""
    invariant = BY_NAME.get(name)
    return invariant.phrase if invariant else name


class Fate(StrEnum):
    """What became of P0: the first word of every outcome's label."""

    PAGE_FREED = "page_freed"
    PAGE_KEPT = "page_kept"
    PAGE_SWAPPED = "page_swapped"
    PAGE_MIGRATED = "page_migrated"

    @property
    def doc(self) -> str:
        return FATE_DOCS[self]


FATE_DOCS: dict[Fate, str] = {
    Fate.PAGE_FREED: "the scenario's first page was freed (`page_freed: reused by X` when it "
    "was then allocated again)",
    Fate.PAGE_KEPT: "the page is still in use; the detail says whether it is mapped and what "
    "it is (`page_kept: mapped, swap-backed anon`, `lazyfree`, `page cache`, `off the cache`)",
    Fate.PAGE_SWAPPED: "the page was freed after its data reached a swap slot that a PTE still "
    "points to (`page_swapped: still in the swap cache` while the page stays cached)",
    Fate.PAGE_MIGRATED: "the page was migrated: its mappings now point to a new page",
}
FATES: tuple[str, ...] = tuple(fate.value for fate in Fate)


@dataclass(frozen=True, slots=True)
class FateOf:
    """A fate and its detail; `str()` is the outcome label the checker groups by."""

    fate: Fate
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.fate}: {self.detail}" if self.detail else str(self.fate)

    def matches(self, promise: str) -> bool:
        """Whether a scenario's `reachable` entry ("page_kept", "page_kept: mapped") names
        this fate: the fate's kind, and the detail's beginning if the promise gives one."""
        return str(self).startswith(promise)


def fate_of(label: str) -> FateOf | None:
    """The fate an outcome label names; None for text that names no fate."""
    kind, _, detail = label.partition(": ")
    try:
        return FateOf(Fate(kind), detail)
    except ValueError:
        return None
