"""The Host header (issue 17, F12): links, QR codes and redirects never reflect a Host that
does not name this server; PAGERACE_ALLOWED_HOSTS names more of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from fastapi.testclient import TestClient

import engine
from app.config import Settings
from app.main import create_app

SEED = "madv-free-vs-dio"
EVIL = {"host": "evil.example"}


def test_follow_urls_use_the_servers_address_not_a_foreign_host(client: TestClient) -> None:
    room = client.post("/api/rooms", json={}, headers=EVIL).json()
    assert room["follow_url"] == f"http://testserver/live/{room['room']}"
    page = client.get(f"/live/{room['room']}", headers=EVIL)
    assert page.status_code == 200
    assert "evil.example" not in page.text
    assert "host" in page.headers["vary"].lower()


def test_the_qr_code_does_not_encode_a_foreign_host(client: TestClient) -> None:
    room = client.post("/api/rooms", json={}).json()["room"]
    own = client.get(f"/live/{room}/qr.svg").content
    assert client.get(f"/live/{room}/qr.svg", headers=EVIL).content == own
    other = client.get(f"/live/{room}/qr.svg", headers={"host": "127.0.0.1:8000"}).content
    assert other != own  # an allowed Host (loopback) is used as given


def test_the_diagram_replay_link_does_not_reflect_a_foreign_host(client: TestClient) -> None:
    text = client.post("/api/diagram", json={"scenario": SEED}, headers=EVIL).text
    assert "replay: http://testserver/s/" in text and "evil" not in text


def test_redirects_do_not_echo_a_foreign_host(client: TestClient) -> None:
    response = client.get("/edit/", headers=EVIL, follow_redirects=False)
    assert 300 <= response.status_code < 400
    assert response.headers["location"].startswith("/edit")
    assert "evil" not in response.headers["location"]


def test_allowed_hosts_are_used_as_given(catalog: Mapping[str, engine.Scenario]) -> None:
    settings = replace(Settings(), allowed_hosts=("pagerace.lan",))
    client = TestClient(create_app(catalog, settings))
    room = client.post("/api/rooms", json={}, headers={"host": "pagerace.lan:8000"}).json()
    assert room["follow_url"] == f"http://pagerace.lan:8000/live/{room['room']}"
    room = client.post("/api/rooms", json={}, headers=EVIL).json()
    assert room["follow_url"].startswith("http://testserver/")
