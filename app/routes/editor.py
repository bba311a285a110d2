"""The scenario editor (product.md 5.4): write YAML, check it as you type, explore, share.

`GET /edit` is the page (the starter, `?from=` a catalog scenario, or `?s=` a shared one);
`POST /edit/check` and `POST /edit/explore` return the htmx fragments, and `POST /edit` renders
the whole page from a plain form post, so the editor also works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

import engine
from app.dashboard import Notice
from app.deps import CatalogDep, ExplorerDep, SettingsDep, TemplatesDep
from app.editor import (
    LINK_LIMIT,
    STARTER,
    Check,
    check_text,
    document_text,
    naming_reference,
    op_reference,
    source_text,
    summary,
    switch_reference,
    unpack,
)
from app.links import LinkError, LinkTooLarge
from app.outcomes import OutcomesView, editor_outcomes
from app.service import Catalog, ClientGone, Explorer, client_of
from app.urls import Urls

router = APIRouter(include_in_schema=False)
FORM_TYPE = "application/x-www-form-urlencoded"


class BadForm(ValueError):
    """A post that is not the editor's form."""


async def _form(request: Request) -> dict[str, str]:
    """The posted form fields (text, v, do); python-multipart is not needed for urlencoded."""
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM_TYPE:
        raise BadForm(f"send the form as {FORM_TYPE}")
    body = (await request.body()).decode("utf-8", "replace")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=8)
    except ValueError as err:
        raise BadForm("too many form fields") from err
    return dict(pairs)


async def _check(form: dict[str, str], max_doc_bytes: int, urls: Urls) -> Check:
    # Parsing up to 64 KB of YAML is CPU work: keep it off the event loop.
    text, variant = form.get("text", ""), form.get("v") or None
    return await anyio.to_thread.run_sync(check_text, text, max_doc_bytes, variant, urls)


def _check_context(check: Check) -> dict[str, Any]:
    scenario = check.scenario
    return {
        "c": check,
        "summary": summary(scenario, check.kernel) if scenario else "",
        "link_limit": LINK_LIMIT,
    }


def _page(
    request: Request,
    templates: TemplatesDep,
    catalog: Catalog,
    check: Check,
    notices: Sequence[Notice] = (),
    outcomes: OutcomesView | None = None,
    status: int = 200,
    from_id: str | None = None,
) -> Response:
    ctx = {
        **_check_context(check),
        "notices": tuple(notices),
        "choices": [(s.id, s.title) for s in catalog.values()],
        "reference": op_reference(),
        "switches": switch_reference(),
        "naming": naming_reference(),
        "outcomes": outcomes,
        "from_id": from_id,
    }
    return templates.TemplateResponse(request, "editor.html", ctx, status_code=status)


def _initial_text(
    catalog: Catalog, max_bytes: int, from_id: str | None, s: str | None
) -> tuple[str, list[Notice], int]:
    """The text the page opens with, notices about the link, and the HTTP status."""
    if s:
        try:
            shared = unpack(s, max_bytes)
        except LinkTooLarge as err:
            problem = f"s: {err}; here is the starter."
            return STARTER, [Notice("warn", problem)], 422
        except LinkError as err:
            problem = f"This link's scenario cannot be read ({err}); here is the starter."
            return STARTER, [Notice("warn", problem)], 400
        if isinstance(shared, dict):
            note = "Opened a copy of the dashboard's scenario, as YAML (its link kept no comments)."
            return document_text(shared), [Notice("info", note)], 200
        return shared, [], 200
    if from_id:
        text = source_text(catalog, from_id)
        if text is None:
            problem = f"No catalog scenario called “{from_id[:64]}”; here is the starter."
            return STARTER, [Notice("warn", problem)], 404
        note = "Editing a copy: nothing you change here alters the catalog."
        return text, [Notice("info", note)], 200
    return STARTER, [], 200


@router.get("/edit", response_class=HTMLResponse)
async def editor_page(
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    params = request.query_params
    from_id, s = params.get("from") or None, params.get("s") or None
    text, notices, status = _initial_text(catalog, settings.max_doc_bytes, from_id, s)
    check = await _check(
        {"text": text, "v": params.get("v", "")[:64]}, settings.max_doc_bytes, Urls.of(request)
    )
    shown = from_id if from_id in catalog and not s else None
    return _page(request, templates, catalog, check, notices, status=status, from_id=shown)


@router.post("/edit", response_class=HTMLResponse)
async def editor_post(
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    explorer: ExplorerDep,
    templates: TemplatesDep,
) -> Response:
    """The form posted without JavaScript: check it, and explore if asked."""
    try:
        form = await _form(request)
    except BadForm as err:
        check = await _check({"text": STARTER}, settings.max_doc_bytes, Urls.of(request))
        notice = Notice("warn", f"The form could not be read: {err}.")
        return _page(request, templates, catalog, check, [notice], status=400)
    check = await _check(form, settings.max_doc_bytes, Urls.of(request))
    outcomes = None
    if form.get("do") == "explore" and check.scenario is not None:
        outcomes = await _outcomes(request, explorer, check)
    status = 413 if check.size > check.limit else 200
    return _page(request, templates, catalog, check, outcomes=outcomes, status=status)


def _bad_form(request: Request, templates: TemplatesDep, err: BadForm) -> Response:
    ctx = {"message": str(err)}
    return templates.TemplateResponse(request, "_editor_bad_form.html", ctx, status_code=415)


@router.post("/edit/check", response_class=HTMLResponse)
async def check(request: Request, settings: SettingsDep, templates: TemplatesDep) -> Response:
    """The check fragment, with the kernel choice and the share box out of band."""
    try:
        form = await _form(request)
    except BadForm as err:
        return _bad_form(request, templates, err)
    result = await _check(form, settings.max_doc_bytes, Urls.of(request))
    ctx = {**_check_context(result), "oob": True}
    status = 413 if result.size > result.limit else 200
    return templates.TemplateResponse(request, "_editor_check.html", ctx, status_code=status)


@router.post("/edit/explore", response_class=HTMLResponse)
async def explore(
    request: Request, settings: SettingsDep, explorer: ExplorerDep, templates: TemplatesDep
) -> Response:
    """Every interleaving on the chosen kernel: totals, the chart, an example per outcome."""
    try:
        form = await _form(request)
    except BadForm as err:
        return _bad_form(request, templates, err)
    result = await _check(form, settings.max_doc_bytes, Urls.of(request))
    if result.scenario is None:
        status = 413 if result.size > result.limit else 422
        ctx: dict[str, Any] = {"c": result}
        return templates.TemplateResponse(
            request, "_editor_unexplored.html", ctx, status_code=status
        )
    ctx = {"c": result, "outcomes": await _outcomes(request, explorer, result)}
    return templates.TemplateResponse(request, "_outcomes.html", ctx)


async def _explore(
    request: Request, explorer: Explorer, scenario: engine.Scenario, config: engine.Config
) -> engine.Exploration:
    """Explore off the event loop; a client that goes away (a newer Explore) stops the search
    (and is answered CLIENT_GONE)."""

    async def gone() -> None:
        while not await request.is_disconnected():
            await anyio.sleep(0.2)

    result = await explorer.explore_until_gone(scenario, config, gone, client=client_of(request))
    if result is None:
        raise ClientGone
    return result


async def _outcomes(request: Request, explorer: Explorer, check: Check) -> OutcomesView:
    scenario = check.scenario
    assert scenario is not None
    config = engine.make_config(scenario, variant=check.variant)
    result = await _explore(request, explorer, scenario, config)
    packed = check.links.packed_doc or ""
    urls = Urls.of(request)
    return editor_outcomes(scenario, check.variant, config.kernel, result, packed, urls)
