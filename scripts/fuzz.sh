#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 5).
# Seeds are read from tests/fuzz/corpus/<target>/ and never written; new inputs go
# to .fuzz-work/. A target's tests/fuzz/<target>.dict, when there is one, is its
# libFuzzer dictionary. The long run for maintainers is scripts/fuzz-long.sh
# (`make fuzz-long`, docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found, skipped"; exit 0
fi
CC=clang cmake -S . -B build-fuzz -DCYMG_FUZZ=ON -DCYMG_TESTS=OFF -DCYMG_EXAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j2 >/dev/null
shopt -s nullglob
n=0
for bin in build-fuzz/tests/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  work=.fuzz-work/$name
  mkdir -p "$work" "tests/fuzz/corpus/$name"
  dict=()
  [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix="$work/" "${dict[@]}" \
    "$work" "tests/fuzz/corpus/$name" >"$work.log" 2>&1 || {
      echo "fuzz: $name FAILED"; tail -40 "$work.log"; exit 1; }
  n=$((n + 1))
done
echo "fuzz: $n targets ran clean"
