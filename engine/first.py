"""Find a bug fast: breadth-first search under an increasing preemption bound.

The exhaustive explorer must expand every state before it can count interleavings, so on
five actors it gives no verdict within its budget. To *find* a bad interleaving there is a
better order (iterative context bounding, as in CHESS): most races need only one or two
preemptions, and the schedules with at most k preemptions are few. A preemption is a switch
away from an actor that could still have run; switching when it blocked or finished is free.

For k = 0, 1, 2, ... the search runs breadth-first over (world, last actor) nodes with at
most k preemptions, and stops at the first terminal state whose end checks report a
violation. Breadth-first within the bound makes the example a shortest schedule among those
with the fewest preemptions: the readable interleaving a commit message would draw. When a
bound prunes nothing, every schedule was within it: the space was covered and no bug exists.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from dataclasses import dataclass, field

from engine.explore import (
    Cancel,
    Codec,
    Exploration,
    Outcome,
    StepCache,
    collector_paused,
    first_message,
)
from engine.fixes import Config
from engine.lang.ir import Scenario
from engine.model import Model
from engine.state import World

MAX_PREEMPTIONS = 3  # beyond this, the exhaustive search is the better tool
NONE = -1  # no actor has run yet: the first choice is free


@dataclass(slots=True)
class Nodes:
    """The nodes a pass found, as integer arrays: how each was reached (its parent node, -1
    for the root, and the actor whose step led there). Their worlds live in the frontier
    only, until expanded."""

    parent: array[int] = field(default_factory=lambda: array("q"))
    actor: array[int] = field(default_factory=lambda: array("i"))

    def add(self, parent: int, actor: int) -> None:
        self.parent.append(parent)
        self.actor.append(actor)


@dataclass(slots=True)
class Budget:
    """What the passes have spent so far, against the caller's limits."""

    max_states: int
    deadline: float
    cancel: Cancel | None
    expanded: int = 0
    transitions: int = 0

    def spent(self) -> bool:
        if self.expanded >= self.max_states or time.perf_counter() > self.deadline:
            return True
        return self.expanded % 1024 == 0 and self.cancel is not None and self.cancel()


@dataclass(frozen=True, slots=True)
class Pass:
    """One bounded pass: the violation it found, if any; whether the bound cut a move off
    (if not, the pass covered every schedule); whether the budget ran out first."""

    found: tuple[str, tuple[str, ...], tuple[str, ...]] | None = None
    pruned: bool = False
    out_of_budget: bool = False


@collector_paused()
def find_first(
    scenario: Scenario,
    config: Config,
    *,
    max_states: int = 200_000,
    time_limit_s: float = 10.0,
    cancel: Cancel | None = None,
) -> Exploration | None:
    """The first violation found with the fewest preemptions, as a one-outcome exploration
    (`first_bug`; its counts are not known), or None when there is none within
    MAX_PREEMPTIONS, the space was covered without one, or the budget ran out: the caller
    then runs the exhaustive search, which alone can say "safe" or count."""
    began = time.perf_counter()
    model = Model(scenario, config)
    budget = Budget(max_states, began + time_limit_s, cancel)
    # Shared by the passes: each pass goes over the states of the one before, and more.
    codec = Codec()
    steps = StepCache(model, codec)
    for bound in range(MAX_PREEMPTIONS + 1):
        result = _search(model, bound, budget, codec, steps)
        if result.found is not None:
            label, violations, example = result.found
            outcome = Outcome(label, violations, 0, example, first_message(model, example))
            return Exploration(
                states=budget.expanded,
                transitions=budget.transitions,
                interleavings=0,
                outcomes=(outcome,),
                truncated=True,
                elapsed_ms=round((time.perf_counter() - began) * 1000, 2),
                first_bug=True,
                preemptions=bound,
            )
        if result.out_of_budget or not result.pruned:
            return None
    return None


def _search(model: Model, bound: int, budget: Budget, codec: Codec, steps: StepCache) -> Pass:
    """One breadth-first pass over (world, last actor) with at most `bound` preemptions.

    Worlds are told apart by their Codec keys, and successors come from the StepCache, as
    in the exhaustive search: the same nodes in the same order as stepping every actor."""
    init = model.initial()
    key, segments = codec.encode(init)
    nodes = Nodes()
    nodes.add(-1, NONE)
    # The frontier: (world, its segments, the last actor, preemptions so far, node index).
    frontier: deque[tuple[World, list[bytes], int, int, int]] = deque(
        [(init, segments, NONE, 0, 0)]
    )
    best: dict[tuple[bytes, int], int] = {(key, NONE): 0}
    pruned = False
    while frontier:
        if budget.spent():
            return Pass(out_of_budget=True)
        world, segments, last, preemptions, here = frontier.popleft()
        budget.expanded += 1
        moves = steps.moves(world, segments)
        if not moves:
            final, _events = model.conclude(world)
            if final.violations:
                example = _example(nodes, here, model.names)
                return Pass(found=(model.label(final), final.violations, example))
            continue
        can_continue = any(move[0] == last for move in moves)
        for actor, nxt_segments, made in moves:
            budget.transitions += 1
            cost = preemptions + (1 if can_continue and actor != last else 0)
            if cost > bound:
                pruned = True
                continue
            node_key = (b"".join(nxt_segments), actor)
            seen = best.get(node_key)
            if seen is not None and seen <= cost:
                continue
            best[node_key] = cost
            nxt = steps.world(world, actor, made)
            frontier.append((nxt, nxt_segments, actor, cost, len(nodes.parent)))
            nodes.add(here, actor)
    return Pass(pruned=pruned)


def _example(nodes: Nodes, index: int, names: tuple[str, ...]) -> tuple[str, ...]:
    path = []
    while nodes.parent[index] >= 0:
        path.append(names[nodes.actor[index]])
        index = nodes.parent[index]
    return tuple(reversed(path))
