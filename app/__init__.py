"""pagerace web layer: FastAPI app, HTTP API, WebSocket and server-rendered pages."""
