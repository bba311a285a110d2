"""The explorer's compact states: Codec keys are equal exactly when worlds are, and decode back.

The explorer stores a key per state instead of its world, so a wrong key would merge two
states or split one: these tests compare keys with world equality directly, on every world
of real searches, through both of encode's paths (from scratch, and from a parent's
segments) and through wide codes, and check that decoding the frontier changes nothing.
"""

from __future__ import annotations

import dataclasses

import pytest

import engine
from engine.explore import WIDE, Codec
from engine.model import Model, successors
from engine.state import Page, World

CATALOG = engine.load_catalog()
SAMPLES = [
    "swapin-skip-swapcache-aba/buggy",
    "vmsplice-cow-leak/buggy",
    "madv-free-vs-dio/buggy",
    "swapout-vs-pinned/hardened",
]


def reachable(sc: engine.Scenario, variant: str, limit: int = 3000) -> list[tuple[World, World]]:
    """(parent, successor) pairs of a breadth-first search, every distinct world once."""
    model = Model(sc, engine.make_config(sc, variant))
    init = model.initial()
    seen = {init}
    queue = [init]
    pairs = [(init, init)]
    for world in queue:
        for _, effect in successors(model, world):
            pairs.append((world, effect.world))
            if effect.world not in seen and len(seen) < limit:
                seen.add(effect.world)
                queue.append(effect.world)
    return pairs


@pytest.mark.parametrize("name", SAMPLES)
def test_keys_are_equal_exactly_when_worlds_are(name: str) -> None:
    scenario, variant = name.split("/")
    codec = Codec()
    by_key: dict[bytes, World] = {}
    segments_of: dict[World, list[bytes]] = {}
    for parent, world in reachable(CATALOG[scenario], variant):
        key, segments = codec.encode(world)
        if parent in segments_of:  # the explorer's path: from the parent's segments
            assert codec.encode(world, parent, segments_of[parent]) == (key, segments)
        segments_of.setdefault(world, segments)
        known = by_key.setdefault(key, world)
        assert known == world, "two different worlds got one key"
        decoded, decoded_segments = codec.decode(key)
        assert decoded == world and decoded_segments == segments
    assert len(by_key) == len(segments_of), "one world got two keys"


def test_wide_codes_round_trip() -> None:
    """Past WIDE distinct values a field's codes take four bytes; keys stay exact."""
    sc = CATALOG["madv-free-vs-dio"]
    base = Model(sc, engine.make_config(sc, "buggy")).initial()
    codec = Codec()
    keys = set()
    previous, previous_segments = base, codec.encode(base)[1]
    for n in range(WIDE + 50):
        world = base.evolve(pages=(*base.pages, Page(data=f"V{n}")))
        key, segments = codec.encode(world, previous, previous_segments)
        assert codec.encode(world) == (key, segments)
        assert codec.decode(key) == (world, segments)
        keys.add(key)
        previous, previous_segments = world, segments
    assert len(keys) == WIDE + 50
    assert any(s[0] == WIDE for s in previous_segments)


def test_a_decoded_frontier_explores_the_same() -> None:
    """frontier_worlds=0 keeps only keys in the frontier: every figure is the same."""
    for name in ("swapin-skip-swapcache-aba", "madv-free-vs-dio"):
        sc = CATALOG[name]
        for variant in sc.variants:
            cfg = engine.make_config(sc, variant.name)
            kept = engine.explore(sc, cfg)
            decoded = engine.explore(sc, cfg, frontier_worlds=0)
            assert dataclasses.replace(decoded, elapsed_ms=0) == dataclasses.replace(
                kept, elapsed_ms=0
            )
