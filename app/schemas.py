"""Pydantic models at the boundary: request bodies, response shapes, WebSocket messages.

Response bodies are produced by the engine's `*_to_json` helpers so the CLI's `--json` and the
API agree byte for byte; the response models below document them in OpenAPI and let the tests
check them. Engine types never leak past this module as pydantic models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from app.config import MAX_SCHEDULE, MAX_STATES, MIN_PLAY_DELAY_MS

SCENARIO_ID = r"^[a-z0-9][a-z0-9-]{0,99}$"
KERNEL = r"^[0-9]{1,2}\.[0-9]{1,3}$"
ActorName = Annotated[str, Field(min_length=1, max_length=64)]
ScenarioRef = Annotated[
    str | dict[str, Any],
    Field(
        description="a catalog id, or a whole scenario document (same structure as the YAML)",
        examples=["madv-free-vs-dio"],
    ),
]


class Request(BaseModel):
    # Strict: `"at": false`, `"max_states": true` or `"fixes": {"x": "yes"}` are mistakes
    # (or probes), not values to coerce; they are a 422 naming the field.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ConfigRequest(Request):
    scenario: ScenarioRef
    variant: Annotated[str | None, Field(max_length=64, examples=["buggy"])] = None
    # [0-9], not \d: \d also matches the digits of other scripts (fullwidth, Arabic-Indic).
    kernel: Annotated[str | None, Field(pattern=KERNEL, examples=["5.17"])] = None
    fixes: dict[Annotated[str, Field(max_length=64)], bool] | None = Field(
        default=None, max_length=64, description="override single fix switches ('what if')"
    )


class RunRequest(ConfigRequest):
    schedule: list[ActorName] = Field(
        default_factory=list,
        max_length=MAX_SCHEDULE,
        description="actor names, one per atomic step",
    )


class ExploreRequest(ConfigRequest):
    max_states: Annotated[
        int | None,
        Field(ge=1, le=MAX_STATES, description="stop after this many distinct states"),
    ] = None


class Response(BaseModel):
    # Extra keys from the engine pass through: newer engines may add fields.
    model_config = ConfigDict(extra="allow")


class ErrorItem(Response):
    path: str = Field(description="where the problem is, e.g. actors[1].ops[0].gup_fast.mode")
    message: str
    line: int | None = None


class ErrorResponse(Response):
    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)


class StepOut(Response):
    index: int
    actor: str
    op: str
    function: str
    note: str
    changes: list[str]
    state: dict[str, Any]


class ViolationOut(Response):
    name: str
    step: int = Field(description="step index; 0 means detected at the end")
    message: str


class ActorOut(Response):
    name: str
    label: str
    op_index: int
    next_function: str | None
    blocked: str | None
    done: bool


class RunResponse(Response):
    digest: str
    steps: list[StepOut]
    state: dict[str, Any]
    enabled: list[str]
    finished: bool
    violations: list[ViolationOut]
    initial: dict[str, Any] | None = None
    actors: list[ActorOut] | None = None
    kernel: str | None = None
    variant: str | None = None


class OutcomeOut(Response):
    label: str
    violations: list[str]
    interleavings: int
    example: list[str]
    message: str = Field("", description="the first violation's sentence on the example run")
    point_of_no_return: int | None = Field(
        None,
        description="bad outcomes of a complete search: after this many steps of the "
        "example, every continuation breaks an invariant",
    )


class ExploreResponse(Response):
    states: int
    transitions: int
    interleavings: int = Field(description="exact count; may exceed 2**53")
    outcomes: list[OutcomeOut]
    truncated: bool
    elapsed_ms: float
    first_bug: bool | None = Field(
        None,
        description="present (true) when the search stopped at the first violation it found, "
        "before covering the space: nothing is counted",
    )
    preemptions: int | None = Field(None, description="with first_bug: the example's preemptions")


class RefOut(Response):
    commit: str
    title: str
    version: str


class VariantOut(Response):
    name: str
    kernel: str
    fixes: dict[str, bool]


class ScenarioSummary(Response):
    id: str
    title: str
    summary: str
    tags: list[str]
    refs: list[RefOut]
    variants: list[VariantOut]
    actors: list[str]
    digest: str = Field(description="48-bit display digest, carried in links' d=")
    sha256: str = Field(
        description="full SHA-256 of the canonical document (a d= of this is checked in full)"
    )
    url: str


class ScenarioDocument(Response):
    id: str
    title: str
    digest: str
    sha256: str


# --- /ws/run -------------------------------------------------------------------------------


class LoadMessage(ConfigRequest):
    type: Literal["load"]
    schedule: list[ActorName] = Field(default_factory=list, max_length=2_000)
    at: Annotated[int | None, Field(ge=0)] = None
    compare: Annotated[
        str | None,
        Field(
            max_length=64,
            description="the variant this kernel is compared with (the A/B view): a room's "
            "followers are shown the same comparison",
        ),
    ] = None


class StepMessage(Request):
    type: Literal["step"]
    actor: ActorName


class BackMessage(Request):
    type: Literal["back"]


class GotoMessage(Request):
    type: Literal["goto"]
    index: Annotated[int, Field(ge=0)]


class PlayMessage(Request):
    type: Literal["play"]
    delay_ms: Annotated[
        int | None,
        Field(
            ge=0,
            le=10_000,
            description=f"pause between steps; below {MIN_PLAY_DELAY_MS} ms is raised to "
            f"{MIN_PLAY_DELAY_MS} ms (each step is a replay on the server)",
        ),
    ] = None


class PauseMessage(Request):
    type: Literal["pause"]


class ExploreMessage(Request):
    type: Literal["explore"]
    max_states: Annotated[int | None, Field(ge=1, le=10_000_000)] = None


ClientMessage = Annotated[
    LoadMessage
    | StepMessage
    | BackMessage
    | GotoMessage
    | PlayMessage
    | PauseMessage
    | ExploreMessage,
    Field(discriminator="type"),
]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# --- live rooms ------------------------------------------------------------------------------


class RoomRequest(Request):
    """A new live room, optionally already showing a scenario at a step."""

    scenario: ScenarioRef | None = None
    variant: Annotated[str | None, Field(max_length=64, examples=["buggy"])] = None
    kernel: Annotated[str | None, Field(pattern=r"^\d+\.\d+$", examples=["5.17"])] = None
    fixes: dict[Annotated[str, Field(max_length=64)], bool] | None = Field(
        default=None, max_length=64
    )
    schedule: list[ActorName] = Field(default_factory=list, max_length=2_000)
    at: Annotated[int | None, Field(ge=0)] = None


class RoomCreated(Response):
    room: str = Field(examples=["k7m2xq9p"])
    presenter_token: str = Field(description="drives the room; keep it to yourself")
    follow_url: str = Field(description="the audience's page, /live/{room}")
    present_url: str | None = Field(
        default=None,
        description="the presenter's dashboard in presenter mode driving this room (token in "
        "the #fragment), when the room was created with a scenario",
    )


class ShortLinkRequest(Request):
    """A dashboard or editor address of this site, to be given a short link."""

    link: Annotated[
        str,
        Field(
            max_length=70_000,
            description="the address: a path (/s/..., /edit?...) or a full URL of this site",
            examples=["http://127.0.0.1:8000/s/madv-free-vs-dio?v=buggy&t=dio,kswapd&at=2"],
        ),
    ]


class ShortLink(Response):
    id: str = Field(examples=["mzxw6ytboi"], description="base32 of the address's SHA-256")
    short_url: str = Field(description="/z/{id} on this site")
    long_url: str = Field(description="the address it names (always works on its own)")


# The error bodies every route may answer, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "unknown scenario"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {"model": ErrorResponse, "description": "invalid request, scenario or schedule"},
}
# The same errors for a route whose success is text/plain: FastAPI would document a `model`
# under the route's media type, but errors are JSON on every route.
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": error["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for status, error in ERRORS.items()
}
