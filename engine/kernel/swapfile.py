"""swapoff (mm/swapfile.c): try_to_unuse, then tearing the swap device down.

swapoff clears SWP_WRITEOK, so no new slot is allocated; try_to_unuse brings every
swapped-out page back, one swap PTE at a time under its PTE lock (unuse_pte maps the
page read-only from the swap cache, reading the slot first if needed), then frees the
swap cache of every slot (folio_free_swap: the folio is dirty, its only copy now in
memory) and waits while a slot is still in use (SWAP_HAS_CACHE of a swap-in that skips
the swap cache). Then it clears SWP_VALID, waits for the holders of get_swap_device
(synchronize_rcu from 5.1, eb085574a752; the percpu_ref from 5.14) and frees swap_map and
the swap cache: any swap path still using the device afterwards touches freed memory.
"""

from __future__ import annotations

from engine.kernel import refs, swap
from engine.kernel.machine import Blocked, Ctx, Effect, Machine, NoRegisters, op
from engine.state import (
    ANON_EXCLUSIVE,
    DIRTY,
    SWAPBACKED,
    SWAPCACHE,
    WRITEBACK,
    Page,
    Pte,
    page_name,
)

SWAPOFF = Machine(NoRegisters)


def swapoff_start(ctx: Ctx) -> Effect | Blocked:
    if ctx.w.swap_dev != swap.ON:
        ctx.next_op()
        return ctx.effect("swapoff", "-EINVAL: the swap device is already being swapped off")
    ctx.w = ctx.w.evolve(swap_dev=swap.CLOSING)
    ctx.goto(unuse)
    return ctx.effect(
        "swapoff", "del_from_avail_list: SWP_WRITEOK cleared, no new swap slots from now on"
    )


def unuse_pte(ctx: Ctx, proc: str, addr: str, pte: Pte) -> Effect | Blocked:
    owner = ctx.w.proc(proc)
    if owner is not None and owner.ptl and owner.ptl != ctx.name:
        return Blocked(f"waits for the PTE lock of {proc}, held by {owner.ptl}")
    entry = pte.swap
    slot = ctx.w.swap[entry]
    index = slot.cache
    how = "finds it in the swap cache"
    if index >= 0:
        page = ctx.w.page(index)
        if page.ref == 0:
            return Blocked(f"waits: {page_name(index)} is frozen by reclaim")
        if page.locker and page.locker != ctx.name:
            return Blocked(f"waits for the folio lock of {page_name(index)}, held by {page.locker}")
    elif slot.has_cache:
        # unuse_pte_range's swapin_readahead -> __read_swap_cache_async: swapcache_prepare
        # gives -EEXIST while a swap-in owns SWAP_HAS_CACHE without a folio in the cache.
        return Blocked(
            f"swapcache_prepare(S{entry}): -EEXIST, a swap-in is adding it to the swap cache; retry"
        )
    else:
        data = swap.read_slot(slot)
        new = Page(
            ref=1,
            flags=SWAPBACKED | SWAPCACHE,
            lru="inactive_anon",
            data=data,
            owner="anon",
            swap=entry,
        )
        ctx.w, index = ctx.w.new_page(new)
        ctx.w = ctx.w.set_slot(entry, slot.evolve(cache=index))
        how = "reads it into the swap cache (read_swap_cache_async)"
    page = ctx.w.page(index)
    exclusive = ANON_EXCLUSIVE if pte.exclusive_swap and ctx.cfg.on("anon_exclusive") else 0
    refs.update(
        ctx, index, page.set(exclusive).evolve(ref=page.ref + 1, mapcount=page.mapcount + 1)
    )
    ctx.w = ctx.w.set_pte(proc, addr, Pte(page=index, present=True, file=pte.file))
    swap.swap_free(ctx, entry)
    ctx.goto(unuse)
    return ctx.effect(
        "unuse_pte",
        f"{proc}:{addr} held S{entry}: {how}, maps {page_name(index)} read-only, swap_free "
        f"({refs.refs_note(ctx, index)})",
    )


@SWAPOFF.step
def unuse(ctx: Ctx) -> Effect | Blocked:
    for proc, addr, pte in ctx.w.ptes:
        if pte.swap >= 0 and not pte.present:
            return unuse_pte(ctx, proc, addr, pte)
    for entry, slot in enumerate(ctx.w.swap):
        if slot.cache >= 0:
            index = slot.cache
            page = ctx.w.page(index)
            if page.locker and page.locker != ctx.name:
                return Blocked(
                    f"waits for the folio lock of {page_name(index)}, held by {page.locker}"
                )
            if page.ref == 0:
                return Blocked(f"waits: {page_name(index)} is frozen by reclaim")
            if page.has(WRITEBACK):
                return Blocked(f"folio_wait_writeback: {page_name(index)} is under writeback")
            refs.update(ctx, index, page.clear(SWAPCACHE).set(DIRTY).evolve(swap=-1))
            swap.uncache(ctx, entry)
            refs.put(ctx, index, what="folio_free_swap")
            ctx.goto(unuse)
            return ctx.effect(
                "folio_free_swap",
                f"{page_name(index)} leaves the swap cache of S{entry}, dirty: its only copy "
                "is in memory now",
            )
        if slot.in_use:
            return Blocked(
                f"try_to_unuse: S{entry} is still in use (SWAP_HAS_CACHE of a swap-in that "
                "skips the swap cache): retry"
            )
    ctx.w = ctx.w.evolve(swap_dev=swap.INVALID)
    ctx.goto(teardown)
    return ctx.effect(
        "try_to_unuse", "no slot is in use any more: SWP_VALID cleared, get_swap_device fails"
    )


@SWAPOFF.step
def teardown(ctx: Ctx) -> Effect | Blocked:
    users = [u for u in ctx.w.swap_users if u != ctx.name]
    if users and ctx.cfg.on("get_swap_device"):
        return Blocked(
            f"synchronize_rcu / percpu_ref_kill: waits for get_swap_device of {', '.join(users)}"
        )
    ctx.w = ctx.w.evolve(swap_dev=swap.OFF)
    ctx.next_op()
    return ctx.effect("swapoff", "swap_map, cluster_info and the swap cache are freed")


@op("swapoff", (), ("swapoff", "unuse_pte", "folio_free_swap", "try_to_unuse"))
def swapoff_op(ctx: Ctx) -> Effect | Blocked:
    """swapoff(2) of the swap device: bring every swapped-out page back, then free the device."""
    return SWAPOFF.resume(ctx, swapoff_start)
