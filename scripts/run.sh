#!/usr/bin/env bash
# Serve the dashboard: scripts/run.sh   (HOST/PORT env override 127.0.0.1:8000)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export VENV

bash scripts/setup.sh --runtime
exec "$VENV/bin/pagerace" serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
