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
from dataclasses import dataclass

from engine.explore import Cancel, Exploration, Outcome, collector_paused, first_message
from engine.fixes import Config
from engine.lang.ir import Scenario
from engine.model import Model, successors
from engine.state import World

MAX_PREEMPTIONS = 3  # beyond this, the exhaustive search is the better tool
NONE = -1  # no actor has run yet: the first choice is free


@dataclass(frozen=True, slots=True)
class Node:
    world: World
    last: int
    preemptions: int
    parent: int  # index into the search's node list; -1 for the root
    actor: int  # the actor whose step led here


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
    for bound in range(MAX_PREEMPTIONS + 1):
        result = _search(model, bound, budget)
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


def _search(model: Model, bound: int, budget: Budget) -> Pass:
    """One breadth-first pass over (world, last actor) with at most `bound` preemptions."""
    nodes = [Node(model.initial(), NONE, 0, -1, NONE)]
    best: dict[tuple[World, int], int] = {(nodes[0].world, NONE): 0}
    pruned = False
    frontier = 0
    while frontier < len(nodes):
        if budget.spent():
            return Pass(out_of_budget=True)
        node = nodes[frontier]
        here = frontier
        frontier += 1
        budget.expanded += 1
        moves = successors(model, node.world)
        if not moves:
            final, _events = model.conclude(node.world)
            if final.violations:
                example = _example(nodes, here, model.names)
                return Pass(found=(model.label(final), final.violations, example))
            continue
        can_continue = any(actor == node.last for actor, _ in moves)
        for actor, effect in moves:
            budget.transitions += 1
            cost = node.preemptions + (1 if can_continue and actor != node.last else 0)
            if cost > bound:
                pruned = True
                continue
            key = (effect.world, actor)
            seen = best.get(key)
            if seen is not None and seen <= cost:
                continue
            best[key] = cost
            nodes.append(Node(effect.world, actor, cost, here, actor))
    return Pass(pruned=pruned)


def _example(nodes: list[Node], index: int, names: tuple[str, ...]) -> tuple[str, ...]:
    path = []
    while nodes[index].parent >= 0:
        path.append(names[nodes[index].actor])
        index = nodes[index].parent
    return tuple(reversed(path))
