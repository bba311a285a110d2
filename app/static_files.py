"""Static files, compressed once and served with cache headers that fit their names.

The GZip middleware compressed plotly.js (1.2 MB) at level 9 on every request: ~42 ms of
server CPU per new visitor (issue 14). Here each file is read and gzipped once per process
(at startup, or on its first request), then served from memory:

- versioned vendor files (static/vendor/..., whose names carry their versions:
  htmx-2.0.11.min.js, plotly-basic-4.1.1.min.js, swagger-ui-5.35.0/) never change under the
  same URL: `Cache-Control: public, max-age=31536000, immutable`;
- the app's own files (dashboard.js, app.css, ...) change with a deploy: an ETag and
  `no-cache`, so a browser revalidates (a 304 without a body). Pages link them with
  `?v=<version>` (app/assets.py); a request carrying the current version is immutable too;
- the app's own scripts are ES modules whose relative imports (`from "./core.js"`) resolve
  against the importing file's URL, without its query: the version is stamped into them as
  they are served (`"./core.js?v=<version>"`), so an import is as immutable as its page's
  `<script src="...?v=...">` and changes with the same deploy;
- gzip is sent when the request's Accept-Encoding allows it (`Vary: Accept-Encoding` always);
  brotli is not offered: no brotli package is a dependency.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # cache it, but ask (If-None-Match) before each use
# Text formats gain from gzip; fonts and images are compressed already.
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
MIN_GZIP_BYTES = 1024  # below this the header costs more than it saves (as the middleware)
# A module's static import of a sibling: `from "./core.js"`, `import "./x.js"`.
RELATIVE_IMPORT = re.compile(rb"""(\b(?:from|import)\s*)(["'])(\./[\w.-]+\.js)\2""")


@dataclass(frozen=True, slots=True)
class StaticFile:
    plain: bytes
    gzipped: bytes | None  # None when gzip would not make it smaller
    media_type: str
    etag: str  # of the plain content: the gzipped one has its own (RFC 9110 8.8.3)


def stamp_imports(source: bytes, version: str) -> bytes:
    """`source` with `?v=version` on each relative module import."""
    stamp = b"?v=" + version.encode()
    return RELATIVE_IMPORT.sub(lambda m: m[1] + m[2] + m[3] + stamp + m[2], source)


@functools.lru_cache(maxsize=512)
def _load(path: str, mtime_ns: int, size: int, version: str) -> StaticFile:
    """Keyed on the file's mtime and size too: an edited file is read again (in development).
    A `version` stamps the file's module imports (our own scripts; "" for anything else)."""
    plain = Path(path).read_bytes()
    if version:
        plain = stamp_imports(plain, version)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if media_type == "text/javascript" or media_type.endswith("/javascript"):
        media_type = "text/javascript"
    gzipped: bytes | None = None
    if media_type.startswith(COMPRESSIBLE) and len(plain) >= MIN_GZIP_BYTES:
        packed = gzip.compress(plain, compresslevel=9, mtime=0)
        gzipped = packed if len(packed) < len(plain) else None
    etag = hashlib.sha256(plain).hexdigest()[:20]
    return StaticFile(plain, gzipped, media_type, etag)


def load(path: Path, version: str = "") -> StaticFile:
    stat = path.stat()
    return _load(str(path), stat.st_mtime_ns, stat.st_size, version)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether `Accept-Encoding` allows gzip: named (or `*`) without `q=0` (RFC 9110 12.5.3)."""
    allowed: dict[str, bool] = {}
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        allowed[name.strip()] = quality > 0
    if "gzip" in allowed:
        return allowed["gzip"]
    return allowed.get("*", False)


def _etag_matches(if_none_match: str, etags: tuple[str, ...]) -> bool:
    if if_none_match.strip() == "*":
        return True
    sent = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return any(f'"{tag}"' in sent for tag in etags)


class StaticDirectory:
    """The files under `directory` (listed once: nothing else is ever read), served by
    `respond`. `immutable(name)` says which names carry a version."""

    def __init__(self, directory: Path, version: str) -> None:
        root = directory.resolve()
        self.version = version
        self.files = {
            path.relative_to(root).as_posix(): path
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.resolve().is_relative_to(root)
        }

    @staticmethod
    def immutable(name: str) -> bool:
        return name.startswith("vendor/")

    def stamp(self, name: str) -> str:
        """The version our own modules' imports carry; "" for files that are not ours or not JS."""
        return "" if self.immutable(name) or not name.endswith(".js") else self.version

    def warm(self) -> None:
        """Read and compress every file now (startup), not on each file's first request."""
        for name, path in self.files.items():
            load(path, self.stamp(name))

    def respond(self, request: Request, name: str) -> Response:
        path = self.files.get(name)
        if path is None:
            raise HTTPException(404, "Not Found")
        versioned = self.immutable(name) or request.query_params.get("v") == self.version
        file = load(path, self.stamp(name))
        return serve_file(request, file, IMMUTABLE if versioned else REVALIDATE)


def serve_file(request: Request, file: StaticFile, cache_control: str) -> Response:
    """The file in the encoding the request accepts, or 304 if the client's copy is current."""
    headers = {"Cache-Control": cache_control}
    if file.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    gzipped = file.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding", ""))
    etag = file.etag + ("-gz" if gzipped else "")
    headers["ETag"] = f'"{etag}"'
    # Either encoding's tag is a match: the client holds the same content.
    if _etag_matches(request.headers.get("if-none-match", ""), (file.etag, file.etag + "-gz")):
        return Response(status_code=304, headers=headers)
    if gzipped:
        assert file.gzipped is not None
        headers["Content-Encoding"] = "gzip"  # the GZip middleware leaves this response alone
        return Response(file.gzipped, media_type=file.media_type, headers=headers)
    return Response(file.plain, media_type=file.media_type, headers=headers)


class DynamicGZip(GZipMiddleware):
    """The GZip middleware for everything but the paths in `skip`, which are served
    compressed already (or deliberately not: a client that refused gzip with `q=0`, which the
    middleware would not notice)."""

    def __init__(self, app: ASGIApp, minimum_size: int, skip: tuple[str, ...]) -> None:
        super().__init__(app, minimum_size=minimum_size)
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
        if root and path.startswith(root):  # behind --root-path, scope paths carry it
            path = path[len(root) :]
        if scope["type"] == "http" and path.startswith(self.skip):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
