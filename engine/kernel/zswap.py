"""zswap (mm/zswap.c): swapped-out pages kept compressed in memory, and their writeback.

With `swap: {zswap: true}` swap_writepage first offers the page to zswap_store, which
keeps a compressed copy in the swap device's tree (the slot's zswap entry) and ends the
writeback at once: nothing reaches the device. swap_read_folio's zswap_load reads the
tree's copy; freeing the slot (swap_range_free) invalidates the entry.

zswap_writeback_entry (the `zswap_writeback` op: the pool's shrinker writing its coldest
entry to the device) takes the entry off the LRU with a reference of its own, then
allocates a swap-cache folio for the slot with __read_swap_cache_async, decompresses the
entry into it and writes it to the device with __swap_writepage. In between, the entry
may be invalidated and the slot freed, reused and given a new entry (04fc7816089c,
Domenico Cerasuolo, "mm: fix zswap writeback race condition", 6.4): the writeback then
puts the old data in the swap cache of the new page's slot, and the next swap-in maps
it. The fix checks, once the folio is in the swap cache, that the tree still holds the
entry; until e3b63e966cac (Yosry Ahmed, "mm: zswap: fix missing folio cleanup in
writeback race path", 6.8) that abort path left the folio locked and referenced.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import refs, swap
from engine.kernel.machine import Blocked, Ctx, Effect, Machine, holding, op
from engine.state import DIRTY, LOCKED, NO_PAGE, SWAPBACKED, SWAPCACHE, Page, page_name


def store(ctx: Ctx, index: int) -> str:
    """zswap_store of a swap-cache folio under pageout: the tree gets a new entry for its
    slot (replacing a stale one), the folio is clean and its writeback already over.
    Returns the step's note."""
    page = ctx.w.page(index)
    slot = ctx.w.swap[page.swap]
    zgen = slot.zgen + 1
    ctx.w = ctx.w.set_slot(page.swap, slot.evolve(zswap=zgen, zdata=page.data, zgen=zgen))
    refs.update(ctx, index, ctx.w.page(index).clear(DIRTY))
    return (
        f"folio_clear_dirty_for_io; swap_writepage: zswap_store keeps {page.data!r} for "
        f"S{page.swap} (zswap entry #{zgen}), folio_end_writeback at once: nothing is written"
    )


class Writeback(NamedTuple):
    """zswap_writeback_entry's own reference on an entry, and the folio it allocated."""

    entry: int = -1  # the swap slot the entry belongs to
    zgen: int = 0  # which entry: its number
    zdata: str = ""  # its compressed data, mapped by the zpool driver
    page: int = NO_PAGE  # the folio __read_swap_cache_async added to the swap cache


ZSWAP = Machine(Writeback)


def coldest(ctx: Ctx) -> Effect:
    """shrink_worker / zswap_reclaim_entry (zpool's evict handler before 6.5): the LRU's
    coldest entry, with a reference (the lowest slot here), off the LRU."""
    for index, slot in enumerate(ctx.w.swap):
        if slot.zswap:
            ctx.goto(read_swap_cache_async, entry=index, zgen=slot.zswap, zdata=slot.zdata)
            return ctx.effect(
                "zswap_reclaim_entry",
                f"takes zswap entry #{slot.zswap} of S{index} ({slot.zdata!r}) off the LRU, "
                "with a reference of its own",
            )
    ctx.next_op()
    return ctx.effect("zswap_reclaim_entry", "the zswap LRU is empty: nothing to write back")


@ZSWAP.step
def read_swap_cache_async(ctx: Ctx) -> Effect | Blocked:
    """__read_swap_cache_async for the entry's slot: a folio already in the swap cache
    means a swap-in got there first (-EEXIST: the writeback is skipped); an unused slot is
    skipped too; else a new folio, locked, enters the swap cache."""
    r = ctx.regs(Writeback)
    slot = ctx.w.swap[r.entry]
    if slot.cache >= 0 or not slot.in_use:
        why = (
            f"{page_name(slot.cache)} is in the swap cache already (we raced with swapin)"
            if slot.cache >= 0
            else "the slot is no longer in use"
        )
        ctx.next_op()
        return ctx.effect(
            "__read_swap_cache_async",
            f"S{r.entry}: {why}: -EEXIST, the writeback of entry #{r.zgen} is skipped and its "
            "reference dropped",
        )
    if slot.has_cache:
        return Blocked(
            f"swapcache_prepare(S{r.entry}): -EEXIST, another task is adding it to the swap "
            "cache; retry"
        )
    new = Page(
        ref=2,  # the swap cache's and the writeback's own
        flags=SWAPBACKED | SWAPCACHE | LOCKED,
        lru="inactive_anon",
        data="0",
        owner="anon",
        swap=r.entry,
        locker=ctx.name,
    )
    ctx.w, index = ctx.w.new_page(new)
    ctx.w = ctx.w.set_slot(r.entry, slot.evolve(cache=index))
    ctx.goto(writeback_entry, page=index)
    return ctx.effect(
        "__read_swap_cache_async",
        f"allocates {page_name(index)}, locked, in the swap cache of S{r.entry} "
        f"({refs.refs_note(ctx, index)})",
    )


@ZSWAP.step
def writeback_entry(ctx: Ctx) -> Effect:
    """The tree recheck (04fc7816089c), then zswap_decompress into the folio and
    __swap_writepage; the entry leaves the tree if it is still there."""
    r = ctx.regs(Writeback)
    slot = ctx.w.swap[r.entry]
    index = r.page
    if slot.zswap != r.zgen and ctx.cfg.on("zswap_writeback_recheck"):
        # delete_from_swap_cache: the folio leaves the swap cache (its reference with it).
        page = ctx.w.page(index)
        ctx.w = ctx.w.set_slot(r.entry, slot.evolve(cache=NO_PAGE))
        swap.settle(ctx, r.entry)
        refs.update(ctx, index, page.clear(SWAPCACHE).evolve(ref=page.ref - 1, swap=-1))
        if ctx.cfg.on("zswap_writeback_cleanup"):
            ctx.goto(release_folio)
        else:
            # 6.4-6.7: `goto fail` skips folio_unlock and folio_put: the folio is stranded,
            # locked, with the reference __read_swap_cache_async returned.
            ctx.next_op()
        return ctx.effect(
            "zswap_writeback_entry",
            f"S{r.entry}'s tree no longer holds entry #{r.zgen} (invalidated, the slot "
            f"recycled): delete_from_swap_cache of {page_name(index)}, -ENOMEM",
        )
    ctx.next_op()
    page = ctx.w.page(index)
    # zswap_decompress, folio_mark_uptodate; __swap_writepage (its write completes here).
    refs.update(ctx, index, page.clear(LOCKED).evolve(data=r.zdata, locker=""))
    slot = slot.evolve(data=r.zdata, written=True)
    stale = ""
    if slot.zswap == r.zgen:
        slot = slot.evolve(zswap=0, zdata="")  # zswap_invalidate_entry
    elif slot.zswap:
        stale = f"; the tree holds entry #{slot.zswap} now, not #{r.zgen}: stale data"
    ctx.w = ctx.w.set_slot(r.entry, slot)
    refs.put(ctx, index, what="zswap_writeback_entry")
    return ctx.effect(
        "zswap_writeback_entry",
        f"decompresses entry #{r.zgen} ({r.zdata!r}) into {page_name(index)} and "
        f"__swap_writepage writes it to S{r.entry}{stale}; the folio stays in the swap cache "
        f"({refs.refs_note(ctx, index)})",
    )


@ZSWAP.step
def release_folio(ctx: Ctx) -> Effect:
    """e3b63e966cac (6.8): the abort path unlocks and puts the folio it deleted."""
    index = ctx.regs(Writeback).page
    page = ctx.w.page(index)
    refs.update(ctx, index, page.clear(LOCKED).evolve(locker=""))
    freed = refs.put(ctx, index, what="zswap_writeback_entry")
    ctx.next_op()
    tail = ": the last reference, freed" if freed else ""
    return ctx.effect("folio_unlock", f"folio_unlock, folio_put of {page_name(index)}{tail}")


@op(
    "zswap_writeback",
    (),
    ("zswap_reclaim_entry", "__read_swap_cache_async", "zswap_writeback_entry", "folio_unlock"),
    refs_held=holding("zswap writeback", writeback_entry, release_folio),
)
def zswap_writeback_op(ctx: Ctx) -> Effect | Blocked:
    """zswap's shrinker writes its coldest entry back to the swap device (zswap_writeback_entry)."""
    return ZSWAP.resume(ctx, coldest)
