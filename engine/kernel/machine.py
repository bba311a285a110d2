"""How an actor runs: operations made of atomic steps, one step per scheduling choice.

An operation (`gup_fast`, `shrink_folio_list`, ...) is a small state machine over
a label (`pc`) and op-local registers kept in the actor's state. Calling its run
function performs exactly one atomic step: it returns the new world together with
the kernel function that step models and one sentence about what it did, or the
reason the actor is blocked (a blocked actor is not enabled). Steps are pure: they
read the world and return a new one; the Ctx only collects the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.fixes import Config
from engine.state import Actor, World

Params = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Effect:
    world: World
    function: str
    note: str
    events: tuple[tuple[str, str], ...] = ()  # (violation name, sentence)


@dataclass(frozen=True, slots=True)
class Blocked:
    reason: str


class Ctx:
    """The one actor taking one step: its parameters, the world it changes, events."""

    __slots__ = ("cfg", "events", "index", "name", "params", "w")

    def __init__(self, cfg: Config, index: int, name: str, params: Params, world: World) -> None:
        self.cfg = cfg
        self.index = index
        self.name = name
        self.params = params
        self.w = world
        self.events: list[tuple[str, str]] = []

    # -- the acting actor -------------------------------------------------------
    @property
    def me(self) -> Actor:
        return self.w.actors[self.index]

    def set_me(self, actor: Actor) -> None:
        self.w = self.w.set_actor(self.index, actor)

    def reg(self, name: str, default: object = None) -> object:
        return self.me.reg(name, default)

    def ireg(self, name: str, default: int = -1) -> int:
        value = self.me.reg(name, default)
        assert isinstance(value, int)
        return value

    def goto(self, label: str, **regs: object) -> None:
        self.set_me(self.me.at(label, regs))

    def finish(self) -> None:
        me = self.me
        self.set_me(me.evolve(op=me.op + 1, pc="start", regs=()))

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
        self.w = self.w.flag(name)
        self.events.append((name, message))

    def done(self, function: str, note: str) -> Effect:
        return Effect(self.w, function, note, tuple(self.events))


StepFn = Callable[[Ctx], "Effect | Blocked"]


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
) -> Callable[[StepFn], StepFn]:
    """Register an operation; its docstring is what the UI shows as help."""

    def register(fn: StepFn) -> StepFn:
        doc = (fn.__doc__ or "").strip()
        OPS[name] = OpKind(name, params, steps, doc, fn, setup_only, holds, needs, rule)
        return fn

    return register


def exactly_one(*names: str) -> Rule:
    """The rule of an op that takes exactly one of several parameters."""

    def rule(params: Params) -> str | None:
        given = [n for n in names if n in params]
        return None if len(given) == 1 else f"needs exactly one of {' or '.join(names)}"

    return rule


ADDR = Param("addr", "addr", required=True, positional=True)
PROC = Param("proc", "proc")
FILE = Param("file", "file", required=True, positional=True)
