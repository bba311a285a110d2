"""The lost-write oracle: which values each address and file may legally show.

Writes are ordered by the step at which they happen (a CPU store, or a device
write into a page GUP obtained for that address); the latest one is expected.
While a GUP for the address is outstanding a read may also see older values;
MADV_FREE adds zero-fill until the next write. A value outside the allowed set
is a lost write, or a data leak when another process (or owner) wrote it.
"""

from __future__ import annotations

from engine.kernel.machine import Ctx
from engine.state import Expected, World


def key_for(world: World, proc: str, addr: str) -> str:
    pte = world.pte(proc, addr)
    if pte is not None and pte.file:
        return f"file:{pte.file}"
    return f"{proc}:{addr}"


def who_of(key: str) -> str:
    return key.split(":", 1)[0]


def write(world: World, key: str, value: str, who: str) -> World:
    exp = world.expected(key) or Expected(allowed=(), latest=value)
    allowed = {value} | (set(exp.allowed) if exp.inflight else set())
    new = exp.evolve(allowed=tuple(sorted(allowed)), latest=value, lazy=False)
    return world.set_expected(key, new).add_writer(value, who)


def lazyfree(world: World, key: str) -> World:
    exp = world.expected(key)
    if exp is None:
        return world
    allowed = tuple(sorted(set(exp.allowed) | {"0"}))
    return world.set_expected(key, exp.evolve(allowed=allowed, lazy=True))


def zap(world: World, key: str, unmapped: bool) -> World:
    """munmap / MADV_DONTNEED of an anon address: zero-fill (or nothing) from now on."""
    exp = world.expected(key) or Expected(allowed=("0",), latest="0")
    if unmapped:
        new = exp.evolve(allowed=(), latest="", lazy=False, inflight=0, epoch=exp.epoch + 1)
    else:
        new = exp.evolve(allowed=("0",), latest="0", lazy=False, inflight=0, epoch=exp.epoch + 1)
    return world.set_expected(key, new)


def gup_begin(world: World, key: str) -> tuple[World, int]:
    exp = world.expected(key) or Expected(allowed=("0",), latest="0")
    return world.set_expected(key, exp.evolve(inflight=exp.inflight + 1)), exp.epoch


def gup_end(world: World, key: str, epoch: int) -> World:
    exp = world.expected(key)
    if exp is None or exp.epoch != epoch or exp.inflight == 0:
        return world
    inflight = exp.inflight - 1
    allowed = exp.at_rest() if inflight == 0 else exp.allowed
    return world.set_expected(key, exp.evolve(inflight=inflight, allowed=allowed))


def counts(world: World, key: str, epoch: int) -> bool:
    exp = world.expected(key)
    return exp is not None and exp.epoch == epoch


def device_allowed(exp: Expected) -> tuple[str, ...]:
    """What a device read through one GUP may return: the reading GUP itself is not a write
    in flight, so only the values of other outstanding GUPs' DMA may still be seen beside
    the latest write."""
    return exp.allowed if exp.inflight > 1 else exp.at_rest()


def observe(
    ctx: Ctx,
    key: str,
    value: str,
    what: str,
    *,
    allowed: tuple[str, ...] | None = None,
    stale: str = "",
) -> None:
    """A read (or the final look) at `key` returned `value`: is that legal?

    `allowed` narrows the oracle's set for a particular reader (a device, see
    device_allowed); `stale` is the sentence a lost write ends with.
    """
    exp = ctx.w.expected(key)
    if exp is None or not exp.allowed:
        return
    legal = exp.allowed if allowed is None else allowed
    if value in legal:
        return
    reader = who_of(key)
    writers = {who for v, who in ctx.w.writers if v == value}
    if reader == "file":
        # Any process mapping the file may write it; only another owner's data leaks.
        leak = bool(writers) and all(w.startswith("other=") for w in writers)
    else:
        leak = bool(writers) and reader not in writers
    shown = " or ".join(repr(v) for v in legal)
    if leak:
        by = ", ".join(sorted(w.removeprefix("other=") for w in writers))
        ctx.violate("data_leak", f"{what} gets {value!r}, written by {by}; expected {shown}")
    else:
        tail = f": {stale}" if stale else ""
        ctx.violate("lost_write", f"{what} gets {value!r}; the latest write was {shown}{tail}")


def cpu_read(ctx: Ctx, proc: str, addr: str, value: str, how: str = "") -> None:
    """A CPU load at addr returned `value`: legal for the oracle, and what the read op's
    `expect` says, if it says anything (`how`: through a TLB entry, for the sentence)."""
    observe(ctx, key_for(ctx.w, proc, addr), value, f"{proc} reading {addr}{how}")
    expect = ctx.p("expect")
    if expect and value != expect and not ctx.events:
        ctx.violate(
            "lost_write", f"{proc} reads {value!r} at {addr}; the scenario expects {expect!r}"
        )
