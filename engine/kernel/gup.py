"""get_user_pages: the lockless fast path, the slow path under mmap_lock, vmsplice.

gup_fast follows gup_fast_pte_range: read the PTE without locks, take the
reference with an inc-not-zero (+1, or +GUP_PIN_COUNTING_BIAS for a pin), then
re-read the PTE (and, for pins, mm->write_protect_seq) and back off if anything
changed. Anything the fast path cannot handle falls back, as get_user_pages_fast
does, to the slow path: follow_page_pte under mmap_lock and the PTE lock, with
handle_mm_fault in between when there is no suitable page yet (faultin_page). A swap
PTE is faulted in by do_swap_page's steps (swapin.py), the ones a CPU access takes,
under the slow path's mmap_lock; follow_page_pte is retried once the fault returned.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import oracle, refs, swapin, tlb
from engine.kernel.fault import MAX_FAULT_RETRIES, address, handle_mm_fault, past_eof, wait_reason
from engine.kernel.machine import (
    ADDR,
    PROC,
    Blocked,
    Ctx,
    Effect,
    Machine,
    Param,
    StepFn,
    holding,
    op,
)
from engine.state import (
    ANON_EXCLUSIVE,
    DIRTY,
    NO_PAGE,
    REFERENCED,
    ZERO_PAGE,
    Expected,
    Pmd,
    Pte,
    page_name,
    split_addr,
)

MODE = Param("mode", "choice", choices=("get", "pin"), positional=True)
GUP_PARAMS = (
    ADDR,
    MODE,
    Param("write", "bool"),
    Param("longterm", "bool"),
    PROC,
)
FAST_STEPS = (
    "raw_read_seqcount",
    "pmdp_get_lockless",
    "ptep_get_lockless",
    "compound_head",
    "try_grab_folio",
    "ptep_get",
    "gup_huge_pmd",
    "gup_put_folio",
)
SLOW_STEPS = (
    "check_vma_flags",
    "follow_page_pte",
    "follow_trans_huge_pmd",
    "handle_mm_fault",
    "filemap_fault",
    *swapin.SWAPIN_STEPS,
)


class Regs(NamedTuple):
    """What a GUP (fast, slow, or vmsplice's) keeps between its steps."""

    pipe: bool = False  # vmsplice: the reference goes to a pipe
    fallback: bool = False  # the slow path runs as GUP-fast's fallback
    page: int = NO_PAGE  # the page GUP-fast read in the PTE
    pte: Pte | None = None  # that PTE, for the recheck
    seq: int = 0  # write_protect_seq when the PTE was read
    bound: int = 0  # the page's generation then: the identity GUP-fast bound
    gen: int = -1  # the grabbed folio's generation
    tries: int = 0  # faults taken by the slow path
    unshare: bool = False  # the fault is an unshare fault (FAULT_FLAG_UNSHARE)
    forced: bool = False  # the fault is a write fault forced by the COW break
    # Large folios: the PMD GUP-fast read over a subpage address (gup_pmd_range's
    # pmdp_get_lockless), whether it maps the folio huge (gup_huge_pmd), and the folio the
    # grab targets (compound_head / page_folio, read before the reference is taken).
    pmd: Pmd | None = None
    huge: bool = False
    folio: int = NO_PAGE
    # do_swap_page's registers while the slow path faults a swap PTE in (swapin.SwapinRegs;
    # `page` is then the swap-in's folio).
    entry: int = -1
    pinned: bool = False
    device: bool = False
    cached: bool = False


GUP = Machine(Regs)


def regs(ctx: Ctx) -> Regs:
    return ctx.regs(Regs)


def mode(ctx: Ctx) -> str:
    return ctx.p("mode") or "get"


def hold(ctx: Ctx, index: int, key: str, gen: int | None = None) -> None:
    """The GUP succeeded: the actor (driver/device) now holds the page for the address.

    gen is the page identity GUP bound: for GUP-fast the one it read in the PTE
    (ptep_get_lockless), which a free and reallocation before try_grab_folio
    makes another owner's page.
    """
    if gen is None:
        gen = 0 if index == ZERO_PAGE else ctx.w.page(index).gen
    held_mode = "pipe" if regs(ctx).pipe else mode(ctx)
    ctx.w, epoch = oracle.gup_begin(ctx.w, key)
    if held_mode == "pipe":
        exp = ctx.w.expected(key)
        snapshot = exp.allowed if exp else ("0",)
        pipe_key = f"{ctx.proc}:pipe({ctx.name})"
        ctx.w = ctx.w.set_expected(pipe_key, Expected(allowed=snapshot, latest=snapshot[0]))
    ctx.set_me(
        ctx.me.evolve(
            held=((index, gen),),
            held_mode=held_mode,
            held_key=key,
            held_epoch=epoch,
            dma="",
        )
    )


def mark_has_pinned(ctx: Ctx) -> None:
    """A pin marks the mm before it looks at any page: mm->has_pinned (5.9-5.10, set at the
    top of internal_get_user_pages_fast and __get_user_pages_locked), later MMF_HAS_PINNED
    through mm_set_has_pinned_flag at the same places. So fork can see the mark while a
    GUP-fast pin is still between its PTE read and its grab."""
    if mode(ctx) != "pin":
        return
    proc = ctx.w.proc(ctx.proc)
    if proc is not None and not proc.has_pinned:
        ctx.w = ctx.w.set_proc(proc.evolve(has_pinned=True))


def grab(ctx: Ctx, index: int) -> None:
    """try_grab_folio after a successful inc-not-zero: +1, or +GUP_PIN_COUNTING_BIAS for a pin.

    The grab itself marks nothing: PG_referenced comes from gup_fast_pte_range's
    folio_set_referenced (every GUP-fast success, pins included) and from FOLL_TOUCH's
    mark_page_accessed in follow_page_pte (see touch).
    """
    if index == ZERO_PAGE:
        return
    if mode(ctx) == "pin":
        refs.pin(ctx, index)
    else:
        refs.get(ctx, index)


def touch(ctx: Ctx) -> bool:
    """Whether the slow path runs with FOLL_TOUCH.

    get_user_pages adds it; pin_user_pages does not. The fallback of get_user_pages_fast /
    pin_user_pages_fast adds it (get_user_pages_unlocked), except that a FOLL_LONGTERM
    fallback went through __gup_longterm_locked without it until gup_longterm_touch.
    """
    if not regs(ctx).fallback:
        return mode(ctx) == "get"
    return not ctx.flagp("longterm") or ctx.cfg.on("gup_longterm_touch")


def file_write_refused(ctx: Ctx, pte: Pte) -> bool:
    """writable_file_mapping_allowed / gup_fast_folio_allowed (6.5): a FOLL_LONGTERM write pin
    of a MAP_SHARED file mapping that needs dirty tracking (ext4 here) is refused."""
    return (
        ctx.cfg.on("gup_longterm_file_write_refused")
        and mode(ctx) == "pin"
        and ctx.flagp("longterm")
        and ctx.flagp("write")
        and bool(pte.file)
    )


def cow_break(ctx: Ctx, pte: Pte) -> bool:
    """17839856fd58 (5.8): GUP on a private anon page breaks COW, as if FOLL_WRITE."""
    return ctx.cfg.on("gup_cow_break") and not ctx.cfg.on("anon_exclusive") and not pte.file


def must_unshare(ctx: Ctx, pte: Pte) -> bool:
    """gup_must_unshare (5.19): a read-only pin of an anon page needs it exclusive first.

    A write pin (FOLL_WRITE) never unshares: it write-faults, and FAULT_FLAG_UNSHARE and
    FAULT_FLAG_WRITE are exclusive (faultin_page), so its COW copy is mapped writable."""
    if not ctx.cfg.on("anon_exclusive") or mode(ctx) != "pin" or pte.file:
        return False
    if ctx.flagp("write"):
        return False
    if pte.page < 0:
        return pte.page == ZERO_PAGE and not ctx.flagp("write")
    return not ctx.w.page(pte.page).has(ANON_EXCLUSIVE)


def fallback(ctx: Ctx, why: str, function: str) -> Effect:
    tlb.irqs(ctx, disabled=False)
    walk_done(ctx)
    if ctx.flagp("fast_only"):
        ctx.next_op()
        return ctx.effect(function, f"{why}; get_user_pages_fast_only gives up, holding nothing")
    ctx.goto(slow_follow, fallback=True)
    return ctx.effect(function, f"{why}; falls back to the slow path")


@GUP.step
def fast_start(ctx: Ctx) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    p = ctx.w.proc(proc)
    if p is None:
        return Blocked(f"waits for process {proc} to exist")
    mark_has_pinned(ctx)
    pte = ctx.w.pte(proc, addr)
    seq = p.seq
    if mode(ctx) == "pin" and ctx.cfg.on("gup_fast_fork_seqcount") and seq % 2:
        return fallback(
            ctx, "raw_read_seqcount: fork in progress (write_protect_seq odd)", "raw_read_seqcount"
        )
    where = split_addr(addr)
    pmd = ctx.w.pmd(proc, where[0]) if where else None
    if pmd is not None and pmd.kind == "invalid_migration":
        # Before 3a5a8d343e1c: an invalidated migration entry is pmd_present() on arm64, and
        # gup_huge_pmd takes the swap entry's bits for a page frame.
        ctx.violate(
            "kernel_bug",
            f"{ctx.name}: GUP-fast reads the invalidated PMD migration entry over {addr} as a "
            "present huge PMD and grabs the 'page' its swap-entry bits name (BadThings)",
        )
        ctx.next_op()
        return ctx.effect(
            "pmdp_get_lockless", f"{ctx.name} takes the migration entry over {addr} for a THP"
        )
    if pmd is not None and pmd.kind in ("none", "invalid"):
        return fallback(
            ctx, f"pmdp_get_lockless: the PMD over {addr} is {pmd.kind}", "pmdp_get_lockless"
        )
    if where is not None and pmd is not None and pmd.kind == "table":
        # gup_pmd_range read the PMD: a PTE table, which gup_pte_range then reads without a
        # lock in a load of its own; nothing keeps the table from being detached and freed
        # in between but the interrupts GUP-fast disabled (2ba99c5e0881).
        walk(ctx, where[0], pmd.table)
        tlb.irqs(ctx, disabled=True)
        ctx.goto(fast_pte, pmd=pmd, seq=seq)
        return ctx.effect(
            "pmdp_get_lockless",
            f"{ctx.name} reads the PMD over {addr}: PTE table {pmd.table} (interrupts disabled)",
        )
    return read_pte(ctx, pte, pmd, seq)


def walk(ctx: Ctx, region: str, table: int) -> None:
    """GUP-fast is on this PTE table from its PMD read to the end of its walk."""
    rest = tuple(w for w in ctx.w.walks if w[0] != ctx.name)
    ctx.w = ctx.w.evolve(walks=tuple(sorted((*rest, (ctx.name, ctx.proc, region, table)))))


def walk_done(ctx: Ctx) -> None:
    if any(w[0] == ctx.name for w in ctx.w.walks):
        ctx.w = ctx.w.evolve(walks=tuple(w for w in ctx.w.walks if w[0] != ctx.name))


def table_freed(ctx: Ctx, pmd: Pmd | None) -> bool:
    """Whether the PTE table this walk read from its PMD has been freed since."""
    where = split_addr(ctx.p("addr"))
    if pmd is None or pmd.kind != "table" or where is None:
        return False
    return (ctx.proc, where[0], pmd.table) in ctx.w.freed_tables


@GUP.step
def fast_pte(ctx: Ctx) -> Effect:
    """gup_pte_range: ptep_get_lockless through the table the PMD read found."""
    r = regs(ctx)
    addr = ctx.p("addr")
    if table_freed(ctx, r.pmd):
        ctx.violate(
            "use_after_free",
            f"{ctx.name}: GUP-fast reads the PTE at {addr} in a page table that was freed "
            "(zap_deposited_table) while it walked it",
        )
        return fallback(ctx, "ptep_get_lockless reads freed memory", "ptep_get_lockless")
    return read_pte(ctx, ctx.w.raw_pte(ctx.proc, addr), r.pmd, r.seq)


def read_pte(ctx: Ctx, pte: Pte | None, pmd: Pmd | None, seq: int) -> Effect:
    """ptep_get_lockless (or gup_huge_pmd): the entry, and the grab it leads to."""
    addr, write = ctx.p("addr"), ctx.flagp("write")
    huge = pmd is not None and pmd.kind == "huge"
    read = "gup_huge_pmd" if huge else "ptep_get_lockless"
    if pte is None or not pte.present or pte.page == ZERO_PAGE:
        return fallback(ctx, f"{read}: no present page at {addr}", read)
    if (write or cow_break(ctx, pte)) and not pte.write:
        return fallback(ctx, f"{read}: the entry at {addr} is not writable", read)
    # gup_huge_pmd takes the folio from the PMD; gup_pte_range computes it in try_grab_folio.
    folio = ctx.w.folio(pte.page) if huge else NO_PAGE
    bound = ctx.w.page(pte.page).gen
    tlb.irqs(ctx, disabled=True)
    ctx.goto(
        fast_grab, page=pte.page, pte=pte, seq=seq, bound=bound, pmd=pmd, huge=huge, folio=folio
    )
    if huge:
        return ctx.effect(
            "pmdp_get_lockless",
            f"{ctx.name} reads the huge PMD over {addr}: {page_name(pte.page)} of folio "
            f"{page_name(folio)}",
        )
    return ctx.effect(
        "ptep_get_lockless",
        f"{ctx.name} reads the PTE at {addr}: {page_name(pte.page)}",
        f"ptep_get_lockless()  /* present: {page_name(pte.page)} */",
    )


@GUP.step
def fast_grab(ctx: Ctx) -> Effect:
    r = regs(ctx)
    index = r.page
    tail = ctx.w.folio(index) != index
    if r.folio == NO_PAGE and tail and not ctx.cfg.on("gup_folio_recheck"):
        # Before c24d37322548, try_get_compound_head read compound_head(page) and then took
        # the reference on that head, with nothing to notice a split (and a free and reuse
        # of the head) in between.
        head = ctx.w.folio(index)
        ctx.goto(fast_grab, folio=head)
        return ctx.effect(
            "compound_head", f"{ctx.name}: {page_name(index)} is a tail of {page_name(head)}"
        )
    folio = ctx.w.folio(index) if r.folio == NO_PAGE else r.folio
    if ctx.w.page(folio).ref == 0:
        return fallback(
            ctx, f"folio_try_get fails: {page_name(folio)} is frozen or free", "try_grab_folio"
        )
    # The reference lands on the folio computed, whatever page_folio(page) is by now.
    grab(ctx, folio)
    ctx.goto(fast_recheck, gen=ctx.w.page(folio).gen, folio=folio)
    what = "pins" if mode(ctx) == "pin" else "takes a reference on"
    on = page_name(index) if folio == index else f"folio {page_name(folio)} for {page_name(index)}"
    return ctx.effect("try_grab_folio", f"{ctx.name} {what} {on} ({refs.refs_note(ctx, folio)})")


@GUP.step
def fast_recheck(ctx: Ctx) -> Effect:
    proc, addr = ctx.proc, ctx.p("addr")
    r = regs(ctx)
    index, snapshot = r.page, r.pte
    p = ctx.w.proc(proc)
    assert p is not None
    changed = ""
    where = split_addr(addr)
    pmd_now = ctx.w.pmd(proc, where[0]) if where else None
    if r.huge and pmd_now != r.pmd:
        # gup_huge_pmd has always re-read the PMD after the grab.
        changed = f"gup_huge_pmd: the PMD over {addr} changed"
    elif r.folio != ctx.w.folio(index) and ctx.cfg.on("gup_folio_recheck"):
        changed = f"{page_name(index)} is no longer in folio {page_name(r.folio)} (split)"
    elif (
        not r.huge and r.pmd is not None and pmd_now != r.pmd and ctx.cfg.on("gup_fast_pmd_recheck")
    ):
        changed = f"the PMD over {addr} changed (collapse or split)"
    elif not r.huge and ctx.cfg.on("gup_fast_recheck") and table_freed(ctx, r.pmd):
        ctx.violate(
            "use_after_free",
            f"{ctx.name}: GUP-fast re-reads the PTE at {addr} in a page table that was freed "
            "(zap_deposited_table) while it walked it",
        )
        changed = "ptep_get reads freed memory"
    elif not r.huge and ctx.cfg.on("gup_fast_recheck") and ctx.w.raw_pte(proc, addr) != snapshot:
        # ptep_get(ptep): through the PTE table GUP-fast walked, attached or not.
        changed = f"the PTE at {addr} changed"
    elif mode(ctx) == "pin" and ctx.cfg.on("gup_fast_fork_seqcount") and p.seq != r.seq:
        changed = "read_seqcount_retry: fork ran meanwhile"
    elif snapshot is not None and must_unshare(ctx, snapshot):
        changed = f"{page_name(index)} is not exclusive (must unshare)"
    elif snapshot is not None and file_write_refused(ctx, snapshot):
        changed = "gup_fast_folio_allowed: a long-term write pin of a file folio"
    if changed:
        # gup_put_folio on the folio the grab took, whatever page_folio(page) is now.
        if mode(ctx) == "pin":
            refs.unpin(ctx, r.folio, r.gen)
        else:
            refs.put(ctx, r.folio, gen=r.gen, what="gup_put_folio")
        return fallback(ctx, f"{changed}: gup_put_folio drops it", "gup_put_folio")
    if index != ZERO_PAGE:
        # gup_fast_pte_range: folio_set_referenced on every page it returns, pins included.
        refs.update(ctx, index, ctx.w.page(index).set(REFERENCED))
    hold(ctx, index, oracle.key_for(ctx.w, proc, addr), r.bound)
    tlb.irqs(ctx, disabled=False)
    walk_done(ctx)
    ctx.next_op()
    if r.huge:
        return ctx.effect(
            "gup_huge_pmd", f"{ctx.name} re-reads the PMD: unchanged, keeps {page_name(index)}"
        )
    return ctx.effect(
        "ptep_get",
        f"{ctx.name} re-reads the PTE: unchanged, keeps {page_name(index)} (folio_set_referenced)",
    )


def leave_mmap_lock(ctx: Ctx) -> None:
    """mmap_read_unlock: the slow path is done with the address space."""
    p = ctx.w.proc(ctx.proc)
    assert p is not None
    readers = tuple(r for r in p.mmap_readers if r != ctx.name)
    if readers != p.mmap_readers:
        ctx.w = ctx.w.set_proc(p.evolve(mmap_readers=readers))


@GUP.step
def slow_follow(ctx: Ctx) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    p = ctx.w.proc(proc)
    if p is None:
        return Blocked(f"waits for process {proc} to exist")
    if p.mmap_writer and p.mmap_writer != ctx.name:
        return Blocked(f"waits for mmap_lock of {proc}, held for write by {p.mmap_writer}")
    pte, _gone = address(ctx, proc, addr)
    reason = wait_reason(ctx, proc, None)
    if reason:
        return Blocked(reason)
    mark_has_pinned(ctx)
    if pte is None:
        ctx.next_op()
        return ctx.effect("follow_page_pte", f"-EFAULT: {addr} is not mapped in {proc}")
    if file_write_refused(ctx, pte):
        leave_mmap_lock(ctx)
        ctx.next_op()
        return ctx.effect(
            "check_vma_flags",
            f"writable_file_mapping_allowed: no FOLL_LONGTERM write pin of the MAP_SHARED "
            f"mapping of {pte.file}: -EFAULT, holding nothing",
        )
    write = ctx.flagp("write")
    unshare = must_unshare(ctx, pte)
    forced = cow_break(ctx, pte) and pte.present and not pte.write
    ok = (
        pte.present
        and not unshare
        and not forced
        and (not write or (pte.write and pte.page != ZERO_PAGE))
    )
    if not ok:
        if p.mmap_readers.count(ctx.name) == 0:
            ctx.w = ctx.w.set_proc(p.evolve(mmap_readers=(*p.mmap_readers, ctx.name)))
        ctx.goto(slow_fault, unshare=unshare, forced=forced)
        return ctx.effect("follow_page_pte", f"no usable page at {addr} yet: fault it in")
    index = pte.page
    grab(ctx, index)
    note = f"{ctx.name} takes {page_name(index)} under the PTE lock ({refs.refs_note(ctx, index)})"
    if index != ZERO_PAGE and touch(ctx):
        # FOLL_TOUCH: set_page_dirty for a write through a clean PTE, then mark_page_accessed.
        if write and not pte.dirty and not ctx.w.page(index).has(DIRTY):
            refs.mark_dirty(ctx, index)
            note += "; FOLL_TOUCH: set_page_dirty"
        refs.update(ctx, index, ctx.w.page(index).set(REFERENCED))
    leave_mmap_lock(ctx)
    hold(ctx, index, oracle.key_for(ctx.w, proc, addr))
    ctx.next_op()
    where = split_addr(addr)
    if where is not None and ctx.w.pmd(proc, where[0]).kind == "huge":
        # follow_pmd_mask: a huge PMD is followed by follow_trans_huge_pmd, under the PMD lock.
        return ctx.effect("follow_trans_huge_pmd", note.replace("PTE lock", "PMD lock"))
    return ctx.effect("follow_page_pte", note)


@GUP.step
def slow_fault(ctx: Ctx) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    pte = ctx.w.pte(proc, addr)
    # do_swap_page's own steps look a swap-cache folio up (and wait for it there).
    in_steps = pte is not None and pte.swap >= 0 and not pte.present
    reason = wait_reason(ctx, proc, pte, lookup=not in_steps)
    if reason:
        return Blocked(reason)
    tries = regs(ctx).tries
    if tries >= MAX_FAULT_RETRIES:
        raise RuntimeError(f"{ctx.name}: GUP fault retry bound exceeded at {addr}")
    if pte is None:
        ctx.goto(slow_follow, tries=tries + 1)
        return ctx.effect("handle_mm_fault", f"{addr} vanished; retry")
    pinned = swapin.swapin_wait(ctx, pte)
    if pinned:
        return Blocked(pinned)
    eof = past_eof(ctx, proc, addr, pte)
    if isinstance(eof, Blocked):
        return eof
    if eof:
        leave_mmap_lock(ctx)  # faultin_page: VM_FAULT_SIGBUS is -EFAULT for GUP, holding nothing
        return eof
    if in_steps:
        return swapin.swapin_start(ctx, pte, tries)
    write = fault_write(ctx)
    note = handle_mm_fault(ctx, proc, addr, write, unshare=regs(ctx).unshare)
    ctx.goto(slow_follow, tries=tries + 1)
    return ctx.effect("handle_mm_fault", note)


def fault_write(ctx: Ctx) -> bool:
    """faultin_page's FAULT_FLAG_WRITE: FOLL_WRITE, or the COW break's forced write fault."""
    return ctx.flagp("write") or regs(ctx).forced


def resume_follow(ctx: Ctx) -> StepFn:
    """Once faultin_page returned, __get_user_pages retries follow_page_pte."""
    return slow_follow


# GUP's fault runs under the mmap_lock the slow path took (slow_follow), not its own.
swapin.mount(GUP, swapin.Caller(write=fault_write, resume=resume_follow, takes_mmap_lock=False))

# Between try_grab_folio and the recheck, GUP-fast's reference is speculative: the recheck
# may still drop it. (A pin shows under "pins" whatever the step.)
SPECULATIVE = holding("speculative", fast_recheck)
HELD = {**SPECULATIVE, **swapin.SWAPIN_HELD}


def run_gup(ctx: Ctx, fast: bool) -> Effect | Blocked:
    return GUP.resume(ctx, fast_start if fast else slow_follow)


@op(
    "gup_fast",
    (*GUP_PARAMS, Param("fast_only", "bool")),
    FAST_STEPS + SLOW_STEPS,
    holds="mode",
    refs_held=HELD,
)
def gup_fast_op(ctx: Ctx) -> Effect | Blocked:
    """Lockless GUP (get_user_pages_fast / pin_user_pages_fast), falling back to the slow path."""
    return run_gup(ctx, fast=True)


@op("gup", GUP_PARAMS, SLOW_STEPS, holds="mode", refs_held=swapin.SWAPIN_HELD)
def gup_op(ctx: Ctx) -> Effect | Blocked:
    """Slow GUP under mmap_lock: get_user_pages (FOLL_TOUCH) or pin_user_pages."""
    return run_gup(ctx, fast=False)


@op("vmsplice", (ADDR, PROC), FAST_STEPS + SLOW_STEPS, holds="pipe", refs_held=HELD)
def vmsplice_op(ctx: Ctx) -> Effect | Blocked:
    """vmsplice(2): a read-only GUP reference handed to a pipe (CVE-2020-29374)."""
    return GUP.resume(ctx, vmsplice_start)


def vmsplice_start(ctx: Ctx) -> Effect | Blocked:
    """The GUP of vmsplice is GUP-fast whose reference goes to a pipe."""
    ctx.goto(fast_start, pipe=True)
    return ctx.then(fast_start)
