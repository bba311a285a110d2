"""Routers, one module per resource: JSON API, HTML pages, WebSocket."""
