#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
step() { printf '\n==== %s\n' "$*"; }

step "dependencies"
scripts/deps.sh test
scripts/deps-node.sh

step "build (warnings are errors)"
cmake -S . -B build -DCYMG_WERROR=ON -DCYMG_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS"

step "C tests"
ctest --test-dir build --output-on-failure --no-tests=error -j"$JOBS"

step "Python tests (pytest, against the build tree)"
scripts/test-python.sh build

step "C tests under ASan+UBSan"
cmake -S . -B build-asan -DCYMG_WERROR=ON -DCYMG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCYMG_EXAMPLES=OFF -DCYMG_PYTHON=OFF >/dev/null
cmake --build build-asan -j"$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure --no-tests=error -j"$JOBS"

step "Python threading, buffered-send and TLS tests under ASan+UBSan (sanitized extension)"
# Calls from other threads while another polls: the extension and libcymg built
# with the sanitizers, the interpreter not, so the ASan runtime is preloaded.
cmake -S . -B build-pyasan -DCYMG_WERROR=ON -DCYMG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCYMG_EXAMPLES=OFF -DCYMG_TESTS=OFF -DCYMG_PYTHON=ON >/dev/null
cmake --build build-pyasan -j"$JOBS"
asan_rt=$(ldd build-pyasan/python/cymongoose/_cymg*.so | awk '/libasan/ {print $3}')
LD_PRELOAD="$asan_rt" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  scripts/test-python.sh build-pyasan -k "thread or buffered or send or events or wsgi or http_respond or tls or aio or asgi or copy or mqtt"

step "install, then build an outside program with pkg-config and with find_package"
scripts/test-install.sh build

step "examples smoke test"
scripts/test-examples.sh build

step "fuzzing (short)"
scripts/fuzz.sh "${FUZZ_SECONDS:-4}"

step "all tests passed"
