"""The point of no return of one run: the first step after which every continuation breaks
an invariant, whatever the scheduler picks next.

The explorer marks doomed states over the whole graph (engine.explore.doomed_states) for the
examples of its outcomes; the dashboard needs the same answer for the run a user is looking
at, which can be any schedule. Doom is a property of a state, and a doomed state has only
doomed successors, so along one run the doomed steps form a suffix: the last state decides
whether there is a point at all, and walking back from it finds where it starts.

Each state is settled by a depth-first search that stops at the first continuation that
ends safe (one is enough to show a state is not doomed), memoised over canonical worlds
(engine.symmetry), and bounded: a search over budget, or one that meets a cycle (a run with
no end), claims nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.fixes import Config
from engine.kernel.machine import Effect
from engine.lang.ir import Scenario
from engine.model import Model, successors
from engine.state import World
from engine.symmetry import Symmetry, detect

MAX_STATES = 50_000


@dataclass(frozen=True, slots=True)
class NoReturn:
    """After `step` steps of the run (0: right after the setup), every continuation breaks
    an invariant; `violations` are those broken on every one of them (sorted, maybe empty
    when the continuations break different ones)."""

    step: int
    violations: tuple[str, ...]


class _Unknown(Exception):
    """The search met a cycle or ran over its budget: no claim can be made."""


# What a settled state is: None, not doomed (some continuation ends safe); otherwise the
# violations every terminal descendant breaks (doomed).
_Fate = frozenset[str] | None


@dataclass(slots=True)
class _Frame:
    key: World
    todo: list[World]  # successor worlds not looked at yet
    common: frozenset[str] | None = None  # violations every doomed successor so far breaks


class _Search:
    def __init__(self, model: Model, sym: Symmetry | None, max_states: int) -> None:
        self.model = model
        self.sym = sym
        self.max_states = max_states
        self.memo: dict[World, _Fate] = {}

    def key(self, world: World) -> World:
        return self.sym.canonical(world)[0] if self.sym is not None else world

    def fate(self, world: World) -> _Fate:
        """Iterative post-order search (runs are up to 400 steps: no recursion)."""
        root = self.key(world)
        if root in self.memo:
            return self.memo[root]
        stack: list[_Frame] = []
        on_path: set[World] = set()

        def enter(key: World, w: World) -> bool:
            """Settle a terminal state at once (False) or open its frame (True)."""
            if len(self.memo) + len(on_path) >= self.max_states:
                raise _Unknown
            moves = successors(self.model, w)
            if not moves:
                final, _ = self.model.conclude(w)
                self.memo[key] = frozenset(final.violations) if final.violations else None
                return False
            on_path.add(key)
            stack.append(_Frame(key, [effect.world for _, effect in reversed(moves)]))
            return True

        enter(root, world)
        settled: _Fate
        while stack:
            top = stack[-1]
            if not top.todo:  # every successor is doomed: so is this state
                stack.pop()
                on_path.discard(top.key)
                settled = self.memo[top.key] = top.common or frozenset()
            else:
                nxt = top.todo.pop()
                child = self.key(nxt)
                if child in self.memo:
                    settled = self.memo[child]
                elif child in on_path:
                    raise _Unknown  # a cycle: a run need not end, so "every run" is moot
                elif enter(child, nxt):
                    continue
                else:
                    settled = self.memo[child]
            if not stack:
                break
            if settled is None:
                # One safe continuation: every state on the path to it has it too.
                for frame in stack:
                    self.memo[frame.key] = None
                break
            parent = stack[-1]
            parent.common = settled if parent.common is None else parent.common & settled
        return self.memo[root]


def point_of_no_return(
    scenario: Scenario,
    config: Config,
    schedule: Sequence[str],
    *,
    max_states: int = MAX_STATES,
) -> NoReturn | None:
    """Where the run of `schedule` becomes lost (None: it never does, or the bounded search
    cannot tell). The schedule must apply: every entry names an actor that can move."""
    model = Model(scenario, config)
    names = model.names
    worlds = [model.initial()]
    for name in schedule:
        effect = model.step(worlds[-1], names.index(name))
        if not isinstance(effect, Effect):
            raise ValueError(f"{name} cannot move at step {len(worlds)}")
        worlds.append(effect.world)
    search = _Search(model, detect(scenario), max_states)
    try:
        if search.fate(worlds[-1]) is None:
            return None
        first = len(worlds) - 1
        while first > 0 and search.fate(worlds[first - 1]) is not None:
            first -= 1
    except _Unknown:
        return None
    doomed = search.fate(worlds[first])
    assert doomed is not None
    return NoReturn(first, tuple(sorted(doomed)))
