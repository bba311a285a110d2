"""The verdict strip: a catalog scenario's verdict on every modelled release, for the
dashboard's about box (`pagerace bisect` in the browser).

A bisection explores the scenario once per distinct kernel configuration (about a dozen
for the catalog, 10-1,100 ms in all per scenario), so it is computed once per scenario
per process, in the thread that renders the page, and kept by the scenario's SHA-256.
Custom scenarios (links with `s=`) get no strip: each would cost every visitor's link a
bisection of an arbitrary document; `pagerace bisect FILE` gives theirs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import engine
from engine.bisect import describe
from engine.invariants import phrase

# A catalog scenario explores in milliseconds; these bound one that does not.
MAX_STATES = 50_000
TIME_LIMIT_S = 10.0


@dataclass(frozen=True, slots=True)
class ReleaseRun:
    """Consecutive releases with one verdict; `change` says why it differs from the last."""

    first: str
    last: str
    violations: tuple[str, ...]
    complete: bool
    change: str  # "5.18: lazyfree_refcount_check (6c8e2a256915)", or "" for the first run

    @property
    def releases(self) -> str:
        return self.first if self.first == self.last else f"{self.first}-{self.last}"

    @property
    def words(self) -> str:
        text = " and ".join(phrase(v) for v in self.violations) if self.violations else "safe"
        return text if self.complete else f"{text} (search cut off)"


def runs(bisection: engine.Bisection) -> tuple[ReleaseRun, ...]:
    changes = {c.release: describe(c) for c in bisection.changes}
    out: list[ReleaseRun] = []
    for release, verdict in bisection.verdicts:
        last = out[-1] if out else None
        if last and (last.violations, last.complete) == (verdict.violations, verdict.complete):
            out[-1] = ReleaseRun(last.first, release, last.violations, last.complete, last.change)
        else:
            change = changes.get(release, "")
            out.append(ReleaseRun(release, release, verdict.violations, verdict.complete, change))
    return tuple(out)


class VerdictStrips:
    """Strips by scenario SHA-256, each computed once (concurrent first views wait for it)."""

    def __init__(self) -> None:
        self._strips: dict[str, tuple[ReleaseRun, ...]] = {}
        self._lock = threading.Lock()

    def of(self, scenario: engine.Scenario) -> tuple[ReleaseRun, ...]:
        strip = self._strips.get(scenario.sha256)
        if strip is None:
            with self._lock:
                strip = self._strips.get(scenario.sha256)
                if strip is None:
                    found = engine.bisect(
                        scenario, max_states=MAX_STATES, time_limit_s=TIME_LIMIT_S
                    )
                    strip = self._strips[scenario.sha256] = runs(found)
        return strip


STRIPS = VerdictStrips()
