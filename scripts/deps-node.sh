#!/usr/bin/env bash
# Installs the Node packages the WebSocket integration tests run as peers
# (tests/node: the `ws` and `mqtt` packages, pinned in package.json and package-lock.json)
# into tests/node/node_modules, only when they are missing. Needs node and npm
# (Debian: nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/../tests/node"
if [ -f node_modules/ws/package.json ] && [ -f node_modules/mqtt/package.json ]; then exit 0; fi
if ! command -v npm >/dev/null; then
  echo "deps-node: npm not found (Debian packages: nodejs npm)" >&2
  exit 1
fi
# ci installs exactly what the lock file says; install is the fallback for an
# npm too old for the lock file's format.
npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error
