"""mprotect(2): change a VMA's protection, then its PTEs, then flush (mm/mprotect.c).

mprotect_fixup changes the VMA's flags under mmap_lock (write), and
change_protection walks the range: under each PTE lock change_pte_range first calls
flush_tlb_batched_pending (from 3ea277194daa) and write-protects each present PTE;
swap entries need no change. The flush comes once the whole range is done
(flush_tlb_range, only if some PTE changed), so between the two a CPU may still store
through its old writable entry: that store is concurrent with the call, and legal.
Once mprotect has returned, a store that still succeeds through a writable entry is
the `stale_tlb` violation: the flush that should have removed it never happened.

Only PROT_READ and PROT_READ|PROT_WRITE are modelled; making a VMA writable again
changes no PTE (the next write fault makes it writable: do_wp_page).
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import tlb
from engine.kernel.machine import ADDR, PROC, Blocked, Ctx, Effect, Machine, Param, op


class Protecting(NamedTuple):
    """change_protection between the PTE walk and flush_tlb_range."""

    changed: bool = False  # some PTE was write-protected: the range needs a flush


MPROTECT = Machine(Protecting)


def change_protection(ctx: Ctx) -> Effect | Blocked:
    proc, addr, prot = ctx.proc, ctx.p("addr"), ctx.p("prot")
    p = ctx.w.proc(proc)
    if p is None:
        return Blocked(f"waits for process {proc} to exist")
    others = [r for r in p.mmap_readers if r != ctx.name]
    if (p.mmap_writer and p.mmap_writer != ctx.name) or others:
        holder = p.mmap_writer or ", ".join(others)
        return Blocked(f"mmap_write_lock waits for mmap_lock of {proc}, held by {holder}")
    if p.ptl and p.ptl != ctx.name:
        return Blocked(f"change_pte_range waits for the PTE lock of {proc}, held by {p.ptl}")
    readonly = tuple(a for a in p.readonly if a != addr)
    revoked = tuple(a for a in p.revoked if a != addr)
    if prot == "read":
        readonly = tuple(sorted((*readonly, addr)))
    ctx.w = ctx.w.set_proc(p.evolve(readonly=readonly, revoked=revoked))
    if ctx.cpu:
        tlb.gather(ctx, proc, counted=True)  # inc_tlb_flush_pending
    batched = tlb.flush_batched_pending(ctx, proc) if ctx.cpu else ""
    pte = ctx.w.pte(proc, addr)
    changed = False
    if prot == "read" and pte is not None and pte.present and pte.write:
        changed = tlb.pending(ctx, proc, addr)
        ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(write=False), flush=not ctx.cpu)
        what = f"write-protects the PTE of {addr}"
    elif prot == "read":
        what = f"finds no writable PTE at {addr}: nothing to change"
    else:
        what = f"{addr} may be written again; its PTE stays as it is until a write fault"
    vma = "clears VM_WRITE" if prot == "read" else "sets VM_WRITE"
    note = f"mprotect_fixup {vma} on {addr}; {batched}change_pte_range {what}"
    if not ctx.cpu:
        return returned(ctx, "change_pte_range", note)
    ctx.goto(flush_range, changed=changed)
    return ctx.effect("change_pte_range", note)


@MPROTECT.step
def flush_range(ctx: Ctx) -> Effect:
    """flush_tlb_range if some PTE changed, dec_tlb_flush_pending, and mprotect returns."""
    proc, addr = ctx.proc, ctx.p("addr")
    changed = ctx.regs(Protecting).changed
    if changed:
        ctx.w = ctx.w.flush_tlb(proc, (addr,))
    tlb.ungather(ctx, proc, counted=True)
    note = f"flushes the TLB entries of {addr}" if changed else "no PTE changed: no TLB flush"
    return returned(ctx, "flush_tlb_range", note)


def returned(ctx: Ctx, function: str, note: str) -> Effect:
    """mprotect returns: from now on no store may succeed at a read-only address."""
    proc, addr = ctx.proc, ctx.p("addr")
    p = ctx.w.proc(proc)
    if p is not None and ctx.p("prot") == "read":
        ctx.w = ctx.w.set_proc(p.evolve(revoked=tuple(sorted({*p.revoked, addr}))))
    ctx.next_op()
    return ctx.effect(function, f"{note}; mprotect returns")


@op(
    "mprotect",
    (ADDR, Param("prot", "choice", required=True, choices=("read", "write")), PROC),
    ("change_pte_range", "flush_tlb_range"),
)
def mprotect_op(ctx: Ctx) -> Effect | Blocked:
    """mprotect(2) with PROT_READ (`prot: read`) or PROT_READ|PROT_WRITE (`prot: write`): a
    store to a read-only address is a SIGSEGV; with CPUs the TLB flush comes last."""
    return MPROTECT.resume(ctx, change_protection)
