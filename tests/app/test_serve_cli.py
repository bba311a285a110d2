"""`pagerace serve`: the options it hands uvicorn."""

from __future__ import annotations

from typing import Any

import pytest


def test_serve_logs_requests_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from app import cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    assert cli.main(["serve"]) == 0
    assert seen["access_log"] is False  # uvicorn's default is on: a line per request
    assert cli.main(["serve", "--access-log"]) == 0
    assert seen["access_log"] is True
