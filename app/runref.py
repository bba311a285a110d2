"""Where a run stands: one value for links, pages, sessions, rooms and their snapshots.

A `RunRef` names a scenario (a catalog id or a whole document), the kernel it runs on (a
variant, or a version and fixes), the schedule and the step shown, and what a dashboard link
adds: the scenario's digest, the engine version it was made with (`e=`), its packed document
(`s=`) and the variant a kernel switch came from (`cmp=`). It is a plain frozen value:
nothing here replays or validates. The pydantic models of app/schemas.py (a socket's `load`,
a room request) are its boundary mirror: `from_load` and `to_load` cross it, and `to_json` is
a room's stored snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import engine
from app.links import encode_doc
from app.schemas import LoadMessage

ScenarioRef = str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunRef:
    scenario: ScenarioRef | None = None  # None: nothing loaded yet (a new room)
    variant: str | None = None
    kernel: str | None = None
    fixes: Mapping[str, bool] | None = None
    schedule: tuple[str, ...] = ()
    at: int | None = None  # None: the end of the schedule
    digest: str | None = None  # d=: the scenario's content when the link was made
    packed: str | None = None  # s=: a custom scenario's document, packed for a URL
    compare: str | None = None  # cmp=: the variant a kernel switch came from
    # e=: the engine version the link was made with, as the link has it; None: this engine
    # (engine.ENGINE_VERSION). A link that names its scenario's content (d=) names it too.
    engine_version: str | None = None
    # A room's snapshot only: the presenter's last "Explore all" on this scenario and kernel
    # (outcomes_url, states, interleavings), so that a late joiner sees the chart too.
    outcomes: Mapping[str, Any] | None = None

    @property
    def loaded(self) -> bool:
        return self.scenario is not None

    @property
    def step(self) -> int:
        """The step shown: `at`, or the end of the schedule."""
        return len(self.schedule) if self.at is None else min(self.at, len(self.schedule))

    # --- moves --------------------------------------------------------------------------

    def at_step(self, at: int) -> RunRef:
        return replace(self, at=at, compare=None)

    def stepped(self, actor: str) -> RunRef:
        """One more step, by `actor`: stepping the actor the schedule runs next keeps the rest
        of the schedule (a user walking forward through a shared link); any other actor starts
        a new branch from here."""
        at = self.step
        schedule = self.schedule
        if tuple(schedule[at : at + 1]) != (actor,):
            schedule = (*schedule[:at], actor)
        return replace(self, schedule=schedule, at=at + 1, compare=None)

    def on_variant(self, variant: str, coming_from: str | None = None) -> RunRef:
        return replace(self, variant=variant, compare=coming_from)

    # --- links --------------------------------------------------------------------------

    @classmethod
    def for_link(
        cls,
        scenario: engine.Scenario,
        config: engine.Config,
        ref: ScenarioRef,
        schedule: Sequence[str],
        at: int,
    ) -> RunRef:
        """The link to step `at` of `schedule`, for a scenario given as `ref`: a catalog id,
        or a document, which then travels in the link. A kernel given by version alone (no
        variant) links to the scenario's default variant: links name variants only."""
        packed = None if isinstance(ref, str) else encode_doc(scenario.document)
        variant = config.variant if config.variant and scenario.variant(config.variant) else None
        return cls(ref, variant, None, None, tuple(schedule), at, scenario.digest, packed)

    def link(self, scenario: engine.Scenario, config: engine.Config) -> RunRef:
        """This position as a dashboard link (variant, digest and packed document)."""
        return RunRef.for_link(
            scenario, config, self.scenario or scenario.id, self.schedule, self.step
        )

    def query(self, **extra: str | int | None) -> str:
        """The dashboard query string, in a stable order, commas left readable in `t=`."""
        pairs: list[tuple[str, str]] = []
        if self.variant:
            pairs.append(("v", self.variant))
        if self.schedule:
            pairs.append(("t", ",".join(self.schedule)))
        if self.at is not None:
            pairs.append(("at", str(self.at)))
        if self.digest:
            pairs.append(("d", self.digest))
        if self.engine_version or self.digest:
            pairs.append(("e", self.engine_version or str(engine.ENGINE_VERSION)))
        if self.packed:
            pairs.append(("s", self.packed))
        if self.compare:
            pairs.append(("cmp", self.compare))
        pairs.extend((key, str(value)) for key, value in extra.items() if value is not None)
        return urlencode(pairs, safe=",")

    # --- the boundary: socket messages and stored snapshots --------------------------------

    @classmethod
    def from_load(cls, message: LoadMessage) -> RunRef:
        return cls(
            scenario=message.scenario,
            variant=message.variant,
            kernel=message.kernel,
            fixes=dict(message.fixes) if message.fixes else None,
            schedule=tuple(message.schedule),
            at=message.at,
            compare=message.compare,
        )

    def to_load(self) -> LoadMessage:
        scenario = self.scenario or ""
        return LoadMessage(
            type="load",
            scenario=scenario if isinstance(scenario, str) else dict(scenario),
            variant=self.variant,
            kernel=self.kernel,
            fixes=dict(self.fixes) if self.fixes else None,
            schedule=list(self.schedule),
            at=self.at,
            compare=self.compare,
        )

    def to_json(self) -> str:
        """A room's stored snapshot (what a `load` needs to get here again)."""
        return json.dumps(
            {
                "scenario": self.scenario,
                "variant": self.variant,
                "kernel": self.kernel,
                "fixes": self.fixes,
                "schedule": list(self.schedule),
                "at": self.at,
                **({"outcomes": dict(self.outcomes)} if self.outcomes else {}),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RunRef:
        raw = json.loads(text)
        at = raw.get("at")
        outcomes = raw.get("outcomes")
        return cls(
            scenario=raw.get("scenario"),
            variant=raw.get("variant"),
            kernel=raw.get("kernel"),
            fixes=raw.get("fixes"),
            schedule=tuple(raw.get("schedule") or ()),
            at=int(at) if at is not None else None,
            outcomes=outcomes if isinstance(outcomes, dict) else None,
        )
