"""A scenario's promises (`expect`) checked against an exploration of one of its kernels.

The catalog's tests and the editor's "Explore" panel both ask the same question: does what
the explorer found match what the scenario says each kernel does?
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.explore import Exploration
from engine.invariants import fate_of
from engine.lang.ir import Scenario


@dataclass(frozen=True, slots=True)
class ExpectCheck:
    ok: bool
    text: str  # e.g. "lost_write is reachable", "page_kept is reachable"


def check_expect(
    scenario: Scenario, variant: str | None, result: Exploration
) -> tuple[ExpectCheck, ...]:
    """One line per promise of `expect[variant]` (or "default"); () when it promises nothing.

    Every expected violation must be reachable and no other one; every expected fate
    ("page_kept", or with the start of its detail, "page_kept: mapped") must be some
    outcome's.
    """
    want = scenario.expect.get(variant or "default")
    if want is None:
        return ()
    found = {v for o in result.outcomes for v in o.violations}
    lines = [ExpectCheck(name in found, f"{name} is reachable") for name in want.violations]
    lines += [
        ExpectCheck(False, f"{name} is reachable but not expected")
        for name in sorted(found - set(want.violations))
    ]
    if not want.violations and not found:
        lines.append(ExpectCheck(True, "no invariant breaks"))
    fates = [fate for o in result.outcomes if (fate := fate_of(o.label)) is not None]
    lines += [
        ExpectCheck(any(fate.matches(reach) for fate in fates), f"{reach} is reachable")
        for reach in want.reachable
    ]
    return tuple(lines)
