"""The swap device and its slots' life (mm/swapfile.c, mm/swap_state.c).

A slot is allocated for a folio by folio_alloc_swap (get_swap_page before 5.19), which
also puts the folio in the swap cache (SWAP_HAS_CACHE); every swap PTE adds one to its
count (swap_duplicate), swap_free drops one, and deleting the folio from the swap cache
(put_swap_folio / swapcache_free) drops SWAP_HAS_CACHE. A swap-in that skips the swap
cache on a synchronous device pins the slot with swapcache_prepare (SWAP_HAS_CACHE with
no folio) and swapcache_clear unpins it (13ddaf26be32, 6.8). When the count reaches 0 the
slot is free, and the allocator hands out the most recently freed slot first (the per-cpu
swap slot cache returns a just-freed slot to the next allocation), so an entry can come
back with another page behind it: the ABA that pte_same cannot see. On a synchronous
device (zram) freeing a slot also discards its content (swap_slot_free_notify).

The device itself can go away: swapoff clears SWP_WRITEOK (no more allocations), brings
every swapped page back (try_to_unuse), clears SWP_VALID, waits for every holder of
get_swap_device (synchronize_rcu before 5.14, the percpu_ref after) and frees swap_map.
"""

from __future__ import annotations

from engine.kernel import refs
from engine.kernel.machine import Ctx
from engine.state import DIRTY, NO_PAGE, SWAPCACHE, WRITEBACK, Slot, page_name

ON = ""
CLOSING = "closing"  # swapoff cleared SWP_WRITEOK: folio_alloc_swap fails
INVALID = "invalid"  # swapoff cleared SWP_VALID: get_swap_device fails
OFF = "off"  # swap_map and the swap cache are freed


def settle(ctx: Ctx, index: int) -> None:
    """The slot's count may have reached 0: free it (swap_range_free), newest last."""
    slot = ctx.w.swap[index]
    if slot.in_use or index in ctx.w.swap_free:
        return
    if ctx.w.swap_sync:
        # zram_slot_free_notify: the compressed copy is discarded with the slot.
        slot = Slot(zgen=slot.zgen)
    if slot.zswap:
        # zswap_invalidate (frontswap_invalidate_page before 6.5): the tree drops its entry;
        # a writeback holding the entry keeps its own reference.
        slot = slot.evolve(zswap=0, zdata="")
    ctx.w = ctx.w.set_slot(index, slot)
    ctx.w = ctx.w.evolve(swap_free=(*ctx.w.swap_free, index))


def read_slot(slot: Slot) -> str:
    """swap_read_folio's data: zswap_load, else the device; a slot never written (or
    discarded by zram) reads as zeros."""
    stored = slot.stored
    return "0" if stored is None else stored


def alloc_slot(ctx: Ctx, page: int) -> int | None:
    """folio_alloc_swap: a free slot (the most recently freed first) bound to `page` in the
    swap cache, or None when the device takes no allocations (swapoff has begun)."""
    if ctx.w.swap_dev != ON:
        return None
    zgen = 0
    if ctx.w.swap_free:
        index = ctx.w.swap_free[-1]
        ctx.w = ctx.w.evolve(swap_free=ctx.w.swap_free[:-1])
        zgen = ctx.w.swap[index].zgen
    else:
        index = len(ctx.w.swap)
    ctx.w = ctx.w.set_slot(index, Slot(cache=page, zgen=zgen))
    return index


def swap_free(ctx: Ctx, index: int) -> None:
    """swap_free / the swap half of free_swap_and_cache: one swap entry less."""
    slot = ctx.w.swap[index]
    ctx.w = ctx.w.set_slot(index, slot.evolve(entries=slot.entries - 1))
    settle(ctx, index)


def only_cache_left(ctx: Ctx, index: int) -> bool:
    """free_swap_and_cache's test after __swap_entry_free: count == SWAP_HAS_CACHE."""
    slot = ctx.w.swap[index]
    return not slot.entries and (slot.cache >= 0 or slot.has_cache)


def try_to_reclaim_swap(ctx: Ctx, index: int) -> str:
    """__try_to_reclaim_swap(TTRS_UNMAPPED | TTRS_FULL) of the slot's swap-cache folio, the
    second half of free_swap_and_cache (zap_pte_range, MADV_FREE on a swap PTE) once only
    SWAP_HAS_CACHE is left: under a successful trylock, an unmapped folio not under
    writeback leaves the swap cache (folio_free_swap) and the lookup's reference is dropped.
    Returns what it did, for the note."""
    slot = ctx.w.swap[index]
    folio = slot.cache
    if slot.entries or folio < 0:
        return ""
    page = ctx.w.page(folio)
    if page.ref == 0 or page.locker or page.mapcount or page.has(WRITEBACK):
        return ""
    refs.update(ctx, folio, page.clear(SWAPCACHE).set(DIRTY).evolve(swap=-1))
    uncache(ctx, index)
    freed = refs.put(ctx, folio, what="free_swap_and_cache")
    tail = ": the last reference, freed" if freed else ""
    return f"; __try_to_reclaim_swap: {page_name(folio)} leaves the swap cache{tail}"


def folio_free_swap(ctx: Ctx, index: int) -> str:
    """folio_free_swap / delete_from_swap_cache once no swap entry is left: the folio leaves
    the swap cache (dropping its reference) and is dirty, its only copy now being in memory."""
    page = ctx.w.page(index)
    slot = ctx.w.swap[page.swap]
    if slot.entries > 0 or page.has(WRITEBACK):
        return ""
    uncache(ctx, page.swap)
    refs.update(ctx, index, page.clear(SWAPCACHE).set(DIRTY).evolve(ref=page.ref - 1, swap=-1))
    return "; delete_from_swap_cache: the page is dirty, the slot free"


def uncache(ctx: Ctx, index: int) -> None:
    """__delete_from_swap_cache + put_swap_folio: the folio leaves, SWAP_HAS_CACHE goes."""
    ctx.w = ctx.w.set_slot(index, ctx.w.swap[index].evolve(cache=NO_PAGE))
    settle(ctx, index)


def swapcache_prepare(ctx: Ctx, index: int) -> bool:
    """__swap_duplicate(entry, SWAP_HAS_CACHE): False (-EEXIST) if the flag is already set."""
    slot = ctx.w.swap[index]
    if slot.cache >= 0 or slot.has_cache:
        return False
    ctx.w = ctx.w.set_slot(index, slot.evolve(has_cache=True))
    return True


def swapcache_clear(ctx: Ctx, index: int) -> None:
    """Drop the SWAP_HAS_CACHE pin of a swap-in that skipped the swap cache."""
    ctx.w = ctx.w.set_slot(index, ctx.w.swap[index].evolve(has_cache=False))
    settle(ctx, index)


def get_swap_device(ctx: Ctx) -> bool:
    """get_swap_device: a reference that keeps swapoff from freeing the device; fails
    once swapoff has cleared SWP_VALID."""
    if ctx.w.swap_dev in (INVALID, OFF):
        return False
    if ctx.name not in ctx.w.swap_users:
        ctx.w = ctx.w.evolve(swap_users=tuple(sorted((*ctx.w.swap_users, ctx.name))))
    return True


def put_swap_device(ctx: Ctx) -> None:
    ctx.w = ctx.w.evolve(swap_users=tuple(u for u in ctx.w.swap_users if u != ctx.name))


def device_gone(ctx: Ctx, what: str) -> bool:
    """A swap path touching the device after swapoff freed it: flag the use after free."""
    if ctx.w.swap_dev != OFF:
        return False
    ctx.violate(
        "use_after_free",
        f"{ctx.name}: {what} touches the swap device after swapoff freed its swap_map",
    )
    return True
