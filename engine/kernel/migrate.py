"""migrate_pages for one mapped page, anon or page cache (mm/migrate.c, mm/rmap.c).

Isolate, lock, replace the PTE by a migration entry, then refuse if the
refcount is not the expected one (a GUP reference is still out: -EAGAIN), else
copy the data to a new page and point the PTE at it. GUP-fast fails on the
migration entry; slow GUP and faults wait for it (migration_entry_wait).
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import refs, thp
from engine.kernel.machine import ADDR, PROC, Blocked, Ctx, Effect, Machine, holding, op
from engine.state import (
    ANON_EXCLUSIVE,
    DIRTY,
    LOCKED,
    NO_PAGE,
    PRIVATE,
    SWAPCACHE,
    ZERO_PAGE,
    Page,
    Pmd,
    page_name,
)


class Regs(NamedTuple):
    """What one migrate_pages call keeps between its steps."""

    page: int = NO_PAGE  # the isolated folio
    lru: str = ""  # the LRU list it came from
    mapped: tuple[tuple[str, str], ...] = ()  # (proc, addr) now holding migration entries
    target: int = NO_PAGE  # the folio the entries are restored to (new, or the old on failure)
    ok: bool = False  # the data moved: the new folio replaces the old
    subpages: tuple[int, ...] = ()  # for each entry in `mapped`, its subpage's offset
    pmdval: Pmd | None = None  # the huge PMD as set_pmd_migration_entry read it (pre-5.6)


MIGRATE = Machine(Regs)


def regs(ctx: Ctx) -> Regs:
    return ctx.regs(Regs)


def isolate(ctx: Ctx) -> Effect:
    pte = ctx.w.pte(ctx.proc, ctx.p("addr"))
    index = pte.page if pte is not None and pte.present and pte.page != ZERO_PAGE else -1
    # migrate_pages works on the folio: the head of a large one.
    index = ctx.w.folio(index)
    if index < 0 or not ctx.w.page(index).lru or not refs.try_get(ctx, index):
        ctx.next_op()
        return ctx.effect("isolate_lru_folio", "no page on an LRU list there: nothing to migrate")
    p = ctx.w.page(index)
    refs.update(ctx, index, p.evolve(lru=""))
    ctx.goto(lock, page=index, lru=p.lru)
    return ctx.effect(
        "isolate_lru_folio",
        f"{page_name(index)} isolated for migration ({refs.refs_note(ctx, index)})",
    )


@MIGRATE.step
def lock(ctx: Ctx) -> Effect | Blocked:
    index = regs(ctx).page
    p = ctx.w.page(index)
    if p.locker and p.locker != ctx.name:
        return Blocked(f"waits for the folio lock of {page_name(index)}, held by {p.locker}")
    refs.update(ctx, index, p.set(LOCKED).evolve(locker=ctx.name))
    ctx.goto(unmap)
    return ctx.effect("folio_lock", f"{ctx.name} locks {page_name(index)}")


@MIGRATE.step
def unmap(ctx: Ctx) -> Effect | Blocked:
    index = regs(ctx).page
    p = ctx.w.page(index)
    mappers = ctx.w.mappers(index)
    for proc, _, _ in mappers:
        pr = ctx.w.proc(proc)
        if pr is not None and pr.ptl and pr.ptl != ctx.name:
            return Blocked(f"waits for the PTE lock of {proc}, held by {pr.ptl}")
    if ctx.cfg.on("anon_exclusive") and p.has(ANON_EXCLUSIVE) and p.maybe_dma_pinned():
        release_pmd_lock(ctx)
        ctx.goto(putback, ok=False)
        return ctx.effect(
            "try_to_migrate_one",
            f"page_try_share_anon_rmap fails: {page_name(index)} may be pinned, stays mapped",
        )
    read = regs(ctx).pmdval
    where = thp.huge_pmd_of(ctx, index) if p.order else None
    if (
        where is not None
        and read is None
        and ctx.cfg.on("thp_migration")
        and not ctx.cfg.on("pmd_migration_entry_atomic")
    ):
        # Before 8a8683ad9ba4: pmdval = *pvmw->pmd, then pmdp_invalidate, under the PMD
        # lock page_vma_mapped_walk took; the PMD stays present and writable in between.
        proc, region = where
        owner = ctx.w.proc(proc)
        assert owner is not None
        pmd = ctx.w.pmd(proc, region)
        ctx.w = ctx.w.set_proc(owner.evolve(ptl=ctx.name))
        ctx.goto(unmap, pmdval=pmd)
        return ctx.effect(
            "set_pmd_migration_entry",
            f"takes the PMD lock of {region} and reads the PMD (pmdval = *pvmw->pmd): "
            f"{'dirty' if pmd.dirty else 'clean'}; pmdp_invalidate comes next",
        )
    saved = []
    offsets = []
    if p.order:
        for proc, region, pmd in ctx.w.pmds:
            if pmd.kind != "huge" or pmd.page != index:
                continue
            if ctx.cfg.on("thp_migration"):
                # try_to_migrate_one on a PMD mapping: set_pmd_migration_entry.
                bits = read if (proc, region) == where else None
                set_pmd_migration_entry(ctx, proc, region, index, bits)
                saved.append((proc, region))
                offsets.append(0)
            else:
                # Before 4.14 the THP was split first (modelled as TTU_SPLIT_HUGE_PMD).
                thp.split_pmd(ctx, proc, region)
        mappers = [m for i in range(p.nr) for m in ctx.w.mappers(index + i)]
    for proc, addr, pte in mappers:
        # The migration entry replaces the PTE only: the VMA (a MAP_SHARED file binding
        # included) stays, so a failed or finished migration restores a file mapping.
        ctx.w = ctx.w.set_pte(
            proc, addr, pte.evolve(present=False, migration=True, dirty=False, young=False)
        )
        if pte.dirty:
            refs.mark_dirty(ctx, index)  # try_to_migrate_one: folio_mark_dirty
        sub = ctx.w.page(pte.page)
        refs.update(ctx, pte.page, sub.evolve(mapcount=sub.mapcount - 1))
        refs.put(ctx, index, what="try_to_migrate_one")
        saved.append((proc, addr))
        offsets.append(pte.page - index)
    ctx.goto(move, mapped=tuple(saved), subpages=tuple(offsets))
    if any("#" not in a for _, a in saved) and p.order:
        return ctx.effect(
            "try_to_migrate_one",
            f"set_pmd_migration_entry: the huge PMD of {page_name(index)} becomes a PMD "
            f"migration entry ({refs.refs_note(ctx, index)})",
        )
    return ctx.effect(
        "try_to_migrate_one",
        f"PTE(s) of {page_name(index)} replaced by migration entries "
        f"({refs.refs_note(ctx, index)})",
    )


def release_pmd_lock(ctx: Ctx) -> None:
    """Drop a PMD lock the pre-5.6 set_pmd_migration_entry read took, if this actor holds one."""
    for p in ctx.w.procs:
        if p.ptl == ctx.name:
            ctx.w = ctx.w.set_proc(p.evolve(ptl=""))


def set_pmd_migration_entry(
    ctx: Ctx, proc: str, region: str, index: int, bits: Pmd | None = None
) -> None:
    """The huge PMD becomes a PMD migration entry: pmdp_invalidate (its dirty bit goes to
    the folio; `bits`, the PMD as read before it, before 8a8683ad9ba4),
    folio_remove_rmap_pmd and the PMD's reference dropped."""
    pmd = ctx.w.pmd(proc, region)
    if bits is not None:
        pmd = pmd.evolve(write=bits.write, dirty=bits.dirty)
    entry = Pmd(kind="migration", page=index, write=pmd.write, table=pmd.table)
    ctx.w = ctx.w.set_pmd(proc, region, entry)
    release_pmd_lock(ctx)
    if pmd.dirty:
        refs.mark_dirty(ctx, index)
    folio = ctx.w.page(index)
    refs.update(ctx, index, folio.evolve(entire=folio.entire - 1))
    refs.put(ctx, index, what="set_pmd_migration_entry")


def remove_migration_pmds(ctx: Ctx, index: int, dst: int) -> int:
    """remove_migration_pmd for every PMD migration entry of the folio `index` (the rmap
    walk finds them all), and remove_migration_pte for the PTE migration entries a split of
    such an entry left (__split_huge_pmd_locked on a migration entry). Returns how many."""
    nr = ctx.w.page(index).nr
    done = 0
    for proc, region, pmd in ctx.w.pmds:
        if pmd.kind == "migration" and pmd.page == index:
            huge = Pmd(kind="huge", page=dst, write=pmd.write, table=pmd.table)
            ctx.w = ctx.w.set_pmd(proc, region, huge)
            refs.get(ctx, dst)
            d = ctx.w.page(dst)
            refs.update(ctx, dst, d.evolve(entire=d.entire + 1))
            done += 1
    for proc, addr, pte in ctx.w.ptes:
        if pte.migration and index <= pte.page < index + nr and "#" in addr:
            if ctx.w.pmd(proc, addr.partition("#")[0]).kind != "table":
                continue
            sub = dst + pte.page - index
            ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(page=sub, present=True, migration=False))
            refs.get(ctx, sub)
            s = ctx.w.page(sub)
            refs.update(ctx, sub, s.evolve(mapcount=s.mapcount + 1))
            done += 1
    return done


def cache_of(ctx: Ctx, index: int) -> str:
    """The file whose page-cache slot holds the page, or ""."""
    for name, f in ctx.w.files:
        if f.cache == index:
            return name
    return ""


def expected_refs(ctx: Ctx, p: Page, cached: str) -> int:
    """folio_expected_refs (6.x) / expected_page_refs (5.x): the isolation reference, plus
    one for the mapping's slot (page cache or swap cache), plus one for PG_private (buffers)."""
    if not (cached or p.has(SWAPCACHE)):
        return 1
    return 2 + (1 if p.has(PRIVATE) else 0)


@MIGRATE.step
def move(ctx: Ctx) -> Effect:
    index = regs(ctx).page
    p = ctx.w.page(index)
    cached = cache_of(ctx, index)
    expected = expected_refs(ctx, p, cached)
    if ctx.cfg.on("migrate_refcount_check") and p.ref != expected:
        ctx.goto(remove_ptes, target=index, ok=False)
        return ctx.effect(
            "migrate_folio",
            f"ref={p.ref} but {expected} expected: someone holds {page_name(index)}, -EAGAIN",
        )
    if cached or p.has(SWAPCACHE):
        return move_mapping(ctx, index, p, cached)
    if p.order:
        return move_large(ctx, index, p)
    new = Page(ref=1, flags=p.flags & ~(LOCKED | SWAPCACHE), data=p.data, owner=p.owner)
    ctx.w, dst = ctx.w.new_page(new)
    ctx.goto(remove_ptes, target=dst, ok=True)
    return ctx.effect(
        "migrate_folio", f"copies {p.data!r} from {page_name(index)} to new {page_name(dst)}"
    )


def move_large(ctx: Ctx, index: int, p: Page) -> Effect:
    """folio_migrate_mapping and the copy for an anon large folio (no mapping).

    A folio on the deferred split queue must come off it. From 6.10 (be9581ea8c05) that
    happens with the refcount frozen at the expected count, so deferred_split_scan's
    folio_try_get cannot take it meanwhile, and a scanner's reference makes the freeze
    fail (-EAGAIN). In 6.7-6.9 (9bcef5973e31) mem_cgroup_migrate unqueued it later,
    after a plain refcount check, even from a scanner's private list."""
    frozen = ctx.cfg.on("migrate_unqueue_frozen")
    note = ""
    if frozen and index in ctx.w.deferred:
        ctx.w = ctx.w.evolve(deferred=tuple(d for d in ctx.w.deferred if d != index))
        note = "; folio_undo_large_rmappable, frozen: off the deferred split queue"
    data = tuple(ctx.w.page(index + i).data for i in range(p.nr))
    tails = ctx.w.page(index + 1).flags & ANON_EXCLUSIVE if p.nr > 1 else 0
    head = Page(ref=1, flags=p.flags & ~(LOCKED | SWAPCACHE), owner=p.owner)
    ctx.w, dst = ctx.w.new_folio(head, data, tail_flags=tails)
    later = not frozen and ctx.cfg.on("migrate_unqueue_deferred")
    ctx.goto(memcg_migrate if later else remove_ptes, target=dst, ok=True)
    return ctx.effect(
        "migrate_folio",
        f"copies large folio {page_name(index)} to new {page_name(dst)}{note}",
    )


@MIGRATE.step
def memcg_migrate(ctx: Ctx) -> Effect:
    index = regs(ctx).page
    ctx.goto(remove_ptes)
    if thp.on_scan_list(ctx, index):
        ctx.violate(
            "kernel_bug",
            f"mem_cgroup_migrate: folio_undo_large_rmappable unlinks {page_name(index)} from "
            "deferred_split_scan's private list without its lock (list_del corruption, "
            "then a double free or 'Bad page state')",
        )
        return ctx.effect("mem_cgroup_migrate", "unlinks the folio from the scanner's own list")
    if index in ctx.w.deferred:
        ctx.w = ctx.w.evolve(deferred=tuple(d for d in ctx.w.deferred if d != index))
        return ctx.effect(
            "mem_cgroup_migrate", f"folio_undo_large_rmappable: {page_name(index)} off the queue"
        )
    return ctx.effect("mem_cgroup_migrate", f"{page_name(index)} is on no deferred split queue")


def move_mapping(ctx: Ctx, index: int, p: Page, name: str) -> Effect:
    """A folio in the page cache of `name` (or, with name "", in the swap cache).

    folio_migrate_mapping replaces the slot by the new folio, which takes the cache
    reference, PG_dirty and PG_swapcache with its entry; for a file (buffer_migrate_folio)
    the buffers move over with PG_private (attach on the new folio, detach on the old);
    then the data is copied. The old folio keeps only the migration's reference.
    """
    moved = p.flags & (DIRTY | PRIVATE | SWAPCACHE)
    new = Page(
        ref=1 + 1 + (1 if moved & PRIVATE else 0),
        flags=(p.flags & ~(LOCKED | DIRTY | PRIVATE | SWAPCACHE)) | moved,
        data=p.data,
        owner=p.owner,
        swap=p.swap,
    )
    ctx.w, dst = ctx.w.new_page(new)
    old = ctx.w.page(index)
    refs.update(ctx, index, old.clear(DIRTY | PRIVATE | SWAPCACHE).evolve(ref=1, swap=-1))
    if name:
        ctx.w = ctx.w.set_file(name, ctx.w.file(name).evolve(cache=dst))
        where = f"the page cache of {name}"
    else:
        ctx.w = ctx.w.set_slot(p.swap, ctx.w.swap[p.swap].evolve(cache=dst))
        where = f"the swap cache (slot {p.swap})"
    ctx.goto(remove_ptes, target=dst, ok=True)
    return ctx.effect(
        "migrate_folio",
        f"folio_migrate_mapping: {where} now holds new {page_name(dst)}; "
        f"copies {p.data!r} from {page_name(index)}"
        + ("; the buffers move with PG_private" if moved & PRIVATE else ""),
    )


@MIGRATE.step
def remove_ptes(ctx: Ctx) -> Effect | Blocked:
    index, dst = regs(ctx).page, regs(ctx).target
    for proc, region, pmd in ctx.w.pmds:
        owner = ctx.w.proc(proc)
        entry = pmd.kind in ("migration", "invalid_migration") and pmd.page == index
        if entry and owner is not None and owner.ptl and owner.ptl != ctx.name:
            # page_vma_mapped_walk takes the PMD lock to look at a PMD migration entry.
            return Blocked(
                f"remove_migration_pmd waits for the PMD lock of {region}, held by {owner.ptl}"
            )
    offsets = regs(ctx).subpages or (0,) * len(regs(ctx).mapped)
    for (proc, addr), offset in zip(regs(ctx).mapped, offsets, strict=True):
        if "#" not in addr and ctx.w.page(index).order:
            continue  # a PMD migration entry: below
        pte = ctx.w.pte(proc, addr)
        if pte is None or not pte.migration:
            continue
        # remove_migration_pte rebuilds the PTE in the same VMA (file binding kept).
        sub = dst + offset
        ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(page=sub, present=True, migration=False))
        refs.get(ctx, sub)
        p = ctx.w.page(sub)
        refs.update(ctx, sub, p.evolve(mapcount=p.mapcount + 1))
    if any("#" not in a for _, a in regs(ctx).mapped) and ctx.w.page(index).order:
        remove_migration_pmds(ctx, index, dst)
    if regs(ctx).ok:
        ctx.w = ctx.w.evolve(migrated=tuple(sorted({*ctx.w.migrated, index})))
    ctx.goto(putback)
    return ctx.effect("remove_migration_ptes", f"the PTE(s) now map {page_name(dst)}")


@MIGRATE.step
def putback(ctx: Ctx) -> Effect:
    index = regs(ctx).page
    p = ctx.w.page(index)
    lru = regs(ctx).lru
    p = p.clear(LOCKED).evolve(locker="")
    if regs(ctx).ok:
        dst = regs(ctx).target
        refs.update(ctx, index, p)
        d = ctx.w.page(dst)
        refs.update(ctx, dst, d.evolve(lru=lru))
        refs.put(ctx, dst, what="folio_putback_lru")
        freed = refs.put(ctx, index, what="migrate_folio_done")
        ctx.next_op()
        tail = "freed" if freed else f"still alive ({refs.refs_note(ctx, index)})"
        return ctx.effect("migrate_folio_done", f"old {page_name(index)} released: {tail}")
    refs.update(ctx, index, p.evolve(lru=lru))
    refs.put(ctx, index, what="folio_putback_lru")
    ctx.next_op()
    return ctx.effect(
        "folio_putback_lru", f"{page_name(index)} back on the {lru} LRU, not migrated"
    )


@op(
    "migrate",
    (ADDR, PROC),
    (
        "isolate_lru_folio",
        "folio_lock",
        "try_to_migrate_one",
        "set_pmd_migration_entry",
        "migrate_folio",
        "mem_cgroup_migrate",
        "remove_migration_ptes",
        "migrate_folio_done",
        "folio_putback_lru",
    ),
    refs_held=holding("isolation", *MIGRATE.steps.values()),
)
def migrate_op(ctx: Ctx) -> Effect | Blocked:
    """migrate_pages on the page mapped at `addr`: isolate, unmap, check refs, copy, remap."""
    return MIGRATE.resume(ctx, isolate)
