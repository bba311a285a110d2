"""get_user_pages: the lockless fast path, the slow path under mmap_lock, vmsplice.

gup_fast follows gup_fast_pte_range: read the PTE without locks, take the
reference with an inc-not-zero (+1, or +GUP_PIN_COUNTING_BIAS for a pin), then
re-read the PTE (and, for pins, mm->write_protect_seq) and back off if anything
changed. Anything the fast path cannot handle falls back, as get_user_pages_fast
does, to the slow path: follow_page_pte under mmap_lock and the PTE lock, with
handle_mm_fault in between when there is no suitable page yet.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import oracle, refs
from engine.kernel.fault import (
    MAX_FAULT_RETRIES,
    address,
    handle_mm_fault,
    past_eof,
    swapin_wait,
    wait_reason,
)
from engine.kernel.machine import ADDR, PROC, Blocked, Ctx, Effect, Machine, Param, holding, op
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
    if ctx.flagp("fast_only"):
        ctx.next_op()
        return ctx.effect(function, f"{why}; get_user_pages_fast_only gives up, holding nothing")
    ctx.goto(slow_follow, fallback=True)
    return ctx.effect(function, f"{why}; falls back to the slow path")


@GUP.step
def fast_start(ctx: Ctx) -> Effect | Blocked:
    proc, addr, write = ctx.proc, ctx.p("addr"), ctx.flagp("write")
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
    if pmd is not None and pmd.kind in ("none", "invalid"):
        return fallback(
            ctx, f"pmdp_get_lockless: the PMD over {addr} is {pmd.kind}", "pmdp_get_lockless"
        )
    huge = pmd is not None and pmd.kind == "huge"
    read = "gup_huge_pmd" if huge else "ptep_get_lockless"
    if pte is None or not pte.present or pte.page == ZERO_PAGE:
        return fallback(ctx, f"{read}: no present page at {addr}", read)
    if (write or cow_break(ctx, pte)) and not pte.write:
        return fallback(ctx, f"{read}: the entry at {addr} is not writable", read)
    # gup_huge_pmd takes the folio from the PMD; gup_pte_range computes it in try_grab_folio.
    folio = ctx.w.folio(pte.page) if huge else NO_PAGE
    bound = ctx.w.page(pte.page).gen
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
    reason = wait_reason(ctx, proc, pte)
    if reason:
        return Blocked(reason)
    tries = regs(ctx).tries
    if tries >= MAX_FAULT_RETRIES:
        raise RuntimeError(f"{ctx.name}: GUP fault retry bound exceeded at {addr}")
    if pte is None:
        ctx.goto(slow_follow, tries=tries + 1)
        return ctx.effect("handle_mm_fault", f"{addr} vanished; retry")
    pinned = swapin_wait(ctx, pte)
    if pinned:
        return Blocked(pinned)
    eof = past_eof(ctx, proc, addr, pte)
    if isinstance(eof, Blocked):
        return eof
    if eof:
        leave_mmap_lock(ctx)  # faultin_page: VM_FAULT_SIGBUS is -EFAULT for GUP, holding nothing
        return eof
    write = ctx.flagp("write") or regs(ctx).forced
    note = handle_mm_fault(ctx, proc, addr, write, unshare=regs(ctx).unshare)
    ctx.goto(slow_follow, tries=tries + 1)
    return ctx.effect("handle_mm_fault", note)


# Between try_grab_folio and the recheck, GUP-fast's reference is speculative: the recheck
# may still drop it. (A pin shows under "pins" whatever the step.)
SPECULATIVE = holding("speculative", fast_recheck)


def run_gup(ctx: Ctx, fast: bool) -> Effect | Blocked:
    return GUP.resume(ctx, fast_start if fast else slow_follow)


@op(
    "gup_fast",
    (*GUP_PARAMS, Param("fast_only", "bool")),
    FAST_STEPS + SLOW_STEPS,
    holds="mode",
    refs_held=SPECULATIVE,
)
def gup_fast_op(ctx: Ctx) -> Effect | Blocked:
    """Lockless GUP (get_user_pages_fast / pin_user_pages_fast), falling back to the slow path."""
    return run_gup(ctx, fast=True)


@op("gup", GUP_PARAMS, SLOW_STEPS, holds="mode")
def gup_op(ctx: Ctx) -> Effect | Blocked:
    """Slow GUP under mmap_lock: get_user_pages (FOLL_TOUCH) or pin_user_pages."""
    return run_gup(ctx, fast=False)


@op("vmsplice", (ADDR, PROC), FAST_STEPS + SLOW_STEPS, holds="pipe", refs_held=SPECULATIVE)
def vmsplice_op(ctx: Ctx) -> Effect | Blocked:
    """vmsplice(2): a read-only GUP reference handed to a pipe (CVE-2020-29374)."""
    return GUP.resume(ctx, vmsplice_start)


def vmsplice_start(ctx: Ctx) -> Effect | Blocked:
    """The GUP of vmsplice is GUP-fast whose reference goes to a pipe."""
    ctx.goto(fast_start, pipe=True)
    return ctx.then(fast_start)
