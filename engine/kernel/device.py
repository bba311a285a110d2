"""What a driver and its device do with the pages GUP gave them.

The device is not the MMU: it writes whatever page it holds, mapped or not, and
never touches a PTE dirty bit. Only the driver's set_page_dirty / unpin(dirty)
tells the kernel the page changed. Completing the I/O drops the reference
(put_page for FOLL_GET, unpin_user_pages for FOLL_PIN).
"""

from __future__ import annotations

from engine.kernel import oracle, refs
from engine.kernel.machine import PROC, Blocked, Ctx, Effect, Param, op
from engine.state import PRIVATE, ZERO_PAGE, page_name


def held_pages(ctx: Ctx) -> tuple[tuple[int, int], ...]:
    return ctx.me.held


def nothing_held(ctx: Ctx, function: str, what: str) -> Effect:
    ctx.next_op()
    return ctx.effect(function, f"{ctx.name} holds no page: {what} does nothing")


def lock_wait(ctx: Ctx) -> Blocked | None:
    for index, _ in held_pages(ctx):
        if index == ZERO_PAGE:
            continue
        page = ctx.w.page(index)
        if page.locker and page.locker != ctx.name and not page.free:
            return Blocked(f"waits for the folio lock of {page_name(index)}, held by {page.locker}")
    return None


def before_held(ctx: Ctx, function: str, what: str, locked: bool) -> Effect | Blocked | None:
    """What an op on the held pages does before touching them: nothing held ends it, and
    the _lock variants first wait for each page's lock (folio_lock)."""
    if not held_pages(ctx):
        return nothing_held(ctx, function, what)
    return lock_wait(ctx) if locked else None


def release(ctx: Ctx) -> None:
    """Forget the GUP: the address is no longer the target of an in-flight DMA."""
    ctx.w = oracle.gup_end(ctx.w, ctx.me.held_key, ctx.me.held_epoch)
    ctx.set_me(ctx.me.evolve(held=(), held_mode="", held_key="", held_epoch=0, dma=""))


@op(
    "dma_write",
    (Param("value", "value", required=True, positional=True),),
    ("dma_write",),
    needs="any",
)
def dma_write_op(ctx: Ctx) -> Effect | Blocked:
    """The device writes `value` into the page it holds (after any GUP, read-only ones too)."""
    value = ctx.p("value")
    if not held_pages(ctx):
        return nothing_held(ctx, "dma_write", "the device write")
    notes = []
    for index, gen in held_pages(ctx):
        if index == ZERO_PAGE:
            notes.append("the zero page (the write is lost in the shared zero page)")
            continue
        # A device writes whatever page it holds, freed or not; live() flags the latter.
        refs.live(ctx, index, gen, "the device write")
        refs.update(ctx, index, ctx.w.page(index).evolve(data=value))
        notes.append(page_name(index))
    key, epoch = ctx.me.held_key, ctx.me.held_epoch
    if oracle.counts(ctx.w, key, epoch):
        ctx.w = oracle.write(ctx.w, key, value, oracle.who_of(key))
    ctx.set_me(ctx.me.evolve(dma=value))
    ctx.next_op()
    return ctx.effect("dma_write", f"the device writes {value!r} into {', '.join(notes)}")


@op("dma_read", (), ("dma_read",), needs="any")
def dma_read_op(ctx: Ctx) -> Effect | Blocked:
    """The device reads the page it holds, checked like a CPU read of the GUP's address.

    The device reads whatever page GUP gave it, which is no longer the page the process
    sees once a fault COWed away from it (a read-only pin of a shared page before 5.19's
    unshare) or reclaim swapped it out: the value must still be one the process could
    legally read there now, else the device read stale data (a lost write).
    """
    if not held_pages(ctx):
        return nothing_held(ctx, "dma_read", "the device read")
    seen = []
    key, epoch = ctx.me.held_key, ctx.me.held_epoch
    for index, gen in held_pages(ctx):
        if index == ZERO_PAGE:
            value = "0"
        else:
            refs.live(ctx, index, gen, "the device read")
            value = ctx.w.page(index).data
        seen.append(repr(value))
        exp = ctx.w.expected(key)
        # After munmap/DONTNEED (a new epoch) the address no longer backs this DMA (R13).
        if exp is not None and oracle.counts(ctx.w, key, epoch) and not ctx.events:
            oracle.observe(
                ctx,
                key,
                value,
                f"the device reading through {ctx.name}'s GUP of {key}",
                allowed=oracle.device_allowed(exp),
                stale=f"the device read stale data from {page_name(index)}, "
                "not the page the process now sees there",
            )
    ctx.next_op()
    return ctx.effect("dma_read", f"the device reads {', '.join(seen)}")


@op(
    "set_page_dirty",
    (Param("lock", "bool"),),
    ("set_page_dirty", "set_page_dirty_lock"),
    needs="any",
)
def set_page_dirty_op(ctx: Ctx) -> Effect | Blocked:
    """set_page_dirty (bio_set_pages_dirty) or set_page_dirty_lock on the held page."""
    function = "set_page_dirty_lock" if ctx.flagp("lock") else "set_page_dirty"
    early = before_held(ctx, function, function, locked=ctx.flagp("lock"))
    if early:
        return early
    notes = []
    for index, gen in held_pages(ctx):
        if index == ZERO_PAGE:
            continue
        if refs.live(ctx, index, gen, function):
            page = ctx.w.page(index)
            refs.mark_dirty(ctx, index)
            bare = page.owner.startswith("file:") and not page.has(PRIVATE)
            notes.append(page_name(index) + (" (a file page without buffers)" if bare else ""))
    ctx.next_op()
    return ctx.effect(function, f"{ctx.name} marks {', '.join(notes) or 'nothing'} dirty")


@op("put_page", (), ("put_page",), needs="get")
def put_page_op(ctx: Ctx) -> Effect | Blocked:
    """Drop the FOLL_GET reference (I/O completion)."""
    if not held_pages(ctx):
        return nothing_held(ctx, "put_page", "put_page")
    notes = []
    for index, gen in held_pages(ctx):
        freed = refs.put(ctx, index, gen=gen, what="put_page")
        tail = ": the last reference, the page is freed" if freed else ""
        notes.append(f"{page_name(index)} ({refs.refs_note(ctx, index)}){tail}")
    release(ctx)
    ctx.next_op()
    return ctx.effect("put_page", f"{ctx.name} drops its reference on {', '.join(notes)}")


@op(
    "unpin",
    (Param("dirty", "bool"),),
    ("unpin_user_pages", "unpin_user_pages_dirty_lock"),
    needs="pin",
)
def unpin_op(ctx: Ctx) -> Effect | Blocked:
    """unpin_user_pages[_dirty_lock]: dirty the page under its lock if asked, then unpin."""
    dirty = ctx.flagp("dirty")
    function = "unpin_user_pages_dirty_lock" if dirty else "unpin_user_pages"
    early = before_held(ctx, function, "unpin", locked=dirty)
    if early:
        return early
    notes = []
    for index, gen in held_pages(ctx):
        if index == ZERO_PAGE:
            continue
        if dirty and refs.live(ctx, index, gen, "unpin_user_pages_dirty_lock"):
            refs.mark_dirty(ctx, index)
        freed = refs.unpin(ctx, index, gen)
        tail = ": the last reference, the page is freed" if freed else ""
        notes.append(f"{page_name(index)} ({refs.refs_note(ctx, index)}){tail}")
    release(ctx)
    ctx.next_op()
    return ctx.effect(function, f"{ctx.name} unpins {', '.join(notes)}")


@op("read_pipe", (PROC, Param("expect", "value")), ("pipe_read",), needs="pipe")
def read_pipe_op(ctx: Ctx) -> Effect | Blocked:
    """Read what the pipe's page holds (the page vmsplice handed to it), then release it."""
    if ctx.me.held_mode != "pipe":
        return nothing_held(ctx, "pipe_read", "reading the pipe")
    index, gen = held_pages(ctx)[0]
    if index == ZERO_PAGE:
        value = "0"
    else:
        refs.live(ctx, index, gen, "pipe_read")
        value = ctx.w.page(index).data
    oracle.observe(ctx, f"{ctx.proc}:pipe({ctx.name})", value, f"{ctx.proc} reading the pipe")
    expect = ctx.p("expect")
    if expect and value != expect and not ctx.events:
        ctx.violate("lost_write", f"the pipe holds {value!r}; the scenario expects {expect!r}")
    ctx.w = ctx.w.set_expected(f"{ctx.proc}:pipe({ctx.name})", None)
    if index != ZERO_PAGE:
        refs.put(ctx, index, gen=gen, what="pipe_buf_release")
    release(ctx)
    ctx.next_op()
    return ctx.effect("pipe_read", f"{ctx.proc} reads {value!r} from the pipe")
