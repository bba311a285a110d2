"""How an actor runs: operations made of atomic steps, one step per scheduling choice.

An operation (`gup_fast`, `shrink_folio_list`, ...) is a small state machine: its
step functions are registered on a `Machine`, the actor's `pc` names the step it runs
next (the function's own name; "start" before the op's first step), and its op-local
registers are one typed NamedTuple per machine, kept in the actor's state.

Running an actor performs exactly one atomic step and returns the new world together
with the kernel function that step models and one sentence about what it did, or the
reason the actor is blocked (a blocked actor is not enabled). A step function reads
the world through a `Ctx`, a mutable cursor over immutable worlds, and ends its step in
one of three ways, each said by a named call:

- `ctx.goto(next_step, **registers)` then `return ctx.effect(...)`: the step ends
  here, and the actor's next step is `next_step` (the scheduler may run others first);
- `ctx.next_op()` then `return ctx.effect(...)`: the op is done;
- `return ctx.then(other_step)`: no step boundary, the same atomic step goes on in
  `other_step` (a kernel path that holds a lock across both, or a branch of one step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from engine.fixes import Config
from engine.state import Actor, World

Params = Mapping[str, object]


class Effect(NamedTuple):
    """What one step did. (A named tuple, not a frozen dataclass: one is built for every
    move the explorer tries, and a tuple is built in C.)"""

    world: World
    function: str
    note: str
    events: tuple[tuple[str, str], ...] = ()  # (violation name, sentence)
    # The call as the diagram tells it, with its argument and outcome, for a step whose
    # outcome is the point ("folio_ref_freeze(folio, 1) fails: ref 2"); "" prints `function()`.
    call: str = ""


@dataclass(frozen=True, slots=True)
class Blocked:
    reason: str


_ACTORS = World._fields.index("actors")
_new = tuple.__new__
START = "start"  # the pc of an actor before its op's first step
R = TypeVar("R", bound=tuple[object, ...])


class Ctx:
    """The one actor taking one step: its parameters, the world it changes, events."""

    __slots__ = ("_me", "cfg", "cpu", "events", "index", "machine", "name", "params", "w")

    def __init__(
        self, cfg: Config, index: int, name: str, params: Params, world: World, cpu: str = ""
    ) -> None:
        self.cfg = cfg
        self.index = index
        self.name = name
        self.params = params
        # The CPU the actor runs on, whose TLB its accesses use; "" in a scenario without
        # CPUs, where every access walks the page table and every PTE change is flushed.
        self.cpu = cpu
        # The world as the step changes it, except the acting actor's own state: that is
        # `_me` once the step changed it (None before), and is written into the world once,
        # when the step ends (`effect`). Almost every step changes its actor (goto, next_op,
        # often twice) and the world besides: building a new world for each of those changes
        # was a third of all the worlds a step built. Kernel steps read their own actor only
        # through `me`; `w.actors[index]` is stale until the step ends.
        self.w = world
        self._me: Actor | None = None
        self.events: list[tuple[str, str]] = []
        self.machine: Machine | None = None

    # -- the acting actor -------------------------------------------------------
    @property
    def me(self) -> Actor:
        me = self._me
        return self.w.actors[self.index] if me is None else me

    def set_me(self, actor: Actor) -> None:
        self._me = actor

    def world(self) -> World:
        """The world with every change of this step so far, the actor's own included."""
        me = self._me
        if me is None:
            return self.w
        actors = list(self.w.actors)
        actors[self.index] = me
        parts = list(self.w)
        parts[_ACTORS] = tuple(actors)
        # The fields positionally, whatever World's fields are: one tuple built in C, where
        # evolve() tests each of its keywords in Python (and _make is a Python call more).
        return _new(World, parts)

    def regs(self, kind: type[R]) -> R:
        """The op's registers (all defaults before its first `goto` sets any)."""
        me = self._me  # `me`, inlined: the steps read their registers a dozen times a step
        regs = (self.w.actors[self.index] if me is None else me).regs
        return regs if isinstance(regs, kind) else kind()

    def goto(self, step: StepFn, **changes: object) -> None:
        """End this atomic step with `step` as the actor's next one, registers updated."""
        machine = self.machine
        assert machine is not None and machine.steps.get(step.__name__) is step, step.__name__
        regs: Any = self.regs(machine.regs)  # a NamedTuple: _replace checks the names
        if changes:
            regs = regs._replace(**changes)
        self.set_me(self.me.evolve(pc=step.__name__, regs=regs))

    def update(self, **changes: object) -> None:
        """Change registers without ending the step or choosing the next one."""
        machine = self.machine
        assert machine is not None
        regs: Any = self.regs(machine.regs)
        self.set_me(self.me.evolve(regs=regs._replace(**changes)))

    def then(self, step: StepFn) -> Effect | Blocked:
        """Go on with `step` inside the same atomic step: no other actor runs in between."""
        return step(self)

    def next_op(self) -> None:
        """The op is done: the actor's next step is the first of its next op."""
        me = self.me
        self.set_me(me.evolve(op=me.op + 1, pc=START, regs=()))

    # -- parameters -----------------------------------------------------------
    def p(self, name: str) -> str:
        value = self.params.get(name)
        return "" if value is None else str(value)

    def flagp(self, name: str) -> bool:
        return bool(self.params.get(name, False))

    @property
    def proc(self) -> str:
        return self.p("proc") or "app"

    # -- results ---------------------------------------------------------------
    def violate(self, name: str, message: str) -> None:
        self.w = self.w.record(name)
        self.events.append((name, message))

    def effect(self, function: str, note: str, call: str = "") -> Effect:
        """What this step did: the kernel function it models and one sentence (and, when
        its outcome is the point, the call with its argument and outcome: `call`)."""
        return Effect(self.world(), function, note, tuple(self.events), call)


StepFn = Callable[[Ctx], "Effect | Blocked"]


F = TypeVar("F", bound=Callable[..., Any])


class NoRegisters(NamedTuple):
    """The registers of a machine whose steps keep nothing between them."""


class Machine:
    """The atomic steps of one op (or of ops that share them, like the three GUPs), by name,
    and the type of its registers."""

    def __init__(self, regs: type[tuple[object, ...]] = NoRegisters) -> None:
        self.regs = regs
        self.steps: dict[str, StepFn] = {}

    def step(self, fn: F) -> F:
        """Register `fn` as a step the actor can stop before (a `goto` target)."""
        self.steps[fn.__name__] = fn
        return fn

    def include(self, *steps: StepFn) -> None:
        """Register steps another machine shares (a kernel function with several callers,
        like do_swap_page): the caller's registers must have the fields they use."""
        for fn in steps:
            self.steps[fn.__name__] = fn

    def resume(self, ctx: Ctx, entry: StepFn) -> Effect | Blocked:
        """Run the actor's next step: `entry` when the op starts, else the step its pc names."""
        ctx.machine = self
        pc = ctx.me.pc
        return entry(ctx) if pc == START else self.steps[pc](ctx)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str  # "addr" | "file" | "proc" | "value" | "bool" | "name" | "choice"
    required: bool = False
    choices: tuple[str, ...] = ()
    positional: bool = False  # shown bare in an op's text: write(buf, A), not write(addr=buf)


# What an actor can hold after a GUP op, for the device ops that act on it.
HOLDINGS = ("get", "pin", "pipe")
# The op's own rule across its parameters: a message saying what is wrong, or None.
Rule = Callable[[Params], "str | None"]


@dataclass(frozen=True, slots=True)
class OpKind:
    name: str
    params: tuple[Param, ...]
    steps: tuple[str, ...]  # kernel functions this op may run, for the UI's expansion
    doc: str
    run: StepFn
    setup_only: bool = False
    # What the actor holds once the op is done: one of HOLDINGS, or "mode" for the
    # value of the op's `mode` parameter (gup and gup_fast take a get or a pin).
    holds: str | None = None
    # What the actor must hold from an earlier op of its own: one of HOLDINGS, or "any".
    needs: str | None = None
    rule: Rule | None = None
    # The reference the actor holds on its registers' `page` while its pc is one of these
    # steps ("isolation", "speculative"), for the refcount's breakdown by holder.
    refs_held: Mapping[str, str] = field(default_factory=dict)

    @property
    def actor_only(self) -> bool:
        """Ops that hold or use a page an actor obtained: never in the setup."""
        return self.holds is not None or self.needs is not None

    def holding(self, params: Params) -> str | None:
        """What an actor holds after running this op with `params`."""
        if self.holds == "mode":
            return str(params.get("mode", "get"))
        return self.holds


OPS: dict[str, OpKind] = {}


def op(
    name: str,
    params: tuple[Param, ...],
    steps: tuple[str, ...],
    setup_only: bool = False,
    holds: str | None = None,
    needs: str | None = None,
    rule: Rule | None = None,
    refs_held: Mapping[str, str] | None = None,
) -> Callable[[StepFn], StepFn]:
    """Register an operation; its docstring is what the UI shows as help."""

    def register(fn: StepFn) -> StepFn:
        doc = (fn.__doc__ or "").strip()
        held = dict(refs_held or {})
        OPS[name] = OpKind(name, params, steps, doc, fn, setup_only, holds, needs, rule, held)
        return fn

    return register


def holding(what: str, *steps: StepFn) -> dict[str, str]:
    """`refs_held` of an op: the actor holds a `what` reference before each of `steps`."""
    return {step.__name__: what for step in steps}


def exactly_one(*names: str) -> Rule:
    """The rule of an op that takes exactly one of several parameters."""

    def rule(params: Params) -> str | None:
        given = [n for n in names if n in params]
        return None if len(given) == 1 else f"needs exactly one of {' or '.join(names)}"

    return rule


ADDR = Param("addr", "addr", required=True, positional=True)
PROC = Param("proc", "proc")
FILE = Param("file", "file", required=True, positional=True)
