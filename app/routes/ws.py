"""/ws/run (product.md 5.3): drive one run over a WebSocket; see app/session.py."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.deps import CatalogDep, ExplorerDep, SettingsDep
from app.security import WS_POLICY, same_origin
from app.service import client_of
from app.session import RunSession, close_on_bug, drive
from app.wire import encode_off_loop

router = APIRouter()


@router.websocket("/ws/run")
async def ws_run(
    websocket: WebSocket, catalog: CatalogDep, settings: SettingsDep, explorer: ExplorerDep
) -> None:
    if not same_origin(websocket.headers, settings.public_url):
        await websocket.close(WS_POLICY)  # before accepting: the handshake gets a 403
        return
    await websocket.accept()
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        text = await encode_off_loop(message)
        async with lock:
            await websocket.send_text(text)

    with suppress(WebSocketDisconnect):
        client = client_of(websocket)
        budget = websocket.app.state.replay_budgets.of(client)
        session = RunSession(catalog, settings, explorer, send, client, budget)
        try:
            await drive(websocket, session, send)
        except WebSocketDisconnect:
            raise
        except Exception as exc:
            await close_on_bug(websocket, send, exc)
