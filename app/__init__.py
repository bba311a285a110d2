"""pagerace web layer: FastAPI app, HTTP API, WebSocket and server-rendered pages."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One version string, written once (pyproject.toml), read from the installed metadata.
    __version__ = version("pagerace")
except PackageNotFoundError:  # a bare checkout on sys.path that was never pip-installed
    __version__ = "0+unknown"
