"""Transparent huge pages: the PMD-mapped large folio, its split and the deferred split.

A large folio is modelled with HPAGE_NR subpages (engine.state), addressed `buf#0`,
`buf#1`: the region `buf` is one PMD. do_huge_pmd_anonymous_page maps a new folio with
one huge PMD (one reference, the entire mapcount); __split_huge_pmd_locked turns the
PMD into a table of PTEs (a reference and a mapcount per subpage); a partial unmap of
an anon large folio queues it for deferred split; deferred_split_scan splits it
(split_huge_page_to_list_to_order: the expected-refcount freeze) and puts it, which
frees the subpages nobody maps any more.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import refs
from engine.kernel.machine import PROC, Blocked, Ctx, Effect, Machine, Param, op
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
    split_addr,
    subpage_addr,
)

REGION = Param("addr", "region", required=True, positional=True)
# Flags that live on each subpage rather than on the folio (PG_anon_exclusive is per page).
PER_PAGE_FLAGS = ANON_EXCLUSIVE


def mmap_lock_reason(ctx: Ctx, proc: str) -> str | None:
    p = ctx.w.proc(proc)
    if p is None:
        return f"waits for process {proc} to exist"
    if p.mmap_writer and p.mmap_writer != ctx.name:
        return f"waits for mmap_lock of {proc}, held for write by {p.mmap_writer}"
    return None


def region_touched(ctx: Ctx, proc: str, region: str) -> bool:
    """Whether anything is mapped in region: a PTE of its table or a PMD other than none."""
    prefix = f"{region}#"
    if ctx.w.pmd(proc, region) != Pmd():
        return True
    return any(p == proc and a.startswith(prefix) for p, a, _ in ctx.w.ptes)


@op("thp_fault", (REGION, PROC), ("do_huge_pmd_anonymous_page",))
def thp_fault_op(ctx: Ctx) -> Effect | Blocked:
    """A write fault on an empty, THP-enabled region: do_huge_pmd_anonymous_page maps a new
    zero-filled large folio with one huge PMD (writable, dirty)."""
    proc, region = ctx.proc, ctx.p("addr")
    reason = mmap_lock_reason(ctx, proc)
    if reason:
        return Blocked(reason)
    ctx.next_op()
    if region_touched(ctx, proc, region):
        return ctx.effect(
            "do_huge_pmd_anonymous_page",
            f"the PMD over {region} is not none: no THP, the fault is handled per PTE",
        )
    exclusive = ANON_EXCLUSIVE if ctx.cfg.on("anon_exclusive") else 0
    head = Page(ref=1, flags=SWAPBACKED | exclusive, lru="inactive_anon", owner="anon", entire=1)
    ctx.w, index = ctx.w.new_folio(head, ("0",) * HPAGE_NR, tail_flags=exclusive)
    pmd = Pmd(kind="huge", page=index, write=True, dirty=True, young=True)
    ctx.w = ctx.w.set_pmd(proc, region, pmd)
    for i in range(HPAGE_NR):
        key = f"{proc}:{subpage_addr(region, i)}"
        if ctx.w.expected(key) is None:
            ctx.w = ctx.w.set_expected(key, Expected(allowed=("0",), latest="0"))
    return ctx.effect(
        "do_huge_pmd_anonymous_page",
        f"a new zero-filled large folio {page_name(index)} ({HPAGE_NR} pages) mapped by a huge "
        f"PMD at {region} ({refs.refs_note(ctx, index)})",
    )


def split_pmd(ctx: Ctx, proc: str, region: str) -> str:
    """__split_huge_pmd_locked on an anon huge PMD, under the PMD lock: pmdp_invalidate,
    then a PTE per subpage with the PMD's bits (the dirty bit carried over to each PTE and
    to the folio, 0ccf7f168e17), a reference and a mapcount per PTE in place of the PMD's
    one reference and entire mapcount, then pmd_populate with the deposited table."""
    pmd = ctx.w.pmd(proc, region)
    assert pmd.kind == "huge"
    head = pmd.page
    folio = ctx.w.page(head)
    ctx.w = ctx.w.set_pmd(proc, region, Pmd(kind="table", table=pmd.table + 1))
    refs.update(ctx, head, folio.evolve(ref=folio.ref + folio.nr - 1, entire=folio.entire - 1))
    if pmd.dirty:
        refs.mark_dirty(ctx, head)
    for i in range(folio.nr):
        sub = ctx.w.page(head + i)
        refs.update(ctx, head + i, sub.evolve(mapcount=sub.mapcount + 1))
        pte = Pte(page=head + i, present=True, write=pmd.write, dirty=pmd.dirty, young=pmd.young)
        ctx.w = ctx.w.set_pte(proc, subpage_addr(region, i), pte)
    return (
        f"__split_huge_pmd_locked: the huge PMD over {region} becomes {folio.nr} PTEs "
        f"({refs.refs_note(ctx, head)})"
    )


def split_if_huge(ctx: Ctx, proc: str, addr: str) -> str:
    """zap_pmd_range / handle_mm_fault on part of a huge PMD split it first; "" if not huge."""
    where = split_addr(addr)
    if where is None or ctx.w.pmd(proc, where[0]).kind != "huge":
        return ""
    return split_pmd(ctx, proc, where[0])


def after_pte_unmap(ctx: Ctx, index: int) -> None:
    """folio_remove_rmap_pte's tail: an anon large folio left partly mapped goes on the
    deferred split queue (deferred_split_folio), to be split under memory pressure."""
    head = ctx.w.folio(index)
    folio = ctx.w.page(head)
    if not folio.order or not folio.anon or head in ctx.w.deferred:
        return
    if ctx.w.folio_mapcount(head) > 0:
        ctx.w = ctx.w.evolve(deferred=(*ctx.w.deferred, head))


@op("split_huge_pmd", (REGION, PROC), ("__split_huge_pmd_locked",))
def split_huge_pmd_op(ctx: Ctx) -> Effect | Blocked:
    """split_huge_pmd: a huge PMD becomes a table of PTEs mapping the same subpages."""
    proc, region = ctx.proc, ctx.p("addr")
    reason = mmap_lock_reason(ctx, proc)
    if reason:
        return Blocked(reason)
    ctx.next_op()
    if ctx.w.pmd(proc, region).kind != "huge":
        return ctx.effect("__split_huge_pmd_locked", f"the PMD over {region} is not huge")
    return ctx.effect("__split_huge_pmd_locked", split_pmd(ctx, proc, region))


class Splitting(NamedTuple):
    folio: int = NO_PAGE  # the folio deferred_split_scan took off the queue, with a reference


SPLIT = Machine(Splitting)


def can_split(ctx: Ctx, head: int) -> bool:
    """can_split_folio: every reference is a mapping's, plus the caller's one (and the swap
    cache's, one per page, for a folio in it)."""
    folio = ctx.w.page(head)
    extra = folio.nr if folio.has(SWAPCACHE) else 0
    return ctx.w.folio_mapcount(head) == folio.ref - extra - 1


def split_folio(ctx: Ctx, head: int) -> str:
    """split_huge_page_to_list_to_order, anon and not in the swap cache, as one step:
    folio_trylock, unmap_folio (migration entries), folio_ref_freeze with the expected
    count 1, __split_huge_page (each tail an order-0 page with one reference, the flags of
    the folio and its own PG_anon_exclusive), remap_page, and the put of every page but
    the caller's. Returns the sentence; the folio stays unsplit if the freeze fails."""
    # unmap_folio with TTU_SPLIT_HUGE_PMD: a PMD mapping is split into PTEs first.
    for proc, region, pmd in ctx.w.pmds:
        if pmd.kind == "huge" and pmd.page == head:
            split_pmd(ctx, proc, region)
    folio = ctx.w.page(head)
    if folio.has(LOCKED):
        return f"folio_trylock fails: {page_name(head)} is locked"
    if not can_split(ctx, head):
        return (
            f"can_split_folio: {page_name(head)} has references besides its mappings and "
            f"ours ({refs.refs_note(ctx, head)}): -EAGAIN, not split"
        )
    flags = folio.flags & ~PER_PAGE_FLAGS
    for i in range(folio.nr):
        sub = ctx.w.page(head + i)
        mine = sub.flags & PER_PAGE_FLAGS
        # Unfrozen: the caller's reference on the head, one on each tail that remap and
        # the final put then turn into one per remaining mapping.
        ref = (1 if i == 0 else 0) + sub.mapcount
        page = Page(
            ref=ref,
            mapcount=sub.mapcount,
            flags=flags | mine,
            lru=folio.lru,
            data=sub.data,
            owner=folio.owner,
            gen=sub.gen,
            swap=folio.swap,
        )
        refs.update(ctx, head + i, page)
    ctx.w = ctx.w.evolve(deferred=tuple(d for d in ctx.w.deferred if d != head))
    freed = []
    for i in range(1, folio.nr):
        if ctx.w.page(head + i).ref == 0:
            ctx.w = ctx.w.free_page(head + i)
            freed.append(page_name(head + i))
    note = f"split_huge_page: {page_name(head)} and its tails are now {folio.nr} order-0 pages"
    if freed:
        note += f"; free_page_and_swap_cache frees unmapped {', '.join(freed)}"
    return note


@SPLIT.step
def deferred_split_take(ctx: Ctx) -> Effect | Blocked:
    queue = ctx.w.deferred
    if not queue:
        ctx.next_op()
        return ctx.effect("deferred_split_scan", "the deferred split queue is empty")
    head = queue[0]
    if not refs.try_get(ctx, head):
        ctx.w = ctx.w.evolve(deferred=queue[1:])
        ctx.next_op()
        return ctx.effect("deferred_split_scan", f"folio_try_get fails on {page_name(head)}")
    ctx.goto(deferred_split_do, folio=head)
    return ctx.effect(
        "deferred_split_scan",
        f"takes {page_name(head)} off the deferred split queue ({refs.refs_note(ctx, head)})",
    )


@SPLIT.step
def deferred_split_do(ctx: Ctx) -> Effect | Blocked:
    head = ctx.regs(Splitting).folio
    note = split_folio(ctx, head)
    freed = refs.put(ctx, head, what="folio_put")
    if freed:
        note += f"; folio_put frees {page_name(head)}"
    ctx.next_op()
    return ctx.effect("split_folio", note)


@op(
    "deferred_split_scan",
    (),
    ("deferred_split_scan", "split_folio"),
    refs_held={"deferred_split_do": "deferred split"},
)
def deferred_split_scan_op(ctx: Ctx) -> Effect | Blocked:
    """The THP shrinker: deferred_split_scan takes the first queued folio with folio_try_get,
    splits it (split_folio) and puts it."""
    return SPLIT.resume(ctx, deferred_split_take)
