"""The pagerace web app: `create_app()` wires the catalog, routers, static files and limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

import engine
from app import __version__
from app.assets import find_assets
from app.config import STATIC_DIR, TEMPLATES_DIR, Settings, default_links_db
from app.errors import BodySizeLimit, install_error_handlers
from app.limits import SharedLeases, SharedLimit
from app.rooms import RedisBroker, RoomSettings, make_broker
from app.routes import api, editor, links, pages, rooms, ws
from app.routes.pages import FrameCache
from app.security import HeadAsGet, SecurityHeaders, redact_tokens_in_logs
from app.service import Explorer, Runner
from app.session import ClientBudgets
from app.shortlinks import make_links
from app.static_files import DynamicGZip, StaticDirectory
from app.urls import Urls
from engine.lang.catalog import load_folder


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    redact_tokens_in_logs()  # after the server has set up its logging
    app.state.explorer.warm()  # the worker processes start now, not on the first explore
    # Every static file gzipped once now (~0.2 s, off the loop), not on its first request.
    await anyio.to_thread.run_sync(app.state.static.warm)
    yield
    app.state.explorer.close()
    await app.state.rooms.close()


def url_builder(request: Request) -> dict[str, Urls]:
    """Every template's URL builder (`urls`), with the sub-path this request was served under."""
    return {"urls": Urls.of(request)}


def serve_catalog(settings: Settings) -> dict[str, engine.Scenario]:
    """The built-in catalog, then the user's own folder (PAGERACE_SCENARIOS) if one is set."""
    catalog = engine.load_catalog()
    if settings.scenarios_dir is not None:
        catalog |= load_folder(settings.scenarios_dir, catalog)
    return catalog


def page_settings(request: Request) -> dict[str, int]:
    """The settings the page scripts read from <body>: the autoplay step interval."""
    settings: Settings = request.app.state.settings
    return {"play_delay_ms": settings.play_delay_ms}


SWAGGER_UI = "swagger-ui-5.35.0"  # static/vendor/VENDOR.md


def create_app(
    catalog: Mapping[str, engine.Scenario] | None = None,
    settings: Settings | None = None,
    room_settings: RoomSettings | None = None,
) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(
        title="pagerace",
        summary="Step through Linux page-lifecycle races, find the bad interleavings, share them.",
        version=__version__,
        lifespan=lifespan,
        # FastAPI's own /docs pages fetch Swagger UI from a CDN; ours serves the vendored
        # copy (static/vendor, below), so the API docs work offline too.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    # Live rooms: in this process, or through Redis when PAGERACE_REDIS_URL is set.
    room_settings = room_settings or RoomSettings.from_env()
    app.state.rooms = make_broker(room_settings)
    # Per-client limits: counted in the rooms' Redis when there is one, so that they hold
    # across workers (app/limits.py); in this process otherwise.
    shared: tuple[Any, tuple[type[BaseException], ...]] = (None, ())
    if isinstance(app.state.rooms, RedisBroker):
        shared = (app.state.rooms.redis, app.state.rooms.errors)
    app.state.room_creations = SharedLimit(
        "rooms", room_settings.client_rooms, room_settings.client_window_s, *shared
    )
    # Failed room lookups per client (room-id guessing), on the same window.
    app.state.room_misses = SharedLimit(
        "room-misses", room_settings.client_misses, room_settings.client_window_s, *shared
    )
    # Short links (/z/...): the rooms' Redis when there is one, else a SQLite file.
    app.state.links = make_links(
        settings.links_db or default_links_db(),
        room_settings.redis_url,
        room_settings.redis_timeout_s,
        settings.links_ttl_s,
    )
    app.state.link_creations = SharedLimit("links", settings.links_per_minute, 60.0, *shared)
    app.state.live_frames = FrameCache()
    app.state.replay_budgets = ClientBudgets(settings.socket_cpu_burst_s, settings.socket_cpu_share)
    app.state.catalog = dict(catalog) if catalog is not None else serve_catalog(settings)
    app.state.explorer = Explorer(settings)
    if shared[0] is not None:
        # A search lives at most its time limit once running, after waiting behind at most
        # the queue: its lease outlives that, and frees itself if its worker dies.
        lease_s = settings.explore_time_limit_s * (settings.explore_queue + 2)
        app.state.explorer.shared = SharedLeases(settings.explore_per_client, lease_s, *shared)
    app.state.runner = Runner(app.state.catalog, settings)
    assets = find_assets(STATIC_DIR)
    templates = Jinja2Templates(
        directory=TEMPLATES_DIR, context_processors=[url_builder, page_settings]
    )
    templates.env.globals["assets"] = assets
    app.state.templates = templates

    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    # Pages and API bodies; static files are compressed once (app/static_files.py).
    app.add_middleware(DynamicGZip, minimum_size=1024, skip=("/static/",))
    app.add_middleware(HeadAsGet)  # outermost: every GET route answers HEAD too

    app.include_router(api.router)
    app.include_router(pages.exports)
    app.include_router(ws.router)
    app.include_router(rooms.router)
    app.include_router(pages.router)
    app.include_router(editor.router)
    app.include_router(links.router)
    static = app.state.static = StaticDirectory(STATIC_DIR, assets.version)

    @app.get("/static/{name:path}", include_in_schema=False)
    async def static_file(name: str, request: Request) -> Response:
        # From memory, compressed once (app/static_files.py): a dict lookup, on the loop.
        return static.respond(request, name)

    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        # For probes: answers without touching the engine, the catalog or the broker.
        return {"status": "ok", "version": __version__}

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        urls = Urls.of(request)
        page = get_swagger_ui_html(
            openapi_url=urls.path(app.openapi_url or "/openapi.json"),
            title="pagerace API",
            swagger_js_url=urls.path(f"/static/vendor/{SWAGGER_UI}/swagger-ui-bundle.js"),
            swagger_css_url=urls.path(f"/static/vendor/{SWAGGER_UI}/swagger-ui.css"),
            swagger_favicon_url="data:,",
        )
        # Review L3: a way back to the app, and the app's dark mode (static/docs.css).
        html = bytes(page.body).decode()
        back = (
            f'<nav class="docs-back"><a href="{urls.home()}">← pagerace</a> · '
            f'<a href="{urls.path("/edit")}">editor</a></nav>'
        )
        css = f'<link rel="stylesheet" href="{urls.static("docs.css", assets.version)}">'
        html = html.replace("</head>", f"{css}\n</head>", 1).replace("<body>", f"<body>\n{back}", 1)
        return HTMLResponse(html)

    return app


app = create_app()
