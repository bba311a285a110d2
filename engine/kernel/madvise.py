"""madvise(MADV_FREE), madvise(MADV_DONTNEED) and munmap.

MADV_FREE (madvise_free_pte_range + folio_mark_lazyfree) keeps the mapping and
its write permission but cleans the PTE and the folio and clears PG_swapbacked:
reclaim may then discard the page instead of swapping it, unless a later store
sets the PTE dirty bit again. DONTNEED and munmap zap the mapping: a pin keeps
the page alive but not mapped (R13).
"""

from __future__ import annotations

from typing import NamedTuple, cast

from engine.kernel import oracle, refs, swap, thp, tlb
from engine.kernel.fault import wait_reason
from engine.kernel.machine import ADDR, PROC, Blocked, Ctx, Effect, Machine, op
from engine.state import (
    DIRTY,
    LOCKED,
    NO_PAGE,
    SWAPBACKED,
    SWAPCACHE,
    ZERO_PAGE,
    Pmd,
    Pte,
    page_name,
    subpage_addr,
)


class Marking(NamedTuple):
    """MADV_FREE between clearing the PTE and marking the folio lazyfree (with CPUs, until
    tlb_finish_mmu), or, for a swap PTE, inside free_swap_and_cache (the fields of
    Zapping: reclaim_swap is shared)."""

    page: int = NO_PAGE
    entry: int = -1
    device: bool = False
    gathered: bool = False  # tlb_remove_tlb_entry queued the PTE's flush in the mmu_gather


MADV_FREE = Machine(Marking)


def around_walk(ctx: Ctx, note: str) -> str:
    """A walk that gathered nothing to flush. With CPUs it still ran between tlb_gather_mmu
    and tlb_finish_mmu (and flush_tlb_batched_pending under the PTE lock), and
    tlb_finish_mmu may flush for a nested gather: the step's sentence says so."""
    if not ctx.cpu:
        return note
    batched = tlb.flush_batched_pending(ctx, ctx.proc)
    return batched + note + tlb.finish_ungathered(ctx, ctx.proc, ctx.p("addr"))


def walked(ctx: Ctx, function: str, note: str) -> Effect:
    """The walk is done without anything to flush: the op ends here."""
    note = around_walk(ctx, note)
    ctx.next_op()
    return ctx.effect(function, note)


def free_pte_range(ctx: Ctx) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    pte = ctx.w.pte(proc, addr)
    if pte is None and thp.is_region(ctx, proc, addr):
        return free_huge_pmd(ctx)
    reason = wait_reason(ctx, proc, pte)
    if reason:
        return Blocked(reason)
    key = oracle.key_for(ctx.w, proc, addr)
    if pte is None or pte.file:
        return walked(
            ctx, "madvise_free_single_vma", f"-EINVAL: {addr} is not a private anon mapping"
        )
    if pte.swap >= 0:
        # Under the PTE lock: free_swap_and_cache(_nr), then pte_clear (clear_not_present_
        # full_ptes), the steps zap_pte_range takes for a swap PTE, and its second step.
        entry = pte.swap
        held = drop_swap_entry(ctx, entry)
        ctx.w = ctx.w.set_pte(proc, addr, Pte())
        ctx.w = oracle.lazyfree(ctx.w, key)
        note = around_walk(
            ctx, f"{addr} was swapped out: free_swap_and_cache drops S{entry}, pte_clear"
        )
        return reclaim_next(ctx, "madvise_free_pte_range", note, entry, held)
    if not pte.present or pte.page == ZERO_PAGE:
        return walked(ctx, "madvise_free_pte_range", f"nothing mapped at {addr}")
    index = pte.page
    page = ctx.w.page(index)
    freed = ""
    if page.has(DIRTY) or page.has(SWAPCACHE):
        if page.locker or page.mapcount != 1:
            return walked(
                ctx,
                "madvise_free_pte_range",
                f"{page_name(index)} is shared or locked: skipped, its dirty state stays",
            )
        if page.has(SWAPCACHE):
            # A folio in the swap cache has a copy in its slot that reclaim may map to
            # again without writing: clearing PG_dirty alone would let reclaim discard
            # the only up-to-date copy. The kernel takes it out of the swap cache first
            # (try_to_free_swap, folio_free_swap from 6.x), and skips the PTE if it cannot.
            if not swap.folio_free_swap(ctx, index):
                return walked(
                    ctx,
                    "madvise_free_pte_range",
                    f"{page_name(index)} is in the swap cache and cannot leave it (a swap "
                    "entry or writeback holds it): skipped, its dirty state stays",
                )
            freed = f"try_to_free_swap: {page_name(index)} leaves the swap cache; "
        refs.update(ctx, index, ctx.w.page(index).clear(DIRTY))
    clean = pte.evolve(dirty=False, young=False)
    if not ctx.cpu:
        ctx.w = ctx.w.set_pte(proc, addr, clean)
        ctx.w = oracle.lazyfree(ctx.w, key)
        ctx.goto(mark_lazyfree, page=index)
        return ctx.effect(
            "madvise_free_pte_range",
            f"{freed}clears PG_dirty and the PTE's dirty and young bits of {page_name(index)} "
            "(write permission stays)",
        )
    # With CPUs: tlb_gather_mmu, then under the PTE lock flush_tlb_batched_pending and
    # the PTE change, whose flush the mmu_gather defers to tlb_finish_mmu; only a young
    # or dirty PTE is queued (tlb_remove_tlb_entry).
    tlb.gather(ctx, proc)
    batched = tlb.flush_batched_pending(ctx, proc)
    gathered = (pte.dirty or pte.young) and tlb.pending(ctx, proc, addr)
    ctx.w = ctx.w.set_pte(proc, addr, clean, flush=False)
    ctx.w = oracle.lazyfree(ctx.w, key)
    ctx.goto(mark_lazyfree, page=index, gathered=gathered)
    if pte.dirty or pte.young:
        what = "clears the PTE's dirty and young bits; its TLB flush waits in the mmu_gather"
    else:
        what = "finds the PTE already clean and old: nothing to flush"
    return ctx.effect(
        "madvise_free_pte_range",
        f"{batched}{freed}clears PG_dirty of {page_name(index)}; {what} (write permission stays)",
    )


def free_huge_pmd(ctx: Ctx) -> Effect | Blocked:
    """madvise_free_huge_pmd over a whole PMD-mapped THP, under the PMD lock: an exclusive,
    unlocked folio loses PG_dirty, the PMD its dirty and young bits, and the folio becomes
    lazyfree. The PMD is changed in place (58ceeb6bec86); before, it was cleared with
    pmdp_huge_get_and_clear_full and set again, and a MADV_DONTNEED looking at it without
    the lock in between skipped it."""
    proc, region = ctx.proc, ctx.p("addr")
    pmd = ctx.w.pmd(proc, region)
    p = ctx.w.proc(proc)
    assert p is not None
    if pmd.kind != "huge":
        ctx.next_op()
        return ctx.effect("madvise_free_huge_pmd", f"the PMD over {region} does not map a THP")
    if p.mmap_writer and p.mmap_writer != ctx.name:
        return Blocked(f"waits for mmap_lock of {proc}, held for write by {p.mmap_writer}")
    if p.ptl and p.ptl != ctx.name:
        return Blocked(f"pmd_trans_huge_lock waits for the PMD lock of {region}, held by {p.ptl}")
    head = pmd.page
    folio = ctx.w.page(head)
    if ctx.w.folio_mapcount(head) != 1 or folio.has(LOCKED):
        ctx.next_op()
        return ctx.effect(
            "madvise_free_huge_pmd", f"{page_name(head)} is shared or locked: skipped"
        )
    refs.update(ctx, head, folio.clear(DIRTY))
    for i in range(folio.nr):
        ctx.w = oracle.lazyfree(ctx.w, f"{proc}:{subpage_addr(region, i)}")
    if (pmd.dirty or pmd.young) and not ctx.cfg.on("pmd_change_in_place"):
        ctx.w = ctx.w.set_proc(p.evolve(ptl=ctx.name))
        ctx.w = ctx.w.set_pmd(proc, region, Pmd(kind="none", table=pmd.table))
        ctx.goto(free_huge_pmd_set, page=head)
        return ctx.effect(
            "pmdp_huge_get_and_clear_full",
            f"clears PG_dirty of {page_name(head)} and the PMD over {region}, holding the PMD lock",
        )
    ctx.w = ctx.w.set_pmd(proc, region, pmd.evolve(dirty=False, young=False))
    ctx.goto(mark_lazyfree, page=head)
    return ctx.effect(
        "madvise_free_huge_pmd",
        f"clears PG_dirty of {page_name(head)} and the PMD's dirty and young bits in place",
    )


@MADV_FREE.step
def free_huge_pmd_set(ctx: Ctx) -> Effect:
    proc, region = ctx.proc, ctx.p("addr")
    head = ctx.regs(Marking).page
    p = ctx.w.proc(proc)
    assert p is not None
    pmd = Pmd(kind="huge", page=head, write=True, dirty=False, young=False)
    ctx.w = ctx.w.set_pmd(proc, region, pmd)
    ctx.w = ctx.w.set_proc(p.evolve(ptl=""))
    ctx.goto(mark_lazyfree, page=head)
    return ctx.effect(
        "set_pmd_at", f"re-establishes the PMD over {region}, clean and old; drops the PMD lock"
    )


@MADV_FREE.step
def mark_lazyfree(ctx: Ctx) -> Effect:
    index = ctx.regs(Marking).page
    page = ctx.w.page(index)
    if ctx.cpu:
        ctx.goto(finish_mmu)
    else:
        ctx.next_op()
    if not (page.anon and page.has(SWAPBACKED) and not page.has(SWAPCACHE) and page.lru):
        return ctx.effect("folio_mark_lazyfree", f"{page_name(index)} cannot become lazyfree now")
    refs.update(ctx, index, page.clear(SWAPBACKED).evolve(lru="inactive_file"))
    return ctx.effect(
        "folio_mark_lazyfree",
        f"lru_lazyfree: {page_name(index)} loses PG_swapbacked and moves to the inactive file LRU",
    )


@MADV_FREE.step
def finish_mmu(ctx: Ctx) -> Effect:
    """tlb_finish_mmu, and madvise returns to user space."""
    addr = ctx.p("addr")
    note = tlb.finish_mmu(ctx, ctx.proc, addr, ctx.regs(Marking).gathered)
    ctx.next_op()
    return ctx.effect("tlb_finish_mmu", f"{note or 'nothing to flush'}; madvise returns")


@op(
    "madvise_free",
    (ADDR, PROC),
    (
        "madvise_free_single_vma",
        "madvise_free_huge_pmd",
        "pmdp_huge_get_and_clear_full",
        "set_pmd_at",
        "madvise_free_pte_range",
        "free_swap_and_cache",
        "folio_mark_lazyfree",
        "tlb_finish_mmu",
    ),
)
def madvise_free_op(ctx: Ctx) -> Effect | Blocked:
    """madvise(MADV_FREE): the page may be discarded instead of swapped, until rewritten."""
    return MADV_FREE.resume(ctx, free_pte_range)


def zap(ctx: Ctx, unmap: bool) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    p = ctx.w.proc(proc)
    pte = ctx.w.pte(proc, addr)
    if pte is None and p is not None and thp.is_region(ctx, proc, addr):
        # zap_pmd_range looks at the PMD without a lock: only mmap_lock (read) is waited for.
        if p.mmap_writer and p.mmap_writer != ctx.name:
            return Blocked(f"waits for mmap_lock of {proc}, held for write by {p.mmap_writer}")
        return thp.zap_region(ctx, proc, addr, unmap)
    reason = wait_reason(ctx, proc, pte)
    if reason:
        return Blocked(reason)
    assert p is not None
    if p.mmap_writer and p.mmap_writer != ctx.name:
        return Blocked(f"waits for mmap_lock of {proc}, held for write by {p.mmap_writer}")
    if pte is None:
        ctx.next_op()
        return ctx.effect("zap_pte_range", f"{addr} is not mapped")
    if pte.present:
        # The zap's flush (tlb_finish_mmu) comes before the page is freed: with IPI flushes
        # it waits for a GUP-fast walking with interrupts disabled.
        waits = tlb.ipi_wait(ctx, "tlb_finish_mmu")
        if waits:
            return waits
    batched = ""
    if ctx.cpu:
        seen = ctx.regs(Zapping).batch
        if seen >= 0:
            batched = tlb.clear_batched(ctx, proc, seen)
        elif tlb.batched_pending(ctx, proc):
            # flush_tlb_batched_pending in its two halves, the flush and then the flag: a
            # reclaim unmapping under another PTE lock may run in between (5ee2fa2f0636).
            ctx.goto(zap_resume, batch=tlb.flush_mm_batched(ctx, proc), unmap=unmap)
            return ctx.effect(
                "flush_tlb_batched_pending",
                f"reads mm->tlb_flush_batched: a flush is owed; flush_tlb_mm flushes every "
                f"TLB entry of {proc}",
            )
    # zap_pmd_range on part of a huge PMD: __split_huge_pmd first, then the one PTE.
    split = thp.split_if_huge(ctx, proc, addr)
    if split:
        pte = ctx.w.pte(proc, addr)
        assert pte is not None
    key = oracle.key_for(ctx.w, proc, addr)
    note = f"{split}; {addr} had no page" if split else f"{addr} had no page"
    if pte.present and pte.page != ZERO_PAGE and not split and gathers(ctx, proc, addr, pte):
        return zap_gathered(ctx, unmap, pte, key, batched)
    if pte.present and pte.page != ZERO_PAGE:
        index = pte.page
        remove_rmap(ctx, pte)
        freed = refs.put(ctx, index, what="zap_pte_range")
        if not freed:
            thp.after_pte_unmap(ctx, index)
        note = f"unmaps {page_name(index)} ({refs.refs_note(ctx, index)})"
        if split:
            note = f"{split}; {note}"
        if freed:
            note += ": the last reference, the page is freed"
    entry, held = -1, False
    if not pte.present and pte.swap >= 0:
        entry = pte.swap
        held = drop_swap_entry(ctx, entry)
        note = f"drops the swap entry of {addr}"
    cleared(ctx, unmap, pte, key)
    if ctx.cpu:
        # Nothing was gathered, but tlb_finish_mmu still flushes for a nested gather
        # (99baac21e458): a parallel zap may have cleared this PTE, its flush deferred.
        note += tlb.finish_ungathered(ctx, proc, addr)
    return reclaim_next(ctx, "zap_pte_range", f"{proc}: {batched}{note}", entry, held)


def remove_rmap(ctx: Ctx, pte: Pte) -> None:
    """zap_pte_range on a present page: set_page_dirty for a dirty file PTE, and the
    mapping's rmap goes (mapcount - 1); its reference is the caller's to drop."""
    index = pte.page
    if pte.file and pte.dirty:
        refs.mark_dirty(ctx, index)
    page = ctx.w.page(index)
    refs.update(ctx, index, page.evolve(mapcount=page.mapcount - 1))


def cleared(ctx: Ctx, unmap: bool, pte: Pte, key: str, deferred: bool = False) -> None:
    """The PTE is cleared (munmap: the address is gone; `deferred`: its TLB flush waits in
    the mmu_gather) and the oracle told."""
    proc, addr = ctx.proc, ctx.p("addr")
    ctx.w = ctx.w.set_pte(proc, addr, None if unmap else Pte(file=pte.file), flush=not deferred)
    if not pte.file:
        ctx.w = oracle.zap(ctx.w, key, unmapped=unmap)
    elif unmap:
        # The address is gone; the file keeps its own expectations.
        ctx.w = oracle.zap(ctx.w, f"{proc}:{addr}", unmapped=True)


def gathers(ctx: Ctx, proc: str, addr: str, pte: Pte) -> bool:
    """With CPUs, zap_pte_range leaves the flush of a small page some CPU caches, and the
    page's last reference, to the mmu_gather (tlb_remove_tlb_entry, tlb_remove_page)."""
    if not (ctx.cpu and pte.present and pte.page >= 0):
        return False
    page = ctx.w.page(pte.page)
    return not page.order and page.head < 0 and tlb.pending(ctx, proc, addr)


def zap_gathered(ctx: Ctx, unmap: bool, pte: Pte, key: str, batched: str) -> Effect:
    """zap_pte_range with the flush and the free gathered: the rmap goes now, the PTE is
    cleared, and tlb_finish_mmu flushes, then drops the page's reference."""
    proc = ctx.proc
    index = pte.page
    tlb.gather(ctx, proc)
    remove_rmap(ctx, pte)
    cleared(ctx, unmap, pte, key, deferred=True)
    ctx.goto(zap_finish, page=index, gen=ctx.w.page(index).gen)
    return ctx.effect(
        "zap_pte_range",
        f"{proc}: {batched}unmaps {page_name(index)}; its TLB flush and its reference wait in "
        "the mmu_gather",
    )


def drop_swap_entry(ctx: Ctx, entry: int) -> bool:
    """free_swap_and_cache's first half: get_swap_device from 6.9 (82b1c07a0af6), then
    __swap_entry_free. Returns whether it holds the device."""
    held = ctx.cfg.on("free_swap_and_cache_get_swap_device") and swap.get_swap_device(ctx)
    swap.swap_free(ctx, entry)
    return held


def reclaim_next(ctx: Ctx, function: str, note: str, entry: int, held: bool) -> Effect:
    """End the step: on to free_swap_and_cache's second half if only SWAP_HAS_CACHE is left
    of the entry (reclaim_swap), else the op is done."""
    if entry >= 0 and swap.only_cache_left(ctx, entry):
        ctx.goto(reclaim_swap, entry=entry, device=held)
        return ctx.effect(function, f"{note}; only SWAP_HAS_CACHE is left of S{entry}")
    if held:
        swap.put_swap_device(ctx)
    ctx.next_op()
    return ctx.effect(function, note)


class Zapping(NamedTuple):
    """free_swap_and_cache between __swap_entry_free and __try_to_reclaim_swap; with CPUs,
    zap_pte_range between flush_tlb_batched_pending's flush and its write of the flag."""

    entry: int = -1
    device: bool = False  # holds get_swap_device (82b1c07a0af6)
    batch: int = -1  # mm->tlb_flush_batched as the flush read it
    unmap: bool = False  # munmap, not MADV_DONTNEED
    page: int = -1  # the page the mmu_gather holds until tlb_finish_mmu, and its generation
    gen: int = -1


ZAP = Machine(Zapping)


@ZAP.step
def zap_resume(ctx: Ctx) -> Effect | Blocked:
    """zap_pte_range after flush_tlb_mm: the flag, then the PTE."""
    return zap(ctx, unmap=ctx.regs(Zapping).unmap)


@ZAP.step
def zap_finish(ctx: Ctx) -> Effect:
    """tlb_finish_mmu: flush the gathered entry (and, nested, the range), then free the
    batched page: a page leaves the TLBs before it is freed."""
    r = ctx.regs(Zapping)
    note = tlb.finish_mmu(ctx, ctx.proc, ctx.p("addr"), gathered=True)
    freed = refs.put(ctx, r.page, gen=r.gen, what="tlb_finish_mmu")
    tail = f"{page_name(r.page)} freed" if freed else f"{refs.refs_note(ctx, r.page)}"
    ctx.next_op()
    return ctx.effect("tlb_finish_mmu", f"{note}; then frees the batched page ({tail})")


@ZAP.step
def reclaim_swap(ctx: Ctx) -> Effect:
    """swap_page_trans_huge_swapped reads swap_map, then __try_to_reclaim_swap (a step of
    MADV_FREE's machine too, whose registers have the same fields)."""
    assert ctx.machine is not None
    r = cast(Zapping, ctx.regs(ctx.machine.regs))
    ctx.next_op()
    if swap.device_gone(ctx, f"free_swap_and_cache of S{r.entry} (swap_map)"):
        return ctx.effect(
            "free_swap_and_cache", "swap_page_trans_huge_swapped reads the freed swap_map"
        )
    note = swap.try_to_reclaim_swap(ctx, r.entry).removeprefix("; ")
    if r.device:
        swap.put_swap_device(ctx)
    return ctx.effect(
        "free_swap_and_cache", note or f"__try_to_reclaim_swap: S{r.entry}'s folio stays"
    )


MADV_FREE.include(reclaim_swap)


def dontneed(ctx: Ctx) -> Effect | Blocked:
    return zap(ctx, unmap=False)


def unmap(ctx: Ctx) -> Effect | Blocked:
    return zap(ctx, unmap=True)


ZAP_STEPS = (
    "zap_pmd_range",
    "zap_huge_pmd",
    "flush_tlb_batched_pending",
    "zap_pte_range",
    "tlb_finish_mmu",
    "free_swap_and_cache",
)


@op("madvise_dontneed", (ADDR, PROC), ZAP_STEPS)
def madvise_dontneed_op(ctx: Ctx) -> Effect | Blocked:
    """madvise(MADV_DONTNEED): zap the mapping; the address reads zero-fill (anon) or the file."""
    return ZAP.resume(ctx, dontneed)


@op("munmap", (ADDR, PROC), ZAP_STEPS)
def munmap_op(ctx: Ctx) -> Effect | Blocked:
    """munmap: zap the mapping and remove the address from the process."""
    return ZAP.resume(ctx, unmap)
