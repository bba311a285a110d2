"""Every path pagerace links to, made in one place.

`Urls(root)` knows the sub-path the app is served under (`serve --root-path`, '' at the top of
a site) and puts it in front of every path it makes, so a template, a view model, a socket
message or a script never adds or rewrites a prefix, a query or a path segment itself. The
templates get one per request as the Jinja global `urls` (app/main.py); view models are built
with the request's. A run position travels as a `RunRef`; its `query()` is the only query
string a dashboard link has.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from starlette.requests import HTTPConnection

from app.runref import RunRef


def root_path(conn: HTTPConnection) -> str:
    """The sub-path the app is served under (`serve --root-path`), '' at the top of a site."""
    root: str = conn.scope.get("root_path", "")
    return root.rstrip("/")


NOWHERE = RunRef()  # a scenario's page as it opens: no step, no kernel chosen


@dataclass(frozen=True, slots=True)
class Urls:
    root: str = ""

    @classmethod
    def of(cls, conn: HTTPConnection) -> Urls:
        return cls(root_path(conn))

    def path(self, path: str) -> str:
        """A fixed path of the app (`/`, `/edit`, `/docs`, `/api/diagram`...) under the root."""
        return self.root + path

    def static(self, name: str, version: str) -> str:
        return f"{self.root}/static/{name}?v={version}"

    # --- the catalog and the editor ------------------------------------------------------

    def home(self, tag: str | None = None) -> str:
        return f"{self.root}/?{urlencode({'tag': tag})}" if tag else f"{self.root}/"

    def edit(self, packed: str | None = None, variant: str | None = None, copy: str = "") -> str:
        """The editor: empty, on a packed text or document (`s=`), or on a catalog scenario's
        copy (`from=`); with the variant to check."""
        pairs = [("s", packed)] if packed else [("from", copy)] if copy else []
        if variant:
            pairs.append(("v", variant))
        return f"{self.root}/edit?{urlencode(pairs)}" if pairs else f"{self.root}/edit"

    # --- a scenario's dashboard ----------------------------------------------------------

    def _scenario(self, sid: str, tail: str, query: str) -> str:
        path = f"{self.root}/s/{quote(sid, safe='')}{tail}"
        return f"{path}?{query}" if query or tail else path

    def page(self, sid: str, ref: RunRef = NOWHERE, **extra: str | int | None) -> str:
        """The dashboard page at `ref` (what a user shares)."""
        return self._scenario(sid, "", ref.query(**extra))

    def frame(self, sid: str, ref: RunRef, **extra: str | int | None) -> str:
        """The page's frame fragment at `ref` (what htmx swaps in)."""
        return self._scenario(sid, "/frame", ref.query(**extra))

    def embed(self, sid: str, ref: RunRef = NOWHERE) -> str:
        """The read-only, framable view of the dashboard at `ref` (issue 15 item 8)."""
        path = f"{self.root}/embed/s/{quote(sid, safe='')}"
        query = ref.query()
        return f"{path}?{query}" if query else path

    def find_bug(self, sid: str, ref: RunRef) -> str:
        return self._scenario(sid, "/find-bug", ref.query())

    def short(self, link_id: str) -> str:
        """A short link (/z/{id}): the store gives back the long address it names."""
        return f"{self.root}/z/{link_id}"

    def fix(self, sid: str, ref: RunRef) -> str:
        """Which single switch removes the violation of the run at `ref` (a fragment)."""
        return self._scenario(sid, "/fix", ref.query())

    def outcomes(self, sid: str, ref: RunRef, **extra: str | int | None) -> str:
        return self._scenario(sid, "/outcomes", ref.query(**extra))

    def export(self, sid: str, ref: RunRef, fmt: str) -> str:
        """The run at `ref` as a file to download (app/exports.py names the formats)."""
        return self._scenario(sid, f"/export/{quote(fmt, safe='')}", ref.query())

    def present(
        self, sid: str, ref: RunRef, room: str | None = None, token: str | None = None
    ) -> str:
        """The dashboard in presenter mode (in `room`, once it has one). A presenter token
        rides in the #fragment, which browsers never send to a server or log."""
        url = self.page(sid, ref, present=1, room=room)
        return f"{url}#token={token}" if token else url

    # --- live rooms ----------------------------------------------------------------------

    def live(self, room: str) -> str:
        return f"{self.root}/live/{room}"

    def live_qr(self, room: str) -> str:
        return f"{self.root}/live/{room}/qr.svg"

    def room_socket(self, room: str) -> str:
        return f"{self.root}/ws/rooms/{room}"


@dataclass(frozen=True, slots=True)
class EmbedUrls(Urls):
    """The links of an embed: its dashboard positions stay in the embed (a frame on another
    site), everything else is the site's own."""

    def page(self, sid: str, ref: RunRef = NOWHERE, **extra: str | int | None) -> str:
        return self.embed(sid, ref)


# App-relative links, for what is built without a request (view models' defaults, the editor's
# length-checked links): a template puts them under the request's root with `urls.path`.
APP = Urls()
