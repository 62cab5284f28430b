#!/usr/bin/env bash
# Runs the Python binding's tests against a CMake build tree:
#   scripts/test-python.sh BUILD_DIR
# The interpreter is the one that build was configured with (Debian's
# /usr/bin/python3 by default); PYTHON=... overrides it. "No tests collected"
# counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:?usage: scripts/test-python.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=$(sed -n 's/^Python3_EXECUTABLE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
  PYTHON=${PYTHON:-/usr/bin/python3}
fi
if ! compgen -G "$BUILD/python/cymongoose/_cymg*.so" >/dev/null; then
  echo "test-python: no extension in $BUILD/python/cymongoose (configure with -DCYMG_PYTHON=ON and build)" >&2
  exit 1
fi
set +e
PYTHONPATH="$BUILD/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 \
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/python "${@:2}"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "test-python: no tests were collected" >&2
  exit 1
fi
exit $rc
