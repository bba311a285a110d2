"""One pass of shrink_folio_list over one page (mm/vmscan.c, with try_to_unmap_one of mm/rmap.c).

The pass: isolate the folio from its LRU (+1), trylock it, look at the referenced
bits, add an anonymous page to the swap cache (unless it may be pinned), unmap it
PTE by PTE (ptep_get_and_clear, then try_to_unmap_one decides: discard a clean
lazyfree page, install a swap entry, or restore the PTE), write it out if dirty,
release buffers, and free it: folio_ref_freeze(1) for a lazyfree page, or
__remove_mapping (freeze at 2, then PG_dirty) for page-cache and swap-cache pages.
Everything that does not end in a free ends in folio_putback_lru.

Who reclaims matters for dirty file folios: the actor is kswapd unless the op says
`direct: true`. A dirty file folio is never written on the pass that first finds it
dirty: it gets PG_reclaim and goes back to the active list. Only kswapd writes one,
on a later pass, with PG_reclaim still set, PGDAT_DIRTY set (an earlier kswapd pass
found only dirty file folios not yet under writeback) and a FOLIOREF_RECLAIM
verdict, and only while ext4 still has ->writepage (before 6.2). Written pages,
file or swap, are under asynchronous I/O: the pass keeps them (PG_writeback), the
completion (folio_end_writeback) follows as this actor's last step, and a later
pass frees them.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import refs, swap, thp, tlb, zswap
from engine.kernel.filemap import writepage
from engine.kernel.machine import (
    PROC,
    Blocked,
    Ctx,
    Effect,
    Machine,
    Param,
    StepFn,
    exactly_one,
    holding,
    op,
)
from engine.state import (
    ANON_EXCLUSIVE,
    DIRTY,
    LOCKED,
    NO_PAGE,
    PRIVATE,
    RECLAIM,
    REFERENCED,
    SWAPBACKED,
    SWAPCACHE,
    WRITEBACK,
    ZERO_PAGE,
    Page,
    Pte,
    page_name,
)

STEPS = (
    "isolate_lru_folio",
    "folio_trylock",
    "folio_test_writeback",
    "folio_check_references",
    "folio_maybe_dma_pinned",
    "folio_mapped",
    "split_folio_to_list",
    "add_to_swap",
    "folio_set_reclaim",
    "split_huge_pmd_address",
    "ptep_get_and_clear",
    "try_to_unmap_one",
    "pageout",
    "filemap_release_folio",
    "folio_ref_freeze",
    "folio_test_dirty",
    "free_unref_page_list",
    "folio_putback_lru",
    "folio_end_writeback",
)


def target(ctx: Ctx) -> int:
    """The page the op names, resolved when the op starts."""
    if ctx.p("file"):
        return ctx.w.file(ctx.p("file")).cache
    pte = ctx.w.pte(ctx.proc, ctx.p("addr"))
    if pte is None:
        return -1
    if pte.present and pte.page != ZERO_PAGE:
        return pte.page
    if pte.swap >= 0:
        return ctx.w.swap[pte.swap].cache
    return -1


def file_lru(p: Page) -> bool:
    """folio_is_file_lru: page cache pages and lazyfree anon pages (PG_swapbacked clear)."""
    return not p.has(SWAPBACKED)


def sets_pgdat_dirty(ctx: Ctx, p: Page, checked: bool) -> bool:
    """Whether this pass lets shrink_node set PGDAT_DIRTY (nr.unqueued_dirty == nr.file_taken).

    Only kswapd sets it. With one folio per pass, an anon folio is not file_taken; a file
    folio counts as unqueued dirty when folio_check_dirty_writeback (run after the trylock,
    so `checked`) saw PG_dirty without PG_writeback. A lazyfree folio is never dirty there.
    """
    if ctx.flagp("direct"):
        return False
    if not file_lru(p):
        return True
    return checked and not p.anon and p.has(DIRTY) and not p.has(WRITEBACK)


class Regs(NamedTuple):
    """What one pass of shrink_folio_list keeps between its steps."""

    page: int = NO_PAGE  # the folio, once isolated
    lru: str = ""  # the LRU list it was taken from
    pgdat: bool = False  # this pass lets shrink_node set PGDAT_DIRTY
    clean_only: bool = False  # FOLIOREF_RECLAIM_CLEAN
    proc: str = ""  # the mapping try_to_unmap_one is deciding on
    addr: str = ""
    old: Pte | None = None  # its PTE before ptep_get_and_clear
    activate: bool = False  # putback to the active list
    io: bool = False  # a write was started: folio_end_writeback is this actor's last step
    gen: int = -1  # the folio's generation when that write started
    # With CPUs: the mappings try_to_unmap cleared whose TLB flush TTU_BATCH_FLUSH deferred
    # (set_tlb_ubc_flush_pending), flushed by try_to_unmap_flush[_dirty].
    flushes: tuple[tuple[str, str], ...] = ()


SHRINK = Machine(Regs)


def regs(ctx: Ctx) -> Regs:
    return ctx.regs(Regs)


def end_pass(ctx: Ctx) -> None:
    if regs(ctx).pgdat:
        ctx.w = ctx.w.evolve(pgdat_dirty=True)


def page(ctx: Ctx) -> tuple[int, Page]:
    index = regs(ctx).page
    return index, ctx.w.page(index)


def isolate(ctx: Ctx) -> Effect:
    index = target(ctx)
    if index < 0:
        ctx.next_op()
        return ctx.effect("isolate_lru_folio", "no page to reclaim there")
    index = ctx.w.folio(index)  # a subpage of a large folio: the LRU holds its folio
    p = ctx.w.page(index)
    if not p.lru or not refs.try_get(ctx, index):
        ctx.next_op()
        return ctx.effect("isolate_lru_folio", f"{page_name(index)} is not on an LRU list: skipped")
    refs.update(ctx, index, ctx.w.page(index).evolve(lru=""))
    ctx.goto(trylock, page=index, lru=p.lru, pgdat=sets_pgdat_dirty(ctx, p, checked=False))
    return ctx.effect(
        "isolate_lru_folio",
        f"{ctx.name} takes {page_name(index)} off the {p.lru} LRU ({refs.refs_note(ctx, index)})",
    )


@SHRINK.step
def trylock(ctx: Ctx) -> Effect:
    index, p = page(ctx)
    if p.has(LOCKED):
        ctx.goto(putback, activate=False)
        return ctx.effect("folio_trylock", f"{page_name(index)} is locked by {p.locker}: keep it")
    refs.update(ctx, index, p.set(LOCKED).evolve(locker=ctx.name))
    ctx.goto(check_references, pgdat=sets_pgdat_dirty(ctx, p, checked=True))
    return ctx.effect("folio_trylock", f"{ctx.name} locks {page_name(index)}")


def set_reclaim_and_activate(ctx: Ctx, index: int, function: str, note: str) -> Effect:
    """folio_set_reclaim, then activate_locked: the folio is kept this pass, and the end of
    its writeback (or the flusher's) rotates it for a later one."""
    refs.update(ctx, index, ctx.w.page(index).set(RECLAIM))
    ctx.goto(putback, activate=True)
    return ctx.effect(function, note)


@SHRINK.step
def check_references(ctx: Ctx) -> Effect:
    index, p = page(ctx)
    if p.has(WRITEBACK):
        # shrink_folio_list's writeback cases 1 and 2: PG_reclaim, so that the end of the
        # I/O rotates it to the tail of the inactive list, and activate_locked.
        return set_reclaim_and_activate(
            ctx,
            index,
            "folio_test_writeback",
            f"{page_name(index)} is under writeback: PG_reclaim, activate; "
            "a pass after the I/O ends can free it",
        )
    young = [(pr, a, e) for pr, a, e in thp.folio_mappers(ctx, index) if e.young]
    for pr, a, e in young:
        ctx.w = ctx.w.set_pte(pr, a, e.evolve(young=False))
    referenced = p.has(REFERENCED)
    p = ctx.w.page(index).clear(REFERENCED)
    if young:
        mappings = thp.referenced_mappings(ctx, young) if p.order else len(young)
        if p.has(SWAPBACKED) or referenced or mappings > 1:
            # folio_set_referenced comes before the activation test, so a file folio keeps
            # the mark (5.x returned for a swap-backed folio before setting it).
            refs.update(ctx, index, p if p.has(SWAPBACKED) else p.set(REFERENCED))
            ctx.goto(putback, activate=True)
            return ctx.effect(
                "folio_check_references",
                f"folio_referenced clears {mappings} young PTE bit(s): recently used, activate",
            )
        refs.update(ctx, index, p.set(REFERENCED))
        ctx.goto(putback, activate=False)
        return ctx.effect(
            "folio_check_references",
            "folio_referenced clears the young PTE bit: used once, keep it for this pass",
        )
    refs.update(ctx, index, p)
    if referenced and file_lru(p):
        # FOLIOREF_RECLAIM_CLEAN: PG_referenced without a young PTE.
        ctx.goto(next_after_references(ctx), clean_only=True)
        return ctx.effect(
            "folio_check_references",
            f"{page_name(index)} has PG_referenced but no young PTE: FOLIOREF_RECLAIM_CLEAN "
            "(reclaim it only if it is clean)",
        )
    ctx.goto(next_after_references(ctx))
    return ctx.effect(
        "folio_check_references", f"{page_name(index)} was not referenced: reclaim it"
    )


def next_after_references(ctx: Ctx) -> StepFn:
    index, p = page(ctx)
    if p.order and split_before_unmap(ctx, p):
        return split_to_list
    if p.anon and p.has(SWAPBACKED) and not p.has(SWAPCACHE):
        return add_to_swap
    return unmap_clear if ctx.w.folio_mapcount(index) else pageout


def split_before_unmap(ctx: Ctx, p: Page) -> bool:
    """Whether shrink_folio_list splits this large folio before try_to_unmap: an anon one
    on its way to swap, and (until 820c4e2e6f51, 5.18) any other, file or lazyfree."""
    if p.anon and p.has(SWAPBACKED):
        return not p.has(SWAPCACHE)
    return not ctx.cfg.on("lazyfree_folio_no_split")


@SHRINK.step
def split_to_list(ctx: Ctx) -> Effect | Blocked:
    """split_folio_to_list of a large folio, which this pass holds isolated and locked.

    Anon: folio_maybe_dma_pinned keeps it out of swap; can_split_folio must pass ("cannot
    split folio, skip it": activate); a folio no PMD maps is split right away, a
    PMD-mapped one after add_to_swap fails to get a whole THP's swap cluster (the model's
    swap device has none: THP_SWPOUT_FALLBACK). Either way the head, now order-0, goes on
    to add_to_swap. Before 5.18, a lazyfree folio is split too ("Split file THP"), and a
    failure keeps it. The tails go back on the LRU for a later pass (the kernel queues
    them on this pass's own list)."""
    index, p = page(ctx)
    r = regs(ctx)
    wait = thp.pmd_lock_wait(ctx, index)
    if wait:
        return wait
    swapping = p.anon and p.has(SWAPBACKED)
    if swapping and ctx.cfg.on("no_swapcache_for_pinned") and p.maybe_dma_pinned():
        ctx.goto(putback, activate=False)
        return ctx.effect(
            "folio_maybe_dma_pinned", f"{page_name(index)} may be DMA-pinned: keep it out of swap"
        )
    if swapping and not thp.can_split(ctx, index):
        ctx.goto(putback, activate=True)
        return ctx.effect(
            "split_folio_to_list",
            f"can_split_folio: {page_name(index)} has extra references "
            f"({refs.refs_note(ctx, index)}): cannot split, activate",
        )
    why = (
        "no PMD maps it: split right away"
        if swapping and not p.entire
        else "add_to_swap finds no free THP swap cluster: THP_SWPOUT_FALLBACK, split"
        if swapping
        else "a large folio that is not swap-backed is split before unmapping (before 5.18)"
    )
    note = thp.split_folio(ctx, index, locked=True, tails_lru=r.lru)
    if ctx.w.page(index).order:
        ctx.goto(putback, activate=swapping)
        return ctx.effect(
            "split_folio_to_list", f"{why}; {note}: {'activate' if swapping else 'keep'}"
        )
    ctx.goto(next_after_references(ctx))
    return ctx.effect("split_folio_to_list", f"{why}; {note}")


@SHRINK.step
def add_to_swap(ctx: Ctx) -> Effect:
    index, p = page(ctx)
    if ctx.cfg.on("no_swapcache_for_pinned") and p.maybe_dma_pinned():
        ctx.goto(putback, activate=False)
        return ctx.effect(
            "folio_maybe_dma_pinned", f"{page_name(index)} may be DMA-pinned: keep it out of swap"
        )
    slot = swap.alloc_slot(ctx, index)
    if slot is None:
        ctx.goto(putback, activate=True)
        return ctx.effect(
            "add_to_swap", "folio_alloc_swap fails: the swap device is going away (swapoff)"
        )
    refs.update(ctx, index, p.set(SWAPCACHE | DIRTY).evolve(ref=p.ref + 1, swap=slot))
    ctx.goto(unmap_clear if p.mapcount else pageout)
    return ctx.effect(
        "add_to_swap",
        f"{page_name(index)} enters the swap cache at slot S{slot}, marked dirty "
        f"({refs.refs_note(ctx, index)})",
    )


@SHRINK.step
def unmap_clear(ctx: Ctx) -> Effect | Blocked:
    index, folio = page(ctx)
    if folio.order:
        split = split_huge_pmd_address(ctx, index)
        if split:
            return split
    mappers = thp.folio_mappers(ctx, index)
    if not mappers:
        return ctx.then(pageout)
    proc, addr, pte = mappers[0]
    p = ctx.w.proc(proc)
    if p is not None and p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PTE lock of {proc}, held by {p.ptl}")
    note = f"clears the PTE of {proc}:{addr}"
    if ctx.cpu and tlb.pending(ctx, proc, addr):
        # TTU_BATCH_FLUSH: ptep_get_and_clear, and set_tlb_ubc_flush_pending defers the
        # flush; from 3ea277194daa it also marks the mm (mm->tlb_flush_batched).
        ctx.w = ctx.w.set_pte(proc, addr, Pte(file=pte.file), flush=False)
        ctx.update(flushes=(*regs(ctx).flushes, (proc, addr)))
        if p is not None and ctx.cfg.on("flush_tlb_batched_pending"):
            p = p.evolve(tlb_batch=p.tlb_batch + 1)
        note += " (its TLB flush deferred: set_tlb_ubc_flush_pending)"
    else:
        ctx.w = ctx.w.set_pte(proc, addr, Pte(file=pte.file))
    if p is not None:
        # The PTE lock is held until try_to_unmap_one has decided: faults wait, GUP-fast doesn't.
        ctx.w = ctx.w.set_proc(p.evolve(ptl=ctx.name))
    if pte.dirty:
        refs.mark_dirty(ctx, index)
        note += "; it was dirty: folio_mark_dirty"
    else:
        note += " (clean)"
    ctx.goto(decide, proc=proc, addr=addr, old=pte)
    return ctx.effect("ptep_get_and_clear", note)


def split_huge_pmd_address(ctx: Ctx, index: int) -> Effect | Blocked | None:
    """try_to_unmap_one with TTU_SPLIT_HUGE_PMD: a huge PMD mapping the folio is split
    into PTEs first, under the PMD lock; None if no huge PMD maps it."""
    where = thp.huge_pmd_of(ctx, index)
    if where is None:
        return None
    proc, region = where
    owner = ctx.w.proc(proc)
    if owner is not None and owner.ptl and owner.ptl != ctx.name:
        return Blocked(
            f"split_huge_pmd_address waits for the PMD lock of {region}, held by {owner.ptl}"
        )
    note = thp.split_pmd(ctx, proc, region)
    ctx.goto(unmap_clear)
    return ctx.effect("split_huge_pmd_address", f"TTU_SPLIT_HUGE_PMD: {note}")


def restore(ctx: Ctx, why: str, swapbacked: bool = False) -> Effect:
    index, p = page(ctx)
    r = regs(ctx)
    assert r.old is not None  # set by unmap_clear, the step before decide
    ctx.w = ctx.w.set_pte(r.proc, r.addr, r.old)
    if swapbacked:
        refs.update(ctx, index, p.set(SWAPBACKED))
    ctx.goto(putback, activate=True)
    return ctx.effect("try_to_unmap_one", f"{why}: set_pte_at restores the PTE; keep it mapped")


@SHRINK.step
def decide(ctx: Ctx) -> Effect:
    index, p = page(ctx)
    proc, addr = regs(ctx).proc, regs(ctx).addr
    old = regs(ctx).old
    # The subpage this mapping maps (the folio itself for an order-0 page).
    sub = old.page if p.order and old is not None else index
    owner = ctx.w.proc(proc)
    if owner is not None and owner.ptl == ctx.name:
        ctx.w = ctx.w.set_proc(owner.evolve(ptl=""))
    if p.lazyfree:
        mapped = ctx.w.folio_mapcount(index)
        if ctx.cfg.on("lazyfree_refcount_check"):
            ok = p.ref == 1 + mapped and not p.has(DIRTY)
            why = f"ref={p.ref}, map={mapped}, {'dirty' if p.has(DIRTY) else 'clean'}"
        else:
            ok = not p.has(DIRTY)
            why = "PG_dirty set" if p.has(DIRTY) else "PG_dirty clear"
        if not ok:
            return restore(ctx, f"lazyfree {page_name(index)} {why}: folio_set_swapbacked", True)
        s = ctx.w.page(sub)
        refs.update(ctx, sub, s.evolve(mapcount=s.mapcount - 1))
        refs.put(ctx, index, what="try_to_unmap_one")
        ctx.goto(unmap_clear)
        return ctx.effect(
            "try_to_unmap_one",
            f"lazyfree {page_name(index)} may go ({why}): discard; {proc}:{addr} "
            f"stays empty ({refs.refs_note(ctx, index)})",
        )
    if p.anon:
        if ctx.cfg.on("anon_exclusive") and p.has(ANON_EXCLUSIVE) and p.maybe_dma_pinned():
            return restore(ctx, f"page_try_share_anon_rmap fails: {page_name(index)} may be pinned")
        slot = ctx.w.swap[p.swap]
        ctx.w = ctx.w.set_slot(p.swap, slot.evolve(entries=slot.entries + 1))
        ctx.w = ctx.w.set_pte(proc, addr, Pte(swap=p.swap, exclusive_swap=p.has(ANON_EXCLUSIVE)))
        refs.update(ctx, index, p.clear(ANON_EXCLUSIVE).evolve(mapcount=p.mapcount - 1))
        refs.put(ctx, index, what="try_to_unmap_one")
        ctx.goto(unmap_clear)
        return ctx.effect(
            "try_to_unmap_one",
            f"{proc}:{addr} now holds swap entry S{p.swap} ({refs.refs_note(ctx, index)})",
        )
    refs.update(ctx, index, p.evolve(mapcount=p.mapcount - 1))
    refs.put(ctx, index, what="try_to_unmap_one")
    ctx.goto(unmap_clear)
    return ctx.effect(
        "try_to_unmap_one", f"file page {page_name(index)} unmapped from {proc}:{addr}"
    )


@SHRINK.step
def pageout(ctx: Ctx) -> Effect | Blocked:
    index, p = page(ctx)
    if ctx.cfg.on("keep_pinned_private") and p.maybe_dma_pinned():
        ctx.goto(putback, activate=True)
        return ctx.effect(
            "folio_maybe_dma_pinned",
            f"{page_name(index)} is unmapped but may be DMA-pinned: activate, keep its buffers",
        )
    if not p.has(DIRTY) or p.lazyfree:
        return ctx.then(release)
    if not p.has(SWAPCACHE):
        early = defer_dirty_file(ctx, index, p)
        if early:
            return early
    if ctx.cfg.on("tlb_flush_dirty_before_io"):
        flush(ctx)  # try_to_unmap_flush_dirty: no store may land after the data is taken
    p = ctx.w.page(index)
    # is_page_cache_freeable: only the isolation and cache references (and buffers).
    if p.ref - p.has(PRIVATE) != 2:
        ctx.goto(putback, activate=False)
        return ctx.effect(
            "pageout",
            f"is_page_cache_freeable: ref={p.ref}, someone else holds {page_name(index)}: "
            "PAGE_KEEP, not written",
        )
    if p.has(SWAPCACHE) and ctx.w.zswap:
        # swap_writepage: zswap_store takes the page, folio_end_writeback at once; clean
        # and not under writeback, the folio can be freed in this same pass.
        note = zswap.store(ctx, index)
        ctx.goto(release)
        return ctx.effect("pageout", note)
    if p.has(SWAPCACHE):
        # swap_writepage -> __swap_writepage: set_page_writeback, unlock, submit_bio.
        slot = ctx.w.swap[p.swap]
        ctx.w = ctx.w.set_slot(p.swap, slot.evolve(data=p.data, written=True))
        refs.update(ctx, index, p.clear(DIRTY).set(WRITEBACK | RECLAIM))
        ctx.goto(putback, activate=False, io=True, gen=p.gen)
        return ctx.effect(
            "pageout",
            f"folio_clear_dirty_for_io; swap_writepage submits {p.data!r} to slot S{p.swap}: "
            "under writeback, kept for this pass",
        )
    refs.update(ctx, index, p.clear(DIRTY))
    written, note = writepage(ctx, index)
    if not written:
        # No I/O started: PAGE_SUCCESS on a clean folio that is not under writeback.
        ctx.goto(release)
        return ctx.effect("pageout", f"folio_clear_dirty_for_io; {note}")
    refs.update(ctx, index, ctx.w.page(index).set(WRITEBACK | RECLAIM))
    ctx.goto(putback, activate=False, io=True, gen=p.gen)
    return ctx.effect(
        "pageout",
        f"folio_clear_dirty_for_io; {note}: under writeback, kept for this pass (its buffers stay)",
    )


def defer_dirty_file(ctx: Ctx, index: int, p: Page) -> Effect | None:
    """The dirty-file-folio rules of shrink_folio_list and pageout; None lets kswapd write it."""
    if ctx.flagp("direct"):
        why = "direct reclaim never writes file folios"
    elif not p.has(RECLAIM):
        why = "first seen dirty (no PG_reclaim yet)"
    elif not ctx.w.pgdat_dirty:
        why = "PGDAT_DIRTY is clear"
    else:
        why = ""
    if why:
        return set_reclaim_and_activate(
            ctx,
            index,
            "folio_set_reclaim",
            f"dirty file {page_name(index)}, {why}: PG_reclaim, activate; "
            "the flusher is to write it",
        )
    if regs(ctx).clean_only:
        ctx.goto(putback, activate=False)
        return ctx.effect(
            "folio_check_references",
            f"dirty {page_name(index)} and FOLIOREF_RECLAIM_CLEAN: keep it",
        )
    if ctx.cfg.on("ext4_no_writepage"):
        ctx.goto(putback, activate=True)
        return ctx.effect(
            "pageout",
            "ext4 has no ->writepage (dae999602eeb): PAGE_ACTIVATE, only the flusher writes it",
        )
    return None


@SHRINK.step
def release(ctx: Ctx) -> Effect | Blocked:
    index, p = page(ctx)
    if not p.has(PRIVATE):
        return ctx.then(free)
    if p.has(DIRTY):
        ctx.goto(putback, activate=True)
        return ctx.effect("filemap_release_folio", "buffers are dirty: cannot release, activate")
    refs.update(ctx, index, p.clear(PRIVATE).evolve(ref=p.ref - 1))
    ctx.goto(free)
    return ctx.effect(
        "filemap_release_folio",
        f"try_to_free_buffers drops the buffer heads of {page_name(index)} "
        f"({refs.refs_note(ctx, index)})",
    )


@SHRINK.step
def free(ctx: Ctx) -> Effect | Blocked:
    index, p = page(ctx)
    if ctx.w.folio_mapcount(index):
        ctx.goto(putback, activate=True)
        return ctx.effect("folio_mapped", f"{page_name(index)} is still mapped: activate")
    if p.lazyfree:
        return ctx.then(freeze_lazyfree)
    # __remove_mapping: freeze, then PG_dirty; the "what if" order tests PG_dirty first.
    if ctx.cfg.on("freeze_before_dirty"):
        return ctx.then(remove_freeze)
    return ctx.then(remove_test_dirty)


def freeze_lazyfree(ctx: Ctx) -> Effect:
    index, p = page(ctx)
    if not ctx.cfg.on("lazyfree_freeze"):
        if p.ref != 1:
            ctx.violate(
                "bad_freeze",
                f"{ctx.name} frees {page_name(index)} without folio_ref_freeze while "
                f"{p.ref - 1} other reference(s) exist",
            )
        refs.update(ctx, index, p.evolve(ref=0))
        ctx.goto(free_it)
        return ctx.effect(
            "folio_ref_freeze",
            f"(what if: no freeze) refcount of {page_name(index)} forced from {p.ref} to 0",
            f"no folio_ref_freeze (what if): ref {p.ref} -> 0",
        )
    # shrink_folio_list: `if (!folio_ref_freeze(folio, 1)) goto keep_locked;`
    if p.ref != 1:
        ctx.goto(putback, activate=False)
        call = f"folio_ref_freeze(folio, 1) fails: ref {p.ref}"
        return ctx.effect("folio_ref_freeze", f"{call}, someone else holds it: keep", call)
    refs.update(ctx, index, p.evolve(ref=0))
    if not ctx.cfg.on("lazyfree_no_dirty_after_freeze") and p.has(DIRTY):
        refs.update(ctx, index, ctx.w.page(index).evolve(ref=1))
        ctx.goto(putback, activate=False)
        return ctx.effect(
            "folio_ref_freeze",
            "folio_ref_freeze(folio, 1) succeeds, but PG_dirty is set: "
            "folio_ref_unfreeze(folio, 1), keep",
            "folio_ref_freeze(folio, 1) succeeds; PG_dirty: unfreeze",
        )
    ctx.goto(free_it)
    return ctx.effect(
        "folio_ref_freeze",
        f"folio_ref_freeze(folio, 1) succeeds: {page_name(index)} frozen, refcount 1 -> 0",
        "folio_ref_freeze(folio, 1) succeeds",
    )


@SHRINK.step
def remove_freeze(ctx: Ctx) -> Effect:
    index, p = page(ctx)
    # __remove_mapping: `refcount = 1 + folio_nr_pages(folio)`: the isolation reference and
    # the page cache's / swap cache's.
    expected = 2
    if p.ref != expected:
        ctx.goto(putback, activate=False)
        call = f"folio_ref_freeze(folio, {expected}) fails: ref {p.ref}"
        return ctx.effect("folio_ref_freeze", f"__remove_mapping: {call}: keep", call)
    refs.update(ctx, index, p.evolve(ref=0))
    call = f"folio_ref_freeze(folio, {expected}) succeeds"
    why = (
        f"__remove_mapping: folio_ref_freeze(folio, {expected}) succeeds, {page_name(index)} frozen"
    )
    if ctx.cfg.on("freeze_before_dirty"):
        ctx.goto(remove_test_dirty)
        return ctx.effect("folio_ref_freeze", f"{why}: ref {expected} -> 0", call)
    return delete_from_cache(ctx, "folio_ref_freeze", why, call)


@SHRINK.step
def remove_test_dirty(ctx: Ctx) -> Effect:
    index, p = page(ctx)
    frozen = ctx.cfg.on("freeze_before_dirty")
    if p.has(DIRTY):
        if frozen:
            refs.update(ctx, index, p.evolve(ref=2))
        ctx.goto(putback, activate=False)
        undo = "folio_ref_unfreeze(2), " if frozen else ""
        return ctx.effect("folio_test_dirty", f"{page_name(index)} is dirty: {undo}keep it")
    if frozen:
        return delete_from_cache(ctx, "folio_test_dirty", f"{page_name(index)} is clean")
    ctx.goto(remove_freeze)
    return ctx.effect("folio_test_dirty", f"(what if: dirty first) {page_name(index)} is clean")


def delete_from_cache(ctx: Ctx, function: str, why: str, call: str = "") -> Effect:
    index, p = page(ctx)
    if p.has(SWAPCACHE):
        swap.uncache(ctx, p.swap)
        refs.update(ctx, index, p.clear(SWAPCACHE).evolve(swap=-1))
        where = f"the swap cache (S{p.swap} keeps the data)"
    else:
        name = p.owner.removeprefix("file:")
        ctx.w = ctx.w.set_file(name, ctx.w.file(name).evolve(cache=-1))
        where = f"the page cache of {name}"
    ctx.goto(free_it)
    return ctx.effect(function, f"{why}: removed from {where}", call)


def flush(ctx: Ctx) -> str:
    """try_to_unmap_flush: the TLB flushes TTU_BATCH_FLUSH deferred, on every CPU."""
    flushes = regs(ctx).flushes
    if not flushes:
        return ""
    for proc, addr in flushes:
        ctx.w = ctx.w.flush_tlb(proc, (addr,))
    ctx.update(flushes=())
    return "the deferred TLB flush"


@SHRINK.step
def free_it(ctx: Ctx) -> Effect:
    index, _ = page(ctx)
    if ctx.cfg.on("tlb_flush_before_free"):
        flush(ctx)
    ctx.w = ctx.w.free_page(index)
    end_pass(ctx)
    ctx.next_op()
    return ctx.effect(
        "free_unref_page_list", f"try_to_unmap_flush, then {page_name(index)} is freed"
    )


@SHRINK.step
def putback(ctx: Ctx) -> Effect:
    index, p = page(ctx)
    if p.locker == ctx.name:
        p = p.clear(LOCKED).evolve(locker="")
    r = regs(ctx)
    lru = r.lru
    if p.anon and p.has(SWAPBACKED):
        lru = "active_anon" if r.activate else "inactive_anon"
    elif r.activate and not p.lazyfree:
        lru = lru.replace("inactive", "active")
    refs.update(ctx, index, p.evolve(lru=lru))
    freed = refs.put(ctx, index, what="folio_putback_lru")
    flush(ctx)  # try_to_unmap_flush at the end of shrink_folio_list
    end_pass(ctx)
    if r.io:
        ctx.goto(end_io)
    else:
        ctx.next_op()
    tail = ": that was the last reference, freed" if freed else ""
    return ctx.effect(
        "folio_putback_lru",
        f"{page_name(index)} unlocked, back on the {lru} LRU ({refs.refs_note(ctx, index)}){tail}",
    )


@SHRINK.step
def end_io(ctx: Ctx) -> Effect:
    """The write reclaim started completes (end_swap_bio_write / ext4_end_bio)."""
    index, p = page(ctx)
    gen = regs(ctx).gen
    ctx.next_op()
    if p.gen != gen or not p.has(WRITEBACK):
        return ctx.effect("folio_end_writeback", f"the write of {page_name(index)} completes")
    refs.update(ctx, index, p.clear(WRITEBACK | RECLAIM))
    return ctx.effect(
        "folio_end_writeback",
        f"the write of {page_name(index)} completes: PG_writeback and PG_reclaim cleared, "
        "folio_rotate_reclaimable moves it to the inactive tail; a later pass can free it",
    )


@op(
    "shrink_folio_list",
    (
        Param("addr", "addr", positional=True),
        Param("file", "file", positional=True),
        PROC,
        Param("direct", "bool"),
    ),
    STEPS,
    rule=exactly_one("addr", "file"),
    # From the isolation to the putback; the write's completion comes after it.
    refs_held=holding("isolation", *(s for s in SHRINK.steps.values() if s is not end_io)),
)
def shrink_folio_list_op(ctx: Ctx) -> Effect | Blocked:
    """One reclaim pass over the page at `addr` (or the page cache page of `file`), by kswapd
    or, with `direct: true`, by direct reclaim (which never writes file folios)."""
    return SHRINK.resume(ctx, isolate)
