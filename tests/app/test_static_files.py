"""Static files (issue 14 item 6): gzipped once, cache headers by name, Accept-Encoding obeyed."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import static_files
from app.config import STATIC_DIR
from app.static_files import IMMUTABLE, REVALIDATE, accepts_gzip, stamp_imports

PLOTLY = "/static/vendor/plotly-basic-4.1.1.min.js"
APP_JS = "/static/dashboard.js"


def test_vendor_files_are_gzipped_once_and_cached_for_good(
    client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.state.static.warm()
    calls: list[int] = []
    real = gzip.compress

    def counting(data: bytes, *args: Any, **kwargs: Any) -> bytes:
        calls.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(static_files.gzip, "compress", counting)
    raw = (STATIC_DIR / PLOTLY.removeprefix("/static/")).read_bytes()
    for _ in range(3):
        # httpx would decompress: read the bytes as they were sent.
        with client.stream("GET", PLOTLY, headers={"accept-encoding": "gzip"}) as response:
            sent = b"".join(response.iter_raw())
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["cache-control"] == IMMUTABLE
        assert response.headers["vary"] == "Accept-Encoding"
        assert int(response.headers["content-length"]) == len(sent) < len(raw) // 2
        assert gzip.decompress(sent) == raw
    assert calls == []  # nothing compressed per request


@pytest.mark.parametrize("accept", ["", "identity", "gzip;q=0", "br", "*;q=0"])
def test_a_client_that_does_not_accept_gzip_gets_the_plain_file(
    client: TestClient, accept: str
) -> None:
    raw = (STATIC_DIR / PLOTLY.removeprefix("/static/")).read_bytes()
    with client.stream("GET", PLOTLY, headers={"accept-encoding": accept}) as response:
        sent = b"".join(response.iter_raw())
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"  # once, not once per layer
    assert sent == raw


def test_app_files_revalidate_with_an_etag(client: TestClient, app: FastAPI) -> None:
    first = client.get(APP_JS, headers={"accept-encoding": "gzip"})
    assert first.status_code == 200
    assert first.headers["cache-control"] == REVALIDATE
    etag = first.headers["etag"]
    again = client.get(APP_JS, headers={"accept-encoding": "gzip", "if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    # The same content in the other encoding is the same file: also not modified.
    plain = client.get(APP_JS, headers={"accept-encoding": "identity", "if-none-match": etag})
    assert plain.status_code == 304
    stale = client.get(APP_JS, headers={"if-none-match": '"0123"'})
    raw = (STATIC_DIR / "dashboard.js").read_bytes()
    assert stale.status_code == 200
    assert stale.content == stamp_imports(raw, app.state.static.version)
    # Pages link the current version (?v=): that URL never changes its content.
    current = client.get(f"{APP_JS}?v={app.state.static.version}")
    assert current.headers["cache-control"] == IMMUTABLE
    assert client.get(f"{APP_JS}?v=old").headers["cache-control"] == REVALIDATE


def test_pages_link_the_versioned_urls(client: TestClient, app: FastAPI) -> None:
    page = client.get("/s/madv-free-vs-dio").text
    assert f"/static/dashboard.js?v={app.state.static.version}" in page


def test_module_imports_carry_the_version_of_the_page_that_loads_them(
    client: TestClient, app: FastAPI
) -> None:
    # An import resolves against the importing file's URL without its query: the server
    # stamps the version in, so core.js is as cacheable (and as fresh) as dashboard.js?v=.
    version = app.state.static.version
    for script in ("dashboard.js", "editor.js", "live.js", "present.js"):
        served = client.get(f"/static/{script}?v={version}")
        assert served.headers["content-type"].startswith("text/javascript"), script
        assert f'from "./core.js?v={version}";' in served.text, script
        assert 'from "./core.js";' in (STATIC_DIR / script).read_text(), script
    core = client.get(f"/static/core.js?v={version}")
    assert core.headers["content-type"].startswith("text/javascript")
    assert core.headers["cache-control"] == IMMUTABLE
    assert core.content == (STATIC_DIR / "core.js").read_bytes()  # no imports of its own
    # Vendor files are never rewritten.
    assert client.get(PLOTLY).content == (STATIC_DIR / PLOTLY.removeprefix("/static/")).read_bytes()


def test_stamp_imports_touches_only_relative_module_imports() -> None:
    source = (
        b"""import { a } from "./core.js";\nimport './side.js';\n"""
        b"""import x from "/abs.js";\n// see "./core.js"\n"""
    )
    assert stamp_imports(source, "abc") == (
        b"""import { a } from "./core.js?v=abc";\nimport './side.js?v=abc';\n"""
        b"""import x from "/abs.js";\n// see "./core.js"\n"""
    )


def test_only_files_under_static_are_served(client: TestClient) -> None:
    for path in ("/static/../app/main.py", "/static/%2e%2e/app/main.py", "/static/vendor/"):
        assert client.get(path).status_code == 404, path
    missing = client.get("/static/nothing.js", headers={"accept": "text/html"})
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    head = client.head(APP_JS)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0


def test_accept_encoding_is_parsed() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("GZIP")
    assert accepts_gzip("br;q=1.0, gzip;q=0.5")
    assert accepts_gzip("*")
    assert not accepts_gzip("")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("gzip;q=0.000, *")
    assert not accepts_gzip("deflate, br")
    assert not accepts_gzip("gzip;q=x")


def test_pages_and_api_bodies_are_still_gzipped(client: TestClient) -> None:
    page = client.get("/s/madv-free-vs-dio", headers={"accept-encoding": "gzip"})
    assert page.headers.get("content-encoding") == "gzip"
