"""Exhaustive exploration of every interleaving, with state caching and path counting.

Breadth-first over distinct states (each expanded once), so the first path found
to any state is a shortest one. The number of complete interleavings is the
number of paths from the initial state to terminal states, counted over the
state graph in topological order (Python integers: exact at any size). Outcomes
group terminal states by violations and by what became of the first page.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from engine.fixes import Config
from engine.kernel.machine import Effect
from engine.lang.ir import Scenario
from engine.model import Model, successors
from engine.state import World
from engine.symmetry import detect

Progress = Callable[[int, int], None]
# How a stored state was first reached: (parent state, actor slot, the permutation that
# made the successor canonical, None for none).
Parent = tuple[int, int, tuple[int, ...] | None]
Cancel = Callable[[], bool]
REPORT_EVERY = 2048


class _Collector:
    """Who has paused the cyclic garbage collector, and whether it ran before."""

    lock = threading.Lock()
    pausers = 0
    was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while exploring.

    Every world the explorer keeps is a tracked container (CPython never untracks a
    tuple subclass), so each full collection walks all of them: a third of the time
    at 127k states, and no garbage found, since worlds form no cycles. Reference
    counting still frees everything else. Explorations may run in several threads
    at once: the collector resumes when the last one ends, if it ran before the first.
    """
    with _Collector.lock:
        if _Collector.pausers == 0:
            _Collector.was_enabled = gc.isenabled()
            gc.disable()
        _Collector.pausers += 1
    try:
        yield
    finally:
        with _Collector.lock:
            _Collector.pausers -= 1
            if _Collector.pausers == 0 and _Collector.was_enabled:
                gc.enable()


@dataclass(frozen=True, slots=True)
class Outcome:
    label: str
    violations: tuple[str, ...]
    interleavings: int
    example: tuple[str, ...]
    message: str = ""  # the first violation's sentence on the example run
    # The point of no return: after this many steps of the example, every continuation
    # breaks an invariant (-1 when not known: a cut-off search, or no violation).
    no_return: int = -1


@dataclass(frozen=True, slots=True)
class Exploration:
    states: int
    transitions: int
    interleavings: int
    outcomes: tuple[Outcome, ...]
    truncated: bool
    elapsed_ms: float
    cycle: bool = False
    # Set by engine.first.find_first: the search stopped at the first violation it found
    # (with this many preemptions), before covering the space; no counts are known.
    first_bug: bool = False
    preemptions: int = 0

    # Jupyter's rich display (engine/notebook.py), imported when called: it imports this.
    def _repr_html_(self) -> str:
        from engine.notebook import exploration_html

        return exploration_html(self)

    def _repr_markdown_(self) -> str:
        from engine.notebook import exploration_markdown

        return exploration_markdown(self)


@collector_paused()
def explore(
    scenario: Scenario,
    config: Config,
    *,
    max_states: int = 200_000,
    time_limit_s: float = 10.0,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    symmetry: bool = True,
) -> Exploration:
    """Search all interleavings of the scenario's actors under `config`.

    With `symmetry`, interchangeable actors (engine.symmetry) share one stored world per
    orbit; each concrete move is still one edge, so the counts stay exact.
    """
    began = time.perf_counter()
    model = Model(scenario, config)
    sym = detect(scenario) if symmetry else None
    init = model.initial()
    ids: dict[World, int] = {init: 0}
    worlds: list[World] = [init]
    succ: list[list[int]] = [[]]
    parent: list[Parent] = [(-1, -1, None)]
    terminal: dict[int, tuple[tuple[str, ...], str, str]] = {}
    transitions = 0
    truncated = False
    frontier = 0
    while frontier < len(worlds):
        if frontier % REPORT_EVERY == 0 and frontier:
            if progress is not None:
                progress(len(worlds), transitions)
            if (cancel is not None and cancel()) or time.perf_counter() - began > time_limit_s:
                truncated = True
                break
        sid = frontier
        frontier += 1
        world = worlds[sid]
        moves = successors(model, world)
        if not moves:
            final, events = model.conclude(world)
            message = events[0][1] if events else ""
            terminal[sid] = (final.violations, model.label(final), message)
            continue
        out = succ[sid]
        for actor, effect in moves:
            transitions += 1
            fresh = len(worlds)
            world, perm = effect.world, None
            if sym is not None:
                world, perm = sym.canonical(world)
            if fresh < max_states:
                # One hash per successor: a world is a deep tuple and hashing it is not free.
                nxt = ids.setdefault(world, fresh)
            else:
                found = ids.get(world)
                if found is None:
                    truncated = True
                    continue
                nxt = found
            if nxt == fresh:
                worlds.append(world)
                succ.append([])
                parent.append((sid, actor, perm))
            out.append(nxt)
    paths, order = count_paths(succ, len(worlds))
    cycle = len(order) != len(worlds)
    doomed = None if truncated or cycle else doomed_states(succ, order, terminal)
    outcomes = tuple(
        with_message(model, o) for o in group(terminal, paths, parent, model.names, doomed)
    )
    return Exploration(
        states=len(worlds),
        transitions=transitions,
        interleavings=sum(o.interleavings for o in outcomes),
        outcomes=outcomes,
        truncated=truncated or cycle,
        elapsed_ms=round((time.perf_counter() - began) * 1000, 2),
        cycle=cycle,
    )


def with_message(model: Model, outcome: Outcome) -> Outcome:
    """The example's first violation sentence (the state keeps names only, not sentences)."""
    if not outcome.violations or outcome.message:
        return outcome
    return replace(outcome, message=first_message(model, outcome.example))


def first_message(model: Model, schedule: tuple[str, ...]) -> str:
    """What run_schedule would report first, without building the views a run carries."""
    world = model.initial()
    names = model.names
    for name in schedule:
        effect = model.step(world, names.index(name))
        assert isinstance(effect, Effect), f"{name} cannot move on an explored path"
        if effect.events:
            return effect.events[0][1]
        world = effect.world
    _, events = model.conclude(world)
    return events[0][1] if events else ""


def count_paths(succ: list[list[int]], n: int) -> tuple[list[int], list[int]]:
    """Paths from state 0 to every state, and the topological (Kahn's) order they were
    counted in; on a cycle the order stops short of n instead of looping."""
    indegree = [0] * n
    for out in succ:
        for t in out:
            indegree[t] += 1
    paths = [0] * n
    paths[0] = 1
    ready = [i for i in range(n) if indegree[i] == 0]
    order = []
    while ready:
        s = ready.pop()
        order.append(s)
        for t in succ[s]:
            paths[t] += paths[s]
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return paths, order


def doomed_states(
    succ: list[list[int]], order: list[int], terminal: dict[int, tuple[tuple[str, ...], str, str]]
) -> list[bool]:
    """Whether every run from each state breaks an invariant: a terminal state with a
    violation is doomed, and so is a state all of whose successors are (reverse topological
    order). The first doomed state of an example is its point of no return."""
    doomed = [False] * len(succ)
    for s in reversed(order):
        if s in terminal:
            doomed[s] = bool(terminal[s][0])
        else:
            doomed[s] = all(doomed[t] for t in succ[s])
    return doomed


def path_states(parent: list[Parent], sid: int) -> list[int]:
    """The stored states along the first path to `sid`, from the initial state."""
    states = [sid]
    while parent[sid][0] >= 0:
        sid = parent[sid][0]
        states.append(sid)
    return states[::-1]


def example(parent: list[Parent], sid: int, names: tuple[str, ...]) -> tuple[str, ...]:
    """The schedule of named actors that reaches state `sid`.

    Under symmetry a stored world may be a relabelled copy of the one the moves reached:
    `where[r]` is the concrete actor that the representative's slot r stands for, updated
    through each move's permutation (perm[i]: the slot concrete actor i was moved to).
    """
    moves = []
    while parent[sid][0] >= 0:
        sid, actor, perm = parent[sid]
        moves.append((actor, perm))
    where = list(range(len(names)))
    path = []
    for actor, perm in reversed(moves):
        path.append(names[where[actor]])
        if perm is not None:
            inverse = [0] * len(perm)
            for i, slot in enumerate(perm):
                inverse[slot] = i
            where = [where[inverse[r]] for r in range(len(perm))]
    return tuple(path)


def group(
    terminal: dict[int, tuple[tuple[str, ...], str, str]],
    paths: list[int],
    parent: list[Parent],
    names: tuple[str, ...],
    doomed: list[bool] | None = None,
) -> tuple[Outcome, ...]:
    counts: dict[tuple[tuple[str, ...], str], int] = {}
    first: dict[tuple[tuple[str, ...], str], tuple[int, str]] = {}
    for sid in sorted(terminal):  # BFS order: the first is a shortest example
        violations, label, message = terminal[sid]
        key = (violations, label)
        counts[key] = counts.get(key, 0) + paths[sid]
        first.setdefault(key, (sid, message))
    outcomes = [
        Outcome(
            label,
            violations,
            counts[(violations, label)],
            example(parent, first[(violations, label)][0], names),
            first[(violations, label)][1],
            no_return(parent, first[(violations, label)][0], doomed) if violations else -1,
        )
        for (violations, label) in counts
    ]
    outcomes.sort(key=lambda o: (not o.violations, -o.interleavings, o.label))
    return tuple(outcomes)


def no_return(parent: list[Parent], sid: int, doomed: list[bool] | None) -> int:
    """How many steps of the example lead to its point of no return (-1: not known)."""
    if doomed is None:
        return -1
    return next(i for i, s in enumerate(path_states(parent, sid)) if doomed[s])


def reachable_violations(exp: Exploration) -> set[str]:
    return {v for o in exp.outcomes for v in o.violations}
