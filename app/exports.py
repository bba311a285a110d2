"""One run as a file to download (issue 16 item 5): the formats, their media types and names.

The API (`POST /api/export/{format}`) and the dashboard's Export links
(`GET /s/{id}/export/{format}`) both answer through `export_response`, so a file made from a
link and one made from a request body of the same run are the same bytes. The bodies come
from the engine, as the CLI's `run --export` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Path
from fastapi.responses import Response
from starlette.requests import Request

import engine
from app.runref import RunRef, ScenarioRef
from app.security import site_url
from app.urls import Urls

Format = Literal["perfetto", "jsonl", "svg", "md"]


@dataclass(frozen=True, slots=True)
class Export:
    media_type: str
    suffix: str
    description: str
    body: Callable[[engine.Scenario, engine.Config, engine.Trace, str], str]


FORMATS: dict[str, Export] = {
    "perfetto": Export(
        "application/json",
        ".perfetto.json",
        "Chrome / Perfetto trace-event JSON: a track per actor, a slice per step, counters for "
        "refcount and mapcount, instants for violations (open it at ui.perfetto.dev)",
        lambda _s, _c, run, _l: json.dumps(engine.to_perfetto(run), separators=(",", ":")),
    ),
    "jsonl": Export(
        "application/x-ndjson",
        ".jsonl",
        "JSON Lines: a header line (the run without its steps), then one object per step",
        lambda _s, _c, run, _l: engine.run_to_jsonl(run),
    ),
    "svg": Export(
        "image/svg+xml",
        ".svg",
        "the timeline as a standalone SVG image: a lane per actor, refcount and mapcount lines",
        lambda _s, _c, run, _l: engine.render_svg(run),
    ),
    "md": Export(
        "text/markdown; charset=utf-8",
        ".md",
        "the diagram as Markdown, with its replay link (for mailing lists and issues)",
        engine.render_markdown,
    ),
}
FORMAT_HELP = "; ".join(f"{name}: {e.description}" for name, e in FORMATS.items())
FormatParam = Annotated[Format, Path(description=FORMAT_HELP)]
# The routes' OpenAPI entry: every format's media type (errors are the JSON error table's).
ROUTE_DOC: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {
            "content": {e.media_type.split(";")[0]: {} for e in FORMATS.values()},
            "description": "the file, with a Content-Disposition attachment filename: "
            + FORMAT_HELP,
        }
    },
}
# What a Content-Disposition filename may hold without quoting rules: scenario ids and variant
# names are already this tame, a kernel label ("6.1 + fix") is not.
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def filename(scenario: engine.Scenario, config: engine.Config, fmt: str) -> str:
    stem = UNSAFE.sub("-", f"{scenario.id}-{config.variant or config.kernel}").strip("-")
    return f"{stem or 'run'}{FORMATS[fmt].suffix}"


def replay_link(
    request: Request,
    scenario: engine.Scenario,
    config: engine.Config,
    ref: ScenarioRef,
    schedule: tuple[str, ...] | list[str],
    at: int,
) -> str:
    """The dashboard at step `at` of this run, as an absolute URL (the site's address, root
    path included, never an arbitrary Host header: `site_url`)."""
    params = RunRef.for_link(scenario, config, ref, schedule, at)
    settings = request.app.state.settings
    base = site_url(
        request.scope, str(request.base_url), settings.public_url, settings.allowed_hosts
    )
    return Urls(base).page(scenario.id, params)


def export_response(
    fmt: str, scenario: engine.Scenario, config: engine.Config, run: engine.Trace, link: str
) -> Response:
    export = FORMATS[fmt]
    body = export.body(scenario, config, run, link)
    disposition = f'attachment; filename="{filename(scenario, config, fmt)}"'
    return Response(
        body, media_type=export.media_type, headers={"Content-Disposition": disposition}
    )
