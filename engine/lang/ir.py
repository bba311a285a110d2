"""The scenario language's values: what a validated document is made of.

A scenario is data (YAML in the catalog, JSON over the API); nothing in it is ever
executed. `engine.lang.loader` turns text into a document, `engine.lang.validate`
turns a document into these frozen values, naming the path of every error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError
from engine.fixes import NEWEST_KERNEL


@dataclass(frozen=True, slots=True)
class ErrorItem:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path}{where}: {self.message}"


class ScenarioError(InputError):
    """A scenario document that does not follow the language; `.errors` lists every problem."""

    def __init__(self, errors: list[ErrorItem]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Ref:
    commit: str
    title: str
    version: str


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    kernel: str
    fixes: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Op:
    kind: str
    params: Mapping[str, object]
    text: str
    steps: tuple[str, ...]
    macro: str | None = None


@dataclass(frozen=True, slots=True)
class ActorSpec:
    name: str
    label: str
    ops: tuple[Op, ...]
    cpu: str = ""  # the CPU it runs on (its TLB); "" unless the scenario names CPUs
    # The process it is a thread of (its ops' default `proc`), or the thread's own name.
    thread: str = ""


def cpus_of(actors: tuple[ActorSpec, ...]) -> tuple[str, ...]:
    """The CPU each actor runs on. A scenario that names no CPU and no thread models no
    TLB: every access walks the page table, as every scenario did before TLBs existed.
    Once one actor names either, every actor runs on a CPU with a TLB: its own, or
    `CPU<i>` after its place in the list (a name no other actor took)."""
    if not any(a.cpu or a.thread for a in actors):
        return tuple("" for _ in actors)
    taken = {a.cpu for a in actors if a.cpu}
    out = []
    for i, a in enumerate(actors):
        cpu = a.cpu
        n = i
        while not cpu:
            candidate = f"CPU{n}"
            if candidate not in taken:
                cpu = candidate
                taken.add(cpu)
            n += 1
        out.append(cpu)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Expect:
    violations: tuple[str, ...]
    reachable: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    summary: str
    tags: tuple[str, ...]
    refs: tuple[Ref, ...]
    variants: tuple[Variant, ...]
    files: Mapping[str, str]
    setup: tuple[Op, ...]
    actors: tuple[ActorSpec, ...]
    expect: Mapping[str, Expect]
    document: Mapping[str, Any]
    digest: str  # 48 bits, for display and links: collisions are findable in seconds
    # The full SHA-256 of the canonical document: what every cache keys on.
    sha256: str = ""
    swap_sync: bool = False  # `swap: {synchronous: true}`: SWP_SYNCHRONOUS_IO (zram)
    swap_readahead: bool = False  # `swap: {readahead: true}`: swapin_readahead's neighbours
    zswap: bool = False  # `swap: {zswap: true}`: swap-out stores pages in zswap

    def variant(self, name: str) -> Variant | None:
        for v in self.variants:
            if v.name == name:
                return v
        return None


def sha256_of(document: Mapping[str, Any]) -> str:
    """The full SHA-256 of the canonical document (sorted keys, compact)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest_of(document: Mapping[str, Any]) -> str:
    """The short (48-bit) digest shown to people and carried in links' d=."""
    return sha256_of(document)[:12]


PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def key_path(path: str, key: object) -> str:
    """`path.key`, or `path["key"]` for a key that is not a plain name ("", "a.b", "x[")."""
    name = str(key)
    if PLAIN_KEY.match(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


def default_variant(scenario: Scenario) -> Variant:
    return scenario.variants[0] if scenario.variants else Variant("default", NEWEST_KERNEL)
