"""Short links: POST /api/links makes one, GET /z/{id} follows it (app/shortlinks.py)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from app.errors import PageError, error_page
from app.limits import SharedLimit
from app.schemas import ERRORS, ShortLink, ShortLinkRequest
from app.security import site_url
from app.service import BadInput, client_of
from app.shortlinks import ID, LinkStore, LinkStoreDown, check_target
from app.urls import Urls

router = APIRouter()
STORE_DOWN_RETRY_S = 5


def _relative(link: str, request: Request) -> str:
    """The address without this site's origin and root path: what the store keeps."""
    parts = urlsplit(link)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https"):
            raise BadInput("link", "must be an http(s) URL or a path of this site")
        path = parts.path
    else:
        path = parts.path
    root = Urls.of(request).root
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return path + (f"?{parts.query}" if parts.query else "")


@router.post(
    "/api/links",
    tags=["api"],
    status_code=201,
    response_model=ShortLink,
    responses={
        **ERRORS,
        429: {"description": "this client made too many short links lately (see Retry-After)"},
        503: {"description": "the link store cannot be reached"},
    },
)
async def make_short_link(body: ShortLinkRequest, request: Request) -> JSONResponse:
    """A short, content-addressed link (/z/{id}) to a dashboard or editor address: the same
    address always gets the same id. The long address keeps working without it."""
    limit: SharedLimit = request.app.state.link_creations
    client = client_of(request)
    wait = await limit.blocked(client)
    if wait > 0:
        detail = f"too many short links from this client; try again in {math.ceil(wait)} s"
        headers = {"Retry-After": str(math.ceil(wait))}
        return JSONResponse({"detail": detail, "errors": []}, status_code=429, headers=headers)
    target = _relative(body.link, request)
    settings = request.app.state.settings
    problem = check_target(target, settings.max_link_chars + 4096)
    if problem is not None:
        raise BadInput("link", problem)
    store: LinkStore = request.app.state.links
    try:
        link_id = await store.put(target)
    except LinkStoreDown as err:
        detail = f"the short-link store cannot be reached ({err}); the long link still works"
        headers = {"Retry-After": str(STORE_DOWN_RETRY_S)}
        return JSONResponse({"detail": detail, "errors": []}, status_code=503, headers=headers)
    await limit.count(client)
    base = site_url(
        request.scope, str(request.base_url), settings.public_url, settings.allowed_hosts
    )
    site = Urls(base)
    made = ShortLink(id=link_id, short_url=site.short(link_id), long_url=site.path(target))
    return JSONResponse(made.model_dump(), status_code=201)


@router.get("/z/{link_id}", include_in_schema=False)
async def follow_short_link(link_id: str, request: Request) -> Response:
    """The long address a short link names (303), or a page saying why there is none."""
    if not ID.fullmatch(link_id):
        return error_page(
            request,
            PageError(
                404,
                "This is not a short link",
                [
                    f"{link_id[:40]!r}: a short link is /z/ and 10-26 letters a-z and digits "
                    "2-7; the link was probably cut or mistyped"
                ],
            ),
        )
    store: LinkStore = request.app.state.links
    try:
        found = await store.get(link_id)
    except LinkStoreDown:
        return error_page(
            request,
            PageError(
                503,
                "Short links cannot be looked up right now",
                ["the link store cannot be reached; try again soon, or use the long link"],
            ),
        )
    settings = request.app.state.settings
    if found is not None and found.expired(settings.links_ttl_s, time.time()):
        assert found.created is not None
        made = datetime.fromtimestamp(found.created, UTC).strftime("%Y-%m-%d")
        return error_page(
            request,
            PageError(
                410,
                "This short link has expired",
                [
                    f"{Urls.of(request).short(link_id)} was made on {made}; short links on "
                    f"this server last {settings.links_ttl_days:g} days from when they were "
                    "last made (PAGERACE_LINKS_TTL_DAYS)",
                    "ask whoever sent it for the long link (/s/...), which never expires, "
                    "or make a new short link from it",
                ],
            ),
        )
    if found is None:
        return error_page(
            request,
            PageError(
                404,
                "Unknown short link",
                [
                    f"{Urls.of(request).short(link_id)} was not made on this server (or it "
                    "expired long ago, or its link store was reset); "
                    "long links (/s/...) always work on their own"
                ],
            ),
        )
    return RedirectResponse(Urls.of(request).path(found.target), status_code=303)
