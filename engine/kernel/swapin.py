"""do_swap_page (mm/memory.c) in its steps: one step machine, shared by both its callers.

A swap PTE is faulted in by a CPU access (the `read` and `write` ops, fault.py) and by GUP's
slow path (faultin_page -> handle_mm_fault, gup.py): the same do_swap_page either way, so
its steps are mounted on both callers' machines (`mount`). A caller supplies what differs:
whether the fault is a write (FAULT_FLAG_WRITE), the step it goes back to once the fault
returned (the access is retried; GUP retries follow_page_pte), and whether the fault takes
mmap_lock itself (a CPU fault) or runs under the caller's (GUP holds it across the fault).
Its registers carry the swap-in's fields (`SwapinRegs`).

The steps: the PTE read (orig_pte) and get_swap_device, swap_cache_get_folio, then either
the swap cache's protocol (__read_swap_cache_async: swapcache_prepare, add_to_swap_cache,
swap_read_folio; folio_lock and the check that the folio is still the entry's swap cache)
or, on a synchronous device, the path that skips the swap cache; and last the pte_same
recheck under the PTE lock, swap_free and the reuse rules of the kernel's version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from engine.kernel import refs, swap
from engine.kernel.machine import Blocked, Ctx, Effect, Machine, StepFn, holding
from engine.state import (
    ANON_EXCLUSIVE,
    KSM,
    LOCKED,
    NO_PAGE,
    SWAPBACKED,
    SWAPCACHE,
    WRITEBACK,
    Page,
    Pte,
    page_name,
)

# The steps of do_swap_page: both devices, the swap cache's protocol, the skip path.
SWAPIN_STEPS = (
    "do_swap_page",
    "swap_cache_get_folio",
    "swapcache_prepare",
    "swap_cluster_readahead",
    "add_to_swap_cache",
    "swap_read_folio",
    "folio_lock",
    "pte_same",
)


class SwapinRegs(Protocol):
    """The registers a caller's machine keeps for its do_swap_page."""

    @property
    def tries(self) -> int: ...  # faults taken so far (the caller's retry bound)
    @property
    def entry(self) -> int: ...  # the swap entry do_swap_page read from the PTE (orig_pte)
    @property
    def page(self) -> int: ...  # the folio this swap-in holds a reference on
    @property
    def pinned(self) -> bool: ...  # need_clear_cache: this swap-in holds SWAP_HAS_CACHE
    @property
    def device(self) -> bool: ...  # this fault holds get_swap_device
    @property
    def cached(self) -> bool: ...  # the folio is (or was) the entry's swap cache


@dataclass(frozen=True, slots=True)
class Caller:
    """What differs between do_swap_page's callers."""

    write: Callable[[Ctx], bool]  # FAULT_FLAG_WRITE
    resume: Callable[[Ctx], StepFn]  # the caller's step once the fault returned
    takes_mmap_lock: bool  # a CPU fault takes mmap_lock; GUP's runs under its own


CALLERS: dict[Machine, Caller] = {}


def regs(ctx: Ctx) -> SwapinRegs:
    assert ctx.machine is not None
    return cast(SwapinRegs, ctx.regs(ctx.machine.regs))


def caller(ctx: Ctx) -> Caller:
    assert ctx.machine is not None
    return CALLERS[ctx.machine]


def swapin_wait(ctx: Ctx, pte: Pte) -> str | None:
    """Why a swap-in of this PTE's entry must wait: another swap-in owns SWAP_HAS_CACHE
    with no folio in the swap cache yet, one that skips the swap cache (13ddaf26be32) or
    one between swapcache_prepare and add_to_swap_cache. swapcache_prepare gives -EEXIST:
    do_swap_page's skip path sleeps a tick and the fault is retried (a wait queue since
    01626a182302), __read_swap_cache_async loops, until the owner adds its folio or
    clears SWAP_HAS_CACHE."""
    if pte.present or pte.swap < 0:
        return None
    slot = ctx.w.swap[pte.swap]
    if slot.cache >= 0 or not slot.has_cache:
        return None
    return (
        f"waits: S{pte.swap} is claimed by another swap-in (SWAP_HAS_CACHE, no folio yet: "
        "swapcache_prepare -EEXIST, retry)"
    )


def map_swapped_in(ctx: Ctx, proc: str, addr: str, pte: Pte, index: int, write: bool) -> str:
    """Under the PTE lock, pte_same passed: swap_free, the reuse rules of the kernel's
    version, and set_pte_at. The fault's reference on the folio becomes the mapping's.
    Returns the end of the step's sentence."""
    slot = ctx.w.swap[pte.swap]
    # reuse_swap_page (up to 5.17) counts mappings and swap entries before this fault's
    # page_add_anon_rmap and swap_free: this PTE's own entry is the 1 it allows.
    swap_users = ctx.w.page(index).mapcount + slot.entries
    swap.swap_free(ctx, pte.swap)
    page = ctx.w.page(index)
    refs.update(ctx, index, page.evolve(mapcount=page.mapcount + 1))
    freed = ""
    if ctx.cfg.on("swap_cow_by_refcount"):
        # c145e0b47c77 (5.18): should_try_to_free_swap on a write fault when only the swap
        # cache and this fault hold the folio, then the do_wp_page rule: refcount == 1.
        # 5.19+: pte_swp_exclusive says the page was exclusive when it was swapped out.
        page = ctx.w.page(index)
        if write and page.ref == 2 and page.has(SWAPCACHE):
            freed = swap.folio_free_swap(ctx, index)
        page = ctx.w.page(index)
        known = pte.exclusive_swap and ctx.cfg.on("anon_exclusive")
        # A KSM folio still in the swap cache is shared by design: never exclusive
        # (do_swap_page: "if (!folio_test_ksm(folio))"), so a write copies it.
        exclusive = (known or page.ref == 1) and not page.has(KSM)
        if exclusive and ctx.cfg.on("anon_exclusive"):
            refs.update(ctx, index, page.set(ANON_EXCLUSIVE))
        # Only a write fault maps it writable; a read fault maps it read-only (exclusive from
        # 5.19, so the later write fault reuses it in do_wp_page).
        writable = write and exclusive
    else:
        # Up to 5.17, reuse_swap_page: mapcount + swapcount == 1, the refcount ignored (a GUP
        # reference does not stop the reuse); it also deletes the folio from the swap cache
        # and dirties it unless it is under writeback.
        writable = write and swap_users == 1 and not ctx.w.page(index).has(KSM)
        if writable and not ctx.w.page(index).has(WRITEBACK) and ctx.w.page(index).has(SWAPCACHE):
            freed = swap.folio_free_swap(ctx, index)
    ctx.w = ctx.w.set_pte(
        proc,
        addr,
        Pte(page=index, present=True, write=writable, dirty=write and writable, young=True),
    )
    ro = "writable" if writable else "read-only"
    return f"maps {page_name(index)} {ro}{freed} ({refs.refs_note(ctx, index)})"


def mmap_read(ctx: Ctx, take: bool) -> None:
    """The fault holds mmap_lock for read (the VMA lock from 6.4) across its steps: fork,
    which takes it for write, waits."""
    p = ctx.w.proc(ctx.proc)
    assert p is not None
    readers = tuple(r for r in p.mmap_readers if r != ctx.name)
    ctx.w = ctx.w.set_proc(
        p.evolve(mmap_readers=tuple(sorted((*readers, ctx.name))) if take else readers)
    )


def retry(ctx: Ctx) -> None:
    """The fault is done (or gave up): back to the caller, do_swap_page's state cleared."""
    r, c = regs(ctx), caller(ctx)
    if r.device:
        swap.put_swap_device(ctx)
    if c.takes_mmap_lock:
        mmap_read(ctx, take=False)
    ctx.goto(
        c.resume(ctx),
        tries=r.tries + 1,
        entry=-1,
        page=NO_PAGE,
        pinned=False,
        device=False,
        cached=False,
    )


def swapin_start(ctx: Ctx, pte: Pte, tries: int) -> Effect | Blocked:
    """handle_pte_fault read the PTE without its lock (orig_pte): a swap entry."""
    entry = pte.swap
    note = f"do_swap_page: the PTE holds swap entry S{entry} (read without the PTE lock)"
    if ctx.cfg.on("do_swap_page_get_swap_device"):
        if not swap.get_swap_device(ctx):
            retry(ctx)
            return ctx.effect(
                "do_swap_page", f"{note}; get_swap_device fails (swapoff): return, retry"
            )
        note += "; get_swap_device holds off swapoff"
    held = ctx.cfg.on("do_swap_page_get_swap_device")
    if caller(ctx).takes_mmap_lock:
        mmap_read(ctx, take=True)
    ctx.goto(swapin_lookup, tries=tries, entry=entry, device=held)
    return ctx.effect("do_swap_page", note)


def swapin_lookup(ctx: Ctx) -> Effect | Blocked:
    """swap_cache_get_folio, then the swap cache path or the one that skips it."""
    r = regs(ctx)
    proc, addr, entry = ctx.proc, ctx.p("addr"), r.entry
    if ctx.w.swap_dev == swap.OFF and not ctx.cfg.on("get_swap_device"):
        swap.device_gone(ctx, f"do_swap_page of S{entry} (__swap_count, swapcache_prepare)")
        mmap_read(ctx, take=False)  # the oops: the model lets the task's locks go
        ctx.next_op()
        return ctx.effect(
            "swap_cache_get_folio",
            f"swap_map of the swapped-off device is gone: NULL pointer access, {ctx.name} oopses",
        )
    if ctx.w.swap_dev in (swap.INVALID, swap.OFF):
        retry(ctx)
        return ctx.effect(
            "swap_cache_get_folio",
            "get_swap_device fails (swapoff): no folio; pte_same fails, the fault returns",
        )
    pte = ctx.w.pte(proc, addr)
    if pte is None or pte.present or pte.swap != entry:
        retry(ctx)
        return ctx.effect(
            "swap_cache_get_folio",
            f"S{entry} is no longer behind {addr} (another path mapped it): the fault returns",
        )
    slot = ctx.w.swap[entry]
    skip = (
        ctx.w.swap_sync
        and ctx.cfg.on("swap_skip_swapcache")
        and slot.cache < 0
        and slot.entries == 1
    )
    if not skip:
        if slot.cache < 0:
            return ctx.then(read_swap_cache_async)
        index = slot.cache
        if not refs.try_get(ctx, index):
            return Blocked(
                f"waits: {page_name(index)} is frozen by reclaim (folio_try_get fails, retry)"
            )
        ctx.goto(swapin_lock, page=index, cached=True)
        return ctx.effect(
            "swap_cache_get_folio",
            f"finds {page_name(index)} in the swap cache of S{entry} and takes a reference "
            f"({refs.refs_note(ctx, index)})",
        )
    note = "swap_cache_get_folio misses; SWP_SYNCHRONOUS_IO and __swap_count == 1"
    pinned = False
    if ctx.cfg.on("skip_swapcache_swapcache_prepare"):
        if not swap.swapcache_prepare(ctx, entry):
            return Blocked(f"swapcache_prepare(S{entry}): -EEXIST, another swap-in owns it; retry")
        pinned = True
        note += f"; swapcache_prepare pins S{entry} (SWAP_HAS_CACHE)"
    ctx.w, index = ctx.w.new_page(Page(ref=1, flags=SWAPBACKED, owner="anon"))
    ctx.goto(swapin_read, page=index, pinned=pinned)
    return ctx.effect(
        "swap_cache_get_folio", f"{note}: skip the swap cache, allocate {page_name(index)}"
    )


def swapin_read(ctx: Ctx) -> Effect | Blocked:
    """swap_read_folio: a synchronous read of the slot into the new folio."""
    r = regs(ctx)
    if ctx.w.swap_dev == swap.OFF:
        swap.device_gone(ctx, f"swap_read_folio of S{r.entry} (sis->swap_file)")
        refs.put(ctx, r.page, what="do_swap_page")
        mmap_read(ctx, take=False)  # the oops: the model lets the task's locks go
        ctx.next_op()
        return ctx.effect(
            "swap_read_folio", f"the swap device is gone under the read: {ctx.name} oopses"
        )
    slot = ctx.w.swap[r.entry]
    data = swap.read_slot(slot)
    refs.update(ctx, r.page, ctx.w.page(r.page).evolve(data=data))
    ctx.goto(swapin_map)
    what = f"{data!r}" if slot.stored is not None else "zeros (the slot was freed and discarded)"
    return ctx.effect("swap_read_folio", f"reads S{r.entry} into {page_name(r.page)}: {what}")


def swapin_map(ctx: Ctx) -> Effect | Blocked:
    """Under the PTE lock: pte_same, then map the folio and swap_free the entry."""
    r = regs(ctx)
    proc, addr, entry, index = ctx.proc, ctx.p("addr"), r.entry, r.page
    p = ctx.w.proc(proc)
    if p is not None and p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PTE lock of {proc}, held by {p.ptl}")
    pte = ctx.w.pte(proc, addr)
    same = pte is not None and not pte.present and pte.swap == entry
    clear = ""
    if same:
        assert pte is not None
        write = caller(ctx).write(ctx)
        exclusive = ANON_EXCLUSIVE if ctx.cfg.on("anon_exclusive") else 0
        page = ctx.w.page(index)
        refs.update(ctx, index, page.set(exclusive).evolve(mapcount=1, lru="inactive_anon"))
        ctx.w = ctx.w.set_pte(
            proc, addr, Pte(page=index, present=True, write=write, dirty=write, young=True)
        )
        swap.swap_free(ctx, entry)
        note = (
            f"pte_same: {addr} still holds S{entry}: set_pte_at maps {page_name(index)} "
            f"{'writable' if write else 'read-only'}, swap_free(S{entry})"
        )
    else:
        refs.put(ctx, index, what="do_swap_page")
        note = f"pte_same fails: {addr} changed; {page_name(index)} is dropped"
    if r.pinned:
        swap.swapcache_clear(ctx, entry)
        clear = f"; swapcache_clear unpins S{entry}"
    retry(ctx)
    return ctx.effect("pte_same", note + clear)


def read_swap_cache_async(ctx: Ctx) -> Effect | Blocked:
    """swapin_readahead -> __read_swap_cache_async after the lookup missed: allocate a
    folio and claim the entry with swapcache_prepare (SWAP_HAS_CACHE). -EEXIST means
    another task is adding it to the swap cache (or a swap-in that skips the swap cache
    holds it): schedule_timeout_uninterruptible(1) and try again."""
    entry = regs(ctx).entry
    ahead = readahead(ctx, entry)
    if isinstance(ahead, Blocked):
        return ahead
    if not swap.swapcache_prepare(ctx, entry):
        return Blocked(
            f"swapcache_prepare(S{entry}): -EEXIST, another task is adding it to the swap "
            "cache; retry"
        )
    ctx.w, index = ctx.w.new_page(Page(ref=1, flags=SWAPBACKED, owner="anon"))
    ctx.goto(swapin_add, page=index, cached=True)
    note = (
        f"__read_swap_cache_async allocates {page_name(index)} and swapcache_prepare claims "
        f"S{entry} (SWAP_HAS_CACHE)"
    )
    if ahead:
        return ctx.effect("swap_cluster_readahead", f"{ahead}; then {note}")
    return ctx.effect("swapcache_prepare", f"swap_cache_get_folio misses; {note}")


# swap_cluster_readahead reads the page_cluster-aligned cluster around the entry
# (swapin_nr_pages: up to 1 << page_cluster slots, page_cluster 3 by default).
CLUSTER = 8


def readahead(ctx: Ctx, entry: int) -> str | Blocked:
    """swapin_readahead's neighbours (only with `swap: {readahead: true}`): before the entry
    itself, swap_cluster_readahead runs __read_swap_cache_async on every other slot of its
    cluster. A slot with no swap count is skipped ("Just skip read ahead for unused swap
    slot"), one already in the swap cache is found and put back; any other is read into a
    new folio added to the swap cache, folio_put by the readahead: it sits unmapped with
    the swap cache's reference only, until a fault maps it, free_swap_and_cache
    (__try_to_reclaim_swap) or swapoff frees it. A slot another swap-in has claimed
    (SWAP_HAS_CACHE, no folio yet) gives -EEXIST, and __read_swap_cache_async waits.
    The model reads them all in this one step, each read completed at once (the kernel
    submits them and the reads complete later, each folio locked until then); the
    device's cluster stands for swap_vma_readahead's window of PTEs too, which holds the
    same slots in a scenario's few addresses. Returns the note, "" if nothing was read."""
    if not ctx.w.swap_readahead:
        return ""
    read = []
    for index, slot in enumerate(ctx.w.swap):
        if index == entry or index // CLUSTER != entry // CLUSTER:
            continue
        if not slot.entries or slot.cache >= 0:
            continue
        if slot.has_cache:
            return Blocked(
                f"swap_cluster_readahead: swapcache_prepare(S{index}): -EEXIST, another task "
                "is adding it to the swap cache; retry"
            )
        page = Page(
            ref=1,
            flags=SWAPBACKED | SWAPCACHE,
            lru="inactive_anon",
            data=swap.read_slot(slot),
            owner="anon",
            swap=index,
        )
        ctx.w, folio = ctx.w.new_page(page)
        ctx.w = ctx.w.set_slot(index, slot.evolve(cache=folio))
        read.append(f"S{index} into {page_name(folio)}")
    if not read:
        return ""
    return (
        f"swap_cache_get_folio misses; swap_cluster_readahead reads {', '.join(read)}: in the "
        "swap cache, unmapped (the swap cache's reference only)"
    )


def swapin_add(ctx: Ctx) -> Effect | Blocked:
    """add_to_swap_cache: the new folio, locked, is the entry's swap cache (and on the LRU)."""
    r = regs(ctx)
    slot = ctx.w.swap[r.entry]
    ctx.w = ctx.w.set_slot(r.entry, slot.evolve(cache=r.page, has_cache=False))
    page = ctx.w.page(r.page)
    refs.update(
        ctx,
        r.page,
        page.set(SWAPCACHE | LOCKED).evolve(
            ref=page.ref + 1, locker=ctx.name, swap=r.entry, lru="inactive_anon"
        ),
    )
    ctx.goto(swapin_io)
    return ctx.effect(
        "add_to_swap_cache",
        f"{page_name(r.page)}, locked, enters the swap cache of S{r.entry}; folio_add_lru "
        f"({refs.refs_note(ctx, r.page)})",
    )


def swapin_io(ctx: Ctx) -> Effect | Blocked:
    """swap_read_folio, and the read's completion (folio_end_read: uptodate, unlocked)."""
    r = regs(ctx)
    slot = ctx.w.swap[r.entry]
    data = swap.read_slot(slot)
    page = ctx.w.page(r.page)
    refs.update(ctx, r.page, page.clear(LOCKED).evolve(data=data, locker=""))
    ctx.goto(swapin_lock)
    source = " (zswap_load)" if slot.zswap else ""
    return ctx.effect(
        "swap_read_folio",
        f"reads {data!r} from S{r.entry}{source} into {page_name(r.page)}; the read completes: "
        "uptodate, folio unlocked",
    )


def drop_folio(ctx: Ctx, index: int, locked: bool) -> None:
    """out_page / out_release: folio_unlock if this fault holds the lock, then folio_put."""
    page = ctx.w.page(index)
    if locked:
        refs.update(ctx, index, page.clear(LOCKED).evolve(locker=""))
    refs.put(ctx, index, what="do_swap_page")


def swapin_lock(ctx: Ctx) -> Effect | Blocked:
    """folio_lock_or_retry, then: is the folio still the entry's swap cache?"""
    r = regs(ctx)
    page = ctx.w.page(r.page)
    if page.locker and page.locker != ctx.name:
        return Blocked(
            f"folio_lock_or_retry: waits for the lock of {page_name(r.page)}, held by {page.locker}"
        )
    refs.update(ctx, r.page, page.set(LOCKED).evolve(locker=ctx.name))
    moved = page.swap != r.entry and ctx.cfg.on("swapin_recheck_swap_entry")
    if not page.has(SWAPCACHE) or moved:
        drop_folio(ctx, r.page, locked=True)
        retry(ctx)
        return ctx.effect(
            "folio_lock",
            f"{page_name(r.page)} locked, but no longer the swap cache of S{r.entry} "
            "(folio_free_swap or swapoff released it): out_page, the fault returns",
        )
    ctx.goto(swapin_map_cached)
    if page.swap != r.entry:
        return ctx.effect(
            "folio_lock",
            f"locks {page_name(r.page)}: (what if) only PageSwapCache is checked, and it is "
            f"in the swap cache, of S{page.swap} now, not S{r.entry}",
        )
    return ctx.effect(
        "folio_lock", f"locks {page_name(r.page)}, still the swap cache of S{r.entry}"
    )


def swapin_map_cached(ctx: Ctx) -> Effect | Blocked:
    """Under the PTE lock: pte_same, then swap_free, the reuse rules, set_pte_at and
    folio_unlock of a swap-cache folio."""
    r = regs(ctx)
    proc, addr, entry, index = ctx.proc, ctx.p("addr"), r.entry, r.page
    p = ctx.w.proc(proc)
    if p is not None and p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PTE lock of {proc}, held by {p.ptl}")
    pte = ctx.w.pte(proc, addr)
    if pte is None or pte.present or pte.swap != entry:
        drop_folio(ctx, index, locked=True)
        retry(ctx)
        return ctx.effect(
            "pte_same", f"pte_same fails: {addr} changed; out_nomap drops {page_name(index)}"
        )
    note = map_swapped_in(ctx, proc, addr, pte, index, caller(ctx).write(ctx))
    page = ctx.w.page(index)
    refs.update(ctx, index, page.clear(LOCKED).evolve(locker=""))
    retry(ctx)
    return ctx.effect(
        "pte_same",
        f"pte_same: {addr} still holds S{entry}: swap_free(S{entry}), {note}; folio_unlock",
    )


SWAPIN_HELD = holding(
    "swap-in", swapin_read, swapin_map, swapin_add, swapin_io, swapin_lock, swapin_map_cached
)


# The steps a caller's machine stops before (its goto targets).
STEPS: tuple[StepFn, ...] = (
    swapin_lookup,
    swapin_read,
    swapin_map,
    swapin_add,
    swapin_io,
    swapin_lock,
    swapin_map_cached,
)


def mount(machine: Machine, c: Caller) -> None:
    """Make do_swap_page's steps steps of `machine`, run on behalf of caller `c`."""
    machine.include(*STEPS)
    CALLERS[machine] = c
