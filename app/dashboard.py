"""Everything the scenario dashboard shows for one link, computed on the server.

`build_dashboard` turns a scenario and the link's parameters (variant, schedule, step, digest)
into view data. Links outlive scenario edits and kernels, so nothing here raises for a stale or
odd link: problems become notices and the schedule is replayed as far as it still applies.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

import engine
from app import figures
from app.context import About, about
from app.doom import lost_sentence, no_return_of
from app.links import join_names
from app.panels import StatePanel, state_panel
from app.runref import RunRef
from app.service import replay_lenient
from app.urls import APP, Urls
from app.verdict_strip import STRIPS
from engine.lang.catalog import CATALOG_DIR
from engine.lang.ir import cpus_of

Side = engine.Side
LineStatus = Literal["done", "next", "todo"]
OpStatus = Literal["done", "current", "todo"]


@dataclass(frozen=True, slots=True)
class Notice:
    kind: Literal["info", "warn"]
    text: str


@dataclass(frozen=True, slots=True)
class StepLine:
    function: str
    status: LineStatus
    index: int | None = None  # the step index, for done lines
    note: str = ""


@dataclass(frozen=True, slots=True)
class OpView:
    text: str
    status: OpStatus
    lines: tuple[StepLine, ...]


@dataclass(frozen=True, slots=True)
class Link:
    """A dashboard position as the page's address (an href: no script, a new tab) and its frame
    fragment (the hx-get that swaps it in place)."""

    page: str
    frame: str
    # What a presenter's room is told when this link is followed (a /ws/run message, as JSON
    # text for a data attribute); None: the frame's own `load`.
    intent: str | None = None

    @classmethod
    def to(cls, urls: Urls, sid: str, ref: RunRef, **intent: str | int) -> Link:
        told = json.dumps(intent, separators=(",", ":")) if intent else None
        return cls(urls.page(sid, ref), urls.frame(sid, ref), told)


@dataclass(frozen=True, slots=True)
class Column:
    number: int
    name: str
    label: str
    ops: tuple[OpView, ...]
    enabled: bool
    done: bool
    blocked: str | None
    step: Link | None  # its Step button, when the actor can run
    cpu: str = ""  # the CPU it runs on, in a scenario with TLBs
    # What that step would do, before it is taken (Spectacle's successor view, issue 15
    # item 7): its kernel function and sentence.
    preview: str | None = None


@dataclass(frozen=True, slots=True)
class VariantChoice:
    name: str
    kernel: str
    active: bool
    link: Link


@dataclass(frozen=True, slots=True)
class Nav:
    first: Link | None
    back: Link | None
    forward: Link | None
    last: Link | None


@dataclass(frozen=True, slots=True)
class ABRow:
    index: int
    a: Side | None  # kernel A's step (None: its run has ended)
    b: Side | None
    differs: bool
    focus: bool


@dataclass(frozen=True, slots=True)
class ABSide:
    kernel: str  # "5.17 (buggy)"
    step: Side | None  # at the focused difference
    pages: tuple[str, ...]  # each page after that step: "P0 ref=3 (1 mappings + ...) map=1"
    verdict: str  # how the whole schedule ends on this kernel


@dataclass(frozen=True, slots=True)
class ABView:
    """Kernel A (the one switched from) and kernel B (shown) on the same schedule."""

    a: ABSide
    b: ABSide
    focus: int  # the step of the difference shown side by side
    number: int  # which difference it is (1-based) of `count`
    count: int
    first: int  # the first differing step
    why: str  # the switch responsible for the first difference, in words
    rows: tuple[ABRow, ...]
    previous: Link | None
    next: Link | None


@dataclass(frozen=True, slots=True)
class ExportLink:
    label: str
    hint: str  # the tooltip: what opens the file
    url: str


# The dashboard's Export links: the whole applied schedule, as the page's link names it.
EXPORTS = (
    ("perfetto", "Perfetto", "Chrome trace-event JSON: open it at ui.perfetto.dev"),
    ("jsonl", "JSONL", "JSON Lines: the run, then one object per step"),
    ("svg", "SVG", "the timeline as an SVG image"),
    ("md", "Markdown", "the diagram as Markdown, for mailing lists and issues"),
)


@dataclass(frozen=True, slots=True)
class Dashboard:
    scenario: engine.Scenario
    config: engine.Config
    kernel: str
    variant: str | None
    variants: tuple[VariantChoice, ...]
    schedule: tuple[str, ...]
    at: int
    total: int
    step: engine.Step | None
    run: engine.Trace  # at step `at`
    full: engine.Trace  # the whole applied schedule
    columns: tuple[Column, ...]
    panel: StatePanel
    narration: str
    violations: tuple[engine.Violation, ...]
    status: str
    notices: tuple[Notice, ...]
    nav: Nav
    ref: RunRef  # the link of the step shown
    page_url: str
    frame_url: str
    find_bug_url: str
    outcomes_url: str
    fix_url: str  # which single switch removes this run's violation (on demand)
    edit_url: str  # the editor on a copy of this scenario
    present_url: str  # this step in presenter mode
    differing: tuple[int, ...] = ()
    ab: ABView | None = None  # after a kernel switch: the two kernels side by side
    ref_compare: str | None = None  # the variant the A/B view compares with (cmp=)
    # Where the whole applied schedule becomes lost (None: never, or too big to tell).
    no_return: engine.NoReturn | None = None
    no_return_text: str = ""  # the narration's sentence about it, at or after that step
    about: About | None = None  # what the scenario is, for the page header
    exports: tuple[ExportLink, ...] = ()  # the run shown, as files (app/routes/exports.py)
    data: dict[str, Any] = field(default_factory=dict)  # for the page's JSON island

    @property
    def unfurl(self) -> str:
        """What a shared link shows in a chat or a mail (OpenGraph/Twitter description): the
        kernel, the verdict at the linked step, then what the scenario is."""
        kernel = f"Kernel {self.kernel}" + (f" ({self.variant})" if self.variant else "")
        broken = sorted({v.name for v in self.violations})
        verdict = f"breaks {', '.join(broken)}" if broken else "no invariant broken"
        summary = " ".join(self.scenario.summary.split())
        if len(summary) > 200:
            summary = summary[:199].rstrip() + "…"
        return f"{kernel}: {verdict} at step {self.at} of {self.total}. {summary}".strip()


def config_for(
    scenario: engine.Scenario, variant: str | None, notices: list[Notice]
) -> engine.Config:
    if variant is not None:
        try:
            return engine.make_config(scenario, variant=variant)
        except engine.ConfigError:
            config = engine.make_config(scenario)
            names = join_names([f"{v.name} ({v.kernel})" for v in scenario.variants])
            shown = f"{config.variant} ({config.kernel})" if config.variant else config.kernel
            notices.append(
                Notice(
                    "warn",
                    f"This scenario has no variant {variant!r}; its variants are {names}. "
                    f"Showing {shown}.",
                )
            )
            return config
    return engine.make_config(scenario)


def variant_for_kernel(scenario: engine.Scenario, kernel: str, notices: list[Notice]) -> str | None:
    """The variant a link's kernel= names: links choose a kernel through the scenario's own
    variants (v=), so kernel=5.18 means the variant modelled on 5.18, if there is one."""
    for v in scenario.variants:
        if v.kernel == kernel:
            return v.name
    names = join_names([f"{v.name} ({v.kernel})" for v in scenario.variants])
    notices.append(
        Notice(
            "warn",
            f"Ignored kernel={kernel[:20]!r}: this scenario models {names}; "
            "pick one with the kernel switch.",
        )
    )
    return None


DIGEST = re.compile(r"[0-9a-f]{12}|[0-9a-f]{64}")


def _replay(
    scenario: engine.Scenario, config: engine.Config, link: RunRef, notices: list[Notice]
) -> engine.Trace:
    replay = replay_lenient(scenario, config, link.schedule)
    if replay.error is not None:
        applied = len(replay.steps)
        wanted = link.schedule[applied] if applied < len(link.schedule) else "?"
        if link.compare and link.compare != config.variant:
            # The user switched kernels: no link is involved, and the engine's "schedule step
            # N:" prefix only repeats the step number.
            why = re.sub(r"^schedule step \d+: ", "", str(replay.error)).rstrip(".")
            notices.append(
                Notice(
                    "warn",
                    f"On kernel {config.kernel} the schedule stops after step {applied}: "
                    f"step {applied + 1} ({wanted}) cannot run here ({why}). Switching back "
                    f"keeps all {len(link.schedule)} steps.",
                )
            )
            return replay
        notices.append(
            Notice(
                "warn",
                f"The link's step {applied + 1} ({wanted}) does not apply on kernel "
                f"{config.kernel}: {str(replay.error).rstrip('.')}. "
                f"Showing the {applied} step(s) before it{_not_replayed(link, applied)}.",
            )
        )
    return replay


def _not_replayed(link: RunRef, applied: int) -> str:
    """The link's steps after the one that does not apply (review M3: they were dropped
    without a word)."""
    later = link.schedule[applied + 1 :]
    if not later:
        return ""
    names = ",".join(later[:12]) + (",..." if len(later) > 12 else "")
    return f"; its {len(later)} later step(s) ({names}) are not replayed either"


def _clamp(link: RunRef, total: int, notices: list[Notice]) -> int:
    if link.at is None:
        return total
    if link.at > total:
        if total == len(link.schedule):  # a cut schedule already has its own notice
            notices.append(Notice("warn", f"Step {link.at} is past the end; showing {total}."))
        return total
    return max(link.at, 0)


def _pages_after(run: engine.Trace, index: int) -> tuple[str, ...]:
    if index > len(run.steps):
        return ()
    out = []
    for page in run.view(index).pages:
        held = " + ".join(f"{n} {name}" for name, n in page.holders if n)
        out.append(
            f"{page.id} ref={page.refcount}"
            + (f" ({held})" if held else "")
            + f" map={page.mapcount} · {page.owner}"
        )
    return tuple(out)


def _verdict(run: engine.Trace) -> str:
    if run.violations:
        return "breaks " + ", ".join(sorted({v.name for v in run.violations}))
    if run.finished:
        return "no invariant broken"
    return f"stops after step {len(run.steps)}"


def _why(comparison: engine.Comparison, b_kernel: str) -> str:
    """ "on 5.18, try_to_unmap_one: <what it does>; the switch: lazyfree_refcount_check
    (6c8e2a256915)": what kernel B does at the first difference and which switch makes it."""
    first = comparison.differences[0]
    doing = (
        f"on {b_kernel}, step {first.index} is {first.b.actor} {first.b.function}: "
        f"{first.b.note.rstrip('.')}"
        if first.b
        else f"on {b_kernel} the run has ended before step {first.index}"
    )
    if comparison.responsible:
        named = "; ".join(
            f"{s.name} {'on' if s.on else 'off'}" + (f" ({s.commit})" if s.commit else "")
            for s in comparison.responsible
        )
        if comparison.jointly:
            return f"{doing}. No single switch explains it; together: {named}."
        return f"{doing}. The switch responsible: {named}."
    if comparison.changed:
        return (
            f"{doing}. No single switch explains it; the kernels differ in "
            f"{', '.join(comparison.changed)}."
        )
    return f"{doing}."


def _ab_view(
    scenario: engine.Scenario,
    link: RunRef,
    config: engine.Config,
    ref: RunRef,
    focus: int | None,
    sid: str,
    urls: Urls,
) -> ABView | None:
    """The A/B view after a kernel switch (cmp= names the variant switched from)."""
    assert link.compare is not None
    try:
        other = engine.make_config(scenario, variant=link.compare)
    except engine.ConfigError:
        return None
    comparison = engine.compare(scenario, other, config, link.schedule)
    if not comparison.differences:
        return None
    indices = comparison.indices
    shown = focus if focus in indices else indices[0]
    number = indices.index(shown) + 1
    diff = comparison.differences[number - 1]

    def go(step: int) -> Link:
        # The board moves to that step on kernel B, still compared with A.
        there = replace(ref, schedule=link.schedule, at=step, compare=link.compare)
        return Link(urls.page(sid, there, diff=step), urls.frame(sid, there, diff=step))

    def label(variant: str | None, kernel: str) -> str:
        return f"{kernel} ({variant})" if variant else kernel

    a_kernel, b_kernel = label(other.variant, other.kernel), label(config.variant, config.kernel)
    length = max(len(comparison.a.steps), len(comparison.b.steps))
    rows = tuple(
        ABRow(
            i,
            engine.Side.of(comparison.a.steps[i - 1]) if i <= len(comparison.a.steps) else None,
            engine.Side.of(comparison.b.steps[i - 1]) if i <= len(comparison.b.steps) else None,
            i in indices,
            i == shown,
        )
        for i in range(1, length + 1)
    )
    return ABView(
        a=ABSide(a_kernel, diff.a, _pages_after(comparison.a, shown), _verdict(comparison.a)),
        b=ABSide(b_kernel, diff.b, _pages_after(comparison.b, shown), _verdict(comparison.b)),
        focus=shown,
        number=number,
        count=len(indices),
        first=indices[0],
        why=_why(comparison, b_kernel),
        rows=rows,
        previous=go(indices[number - 2]) if number > 1 else None,
        next=go(indices[number]) if number < len(indices) else None,
    )


def ab_indices(ab: ABView | None) -> tuple[int, ...]:
    return tuple(row.index for row in ab.rows if row.differs) if ab else ()


def _ranges(indices: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = indices[0]
    for index in [*indices[1:], -1]:
        if index == prev + 1:
            prev = index
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = index
    return ", ".join(parts)


def _op_lines(
    op: engine.Op, status: OpStatus, executed: Sequence[engine.Step], upcoming: str | None
) -> tuple[StepLine, ...]:
    lines = [StepLine(s.function, "done", s.index, s.note) for s in executed]
    if status == "done":
        return tuple(lines)
    if status == "todo":
        return tuple(StepLine(name, "todo") for name in op.steps)
    if upcoming is not None:
        lines.append(StepLine(upcoming, "next"))
        names = list(op.steps)
        # The rest of the op's possible steps after the upcoming one (branches may skip some).
        start = len(executed)
        pos = names.index(upcoming, start) if upcoming in names[start:] else -1
        if pos < 0 and upcoming in names:
            pos = names.index(upcoming)
        if pos >= 0:
            lines += [StepLine(name, "todo") for name in names[pos + 1 :]]
    return tuple(lines)


def _columns(
    scenario: engine.Scenario, run: engine.Trace, ref: RunRef, to: Callable[..., Link]
) -> tuple[Column, ...]:
    executed: dict[tuple[str, int], list[engine.Step]] = defaultdict(list)
    for step in run.steps:
        executed[(step.actor, step.op_index)].append(step)
    views = {view.name: view for view in run.actors}
    cpus = cpus_of(scenario.actors)
    columns = []
    for number, actor in enumerate(scenario.actors, start=1):
        view = views.get(actor.name)
        current = view.op_index if view else 0
        ops = []
        for index, op in enumerate(actor.ops):
            status: OpStatus = (
                "done" if index < current else "current" if index == current else "todo"
            )
            upcoming = view.next_function if view and index == current else None
            lines = _op_lines(op, status, executed[(actor.name, index)], upcoming)
            ops.append(OpView(op.text, status, lines))
        enabled = actor.name in run.enabled
        move = to(ref.stepped(actor.name), type="step", actor=actor.name) if enabled else None
        columns.append(
            Column(
                number,
                actor.name,
                actor.label or actor.name,
                tuple(ops),
                enabled,
                bool(view and view.done),
                view.blocked if view else None,
                move,
                cpus[number - 1],
                _preview(view) if enabled else None,
            )
        )
    return tuple(columns)


def _preview(view: engine.ActorView | None) -> str | None:
    if view is None or view.next_function is None:
        return None
    note = view.next_note or ""
    if note.startswith(f"{view.next_function}("):  # a note that tells the call itself
        return note
    return f"{view.next_function}: {note}" if note else view.next_function


def _nav(ref: RunRef, to: Callable[..., Link], at: int, total: int) -> Nav:
    ahead = ref.schedule[at] if at < total else ""
    return Nav(
        first=to(ref.at_step(0), type="goto", index=0) if at > 0 else None,
        back=to(ref.at_step(at - 1), type="back") if at > 0 else None,
        forward=to(ref.at_step(at + 1), type="step", actor=ahead) if at < total else None,
        last=to(ref.at_step(total), type="goto", index=total) if at < total else None,
    )


def _status(run: engine.Trace, scenario: engine.Scenario) -> str:
    if run.finished:
        return "all actors finished"
    if not run.enabled:
        return "nothing can run: deadlock"
    labels = {a.name: n for n, a in enumerate(scenario.actors, start=1)}
    return "can run: " + ", ".join(f"{labels.get(n, '?')} {n}" for n in run.enabled)


def _narration(step: engine.Step | None, scenario: engine.Scenario) -> str:
    if step is None:
        keys = f"1-{len(scenario.actors)}" if len(scenario.actors) > 1 else "1"
        return (
            "The state after setup. Run an actor's next atomic step with its Step button "
            f"(or press {keys})."
        )
    return step.note


@functools.cache
def _history() -> dict[str, dict[str, str]]:
    """Every earlier text of the catalog's scenarios, by full SHA-256 (written from git by
    scripts/scenario_history.py); empty when the file is missing."""
    try:
        raw = json.loads((CATALOG_DIR / "history.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _earlier_version(link: RunRef, scenario: engine.Scenario) -> str:
    """What changed, as far as the link can say (review M3): the earlier version of this
    catalog scenario that its d= names, and where to read that text."""
    if link.packed or link.digest is None:
        return ""  # a custom scenario's link carries its own text (s=)
    found = [
        entry
        for sha, entry in _history().items()
        if entry.get("id") == scenario.id and link.digest in (sha, entry.get("digest"))
    ]
    if not found:
        return (
            "; no earlier version of this catalog scenario has that digest, so the link was "
            "made on an edited copy, another server's catalog, or by hand"
        )
    e = found[0]
    return (
        f"; the link was made on its version of {e['date']} (commit {e['commit']}: "
        f"{e['subject']}), whose text is `git show {e['commit']}:{e['path']}`"
    )


def digest_matches(digest: str, scenario: engine.Scenario) -> bool:
    """Whether a link's d= names this scenario's content. A full 64-digit d= is checked
    against the full SHA-256, so a 48-bit collision cannot pass for a match; the short
    digest (what links carry for display) only ever says "probably unchanged"."""
    if len(digest) == len(scenario.sha256):
        return digest == scenario.sha256
    return digest == scenario.digest


ENGINE_VERSION_TEXT = re.compile(r"[1-9][0-9]{0,5}")


def _engine_version(raw: str | None, notices: list[Notice]) -> str | None:
    """The link's e= (the engine version it was made with), checked: a link from another
    engine says so, and keeps its e= in the links made from the page (so the warning stays
    when it is reloaded or forwarded); None for this engine's links, and for links without
    e= (older than versioned links, or written by hand)."""
    if raw is None:
        return None
    current = engine.ENGINE_VERSION
    if not ENGINE_VERSION_TEXT.fullmatch(raw):
        notices.append(
            Notice(
                "warn",
                f"This link's e={raw[:20]!r} is not an engine version (a whole number): the "
                f"link was probably cut or edited. Replaying it on this engine (version "
                f"{current}).",
            )
        )
        return None
    made = int(raw)
    if made == current:
        return None
    if made > current:
        text = (
            f"This link was made with engine version {made}, newer than this server's "
            f"({current}): its steps may replay differently here, or not at all."
        )
    else:
        changed = "; ".join(engine.changes_since(made))
        text = (
            f"This link was made with engine version {made}; this server runs version "
            f"{current}, whose steps may replay the schedule differently. What changed since: "
            f"{changed}. The address keeps e={made}, so this warning stays when the link is "
            "reloaded or forwarded."
        )
    notices.append(Notice("warn", text))
    return str(made)


def build_dashboard(
    scenario: engine.Scenario,
    link: RunRef,
    sid: str | None = None,
    extra: Sequence[Notice] = (),
    urls: Urls = APP,
    focus: int | None = None,
) -> Dashboard:
    """All the view data for `/s/{id}` at the link's step; its links made by `urls`."""
    sid = sid or scenario.id
    to = partial(Link.to, urls, sid)
    notices: list[Notice] = list(extra)
    digest = scenario.digest
    if link.digest and not DIGEST.fullmatch(link.digest):
        notices.append(
            Notice(
                "warn",
                f"This link's d={link.digest[:20]!r} is not a scenario digest (12 or 64 hex "
                "digits): the link was probably cut or edited. Showing the current scenario.",
            )
        )
    elif link.digest and not digest_matches(link.digest, scenario):
        notices.append(
            Notice(
                "warn",
                f"This scenario changed since the link was made (digest {link.digest}, now "
                f"{scenario.digest}){_earlier_version(link, scenario)}; the steps that still "
                "apply are replayed. The address keeps the old digest, so this warning stays "
                "when the link is reloaded or forwarded.",
            )
        )
        # Links made from this page keep the old digest: rewriting it would drop the warning.
        digest = link.digest
    made_with = _engine_version(link.engine_version, notices)
    config = config_for(scenario, link.variant, notices)
    full = _replay(scenario, config, link, notices)
    applied = link.schedule[: len(full.steps)]
    total = len(applied)
    at = _clamp(link, total, notices)
    run = full.at(at)  # the same replay, cut at the step shown
    step = full.steps[at - 1] if at else None
    previous = full.view(at - 1) if step else None
    panel = state_panel(run.state, previous, step.changes if step else ())
    ref = RunRef(
        variant=config.variant,
        schedule=applied,
        at=at,
        digest=digest,
        packed=link.packed,
        engine_version=made_with,
    )
    no_return = no_return_of(scenario, config, applied)

    differing: tuple[int, ...] = ()
    ab: ABView | None = None
    if link.compare and link.compare != config.variant:
        ab = _ab_view(scenario, link, config, ref, focus, sid, urls)
        differing = ab_indices(ab)
        old = next((v for v in scenario.variants if v.name == link.compare), None)
        where = f"kernel {old.kernel}" if old else link.compare
        text = (
            f"Same schedule replayed on kernel {config.kernel}: steps "
            f"{_ranges(differing)} differ from {where} (marked ≠)."
            if differing
            else f"Same schedule replayed on kernel {config.kernel}: every step matches {where}."
        )
        notices.append(Notice("info", text))

    # A kernel switch that cut the schedule (a step that cannot run on this kernel) keeps the
    # whole schedule in the way back, so A -> B -> A lands where it started.
    cut_by_switch = bool(link.compare) and len(link.schedule) > len(applied)
    kept = link.schedule if cut_by_switch else applied
    kept_at = link.at if cut_by_switch and link.at is not None else at
    switchable = RunRef(
        schedule=kept, at=kept_at, digest=digest, packed=link.packed, engine_version=made_with
    )
    variants = tuple(
        VariantChoice(
            v.name,
            v.kernel,
            v.name == config.variant,
            Link(
                urls.page(sid, switchable.on_variant(v.name)),
                urls.frame(sid, switchable.on_variant(v.name, coming_from=config.variant)),
            ),
        )
        for v in scenario.variants
    )
    dashboard = Dashboard(
        scenario=scenario,
        config=config,
        kernel=config.kernel,
        variant=config.variant,
        variants=variants,
        schedule=applied,
        at=at,
        total=total,
        step=step,
        run=run,
        full=full,
        columns=_columns(scenario, run, ref, to),
        panel=panel,
        narration=_narration(step, scenario),
        violations=run.violations,
        status=_status(run, scenario),
        notices=tuple(notices),
        nav=_nav(ref, to, at, total),
        ref=ref,
        page_url=urls.page(sid, ref),
        frame_url=urls.frame(sid, ref),
        find_bug_url=urls.find_bug(sid, ref),
        outcomes_url=urls.outcomes(sid, ref),
        fix_url=urls.fix(sid, ref),
        edit_url=urls.edit(ref.packed, config.variant, copy=scenario.id),
        present_url=urls.present(sid, ref),
        differing=differing,
        ab=ab,
        ref_compare=link.compare if ab else None,
        no_return=no_return,
        no_return_text=lost_sentence(no_return, full, at),
        about=about(scenario, () if link.packed else STRIPS.of(scenario)),
        exports=tuple(
            ExportLink(label, hint, urls.export(sid, ref, fmt)) for fmt, label, hint in EXPORTS
        ),
    )
    dashboard.data.update(_island(dashboard, sid, urls))
    return dashboard


def _island(d: Dashboard, sid: str, urls: Urls) -> dict[str, Any]:
    """The JSON the page's scripts read: the timeline figure, the URLs they fetch (made here:
    a script never builds one) and the messages they send, as the server would word them."""
    scenario_ref: str | dict[str, Any] = (
        d.scenario.id if not d.ref.packed else dict(d.scenario.document)
    )
    position = {
        "scenario": scenario_ref,
        "variant": d.variant,
        "schedule": list(d.schedule),
        "at": d.at,
    }
    return {
        "id": sid,
        "at": d.at,
        "total": d.total,
        "page_url": d.page_url,
        "present_url": d.present_url,
        # The frame at another step of this schedule: the timeline adds `at`.
        "goto_url": urls.frame(sid, replace(d.ref, at=None)),
        "diagram_url": urls.path("/api/diagram"),
        "rooms_url": urls.path("/api/rooms"),
        "links_url": urls.path("/api/links"),
        "timeline": figures.timeline_figure(
            d.scenario, d.full, d.at, d.no_return.step if d.no_return else None, d.differing
        ),
        "no_return": d.no_return.step if d.no_return else None,
        "diagram_request": position,
        # A presenter's room is told this frame (with the A/B view's comparison, if shown).
        "load": {"type": "load", **position, **({"compare": d.ref_compare} if d.ab else {})},
    }
