"""CPUs' TLBs: accesses through cached translations, and the flushes that end them.

In a scenario whose actors run on CPUs (`cpu:` or `thread:` on an actor), each CPU
caches the translations its accesses walked, x86-style: an entry names the page, and
whether it allows writes and is already dirty. A store through a writable, dirty entry
goes straight to the page and leaves the PTE alone; a store through a clean or
read-only entry walks the page table (setting the PTE's dirty bit, or faulting), which
is why a deferred flush is safe for a clean PTE and not for a dirty one; a load through
any entry reads the page it names.

A PTE change that revokes a cached translation is flushed at once (ptep_clear_flush,
flush_tlb_page: World.set_pte) unless the path defers it: an mmu_gather
(tlb_gather_mmu ... tlb_finish_mmu in madvise and zap), reclaim's TTU_BATCH_FLUSH
(set_tlb_ubc_flush_pending ... try_to_unmap_flush[_dirty]) and mprotect's
change_protection (flush_tlb_range once the range is done). Between the PTE change and
the flush a CPU keeps using its entry.
"""

from __future__ import annotations

from engine.kernel import oracle, refs
from engine.kernel.machine import Blocked, Ctx, Effect
from engine.state import Pte, Tlb, page_name, revokes


def cached_access(ctx: Ctx, proc: str, addr: str, write: bool) -> Effect | None:
    """The access through the CPU's cached translation, if it has a usable one (else None:
    the access walks the page table, and a stale entry it could not use is dropped)."""
    entry = ctx.w.tlb_entry(ctx.cpu, proc, addr)
    if entry is None:
        return None
    if write and not (entry.write and entry.dirty):
        # The hardware walks the page table to set the dirty bit (or takes the fault that
        # a read-only entry gives): the entry is reloaded from the PTE as it now is.
        ctx.w = ctx.w.flush_tlb(proc, (addr,), cpu=ctx.cpu)
        return None
    pte = ctx.w.pte(proc, addr)
    stale = revokes(entry, pte)
    where = f"through {ctx.cpu}'s TLB entry for {page_name(entry.page)}"
    what = f"{'store to' if write else 'load from'} {addr} through a stale TLB entry"
    live = refs.live(ctx, entry.page, entry.gen, what)
    page = ctx.w.page(entry.page)
    if write:
        value = ctx.p("value")
        owner = ctx.w.proc(proc)
        if stale and owner is not None and addr in owner.revoked:
            ctx.violate(
                "stale_tlb",
                f"{proc} stores {value!r} at {addr} {where} after mprotect made it read-only "
                "and returned: the TLB entry was never flushed",
            )
        if live:
            refs.update(ctx, entry.page, page.evolve(data=value))
        ctx.w = oracle.write(ctx.w, oracle.key_for(ctx.w, proc, addr), value, proc)
        note = f"{proc} stores {value!r} at {addr} {where}; the PTE is not touched"
    else:
        value = page.data
        oracle.cpu_read(ctx, proc, addr, value, f" {where}")
        note = f"{proc} loads {value!r} from {addr} {where}"
    if stale:
        note += f" (stale: {describe(pte)})"
    ctx.next_op()
    return ctx.effect("store" if write else "load", note)


def describe(pte: Pte | None) -> str:
    if pte is None or pte.none:
        return "the PTE is now empty"
    if not pte.present:
        return "the PTE now holds a swap or migration entry"
    if not pte.write:
        return "the PTE is now read-only"
    if not pte.dirty:
        return "the PTE is now clean"
    return f"the PTE now maps {page_name(pte.page)}"


def fill(ctx: Ctx, proc: str, addr: str) -> None:
    """The access walked the page table: the CPU caches the translation it found."""
    pte = ctx.w.pte(proc, addr)
    if pte is None or not pte.present or pte.page < 0:
        return
    gen = ctx.w.page(pte.page).gen
    ctx.w = ctx.w.tlb_fill(Tlb(ctx.cpu, proc, addr, pte.page, gen, pte.write, pte.dirty))


def readonly(ctx: Ctx, proc: str, addr: str) -> bool:
    """The VMA lost VM_WRITE (mprotect PROT_READ): a write fault there is a SIGSEGV."""
    owner = ctx.w.proc(proc)
    return owner is not None and addr in owner.readonly


def pending(ctx: Ctx, proc: str, addr: str) -> bool:
    """Whether a flush deferred now has anything to do: some CPU caches addr."""
    return ctx.w.cached(proc, addr)


def batched_pending(ctx: Ctx, proc: str) -> bool:
    """Whether flush_tlb_batched_pending (3ea277194daa) finds a flush owed on this mm."""
    owner = ctx.w.proc(proc)
    return ctx.cfg.on("flush_tlb_batched_pending") and owner is not None and owner.tlb_batched


def flush_batched_pending(ctx: Ctx, proc: str) -> str:
    """flush_tlb_batched_pending (3ea277194daa), in one step: a path about to change this
    mm's PTEs under the PTE lock first flushes what reclaim cleared and has not flushed."""
    if not batched_pending(ctx, proc):
        return ""
    owner = ctx.w.proc(proc)
    assert owner is not None
    ctx.w = ctx.w.flush_tlb(proc).set_proc(owner.evolve(tlb_flushed=owner.tlb_batch))
    return "flush_tlb_batched_pending flushes what reclaim left batched; "


def flush_mm_batched(ctx: Ctx, proc: str) -> int:
    """flush_tlb_batched_pending's first half: read mm->tlb_flush_batched, flush_tlb_mm.
    Returns the count read, for the second half."""
    owner = ctx.w.proc(proc)
    assert owner is not None
    ctx.w = ctx.w.flush_tlb(proc)
    return owner.tlb_batch


def clear_batched(ctx: Ctx, proc: str, seen: int) -> str:
    """flush_tlb_batched_pending's second half. Before 5ee2fa2f0636 it cleared the flag,
    losing a batch reclaim deferred (under another PTE lock) since the flush; from 5.17 it
    records as flushed only the batches it saw (atomic_cmpxchg), so the new one stays owed."""
    owner = ctx.w.proc(proc)
    assert owner is not None
    if ctx.cfg.on("tlb_flush_batched_cmpxchg"):
        done = max(owner.tlb_flushed, seen)
        ctx.w = ctx.w.set_proc(owner.evolve(tlb_flushed=done))
        if done != owner.tlb_batch:
            return "reclaim deferred another flush meanwhile: it stays owed; "
        return "mm->tlb_flush_batched: nothing owed any more; "
    ctx.w = ctx.w.set_proc(owner.evolve(tlb_flushed=owner.tlb_batch))
    lost = owner.tlb_batch != seen
    return (
        "mm->tlb_flush_batched = false, though reclaim deferred a flush since: it is lost; "
        if lost
        else "mm->tlb_flush_batched = false; "
    )


def gather(ctx: Ctx, proc: str, counted: bool = False) -> None:
    """tlb_gather_mmu: from 99baac21e458 it counts itself in mm->tlb_flush_pending.
    change_protection always did (`counted`: the flag set_tlb_flush_pending set in 4.12
    became the count)."""
    owner = ctx.w.proc(proc)
    if owner is not None and (counted or ctx.cfg.on("tlb_flush_nested")):
        ctx.w = ctx.w.set_proc(owner.evolve(tlb_pending=owner.tlb_pending + 1))


def ungather(ctx: Ctx, proc: str, counted: bool = False) -> bool:
    """dec_tlb_flush_pending; whether another flusher was counted too (mm_tlb_flush_nested)."""
    owner = ctx.w.proc(proc)
    if owner is None or not (counted or ctx.cfg.on("tlb_flush_nested")):
        return False
    ctx.w = ctx.w.set_proc(owner.evolve(tlb_pending=max(0, owner.tlb_pending - 1)))
    return owner.tlb_pending > 1


def finish_ungathered(ctx: Ctx, proc: str, addr: str) -> str:
    """tlb_gather_mmu and tlb_finish_mmu around a walk that gathered nothing, in one step:
    the end of the step's sentence if the finish flushed for a nested gather, else ""."""
    gather(ctx, proc)
    finished = finish_mmu(ctx, proc, addr, gathered=False)
    return f"; tlb_finish_mmu {finished}" if finished else ""


def finish_mmu(ctx: Ctx, proc: str, addr: str, gathered: bool) -> str:
    """tlb_finish_mmu: flush what the gather collected; from 99baac21e458 also the whole
    range when another gather on this mm is in flight (mm_tlb_flush_nested), since that
    one may have cleaned PTEs whose entries this CPU still caches. "" if it flushed
    nothing."""
    nested = ungather(ctx, proc) and ctx.cfg.on("tlb_flush_nested")
    if gathered or nested:
        ctx.w = ctx.w.flush_tlb(proc, (addr,))
        why = (
            "mm_tlb_flush_nested: another gather is in flight, " if nested and not gathered else ""
        )
        return f"{why}flushes the TLB entries of {addr} on every CPU"
    return ""


def ipi_wait(ctx: Ctx, function: str) -> Blocked | None:
    """A flush by IPI (design rule rcu_gup_fast off) waits for every other CPU to take the
    interrupt: a GUP-fast walking with interrupts disabled holds it up until it is done."""
    waiting = [a for a in ctx.w.irq_off if a != ctx.name]
    if not waiting:
        return None
    return Blocked(
        f"{function}'s TLB-flush IPI waits for {', '.join(waiting)}: "
        "interrupts disabled in GUP-fast"
    )


def irqs(ctx: Ctx, disabled: bool) -> None:
    """local_irq_save / local_irq_restore around GUP-fast's walk, when flushes wait for it."""
    if ctx.cfg.on("rcu_gup_fast"):
        return
    rest = tuple(a for a in ctx.w.irq_off if a != ctx.name)
    now = tuple(sorted((*rest, ctx.name))) if disabled else rest
    if now != ctx.w.irq_off:
        ctx.w = ctx.w.evolve(irq_off=now)
