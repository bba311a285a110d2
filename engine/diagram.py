"""The kernel-commit-message column diagram of one run (plain ASCII, email-safe).

One column per actor headed by its name, time flowing down, the op as a header
line and its atomic steps indented under it, short state notes in C comments,
and the violations last: the style of memory-barriers.txt and of fixes such as
70cbc3cc78a9 or 6c8e2a256915.
"""

from __future__ import annotations

import textwrap

from engine.doom import point_of_no_return
from engine.fixes import Config
from engine.lang.ir import Scenario, cpus_of
from engine.trace import Step, Trace, make_config, replay
from engine.views import StateView

# checkpatch flags commit-description lines over 75 columns: the whole body fits in them.
WIDTH = 75
GUTTER = 2  # between the widest line of a column and the next column


def initial_line(state: StateView) -> str:
    parts = []
    for e in state.expected:
        values = " or ".join(f'"{v}"' if v != "0" else "0" for v in e.allowed)
        parts.append(f"{e.where} = {values}")
    for p in state.pages:
        kind = "lazyfree" if "swapbacked" not in p.flags and p.owner == "anon" else p.owner
        if p.order:
            kind = f"{kind} THP of {1 << p.order} pages, entire={p.entire}"
        parts.append(f"{p.id} ref={p.refcount} map={p.mapcount} {kind}")
    for m in state.pmds:
        parts.append(f"PMD {m.key} {m.kind}" + (f" {m.page}" if m.page else ""))
    return "{ " + "; ".join(parts) + " }"


def step_note(step_changes: tuple[str, ...], state: StateView) -> str:
    """`/* ref=3 map=0 */` for the page fields the step changed."""
    notes = []
    for page in state.pages:
        prefix = f"pages.{page.id}."
        touched = {c.removeprefix(prefix) for c in step_changes if c.startswith(prefix)}
        if page.owner == "free" and "owner" in touched:
            notes.append(f"{page.id} freed")
            continue
        bits = []
        if "refcount" in touched:
            bits.append(f"ref={page.refcount}")
        if "mapcount" in touched:
            bits.append(f"map={page.mapcount}")
        if "data" in touched:
            bits.append(f"data={page.data}")
        if bits:
            notes.append(
                " ".join(bits) if len(state.pages) == 1 else f"{page.id} " + " ".join(bits)
            )
    return f"/* {', '.join(notes)} */" if notes else ""


def fit(text: str, width: int) -> str:
    text = text.encode("ascii", "replace").decode()
    return text if len(text) <= width else text[: width - 3] + "..."


def decisive_steps(scenario: Scenario, config: Config, run: Trace) -> dict[int, str]:
    """The steps a reader must not miss, with why: the point of no return, and the first
    step where another modelled kernel of the scenario does something else (what the fix
    changes). Their sentences go into the diagram as `#` notes under the step."""
    found: dict[int, str] = {}
    schedule = [s.actor for s in run.steps]
    doom = point_of_no_return(scenario, config, schedule)
    if doom is not None and doom.step > 0:
        found[doom.step] = ""
    mine = [(s.actor, s.function, s.note) for s in run.steps]
    for variant in scenario.variants:
        if variant.name == config.variant:
            continue
        other = replay(scenario, make_config(scenario, variant.name), schedule)
        theirs = [(s.actor, s.function, s.note) for s in other.steps]
        first = next(
            (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b), None
        )
        if first is not None:
            found.setdefault(first + 1, "")
    return found


def _widths(
    names: list[str], heads: list[str], run: Trace, lines: dict[int, list[str]]
) -> list[int]:
    """Each column as wide as its widest call plus the gutter, so a narrow left column does
    not push the right one past the width."""
    widest = [len(h) for h in heads]
    for step in run.steps:
        who = names.index(step.actor)
        for text in lines[step.index]:
            # The call, not its state note: a row holds one actor's step only, so a note
            # may run on into the next column's space without meeting anything.
            widest[who] = max(widest[who], len(text.partition("  /* ")[0]))
    return [w + GUTTER for w in widest]


def _wrap(text: str, width: int, prefix: str) -> list[str]:
    """`text` in lines of at most `width` columns, each starting with `prefix`."""
    text = text.encode("ascii", "replace").decode()
    room = max(width, len(prefix) + 20)
    return textwrap.wrap(
        text, room, initial_indent=prefix, subsequent_indent=prefix, break_on_hyphens=False
    ) or [prefix.rstrip()]


# Model steps that the kernel takes inside the function of the step that follows them (the
# model splits the call so that another CPU can run between the two): the diagram nests them.
CALLED_FROM = {"ptep_get_and_clear": "try_to_unmap_one"}


def told(step: Step) -> str:
    """The step's call as the diagram prints it: `folio_ref_freeze(folio, 1) fails: ref 2`
    when the step tells its argument and outcome, else `function()`."""
    return step.call or f"{step.function}()"


def _next_of_actor(run: Trace) -> dict[int, Step]:
    """Each step's index to the same actor's next step in the run."""
    after: dict[int, Step] = {}
    last: dict[str, Step] = {}
    for step in run.steps:
        if step.actor in last:
            after[last[step.actor].index] = step
        last[step.actor] = step
    return after


def _heading(cells: list[str], offsets: list[int]) -> str:
    row = ""
    for cell, at in zip(cells, offsets, strict=True):
        row = row.ljust(at) + cell
    return row


def render_diagram(scenario: Scenario, config: Config, run: Trace, link: str | None = None) -> str:
    names = [a.name for a in scenario.actors]
    # Where actors run on CPUs, the columns are CPUs, as in the commit messages of TLB
    # fixes ("CPU0 ... CPU1"), each with the actor it runs.
    cpus = cpus_of(scenario.actors)
    heads = [f"{cpu} ({n})" if cpu else n for cpu, n in zip(cpus, names, strict=True)]
    decisive = decisive_steps(scenario, config, run)
    doom = point_of_no_return(scenario, config, [s.actor for s in run.steps])
    # First each step's own lines (its op header when a new op starts, the step), without
    # the column offset; then the columns are sized from them.
    own: dict[int, list[str]] = {}
    last_op = dict.fromkeys(names, -1)
    after = _next_of_actor(run)
    # The steps that end a call opened by the step before them (the `}` of the nesting).
    closes = {
        nxt.index
        for index, nxt in after.items()
        if CALLED_FROM.get(run.steps[index - 1].function) == nxt.function
        and nxt.op_index == run.steps[index - 1].op_index
    }
    for step in run.steps:
        note = step_note(step.changes, step.state)
        out = []
        parent = CALLED_FROM.get(step.function)
        following = after.get(step.index)
        if step.op.split("(", 1)[0] == step.function:
            text = step.op
        else:
            if step.op_index != last_op[step.actor]:
                out.append(step.op)
            text = f"  {told(step)}"
        if (
            parent
            and following is not None
            and (following.function, following.op_index) == (parent, step.op_index)
        ):
            # The model's step is taken inside the next one's function: nest it there.
            out.append(f"  {parent}() {{")
            text = f"    {told(step)}"
        elif step.index in closes:
            text = "  }"
        last_op[step.actor] = step.op_index
        out.append(text + (f"  {note}" if note else ""))
        own[step.index] = out
    widths = _widths(names, heads, run, own)
    offsets = [sum(widths[:i]) for i in range(len(names))]
    # Too wide in all: a column starts early enough for its widest call to end by WIDTH.
    # A row holds one actor's step, so a column running on under the next one's heading
    # meets nothing; only the heading row must keep each name apart.
    for i in range(len(names) - 1, 0, -1):
        latest = WIDTH - (widths[i] - GUTTER)
        if i < len(names) - 1:
            latest = min(latest, offsets[i + 1] - len(heads[i]) - 1)
        offsets[i] = max(min(offsets[i], latest), offsets[i - 1] + len(heads[i - 1]) + 1)
    lines = [
        *_wrap(f"{scenario.title}, kernel {config.label}", WIDTH, ""),
        *textwrap.wrap(
            initial_line(run.initial).encode("ascii", "replace").decode(),
            WIDTH,
            subsequent_indent="  ",
            break_on_hyphens=False,
        ),
        "",
        _heading(heads, offsets),
        _heading(["-" * len(h) for h in heads], offsets),
    ]
    for step in run.steps:
        who = names.index(step.actor)
        pad = " " * offsets[who]
        for text in own[step.index]:
            head, sep, note = text.partition("  /* ")
            if len(pad + text) > WIDTH and sep:
                # A state note that does not fit goes on a line of its own, not cut.
                lines.append(fit(pad + head, WIDTH))
                indent = " " * min(len(pad) + 4, WIDTH - 40)
                lines.extend(_wrap("/* " + note, WIDTH, indent))
            else:
                lines.append(fit(pad + text, WIDTH))
        if step.index in decisive:
            # Under the step, but never with fewer than 40 columns left for the words.
            indent = " " * min(len(pad) + 4, WIDTH - 40)
            lines.extend(_wrap(step.note, WIDTH, indent + "# "))
        for v in run.violations:
            if v.step == step.index:
                lines.append(fit(pad + f"  /* {v.name} */", WIDTH))
        if doom is not None and doom.step == step.index:
            broken = ", ".join(doom.violations) or "an invariant"
            mark = f" point of no return: every run from here breaks {broken} "
            lines.append(fit(mark.center(WIDTH, "-"), WIDTH))
    lines.append("")
    if run.violations:
        for v in run.violations:
            lines.extend(_wrap(f"=> {v.name}: {v.message}", WIDTH, ""))
    elif run.finished:
        lines.append(f"=> no violation; {run.label}")
    else:
        lines.append(f"=> (stopped after step {len(run.steps)}; enabled: {', '.join(run.enabled)})")
    # One line however long: it is pasted back whole into --schedule (a trailer, as Link: is).
    lines.append(f"schedule: {','.join(s.actor for s in run.steps)}")
    if link:
        lines.append(f"replay: {link}")
    return "\n".join(lines) + "\n"


def render_markdown(scenario: Scenario, config: Config, run: Trace, link: str | None = None) -> str:
    """The diagram for a mailing list, an issue or a chat: a header naming the scenario, the
    kernel, the verdict and the schedule (with the replay link), then the column diagram in
    a fenced block, which keeps its columns in every Markdown renderer."""
    broken = sorted({v.name for v in run.violations})
    verdict = f"breaks **{', '.join(broken)}**" if broken else "no invariant broken"
    schedule = ",".join(s.actor for s in run.steps) or "(empty)"
    body = render_diagram(scenario, config, run)
    fence = "~~~" if "```" in body else "```"  # a fence the diagram cannot close
    replay = f" · [replay]({link})" if link else ""
    lines = [
        f"**{scenario.title}** on kernel {config.label}: {verdict}",
        "",
        f"Schedule: `{schedule}` ({len(run.steps)} steps){replay}",
        "",
        fence + "text",
        body.rstrip("\n"),
        fence,
    ]
    return "\n".join(lines) + "\n"
