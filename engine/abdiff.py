"""Two kernels on one schedule, step by step: where they differ and which switch makes them.

The dashboard's A/B view replays the same schedule on two configurations, lists the steps
that differ (by actor, function or sentence), and names, for the first difference, the
switches that alone account for it: flipping one switch of kernel A to kernel B's value makes
A's step equal B's. (Which switch removes a violation from every interleaving is
engine.bisect.attribute.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from engine.fixes import SWITCHES, Config, build_config
from engine.lang.ir import Scenario
from engine.trace import Step, Trace, replay


@dataclass(frozen=True, slots=True)
class Side:
    """One kernel's step at an index (None in a Difference when its run has ended)."""

    actor: str
    function: str
    note: str

    @classmethod
    def of(cls, step: Step) -> Side:
        return cls(step.actor, step.function, step.note)


@dataclass(frozen=True, slots=True)
class Difference:
    index: int  # the step number, from 1
    a: Side | None
    b: Side | None


@dataclass(frozen=True, slots=True)
class Switch:
    """A switch, the value that matters, and its commit ("" for a design rule)."""

    name: str
    on: bool
    commit: str
    effect: str


@dataclass(frozen=True, slots=True)
class Comparison:
    a: Trace
    b: Trace
    differences: tuple[Difference, ...]
    changed: tuple[str, ...]  # every switch whose value differs between the two kernels
    # Those that alone turn A's first differing step into B's (flipped to B's value); or,
    # when none does alone, the first pair that does together (`jointly`).
    responsible: tuple[Switch, ...]
    jointly: bool = False

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(d.index for d in self.differences)


# Pairs are tried only between kernels this close: each pair is one replay of the prefix.
MAX_PAIRED = 12


def _switch(name: str, on: bool) -> Switch:
    fix = SWITCHES[name]
    return Switch(name, on, fix.commit, fix.effect)


def differences(a: Trace, b: Trace) -> tuple[Difference, ...]:
    """The step numbers where the two runs do something else, and what each does there."""
    out = []
    for i in range(max(len(a.steps), len(b.steps))):
        left = Side.of(a.steps[i]) if i < len(a.steps) else None
        right = Side.of(b.steps[i]) if i < len(b.steps) else None
        if left != right:
            out.append(Difference(i + 1, left, right))
    return tuple(out)


def compare(scenario: Scenario, a: Config, b: Config, schedule: Sequence[str]) -> Comparison:
    """`schedule` on kernel `a` and on kernel `b` (each replayed as far as it applies)."""
    run_a, run_b = replay(scenario, a, schedule), replay(scenario, b, schedule)
    diffs = differences(run_a, run_b)
    changed = tuple(name for name in SWITCHES if a.fixes[name] != b.fixes[name])
    responsible: list[Switch] = []
    jointly = False
    if diffs:
        first = diffs[0]
        prefix = list(schedule[: first.index])

        def explains(names: tuple[str, ...]) -> bool:
            flipped = build_config(a.kernel, {**a.overrides, **{n: b.fixes[n] for n in names}})
            tried = replay(scenario, flipped, prefix)
            step = tried.steps[first.index - 1] if len(tried.steps) >= first.index else None
            return (Side.of(step) if step else None) == first.b

        responsible = [_switch(n, b.fixes[n]) for n in changed if explains((n,))]
        if not responsible and 1 < len(changed) <= MAX_PAIRED:
            # Two fixes can both change one step (a flush that each would do): name the pair.
            pair = next((p for p in combinations(changed, 2) if explains(p)), None)
            if pair is not None:
                responsible, jointly = [_switch(n, b.fixes[n]) for n in pair], True
    return Comparison(run_a, run_b, diffs, changed, tuple(responsible), jointly)
