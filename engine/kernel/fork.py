"""fork(): dup_mmap under mmap_lock (write), copy_present_pte per mapping.

The "may this page be DMA-pinned?" test (page_needs_cow_for_dma, later
folio_try_dup_anon_rmap) and the write-protect of the parent's PTE are separate
atomic steps, as they are a few instructions apart in copy_present_pte: lockless
GUP, which takes neither mmap_lock nor the PTE lock, can pin in between (R5c).
write_protect_seq is odd for the whole copy so that GUP-fast pins can notice.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import refs, thp
from engine.kernel.fault import new_anon_page
from engine.kernel.machine import PROC, Blocked, Ctx, Effect, Machine, Param, op
from engine.state import ANON_EXCLUSIVE, HPAGE_NR, ZERO_PAGE, Proc, Pte, page_name, subpage_addr


class Regs(NamedTuple):
    """dup_mmap's walk over the parent's mappings."""

    addrs: tuple[str, ...] = ()  # the parent's addresses, taken when the fork starts
    i: int = 0  # the next one to copy
    addr: str = ""  # the one whose parent PTE is still to be write-protected


FORK = Machine(Regs)


def start(ctx: Ctx) -> Effect | Blocked:
    parent, child = ctx.proc, ctx.p("child")
    p = ctx.w.proc(parent)
    if p is None:
        return Blocked(f"waits for process {parent} to exist")
    if p.mmap_writer or p.mmap_readers:
        holder = p.mmap_writer or ", ".join(p.mmap_readers)
        return Blocked(f"waits for mmap_lock of {parent}, held by {holder}")
    if p.ptl:
        return Blocked(f"waits for the PTE lock of {parent}, held by {p.ptl}")
    ctx.w = ctx.w.set_proc(p.evolve(mmap_writer=ctx.name, seq=p.seq + 1, ptl=ctx.name))
    # The child's mm is write-locked too until dup_mmap is done (mmap_write_lock_nested),
    # and the child runs only once fork returns: nothing of it can fault in the meantime.
    ctx.w = ctx.w.set_proc(Proc(name=child, mmap_writer=ctx.name))
    addrs = tuple(a for pr, a, _ in ctx.w.ptes if pr == parent)
    # copy_pmd_range: a huge PMD is copied whole (copy_huge_pmd), its region named bare.
    huge = tuple(r for pr, r, e in ctx.w.pmds if pr == parent and e.kind == "huge")
    ctx.goto(copy_pte, addrs=tuple(sorted(addrs + huge)), i=0)
    return ctx.effect(
        "dup_mmap",
        f"{parent} forks {child}: mmap_lock taken for write, write_protect_seq becomes odd",
    )


def inherit(ctx: Ctx, addr: str) -> None:
    """The child may see what the parent could see at the fork (device writes included)."""
    exp = ctx.w.expected(f"{ctx.proc}:{addr}")
    if exp is not None:
        ctx.w = ctx.w.set_expected(f"{ctx.p('child')}:{addr}", exp.evolve(inflight=0, epoch=0))


@FORK.step
def copy_pte(ctx: Ctx) -> Effect | Blocked:
    parent, child = ctx.proc, ctx.p("child")
    addrs, i = ctx.regs(Regs).addrs, ctx.regs(Regs).i
    if i >= len(addrs):
        return ctx.then(end)
    addr = addrs[i]
    if "#" not in addr and ctx.w.pmd(parent, addr).kind == "huge":
        return copy_pmd(ctx, addr, i)
    pte = ctx.w.raw_pte(parent, addr)
    if pte is None:
        # A PTE of a table the PMD no longer points to (a huge PMD copied whole).
        ctx.goto(copy_pte, i=i + 1)
        return ctx.then(copy_pte)
    inherit(ctx, addr)
    if thp.huge_at(ctx, child, addr):
        # A child forked again under the same name: its old huge mapping becomes PTEs, which
        # the copy overwrites as it does any old PTE of that child.
        thp.split_pmd(ctx, child, addr.partition("#")[0])
    if pte.swap >= 0:
        return copy_swap_pte(ctx, addr, pte, i)
    if not pte.present or pte.page == ZERO_PAGE or pte.file:
        shared = pte.present and pte.page != ZERO_PAGE
        if shared:
            p = ctx.w.page(pte.page)
            refs.update(ctx, pte.page, p.evolve(ref=p.ref + 1, mapcount=p.mapcount + 1))
        # copy_present_pte: pte_mkclean for a VM_SHARED mapping, pte_mkold for every one.
        child_pte = pte.evolve(dirty=False, young=False) if pte.file else pte.evolve(young=False)
        ctx.w = ctx.w.set_pte(child, addr, child_pte if pte.present or pte.file else Pte())
        ctx.goto(copy_pte, i=i + 1)
        what = "shares the MAP_SHARED page" if shared else "gets the same (empty) mapping"
        return ctx.effect("copy_pte_range", f"{child} {what} at {addr}")
    index = pte.page
    page = ctx.w.page(index)
    proc = ctx.w.proc(parent)
    assert proc is not None
    pinned = ctx.w.page(ctx.w.folio(index)).maybe_dma_pinned()  # a folio's pins
    exclusive = ctx.cfg.on("anon_exclusive") and page.has(ANON_EXCLUSIVE)
    copy = (ctx.cfg.on("fork_copy_pinned") and proc.has_pinned and pinned) or (exclusive and pinned)
    if copy:
        new = new_anon_page(ctx, page.data)
        ctx.w = ctx.w.set_pte(
            child, addr, Pte(page=new, present=True, write=pte.write, dirty=pte.dirty)
        )
        ctx.goto(copy_pte, i=i + 1)
        return ctx.effect(
            "copy_present_pte",
            f"{page_name(index)} may be DMA-pinned: {child} gets its own copy {page_name(new)}; "
            f"{parent} keeps {page_name(index)} writable",
        )
    refs.update(ctx, index, page.clear(ANON_EXCLUSIVE).evolve(mapcount=page.mapcount + 1))
    refs.get(ctx, index)  # on the folio
    # copy_present_pte: the child's PTE is write-protected and made old (pte_mkold), so the
    # child's mapping alone does not keep the page from reclaim.
    ctx.w = ctx.w.set_pte(child, addr, pte.evolve(write=False, young=False))
    ctx.goto(wrprotect, addr=addr, i=i + 1)
    # Why a page with pins is shared anyway (review M2: the sentence said "does not look
    # pinned" beside pins 1): which of page_needs_cow_for_dma's tests let it through.
    if not pinned:
        why = "does not look pinned"
    elif ctx.cfg.on("fork_copy_pinned") and not proc.has_pinned:
        why = f"is pinned, but {parent}'s mm has no has_pinned mark yet"
    elif ctx.cfg.on("anon_exclusive"):
        why = "is pinned, but not PG_anon_exclusive"
    else:
        why = "is pinned, but this kernel's fork never checks for pins"
    return ctx.effect(
        "copy_present_pte",
        f"{page_name(index)} {why}: {child} shares it ({refs.refs_note(ctx, index)})",
    )


def copy_pmd(ctx: Ctx, region: str, i: int) -> Effect:
    """copy_huge_pmd, or its fallback: split, then copy the region's PTEs like any others."""
    parent, child = ctx.proc, ctx.p("child")
    for sub in range(HPAGE_NR):
        inherit(ctx, subpage_addr(region, sub))
    note = thp.copy_huge_pmd(ctx, parent, child, region)
    addrs = ctx.regs(Regs).addrs
    if note.startswith("__split_huge_pmd"):
        subs = tuple(subpage_addr(region, sub) for sub in range(HPAGE_NR))
        ctx.goto(copy_pte, addrs=addrs[: i + 1] + subs + addrs[i + 1 :], i=i + 1)
    else:
        ctx.goto(copy_pte, i=i + 1)
    return ctx.effect("copy_huge_pmd", note)


def copy_swap_pte(ctx: Ctx, addr: str, pte: Pte, i: int) -> Effect:
    """copy_nonpresent_pte of a swap entry: swap_duplicate (one more swap-map count), and
    from 5.19 "Mark the swap entry as shared": an exclusive swap PTE (pte_swp_exclusive,
    set by try_to_unmap_one for a PG_anon_exclusive page) loses the bit in the parent, and
    the child's copy is made from the cleared value."""
    parent, child = ctx.proc, ctx.p("child")
    slot = ctx.w.swap[pte.swap]
    ctx.w = ctx.w.set_slot(pte.swap, slot.evolve(entries=slot.entries + 1))
    note = f"swap_duplicate(S{pte.swap}): {child} shares the swap entry of {addr}"
    shared = pte
    if pte.exclusive_swap and ctx.cfg.on("fork_swap_pte_shared"):
        shared = pte.evolve(exclusive_swap=False)
        ctx.w = ctx.w.set_pte(parent, addr, shared)
        note += "; pte_swp_clear_exclusive in both PTEs: the entry is shared now"
    elif pte.exclusive_swap:
        note += "; (what if) both PTEs keep the exclusive bit"
    ctx.w = ctx.w.set_pte(child, addr, shared)
    ctx.goto(copy_pte, i=i + 1)
    return ctx.effect("copy_nonpresent_pte", note)


@FORK.step
def wrprotect(ctx: Ctx) -> Effect:
    parent, addr = ctx.proc, ctx.regs(Regs).addr
    pte = ctx.w.pte(parent, addr)
    assert pte is not None
    ctx.w = ctx.w.set_pte(parent, addr, pte.evolve(write=False))
    ctx.goto(copy_pte)
    return ctx.effect("ptep_set_wrprotect", f"{parent}'s PTE at {addr} becomes read-only (COW)")


def end(ctx: Ctx) -> Effect:
    p = ctx.w.proc(ctx.proc)
    child = ctx.w.proc(ctx.p("child"))
    assert p is not None and child is not None
    ctx.w = ctx.w.set_proc(p.evolve(mmap_writer="", seq=p.seq + 1, ptl=""))
    ctx.w = ctx.w.set_proc(child.evolve(mmap_writer=""))
    ctx.next_op()
    return ctx.effect(
        "raw_write_seqcount_end", "fork done: write_protect_seq even again, mmap_lock released"
    )


@op(
    "fork",
    (Param("child", "name", required=True, positional=True), PROC),
    (
        "dup_mmap",
        "copy_pte_range",
        "copy_huge_pmd",
        "copy_present_pte",
        "copy_nonpresent_pte",
        "ptep_set_wrprotect",
        "raw_write_seqcount_end",
    ),
)
def fork_op(ctx: Ctx) -> Effect | Blocked:
    """fork(): copy every mapping to `child`, write-protecting shared anon pages for COW."""
    return FORK.resume(ctx, start)
