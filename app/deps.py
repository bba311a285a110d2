"""Dependencies shared by HTTP and WebSocket routes (they take HTTPConnection for both)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.templating import Jinja2Templates
from starlette.requests import HTTPConnection

from app.config import Settings
from app.service import Catalog, Explorer


def get_catalog(conn: HTTPConnection) -> Catalog:
    catalog: Catalog = conn.app.state.catalog
    return catalog


def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def get_explorer(conn: HTTPConnection) -> Explorer:
    explorer: Explorer = conn.app.state.explorer
    return explorer


def get_templates(conn: HTTPConnection) -> Jinja2Templates:
    templates: Jinja2Templates = conn.app.state.templates
    return templates


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ExplorerDep = Annotated[Explorer, Depends(get_explorer)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
