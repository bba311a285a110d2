"""Static asset URLs: the vendored, pinned htmx and plotly.js files, and cache-busting.

File names carry their versions (static/vendor/htmx-2.0.11.min.js), so they are found by
pattern rather than hard-coded. plotly.js is vendored (and shipped in the wheel), so the
page never needs a CDN; the Python plotly package is not a runtime dependency (the figures
are plain dicts that plotly.js draws; the tests validate them with plotly.graph_objects).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Assets:
    htmx: str | None
    plotly: str
    version: str  # appended to our own files so a deploy is never served stale JS/CSS


def _find(vendor: Path, pattern: str, exclude: str = "") -> str | None:
    matches = sorted(
        p for p in vendor.glob(pattern) if not (exclude and p.name.startswith(exclude))
    )
    return f"/static/vendor/{matches[-1].name}" if matches else None


def find_assets(static_dir: Path) -> Assets:
    vendor = static_dir / "vendor"
    digest = hashlib.sha256()
    for path in sorted(static_dir.glob("*.*")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    plotly = _find(vendor, "plotly*.min.js")
    if plotly is None:
        raise RuntimeError(f"no plotly*.min.js in {vendor}: the dashboard cannot draw")
    return Assets(
        htmx=_find(vendor, "htmx-[0-9]*.min.js", exclude="htmx-ext"),
        plotly=plotly,
        version=digest.hexdigest()[:10],
    )
