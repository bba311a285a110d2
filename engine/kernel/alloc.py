"""The page allocator handing a freed page to someone else (use-after-free made visible)."""

from __future__ import annotations

from engine.kernel.machine import Ctx, Effect, Param, op
from engine.state import Page, page_name


@op(
    "alloc_page",
    (
        Param("owner", "name", required=True, positional=True),
        Param("value", "value", required=True, positional=True),
    ),
    ("alloc_pages",),
)
def alloc_page_op(ctx: Ctx) -> Effect:
    """The allocator hands the most recently freed page to `owner`, who writes `value` into it."""
    owner, value = ctx.p("owner"), ctx.p("value")
    reused = bool(ctx.w.freed)
    ctx.w, index = ctx.w.new_page(Page(ref=1, owner=f"other:{owner}", data=value))
    ctx.w = ctx.w.add_writer(value, f"other={owner}")
    ctx.next_op()
    how = "reuses freed" if reused else "allocates a fresh"
    return ctx.effect(
        "alloc_pages", f"the allocator {how} {page_name(index)} for {owner}, who writes {value!r}"
    )
