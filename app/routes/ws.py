"""/ws/run (product.md 5.3): drive one run over a WebSocket; see app/session.py."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.deps import CatalogDep, ExplorerDep, SettingsDep
from app.rooms import RateLimit
from app.session import MESSAGE_BURST, MESSAGES_PER_S, RunSession, describe, frame_text, parse
from app.session import too_fast as too_fast_message

router = APIRouter()


@router.websocket("/ws/run")
async def ws_run(
    websocket: WebSocket, catalog: CatalogDep, settings: SettingsDep, explorer: ExplorerDep
) -> None:
    await websocket.accept()
    lock = asyncio.Lock()
    limit = RateLimit(MESSAGES_PER_S, MESSAGE_BURST)

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(message)

    session = RunSession(catalog, settings, explorer, send)
    try:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            if not limit.allow():
                await send(too_fast_message())
                continue
            try:
                await session.handle(parse(frame_text(frame), settings))
            except (ValueError, LookupError) as exc:
                await send(describe(exc))
    except WebSocketDisconnect:
        pass
    finally:
        await session.stop_job()
