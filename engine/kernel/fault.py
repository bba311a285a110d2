"""User memory access: the CPU store and load, and the page-fault handlers behind them.

handle_mm_fault is modelled as one atomic step under the PTE lock: it picks the
handler the kernel would (do_anonymous_page, do_wp_page, do_swap_page,
filemap_fault + do_page_mkwrite) and applies it. Which anonymous pages a write
fault may reuse in place is exactly where the COW fixes differ by version.

A CPU access's do_swap_page runs in its steps on every swap device: the PTE read
(orig_pte), swap_cache_get_folio, then either the swap cache's protocol
(__read_swap_cache_async: swapcache_prepare, add_to_swap_cache, swap_read_folio;
folio_lock and the check that the folio is still the entry's swap cache) or, on a
synchronous device, the path that skips the swap cache; and last the pte_same recheck
under the PTE lock, swap_free and the reuse rules. GUP's fault (handle_mm_fault from
gup.py) still swaps in in one step.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import oracle, refs, swap, thp
from engine.kernel.machine import ADDR, PROC, Blocked, Ctx, Effect, Machine, Param, holding, op
from engine.state import (
    ANON_EXCLUSIVE,
    DIRTY,
    LOCKED,
    NO_PAGE,
    PRIVATE,
    SWAPBACKED,
    SWAPCACHE,
    WRITEBACK,
    ZERO_PAGE,
    Expected,
    Page,
    Pte,
    page_name,
    split_addr,
)

# A fault can only be undone by another actor's step, and actors are finite, so this is a
# safety net rather than a modelling choice; the retry count in the registers keeps the graph
# acyclic.
MAX_FAULT_RETRIES = 16
# The steps of do_swap_page: both devices, the swap cache's protocol, the skip path.
SWAPIN_STEPS = (
    "do_swap_page",
    "swap_cache_get_folio",
    "swapcache_prepare",
    "add_to_swap_cache",
    "swap_read_folio",
    "folio_lock",
    "pte_same",
)


class Faulting(NamedTuple):
    """A CPU access that took a fault and retries the access; do_swap_page's own state
    between its steps."""

    tries: int = 0
    entry: int = -1  # the swap entry do_swap_page read from the PTE (vmf->orig_pte)
    page: int = NO_PAGE  # the folio this swap-in holds a reference on
    pinned: bool = False  # need_clear_cache: this swap-in holds SWAP_HAS_CACHE
    device: bool = False  # this fault holds get_swap_device
    cached: bool = False  # the folio is (or was) the entry's swap cache (swapcache == folio)


ACCESS = Machine(Faulting)


def wait_reason(ctx: Ctx, proc: str, pte: Pte | None, lookup: bool = True) -> str | None:
    """Why a fault on this PTE must wait, if it must. With `lookup` false the fault's own
    steps look the folio up (do_swap_page in steps): a frozen or locked swap-cache folio is
    waited for there, not before the fault begins."""
    p = ctx.w.proc(proc)
    if p is None:
        return f"waits for process {proc} to exist"
    if p.mmap_writer and p.mmap_writer != ctx.name:
        # A fault takes mmap_lock for read (or, from 6.4, the VMA lock fork also holds).
        return f"waits for mmap_lock of {proc}, held for write by {p.mmap_writer}"
    if p.ptl and p.ptl != ctx.name:
        return f"waits for the PTE lock of {proc}, held by {p.ptl}"
    if pte is not None and pte.migration:
        return f"waits for the migration of {page_name(pte.page)} (migration_entry_wait)"
    cached = -1
    if not lookup:
        return None
    if pte is not None and pte.swap >= 0:
        cached = ctx.w.swap[pte.swap].cache
    elif pte is not None and pte.file and not pte.present:
        cached = ctx.w.file(pte.file).cache
    if cached >= 0 and ctx.w.page(cached).ref == 0:
        # The lookup's folio_try_get fails on a frozen page: it retries until reclaim is done.
        return f"waits: {page_name(cached)} is frozen by reclaim (folio_try_get fails, retry)"
    if cached >= 0:
        # filemap_fault and do_swap_page lock the folio before mapping it.
        locker = ctx.w.page(cached).locker
        if locker and locker != ctx.name:
            return f"waits for the folio lock of {page_name(cached)}, held by {locker}"
    return None


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


def needs_fault(pte: Pte, write: bool) -> bool:
    if not pte.present:
        return True
    return write and (not pte.write or pte.page == ZERO_PAGE)


def new_anon_page(ctx: Ctx, data: str) -> int:
    """alloc_anon_folio: a fresh exclusive anon page, mapped once."""
    exclusive = ANON_EXCLUSIVE if ctx.cfg.on("anon_exclusive") else 0
    page = Page(
        ref=1,
        mapcount=1,
        flags=SWAPBACKED | exclusive,
        lru="inactive_anon",
        data=data,
        owner="anon",
    )
    ctx.w, index = ctx.w.new_page(page)
    return index


def file_page(ctx: Ctx, name: str) -> tuple[int, bool]:
    """filemap_fault's lookup: the page-cache page, read from disk if absent."""
    f = ctx.w.file(name)
    if f.cache >= 0:
        return f.cache, False
    page = Page(ref=1, data=f.disk, owner=f"file:{name}", lru="inactive_file")
    ctx.w, index = ctx.w.new_page(page)
    ctx.w = ctx.w.set_file(name, f.evolve(cache=index))
    return index, True


def page_mkwrite(ctx: Ctx, index: int) -> None:
    """ext4_page_mkwrite: attach buffers (PG_private, +1 ref); then fault_dirty_shared_page
    dirties the page with folio_mark_dirty, which also clears PG_reclaim."""
    page = ctx.w.page(index)
    if not page.has(PRIVATE):
        refs.update(ctx, index, page.set(PRIVATE).evolve(ref=page.ref + 1))
    refs.mark_dirty(ctx, index)


def reuse_anon(ctx: Ctx, index: int, page: Page) -> bool:
    """do_wp_page: may this write fault reuse the anon page in place?"""
    if ctx.cfg.on("anon_exclusive") and page.has(ANON_EXCLUSIVE):
        return True
    if ctx.w.folio(index) != index or page.order:
        # A subpage of a large folio that is not known exclusive is copied
        # (wp_can_reuse_anon_folio: "if (folio_test_large(folio)) return false").
        return False
    if ctx.cfg.on("wp_reuse_frees_swapcache"):
        # 53a05ad9f21d (5.18), wp_can_reuse_anon_folio later: the refcount may count the
        # swap cache once; under the folio lock, folio_free_swap drops that reference only
        # when no swap entry is left (another process's swap PTE keeps it), then the
        # refcount must be exactly 1.
        if page.ref > 1 + (1 if page.has(SWAPCACHE) else 0) or page.has(LOCKED):
            return False
        if page.has(SWAPCACHE):
            free_swap(ctx, index)
        return ctx.w.page(index).ref == 1
    if ctx.cfg.on("wp_reuse_by_refcount"):
        # 09854ba94c6a: page_count() == 1 under a successful trylock_page.
        return page.ref == 1 and page.mapcount == 1 and not page.has(LOCKED)
    # Before 5.9: reuse_swap_page() looked at the mapcount (and swap count) only.
    if page.has(SWAPCACHE) and ctx.w.swap[page.swap].entries > 0:
        return False
    return page.mapcount == 1


def do_wp_page(ctx: Ctx, proc: str, addr: str, pte: Pte, unshare: bool = False) -> str:
    """Write (or unshare) fault on a present, write-protected anon or zero-page PTE."""
    old = pte.page
    if old != ZERO_PAGE:
        page = ctx.w.page(old)
        if reuse_anon(ctx, old, page):
            exclusive = ANON_EXCLUSIVE if ctx.cfg.on("anon_exclusive") else 0
            refs.update(ctx, old, ctx.w.page(old).set(exclusive))
            if not unshare:
                ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(write=True, dirty=True, young=True))
            return f"do_wp_page: reuses {page_name(old)} in place ({refs.refs_note(ctx, old)})"
        data = page.data
    else:
        data = "0"
    new = new_anon_page(ctx, data)
    if old != ZERO_PAGE:
        page = ctx.w.page(old)
        refs.update(ctx, old, page.evolve(mapcount=page.mapcount - 1))
        if not refs.put(ctx, old, what="wp_page_copy"):
            thp.after_pte_unmap(ctx, old)
    # FAULT_FLAG_UNSHARE keeps the PTE read-only; a write fault maps the copy writable.
    ctx.w = ctx.w.set_pte(
        proc, addr, Pte(page=new, present=True, write=not unshare, dirty=not unshare, young=True)
    )
    return f"wp_page_copy: {proc} now maps a private copy {page_name(new)} of {page_name(old)}"


def handle_mm_fault(ctx: Ctx, proc: str, addr: str, write: bool, unshare: bool = False) -> str:
    """One fault, as the kernel would resolve it. Returns the sentence for the step."""
    pte = ctx.w.pte(proc, addr)
    assert pte is not None
    if pte.present and not (write or unshare):
        return f"{addr} is already mapped (another fault got there first): nothing to do"
    if pte.present and (write or unshare) and pte.write and pte.page != ZERO_PAGE:
        # handle_pte_fault calls do_wp_page only when the PTE is not writable; a writable PTE
        # (another fault, or this GUP's own earlier one, got there first) only gets
        # pte_mkdirty / pte_mkyoung via ptep_set_access_flags. FAULT_FLAG_UNSHARE on a
        # writable PTE has nothing to unshare.
        if write:
            ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(dirty=True, young=True))
        return f"handle_pte_fault: {addr} is already writable (another fault got there first)"
    if pte.present and (write or unshare) and thp.huge_at(ctx, proc, addr):
        note = thp.do_huge_pmd_wp_page(ctx, proc, addr, write)
        if not note.startswith("__split_huge_pmd"):
            return note
        pte = ctx.w.pte(proc, addr)
        assert pte is not None
        return f"{note}; " + do_wp_page(ctx, proc, addr, pte, unshare)
    if pte.present and (write or unshare):
        if pte.file:
            page_mkwrite(ctx, pte.page)
            ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(write=True, dirty=True, young=True))
            return f"wp_page_shared: page_mkwrite attaches buffers, dirties {page_name(pte.page)}"
        return do_wp_page(ctx, proc, addr, pte, unshare)
    if pte.swap >= 0:
        return do_swap_page(ctx, proc, addr, pte, write)
    if pte.file:
        index, read = file_page(ctx, pte.file)
        refs.get(ctx, index)
        page = ctx.w.page(index)
        refs.update(ctx, index, page.evolve(mapcount=page.mapcount + 1))
        if write:
            page_mkwrite(ctx, index)
        ctx.w = ctx.w.set_pte(
            proc, addr, pte.evolve(page=index, present=True, write=write, dirty=write, young=True)
        )
        how = "reads it from disk" if read else "finds it in the page cache"
        return f"filemap_fault: {how} and maps {page_name(index)} ({refs.refs_note(ctx, index)})"
    if not write:
        ctx.w = ctx.w.set_pte(proc, addr, Pte(page=ZERO_PAGE, present=True, young=True))
        return f"do_anonymous_page: maps the shared zero page read-only at {addr}"
    index = new_anon_page(ctx, "0")
    ctx.w = ctx.w.set_pte(
        proc, addr, Pte(page=index, present=True, write=True, dirty=True, young=True)
    )
    return f"do_anonymous_page: a new zero-filled {page_name(index)} mapped writable at {addr}"


def do_swap_page(ctx: Ctx, proc: str, addr: str, pte: Pte, write: bool) -> str:
    """do_swap_page in one step (GUP's fault): the swap cache's folio, or a new one read
    from the slot into the swap cache, mapped by map_swapped_in."""
    slot = ctx.w.swap[pte.swap]
    if slot.cache >= 0:
        index, how = slot.cache, "finds it in the swap cache"
        refs.get(ctx, index)
    else:
        page = Page(
            ref=2,  # the swap cache's and this fault's
            flags=SWAPBACKED | SWAPCACHE,
            lru="inactive_anon",
            data=slot.data,
            owner="anon",
            swap=pte.swap,
        )
        ctx.w, index = ctx.w.new_page(page)
        ctx.w = ctx.w.set_slot(pte.swap, slot.evolve(cache=index))
        how = "reads it from swap"
    return f"do_swap_page: {how}, {map_swapped_in(ctx, proc, addr, pte, index, write)}"


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
            freed = free_swap(ctx, index)
        page = ctx.w.page(index)
        known = pte.exclusive_swap and ctx.cfg.on("anon_exclusive")
        exclusive = known or page.ref == 1
        if exclusive and ctx.cfg.on("anon_exclusive"):
            refs.update(ctx, index, page.set(ANON_EXCLUSIVE))
        # Only a write fault maps it writable; a read fault maps it read-only (exclusive from
        # 5.19, so the later write fault reuses it in do_wp_page).
        writable = write and exclusive
    else:
        # Up to 5.17, reuse_swap_page: mapcount + swapcount == 1, the refcount ignored (a GUP
        # reference does not stop the reuse); it also deletes the folio from the swap cache
        # and dirties it unless it is under writeback.
        writable = write and swap_users == 1
        if writable and not ctx.w.page(index).has(WRITEBACK) and ctx.w.page(index).has(SWAPCACHE):
            freed = free_swap(ctx, index)
    ctx.w = ctx.w.set_pte(
        proc,
        addr,
        Pte(page=index, present=True, write=writable, dirty=write and writable, young=True),
    )
    ro = "writable" if writable else "read-only"
    return f"maps {page_name(index)} {ro}{freed} ({refs.refs_note(ctx, index)})"


def free_swap(ctx: Ctx, index: int) -> str:
    """folio_free_swap / delete_from_swap_cache once no swap entry is left: the folio leaves
    the swap cache (dropping its reference) and is dirty, its only copy now being in memory."""
    page = ctx.w.page(index)
    slot = ctx.w.swap[page.swap]
    if slot.entries > 0 or page.has(WRITEBACK):
        return ""
    swap.uncache(ctx, page.swap)
    refs.update(ctx, index, page.clear(SWAPCACHE).set(DIRTY).evolve(ref=page.ref - 1, swap=-1))
    return "; delete_from_swap_cache: the page is dirty, the slot free"


def address(ctx: Ctx, proc: str, addr: str) -> tuple[Pte | None, bool]:
    """The PTE for addr, creating an anon mapping on first use; (None, True) if unmapped."""
    pte = ctx.w.pte(proc, addr)
    if pte is not None:
        return pte, False
    where = split_addr(addr)
    if where is not None and ctx.w.pmd(proc, where[0]).kind in ("none", "invalid"):
        # khugepaged cleared the PMD under mmap_lock (and the VMA lock): the fault waits.
        return None, False
    exp = ctx.w.expected(f"{proc}:{addr}")
    if exp is not None and not exp.allowed:
        return None, True  # munmapped: the address no longer exists
    ctx.w = ctx.w.set_pte(proc, addr, Pte())
    if exp is None:
        ctx.w = ctx.w.set_expected(f"{proc}:{addr}", Expected(allowed=("0",), latest="0"))
    return ctx.w.pte(proc, addr), False


def store(ctx: Ctx, proc: str, addr: str, pte: Pte, value: str) -> str:
    if not refs.live(ctx, pte.page, ctx.w.page(pte.page).gen, f"store to {addr}"):
        return f"{proc} stores {value!r} into a freed page"
    page = ctx.w.page(pte.page)
    refs.update(ctx, pte.page, page.evolve(data=value))
    ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(dirty=True, young=True))
    ctx.w = oracle.write(ctx.w, oracle.key_for(ctx.w, proc, addr), value, proc)
    return f"{proc} stores {value!r} at {addr} into {page_name(pte.page)}; the PTE is now dirty"


def load(ctx: Ctx, proc: str, addr: str, pte: Pte) -> str:
    if pte.page == ZERO_PAGE:
        value = "0"
    elif refs.live(ctx, pte.page, ctx.w.page(pte.page).gen, f"load from {addr}"):
        # The MMU sets only the PTE's accessed bit; PG_referenced (folio_mark_accessed)
        # comes from read(2), FOLL_TOUCH and zapping a young file PTE, not from a load.
        value = ctx.w.page(pte.page).data
    else:
        value = ctx.w.page(pte.page).data
    ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(young=True))
    key = oracle.key_for(ctx.w, proc, addr)
    oracle.observe(ctx, key, value, f"{proc} reading {addr}")
    expect = ctx.p("expect")
    if expect and value != expect and not ctx.events:
        ctx.violate(
            "lost_write", f"{proc} reads {value!r} at {addr}; the scenario expects {expect!r}"
        )
    return f"{proc} loads {value!r} from {addr}"


def past_eof(ctx: Ctx, proc: str, addr: str, pte: Pte) -> Effect | Blocked | None:
    """A fault on a file page that i_size no longer covers (truncated to EOF).

    filemap_fault checks i_size before the page cache: VM_FAULT_SIGBUS. A write to a
    page still mapped read-only gets VM_FAULT_NOPAGE from ext4_page_mkwrite
    (block_page_mkwrite: past EOF) and retries until truncate unmaps it.
    """
    if not pte.file or ctx.w.file(pte.file).size > 0:
        return None
    if pte.present:
        return Blocked(
            f"page_mkwrite finds {addr} past the end of {pte.file} (VM_FAULT_NOPAGE): "
            "retries until truncate unmaps it"
        )
    ctx.next_op()
    return ctx.effect(
        "filemap_fault", f"{addr} is past the end of {pte.file}: VM_FAULT_SIGBUS for {proc}"
    )


def _access(ctx: Ctx, write: bool) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    if ctx.w.proc(proc) is None:
        return Blocked(f"waits for process {proc} to exist")
    pte, gone = address(ctx, proc, addr)
    if pte is None and not gone:
        reason = wait_reason(ctx, proc, None)
        return Blocked(reason or f"waits: the PMD over {addr} is being changed")
    if pte is None:
        ctx.next_op()
        return ctx.effect("SIGSEGV", f"{proc} touches {addr}, which is no longer mapped: SIGSEGV")
    in_steps = pte.swap >= 0 and not pte.present and swapin_in_steps(ctx)
    reason = wait_reason(ctx, proc, pte, lookup=not in_steps)
    if reason:
        return Blocked(reason)
    if needs_fault(pte, write):
        pinned = swapin_wait(ctx, pte)
        if pinned:
            return Blocked(pinned)
        eof = past_eof(ctx, proc, addr, pte)
        if eof:
            return eof
        tries = ctx.regs(Faulting).tries
        if tries >= MAX_FAULT_RETRIES:
            raise RuntimeError(f"{ctx.name}: fault retry bound exceeded at {addr}")
        if in_steps:
            return swapin_start(ctx, pte, tries)
        note = handle_mm_fault(ctx, proc, addr, write)
        ctx.goto(store_access if write else load_access, tries=tries + 1)
        return ctx.effect("handle_mm_fault", note)
    pte = ctx.w.pte(proc, addr)
    assert pte is not None
    note = store(ctx, proc, addr, pte, ctx.p("value")) if write else load(ctx, proc, addr, pte)
    ctx.next_op()
    return ctx.effect("store" if write else "load", note)


# do_swap_page in its steps (mm/memory.c, mm/swap_state.c).


def swapin_in_steps(ctx: Ctx) -> bool:
    """Whether a CPU access swaps in in do_swap_page's steps (else one handle_mm_fault)."""
    return True


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
    """The fault is done (or gave up): the access is retried, do_swap_page's state cleared."""
    if ctx.regs(Faulting).device:
        swap.put_swap_device(ctx)
    mmap_read(ctx, take=False)
    ctx.goto(
        store_access if _writing(ctx) else load_access,
        tries=ctx.regs(Faulting).tries + 1,
        entry=-1,
        page=NO_PAGE,
        pinned=False,
        device=False,
        cached=False,
    )


def _writing(ctx: Ctx) -> bool:
    """The access is a store (the `write` op), not a load."""
    return "value" in ctx.params


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
    mmap_read(ctx, take=True)
    ctx.goto(swapin_lookup, tries=tries, entry=entry, device=held)
    return ctx.effect("do_swap_page", note)


@ACCESS.step
def swapin_lookup(ctx: Ctx) -> Effect | Blocked:
    """swap_cache_get_folio, then the swap cache path or the one that skips it."""
    r = ctx.regs(Faulting)
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


@ACCESS.step
def swapin_read(ctx: Ctx) -> Effect | Blocked:
    """swap_read_folio: a synchronous read of the slot into the new folio."""
    r = ctx.regs(Faulting)
    if ctx.w.swap_dev == swap.OFF:
        swap.device_gone(ctx, f"swap_read_folio of S{r.entry} (sis->swap_file)")
        refs.put(ctx, r.page, what="do_swap_page")
        mmap_read(ctx, take=False)  # the oops: the model lets the task's locks go
        ctx.next_op()
        return ctx.effect(
            "swap_read_folio", f"the swap device is gone under the read: {ctx.name} oopses"
        )
    slot = ctx.w.swap[r.entry]
    data = slot.data if slot.written else "0"
    refs.update(ctx, r.page, ctx.w.page(r.page).evolve(data=data))
    ctx.goto(swapin_map)
    what = f"{data!r}" if slot.written else "zeros (the slot was freed and discarded)"
    return ctx.effect("swap_read_folio", f"reads S{r.entry} into {page_name(r.page)}: {what}")


@ACCESS.step
def swapin_map(ctx: Ctx) -> Effect | Blocked:
    """Under the PTE lock: pte_same, then map the folio and swap_free the entry."""
    r = ctx.regs(Faulting)
    proc, addr, entry, index = ctx.proc, ctx.p("addr"), r.entry, r.page
    p = ctx.w.proc(proc)
    if p is not None and p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PTE lock of {proc}, held by {p.ptl}")
    pte = ctx.w.pte(proc, addr)
    same = pte is not None and not pte.present and pte.swap == entry
    clear = ""
    if same:
        assert pte is not None
        write = _writing(ctx)
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
    entry = ctx.regs(Faulting).entry
    if not swap.swapcache_prepare(ctx, entry):
        return Blocked(
            f"swapcache_prepare(S{entry}): -EEXIST, another task is adding it to the swap "
            "cache; retry"
        )
    ctx.w, index = ctx.w.new_page(Page(ref=1, flags=SWAPBACKED, owner="anon"))
    ctx.goto(swapin_add, page=index, cached=True)
    return ctx.effect(
        "swapcache_prepare",
        f"swap_cache_get_folio misses; __read_swap_cache_async allocates {page_name(index)} "
        f"and swapcache_prepare claims S{entry} (SWAP_HAS_CACHE)",
    )


@ACCESS.step
def swapin_add(ctx: Ctx) -> Effect | Blocked:
    """add_to_swap_cache: the new folio, locked, is the entry's swap cache (and on the LRU)."""
    r = ctx.regs(Faulting)
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


@ACCESS.step
def swapin_io(ctx: Ctx) -> Effect | Blocked:
    """swap_read_folio, and the read's completion (folio_end_read: uptodate, unlocked)."""
    r = ctx.regs(Faulting)
    slot = ctx.w.swap[r.entry]
    data = slot.data if slot.written else "0"
    page = ctx.w.page(r.page)
    refs.update(ctx, r.page, page.clear(LOCKED).evolve(data=data, locker=""))
    ctx.goto(swapin_lock)
    return ctx.effect(
        "swap_read_folio",
        f"reads {data!r} from S{r.entry} into {page_name(r.page)}; the read completes: "
        "uptodate, folio unlocked",
    )


def drop_folio(ctx: Ctx, index: int, locked: bool) -> None:
    """out_page / out_release: folio_unlock if this fault holds the lock, then folio_put."""
    page = ctx.w.page(index)
    if locked:
        refs.update(ctx, index, page.clear(LOCKED).evolve(locker=""))
    refs.put(ctx, index, what="do_swap_page")


@ACCESS.step
def swapin_lock(ctx: Ctx) -> Effect | Blocked:
    """folio_lock_or_retry, then: is the folio still the entry's swap cache?"""
    r = ctx.regs(Faulting)
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


@ACCESS.step
def swapin_map_cached(ctx: Ctx) -> Effect | Blocked:
    """Under the PTE lock: pte_same, then swap_free, the reuse rules, set_pte_at and
    folio_unlock of a swap-cache folio."""
    r = ctx.regs(Faulting)
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
    note = map_swapped_in(ctx, proc, addr, pte, index, _writing(ctx))
    page = ctx.w.page(index)
    refs.update(ctx, index, page.clear(LOCKED).evolve(locker=""))
    retry(ctx)
    return ctx.effect(
        "pte_same",
        f"pte_same: {addr} still holds S{entry}: swap_free(S{entry}), {note}; folio_unlock",
    )


@ACCESS.step
def store_access(ctx: Ctx) -> Effect | Blocked:
    """A CPU store: fault (and retry) until the PTE allows it, then store."""
    return _access(ctx, write=True)


@ACCESS.step
def load_access(ctx: Ctx) -> Effect | Blocked:
    """A CPU load: fault (and retry) until the PTE maps a page, then load."""
    return _access(ctx, write=False)


# The swap-in's own reference on its folio (regs.page) before these steps.
SWAPIN_HELD = holding(
    "swap-in", swapin_read, swapin_map, swapin_add, swapin_io, swapin_lock, swapin_map_cached
)


@op(
    "write",
    (ADDR, Param("value", "value", required=True, positional=True), PROC),
    ("handle_mm_fault", "filemap_fault", *SWAPIN_STEPS, "store", "SIGSEGV"),
    refs_held=SWAPIN_HELD,
)
def write_op(ctx: Ctx) -> Effect | Blocked:
    """CPU store: faults the page in (zero-fill, file + page_mkwrite, swap-in, COW) as needed."""
    return ACCESS.resume(ctx, store_access)


@op(
    "read",
    (ADDR, PROC, Param("expect", "value")),
    ("handle_mm_fault", "filemap_fault", *SWAPIN_STEPS, "load", "SIGSEGV"),
    refs_held=SWAPIN_HELD,
)
def read_op(ctx: Ctx) -> Effect | Blocked:
    """CPU load, checked by the lost-write oracle (and against `expect` if given)."""
    return ACCESS.resume(ctx, load_access)
