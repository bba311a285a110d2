"""The kernel-commit-message column diagram of one run (plain ASCII, email-safe).

One column per actor headed by its name, time flowing down, the op as a header
line and its atomic steps indented under it, short state notes in C comments,
and the violations last: the style of memory-barriers.txt and of fixes such as
70cbc3cc78a9 or 6c8e2a256915.
"""

from __future__ import annotations

from engine.fixes import Config
from engine.lang.ir import Scenario
from engine.trace import Trace
from engine.views import StateView

WIDTH = 100


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


def render_diagram(scenario: Scenario, config: Config, run: Trace, link: str | None = None) -> str:
    names = [a.name for a in scenario.actors]
    col = max(24, min(40, WIDTH // max(1, len(names))))
    lines = [
        fit(f"{scenario.title}, kernel {config.label}", WIDTH),
        fit(initial_line(run.initial), WIDTH),
        "",
    ]
    lines.append("".join(n.ljust(col) for n in names).rstrip())
    lines.append("".join(("-" * len(n)).ljust(col) for n in names).rstrip())
    last_op = dict.fromkeys(names, -1)
    for step in run.steps:
        pad = " " * (col * names.index(step.actor))
        note = step_note(step.changes, step.state)
        single = step.op.split("(", 1)[0] == step.function
        if single:
            text = step.op
        else:
            if step.op_index != last_op[step.actor]:
                lines.append(fit(pad + step.op, WIDTH))
            text = f"  {step.function}()"
        last_op[step.actor] = step.op_index
        text += f"  {note}" if note else ""
        lines.append(fit(pad + text, WIDTH))
        for v in run.violations:
            if v.step == step.index:
                lines.append(fit(pad + f"  /* {v.name} */", WIDTH))
    lines.append("")
    if run.violations:
        for v in run.violations:
            lines.append(fit(f"=> {v.name}: {v.message}", WIDTH))
    elif run.finished:
        lines.append(f"=> no violation; {run.label}")
    else:
        lines.append(f"=> (stopped after step {len(run.steps)}; enabled: {', '.join(run.enabled)})")
    lines.append(fit(f"schedule: {','.join(s.actor for s in run.steps)}", WIDTH))
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
