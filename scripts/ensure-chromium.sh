#!/usr/bin/env bash
# Install the system packages the test suite needs: Debian's chromium (for the
# Playwright e2e tests) and redis-server (for tests marked `redis`).
# Needs root (or sudo) and apt. Never runs `playwright install`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: missing ${missing[*]} and apt-get is not available" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "ensure-chromium: need root to install ${missing[*]}" >&2
    exit 1
  fi
fi

echo "ensure-chromium: installing ${missing[*]} via apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
