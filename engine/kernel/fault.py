"""User memory access: the CPU store and load, and the page-fault handlers behind them.

handle_mm_fault is modelled as one atomic step under the PTE lock: it picks the
handler the kernel would (do_anonymous_page, do_wp_page, do_swap_page,
filemap_fault + do_page_mkwrite) and applies it. Which anonymous pages a write
fault may reuse in place is exactly where the COW fixes differ by version.

A fault on a swap PTE is do_swap_page in its steps (swapin.py), the same steps for a
CPU access as for GUP's fault: the access's machine mounts them, and the access is
retried once the fault returns.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import oracle, refs, swap, swapin, thp, tlb
from engine.kernel.machine import ADDR, PROC, Blocked, Ctx, Effect, Machine, Param, StepFn, op
from engine.state import (
    ANON_EXCLUSIVE,
    KSM,
    LOCKED,
    NO_PAGE,
    PRIVATE,
    SWAPBACKED,
    SWAPCACHE,
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


class Faulting(NamedTuple):
    """A CPU access that took a fault and retries the access; do_swap_page's own state
    between its steps (swapin.SwapinRegs)."""

    tries: int = 0
    entry: int = -1  # the swap entry do_swap_page read from the PTE (vmf->orig_pte)
    page: int = NO_PAGE  # the folio this swap-in holds a reference on
    pinned: bool = False  # need_clear_cache: this swap-in holds SWAP_HAS_CACHE
    device: bool = False  # this fault holds get_swap_device
    cached: bool = False  # the folio is (or was) the entry's swap cache (swapcache == folio)


ACCESS = Machine(Faulting)


def _writing(ctx: Ctx) -> bool:
    """The access is a store (the `write` op), not a load."""
    return "value" in ctx.params


def _resume(ctx: Ctx) -> StepFn:
    """Once a fault returned, the access is retried."""
    return store_access if _writing(ctx) else load_access


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
    if page.has(KSM):
        return False  # a KSM page is always copied (wp_can_reuse_anon_folio, PageKsm)
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
            swap.folio_free_swap(ctx, index)
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
    if thp.numa_at(ctx, proc, addr):
        return thp.do_huge_pmd_numa_page(ctx, proc, addr)
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
    # A swap PTE is faulted in by do_swap_page's own steps (swapin.py), never here.
    assert pte.swap < 0, "do_swap_page runs in its steps: swapin.swapin_start"
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


def address(ctx: Ctx, proc: str, addr: str) -> tuple[Pte | None, bool]:
    """The PTE for addr, creating an anon mapping on first use; (None, True) if unmapped."""
    pte = ctx.w.pte(proc, addr)
    if pte is not None:
        return pte, False
    where = split_addr(addr)
    if where is not None and ctx.w.pmd(proc, where[0]).kind in (
        "none",
        "invalid",
        "invalid_migration",
    ):
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
    oracle.cpu_read(ctx, proc, addr, value)
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


def through_huge_pmd(ctx: Ctx, proc: str, addr: str, pte: Pte, write: bool) -> bool:
    """A load or store the MMU serves through a present huge PMD, without a fault: it takes
    no lock, so a splitter holding the PMD lock (before pmdp_invalidate) does not hold it
    off, and the MMU sets the PMD's dirty and young bits under it."""
    p = ctx.w.proc(proc)
    if p is None or p.mmap_writer or needs_fault(pte, write):
        return False
    return thp.huge_at(ctx, proc, addr)


def _access(ctx: Ctx, write: bool) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    if ctx.w.proc(proc) is None:
        return Blocked(f"waits for process {proc} to exist")
    if ctx.cpu:
        cached = tlb.cached_access(ctx, proc, addr, write)
        if cached is not None:
            return cached
    pte, gone = address(ctx, proc, addr)
    if pte is None and not gone:
        reason = wait_reason(ctx, proc, None)
        return Blocked(reason or f"waits: the PMD over {addr} is being changed")
    if pte is None:
        ctx.next_op()
        return ctx.effect("SIGSEGV", f"{proc} touches {addr}, which is no longer mapped: SIGSEGV")
    if write and needs_fault(pte, write) and tlb.readonly(ctx, proc, addr):
        ctx.next_op()
        return ctx.effect(
            "SIGSEGV", f"{proc} stores to {addr}, which mprotect made read-only: SIGSEGV"
        )
    in_steps = pte.swap >= 0 and not pte.present
    reason = wait_reason(ctx, proc, pte, lookup=not in_steps)
    if reason and not through_huge_pmd(ctx, proc, addr, pte, write):
        return Blocked(reason)
    if needs_fault(pte, write):
        pinned = swapin.swapin_wait(ctx, pte)
        if pinned:
            return Blocked(pinned)
        eof = past_eof(ctx, proc, addr, pte)
        if eof:
            return eof
        tries = ctx.regs(Faulting).tries
        if tries >= MAX_FAULT_RETRIES:
            raise RuntimeError(f"{ctx.name}: fault retry bound exceeded at {addr}")
        if in_steps:
            return swapin.swapin_start(ctx, pte, tries)
        note = handle_mm_fault(ctx, proc, addr, write)
        ctx.goto(store_access if write else load_access, tries=tries + 1)
        return ctx.effect("handle_mm_fault", note)
    pte = ctx.w.pte(proc, addr)
    assert pte is not None
    note = store(ctx, proc, addr, pte, ctx.p("value")) if write else load(ctx, proc, addr, pte)
    if ctx.cpu:
        tlb.fill(ctx, proc, addr)
    ctx.next_op()
    return ctx.effect("store" if write else "load", note)


@ACCESS.step
def store_access(ctx: Ctx) -> Effect | Blocked:
    """A CPU store: fault (and retry) until the PTE allows it, then store."""
    return _access(ctx, write=True)


@ACCESS.step
def load_access(ctx: Ctx) -> Effect | Blocked:
    """A CPU load: fault (and retry) until the PTE maps a page, then load."""
    return _access(ctx, write=False)


# A CPU fault takes mmap_lock (or the VMA lock) itself, in do_user_addr_fault.
swapin.mount(ACCESS, swapin.Caller(write=_writing, resume=_resume, takes_mmap_lock=True))


@op(
    "write",
    (ADDR, Param("value", "value", required=True, positional=True), PROC),
    ("handle_mm_fault", "filemap_fault", *swapin.SWAPIN_STEPS, "store", "SIGSEGV"),
    refs_held=swapin.SWAPIN_HELD,
)
def write_op(ctx: Ctx) -> Effect | Blocked:
    """CPU store: faults the page in (zero-fill, file + page_mkwrite, swap-in, COW) as needed."""
    return ACCESS.resume(ctx, store_access)


@op(
    "read",
    (ADDR, PROC, Param("expect", "value")),
    ("handle_mm_fault", "filemap_fault", *swapin.SWAPIN_STEPS, "load", "SIGSEGV"),
    refs_held=swapin.SWAPIN_HELD,
)
def read_op(ctx: Ctx) -> Effect | Blocked:
    """CPU load, checked by the lost-write oracle (and against `expect` if given)."""
    return ACCESS.resume(ctx, load_access)
