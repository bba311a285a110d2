"""The point of no return as the dashboard words and caches it (engine.doom computes it).

Every step of a dashboard re-renders the same schedule's prefix, and the answer depends only
on the scenario's content, the kernel's switches and the applied schedule, so a small LRU
keyed on those serves a whole walk through a run with one search.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import engine
from engine.doom import point_of_no_return

CACHE_SIZE = 256
# The dashboard's budget: a render must stay quick, and past it the page claims nothing.
MAX_STATES = 20_000

_Key = tuple[str, tuple[tuple[str, bool], ...], tuple[str, ...]]
_cache: OrderedDict[_Key, engine.NoReturn | None] = OrderedDict()
_lock = threading.Lock()

# What is lost, by the violation every continuation breaks: "from here the data is lost".
CONSEQUENCE = {
    "lost_write": "the data is lost",
    "use_after_free": "a freed page gets used",
    "refcount_underflow": "the refcount underflows",
    "bad_freeze": "the refcount freeze goes wrong",
    "data_leak": "data leaks to another process",
    "kernel_bug": "the kernel hits a BUG",
    "page_leak": "the page leaks",
    "deadlock": "the run deadlocks",
}


def no_return_of(
    scenario: engine.Scenario, config: engine.Config, schedule: Sequence[str]
) -> engine.NoReturn | None:
    """engine.doom.point_of_no_return, cached (None also for a search over budget)."""
    key: _Key = (scenario.sha256, tuple(sorted(config.fixes.items())), tuple(schedule))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    found = point_of_no_return(scenario, config, schedule, max_states=MAX_STATES)
    with _lock:
        _cache[key] = found
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return found


def consequence(no_return: engine.NoReturn) -> str:
    if len(no_return.violations) == 1:
        name = no_return.violations[0]
        return CONSEQUENCE.get(name, f"{name} breaks")
    if no_return.violations:
        return " and ".join(no_return.violations) + " break"
    return "an invariant breaks"


def still_held(step: engine.Step) -> str:
    """Why the step matters for each page it touched: who else still holds a reference
    ("dio (get) still holds P0, and nobody maps it"): the pending access that will go wrong."""
    parts = []
    for page in step.state.pages:
        if not any(c.startswith(f"pages.{page.id}.") for c in step.changes):
            continue
        others = [
            name
            for name, count in page.holders
            if count and name != "mappings" and not name.startswith(f"{step.actor} ")
        ]
        if not others or page.owner == "free":
            continue
        unmapped = ", and nobody maps it" if page.mapcount == 0 else ""
        parts.append(
            f" {' and '.join(others)} still hold{'s' if len(others) == 1 else ''} "
            f"{page.id}{unmapped}."
        )
    return "".join(parts)


def lost_sentence(no_return: engine.NoReturn | None, run: engine.Trace, at: int) -> str:
    """The narration's line at the point of no return ("from here ... because <what this
    step did>") and, on later steps, where the run was lost; "" before it."""
    if no_return is None or at < no_return.step:
        return ""
    if no_return.step == 0:
        return (
            f"Lost from the start: whatever runs, {consequence(no_return)} "
            "(the setup alone decides it)."
        )
    step = run.steps[no_return.step - 1]
    if at == no_return.step:
        note = step.note.rstrip(".")
        # A note that tells the call itself ("folio_ref_freeze(folio, 1) fails: ...") is
        # what ran; any other is said after the function's name.
        ran = note if note.startswith(f"{step.function}(") else f"{step.function}: {note}"
        return (
            f"Point of no return: from here {consequence(no_return)} whatever runs next, "
            f"because {step.actor} ran {ran}.{still_held(step)}"
        )
    return (
        f"Past the point of no return (step {no_return.step}, {step.actor} "
        f"{step.function}): {consequence(no_return)} whatever runs next."
    )
