"""The page cache: MAP_SHARED file mappings, lockless lookup, truncate and writeback.

filemap_lookup follows the lockless page-cache protocol (mm/filemap.c): load
the slot, folio_try_get (inc-not-zero), then xas_reload to make sure the slot
still holds that folio, else put it and retry. writeback is
folio_clear_dirty_for_io (page_mkclean) + ->writepage + end_page_writeback, with
ext4's rule that a dirty page must have buffers attached (R8).
"""

from __future__ import annotations

from typing import NamedTuple

from engine.kernel import oracle, refs
from engine.kernel.machine import (
    ADDR,
    FILE,
    PROC,
    Blocked,
    Ctx,
    Effect,
    Machine,
    Param,
    holding,
    op,
)
from engine.state import DIRTY, LOCKED, NO_PAGE, PRIVATE, RECLAIM, WRITEBACK, Pte, page_name

LOOKUP_RETRIES = 2


class Lookup(NamedTuple):
    """filemap_get_read_batch's lookup of one folio, between its steps."""

    page: int = NO_PAGE  # the folio xas_load found
    legal: tuple[str, ...] = ()  # what a read could return when it found it
    tries: int = 0  # retries after a failed try-get or a changed slot
    gen: int = -1  # the folio's generation when the speculative reference was taken


class Locked(NamedTuple):
    """truncate and writeback: the locked folio they work on."""

    page: int = NO_PAGE


LOOKUP = Machine(Lookup)
TRUNCATE = Machine(Locked)
WRITEBACK_OP = Machine(Locked)


def lookup(ctx: Ctx) -> Lookup:
    return ctx.regs(Lookup)


def writepage(ctx: Ctx, index: int) -> tuple[bool, str]:
    """ext4_writepage on a page whose PG_dirty was just cleared for I/O: (written, note).

    From 6.2 (dae999602eeb) ext4 has only ->writepages, which the flusher calls; reclaim
    never gets here then.
    """
    p = ctx.w.page(index)
    name = p.owner.removeprefix("file:")
    fn = "ext4_writepages" if ctx.cfg.on("ext4_no_writepage") else "ext4_writepage"
    if not p.has(PRIVATE):
        if not ctx.cfg.on("ext4_no_bug_on_unbuffered_dirty"):
            ctx.violate(
                "kernel_bug",
                f"kernel BUG at fs/ext4/inode.c: {fn} finds dirty {page_name(index)} "
                "without buffers",
            )
            return False, f"{fn}: {page_name(index)} has no buffers: BUG_ON"
        return False, (
            f"{fn}: {page_name(index)} has no buffers: WARN, drop the dirty data (cc5095747edf)"
        )
    ctx.w = ctx.w.set_file(name, ctx.w.file(name).evolve(disk=p.data))
    return True, f"{fn} writes {p.data!r} to {name} on disk"


@op("mmap_file", (ADDR, FILE, PROC), ("mmap",), setup_only=True)
def mmap_file_op(ctx: Ctx) -> Effect:
    """Map a file's page MAP_SHARED at `addr` (faulted in on first access)."""
    proc, addr, name = ctx.proc, ctx.p("addr"), ctx.p("file")
    ctx.w = ctx.w.set_pte(proc, addr, Pte(file=name))
    ctx.next_op()
    return ctx.effect("mmap", f"{proc} maps {name} MAP_SHARED at {addr}")


def at_eof(ctx: Ctx, name: str, function: str) -> Effect | None:
    """filemap_read: a read at or past i_size returns 0 bytes and observes nothing."""
    if ctx.w.file(name).size > 0:
        return None
    ctx.next_op()
    return ctx.effect(function, f"the read of {name} is past its end (i_size 0): returns 0 bytes")


@LOOKUP.step
def lookup_load(ctx: Ctx) -> Effect:
    name = ctx.p("file")
    eof = at_eof(ctx, name, "xas_load")
    if eof:
        return eof
    index = ctx.w.file(name).cache
    if index < 0:
        disk = ctx.w.file(name).disk
        oracle.observe(ctx, f"file:{name}", disk, f"a read of {name}")
        ctx.next_op()
        return ctx.effect("xas_load", f"no page cached for {name}: read {disk!r} from disk")
    exp = ctx.w.expected(f"file:{name}")
    ctx.goto(lookup_get, page=index, legal=exp.allowed if exp else ())
    return ctx.effect(
        "xas_load", f"{ctx.name} finds {page_name(index)} in the page cache of {name}"
    )


@LOOKUP.step
def lookup_get(ctx: Ctx) -> Effect:
    index, tries = lookup(ctx).page, lookup(ctx).tries
    if not refs.try_get(ctx, index):
        if tries + 1 >= LOOKUP_RETRIES:
            ctx.next_op()
            return ctx.effect("folio_try_get", f"{page_name(index)} is frozen or free: give up")
        ctx.goto(lookup_load, tries=tries + 1)
        return ctx.effect("folio_try_get", f"{page_name(index)} is frozen or free: retry")
    ctx.goto(lookup_reload, gen=ctx.w.page(index).gen)
    return ctx.effect(
        "folio_try_get",
        f"speculative reference on {page_name(index)} ({refs.refs_note(ctx, index)})",
    )


@LOOKUP.step
def lookup_reload(ctx: Ctx) -> Effect:
    name, index, gen = ctx.p("file"), lookup(ctx).page, lookup(ctx).gen
    if ctx.cfg.on("pagecache_reload") and ctx.w.file(name).cache != index:
        refs.put(ctx, index, gen=gen, what="folio_put")
        tries = lookup(ctx).tries + 1
        if tries > LOOKUP_RETRIES:
            ctx.next_op()
            return ctx.effect("xas_reload", f"the slot no longer holds {page_name(index)}: give up")
        ctx.goto(lookup_load, tries=tries)
        return ctx.effect(
            "xas_reload", f"the slot no longer holds {page_name(index)}: put it, retry"
        )
    ctx.goto(lookup_copy)
    return ctx.effect("xas_reload", f"the slot still holds {page_name(index)}")


@LOOKUP.step
def lookup_copy(ctx: Ctx) -> Effect:
    name, index, gen = ctx.p("file"), lookup(ctx).page, lookup(ctx).gen
    if ctx.w.file(name).size == 0:
        # filemap_read re-reads i_size after it has the folios: truncated meanwhile.
        refs.put(ctx, index, gen=gen, what="folio_put")
        ctx.next_op()
        return ctx.effect(
            "copy_page_to_iter", f"{name} was truncated to 0 meanwhile: 0 bytes; folio_put"
        )
    value = ctx.w.page(index).data
    # The read took effect when it found the page: what was legal then is still legal.
    if value not in lookup(ctx).legal:
        oracle.observe(ctx, f"file:{name}", value, f"a read of {name}")
    refs.put(ctx, index, gen=gen, what="folio_put")
    ctx.next_op()
    return ctx.effect("copy_page_to_iter", f"the read of {name} returns {value!r}; folio_put")


@op(
    "filemap_lookup",
    (FILE,),
    ("xas_load", "folio_try_get", "xas_reload", "copy_page_to_iter"),
    refs_held=holding("speculative", lookup_reload, lookup_copy),
)
def filemap_lookup_op(ctx: Ctx) -> Effect | Blocked:
    """Lockless page-cache lookup (a read(2)): xas_load, folio_try_get, xas_reload, copy."""
    return LOOKUP.resume(ctx, lookup_load)


def lock_cached(ctx: Ctx, function: str) -> tuple[int, Effect | Blocked | None]:
    """find_lock_entries / folio_lock on the file's cached page, if any."""
    name = ctx.p("file")
    index = ctx.w.file(name).cache
    if index < 0:
        ctx.next_op()
        return index, ctx.effect(function, f"nothing cached for {name}")
    p = ctx.w.page(index)
    if p.locker and p.locker != ctx.name:
        return index, Blocked(f"waits for the folio lock of {page_name(index)}, held by {p.locker}")
    if not refs.try_get(ctx, index):
        ctx.next_op()
        return index, ctx.effect(function, f"{page_name(index)} is being freed: skip")
    refs.update(ctx, index, ctx.w.page(index).set(LOCKED).evolve(locker=ctx.name))
    return index, None


def unlock_put(ctx: Ctx, index: int) -> bool:
    p = ctx.w.page(index)
    if p.locker == ctx.name:
        refs.update(ctx, index, p.clear(LOCKED).evolve(locker=""))
    return refs.put(ctx, index, what="folio_put")


def truncate_start(ctx: Ctx) -> Effect | Blocked:
    name = ctx.p("file")
    if ctx.flagp("eof") and ctx.w.file(name).size > 0:
        # truncate_setsize: i_size first, then the page cache; a fault in between already
        # gets SIGBUS (filemap_fault checks i_size before it looks the page up).
        ctx.w = ctx.w.set_file(name, ctx.w.file(name).evolve(size=0))
        return ctx.effect("i_size_write", f"{ctx.name} sets the size of {name} to 0")
    index, early = lock_cached(ctx, "find_lock_entries")
    if early:
        return early
    ctx.goto(truncate_remove, page=index)
    return ctx.effect("find_lock_entries", f"{ctx.name} takes and locks {page_name(index)}")


@TRUNCATE.step
def truncate_remove(ctx: Ctx) -> Effect:
    name, index = ctx.p("file"), ctx.regs(Locked).page
    for proc, addr, pte in ctx.w.mappers(index):
        ctx.w = ctx.w.set_pte(proc, addr, Pte(file=pte.file))
        p = ctx.w.page(index)
        refs.update(ctx, index, p.evolve(mapcount=p.mapcount - 1, ref=p.ref - 1))
    p = ctx.w.page(index)
    drop = 2 if p.has(PRIVATE) else 1
    # truncate_cleanup_folio + filemap_remove_folio: the folio leaves the file (buffers
    # invalidated, dirty cancelled, cache reference dropped) but stays on its LRU list
    # until its last folio_put, so reclaim may still meet the orphan.
    refs.update(ctx, index, p.clear(PRIVATE | DIRTY).evolve(ref=p.ref - drop))
    ctx.w = ctx.w.set_file(name, ctx.w.file(name).evolve(cache=-1, disk="0"))
    # A GUP taken before the truncate now holds an orphan: its DMA is no write to the file
    # (the epoch bump, as munmap / MADV_DONTNEED do for an anon address, R13).
    ctx.w = oracle.zap(ctx.w, f"file:{name}", unmapped=False)
    ctx.goto(truncate_unlock)
    return ctx.effect(
        "truncate_inode_folio",
        f"{page_name(index)} unmapped and deleted from the page cache of {name} "
        f"({refs.refs_note(ctx, index)})",
    )


@TRUNCATE.step
def truncate_unlock(ctx: Ctx) -> Effect:
    index = ctx.regs(Locked).page
    freed = unlock_put(ctx, index)
    ctx.next_op()
    tail = ": the last reference, freed" if freed else f" ({refs.refs_note(ctx, index)})"
    return ctx.effect("folio_unlock", f"{ctx.name} unlocks and puts {page_name(index)}{tail}")


@op(
    "truncate",
    (FILE, Param("eof", "bool")),
    ("i_size_write", "find_lock_entries", "truncate_inode_folio", "folio_unlock"),
)
def truncate_op(ctx: Ctx) -> Effect | Blocked:
    """Punch the file's only page out (fallocate PUNCH_HOLE), or with `eof: true` truncate
    the file to size 0 (truncate(2): truncate_setsize, then truncate_pagecache).

    The page leaves the page cache (dirty data is discarded). After a hole punch a later
    read or fault sees zeros from disk; after a truncate to EOF a fault gets SIGBUS and a
    read(2) returns 0 bytes.
    """
    return TRUNCATE.resume(ctx, truncate_start)


def wb_start(ctx: Ctx) -> Effect | Blocked:
    index, early = lock_cached(ctx, "folio_lock")
    if early:
        return early
    ctx.goto(wb_clear, page=index)
    return ctx.effect("folio_lock", f"{ctx.name} locks {page_name(index)} for writeback")


@WRITEBACK_OP.step
def wb_clear(ctx: Ctx) -> Effect:
    index = ctx.regs(Locked).page
    dirty_ptes = 0
    for proc, addr, pte in ctx.w.mappers(index):
        dirty_ptes += pte.dirty
        ctx.w = ctx.w.set_pte(proc, addr, pte.evolve(write=False, dirty=False))
    p = ctx.w.page(index)
    if not (p.has(DIRTY) or dirty_ptes):
        unlock_put(ctx, index)
        ctx.next_op()
        return ctx.effect(
            "folio_clear_dirty_for_io", f"{page_name(index)} is clean: nothing to write"
        )
    refs.update(ctx, index, p.clear(DIRTY))
    ctx.goto(wb_write)
    return ctx.effect(
        "folio_clear_dirty_for_io",
        f"page_mkclean write-protects {page_name(index)}'s PTEs; PG_dirty cleared for I/O",
    )


@WRITEBACK_OP.step
def wb_write(ctx: Ctx) -> Effect:
    index = ctx.regs(Locked).page
    written, note = writepage(ctx, index)
    if written:
        refs.update(ctx, index, ctx.w.page(index).set(WRITEBACK))
    unlock = ctx.w.page(index)
    refs.update(ctx, index, unlock.clear(LOCKED).evolve(locker=""))
    ctx.goto(wb_end)
    return ctx.effect("writepage", note)


@WRITEBACK_OP.step
def wb_end(ctx: Ctx) -> Effect:
    index = ctx.regs(Locked).page
    # folio_end_writeback also clears PG_reclaim (folio_rotate_reclaimable).
    refs.update(ctx, index, ctx.w.page(index).clear(WRITEBACK | RECLAIM))
    freed = refs.put(ctx, index, what="folio_put")
    ctx.next_op()
    tail = "; the last reference, freed" if freed else ""
    return ctx.effect("folio_end_writeback", f"writeback of {page_name(index)} completes{tail}")


@op(
    "writeback",
    (FILE,),
    ("folio_lock", "folio_clear_dirty_for_io", "writepage", "folio_end_writeback"),
)
def writeback_op(ctx: Ctx) -> Effect | Blocked:
    """Write the file's dirty page back: clear_page_dirty_for_io, writepage, end_page_writeback."""
    return WRITEBACK_OP.resume(ctx, wb_start)
