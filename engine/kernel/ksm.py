"""KSM merging one page into a KSM page of identical content (mm/ksm.c).

try_to_merge_one_page locks the page and calls write_protect_page, which under the
PTE lock clears the PTE and flushes the TLB (ptep_clear_flush), and only then checks
that nobody but the mappings, the caller and the swap cache holds the page
(page_mapcount + 1 + swapped == page_count); from 5.19 it also refuses to share an
exclusive page that may be pinned (page_try_share_anon_rmap). On success it installs the
entry again write-protected and clean. replace_page then, if the PTE is still that
entry (pte_same), maps the KSM page in its place, read-only, and drops the page.

Counting after the clear is what makes the check hold against GUP-fast, which takes
its reference without any lock: a GUP-fast that read the PTE before the clear and took
its reference after the count sees the PTE changed and backs off; one that took it
before the count is counted. 088b8aa537c2 (6.1) explains why this needs explicit
barriers once the flush no longer waits for GUP-fast (RCU GUP-fast); the model's steps
are sequentially consistent, so it shows the protocol, not the barriers. The design
rule `ksm_count_after_flush` turned off counts first, in a step of its own, and shows
why the order matters (R7).

The KSM page stands for the stable tree's page with the same content, which another
mapping already shares: here it is allocated when the merge replaces the page.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import refs, tlb
from engine.kernel.machine import ADDR, PROC, Blocked, Ctx, Effect, Machine, op
from engine.state import (
    ANON_EXCLUSIVE,
    DIRTY,
    KSM,
    LOCKED,
    NO_PAGE,
    SWAPBACKED,
    SWAPCACHE,
    Page,
    Pte,
    page_name,
)


class Merging(NamedTuple):
    """try_to_merge_one_page, holding the page lock, between its steps."""

    page: int = NO_PAGE
    entry: Pte | None = None  # the write-protected entry write_protect_page installed
    data: str = ""  # the content pages_identical compared: the KSM page's


KSM_MERGE = Machine(Merging)


def merge_start(ctx: Ctx) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    pte = ctx.w.pte(proc, addr)
    if pte is None or not pte.present or pte.file or pte.page < 0:
        ctx.next_op()
        return ctx.effect("try_to_merge_one_page", f"no anonymous page mapped at {addr}")
    index = pte.page
    page = ctx.w.page(index)
    if page.order or ctx.w.folio(index) != index or page.has(KSM):
        ctx.next_op()
        return ctx.effect(
            "try_to_merge_one_page", f"{page_name(index)} is not a small anon page KSM can merge"
        )
    if page.has(LOCKED):
        ctx.next_op()
        return ctx.effect("trylock_page", f"{page_name(index)} is locked: KSM skips it")
    refs.update(ctx, index, page.set(LOCKED).evolve(locker=ctx.name))
    ctx.goto(write_protect, page=index)
    if not ctx.cfg.on("ksm_count_after_flush"):
        return count_first(ctx, index)
    return ctx.then(write_protect)


def expected(page: Page) -> int:
    """page_mapcount + 1 (the caller's reference) + 1 if in the swap cache."""
    return page.mapcount + 1 + (1 if page.has(SWAPCACHE) else 0)


def count_first(ctx: Ctx, index: int) -> Effect:
    """(what if: no clear before the count) the reference check, in its own step."""
    page = ctx.w.page(index)
    # The caller's reference: KSM holds the page it scanned (get_mergeable_page).
    want = expected(page)
    if page.ref + 1 != want:
        return abort(ctx, f"page_count {page.ref + 1} != {want}: someone else holds it")
    return ctx.effect(
        "write_protect_page",
        f"(what if: count first) {page_name(index)}: mapcount + 1 == page_count, "
        "the PTE not yet touched",
    )


def abort(ctx: Ctx, why: str) -> Effect:
    index = ctx.regs(Merging).page
    page = ctx.w.page(index)
    refs.update(ctx, index, page.clear(LOCKED).evolve(locker=""))
    ctx.next_op()
    return ctx.effect("write_protect_page", f"{why}: KSM leaves {page_name(index)} alone")


@KSM_MERGE.step
def write_protect(ctx: Ctx) -> Effect | Blocked:
    """write_protect_page under the PTE lock."""
    proc, addr = ctx.proc, ctx.p("addr")
    index = ctx.regs(Merging).page
    p = ctx.w.proc(proc)
    if p is not None and p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PTE lock of {proc}, held by {p.ptl}")
    pte = ctx.w.pte(proc, addr)
    if pte is None or not pte.present or pte.page != index:
        return abort(ctx, f"{addr} no longer maps {page_name(index)}")
    page = ctx.w.page(index)
    pending = p is not None and p.tlb_pending > 0 and ctx.cfg.on("ksm_tlb_flush_pending")
    if not (pte.write or pte.dirty or pending):
        # Already read-only and clean: write_protect_page has nothing to clear, flush or
        # count (b3a81d0841a9 adds: unless a TLB flush is pending on the mm, when a CPU
        # may still hold a writable, dirty entry the PTE no longer shows).
        ctx.goto(replace, page=index, entry=pte, data=page.data)
        return ctx.effect(
            "write_protect_page",
            f"{addr} is already read-only and clean: no ptep_clear_flush, no count; "
            f"pages_identical compares {page.data!r}",
        )
    waits = tlb.ipi_wait(ctx, "ptep_clear_flush")
    if waits:
        return waits
    # ptep_clear_flush: the PTE is gone and every CPU's entry flushed before the count.
    ctx.w = ctx.w.set_pte(proc, addr, Pte(file=pte.file))
    if ctx.cfg.on("ksm_count_after_flush"):
        want = expected(page)
        if page.ref + 1 != want:
            ctx.w = ctx.w.set_pte(proc, addr, pte)
            return abort(
                ctx,
                f"ptep_clear_flush, then page_count {page.ref + 1} != mapcount + 1 = {want}: "
                "set_pte_at restores the PTE",
            )
    if ctx.cfg.on("anon_exclusive") and page.has(ANON_EXCLUSIVE):
        if page.maybe_dma_pinned():
            ctx.w = ctx.w.set_pte(proc, addr, pte)
            return abort(ctx, "page_try_share_anon_rmap fails: the page may be pinned")
        page = page.clear(ANON_EXCLUSIVE)
    if pte.dirty:
        page = page.set(DIRTY)
    refs.update(ctx, index, page)
    entry = pte.evolve(write=False, dirty=False)
    ctx.w = ctx.w.set_pte(proc, addr, entry)
    ctx.goto(replace, page=index, entry=entry, data=page.data)
    why = "a TLB flush is pending on the mm: " if pending and not (pte.write or pte.dirty) else ""
    return ctx.effect(
        "write_protect_page",
        f"{why}ptep_clear_flush, {page_name(index)} counted ({refs.refs_note(ctx, index)}): "
        f"{addr} is mapped again read-only and clean; pages_identical compares {page.data!r}",
    )


@KSM_MERGE.step
def replace(ctx: Ctx) -> Effect | Blocked:
    """replace_page: if the PTE is still the write-protected entry, map the KSM page."""
    proc, addr = ctx.proc, ctx.p("addr")
    r = ctx.regs(Merging)
    p = ctx.w.proc(proc)
    if p is not None and p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PTE lock of {proc}, held by {p.ptl}")
    index = r.page
    page = ctx.w.page(index)
    if ctx.w.pte(proc, addr) != r.entry:
        refs.update(ctx, index, page.clear(LOCKED).evolve(locker=""))
        ctx.next_op()
        return ctx.effect("replace_page", f"pte_same fails at {addr}: -EFAULT, no merge")
    kpage = Page(
        ref=1, mapcount=1, flags=KSM | SWAPBACKED, lru="inactive_anon", data=r.data, owner="anon"
    )
    ctx.w, k = ctx.w.new_page(kpage)
    ctx.w = ctx.w.set_pte(proc, addr, Pte(page=k, present=True, young=True))
    refs.update(ctx, index, page.clear(LOCKED).evolve(locker="", mapcount=page.mapcount - 1))
    freed = refs.put(ctx, index, what="replace_page")
    tail = ": the last reference, freed" if freed else f" ({refs.refs_note(ctx, index)})"
    ctx.next_op()
    return ctx.effect(
        "replace_page",
        f"{addr} now maps KSM page {page_name(k)} read-only; {page_name(index)} is dropped{tail}",
    )


@op("ksm_merge", (ADDR, PROC), ("try_to_merge_one_page", "write_protect_page", "replace_page"))
def ksm_merge_op(ctx: Ctx) -> Effect | Blocked:
    """ksmd merges the page at `addr` into a KSM page with the same content: write-protect,
    count the references, then replace the mapping (a later write fault copies)."""
    return KSM_MERGE.resume(ctx, merge_start)
