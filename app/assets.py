"""Static asset URLs: the vendored, pinned htmx and plotly.js files, and cache-busting.

File names carry their versions (static/vendor/htmx-2.0.11.min.js), so they are found by
pattern rather than hard-coded. If no plotly.js bundle is vendored, the copy inside the
Python plotly package is served instead: the page never needs a CDN.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PLOTLY_PACKAGE_URL = "/vendor/plotly.min.js"


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


def plotly_package_file() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def find_assets(static_dir: Path) -> Assets:
    vendor = static_dir / "vendor"
    digest = hashlib.sha256()
    for path in sorted(static_dir.glob("*.*")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    plotly = _find(vendor, "plotly*.min.js") or PLOTLY_PACKAGE_URL
    return Assets(
        htmx=_find(vendor, "htmx-[0-9]*.min.js", exclude="htmx-ext"),
        plotly=plotly,
        version=digest.hexdigest()[:10],
    )
