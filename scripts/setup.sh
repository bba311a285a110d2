#!/usr/bin/env bash
# Create/refresh the project virtualenv and verify the vendored front-end files.
#   scripts/setup.sh             dev set: requirements-dev.txt + editable install (default)
#   scripts/setup.sh --runtime   runtime set only: requirements.txt + editable install
# Re-running is cheap: pip is skipped while requirements*.txt, constraints.txt and pyproject.toml
# are unchanged.
# Env: VENV (default .venv), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
mode=dev
case "${1:-}" in
  "" | --dev) mode=dev ;;
  --runtime) mode=runtime ;;
  *) echo "usage: $0 [--dev|--runtime]" >&2; exit 2 ;;
esac

# Drop pip's noise about this machine's missing extra indexes ("Location ... is ignored").
pip_install() {
  "$VENV/bin/pip" install -q --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
}

# A venv without pip is half-made: `python3 -m venv` fails after creating bin/python when
# ensurepip is missing (Debian/Ubuntu without python3-venv). Start again rather than fail on
# `.venv/bin/pip: No such file or directory` for ever.
if [ -e "$VENV" ] && { [ ! -x "$VENV/bin/python" ] || [ ! -x "$VENV/bin/pip" ]; }; then
  echo "setup: $VENV is incomplete (no python or pip); recreating it" >&2
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  if ! "$PYTHON" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "setup: '$PYTHON -m venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi

if [ "$mode" = dev ]; then reqs=requirements-dev.txt; else reqs=requirements.txt; fi
want=$({ cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml; ls -d engine app 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
current() { [ "$(cat "$VENV/.pagerace-$1.stamp" 2>/dev/null)" = "$want" ]; }
# The dev set includes the runtime set, so an up-to-date dev venv also satisfies --runtime.
if ! current "$mode" && ! { [ "$mode" = runtime ] && current dev; }; then
  echo "setup: installing $reqs and the project (editable) into $VENV" >&2
  # constraints.txt pins every package, transitive ones included: CI installs what was tested.
  pip_install -r "$reqs" -c constraints.txt
  pip_install --no-deps -e .
  echo "$want" >"$VENV/.pagerace-$mode.stamp"
fi

(cd static/vendor && sha256sum --check --quiet --strict SHA256SUMS)
# The test-only axe-core (not in the wheel or sdist, which carry no tests).
if [ -f tests/e2e/vendor/SHA256SUMS ]; then
  (cd tests/e2e/vendor && sha256sum --check --quiet --strict SHA256SUMS)
fi
