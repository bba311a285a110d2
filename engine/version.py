"""The engine's version: what every dashboard link carries (`e=`) so that a link replayed on
another engine says so.

A link names a schedule, and a schedule means what the model's steps do with it: when a step
is split, merged or changes what it does, the same `t=` replays to another place. The
scenario's digest (`d=`) cannot see that, since the scenario text is unchanged. Bump
`ENGINE_VERSION` whenever an existing scenario's steps, counts or verdicts change (the output
of `scripts/catalog_dump.py` changes for a key it had before, or a step is added to or taken
out of a run), and say in `CHANGES` what a link made on the older engine may now show
differently. Wording of the steps' sentences alone is no reason to bump.
"""

from __future__ import annotations

ENGINE_VERSION = 2

# Each version, with what changed for links made on the version before it.
CHANGES: dict[int, str] = {
    1: "the first engine whose links carry its version (links without e= are older or "
    "written by hand, and are taken as made on this engine)",
    2: "GUP's fault swaps in in do_swap_page's steps, as a CPU access does; MADV_FREE of a "
    "swap PTE takes free_swap_and_cache's two steps; GUP-fast reads a THP region's PMD and "
    "then its PTE in two steps; a reclaimed THP is split first; actors may run on CPUs with "
    "TLBs (only scenarios that name a cpu or thread)",
}


def changes_since(version: int) -> tuple[str, ...]:
    """What changed after engine `version`, oldest first: what a link made on it may now
    replay differently."""
    return tuple(
        f"{v}: {text}" for v, text in sorted(CHANGES.items()) if version < v <= ENGINE_VERSION
    )
