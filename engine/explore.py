"""Exhaustive exploration of every interleaving, with state caching and path counting.

Breadth-first over distinct states (each expanded once), so the first path found
to any state is a shortest one. The number of complete interleavings is the
number of paths from the initial state to terminal states, counted over the
state graph in topological order (Python integers: exact at any size). Outcomes
group terminal states by violations and by what became of the first page.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import compress
from operator import is_not
from typing import ClassVar

from engine.fixes import Config
from engine.kernel.machine import Effect
from engine.lang.ir import Scenario
from engine.model import Model
from engine.state import World
from engine.symmetry import detect

Progress = Callable[[int, int], None]
# How a stored state was first reached: (parent state, actor slot, the permutation that
# made the successor canonical, None for none).
Parent = tuple[int, int, tuple[int, ...] | None]
Cancel = Callable[[], bool]
REPORT_EVERY = 2048


class _Collector:
    """Who has paused the cyclic garbage collector, and whether it ran before."""

    # ClassVar: shared by every exploration (and what mypyc needs to compile this module).
    lock: ClassVar[threading.Lock] = threading.Lock()
    pausers: ClassVar[int] = 0
    was_enabled: ClassVar[bool] = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while exploring.

    Every world the explorer keeps is a tracked container (CPython never untracks a
    tuple subclass), so each full collection walks all of them: a third of the time
    at 127k states, and no garbage found, since worlds form no cycles. Reference
    counting still frees everything else. Explorations may run in several threads
    at once: the collector resumes when the last one ends, if it ran before the first.
    """
    with _Collector.lock:
        if _Collector.pausers == 0:
            _Collector.was_enabled = gc.isenabled()
            gc.disable()
        _Collector.pausers += 1
    try:
        yield
    finally:
        with _Collector.lock:
            _Collector.pausers -= 1
            if _Collector.pausers == 0 and _Collector.was_enabled:
                gc.enable()


@dataclass(frozen=True, slots=True)
class Outcome:
    label: str
    violations: tuple[str, ...]
    interleavings: int
    example: tuple[str, ...]
    message: str = ""  # the first violation's sentence on the example run
    # The point of no return: after this many steps of the example, every continuation
    # breaks an invariant (-1 when not known: a cut-off search, or no violation).
    no_return: int = -1


@dataclass(frozen=True, slots=True)
class Exploration:
    states: int
    transitions: int
    interleavings: int
    outcomes: tuple[Outcome, ...]
    truncated: bool
    elapsed_ms: float
    cycle: bool = False
    # Set by engine.first.find_first: the search stopped at the first violation it found
    # (with this many preemptions), before covering the space; no counts are known.
    first_bug: bool = False
    preemptions: int = 0

    # Jupyter's rich display (engine/notebook.py), imported when called: it imports this.
    def _repr_html_(self) -> str:
        from engine.notebook import exploration_html

        return exploration_html(self)

    def _repr_markdown_(self) -> str:
        from engine.notebook import exploration_markdown

        return exploration_markdown(self)


@collector_paused()
def explore(
    scenario: Scenario,
    config: Config,
    *,
    max_states: int = 200_000,
    time_limit_s: float = 10.0,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    symmetry: bool = True,
    frontier_worlds: int = 50_000,
) -> Exploration:
    """Search all interleavings of the scenario's actors under `config`.

    With `symmetry`, interchangeable actors (engine.symmetry) share one stored world per
    orbit; each concrete move is still one edge, so the counts stay exact.

    What is stored per state is compact: its world as a short byte string (`Codec`), its
    edges and its first parent in integer arrays. A world itself lives only until its state
    is expanded, and only while the frontier is under `frontier_worlds`: beyond, a state
    waits as its key and its world is decoded when it is expanded.
    """
    began = time.perf_counter()
    model = Model(scenario, config)
    sym = detect(scenario) if symmetry else None
    codec = Codec()
    steps = StepCache(model, codec)
    orbits: dict[bytes, tuple[World, tuple[int, ...] | None, bytes, list[bytes]]] = {}
    init = model.initial()
    plain_init = sym is not None and sym.canonical(init)[1] is None
    key, segments = codec.encode(init)
    ids: dict[bytes, int] = {key: 0}
    # The frontier: worlds to expand, with their segments; past `frontier_worlds` of them, only
    # their keys (a wide search would otherwise hold a large part of its space as worlds).
    pending: deque[tuple[World, list[bytes]] | bytes] = deque([(init, segments)])
    graph = Graph()
    # Graph.expand and Graph.edge, inlined: one call each per state and per move.
    starts, targets = graph.starts.append, graph.targets
    edge = targets.append
    parents = Parents()
    parents.add(-1, -1, None)
    terminal: dict[int, tuple[tuple[str, ...], str, str]] = {}
    transitions = 0
    truncated = False
    sid = -1
    while pending:
        sid += 1  # states are expanded in the order they were found
        if sid % REPORT_EVERY == 0 and sid:
            if progress is not None:
                progress(len(ids), transitions)
            if (cancel is not None and cancel()) or time.perf_counter() - began > time_limit_s:
                truncated = True
                break
        entry = pending.popleft()
        world, segments = codec.decode(entry) if isinstance(entry, bytes) else entry
        starts(len(targets))  # graph.expand()
        moves = steps.moves(world, segments)
        if not moves:
            final, events = model.conclude(world)
            message = events[0][1] if events else ""
            terminal[sid] = (final.violations, model.label(final), message)
            continue
        for actor, nxt_segments, made in moves:
            transitions += 1
            fresh = len(ids)
            perm = None
            key = b"".join(nxt_segments)
            nxt_world: World | None = None
            if sym is not None:
                # The orbit's representative, by the key of the world the move reached: most
                # moves reach a world seen before, and the key costs far less than canonical().
                known = orbits.get(key)
                if known is None:
                    # A stored world is canonical, and so is the initial one unless checked not.
                    base = world if sid or plain_init else None
                    canon, perm = sym.canonical(steps.world(world, actor, made), base)
                    raw = key
                    if perm is not None:
                        key, nxt_segments = codec.encode(canon, world, segments)
                    if len(orbits) >= ORBIT_CACHE_LIMIT:
                        orbits.clear()
                    orbits[raw] = known = (canon, perm, key, nxt_segments)
                nxt_world, perm, key, nxt_segments = known
            if fresh < max_states:
                # One hash per successor, of a short byte string (a bytes object keeps it).
                nxt = ids.setdefault(key, fresh)
            else:
                found = ids.get(key)
                if found is None:
                    truncated = True
                    continue
                nxt = found
            if nxt == fresh:
                if len(pending) >= frontier_worlds:
                    pending.append(key)
                else:
                    if nxt_world is None:
                        nxt_world = steps.world(world, actor, made)
                    pending.append((nxt_world, nxt_segments))
                parents.add(sid, actor, perm)
            edge(nxt)  # graph.edge(nxt)
    del pending  # the unexpanded frontier of a cut-off search: no longer needed
    graph.close(len(ids))
    paths, order = count_paths(graph)
    cycle = len(order) != len(ids)
    doomed = None if truncated or cycle else doomed_states(graph, order, terminal)
    outcomes = tuple(
        with_message(model, o) for o in group(terminal, paths, parents, model.names, doomed)
    )
    return Exploration(
        states=len(ids),
        transitions=transitions,
        interleavings=sum(o.interleavings for o in outcomes),
        outcomes=outcomes,
        truncated=truncated or cycle,
        elapsed_ms=round((time.perf_counter() - began) * 1000, 2),
        cycle=cycle,
    )


FIELDS = range(len(World._fields))
_new = tuple.__new__  # World._make without its Python frame
# The caches below are bounded by entries and cleared when full. Clearing throws away what a
# wide search keeps needing: at growth n=5 (80k states, 305k moves) limits of 20k entries
# cleared the step cache nine times and cost half the search's time; these limits hold a
# 5-actor search's working set in about 200 MB, and any search's caches stay bounded.
RECENT_LIMIT = 100_000
WIDE = 255  # the first byte of a segment whose codes do not all fit in a byte


class Codec:
    """Worlds as short byte strings, equal exactly when the worlds are equal.

    Each of World's fields is encoded on its own, whatever the fields are (new fields are
    encoded like the others): a tuple as its length and one code per element, anything else
    as one code. A code numbers a value in that field's table in the order values were first
    seen, so the tables hold each distinct page, actor, PTE... once, however many worlds
    share it. A field's segment is its codes as bytes (one byte each) when all are below
    WIDE, else WIDE then 4-byte codes; the first code (length + 1, or 0 for a non-tuple)
    says how long the segment is, so the concatenation is unambiguous.

    Successors share most fields (and most actors) with the world they came from, as the
    same objects: `encode` reuses the base world's segments and codes for those, and looks
    up only what changed. A code is never reassigned, so a world always gets the same key.
    """

    __slots__ = ("decoded", "recent", "tables", "values")

    def __init__(self) -> None:
        self.tables: list[dict[object, int]] = [{} for _ in World._fields]
        self.values: list[list[object]] = [[] for _ in World._fields]  # by code
        self.decoded: list[dict[bytes, object]] = [{} for _ in World._fields]  # see decode
        # Each field's recent values and their segments: a state is reached again and again
        # (three moves in four lead to a known one) and hashing a field's value in C is far
        # cheaper than coding its elements in Python. Bounded: cleared when full.
        self.recent: list[dict[object, bytes]] = [{} for _ in World._fields]

    def encode(
        self, world: World, base: World | None = None, base_segments: list[bytes] | None = None
    ) -> tuple[bytes, list[bytes]]:
        """The world's key and its segments (to pass as `base_segments` for its successors)."""
        if base is None or base_segments is None:
            segments = [self._segment(i, v, None, b"") for i, v in enumerate(world)]
        else:
            segments = base_segments.copy()
            # Only the fields the step replaced (compress and map run in C: no Python-level
            # loop over the fields it kept).
            for i in compress(FIELDS, map(is_not, world, base)):
                value = world[i]
                recent = self.recent[i]
                segment = recent.get(value)
                if segment is None:
                    segment = self._segment(i, value, base[i], base_segments[i])
                    if len(recent) >= RECENT_LIMIT:
                        recent.clear()
                    recent[value] = segment
                segments[i] = segment
        return b"".join(segments), segments

    def _segment(self, field: int, value: object, old: object, old_segment: bytes) -> bytes:
        table = self.tables[field]
        if not isinstance(value, tuple):
            code = table.get(value)
            if code is None:
                code = table[value] = len(table)
                self.values[field].append(value)
            return bytes((0, code)) if code < WIDE else self._wide([0, code])
        if isinstance(old, tuple) and len(old) == len(value) and old_segment[0] != WIDE:
            # The same length, in one-byte codes: elements kept as the same objects keep
            # their codes (an actor that did not move, a page the step did not touch).
            narrow = bytearray(old_segment)
            for j in compress(range(len(value)), map(is_not, value, old)):
                code = table.get(value[j])
                if code is None:
                    code = table[value[j]] = len(table)
                    self.values[field].append(value[j])
                if code >= WIDE:
                    break
                narrow[j + 1] = code
            else:
                return bytes(narrow)
        codes = [len(value) + 1]
        for element in value:
            code = table.get(element)
            if code is None:
                code = table[element] = len(table)
                self.values[field].append(element)
            codes.append(code)
        return bytes(codes) if max(codes) < WIDE else self._wide(codes)

    @staticmethod
    def _wide(codes: list[int]) -> bytes:
        return bytes((WIDE,)) + array("I", codes).tobytes()

    def decode(self, key: bytes) -> tuple[World, list[bytes]]:
        """The world a key stands for (equal to the one encoded), and its segments."""
        parts: list[object] = []
        segments: list[bytes] = []
        at = 0
        for field, values in enumerate(self.values):
            wide = key[at] == WIDE
            if wide:
                first = int.from_bytes(key[at + 1 : at + 5], sys.byteorder)
                end = at + 1 + 4 * (1 + (first - 1 if first else 1))
            else:
                first = key[at]
                end = at + 1 + (first - 1 if first else 1)
            segment = key[at:end]
            # Most segments recur (a field takes few values): rebuilding a tuple of its
            # elements is dearer than looking the segment up.
            known = self.decoded[field]
            value = known.get(segment, known)
            if value is known:
                codes: Sequence[int] = array("I", segment[5:]) if wide else segment[1:]
                value = tuple([values[c] for c in codes]) if first else values[codes[0]]
                if len(known) >= RECENT_LIMIT:
                    known.clear()
                known[segment] = value
            parts.append(value)
            segments.append(segment)
            at = end
        return _new(World, parts), segments


ACTORS = World._fields.index("actors")
STEP_CACHE_LIMIT = 200_000
ORBIT_CACHE_LIMIT = 100_000


# A move as StepCache.moves gives it: the actor, the successor's segments, and the successor
# itself or what builds it (StepCache.world): most moves reach a state seen before, whose
# world is never needed.
Move = tuple[int, list[bytes], "World | tuple[tuple[int, ...], World]"]


class StepCache:
    """Successors, remembering each step by what it can read: the actor, its state and the
    world but for the actors.

    A kernel step reads and changes its own actor (Ctx.me) and the shared world, never
    another actor's state (the lock holders and owners it reads are names in the shared
    world). So one actor's step from two worlds that differ only in other actors' states
    does the same thing, and spaces are full of such worlds: the other actors' positions
    multiply the states while the shared world takes a few values. A remembered step is
    applied to the world at hand: the fields it replaced, and its actor's new state.

    It also remembers the segments (Codec) of what the step replaced, and its actor's new
    code, so a remembered move's key is spliced from the world's segments without encoding,
    and its world is built only when asked for (`world`): a move to a known state needs none.
    """

    __slots__ = ("codec", "memo", "model")

    def __init__(self, model: Model, codec: Codec) -> None:
        self.model = model
        self.codec = codec
        # (actor, its state's code (or the state, in a wide segment), the world's segments
        # but the actors') -> None (not enabled), or (the fields the step replaced, its
        # world, those fields' segments, the actor's new code or -1 when wide).
        self.memo: dict[
            tuple[int, object, bytes],
            tuple[tuple[int, ...], World, tuple[bytes, ...], int] | None,
        ] = {}

    def successors(self, world: World, segments: list[bytes]) -> list[tuple[int, World]]:
        """Each enabled actor and the world its step reaches."""
        return [(i, self.world(world, i, made)) for i, _, made in self.moves(world, segments)]

    def moves(self, world: World, segments: list[bytes]) -> list[Move]:
        """Each enabled actor's move, with the segments of the world it reaches."""
        shared = b"".join(segments[:ACTORS] + segments[ACTORS + 1 :])
        memo = self.memo
        out: list[Move] = []
        codes = segments[ACTORS]
        narrow = codes[0] != WIDE
        actors = world.actors
        for i, me in enumerate(actors):
            key = (i, codes[i + 1] if narrow else me, shared)
            if key in memo:
                known = memo[key]
                if known is None:
                    continue
                replaced, done, replaced_segments, code = known
                if narrow and code >= 0:
                    nxt_segments = segments.copy()
                    for f, segment in zip(replaced, replaced_segments, strict=True):
                        nxt_segments[f] = segment
                    moved = bytearray(codes)
                    moved[i + 1] = code
                    nxt_segments[ACTORS] = bytes(moved)
                    out.append((i, nxt_segments, (replaced, done)))
                else:
                    nxt = self.world(world, i, (replaced, done))
                    out.append((i, self.codec.encode(nxt, world, segments)[1], nxt))
                continue
            result = self.model.step(world, i)
            if len(memo) >= STEP_CACHE_LIMIT:
                memo.clear()
            if isinstance(result, Effect):
                nxt = result.world
                replaced = tuple(
                    [f for f in compress(FIELDS, map(is_not, nxt, world)) if f != ACTORS]
                )
                nxt_segments = self.codec.encode(nxt, world, segments)[1]
                moved_codes = nxt_segments[ACTORS]
                code = moved_codes[i + 1] if moved_codes[0] != WIDE else -1
                memo[key] = (replaced, nxt, tuple([nxt_segments[f] for f in replaced]), code)
                out.append((i, nxt_segments, nxt))
            else:
                memo[key] = None
        return out

    @staticmethod
    def world(world: World, i: int, made: World | tuple[tuple[int, ...], World]) -> World:
        """The world a move from `world` by actor i reaches (`made` as `moves` gave it)."""
        if isinstance(made, World):
            return made
        replaced, done = made
        parts = list(world)
        for f in replaced:
            parts[f] = done[f]
        moved = list(world.actors)
        moved[i] = done.actors[i]
        parts[ACTORS] = tuple(moved)
        return _new(World, parts)


class Graph:
    """The state graph as integer arrays (compressed sparse rows): the successors of state s
    are `targets[starts[s]:starts[s + 1]]`. States are expanded in order, so each state's
    edges are appended after the previous state's."""

    __slots__ = ("starts", "targets")

    def __init__(self) -> None:
        self.starts = array("q")
        self.targets = array("q")

    def expand(self) -> None:
        """The next state's edges begin here."""
        self.starts.append(len(self.targets))

    def edge(self, target: int) -> None:
        self.targets.append(target)

    def close(self, n: int) -> None:
        """Give the states never expanded (a cut-off search) no edges, and end the rows."""
        end = len(self.targets)
        self.starts.extend([end] * (n + 1 - len(self.starts)))

    def __len__(self) -> int:
        return len(self.starts) - 1

    def out(self, s: int) -> array[int]:
        return self.targets[self.starts[s] : self.starts[s + 1]]


class Parents:
    """How each stored state was first reached, as integer arrays (see `Parent`)."""

    __slots__ = ("actor", "perm", "perm_ids", "perms", "state")

    def __init__(self) -> None:
        self.state = array("q")
        self.actor = array("i")
        self.perm = array("i")  # an index into `perms`, -1 for none
        # The few distinct permutations (at most the orbits' symmetries), stored once each.
        self.perms: list[tuple[int, ...]] = []
        self.perm_ids: dict[tuple[int, ...], int] = {}

    def add(self, state: int, actor: int, perm: tuple[int, ...] | None) -> None:
        self.state.append(state)
        self.actor.append(actor)
        if perm is None:
            self.perm.append(-1)
            return
        index = self.perm_ids.get(perm)
        if index is None:
            index = self.perm_ids[perm] = len(self.perms)
            self.perms.append(perm)
        self.perm.append(index)

    def __getitem__(self, sid: int) -> Parent:
        index = self.perm[sid]
        return self.state[sid], self.actor[sid], None if index < 0 else self.perms[index]


def with_message(model: Model, outcome: Outcome) -> Outcome:
    """The example's first violation sentence (the state keeps names only, not sentences)."""
    if not outcome.violations or outcome.message:
        return outcome
    return replace(outcome, message=first_message(model, outcome.example))


def first_message(model: Model, schedule: tuple[str, ...]) -> str:
    """What run_schedule would report first, without building the views a run carries."""
    world = model.initial()
    names = model.names
    for name in schedule:
        effect = model.step(world, names.index(name))
        assert isinstance(effect, Effect), f"{name} cannot move on an explored path"
        if effect.events:
            return effect.events[0][1]
        world = effect.world
    _, events = model.conclude(world)
    return events[0][1] if events else ""


def count_paths(graph: Graph) -> tuple[list[int], array[int]]:
    """Paths from state 0 to every state, and the topological (Kahn's) order they were
    counted in; on a cycle the order stops short of n instead of looping. (Integer arrays
    but for the counts, which are exact Python integers: the order and the in-degrees would
    otherwise be most of the search's peak memory.)"""
    n = len(graph)
    indegree = array("i", bytes(4 * n))
    for t in graph.targets:
        indegree[t] += 1
    starts, targets = graph.starts, graph.targets
    paths = [0] * n
    paths[0] = 1
    ready = [i for i in range(n) if indegree[i] == 0]
    order = array("q")
    while ready:
        s = ready.pop()
        order.append(s)
        for t in targets[starts[s] : starts[s + 1]]:
            paths[t] += paths[s]
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return paths, order


def doomed_states(
    graph: Graph, order: array[int], terminal: dict[int, tuple[tuple[str, ...], str, str]]
) -> list[bool]:
    """Whether every run from each state breaks an invariant: a terminal state with a
    violation is doomed, and so is a state all of whose successors are (reverse topological
    order). The first doomed state of an example is its point of no return."""
    doomed = [False] * len(graph)
    for s in reversed(order):
        if s in terminal:
            doomed[s] = bool(terminal[s][0])
        else:
            doomed[s] = all(doomed[t] for t in graph.out(s))
    return doomed


def path_states(parent: Parents, sid: int) -> list[int]:
    """The stored states along the first path to `sid`, from the initial state."""
    states = [sid]
    while parent[sid][0] >= 0:
        sid = parent[sid][0]
        states.append(sid)
    return states[::-1]


def example(parent: Parents, sid: int, names: tuple[str, ...]) -> tuple[str, ...]:
    """The schedule of named actors that reaches state `sid`.

    Under symmetry a stored world may be a relabelled copy of the one the moves reached:
    `where[r]` is the concrete actor that the representative's slot r stands for, updated
    through each move's permutation (perm[i]: the slot concrete actor i was moved to).
    """
    moves = []
    while parent[sid][0] >= 0:
        sid, actor, perm = parent[sid]
        moves.append((actor, perm))
    where = list(range(len(names)))
    path = []
    for actor, perm in reversed(moves):
        path.append(names[where[actor]])
        if perm is not None:
            inverse = [0] * len(perm)
            for i, slot in enumerate(perm):
                inverse[slot] = i
            where = [where[inverse[r]] for r in range(len(perm))]
    return tuple(path)


def group(
    terminal: dict[int, tuple[tuple[str, ...], str, str]],
    paths: list[int],
    parent: Parents,
    names: tuple[str, ...],
    doomed: list[bool] | None = None,
) -> tuple[Outcome, ...]:
    counts: dict[tuple[tuple[str, ...], str], int] = {}
    first: dict[tuple[tuple[str, ...], str], tuple[int, str]] = {}
    for sid in sorted(terminal):  # BFS order: the first is a shortest example
        violations, label, message = terminal[sid]
        key = (violations, label)
        counts[key] = counts.get(key, 0) + paths[sid]
        first.setdefault(key, (sid, message))
    outcomes = [
        Outcome(
            label,
            violations,
            counts[(violations, label)],
            example(parent, first[(violations, label)][0], names),
            first[(violations, label)][1],
            no_return(parent, first[(violations, label)][0], doomed) if violations else -1,
        )
        for (violations, label) in counts
    ]
    outcomes.sort(key=lambda o: (not o.violations, -o.interleavings, o.label))
    return tuple(outcomes)


def no_return(parent: Parents, sid: int, doomed: list[bool] | None) -> int:
    """How many steps of the example lead to its point of no return (-1: not known)."""
    if doomed is None:
        return -1
    return next(i for i, s in enumerate(path_states(parent, sid)) if doomed[s])


def reachable_violations(exp: Exploration) -> set[str]:
    return {v for o in exp.outcomes for v in o.violations}
