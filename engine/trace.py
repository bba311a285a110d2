"""Replaying one schedule (the actor names chosen at each step) into a typed trace.

Deterministic: the same scenario, kernel and schedule always give the same steps.
Choosing an actor that is not enabled is an error naming the enabled ones. A `Trace`
keeps every world it passed through with its `StateView`, so any step's state, the
actor board at any step (`Trace.at`) and the changes of each step are there without
replaying again: one replay serves a whole dashboard render.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.errors import InputError
from engine.fixes import Config, ConfigError, build_config, check_overrides
from engine.kernel.machine import Blocked, Effect
from engine.lang.ir import Scenario, default_variant
from engine.model import Model
from engine.state import World
from engine.views import StateView, Views, changes

MAX_SCHEDULE = 400


class ScheduleError(InputError):
    """A schedule entry that names an unknown or not-enabled actor."""

    def __init__(self, index: int, actor: str, enabled: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.index = index
        self.actor = actor
        self.enabled = enabled


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    actor: str
    op: str
    op_index: int
    function: str
    note: str
    changes: tuple[str, ...]  # dotted paths of the state fields this step changed
    state: StateView  # the state after the step
    world: World
    call: str = ""  # the call with its argument and outcome, when the step told one


@dataclass(frozen=True, slots=True)
class Violation:
    name: str
    step: int  # 0: found by the end-of-run checks
    message: str


@dataclass(frozen=True, slots=True)
class ActorView:
    name: str
    label: str
    op_index: int
    next_function: str | None
    blocked: str | None
    done: bool
    # What its next step would do (the successor view): the sentence the step would say.
    next_note: str | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    """A replayed schedule: its steps, the state before and after, and who can run next."""

    scenario_id: str
    digest: str
    kernel: str
    variant: str | None
    steps: tuple[Step, ...]
    initial: StateView
    state: StateView  # at the end; after the end-of-run checks when finished
    enabled: tuple[str, ...]
    finished: bool
    violations: tuple[Violation, ...]
    actors: tuple[ActorView, ...]
    label: str | None
    # The schedule entry that did not apply (a lenient replay stops there), if any.
    error: ScheduleError | None
    model: Model
    start: World

    # Jupyter's rich display (engine/notebook.py). Imported when called: the renderers
    # import this module.
    def _repr_html_(self) -> str:
        from engine.notebook import trace_html

        return trace_html(self)

    def _repr_markdown_(self) -> str:
        from engine.notebook import trace_markdown

        return trace_markdown(self)

    def world(self, at: int) -> World:
        """The world after `at` steps (0: after the setup)."""
        return self.steps[at - 1].world if at > 0 else self.start

    def view(self, at: int) -> StateView:
        """The state after `at` steps, before any end-of-run check."""
        return self.steps[at - 1].state if at > 0 else self.initial

    def at(self, at: int) -> Trace:
        """This trace cut after `at` steps, as a replay of that prefix would give it."""
        if at >= len(self.steps):
            return self
        world = self.world(at)
        actors = actor_views(self.model, world)
        return Trace(
            scenario_id=self.scenario_id,
            digest=self.digest,
            kernel=self.kernel,
            variant=self.variant,
            steps=self.steps[:at],
            initial=self.initial,
            state=self.view(at),
            # A later step ran, so some actor is enabled here: no end-of-run checks apply.
            enabled=tuple(a.name for a in actors if a.next_function is not None),
            finished=False,
            violations=tuple(v for v in self.violations if 0 < v.step <= at),
            actors=actors,
            label=None,
            error=None,
            model=self.model,
            start=self.start,
        )


def make_config(
    scenario: Scenario,
    variant: str | None = None,
    kernel: str | None = None,
    fixes: Mapping[str, object] | None = None,
) -> Config:
    """The kernel a request asks for: a variant, or a kernel version, plus overrides."""
    overrides = check_overrides(fixes or {}, "fixes")
    if variant is not None and kernel is not None:
        raise ConfigError("kernel", "give either variant or kernel, not both")
    if kernel is not None:
        return build_config(kernel, overrides)
    if variant is not None:
        v = scenario.variant(variant)
        if v is None:
            names = ", ".join(x.name for x in scenario.variants) or "none (use kernel)"
            raise ConfigError("variant", f"unknown variant {variant!r}; allowed: {names}")
    else:
        v = default_variant(scenario)
    return build_config(v.kernel, {**v.fixes, **overrides}, v.name)


def actor_views(model: Model, world: World) -> tuple[ActorView, ...]:
    views = []
    for i, spec in enumerate(model.scenario.actors):
        state = world.actors[i]
        done = state.op >= len(spec.ops)
        result = None if done else model.step(world, i)
        views.append(
            ActorView(
                name=spec.name,
                label=spec.label,
                op_index=state.op,
                next_function=result.function if isinstance(result, Effect) else None,
                next_note=result.note if isinstance(result, Effect) else None,
                blocked=result.reason if isinstance(result, Blocked) else None,
                done=done,
            )
        )
    return tuple(views)


def too_long(schedule: Sequence[str]) -> ScheduleError:
    return ScheduleError(
        MAX_SCHEDULE, "", (), f"schedule has {len(schedule)} steps; at most {MAX_SCHEDULE} allowed"
    )


def run_schedule(scenario: Scenario, config: Config, schedule: Sequence[str]) -> Trace:
    """Replay all of `schedule` or raise the ScheduleError of the first entry that does not
    apply; the end checks run once nothing is enabled."""
    if len(schedule) > MAX_SCHEDULE:
        raise too_long(schedule)
    trace = replay(scenario, config, schedule)
    if trace.error is not None:
        raise trace.error
    return trace


def replay(scenario: Scenario, config: Config, schedule: Sequence[str]) -> Trace:
    """Replay as much of `schedule` as applies: the trace up to the first entry that does
    not, with the error that entry raises in `error` (None when all of it applies).

    Links outlive kernels and scenario edits, so their schedules are replayed this way.
    """
    error = too_long(schedule) if len(schedule) > MAX_SCHEDULE else None
    schedule = schedule[:MAX_SCHEDULE]
    model = Model(scenario, config)
    names = model.names
    world = start = model.initial()
    # One builder for the run: each view reuses the previous one's unchanged items.
    views = Views(model)
    initial = before = views.of(world)
    steps: list[Step] = []
    violations: list[Violation] = []
    for n, name in enumerate(schedule, start=1):
        # Only the chosen actor steps; the enabled list is needed only to explain an error.
        if name not in names:
            error = ScheduleError(
                n,
                name,
                enabled_names(model, world),
                f"schedule step {n}: unknown actor {name!r}; actors: {', '.join(names)}",
            )
            break
        i = names.index(name)
        result = model.step(world, i)
        if not isinstance(result, Effect):
            enabled = enabled_names(model, world)
            why = "has finished" if result is None else f"is blocked ({result.reason})"
            allowed = ", ".join(enabled) or "none (the run is over)"
            error = ScheduleError(
                n, name, enabled, f"schedule step {n}: {name} {why}; enabled: {allowed}"
            )
            break
        op_index = world.actors[i].op
        world = result.world
        after = views.of(world)
        steps.append(
            Step(
                n,
                name,
                scenario.actors[i].ops[op_index].text,
                op_index,
                result.function,
                result.note,
                changes(before, after),
                after,
                world,
                result.call,
            )
        )
        violations.extend(Violation(v, n, msg) for v, msg in result.events)
        before = after
    actors = actor_views(model, world)  # one step attempt per actor serves both
    enabled = tuple(a.name for a in actors if a.next_function is not None)
    label = None
    end = before
    if not enabled:
        world, events = model.conclude(world)
        violations.extend(Violation(v, 0, msg) for v, msg in events)
        label = model.label(world)
        end = views.of(world)
    return Trace(
        scenario_id=scenario.id,
        digest=scenario.digest,
        kernel=config.kernel,
        variant=config.variant,
        steps=tuple(steps),
        initial=initial,
        state=end,
        enabled=enabled,
        finished=not enabled,
        violations=tuple(violations),
        actors=actors,
        label=label,
        error=error,
        model=model,
        start=start,
    )


def enabled_names(model: Model, world: World) -> tuple[str, ...]:
    return tuple(
        name for i, name in enumerate(model.names) if isinstance(model.step(world, i), Effect)
    )
