"""Dependencies shared by HTTP and WebSocket routes (they take HTTPConnection for both).

They are `async def` although they only read app.state: FastAPI runs a plain `def`
dependency in the thread pool, a thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.templating import Jinja2Templates
from starlette.requests import HTTPConnection

from app.config import Settings
from app.service import Catalog, Explorer, Runner


async def get_catalog(conn: HTTPConnection) -> Catalog:
    catalog: Catalog = conn.app.state.catalog
    return catalog


async def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


async def get_explorer(conn: HTTPConnection) -> Explorer:
    explorer: Explorer = conn.app.state.explorer
    return explorer


async def get_runner(conn: HTTPConnection) -> Runner:
    runner: Runner = conn.app.state.runner
    return runner


async def get_templates(conn: HTTPConnection) -> Jinja2Templates:
    templates: Jinja2Templates = conn.app.state.templates
    return templates


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ExplorerDep = Annotated[Explorer, Depends(get_explorer)]
RunnerDep = Annotated[Runner, Depends(get_runner)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
