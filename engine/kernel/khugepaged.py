"""khugepaged's collapse of a PTE-mapped range into a PMD-mapped large folio.

collapse_huge_page (mm/khugepaged.c, anon): allocate the huge folio, take mmap_lock for
write, pmdp_collapse_flush (clear the PMD and flush the TLB: the PTE table is detached,
but a lockless GUP-fast walker that read the PMD before still reads it), then
__collapse_huge_page_isolate under the PTE lock (each small page locked, its refcount
checked against its mappings: "Check if the page has any GUP (or other external) pins",
and isolated from the LRU), __collapse_huge_page_copy (copy, clear the PTEs, put the
small pages), and set_pmd_at of the huge PMD before mmap_write_unlock. A failed check
puts the table back (pmd_populate) and gives up. 70cbc3cc78a9 is the GUP-fast side:
without its PMD recheck, a pin taken between the isolation's check and the copy keeps
the old small page, which the process no longer maps.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import refs, tlb
from engine.kernel.machine import PROC, Blocked, Ctx, Effect, Machine, op
from engine.kernel.thp import REGION
from engine.state import (
    ANON_EXCLUSIVE,
    HPAGE_NR,
    LOCKED,
    NO_PAGE,
    SWAPBACKED,
    SWAPCACHE,
    Expected,
    Page,
    Pmd,
    Pte,
    page_name,
    subpage_addr,
)

STEPS = (
    "hugepage_vma_revalidate",
    "mmap_write_lock",
    "pmdp_collapse_flush",
    "tlb_remove_table_sync_one",
    "__collapse_huge_page_isolate",
    "__collapse_huge_page_copy",
    "set_pmd_at",
)


class Collapsing(NamedTuple):
    hpage: int = NO_PAGE  # the new large folio (alloc_charge_folio)
    pmd: Pmd | None = None  # the PMD pmdp_collapse_flush cleared: its table, to put back
    isolated: tuple[int, ...] = ()  # the small pages isolated from the LRU and locked


COLLAPSE = Machine(Collapsing)


def regs(ctx: Ctx) -> Collapsing:
    return ctx.regs(Collapsing)


def finish(ctx: Ctx) -> None:
    p = ctx.w.proc(ctx.proc)
    assert p is not None
    ctx.w = ctx.w.set_proc(p.evolve(mmap_writer=""))
    ctx.next_op()


def unmapped(ctx: Ctx, addr: str) -> bool:
    """munmap removed the address (the oracle allows nothing there any more)."""
    exp = ctx.w.expected(f"{ctx.proc}:{addr}")
    return exp is not None and not exp.allowed


@COLLAPSE.step
def collapse_lock(ctx: Ctx) -> Effect | Blocked:
    proc, region = ctx.proc, ctx.p("addr")
    p = ctx.w.proc(proc)
    if p is None:
        return Blocked(f"waits for process {proc} to exist")
    if p.mmap_writer or p.mmap_readers:
        holder = p.mmap_writer or ", ".join(p.mmap_readers)
        return Blocked(f"waits for mmap_lock of {proc} for write, held by {holder}")
    if ctx.w.pmd(proc, region).kind != "table":
        ctx.next_op()
        return ctx.effect(
            "mmap_write_lock", f"the PMD over {region} is not a PTE table: SCAN_PMD_MAPPED"
        )
    if all(unmapped(ctx, subpage_addr(region, i)) for i in range(HPAGE_NR)):
        ctx.next_op()
        return ctx.effect(
            "hugepage_vma_revalidate", f"{region} was munmapped: no VMA, SCAN_VMA_NULL"
        )
    ctx.w = ctx.w.set_proc(p.evolve(mmap_writer=ctx.name))
    # alloc_charge_folio runs before the lock; allocating here instead changes no outcome,
    # since nothing else can see the new folio before it is mapped.
    head = Page(ref=1, flags=SWAPBACKED | LOCKED, owner="anon", locker=ctx.name)
    ctx.w, hpage = ctx.w.new_folio(head, ("0",) * HPAGE_NR)
    ctx.goto(collapse_flush, hpage=hpage)
    return ctx.effect(
        "mmap_write_lock",
        f"khugepaged allocates large folio {page_name(hpage)} and takes mmap_lock of {proc} "
        "for write",
    )


@COLLAPSE.step
def collapse_flush(ctx: Ctx) -> Effect | Blocked:
    proc, region = ctx.proc, ctx.p("addr")
    p = ctx.w.proc(proc)
    if p is not None and p.ptl and p.ptl != ctx.name:
        # anon_vma_lock_write, then the PMD lock: an rmap walk (reclaim's try_to_unmap, which
        # holds the anon_vma lock for read and the PTE lock) finishes first.
        return Blocked(f"anon_vma_lock_write waits for {p.ptl}'s rmap walk of {proc}")
    waits = tlb.ipi_wait(ctx, "pmdp_collapse_flush")
    if waits:
        return waits
    pmd = ctx.w.pmd(proc, region)
    ctx.w = ctx.w.set_pmd(proc, region, Pmd(kind="none", table=pmd.table))
    synced = ctx.cfg.on("khugepaged_table_sync")
    ctx.goto(collapse_sync if synced else collapse_isolate, pmd=pmd)
    return ctx.effect(
        "pmdp_collapse_flush",
        f"clears the PMD over {region} and flushes the TLB; its PTE table is detached",
    )


@COLLAPSE.step
def collapse_sync(ctx: Ctx) -> Effect | Blocked:
    """tlb_remove_table_sync_one (2ba99c5e0881): an IPI every CPU must take, so a GUP-fast
    walking the detached table with interrupts disabled finishes before the table can be
    freed or reused."""
    proc, region = ctx.proc, ctx.p("addr")
    walkers = [w[0] for w in ctx.w.walks if (w[1], w[2]) == (proc, region) and w[0] != ctx.name]
    if walkers:
        return Blocked(
            f"tlb_remove_table_sync_one's IPI waits for {', '.join(walkers)}: interrupts "
            "disabled in GUP-fast's walk of the old table"
        )
    ctx.goto(collapse_isolate)
    return ctx.effect(
        "tlb_remove_table_sync_one", "no GUP-fast walks the detached PTE table any more"
    )


def put_back(ctx: Ctx, why: str, isolated: list[int]) -> Effect:
    """The collapse gives up: the isolated pages go back to the LRU and are unlocked,
    pmd_populate restores the table, the new folio is freed, mmap_lock is released."""
    r = regs(ctx)
    proc, region = ctx.proc, ctx.p("addr")
    for index in isolated:
        page = ctx.w.page(index)
        refs.update(ctx, index, page.clear(LOCKED).evolve(locker="", lru="inactive_anon"))
        refs.put(ctx, index, what="putback_lru_page")
    assert r.pmd is not None
    ctx.w = ctx.w.set_pmd(proc, region, r.pmd)
    refs.put(ctx, r.hpage, what="folio_put")
    finish(ctx)
    return ctx.effect(
        "__collapse_huge_page_isolate", f"{why}: pmd_populate puts the PTE table back, no collapse"
    )


def suitable(ctx: Ctx, index: int) -> bool:
    """is_refcount_suitable: the mappings' references (and the swap cache's) only."""
    page = ctx.w.page(index)
    expected = page.mapcount + (1 if page.has(SWAPCACHE) else 0)
    return page.ref == expected


def unsuitable(ctx: Ctx, addr: str, pte: Pte) -> str:
    """Why __collapse_huge_page_isolate refuses this entry's page; "" if it takes it."""
    if not pte.present:
        return f"{addr} is swapped out or migrating (not collapsed in this model)"
    index = pte.page
    if index < 0 or not ctx.w.page(index).anon or ctx.w.page(index).order:
        return f"{addr} is not a small anon page"
    page = ctx.w.page(index)
    if page.has(LOCKED):
        return f"trylock_page fails on {page_name(index)}"
    if not suitable(ctx, index):
        return (
            f"{page_name(index)} has references besides its mappings "
            f"({refs.refs_note(ctx, index)}): SCAN_PAGE_COUNT"
        )
    if not page.lru:
        return f"{page_name(index)} is not on an LRU"
    return ""


@COLLAPSE.step
def collapse_isolate(ctx: Ctx) -> Effect:
    proc, region = ctx.proc, ctx.p("addr")
    isolated: list[int] = []
    for i in range(HPAGE_NR):
        addr = subpage_addr(region, i)
        pte = ctx.w.raw_pte(proc, addr)
        if pte is None or pte.none:
            continue  # up to max_ptes_none empty entries are collapsed into zeroes
        why = unsuitable(ctx, addr, pte)
        if why:
            return put_back(ctx, why, isolated)
        refs.get(ctx, pte.page)  # folio_isolate_lru
        page = ctx.w.page(pte.page)
        refs.update(ctx, pte.page, page.set(LOCKED).evolve(locker=ctx.name, lru=""))
        isolated.append(pte.page)
    ctx.goto(collapse_copy, isolated=tuple(isolated))
    names = ", ".join(page_name(i) for i in isolated) or "no page"
    return ctx.effect(
        "__collapse_huge_page_isolate",
        f"locks and isolates {names}: no reference besides the mappings",
    )


@COLLAPSE.step
def collapse_copy(ctx: Ctx) -> Effect:
    proc, region = ctx.proc, ctx.p("addr")
    r = regs(ctx)
    hpage = r.hpage
    for i in range(HPAGE_NR):
        addr = subpage_addr(region, i)
        pte = ctx.w.raw_pte(proc, addr)
        data = "0"
        if pte is not None and pte.present:
            index = pte.page
            data = ctx.w.page(index).data
            page = ctx.w.page(index)
            # release_pte_folio: unlock, back on the LRU; folio_remove_rmap_pte, then
            # free_page_and_swap_cache drops the mapping's reference.
            refs.update(
                ctx,
                index,
                page.clear(LOCKED).evolve(
                    locker="", lru="inactive_anon", mapcount=page.mapcount - 1
                ),
            )
            refs.put(ctx, index, what="release_pte_folio")
            refs.put(ctx, index, what="free_page_and_swap_cache")
        sub = ctx.w.page(hpage + i)
        refs.update(ctx, hpage + i, sub.evolve(data=data))
        if pte is not None:
            ctx.w = ctx.w.set_pte(proc, addr, None)
        key = f"{proc}:{addr}"
        if ctx.w.expected(key) is None:
            ctx.w = ctx.w.set_expected(key, Expected(allowed=("0",), latest="0"))
    ctx.goto(collapse_map)
    return ctx.effect(
        "__collapse_huge_page_copy",
        f"copies the small pages into {page_name(hpage)}, clears their PTEs and puts them",
    )


@COLLAPSE.step
def collapse_map(ctx: Ctx) -> Effect:
    proc, region = ctx.proc, ctx.p("addr")
    r = regs(ctx)
    hpage = r.hpage
    exclusive = ANON_EXCLUSIVE if ctx.cfg.on("anon_exclusive") else 0
    head = ctx.w.page(hpage)
    refs.update(
        ctx,
        hpage,
        head.clear(LOCKED).set(exclusive).evolve(locker="", lru="inactive_anon", entire=1),
    )
    for i in range(1, head.nr):
        refs.update(ctx, hpage + i, ctx.w.page(hpage + i).set(exclusive))
    table = r.pmd.table if r.pmd is not None else 0
    pmd = Pmd(kind="huge", page=hpage, write=True, dirty=True, young=True, table=table)
    ctx.w = ctx.w.set_pmd(proc, region, pmd)
    finish(ctx)
    return ctx.effect(
        "set_pmd_at",
        f"folio_add_new_anon_rmap and set_pmd_at: {region} is mapped by the huge PMD of "
        f"{page_name(hpage)}; mmap_write_unlock",
    )


@op("collapse", (REGION, PROC), STEPS)
def collapse_op(ctx: Ctx) -> Effect | Blocked:
    """khugepaged's collapse_huge_page: the small pages of a region replaced by one large
    folio mapped by a huge PMD, unless one of them has a reference besides its mappings."""
    return COLLAPSE.resume(ctx, collapse_lock)
