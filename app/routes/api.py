"""JSON API (product.md 5.2). Bodies come from the engine's *_to_json so the CLI agrees."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import Field

import engine
from app.config import MAX_SCHEDULE
from app.deps import CatalogDep, ExplorerDep, RunnerDep
from app.exports import ROUTE_DOC, FormatParam, export_response, replay_link
from app.schemas import (
    ERRORS,
    JSON_ERRORS,
    SCENARIO_ID,
    ErrorResponse,
    ExploreRequest,
    ExploreResponse,
    RunRequest,
    RunResponse,
    ScenarioDocument,
    ScenarioSummary,
)
from app.security import site_url
from app.service import (
    CLIENT_GONE,
    BadInput,
    Body,
    Runner,
    client_of,
    disconnected,
    resolve_scenario,
)
from app.urls import APP, Urls

router = APIRouter(prefix="/api", tags=["api"], responses=ERRORS)
ScenarioId = Annotated[str, Path(pattern=SCENARIO_ID, examples=["madv-free-vs-dio"])]


class DiagramRequest(RunRequest):
    at: Annotated[
        int | None, Field(ge=0, le=MAX_SCHEDULE, description="step the replay link opens at")
    ] = None


def summary(scenario: engine.Scenario) -> dict[str, Any]:
    return {
        "id": scenario.id,
        "title": scenario.title,
        "summary": scenario.summary,
        "tags": list(scenario.tags),
        "refs": [
            {"commit": r.commit, "title": r.title, "version": r.version} for r in scenario.refs
        ],
        "variants": [
            {"name": v.name, "kernel": v.kernel, "fixes": dict(v.fixes)} for v in scenario.variants
        ],
        "actors": [actor.name for actor in scenario.actors],
        "digest": scenario.digest,
        "sha256": scenario.sha256,
        "url": APP.page(scenario.id),  # app-relative, as product.md's API documents it
    }


@router.get("/scenarios", response_model=list[ScenarioSummary])
def list_scenarios(catalog: CatalogDep) -> JSONResponse:
    """The catalog, seed-thread scenarios first."""
    return JSONResponse([summary(sc) for sc in catalog.values()])


@router.get(
    "/schema/scenario.json",
    responses={
        200: {
            "description": "a JSON Schema (draft 2020-12)",
            "content": {"application/schema+json": {"schema": {"type": "object"}}},
        }
    },
)
def scenario_schema(request: Request) -> JSONResponse:
    """The scenario language as a JSON Schema, made by the engine from its own registries:
    for completion and checks in editors (yaml-language-server: put
    `# yaml-language-server: $schema=<this URL>` at the top of a scenario file)."""
    settings = request.app.state.settings
    base = site_url(
        request.scope, str(request.base_url), settings.public_url, settings.allowed_hosts
    )
    schema = engine.scenario_schema(Urls(base).path("/api/schema/scenario.json"))
    headers = {} if settings.public_url else {"Vary": "Host"}  # its $id names the site
    return JSONResponse(schema, media_type="application/schema+json", headers=headers)


@router.get("/scenarios/{scenario_id}", response_model=ScenarioDocument)
def get_scenario(scenario_id: ScenarioId, catalog: CatalogDep) -> JSONResponse:
    """The scenario document plus its content digest (used by links to detect edits)."""
    scenario = resolve_scenario(catalog, scenario_id)
    return JSONResponse({**engine.scenario_to_json(scenario), "sha256": scenario.sha256})


def _run(body: RunRequest, runner: Runner) -> tuple[engine.Scenario, engine.Config, engine.Trace]:
    scenario, config = runner.configure(body.scenario, body.variant, body.kernel, body.fixes)
    return scenario, config, engine.run_schedule(scenario, config, body.schedule)


def _run_body(body: RunRequest, runner: Runner, gzipped: bool) -> Body:
    scenario, config = runner.configure(body.scenario, body.variant, body.kernel, body.fixes)
    return runner.run(scenario, config, body.schedule, gzipped)


def _cached_body(body: RunRequest, runner: Runner) -> Body | None:
    """A catalog scenario's run from the cache, without leaving the event loop."""
    if not isinstance(body.scenario, str):
        return None  # a document must be validated first: work for a thread
    scenario, config = runner.configure(body.scenario, body.variant, body.kernel, body.fixes)
    return runner.cached(scenario, config, body.schedule)


@router.post("/run", response_model=RunResponse)
async def run(body: RunRequest, request: Request, runner: RunnerDep) -> Response:
    """Replay one interleaving step by step; an actor that is not enabled is a 422."""
    runner.check_length(body.schedule)
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    content = _cached_body(body, runner)
    if content is None:
        content = await anyio.to_thread.run_sync(_run_body, body, runner, gzipped)
    # The GZip middleware leaves a response that already has a Content-Encoding alone.
    if gzipped and content.gzipped is not None:
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return Response(content.gzipped, media_type="application/json", headers=headers)
    return Response(content.plain, media_type="application/json")


BUSY = "Retry-After: seconds until a search is likely to have finished"


@router.post(
    "/explore",
    response_model=ExploreResponse,
    responses={
        429: {
            "model": ErrorResponse,
            "description": f"this client already has its share of explorations in flight. {BUSY}",
        },
        503: {
            "model": ErrorResponse,
            "description": f"the exploration queue is full, or its worker was lost. {BUSY}",
        },
    },
)
async def explore(
    body: ExploreRequest, request: Request, runner: RunnerDep, explorer: ExplorerDep
) -> Response:
    """Search every interleaving (bounded); outcomes with counts and a shortest example.

    The search runs in a worker process and stops when the client disconnects; 503 (queue
    full) or 429 (this client's share in use) with Retry-After when there is no room for it.
    """
    limit = runner.settings.max_states
    if body.max_states is not None and body.max_states > limit:
        raise BadInput("max_states", f"{body.max_states} is over the limit of {limit} states")
    scenario, config = runner.configure(body.scenario, body.variant, body.kernel, body.fixes)
    gone = partial(disconnected, request.receive)
    result = await explorer.explore_until_gone(
        scenario, config, gone, body.max_states, client=client_of(request)
    )
    if result is None:
        return Response(status_code=CLIENT_GONE)
    return JSONResponse(engine.exploration_to_json(result))


@router.post(
    "/diagram",
    response_class=PlainTextResponse,
    responses={
        **JSON_ERRORS,
        200: {
            "content": {"text/plain": {}, "text/markdown": {}},
            "description": "the column diagram (as Markdown with ?format=md)",
        },
    },
)
def diagram(
    body: DiagramRequest,
    request: Request,
    runner: RunnerDep,
    format: Annotated[
        Literal["text", "md"],
        Query(description="text: the plain diagram; md: a header and a fenced block"),
    ] = "text",
    replay: Annotated[
        bool,
        Query(description="false: leave the replay link out (a commit message, say)"),
    ] = True,
) -> PlainTextResponse:
    """The kernel-style column diagram of one interleaving, with a replay link on the
    configured public URL (or the address the request came in on), unless replay=false."""
    runner.check_length(body.schedule)
    scenario, config, result = _run(body, runner)
    at = len(body.schedule) if body.at is None else min(body.at, len(body.schedule))
    link = (
        replay_link(request, scenario, config, body.scenario, body.schedule, at) if replay else None
    )
    if format == "md":
        markdown = engine.render_markdown(scenario, config, result, link)
        return PlainTextResponse(markdown, media_type="text/markdown")
    text = engine.render_diagram(scenario, config, result).rstrip("\n")
    return PlainTextResponse(f"{text}\n\nreplay: {link}\n" if link else f"{text}\n")


@router.post("/export/{format}", summary="Export a run", **ROUTE_DOC)
def export_run(
    body: DiagramRequest, format: FormatParam, request: Request, runner: RunnerDep
) -> Response:
    """One interleaving as a file to download: Perfetto trace-event JSON, JSON Lines, the
    timeline as SVG, or the diagram as Markdown (`at`: the step its replay link opens at).

    The body is `/api/run`'s; the replay is strict, as there: a step that does not apply is a
    422 naming it. The dashboard's Export links are `GET /s/{id}/export/{format}`.
    """
    runner.check_length(body.schedule)
    scenario, config, run = _run(body, runner)
    at = len(body.schedule) if body.at is None else min(body.at, len(body.schedule))
    link = replay_link(request, scenario, config, body.scenario, body.schedule, at)
    return export_response(format, scenario, config, run, link)
