"""git bisect for a race: the verdict of a scenario on every modelled release, where it
changes, and the switch responsible; and, for one kernel, which single switch removes a
violation (fix attribution).

A release's verdict is the set of violations an exhaustive exploration finds reachable on
mainline X.Y.0 (every fix released by then on, later ones off). Releases whose switches
are all equal share one exploration. Where two neighbouring releases differ, each switch
that changed between them is tried alone on the older kernel: the ones that turn its
verdict into the newer one's are named (a change can need two switches together, and then
the result says so).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from engine.explore import explore
from engine.fixes import (
    FIXES,
    NEWEST_KERNEL,
    OLDEST_KERNEL,
    SWITCHES,
    Config,
    build_config,
    fixes_for,
    version_key,
)
from engine.lang.ir import Scenario

# The last minor release of each major series in the modelled range (4.20 -> 5.0 -> 5.19 -> 6.0).
LAST_MINOR = {4: 20, 5: 19}


def releases(oldest: str = OLDEST_KERNEL, newest: str = NEWEST_KERNEL) -> tuple[str, ...]:
    """Every mainline release from `oldest` to `newest`, in order."""
    out = []
    major, minor = version_key(oldest)
    while (major, minor) <= version_key(newest):
        out.append(f"{major}.{minor}")
        if minor >= LAST_MINOR.get(major, 99):
            major, minor = major + 1, 0
        else:
            minor += 1
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Verdict:
    violations: tuple[str, ...]  # reachable on this kernel, sorted; () = safe
    complete: bool  # False: the search was cut off, so "safe" is not proven

    @property
    def text(self) -> str:
        found = ", ".join(self.violations) if self.violations else "safe"
        return found if self.complete else f"{found} (search cut off)"


@dataclass(frozen=True, slots=True)
class Change:
    """Between `before` and `release`, the verdict changes; `switches` alone explain it."""

    before: str
    release: str
    changed: tuple[str, ...]  # every switch whose value differs between the two releases
    switches: tuple[str, ...]  # those that alone turn the older verdict into the newer one


@dataclass(frozen=True, slots=True)
class Bisection:
    scenario_id: str
    verdicts: tuple[tuple[str, Verdict], ...]  # (release, verdict), oldest first
    changes: tuple[Change, ...]
    complete: bool  # False when the time budget ran out before every release was explored


@dataclass(frozen=True, slots=True)
class Attribution:
    """Turning `switch` to `on` (alone) on the kernel removes the violation."""

    switch: str
    on: bool
    commit: str  # the fix's commit (a design rule names the commit that made it so, or "")


def verdict_of(scenario: Scenario, config: Config, max_states: int, time_limit_s: float) -> Verdict:
    result = explore(scenario, config, max_states=max_states, time_limit_s=time_limit_s)
    found = sorted({v for o in result.outcomes for v in o.violations})
    return Verdict(tuple(found), not result.truncated)


def bisect(
    scenario: Scenario,
    *,
    max_states: int = 200_000,
    time_limit_s: float = 60.0,
) -> Bisection:
    """The verdict on every modelled release, the releases where it changes, and why."""
    deadline = time.monotonic() + time_limit_s
    memo: dict[tuple[tuple[str, bool], ...], Verdict] = {}

    def verdict(kernel: str, overrides: Mapping[str, bool] | None = None) -> Verdict | None:
        config = build_config(kernel, overrides)
        key = tuple(sorted(config.fixes.items()))
        if key not in memo:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            memo[key] = verdict_of(scenario, config, max_states, left)
        return memo[key]

    verdicts: list[tuple[str, Verdict]] = []
    for release in releases():
        found = verdict(release)
        if found is None:
            break
        verdicts.append((release, found))
    changes = []
    for (before, old), (release, new) in pairwise(verdicts):
        if old.violations == new.violations:
            continue
        older, newer = fixes_for(before), fixes_for(release)
        changed = tuple(name for name in SWITCHES if older[name] != newer[name])
        alone = []
        for name in changed:
            tried = verdict(before, {name: newer[name]})
            if tried is not None and tried.violations == new.violations:
                alone.append(name)
        changes.append(Change(before, release, changed, tuple(alone)))
    complete = len(verdicts) == len(releases())
    return Bisection(scenario.id, tuple(verdicts), tuple(changes), complete)


def attribute(
    scenario: Scenario,
    config: Config,
    violation: str,
    *,
    max_states: int = 200_000,
    time_limit_s: float = 30.0,
) -> tuple[Attribution, ...]:
    """Each switch that, flipped alone on `config`, makes `violation` unreachable (with the
    search complete, so that "unreachable" is proven); () when it is not reachable at all."""
    deadline = time.monotonic() + time_limit_s
    if violation not in verdict_of(scenario, config, max_states, time_limit_s).violations:
        return ()  # nothing to remove
    found = []
    for name in SWITCHES:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        flipped = not config.fixes[name]
        overrides = {**config.overrides, name: flipped}
        tried = verdict_of(scenario, build_config(config.kernel, overrides), max_states, left)
        if tried.complete and violation not in tried.violations:
            found.append(Attribution(name, flipped, SWITCHES[name].commit))
    return tuple(found)


def describe(change: Change) -> str:
    """One line: "5.18: lazyfree_refcount_check (6c8e2a256915)" and what it does."""
    if not change.switches:
        return (
            f"{change.release}: no single switch explains it; together: {', '.join(change.changed)}"
        )
    named = []
    for name in change.switches:
        fix = FIXES.get(name)
        named.append(f"{name} ({fix.commit})" if fix else f"{name} (design rule)")
    return f"{change.release}: {', '.join(named)}"
