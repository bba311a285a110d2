"""Write engine/scenarios/history.json: every earlier text of each catalog scenario, by digest.

Usage: .venv/bin/python scripts/scenario_history.py          (rewrite it from git history)
       .venv/bin/python scripts/scenario_history.py --check  (exit 1 if it is out of date)

A dashboard link carries its scenario's digest (d=). When the catalog's scenario has changed
since, the page says so; with this file it can also name the version the link was made on:
the commit that last wrote that text, its date and subject, and where to read it
(`git show COMMIT:PATH`). Each version is the YAML as git has it at each commit that touched
engine/scenarios/, digested as the engine digests a document (engine.lang.ir.sha256_of).
Run it after committing a change to a catalog scenario; a stale file only means the page
names fewer old versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.lang.ir import sha256_of  # noqa: E402

HISTORY = ROOT / "engine" / "scenarios" / "history.json"


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def versions() -> dict[str, dict[str, Any]]:
    """{sha256: {id, digest, commit, date, subject, path}}, oldest commit first, so a text
    written again later keeps the commit that first wrote it."""
    found: dict[str, dict[str, Any]] = {}
    log = git(
        "log",
        "--reverse",
        "--format=%x00%h %ad %s",
        "--date=short",
        "--name-only",
        "--",
        "engine/scenarios/",
    )
    for entry in log.split("\x00")[1:]:
        head, *names = [line for line in entry.splitlines() if line.strip()]
        commit, date, subject = head.split(" ", 2)
        for path in names:
            if not path.endswith(".yaml"):
                continue
            try:
                doc = yaml.safe_load(git("show", f"{commit}:{path}"))
            except (subprocess.CalledProcessError, yaml.YAMLError):
                continue  # deleted in this commit, or not YAML then
            if not isinstance(doc, dict) or "id" not in doc:
                continue
            sha = sha256_of(doc)
            found.setdefault(
                sha,
                {
                    "id": str(doc["id"]),
                    "digest": sha[:12],
                    "commit": commit,
                    "date": date,
                    "subject": subject[:160],
                    "path": path,
                },
            )
    return found


def render() -> str:
    entries = sorted(versions().items(), key=lambda kv: (kv[1]["id"], kv[1]["date"], kv[0]))
    return json.dumps(dict(entries), indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = HISTORY.read_text() if HISTORY.exists() else ""
        if current != text:
            print(f"{HISTORY.relative_to(ROOT)} is out of date: run scripts/scenario_history.py")
            return 1
        return 0
    HISTORY.write_text(text)
    count = text.count('"commit"')
    print(f"wrote {HISTORY.relative_to(ROOT)}: {count} versions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
