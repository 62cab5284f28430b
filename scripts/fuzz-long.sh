#!/usr/bin/env bash
# The long fuzzing run (`make fuzz-long`; not in CI): every libFuzzer target, or
# those named in FUZZ_TARGETS, for FUZZ_SECONDS each (default 3600: one CPU-hour
# per target), one after the other on one core, with ASan+UBSan and leak checks.
#
#   FUZZ_SECONDS=600 make fuzz-long
#   FUZZ_TARGETS="fuzz_e2e_http_server fuzz_e2e_ws_server" scripts/fuzz-long.sh
#
# Corpora live outside the tree, in ${FUZZ_CORPUS_DIR:-$HOME/.cache/cymg-fuzz}/<target>,
# and grow from run to run; the tree's tests/fuzz/corpus/<target> seeds them (read,
# never written). libFuzzer runs in fork mode with one job, so a crash is saved
# and fuzzing goes on: crashes, leaks and timeouts land in
# ${FUZZ_CRASH_DIR:-<corpus dir>/crashes}/<target>/, and the script exits 1 when
# this run left any there. It prints each target's coverage (libFuzzer's cov:
# edges and ft: features at the end) and appends it to <corpus dir>/results.tsv.
# FUZZ_COVERAGE=1 adds a line-coverage report of src/ (llvm-cov) over the final
# corpora; with FUZZ_SECONDS=0 that report is all it does. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-3600}
root=${FUZZ_CORPUS_DIR:-$HOME/.cache/cymg-fuzz}
crashes=${FUZZ_CRASH_DIR:-$root/crashes}
build=${FUZZ_BUILD:-build-fuzz}
case "$secs" in '' | *[!0-9]*) echo "fuzz-long: FUZZ_SECONDS must be a number of seconds" >&2; exit 2 ;; esac
command -v clang >/dev/null || { echo "fuzz-long: clang is needed (scripts/deps.sh test)" >&2; exit 2; }

CC=clang cmake -S . -B "$build" -DCYMG_FUZZ=ON -DCYMG_TESTS=OFF -DCYMG_EXAMPLES=OFF \
  -DCYMG_PYTHON=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${JOBS:-2}" >/dev/null

targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  for bin in "$build"/tests/fuzz/fuzz_*; do [ -x "$bin" ] && targets+=("$(basename "$bin")"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz-long: no targets" >&2; exit 2; }

mkdir -p "$root/logs"
# The end-to-end targets make scratch trees in TMPDIR and remove them at exit;
# a crashing child cannot, so each target gets a scratch folder removed here.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/cymg-fuzz-long.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

failed=0
printf '%-24s %8s %8s %8s %12s %7s\n' target seconds cov ft execs found
for name in "${targets[@]}"; do
  [ "$secs" -gt 0 ] || break # FUZZ_SECONDS=0: only the coverage report
  bin=$build/tests/fuzz/$name
  [ -x "$bin" ] || { echo "fuzz-long: no target $name" >&2; exit 2; }
  corpus=$root/$name
  out=$crashes/$name
  log=$root/logs/$name.log
  mkdir -p "$corpus" "$out" "$scratch/$name"
  before=$(find "$out" -type f ! -name '*.txt' | wc -l)
  touch "$log.start"
  dict=()
  [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
  # -fork=1: one child at a time (one core); -ignore_*: keep going after a
  # finding, which is saved with the artifact prefix all the same.
  TMPDIR=$scratch/$name "$bin" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" -artifact_prefix="$out/" "$corpus" "tests/fuzz/corpus/$name" >"$log" 2>&1 || true
  rm -rf "${scratch:?}/$name"
  # Fork mode's status lines: "#N: cov: C ft: F corp: ... exec/s: E ... time: Ts ...".
  last=$(grep -a -E '^#[0-9]+: cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$last")
  ft=$(sed -E 's/.* ft: ([0-9]+).*/\1/' <<<"$last")
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  found=$(( $(find "$out" -type f ! -name '*.txt' | wc -l) - before ))
  printf '%-24s %8s %8s %8s %12s %7s\n' "$name" "$secs" "${cov:-?}" "${ft:-?}" "${execs:-?}" "$found"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" "$secs" "${cov:-}" "${ft:-}" \
    "${execs:-}" "$found" >>"$root/results.tsv"
  if [ "$found" -gt 0 ]; then
    failed=1
    echo "fuzz-long: $name: $found new finding(s) in $out (log: $log)"
    # Fork mode logs only the first line of a child's report: run each new
    # finding once more for the whole sanitizer report, kept beside it.
    find "$out" -type f ! -name '*.txt' -newer "$log.start" | while read -r f; do
      mkdir -p "$scratch/$name"
      TMPDIR=$scratch/$name timeout 60 "$bin" "$f" >"$f.txt" 2>&1 || true
      rm -rf "${scratch:?}/$name"
    done
  fi
done

if [ "${FUZZ_COVERAGE:-0}" = 1 ]; then
  # Line coverage of the library over the final corpora: a second build with
  # clang's source-based coverage, each corpus run once (-runs=0).
  cbuild=$build-cov
  CC=clang cmake -S . -B "$cbuild" -DCYMG_FUZZ=ON -DCYMG_TESTS=OFF -DCYMG_EXAMPLES=OFF -DCYMG_PYTHON=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
    -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" >/dev/null
  cmake --build "$cbuild" -j"${JOBS:-2}" >/dev/null
  rm -rf "$cbuild/profiles" && mkdir -p "$cbuild/profiles"
  objs=()
  for name in "${targets[@]}"; do
    mkdir -p "$scratch/$name"
    TMPDIR=$scratch/$name LLVM_PROFILE_FILE="$cbuild/profiles/$name.%p.profraw" \
      "$cbuild/tests/fuzz/$name" -runs=0 "$root/$name" "tests/fuzz/corpus/$name" >/dev/null 2>&1 || true
    objs+=(-object "$cbuild/tests/fuzz/$name")
  done
  llvm-profdata merge -sparse "$cbuild"/profiles/*.profraw -o "$cbuild/fuzz.profdata"
  llvm-cov report "${objs[@]:1}" -instr-profile="$cbuild/fuzz.profdata" "$PWD/src" | tail -n +1
fi
exit "$failed"
