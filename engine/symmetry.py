"""Symmetry between interchangeable actors: one representative world per orbit.

Actors are interchangeable when they run the same ops with the same parameters except the
values they write (dio0 writes B0, dio1 writes B1). Swapping two of them, and their names
and values wherever the world mentions them, maps every reachable world to a reachable world
with the same future up to that swap: the kernel paths compare names and values only for
equality, and keep the value sets they build (the oracle's allowed values, its writers)
sorted, so a swapped world is re-sorted into the form the code itself would have built.

The explorer then stores one world per orbit (the canonical one: the class's actors sorted
by their own state, named and valued as if each were the first), and counts paths exactly by
weighting each quotient edge with the number of concrete moves it stands for: every member
of an orbit has the same number of moves into each orbit, so the count of paths reaching an
orbit obeys the same recurrence as in the full graph. Detection is conservative: a class is
formed only when its names and values occur nowhere else in the scenario, and never for ops
whose behaviour depends on the order of values (vmsplice snapshots the smallest one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.kernel import OPS
from engine.lang.ir import Op, Scenario, cpus_of
from engine.state import Actor, Expected, World

# Ops whose steps read a value set by position (gup.hold's pipe snapshot takes allowed[0]).
ORDER_DEPENDENT = frozenset({"vmsplice"})
MEMO_LIMIT = 200_000  # see explore.RECENT_LIMIT


@dataclass(frozen=True, slots=True)
class Symmetry:
    """Classes of interchangeable actor indices, with each actor's name and its values (the
    `value`-kind parameters of its ops, in op order)."""

    classes: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    # The CPU each actor runs on, renamed along with it when the members of its class run
    # on CPUs of their own ("" for an actor whose CPU stays: no CPUs, or one shared by the
    # whole class). Swapping two actors' states moves each one's TLB entries to the other's
    # CPU, since an actor's CPU is fixed by its place (Model.cpus).
    cpus: tuple[str, ...] = ()
    # Signatures by (actor index, actor state): an actor's states recur across many worlds,
    # and renaming one to compare it is most of the cost of canonical().
    memo: dict[tuple[int, Actor], str] = field(default_factory=dict, compare=False, repr=False)
    # Renamed parts of worlds by (mapping, part): the same few parts recur under the same
    # few permutations, and hashing a part is far cheaper than renaming it.
    renamed: dict[tuple[tuple[tuple[str, str], ...], object], Any] = field(
        default_factory=dict, compare=False, repr=False
    )

    def canonical(
        self, world: World, base: World | None = None
    ) -> tuple[World, tuple[int, ...] | None]:
        """The orbit's representative and `perm`: perm[i] is the slot that actor i's state
        went to (None, and the world itself, when it is canonical already).

        `base`, if given, is a canonical world that `world` was reached from: when no member
        of any class changed state, the members are in base's (canonical) order still."""
        if base is not None:
            now, before = world.actors, base.actors
            if all(now[i] is before[i] for members in self.classes for i in members):
                return world, None
        moves: list[tuple[int, int]] = []  # (source actor, target slot)
        for members in self.classes:
            order = sorted(members, key=lambda i: (self._signature(world.actors[i], i), i))
            moves.extend((src, dst) for src, dst in zip(order, members, strict=True))
        if all(src == dst for src, dst in moves):
            return world, None
        mapping: dict[str, str] = {}
        perm = list(range(len(world.actors)))
        for src, dst in moves:
            perm[src] = dst
            if src != dst:
                mapping[self.names[src]] = self.names[dst]
                mapping.update(zip(self.values[src], self.values[dst], strict=True))
                if self.cpus and self.cpus[src]:
                    mapping[self.cpus[src]] = self.cpus[dst]
        renamer = Renamer(mapping, self.renamed)
        # Every actor is renamed, not only the members: another actor's registers can hold
        # a member's value or name (ksmd's snapshot of the data it compares, a lock owner).
        actors = [renamer(actor) for actor in world.actors]
        for src, dst in moves:
            actors[dst] = renamer(world.actors[src])
        return _renamed_world(world, tuple(actors), renamer), tuple(perm)

    def _signature(self, actor: Actor, index: int) -> str:
        """The actor's own state with its name and values replaced by placeholders: equal for
        two members exactly when swapping them maps one's state onto the other's."""
        key = (index, actor)
        sig = self.memo.get(key)
        if sig is None:
            own = {self.names[index]: "\x00self"}
            own.update((v, f"\x00v{k}") for k, v in enumerate(self.values[index]))
            sig = repr(_rename(actor, own))
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            self.memo[key] = sig
        return sig


def detect(scenario: Scenario) -> Symmetry | None:
    """The interchangeable actors of `scenario`, or None when there are none."""
    names = tuple(a.name for a in scenario.actors)
    values = tuple(_values(a.ops) for a in scenario.actors)
    cpus = cpus_of(scenario.actors)
    moved_cpus = [""] * len(names)
    shapes: dict[str, list[int]] = {}
    for i, actor in enumerate(scenario.actors):
        if any(op.kind in ORDER_DEPENDENT for op in actor.ops):
            continue
        shapes.setdefault(repr(_shape(actor.ops)), []).append(i)
    classes = []
    renamed = list(values)
    for members in shapes.values():
        if len(members) < 2:
            continue
        # A value position where every member writes the same value needs no renaming.
        differ = [
            k for k in range(len(values[members[0]])) if len({values[i][k] for i in members}) > 1
        ]
        own_values = {i: tuple(values[i][k] for k in differ) for i in members}
        shared = {values[members[0]][k] for k in range(len(values[members[0]])) if k not in differ}
        own = {names[i] for i in members} | {v for i in members for v in own_values[i]}
        distinct = all(len(set(own_values[i])) == len(own_values[i]) for i in members)
        # CPUs: the members share one (swapping them leaves every TLB where it is), or each
        # runs on its own, which no other actor uses (its CPU is renamed with it).
        member_cpus = {cpus[i] for i in members}
        others = {cpus[i] for i in range(len(names)) if i not in members}
        own_cpus = len(member_cpus) == len(members) and not member_cpus & others
        if len(member_cpus) > 1 and not own_cpus:
            continue
        if own_cpus and len(member_cpus) > 1:
            own |= member_cpus
        if (
            distinct
            and not own & (shared | _other_strings(scenario, members) | others)
            and _disjoint(own_values, members)
        ):
            classes.append(tuple(members))
            for i in members:
                renamed[i] = own_values[i]
                if len(member_cpus) > 1:
                    moved_cpus[i] = cpus[i]
    if not classes:
        return None
    return Symmetry(tuple(classes), names, tuple(renamed), tuple(moved_cpus))


def _values(ops: tuple[Op, ...]) -> tuple[str, ...]:
    out = []
    for op in ops:
        for param in OPS[op.kind].params:
            if param.kind == "value" and op.params.get(param.name) is not None:
                out.append(str(op.params[param.name]))
    return tuple(out)


def _shape(ops: tuple[Op, ...]) -> tuple[tuple[str, tuple[tuple[str, object], ...]], ...]:
    """The ops with every value parameter blanked out."""
    out = []
    for op in ops:
        kinds = {p.name: p.kind for p in OPS[op.kind].params}
        params = tuple(
            sorted((k, "" if kinds.get(k) == "value" else v) for k, v in op.params.items())
        )
        out.append((op.kind, params))
    return tuple(out)


def _disjoint(values: Mapping[int, tuple[str, ...]], members: list[int]) -> bool:
    """No two members share a value (a shared one could not be swapped independently)."""
    seen: set[str] = set()
    for i in members:
        if seen & set(values[i]):
            return False
        seen |= set(values[i])
    return True


def _other_strings(scenario: Scenario, members: list[int]) -> set[str]:
    """Every string of the scenario outside the members' names and value parameters: the
    setup's ops, the files' data, the other actors, the members' other parameters, and the
    values the engine itself writes ("0")."""
    out: set[str] = {"0", "app"}
    out.update(scenario.files.keys())
    out.update(scenario.files.values())
    for op in scenario.setup:
        out.update(_strings(op.params))
    for i, actor in enumerate(scenario.actors):
        if i not in members:
            out.add(actor.name)
        for op in actor.ops:
            kinds = {p.name: p.kind for p in OPS[op.kind].params}
            keep = (
                op.params
                if i not in members
                else {k: v for k, v in op.params.items() if kinds.get(k) != "value"}
            )
            out.update(_strings(keep))
    return out


def _strings(params: Mapping[str, object]) -> set[str]:
    return {str(v) for v in params.values() if v is not None and not isinstance(v, bool)}


def _rename(x: Any, mapping: Mapping[str, str]) -> Any:
    """x with every string that `mapping` names replaced, through tuples and named tuples."""
    kind = type(x)
    if kind is str:
        return mapping.get(x, x)
    if kind is tuple:
        return tuple([_rename(y, mapping) for y in x])
    if isinstance(x, tuple):  # a named tuple
        return kind(*[_rename(y, mapping) for y in x])
    return x


class Renamer:
    """_rename under one mapping, remembering the parts it has renamed before."""

    def __init__(self, mapping: dict[str, str], memo: dict[Any, Any]) -> None:
        self.mapping = mapping
        self.key = tuple(sorted(mapping.items()))
        self.memo = memo

    def __call__(self, part: Any) -> Any:
        key = (self.key, part)
        done = self.memo.get(key)
        if done is None:
            done = _rename(part, self.mapping)
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            self.memo[key] = done
        return done


def _renamed_world(world: World, actors: tuple[Actor, ...], rename: Renamer) -> World:
    """The world with names and values renamed, re-sorted where the code keeps sets sorted."""
    expect = tuple(
        sorted(
            (
                (rename.mapping.get(key, key), _sorted_expected(rename(e)))
                for key, e in world.expect
            ),
            key=lambda t: t[0],
        )
    )
    return world.evolve(
        pages=rename(world.pages),
        procs=rename(world.procs),
        files=rename(world.files),
        swap=rename(world.swap),
        expect=expect,
        writers=tuple(sorted(rename(world.writers))),
        actors=actors,
        # The sets of actors (and, for the TLBs, of CPUs) the code keeps sorted.
        swap_users=_resorted(world.swap_users, rename),
        tlb=_resorted(world.tlb, rename),
        irq_off=_resorted(world.irq_off, rename),
        walks=_resorted(world.walks, rename),
    )


def _resorted(part: tuple[Any, ...], rename: Renamer) -> tuple[Any, ...]:
    return tuple(sorted(rename(part))) if part else part


def _sorted_expected(e: Expected) -> Expected:
    return e.evolve(allowed=tuple(sorted(e.allowed)))
