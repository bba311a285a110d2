#!/usr/bin/env bash
# The one test command: system packages, venv, lint, format check, types, then every test
# (unit, API, property-based and the headless-Chromium e2e tests) in one pytest run.
# Extra arguments are passed to pytest, e.g. scripts/test.sh -k explore
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export VENV

# In CI a missing browser must fail the run, not skip the e2e tests.
if [ "${CI:-}" = true ]; then
  export PAGERACE_REQUIRE_BROWSER=1
fi

step() { printf '\n==> %s\n' "$*" >&2; }

step "system packages (chromium, redis-server)"
if ! bash scripts/ensure-chromium.sh; then
  if [ -n "${PAGERACE_REQUIRE_BROWSER:-}" ]; then
    echo "test: could not install chromium/redis-server" >&2
    exit 1
  fi
  echo "test: WARNING: chromium/redis-server unavailable; e2e/redis tests will skip" >&2
fi
if [ -n "${PAGERACE_REQUIRE_BROWSER:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "test: /usr/bin/chromium is missing and PAGERACE_REQUIRE_BROWSER is set" >&2
  exit 1
fi

step "virtualenv"
bash scripts/setup.sh

step "ruff check"
"$VENV/bin/ruff" check .
step "ruff format --check"
"$VENV/bin/ruff" format --check .
step "mypy"
"$VENV/bin/mypy"

step "pytest"
rc=0
# tests/conftest.py writes how many browser (e2e) and Redis tests skipped for want of
# chromium or redis-server: a run that skipped them must not end on a plain green line.
PAGERACE_SKIP_REPORT=$(mktemp)
export PAGERACE_SKIP_REPORT
trap 'rm -f "$PAGERACE_SKIP_REPORT"' EXIT
"$VENV/bin/python" -m pytest -q "${@:-tests}" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
skipped=$(cat "$PAGERACE_SKIP_REPORT" 2>/dev/null || true)
if [ "${skipped:-0}" -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "test: FAILED: $skipped browser/Redis tests skipped (CI=true requires chromium and redis-server)" >&2
    exit 1
  fi
  echo "test: INCOMPLETE: $skipped browser/Redis tests skipped (install chromium and redis-server; see above)" >&2
fi
exit "$rc"
