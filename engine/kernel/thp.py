"""Transparent huge pages: the PMD-mapped large folio, its split and the deferred split.

A large folio is modelled with HPAGE_NR subpages (engine.state), addressed `buf#0`,
`buf#1`: the region `buf` is one PMD. do_huge_pmd_anonymous_page maps a new folio with
one huge PMD (one reference, the entire mapcount); __split_huge_pmd_locked turns the
PMD into a table of PTEs (a reference and a mapcount per subpage); a partial unmap of
an anon large folio queues it for deferred split; deferred_split_scan splits it
(split_huge_page_to_list_to_order: the expected-refcount freeze) and puts it, which
frees the subpages nobody maps any more.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import oracle, refs, tlb
from engine.kernel.machine import PROC, Blocked, Ctx, Effect, Machine, Param, op
from engine.state import (
    ANON_EXCLUSIVE,
    HPAGE_NR,
    LOCKED,
    NO_PAGE,
    SWAPBACKED,
    SWAPCACHE,
    Expected,
    Page,
    Pmd,
    Pte,
    page_name,
    split_addr,
    subpage_addr,
)

REGION = Param("addr", "region", required=True, positional=True)
# Flags that live on each subpage rather than on the folio (PG_anon_exclusive is per page).
PER_PAGE_FLAGS = ANON_EXCLUSIVE


def mmap_lock_reason(ctx: Ctx, proc: str) -> str | None:
    p = ctx.w.proc(proc)
    if p is None:
        return f"waits for process {proc} to exist"
    if p.mmap_writer and p.mmap_writer != ctx.name:
        return f"waits for mmap_lock of {proc}, held for write by {p.mmap_writer}"
    return None


def region_touched(ctx: Ctx, proc: str, region: str) -> bool:
    """Whether anything is mapped in region: a PTE of its table or a PMD other than none."""
    prefix = f"{region}#"
    if ctx.w.pmd(proc, region) != Pmd():
        return True
    return any(p == proc and a.startswith(prefix) for p, a, _ in ctx.w.ptes)


@op("thp_fault", (REGION, PROC), ("do_huge_pmd_anonymous_page",))
def thp_fault_op(ctx: Ctx) -> Effect | Blocked:
    """A write fault on an empty, THP-enabled region: do_huge_pmd_anonymous_page maps a new
    zero-filled large folio with one huge PMD (writable, dirty)."""
    proc, region = ctx.proc, ctx.p("addr")
    reason = mmap_lock_reason(ctx, proc)
    if reason:
        return Blocked(reason)
    ctx.next_op()
    if region_touched(ctx, proc, region):
        return ctx.effect(
            "do_huge_pmd_anonymous_page",
            f"the PMD over {region} is not none: no THP, the fault is handled per PTE",
        )
    exclusive = ANON_EXCLUSIVE if ctx.cfg.on("anon_exclusive") else 0
    head = Page(ref=1, flags=SWAPBACKED | exclusive, lru="inactive_anon", owner="anon", entire=1)
    ctx.w, index = ctx.w.new_folio(head, ("0",) * HPAGE_NR, tail_flags=exclusive)
    pmd = Pmd(kind="huge", page=index, write=True, dirty=True, young=True)
    ctx.w = ctx.w.set_pmd(proc, region, pmd)
    for i in range(HPAGE_NR):
        key = f"{proc}:{subpage_addr(region, i)}"
        if ctx.w.expected(key) is None:
            ctx.w = ctx.w.set_expected(key, Expected(allowed=("0",), latest="0"))
    return ctx.effect(
        "do_huge_pmd_anonymous_page",
        f"a new zero-filled large folio {page_name(index)} ({HPAGE_NR} pages) mapped by a huge "
        f"PMD at {region} ({refs.refs_note(ctx, index)})",
    )


def split_pmd(ctx: Ctx, proc: str, region: str, bits: Pmd | None = None) -> str:
    """__split_huge_pmd_locked on an anon huge PMD, under the PMD lock: pmdp_invalidate,
    then a PTE per subpage with the PMD's bits (the dirty bit carried over to each PTE and
    to the folio, 0ccf7f168e17), a reference and a mapcount per PTE in place of the PMD's
    one reference and entire mapcount, then pmd_populate with the deposited table.
    `bits`: the write, dirty and young bits as read before pmdp_invalidate (before
    d52605d7cb30); by default, those pmdp_invalidate returns atomically."""
    pmd = ctx.w.pmd(proc, region)
    assert pmd.kind == "huge"
    if bits is not None:
        pmd = pmd.evolve(write=bits.write, dirty=bits.dirty, young=bits.young)
    head = pmd.page
    folio = ctx.w.page(head)
    ctx.w = ctx.w.set_pmd(proc, region, Pmd(kind="table", table=pmd.table + 1))
    refs.update(ctx, head, folio.evolve(ref=folio.ref + folio.nr - 1, entire=folio.entire - 1))
    if pmd.dirty:
        refs.mark_dirty(ctx, head)
    for i in range(folio.nr):
        sub = ctx.w.page(head + i)
        refs.update(ctx, head + i, sub.evolve(mapcount=sub.mapcount + 1))
        pte = Pte(page=head + i, present=True, write=pmd.write, dirty=pmd.dirty, young=pmd.young)
        ctx.w = ctx.w.set_pte(proc, subpage_addr(region, i), pte)
    return (
        f"__split_huge_pmd_locked: the huge PMD over {region} becomes {folio.nr} PTEs "
        f"({refs.refs_note(ctx, head)})"
    )


def split_if_huge(ctx: Ctx, proc: str, addr: str) -> str:
    """zap_pmd_range / handle_mm_fault on part of a huge PMD split it first; "" if not huge."""
    where = split_addr(addr)
    if where is None or ctx.w.pmd(proc, where[0]).kind != "huge":
        return ""
    return split_pmd(ctx, proc, where[0])


def after_pte_unmap(ctx: Ctx, index: int) -> None:
    """folio_remove_rmap_pte's tail: an anon large folio left partly mapped goes on the
    deferred split queue (deferred_split_folio), to be split under memory pressure."""
    head = ctx.w.folio(index)
    folio = ctx.w.page(head)
    if not folio.order or not folio.anon or head in ctx.w.deferred:
        return
    if ctx.w.folio_mapcount(head) > 0:
        ctx.w = ctx.w.evolve(deferred=(*ctx.w.deferred, head))


class PmdSplit(NamedTuple):
    bits: Pmd | None = None  # the PMD's bits as __split_huge_pmd_locked read them (pre-4.16)


PMD_SPLIT = Machine(PmdSplit)


@PMD_SPLIT.step
def split_huge_pmd_start(ctx: Ctx) -> Effect | Blocked:
    proc, region = ctx.proc, ctx.p("addr")
    reason = mmap_lock_reason(ctx, proc)
    if reason:
        return Blocked(reason)
    if ctx.w.pmd(proc, region).kind == "migration":
        return split_migration_entry(ctx, proc, region)
    if ctx.w.pmd(proc, region).kind != "huge":
        ctx.next_op()
        return ctx.effect("__split_huge_pmd_locked", f"the PMD over {region} is not huge")
    if ctx.cfg.on("pmdp_invalidate_atomic"):
        ctx.next_op()
        return ctx.effect("__split_huge_pmd_locked", split_pmd(ctx, proc, region))
    p = ctx.w.proc(proc)
    assert p is not None
    if p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PMD lock of {region}, held by {p.ptl}")
    # Before d52605d7cb30 the bits were read with plain loads while the PMD was still
    # present and writable; pmdp_invalidate then rewrote it non-atomically.
    pmd = ctx.w.pmd(proc, region)
    ctx.w = ctx.w.set_proc(p.evolve(ptl=ctx.name))
    ctx.goto(split_huge_pmd_invalidate, bits=pmd)
    return ctx.effect(
        "__split_huge_pmd_locked",
        f"takes the PMD lock of {region} and reads its bits: "
        f"{'dirty' if pmd.dirty else 'clean'}, {'young' if pmd.young else 'old'} "
        "(pmd_dirty(*pmd) before pmdp_invalidate; the PMD stays present and writable)",
    )


@PMD_SPLIT.step
def split_huge_pmd_invalidate(ctx: Ctx) -> Effect:
    proc, region = ctx.proc, ctx.p("addr")
    bits = ctx.regs(PmdSplit).bits
    assert bits is not None
    now = ctx.w.pmd(proc, region)
    lost = [b for b in ("dirty", "young") if getattr(now, b) and not getattr(bits, b)]
    note = split_pmd(ctx, proc, region, bits)
    p = ctx.w.proc(proc)
    assert p is not None
    ctx.w = ctx.w.set_proc(p.evolve(ptl=""))
    ctx.next_op()
    if lost:
        note += (
            f"; the {' and '.join(lost)} bit(s) a CPU set since the read are lost: "
            "the PTEs and the folio stay " + ("clean" if "dirty" in lost else "old")
        )
    return ctx.effect("pmdp_invalidate", note + "; drops the PMD lock")


def populate_migration_ptes(ctx: Ctx, proc: str, region: str, pmd: Pmd) -> str:
    """__split_huge_pmd_locked on a PMD migration entry: a PTE migration entry per subpage
    (the rmap and the references were dropped when the entry was set), pmd_populate."""
    nr = ctx.w.page(pmd.page).nr
    ctx.w = ctx.w.set_pmd(proc, region, Pmd(kind="table", table=pmd.table + 1))
    for i in range(nr):
        entry = Pte(page=pmd.page + i, migration=True, write=pmd.write)
        ctx.w = ctx.w.set_pte(proc, subpage_addr(region, i), entry)
    return (
        f"__split_huge_pmd_locked: the PMD migration entry over {region} becomes {nr} PTE "
        f"migration entries for {page_name(pmd.page)}"
    )


def split_migration_entry(ctx: Ctx, proc: str, region: str) -> Effect | Blocked:
    """__split_huge_pmd on a PMD migration entry (mprotect or munmap of part of a THP under
    migration). From 6.10 (3a5a8d343e1c) it is rewritten into PTE migration entries under
    the PMD lock; before, pmdp_invalidate ran on it first, unconditionally."""
    p = ctx.w.proc(proc)
    assert p is not None
    if p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PMD lock of {region}, held by {p.ptl}")
    pmd = ctx.w.pmd(proc, region)
    if ctx.cfg.on("split_pmd_migration_no_invalidate"):
        ctx.next_op()
        return ctx.effect(
            "__split_huge_pmd_locked", populate_migration_ptes(ctx, proc, region, pmd)
        )
    ctx.w = ctx.w.set_proc(p.evolve(ptl=ctx.name))
    ctx.w = ctx.w.set_pmd(proc, region, pmd.evolve(kind="invalid_migration"))
    ctx.goto(split_migration_populate, bits=pmd)
    return ctx.effect(
        "pmdp_invalidate",
        f"pmd_mkinvalid on the PMD migration entry over {region}, holding the PMD lock: on "
        "arm64 pmd_present() is now true for it",
    )


@PMD_SPLIT.step
def split_migration_populate(ctx: Ctx) -> Effect:
    proc, region = ctx.proc, ctx.p("addr")
    bits = ctx.regs(PmdSplit).bits
    assert bits is not None
    note = populate_migration_ptes(ctx, proc, region, bits)
    p = ctx.w.proc(proc)
    assert p is not None
    ctx.w = ctx.w.set_proc(p.evolve(ptl=""))
    ctx.next_op()
    return ctx.effect("__split_huge_pmd_locked", note + "; drops the PMD lock")


@op("split_huge_pmd", (REGION, PROC), ("__split_huge_pmd_locked", "pmdp_invalidate"))
def split_huge_pmd_op(ctx: Ctx) -> Effect | Blocked:
    """split_huge_pmd: a huge PMD becomes a table of PTEs mapping the same subpages (as
    mprotect or munmap of part of a THP does). Before 4.16 (d52605d7cb30) it read the PMD's
    dirty and young bits, then pmdp_invalidate: two steps, and a CPU's write in between
    sets a dirty bit that is lost."""
    return PMD_SPLIT.resume(ctx, split_huge_pmd_start)


class Splitting(NamedTuple):
    folio: int = NO_PAGE  # the folio deferred_split_scan took off the queue, with a reference


SPLIT = Machine(Splitting)


def can_split(ctx: Ctx, head: int) -> bool:
    """can_split_folio: every reference is a mapping's, plus the caller's one (and the swap
    cache's, one per page, for a folio in it)."""
    folio = ctx.w.page(head)
    extra = folio.nr if folio.has(SWAPCACHE) else 0
    return ctx.w.folio_mapcount(head) == folio.ref - extra - 1


def pmd_lock_wait(ctx: Ctx, head: int) -> Blocked | None:
    """Why splitting the folio `head` must wait: another actor holds the PMD lock of a huge
    PMD mapping it (unmap_folio's split takes that lock)."""
    for proc, region, pmd in ctx.w.pmds:
        if pmd.kind == "huge" and pmd.page == head:
            p = ctx.w.proc(proc)
            if p is not None and p.ptl and p.ptl != ctx.name:
                return Blocked(f"waits for the PMD lock of {region}, held by {p.ptl}")
    return None


def rmap_walk_pmds(ctx: Ctx, head: int) -> None:
    """unmap_folio's rmap walk (try_to_migrate_one, split_huge_pmd_address with the folio):
    the anon_vma sends it to the folio's address in every process that shares it (the
    model: every process), whatever that PMD maps now. A PMD migration entry of another
    folio there made split_huge_pmd_locked apply pmd_folio() to it before 6.15."""
    folio = ctx.w.page(head)
    regions = sorted(
        {
            a.partition("#")[0]
            for i in range(folio.nr)
            for _, a, _ in ctx.w.mappers(head + i)
            if "#" in a
        }
    )
    for proc in ctx.w.procs:
        for region in regions:
            pmd = ctx.w.pmd(proc.name, region)
            if pmd.kind != "migration" or pmd.page == head:
                continue
            if not ctx.cfg.on("split_skips_pmd_migration_entry"):
                ctx.violate(
                    "kernel_bug",
                    f"{ctx.name}: the rmap walk of {page_name(head)} reaches {proc.name}:"
                    f"{region}, a PMD migration entry of {page_name(pmd.page)}; "
                    "split_huge_pmd_locked applies pmd_folio() to it: BUG, unable to handle "
                    "page fault (be6e843fc51a)",
                )


def split_folio(ctx: Ctx, head: int, locked: bool = False, tails_lru: str = "") -> str:
    """split_huge_page_to_list_to_order, anon and not in the swap cache, as one step:
    folio_trylock, unmap_folio (migration entries), folio_ref_freeze with the expected
    count 1, __split_huge_page (each tail an order-0 page with one reference, the flags of
    the folio and its own PG_anon_exclusive), remap_page, and the put of every page but
    the caller's. Returns the sentence; the folio stays unsplit if the freeze fails.
    `locked`: the caller holds the folio lock (shrink_folio_list's split_folio_to_list);
    the head stays locked and the tails are unlocked; `tails_lru`, the LRU the tails go
    on when the head was isolated from it (the model puts them back there, for a later
    pass: the kernel queues them on the shrinker's own list)."""
    rmap_walk_pmds(ctx, head)
    # unmap_folio with TTU_SPLIT_HUGE_PMD: a PMD mapping is split into PTEs first.
    for proc, region, pmd in ctx.w.pmds:
        if pmd.kind == "huge" and pmd.page == head:
            split_pmd(ctx, proc, region)
    folio = ctx.w.page(head)
    if folio.has(LOCKED) and not locked:
        return f"folio_trylock fails: {page_name(head)} is locked"
    if not can_split(ctx, head):
        return (
            f"can_split_folio: {page_name(head)} has references besides its mappings and "
            f"ours ({refs.refs_note(ctx, head)}): -EAGAIN, not split"
        )
    flags = folio.flags & ~PER_PAGE_FLAGS
    for i in range(folio.nr):
        sub = ctx.w.page(head + i)
        mine = sub.flags & PER_PAGE_FLAGS
        own = flags | mine
        if i and locked:
            own &= ~LOCKED  # __split_huge_page unlocks every tail but the caller's page
        # Unfrozen: the caller's reference on the head, one on each tail that remap and
        # the final put then turn into one per remaining mapping.
        ref = (1 if i == 0 else 0) + sub.mapcount
        page = Page(
            ref=ref,
            mapcount=sub.mapcount,
            flags=own,
            lru=folio.lru if i == 0 or not tails_lru else tails_lru,
            data=sub.data,
            owner=folio.owner,
            gen=sub.gen,
            locker=folio.locker if i == 0 else "",
            swap=folio.swap,
        )
        refs.update(ctx, head + i, page)
    ctx.w = ctx.w.evolve(deferred=tuple(d for d in ctx.w.deferred if d != head))
    freed = []
    for i in range(1, folio.nr):
        if ctx.w.page(head + i).ref == 0:
            ctx.w = ctx.w.free_page(head + i)
            freed.append(page_name(head + i))
    note = f"split_huge_page: {page_name(head)} and its tails are now {folio.nr} order-0 pages"
    if freed:
        note += f"; free_page_and_swap_cache frees unmapped {', '.join(freed)}"
    return note


def on_scan_list(ctx: Ctx, head: int) -> bool:
    """Whether `head` is on a deferred_split_scan's private list (taken off the queue with
    a reference, not split yet): only that scanner may unlink it then."""
    return head in ctx.w.scanning


@SPLIT.step
def deferred_split_take(ctx: Ctx) -> Effect | Blocked:
    queue = ctx.w.deferred
    if not queue:
        ctx.next_op()
        return ctx.effect("deferred_split_scan", "the deferred split queue is empty")
    head = queue[0]
    if not refs.try_get(ctx, head):
        ctx.w = ctx.w.evolve(deferred=queue[1:])
        ctx.next_op()
        return ctx.effect("deferred_split_scan", f"folio_try_get fails on {page_name(head)}")
    ctx.w = ctx.w.evolve(scanning=(*ctx.w.scanning, head))
    ctx.goto(deferred_split_do, folio=head)
    return ctx.effect(
        "deferred_split_scan",
        f"takes {page_name(head)} off the deferred split queue ({refs.refs_note(ctx, head)})",
    )


@SPLIT.step
def deferred_split_do(ctx: Ctx) -> Effect | Blocked:
    head = ctx.regs(Splitting).folio
    wait = pmd_lock_wait(ctx, head)
    if wait:
        return wait
    if ctx.w.folio_mapcount(head):
        # unmap_folio's migration entries are set with ptep_clear_flush: with IPI flushes
        # it waits for a GUP-fast walking with interrupts disabled.
        waits = tlb.ipi_wait(ctx, "unmap_folio")
        if waits:
            return waits
    ctx.w = ctx.w.evolve(scanning=tuple(f for f in ctx.w.scanning if f != head))
    note = split_folio(ctx, head)
    freed = refs.put(ctx, head, what="folio_put")
    if freed:
        note += f"; folio_put frees {page_name(head)}"
    ctx.next_op()
    return ctx.effect("split_folio", note)


@SPLIT.step
def split_folio_start(ctx: Ctx) -> Effect | Blocked:
    proc, addr = ctx.proc, ctx.p("addr")
    reason = mmap_lock_reason(ctx, proc)
    if reason:
        return Blocked(reason)
    pte = ctx.w.pte(proc, addr)
    if pte is None or not pte.present or pte.page < 0:
        ctx.next_op()
        return ctx.effect("split_folio", f"no page mapped at {addr}")
    head = ctx.w.folio(pte.page)
    if not ctx.w.page(head).order:
        ctx.next_op()
        return ctx.effect("split_folio", f"{page_name(head)} is not a large folio")
    refs.get(ctx, head)
    ctx.goto(deferred_split_do, folio=head)
    return ctx.effect(
        "folio_get", f"takes a reference on {page_name(head)} ({refs.refs_note(ctx, head)})"
    )


@op(
    "split_folio",
    (Param("addr", "addr", required=True, positional=True), PROC),
    ("folio_get", "split_folio"),
    refs_held={"deferred_split_do": "split"},
)
def split_folio_op(ctx: Ctx) -> Effect | Blocked:
    """split_folio on the large folio mapped at a subpage address, as a caller holding a
    reference does it (the page found by a walk, as in madvise's cold/pageout paths): the
    folio becomes order-0 pages if nothing else holds it, else -EAGAIN."""
    return SPLIT.resume(ctx, split_folio_start)


@op(
    "deferred_split_scan",
    (),
    ("deferred_split_scan", "split_folio"),
    refs_held={"deferred_split_do": "deferred split"},
)
def deferred_split_scan_op(ctx: Ctx) -> Effect | Blocked:
    """The THP shrinker: deferred_split_scan takes the first queued folio with folio_try_get,
    splits it (split_folio) and puts it."""
    return SPLIT.resume(ctx, deferred_split_take)


def free_deposited_table(ctx: Ctx, proc: str, region: str, table: int) -> str:
    """zap_deposited_table: pte_free of the PTE table deposited under a huge PMD (after a
    collapse, the table the small pages were mapped by). Recorded only while a GUP-fast
    walk is on it, the one reader that can still reach it; the sentence says so then."""
    if not any((w[1], w[2], w[3]) == (proc, region, table) for w in ctx.w.walks):
        return ""
    freed = tuple(sorted({*ctx.w.freed_tables, (proc, region, table)}))
    ctx.w = ctx.w.evolve(freed_tables=freed)
    return f"; zap_deposited_table frees PTE table {table}, which a GUP-fast is still walking"


def is_region(ctx: Ctx, proc: str, addr: str) -> bool:
    """Whether addr names a whole THP region (its PMD), not a plain address."""
    return "#" not in addr and region_touched(ctx, proc, addr)


def zap_region(ctx: Ctx, proc: str, region: str, unmap: bool) -> Effect | Blocked:
    """zap_pmd_range over a whole region, as madvise(MADV_DONTNEED) or munmap runs it under
    mmap_lock for read: a lockless look at the PMD first. A huge (or invalidated: still
    pmd_trans_huge) PMD goes to zap_huge_pmd, which takes the PMD lock; a none PMD is
    skipped (pmd_none_or_trans_huge_or_clear_bad) without taking any lock, which is why a
    PMD may never be cleared transiently under mmap_lock for read (ced108037c2a,
    58ceeb6bec86); a PTE table is zapped entry by entry."""
    pmd = ctx.w.pmd(proc, region)
    p = ctx.w.proc(proc)
    assert p is not None
    keys = [f"{proc}:{subpage_addr(region, i)}" for i in range(HPAGE_NR)]
    note = ""
    if pmd.kind in ("invalid_migration", "migration"):
        if p.ptl and p.ptl != ctx.name:
            return Blocked(f"zap_huge_pmd waits for the PMD lock of {region}, held by {p.ptl}")
        # A PMD migration entry: its rmap and reference went when it was set.
        ctx.w = ctx.w.set_pmd(proc, region, Pmd())
        note = f"zap_huge_pmd: clears the PMD migration entry of {page_name(pmd.page)}"
        function = "zap_huge_pmd"
    elif pmd.kind in ("huge", "invalid"):
        if p.ptl and p.ptl != ctx.name:
            return Blocked(f"zap_huge_pmd waits for the PMD lock of {region}, held by {p.ptl}")
        head = pmd.page
        folio = ctx.w.page(head)
        # pmdp_huge_get_and_clear_full, zap_deposited_table; folio_remove_rmap_pmd and, after
        # the TLB flush, the PMD mapping's reference.
        ctx.w = ctx.w.set_pmd(proc, region, Pmd())
        table_note = free_deposited_table(ctx, proc, region, pmd.table)
        refs.update(ctx, head, folio.evolve(entire=folio.entire - 1))
        freed = refs.put(ctx, head, what="zap_huge_pmd")
        note = f"zap_huge_pmd: unmaps the huge PMD of {page_name(head)}"
        note += (
            ": the last reference, the folio is freed"
            if freed
            else f" ({refs.refs_note(ctx, head)})"
        )
        note += table_note
        function = "zap_huge_pmd"
    elif pmd.kind == "none":
        note = (
            f"pmd_none_or_trans_huge_or_clear_bad: the PMD over {region} is none (no lock "
            "taken): nothing to zap"
        )
        function = "zap_pmd_range"
    else:
        function = "zap_pte_range"
        unmapped = []
        for i in range(HPAGE_NR):
            addr = subpage_addr(region, i)
            pte = ctx.w.raw_pte(proc, addr)
            if pte is None:
                continue
            if pte.present and pte.page >= 0:
                page = ctx.w.page(pte.page)
                refs.update(ctx, pte.page, page.evolve(mapcount=page.mapcount - 1))
                if not refs.put(ctx, pte.page, what="zap_pte_range"):
                    after_pte_unmap(ctx, pte.page)
                unmapped.append(page_name(pte.page))
            ctx.w = ctx.w.set_pte(proc, addr, None if unmap else Pte())
        note = f"zap_pte_range: unmaps {', '.join(unmapped) or 'nothing'} in {region}"
    for key in keys:
        ctx.w = oracle.zap(ctx.w, key, unmapped=unmap)
    ctx.next_op()
    return ctx.effect(function, f"{proc}: {note}")


class Migrating(NamedTuple):
    old: int = NO_PAGE  # the folio being migrated
    new: int = NO_PAGE  # its copy


NUMA = Machine(Migrating)


@NUMA.step
def numa_migrate_start(ctx: Ctx) -> Effect | Blocked:
    proc, region = ctx.proc, ctx.p("addr")
    reason = mmap_lock_reason(ctx, proc)
    if reason:
        return Blocked(reason)
    p = ctx.w.proc(proc)
    assert p is not None
    if p.ptl and p.ptl != ctx.name:
        return Blocked(f"waits for the PMD lock of {region}, held by {p.ptl}")
    pmd = ctx.w.pmd(proc, region)
    if pmd.kind != "huge":
        ctx.next_op()
        return ctx.effect("do_huge_pmd_numa_page", f"the PMD over {region} does not map a THP")
    old = pmd.page
    folio = ctx.w.page(old)
    # page_ref_freeze(page, 2): the mapping's and numamigrate_isolate_page's references.
    if folio.ref != 1 or folio.has(LOCKED):
        ctx.next_op()
        return ctx.effect(
            "migrate_misplaced_transhuge_page",
            f"{page_name(old)} has other references ({refs.refs_note(ctx, old)}): not migrated",
        )
    head = Page(ref=1, flags=folio.flags, lru=folio.lru, owner="anon", entire=1)
    data = tuple(ctx.w.page(old + i).data for i in range(folio.nr))
    tails = folio.flags & ANON_EXCLUSIVE
    ctx.w, new = ctx.w.new_folio(head, data, tail_flags=tails)
    entry = Pmd(kind="huge", page=new, write=pmd.write, dirty=True, young=pmd.young)
    if ctx.cfg.on("numa_migrate_pmd_overwrite"):
        ctx.w = ctx.w.set_pmd(proc, region, entry)
        release_old(ctx, old)
        ctx.next_op()
        return ctx.effect(
            "set_pmd_at",
            f"migrate_misplaced_transhuge_page copies {page_name(old)} to {page_name(new)} and "
            f"overwrites the PMD over {region} with it under the PMD lock",
        )
    ctx.w = ctx.w.set_proc(p.evolve(ptl=ctx.name))
    ctx.w = ctx.w.set_pmd(proc, region, Pmd(kind="none", table=pmd.table))
    ctx.goto(numa_migrate_set, old=old, new=new)
    return ctx.effect(
        "pmdp_huge_clear_flush_notify",
        f"migrate_misplaced_transhuge_page copies {page_name(old)} to {page_name(new)}, then "
        f"clears the PMD over {region}, holding the PMD lock",
    )


def release_old(ctx: Ctx, old: int) -> None:
    """page_remove_rmap of the old folio and the put of its mapping's reference."""
    folio = ctx.w.page(old)
    refs.update(ctx, old, folio.evolve(entire=folio.entire - 1))
    refs.put(ctx, old, what="migrate_misplaced_transhuge_page")


@NUMA.step
def numa_migrate_set(ctx: Ctx) -> Effect:
    proc, region = ctx.proc, ctx.p("addr")
    r = ctx.regs(Migrating)
    p = ctx.w.proc(proc)
    assert p is not None
    entry = Pmd(kind="huge", page=r.new, write=True, dirty=True, young=True)
    ctx.w = ctx.w.set_pmd(proc, region, entry)
    ctx.w = ctx.w.set_proc(p.evolve(ptl=""))
    release_old(ctx, r.old)
    ctx.next_op()
    return ctx.effect(
        "set_pmd_at",
        f"maps {page_name(r.new)} over {region} and frees {page_name(r.old)}; drops the PMD lock",
    )


@op(
    "numa_migrate",
    (REGION, PROC),
    (
        "do_huge_pmd_numa_page",
        "migrate_misplaced_transhuge_page",
        "pmdp_huge_clear_flush_notify",
        "set_pmd_at",
    ),
)
def numa_migrate_op(ctx: Ctx) -> Effect | Blocked:
    """A NUMA hinting fault on a PMD-mapped THP moves it to another node
    (do_huge_pmd_numa_page, migrate_misplaced_transhuge_page until 5.12): the folio is
    copied and the PMD switched to the copy under the PMD lock. (The PMD's PROT_NONE
    hinting state, which keeps the process's own accesses out meanwhile, is not modelled:
    the copy and the switch are one step.)"""
    return NUMA.resume(ctx, numa_migrate_start)


def huge_at(ctx: Ctx, proc: str, addr: str) -> bool:
    where = split_addr(addr)
    return where is not None and ctx.w.pmd(proc, where[0]).kind == "huge"


def do_huge_pmd_wp_page(ctx: Ctx, proc: str, addr: str, write: bool) -> str:
    """A write (or unshare) fault on a write-protected huge PMD (mm/huge_memory.c, since
    3917c80280c9 in 5.8): an exclusive folio (PG_anon_exclusive from 5.19, else a refcount
    of 1 under the folio lock) is reused in place; any other is split, and the fault falls
    back to do_wp_page on the PTE (a copy of that one subpage). The sentence of a fallback
    starts with "__split_huge_pmd"."""
    where = split_addr(addr)
    assert where is not None
    region = where[0]
    pmd = ctx.w.pmd(proc, region)
    head = pmd.page
    folio = ctx.w.page(head)
    exclusive = ctx.cfg.on("anon_exclusive") and folio.has(ANON_EXCLUSIVE)
    if exclusive or (folio.ref == 1 and not folio.has(LOCKED)):
        if ctx.cfg.on("anon_exclusive"):
            for i in range(folio.nr):
                refs.update(ctx, head + i, ctx.w.page(head + i).set(ANON_EXCLUSIVE))
        if write:
            ctx.w = ctx.w.set_pmd(proc, region, pmd.evolve(write=True, dirty=True, young=True))
        return (
            f"do_huge_pmd_wp_page: reuses {page_name(head)} in place ({refs.refs_note(ctx, head)})"
        )
    split_pmd(ctx, proc, region)
    return f"__split_huge_pmd: {page_name(head)} is shared, the fault falls back to its PTE"


def copy_huge_pmd(ctx: Ctx, parent: str, child: str, region: str) -> str:
    """fork's copy_huge_pmd of an anon huge PMD: the child shares the folio (one more
    reference and entire mapcount), both PMDs write-protected, the child's old. A folio
    that may be DMA-pinned (exclusive and maybe pinned from 5.19, folio_try_dup_anon_rmap_pmd;
    MMF_HAS_PINNED and maybe pinned from 5.11, d042035eaeec) is not shared: the PMD is
    split and its PTEs are copied one by one (sentence starts with "__split_huge_pmd")."""
    pmd = ctx.w.pmd(parent, region)
    head = pmd.page
    folio = ctx.w.page(head)
    p = ctx.w.proc(parent)
    assert p is not None
    pinned = folio.maybe_dma_pinned()
    exclusive = ctx.cfg.on("anon_exclusive") and folio.has(ANON_EXCLUSIVE)
    if (exclusive and pinned) or (ctx.cfg.on("fork_copy_pinned") and p.has_pinned and pinned):
        split_pmd(ctx, parent, region)
        return f"__split_huge_pmd: {page_name(head)} may be DMA-pinned, its PTEs are copied"
    refs.update(ctx, head, folio.evolve(ref=folio.ref + 1, entire=folio.entire + 1))
    for i in range(folio.nr):
        refs.update(ctx, head + i, ctx.w.page(head + i).clear(ANON_EXCLUSIVE))
    ctx.w = ctx.w.set_pmd(parent, region, pmd.evolve(write=False))
    ctx.w = ctx.w.set_pmd(child, region, pmd.evolve(write=False, young=False))
    return (
        f"copy_huge_pmd: {child} shares {page_name(head)} through a read-only huge PMD "
        f"({refs.refs_note(ctx, head)})"
    )


def folio_mappers(ctx: Ctx, index: int) -> list[tuple[str, str, Pte]]:
    """Every mapping of the folio `index` heads, subpage by subpage (a huge PMD shows up as
    each subpage's PTE): what rmap_walk visits. An order-0 page's are its own."""
    page = ctx.w.page(index)
    if not page.order:
        return ctx.w.mappers(index)
    return [m for i in range(page.nr) for m in ctx.w.mappers(index + i)]


def referenced_mappings(ctx: Ctx, young: list[tuple[str, str, Pte]]) -> int:
    """folio_referenced's count of young mappings: a huge PMD is one mapping, however many
    subpages it shows up as."""
    seen = set()
    for proc, addr, _ in young:
        where = split_addr(addr)
        if where is not None and ctx.w.pmd(proc, where[0]).kind == "huge":
            seen.add((proc, where[0]))
        else:
            seen.add((proc, addr))
    return len(seen)


def huge_pmd_of(ctx: Ctx, head: int) -> tuple[str, str] | None:
    """A (proc, region) whose huge PMD maps the folio `head`, if any."""
    for proc, region, pmd in ctx.w.pmds:
        if pmd.kind == "huge" and pmd.page == head:
            return proc, region
    return None


def numa_at(ctx: Ctx, proc: str, addr: str) -> bool:
    """Whether addr is under a huge PMD made PROT_NONE for NUMA hinting."""
    where = split_addr(addr)
    if where is None:
        return False
    pmd = ctx.w.pmd(proc, where[0])
    return pmd.kind == "huge" and pmd.numa


def do_huge_pmd_numa_page(ctx: Ctx, proc: str, addr: str) -> str:
    """The NUMA hinting fault on a PROT_NONE huge PMD, under the PMD lock: the folio stays
    where it is (the model does not choose to migrate here; see numa_migrate), and
    pmd_modify gives the PMD its VMA's protection back, young, writable if it was."""
    where = split_addr(addr)
    assert where is not None
    pmd = ctx.w.pmd(proc, where[0])
    ctx.w = ctx.w.set_pmd(proc, where[0], pmd.evolve(numa=False, young=True))
    return (
        f"do_huge_pmd_numa_page: a NUMA hinting fault on {addr}; {page_name(pmd.page)} stays, "
        f"the PMD over {where[0]} is accessible again"
    )


class Protecting(NamedTuple):
    old: Pmd | None = None  # the PMD change_huge_pmd cleared, to set again


PROT = Machine(Protecting)


@PROT.step
def change_huge_pmd_start(ctx: Ctx) -> Effect | Blocked:
    proc, region = ctx.proc, ctx.p("addr")
    reason = mmap_lock_reason(ctx, proc)
    if reason:
        return Blocked(reason)
    pmd = ctx.w.pmd(proc, region)
    if pmd.kind != "huge" or pmd.numa:
        ctx.next_op()
        return ctx.effect(
            "change_huge_pmd", f"the PMD over {region} is not an accessible huge PMD: nothing to do"
        )
    p = ctx.w.proc(proc)
    assert p is not None
    if p.ptl and p.ptl != ctx.name:
        return Blocked(f"__pmd_trans_huge_lock waits for the PMD lock of {region}, held by {p.ptl}")
    if ctx.cfg.on("pmd_change_in_place"):
        # ced108037c2a: pmdp_invalidate, pmd_modify, set_pmd_at: never none meanwhile.
        ctx.w = ctx.w.set_pmd(proc, region, pmd.evolve(numa=True))
        ctx.next_op()
        return ctx.effect(
            "change_huge_pmd",
            f"makes the PMD over {region} PROT_NONE in place (pmdp_invalidate, pmd_modify) "
            "for NUMA hinting",
        )
    ctx.w = ctx.w.set_proc(p.evolve(ptl=ctx.name))
    ctx.w = ctx.w.set_pmd(proc, region, Pmd(kind="none", table=pmd.table))
    ctx.goto(change_huge_pmd_set, old=pmd)
    return ctx.effect(
        "pmdp_huge_get_and_clear_notify",
        f"change_huge_pmd clears the PMD over {region}, holding the PMD lock",
    )


@PROT.step
def change_huge_pmd_set(ctx: Ctx) -> Effect:
    proc, region = ctx.proc, ctx.p("addr")
    old = ctx.regs(Protecting).old
    assert old is not None
    ctx.w = ctx.w.set_pmd(proc, region, old.evolve(numa=True))
    p = ctx.w.proc(proc)
    assert p is not None
    ctx.w = ctx.w.set_proc(p.evolve(ptl=""))
    ctx.next_op()
    return ctx.effect(
        "set_pmd_at",
        f"sets the PMD over {region} again, PROT_NONE (pmd_modify); drops the PMD lock",
    )


@op(
    "change_prot_numa",
    (REGION, PROC),
    ("change_huge_pmd", "pmdp_huge_get_and_clear_notify", "set_pmd_at"),
)
def change_prot_numa_op(ctx: Ctx) -> Effect | Blocked:
    """NUMA balancing's scanner (task_numa_work -> change_prot_numa) over a PMD-mapped THP,
    under mmap_lock for read: change_huge_pmd makes the huge PMD PROT_NONE, so the next
    access takes a NUMA hinting fault (do_huge_pmd_numa_page). Since 4.11 (ced108037c2a)
    the PMD is changed in place; before, it was cleared and set again, and a
    MADV_DONTNEED looking at it without the lock in between skipped it (design rule
    pmd_change_in_place)."""
    return PROT.resume(ctx, change_huge_pmd_start)
