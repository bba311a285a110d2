"""HTML pages (product.md 5.4): the catalog and the scenario dashboard, plus htmx fragments.

Every dashboard URL renders the exact step on the server; the fragment endpoints return the
same templates' parts so htmx can swap them, and tell htmx the canonical page URL to show.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated, Any, NamedTuple

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

import engine
from app.catalog_view import all_tags, cards
from app.config import MAX_PARAM_CHARS, Settings
from app.dashboard import (
    Dashboard,
    Notice,
    build_dashboard,
    config_for,
    variant_for_kernel,
)
from app.deps import CatalogDep, ExplorerDep, SettingsDep, TemplatesDep
from app.doom import no_return_of
from app.errors import PageError, error_page
from app.exports import ROUTE_DOC, FormatParam, export_response, replay_link
from app.links import (
    LinkScenarioError,
    decode_doc,
    parse_schedule,
)
from app.outcomes import dashboard_outcomes
from app.runref import RunRef
from app.schemas import JSON_ERRORS
from app.security import cross_site_subresource, embed_policy
from app.service import (
    CLIENT_GONE,
    BadInput,
    Catalog,
    Explorer,
    client_of,
    disconnected,
    replay_lenient,
    resolve_scenario,
    shortest_violation,
)
from app.urls import EmbedUrls, Urls

router = APIRouter(include_in_schema=False)
# The dashboard's Export links are pages' URLs (a link's query) but files, documented as such.
exports = APIRouter(tags=["exports"], responses=JSON_ERRORS)
LINK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "a link's s= that is not a packed scenario, or holds an invalid one",
        "content": JSON_ERRORS[422]["content"],
    }
}
LINK_ROUTE = {**ROUTE_DOC, "responses": {**ROUTE_DOC["responses"], **LINK_ERRORS}}


def is_htmx(request: Request) -> bool:
    # A history restore wants the whole page even though htmx sent it.
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


@router.get("/", response_class=HTMLResponse)
def catalog_page(
    request: Request, catalog: CatalogDep, templates: TemplatesDep, q: str = "", tag: str = ""
) -> Response:
    query, chosen = q[:200].strip(), tag[:64] or None
    ctx = {
        "cards": cards(catalog, query, chosen),
        "tags": all_tags(catalog.values()),
        "q": query,
        "tag": chosen,
        "total": len(catalog),
    }
    return templates.TemplateResponse(
        request, "_cards.html" if is_htmx(request) else "catalog.html", ctx
    )


@dataclass(frozen=True, slots=True)
class Target:
    scenario: engine.Scenario
    link: RunRef  # as the URL gave it (not yet checked)
    notices: tuple[Notice, ...]
    urls: Urls  # the request's: its links keep the sub-path it was served under
    focus: int | None = None  # diff=: the A/B view's difference shown side by side


def _scenario(
    catalog: Catalog, settings: Settings, scenario_id: str, s: str | None
) -> engine.Scenario:
    if not s:
        return resolve_scenario(catalog, scenario_id)
    document = decode_doc(s, settings.max_doc_bytes)
    try:
        return engine.parse_scenario(document)
    except engine.ScenarioError as err:  # the link's fault (a 400 page), not an API call's
        raise LinkScenarioError(err) from err


def _bounded(params: Mapping[str, str], settings: Settings) -> None:
    """Page parameters over their bounds are a 422 page naming the parameter."""
    longest = settings.max_schedule
    limits = {
        "s": settings.max_link_chars,
        "t": longest * (MAX_PARAM_CHARS + 1),  # names and commas
        "v": MAX_PARAM_CHARS,
        "d": MAX_PARAM_CHARS,
        "cmp": MAX_PARAM_CHARS,
        "diff": MAX_PARAM_CHARS,
        "kernel": MAX_PARAM_CHARS,
    }
    problems = [
        f"{name}: {len(params[name])} characters; at most {limit}"
        for name, limit in limits.items()
        if len(params.get(name, "")) > limit
    ]
    steps = len(parse_schedule(params.get("t")))
    if steps > longest:
        problems.append(f"t: the schedule has {steps} steps; at most {longest}")
    at = params.get("at", "")
    if at.isascii() and at.isdigit() and (len(at) > 9 or int(at) > longest):
        problems.append(f"at: step {at[:12]} is beyond the longest schedule ({longest} steps)")
    if problems:
        raise PageError(422, "This link asks for more than pagerace allows", problems)


def _step_number(raw: str | None, notices: list[Notice]) -> int | None:
    # ASCII only: str.isdigit() is also true for "²" and other digits int() rejects.
    if raw and raw.isascii() and raw.isdigit():
        return int(raw)
    if raw:
        notices.append(Notice("warn", f"Ignored at={raw[:20]!r}: not a step number."))
    return None


def _target(request: Request, catalog: Catalog, settings: Settings, scenario_id: str) -> Target:
    params = request.query_params
    _bounded(params, settings)
    s = params.get("s") or None
    scenario = _scenario(catalog, settings, scenario_id, s)
    notices: list[Notice] = []
    variant = params.get("v") or None
    if variant is None and (kernel := params.get("kernel")):
        variant = variant_for_kernel(scenario, kernel, notices)
    link = RunRef(
        variant=variant,
        schedule=parse_schedule(params.get("t")),
        at=_step_number(params.get("at"), notices),
        digest=params.get("d") or None,
        packed=s,
        compare=params.get("cmp") or None,
        engine_version=params.get("e") or None,
    )
    diff = params.get("diff", "")
    focus = int(diff) if diff.isascii() and diff.isdigit() and len(diff) <= 9 else None
    return Target(scenario, link, tuple(notices), Urls.of(request), focus)


def _dashboard(target: Target, scenario_id: str, extra: Sequence[Notice] = ()) -> Dashboard:
    sid = target.scenario.id if target.link.packed else scenario_id
    notices = [*target.notices, *extra]
    return build_dashboard(
        target.scenario, target.link, sid, notices, target.urls, focus=target.focus
    )


def _frame(request: Request, templates: TemplatesDep, dash: Dashboard) -> Response:
    # A live room's follower fetches frames too, but its address stays /live/{room}.
    following = request.query_params.get("live") == "1"
    headers = {} if following else {"HX-Replace-Url": dash.page_url}
    return templates.TemplateResponse(request, "_frame_response.html", {"d": dash}, headers=headers)


@router.get("/embed/s/{scenario_id}", response_class=HTMLResponse, include_in_schema=False)
def embed_page(
    scenario_id: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    """The dashboard at the link's step, read-only and framable (issue 15 item 8): for course
    pages and articles. Server-rendered, no script; its ◀ ▶ walk the link's schedule inside
    the frame, and "Open in pagerace" opens the full dashboard at that step."""
    try:
        target = _target(request, catalog, settings, scenario_id)
        embedded = replace(target, urls=EmbedUrls(target.urls.root))
        dash = _dashboard(embedded, scenario_id)
    except engine.InputError as err:
        return error_page(request, err)
    sid = target.scenario.id if target.link.packed else scenario_id
    full = target.urls.page(sid, dash.ref)  # the same step on the full dashboard
    response = templates.TemplateResponse(request, "embed.html", {"d": dash, "full_url": full})
    response.headers["Content-Security-Policy"] = embed_policy(settings.embed_ancestors)
    # Framed by another site's page: the document is its subresource, as far as CORP goes.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@router.get("/s/{scenario_id}", response_class=HTMLResponse)
def dashboard_page(
    scenario_id: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    try:
        dash = _dashboard(_target(request, catalog, settings, scenario_id), scenario_id)
    except engine.InputError as err:
        return error_page(request, err)
    present = request.query_params.get("present") == "1"
    return templates.TemplateResponse(request, "dashboard.html", {"d": dash, "present": present})


class FrameCache:
    """Rendered follower frames by URL. A presenter's step sends every follower of a room to
    the same frame URL at once: one render serves them all (a frame is a pure function of its
    URL and the catalog)."""

    def __init__(self, entries: int = 128, max_bytes: int = 32 * 1024 * 1024) -> None:
        # Bounded in bytes as well as entries: 128 frames of a large custom scenario were
        # once 128 pages of hundreds of MB. The key (the URL, s= included) counts too.
        self.entries, self.max_bytes = entries, max_bytes
        self.size = 0
        self.frames: OrderedDict[str, bytes] = OrderedDict()

    def get(self, url: str) -> bytes | None:
        body = self.frames.get(url)
        if body is not None:
            self.frames.move_to_end(url)
        return body

    def put(self, url: str, body: bytes) -> None:
        cost = len(url) + len(body)
        if cost > self.max_bytes // 8:
            return  # one huge frame must not flush every other room's
        old = self.frames.pop(url, None)
        if old is not None:
            self.size -= len(url) + len(old)
        self.frames[url] = body
        self.size += cost
        while len(self.frames) > self.entries or self.size > self.max_bytes:
            key, dropped = self.frames.popitem(last=False)
            self.size -= len(key) + len(dropped)


def _found_again(explorer: Explorer, target: Target) -> list[Notice]:
    """For a follower's frame (found=1): the presenter's "Find a bug" summary, when the link's
    schedule is the shortest violating one of an exploration already made. Only the cache is
    read: a room of followers must never start explorations."""
    config = config_for(target.scenario, target.link.variant, [])
    result = explorer.found(target.scenario, config)
    outcome = shortest_violation(result) if result is not None else None
    if outcome is None or tuple(outcome.example) != target.link.schedule:
        return []
    if result is None:
        return []
    no_return = outcome.no_return
    if no_return <= 0:  # a first-bug result: the presenter's page asked engine.doom (cached)
        found = no_return_of(target.scenario, config, outcome.example)
        no_return = found.step if found else -1
    return [found_notice(outcome, result, no_return)]


@router.get("/s/{scenario_id}/frame", response_class=HTMLResponse)
def frame(
    scenario_id: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    explorer: ExplorerDep,
    templates: TemplatesDep,
) -> Response:
    following = request.query_params.get("live") == "1"
    cache: FrameCache = request.app.state.live_frames
    key = f"{request.url.path}?{request.url.query}"
    if following and (body := cache.get(key)) is not None:
        return HTMLResponse(body)
    try:
        target = _target(request, catalog, settings, scenario_id)
        found = following and request.query_params.get("found") == "1"
        summary = _found_again(explorer, target) if found else []
        dash = _dashboard(target, scenario_id, summary)
    except engine.InputError as err:
        return error_page(request, err)
    response = _frame(request, templates, dash)
    # A found=1 frame without its summary depends on the explorer's cache, which may fill
    # later: only frames that are a pure function of their URL are kept.
    if following and (summary or not found):
        cache.put(key, bytes(response.body))
    return response


class Explored(NamedTuple):
    target: Target
    config: engine.Config
    result: engine.Exploration
    notices: list[Notice]


async def _explored(
    request: Request,
    catalog: Catalog,
    settings: Settings,
    explorer: ExplorerDep,
    templates: TemplatesDep,
    scenario_id: str,
    first: bool = False,
) -> Explored | Response:
    """The link's scenario and kernel, explored off the event loop (cached by the explorer),
    or the response to give instead: an error page, or nothing for a client that went away
    (its search is stopped)."""
    if cross_site_subresource(request.headers):  # an <img src=.../outcomes> on another site
        refused = PageError(
            403,
            "Explorations start from this site only",
            ["another site's page asked for this exploration; open the link itself instead"],
        )
        return error_page(request, refused)
    try:
        # Inflating and validating an s= document is CPU work: off the event loop.
        target = await anyio.to_thread.run_sync(_target, request, catalog, settings, scenario_id)
    except engine.InputError as err:
        return error_page(request, err)
    notices: list[Notice] = []
    config = config_for(target.scenario, target.link.variant, notices)
    gone = partial(disconnected, request.receive)
    result = await explorer.explore_until_gone(
        target.scenario, config, gone, client=client_of(request), first=first
    )
    if result is None:
        return Response(status_code=CLIENT_GONE)
    return Explored(target, config, result, notices)


def no_bug_found(result: engine.Exploration, kernel: str) -> str:
    if result.truncated:
        return (
            f"No invariant broke in the {result.states} states searched on kernel {kernel}, "
            "but the search was cut off before it covered every interleaving."
        )
    return (
        f"No invariant can break on kernel {kernel}: all {result.interleavings} "
        f"interleavings ({result.states} distinct states) are safe."
    )


def found_notice(
    outcome: engine.Outcome, result: engine.Exploration, no_return: int | None = None
) -> Notice:
    """What "Find a bug" says about the schedule it found (`no_return`: its point of no
    return when known another way than from the explored graph)."""
    broken, steps = ", ".join(outcome.violations), len(outcome.example)
    no_return = outcome.no_return if no_return is None else no_return
    if result.first_bug:
        text = (
            f"Found {broken} after {result.states} states, before the search covered every "
            f"interleaving: this {steps}-step schedule needs {result.preemptions} "
            "preemption(s), the fewest of any that breaks an invariant. Explore all counts "
            "how many interleavings end this way."
        )
    else:
        text = (
            f"Found {broken}: the shortest schedule that breaks an invariant has {steps} "
            f"steps; {outcome.interleavings} of {result.interleavings} interleavings end "
            "this way."
        )
    if no_return > 0:
        text += (
            f" Step {no_return} is the point of no return: whatever runs after it, "
            "the run ends broken."
        )
    return Notice("warn", text)


@router.get("/s/{scenario_id}/find-bug", response_class=HTMLResponse)
async def find_bug(
    scenario_id: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    explorer: ExplorerDep,
    templates: TemplatesDep,
) -> Response:
    """Find a schedule that breaks an invariant and show it at its point of no return.

    An exhaustive result already cached gives the shortest bad schedule with its counts;
    otherwise the search stops at the first bug it finds (the fewest preemptions first), so
    that a scenario too large to cover still gets a verdict in milliseconds.
    """
    explored = await _explored(
        request, catalog, settings, explorer, templates, scenario_id, first=True
    )
    if isinstance(explored, Response):
        return explored
    target, config, result, notices = explored
    outcome = shortest_violation(result)
    if result.truncated and not result.first_bug:
        notices.append(Notice("warn", f"The search was cut off at {result.states} states."))
    if outcome is None:
        notices.append(Notice("info", no_bug_found(result, config.kernel)))
        link = target.link
    else:
        link = RunRef(
            variant=config.variant,
            schedule=tuple(outcome.example),
            digest=target.scenario.digest,
            packed=target.link.packed,
        )

    def render() -> Response:  # a replay and a page render: off the event loop
        nonlocal link
        if outcome is not None:
            # Land where the run is already lost, not on the free at its end: the step a
            # reviewer points at. A first-bug search has no graph to tell, so the run's own
            # search (engine.doom) does; the last step when neither can.
            no_return = outcome.no_return
            if no_return <= 0:
                found = no_return_of(target.scenario, config, outcome.example)
                no_return = found.step if found else -1
            notices.append(found_notice(outcome, result, no_return))
            link = replace(link, at=no_return if no_return > 0 else len(outcome.example))
        dash = _dashboard(
            Target(target.scenario, link, target.notices, target.urls), scenario_id, notices
        )
        return _frame(request, templates, dash)

    return await anyio.to_thread.run_sync(render)


@dataclass(frozen=True, slots=True)
class Attribution:
    violation: str
    switches: tuple[engine.Switch, ...]  # each removes it alone, proven by a full search
    undecided: tuple[str, ...]  # switches whose search was cut off


@router.get("/s/{scenario_id}/fix", response_class=HTMLResponse)
async def fix(
    scenario_id: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    explorer: ExplorerDep,
    templates: TemplatesDep,
) -> Response:
    """Fix attribution: for each violation of the run at the link, each switch that, turned
    on (or off) alone on this kernel, makes it unreachable in every interleaving. One search
    per switch, each through the explorer (its pool, its per-client share, its cache)."""
    explored = await _explored(request, catalog, settings, explorer, templates, scenario_id)
    if isinstance(explored, Response):
        return explored
    target, config, _, _ = explored

    def broken() -> tuple[str, ...]:
        run = replay_lenient(target.scenario, config, target.link.schedule)
        shown = run.at(target.link.step)
        return tuple(sorted({v.name for v in shown.violations}))

    names = await anyio.to_thread.run_sync(broken)
    removes: dict[str, list[engine.Switch]] = {name: [] for name in names}
    undecided: list[str] = []
    gone = partial(disconnected, request.receive)
    for name in engine.SWITCHES if names else ():
        flipped = not config.fixes[name]
        other = engine.build_config(config.kernel, {**config.overrides, name: flipped})
        result = await explorer.explore_until_gone(
            target.scenario, other, gone, client=client_of(request)
        )
        if result is None:
            return Response(status_code=CLIENT_GONE)
        if result.truncated:
            undecided.append(name)
            continue
        reachable = engine.reachable_violations(result)
        fix_ = engine.SWITCHES[name]
        for violation in names:
            if violation not in reachable:
                removes[violation].append(engine.Switch(name, flipped, fix_.commit, fix_.effect))
    attributions = [Attribution(v, tuple(removes[v]), tuple(undecided)) for v in names]
    ctx = {"attributions": attributions, "kernel": config.label}
    return templates.TemplateResponse(request, "_fix.html", ctx)


@router.get("/s/{scenario_id}/outcomes", response_class=HTMLResponse)
async def outcomes(
    scenario_id: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    explorer: ExplorerDep,
    templates: TemplatesDep,
) -> Response:
    """Explore all interleavings: totals, a bar chart and a "load example" per outcome."""
    explored = await _explored(request, catalog, settings, explorer, templates, scenario_id)
    if isinstance(explored, Response):
        return explored
    target, config, result, notices = explored
    sid = target.scenario.id if target.link.packed else scenario_id
    view = dashboard_outcomes(
        sid, target.scenario, config, result, target.link.packed, notices, target.urls
    )
    return templates.TemplateResponse(request, "_outcomes.html", {"outcomes": view})


@exports.get("/s/{scenario_id}/export/{format}", summary="Export a link's run", **LINK_ROUTE)
def export_link(
    scenario_id: str,
    format: FormatParam,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    # Read by _target from the query string as the page reads them; declared for the docs.
    v: Annotated[str | None, Query(description="the variant (kernel) to run on")] = None,
    t: Annotated[str | None, Query(description="the schedule: actor names, with commas")] = None,
    at: Annotated[str | None, Query(description="the step the Markdown's link opens at")] = None,
    d: Annotated[str | None, Query(description="the scenario's digest in the link")] = None,
    s: Annotated[str | None, Query(description="a custom scenario's document, packed")] = None,
) -> Response:
    """The run a dashboard link shows (the page's own query: v, t, at, d, s) as a file.

    Unlike the page, which replays what still applies and explains the rest, a download is
    the run asked for or an error: a step that does not apply is a 422 at `t` naming the step,
    an unknown variant a 422 at `v`.
    """
    target = _target(request, catalog, settings, scenario_id)  # bounds, s= documents
    link, scenario = target.link, target.scenario
    # The errors name the link's parameters (v=, t=), not the API body's fields.
    try:
        config = engine.make_config(scenario, variant=link.variant)
    except engine.ConfigError as err:
        raise BadInput("v", str(err)) from err
    try:
        run = engine.run_schedule(scenario, config, link.schedule)
    except engine.ScheduleError as err:
        raise BadInput("t", str(err)) from err
    ref = dict(scenario.document) if link.packed else scenario.id
    url = replay_link(request, scenario, config, ref, link.schedule, link.step)
    return export_response(format, scenario, config, run, url)
