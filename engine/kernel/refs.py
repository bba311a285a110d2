"""Reference counting as the kernel does it, with the invariants that guard it.

folio_get / folio_put / folio_try_get, freeing at zero, and the checks that a
page is still the one a holder thinks it is (no access after free, no put that
drives the count below zero).

Every count lives on the folio: a reference taken or dropped through a subpage of a
large folio (get_page/put_page on a tail) moves its head's count, as page_folio() makes
it do in the kernel, while the identity checks look at the subpage itself.
"""

from __future__ import annotations

from engine.kernel.machine import Ctx
from engine.state import DIRTY, GUP_PIN_COUNTING_BIAS, RECLAIM, ZERO_PAGE, Page, page_name


def live(ctx: Ctx, index: int, gen: int, what: str) -> bool:
    """An access to a page through a reference: flag it if the page was freed or reused."""
    if index == ZERO_PAGE:
        return True
    page = ctx.w.page(index)
    if page.free:
        ctx.violate(
            "use_after_free", f"{ctx.name}: {what} touches {page_name(index)} after it was freed"
        )
        return False
    if page.gen != gen:
        ctx.violate(
            "use_after_free",
            f"{ctx.name}: {what} touches {page_name(index)}, freed and reallocated to "
            f"{page.owner.split(':', 1)[-1]}",
        )
        return False
    return True


def get(ctx: Ctx, index: int, n: int = 1) -> None:
    index = ctx.w.folio(index)
    page = ctx.w.page(index)
    ctx.w = ctx.w.put_page_state(index, page.evolve(ref=page.ref + n))


def try_get(ctx: Ctx, index: int, n: int = 1) -> bool:
    """folio_try_get / folio_ref_try_add_rcu: atomic inc-not-zero (fails on free or frozen)."""
    if index == ZERO_PAGE:
        return True
    if ctx.w.page(ctx.w.folio(index)).ref == 0:
        return False
    get(ctx, index, n)
    return True


def put(ctx: Ctx, index: int, n: int = 1, gen: int | None = None, what: str = "folio_put") -> bool:
    """Drop n references; free the page at zero. Returns True when it freed the page."""
    if index == ZERO_PAGE:
        return False
    page = ctx.w.page(index)
    if page.free:
        ctx.violate(
            "use_after_free",
            f"{ctx.name}: {what} drops a reference on {page_name(index)}, already freed",
        )
    elif gen is not None and page.gen != gen:
        ctx.violate(
            "use_after_free",
            f"{ctx.name}: {what} drops a reference on {page_name(index)}, which was freed "
            f"and reallocated to {page.owner.split(':', 1)[-1]}",
        )
    index = ctx.w.folio(index)
    page = ctx.w.page(index)
    if page.ref - n < 0:
        ctx.violate(
            "refcount_underflow",
            f"{ctx.name}: {what} on {page_name(index)} takes its refcount below 0",
        )
        return False
    page = page.evolve(ref=page.ref - n)
    ctx.w = ctx.w.put_page_state(index, page)
    if page.ref == 0 and not page.free:
        ctx.w = ctx.w.free_page(index)
        return True
    return False


def pin_bias(ctx: Ctx, index: int) -> int:
    """What a pin adds to the refcount: GUP_PIN_COUNTING_BIAS on a small folio; 1 on a
    large one, whose pins _pincount counts exactly (folio_has_pincount)."""
    return 1 if ctx.w.page(ctx.w.folio(index)).order else GUP_PIN_COUNTING_BIAS


def pin(ctx: Ctx, index: int) -> None:
    index = ctx.w.folio(index)
    page = ctx.w.page(index)
    bias = pin_bias(ctx, index)
    ctx.w = ctx.w.put_page_state(index, page.evolve(ref=page.ref + bias, pins=page.pins + 1))


def unpin(ctx: Ctx, index: int, gen: int) -> bool:
    page = ctx.w.page(index)
    bias = pin_bias(ctx, index)
    folio = ctx.w.folio(index)
    head = ctx.w.page(folio)
    if page.gen == gen and not page.free and head.pins > 0:
        ctx.w = ctx.w.put_page_state(folio, head.evolve(pins=head.pins - 1))
    return put(ctx, index, bias, gen, "unpin_user_page")


def update(ctx: Ctx, index: int, page: Page) -> None:
    ctx.w = ctx.w.put_page_state(index, page)


def refs_note(ctx: Ctx, index: int) -> str:
    if index == ZERO_PAGE:
        return "zero page"
    page = ctx.w.page(index)
    if page.free:
        return f"{page_name(index)} freed"
    folio = ctx.w.page(ctx.w.folio(index))
    pins = f" pins={folio.pins}" if folio.pins else ""
    if folio.order:
        entire = f" entire={folio.entire}" if folio.entire else ""
        return f"folio ref={folio.ref}{pins}{entire} map={page.mapcount}"
    return f"ref={page.ref}{pins} map={page.mapcount}"


def mark_dirty(ctx: Ctx, index: int) -> None:
    """folio_mark_dirty: PG_dirty, and PG_reclaim cleared (mm/page-writeback.c), since a
    redirtied folio is no longer one reclaim can free as soon as its writeback ends."""
    index = ctx.w.folio(index)
    page = ctx.w.page(index)
    ctx.w = ctx.w.put_page_state(index, page.set(DIRTY).clear(RECLAIM))
