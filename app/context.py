"""What a scenario is and where it comes from, for the dashboard header and the catalog cards.

The engine's `Ref` carries a commit, its title and a version only; what each commit did to the
race (introduced it, fixed it, changed the design under it, reverted a fix) is written down here,
from kernel-model.md, until the scenario format carries it. A commit missing from the table is
shown as "related", never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import engine
from app.verdict_strip import ReleaseRun
from engine.fixes import SWITCHES
from engine.invariants import INVARIANTS

Role = Literal["introduced", "fixed", "design", "reverted", "related"]


@dataclass(frozen=True, slots=True)
class Known:
    role: Role
    what: str
    release: str | None = None  # when the scenario file's version is not the mainline release


# kernel-model.md, sections R1-R8 and the history notes; "release" corrects a ref's version
# where the file names the kernel the scenario models rather than the commit's own release.
KNOWN: dict[str, Known] = {
    "802a3a92ad7a": Known("introduced", "reclaim frees clean lazyfree (MADV_FREE) pages"),
    "6c8e2a256915": Known(
        "fixed", "try_to_unmap_one checks ref == 1 + mapcount before discarding a lazyfree page"
    ),
    "d17be2d9ff6c": Known(
        "design", "drops the PageDirty check after a lazyfree page's refcount is frozen"
    ),
    "e286781d5f2e": Known(
        "design", "speculative page references: lockless lookups may take a ref", "2.6.27"
    ),
    "e320d3012d25": Known("fixed", "freeing non-compound pages with a speculative ref"),
    "eddb1c228f79": Known("design", "pin_user_pages and FOLL_PIN: pins counted apart from gets"),
    "17839856fd58": Known("fixed", "GUP breaks COW on a COW-shared page (vmsplice leak)"),
    "a308c71bf1e6": Known("reverted", "removes 17839856fd58's forced COW break in GUP"),
    "09854ba94c6a": Known("fixed", "do_wp_page reuses a page only when refcount allows"),
    "008cfe4418b3": Known("design", "mm->has_pinned: fork can tell an mm has pinned pages"),
    "70e806e4e645": Known("fixed", "fork copies pinned pages for the child early"),
    "57efa1fe5957": Known("fixed", "gup_fast rechecks write_protect_seq: no race with fork"),
    "6c287605fd56": Known("design", "PG_anon_exclusive remembers exclusively mapped anon pages"),
    "feb889fb40fa": Known("fixed", "reclaim keeps pinned anon pages out of the swap cache"),
    "d1e153fea2a8": Known("design", "GUP migrates pinned pages out of the movable zone first"),
    "d824ec2a1546": Known("fixed", "reclaim does not drop private data (buffers) of a pinned page"),
    "cc5095747edf": Known("fixed", "ext4 warns instead of BUG on pages dirtied behind its back"),
    "4647706ebeee": Known(
        "reverted", "flushes every zapped range (4.14); reverted in 4.19 for 99baac21e458's check"
    ),
    "31dbd01f3143": Known(
        "design", "KSM: write-protect and flush before counting references", "2.6.32"
    ),
    "72b252aed506": Known(
        "design", "reclaim batches its TLB flushes (TTU_BATCH_FLUSH), freeing after them", "4.3"
    ),
}

# How a verdict reads in words: "loses data".
PHRASES = {invariant.name: invariant.phrase for invariant in INVARIANTS}


@dataclass(frozen=True, slots=True)
class RefView:
    commit: str
    title: str
    role: Role
    release: str
    what: str
    url: str

    @property
    def badge(self) -> str:
        """ "6c8e2a256915 · fixed in 5.18", "e286781d5f2e · design, 2.6.27"."""
        if self.role in ("fixed", "introduced", "reverted"):
            return f"{self.commit[:12]} · {self.role} in {self.release}"
        return f"{self.commit[:12]} · {self.role}, {self.release}"


@dataclass(frozen=True, slots=True)
class VariantVerdict:
    name: str
    kernel: str
    violations: tuple[str, ...]

    @property
    def words(self) -> str:
        if not self.violations:
            return "no invariant can break"
        return " and ".join(PHRASES.get(v, v) for v in self.violations) + (
            f" ({', '.join(self.violations)})"
        )


@dataclass(frozen=True, slots=True)
class About:
    summary: str
    refs: tuple[RefView, ...]
    verdicts: tuple[VariantVerdict, ...]
    watch: str
    strip: tuple[ReleaseRun, ...] = ()  # the verdict on every release (catalog scenarios)


def _from_switches(commit: str) -> Known | None:
    """A commit the engine models as a fix switch (fixed), a design rule (design), or the
    revert of a fix (reverted), with the switch's own effect as what it did."""
    for fix in SWITCHES.values():
        if fix.commit and fix.commit[:12] == commit:
            return Known("fixed" if fix.version else "design", fix.effect)
        if fix.revert_commit and fix.revert_commit[:12] == commit:
            return Known("reverted", f"removes {fix.commit[:12]} ({fix.name})")
    return None


def ref_view(ref: engine.Ref) -> RefView:
    known = KNOWN.get(ref.commit[:12]) or _from_switches(ref.commit[:12])
    return RefView(
        commit=ref.commit,
        title=ref.title,
        role=known.role if known else "related",
        release=(known.release if known and known.release else ref.version),
        what=known.what if known else "",
        # git.kernel.org resolves an abbreviated id in Linus' tree.
        url=f"https://git.kernel.org/torvalds/c/{ref.commit}",
    )


def _verdicts(scenario: engine.Scenario) -> tuple[VariantVerdict, ...]:
    return tuple(
        VariantVerdict(
            v.name,
            v.kernel,
            tuple(scenario.expect[v.name].violations) if v.name in scenario.expect else (),
        )
        for v in scenario.variants
        if v.name in scenario.expect
    )


def _watch(verdicts: Sequence[VariantVerdict]) -> str:
    bad = [v for v in verdicts if v.violations]
    good = [v for v in verdicts if not v.violations]
    if not verdicts:
        return "Step the actors and watch the page's refcount, mapcount and data change."
    parts = [f"on {v.kernel} ({v.name}) some interleaving {v.words}" for v in bad]
    parts += [f"on {v.kernel} ({v.name}) {v.words}" for v in good]
    text = "What to watch: " + "; ".join(parts) + "."
    if bad and good:
        text += (
            " Find a bug (f) shows the shortest such interleaving; the kernel switch (k) replays"
            " it on the other kernel and marks the steps that differ (≠)."
        )
    elif bad:
        text += " Find a bug (f) shows the shortest such interleaving."
    return text


def about(scenario: engine.Scenario, strip: tuple[ReleaseRun, ...] = ()) -> About:
    verdicts = _verdicts(scenario)
    return About(
        summary=scenario.summary,
        refs=tuple(ref_view(ref) for ref in scenario.refs),
        verdicts=verdicts,
        watch=_watch(verdicts),
        strip=strip,
    )
